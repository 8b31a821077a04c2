r"""A small DCGAN on synthetic colour images: convolutional players, a sampler, training.

The data are 3-channel images of coloured patterns made on the fly
(:func:`synthetic_images`, no downloads); the players are DCGAN's (Radford, Metz and
Chintala, 2016): a transposed-convolution generator with BatchNorm and ReLU, a strided
convolution discriminator with LeakyReLU(0.2) and BatchNorm in its middle layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .gan import TwoPlayerGAN
from .mog import MOG_LOSSES, gan_losses

__all__ = ["ConvGAN", "conv_gan", "synthetic_images", "IMAGE_CHANNELS", "PALETTE"]

#: Colour channels of the images (RGB).
IMAGE_CHANNELS = 3

#: The patterns' colours, RGB in [0, 1]: red, green, blue, yellow.
PALETTE = ((1.0, 0.25, 0.25), (0.25, 1.0, 0.25), (0.3, 0.5, 1.0), (1.0, 0.9, 0.2))


def synthetic_images(
    batch_size: int,
    image_size: int = 32,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    r"""Images of one coloured pattern each: a Gaussian blob or stripes, at random.

    Each image is drawn independently: a kind (blob or stripes, probability 1/2 each),
    a colour :math:`c` from :data:`PALETTE` (uniformly), and

    * a blob: an intensity :math:`I(p) = \exp(-\|p - m\|^2 / 2s^2)` with
      :math:`s = S/10` and centre :math:`m` uniform in :math:`[S/4, 3S/4]^2`;
    * stripes: :math:`I(p) = \tfrac12(1 + \cos(2\pi p_a / (S/4) + \phi))`, horizontal
      or vertical (axis :math:`a`, probability 1/2 each), phase :math:`\phi` uniform
      in :math:`[0, 2\pi)`;

    for pixel centres :math:`p \in \{0.5, 1.5, \dots, S - 0.5\}^2` of an
    :math:`S \times S` image. Channel :math:`k` is :math:`2 I c_k - 1`: values in
    :math:`[-1, 1]` (the range of the generator's tanh), background :math:`-1`.

    Parameters
    ----------
    batch_size : int
    image_size : int
        :math:`S`.
    generator : torch.Generator, optional
        Random source (on ``device``); default the global random stream.
    dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    torch.Tensor
        Shape ``(batch_size, 3, image_size, image_size)``.
    """
    if batch_size < 0 or image_size < 1:
        raise ValueError(
            f"batch_size must be >= 0 and image_size >= 1, got {batch_size}, {image_size}"
        )
    n, size, rng = batch_size, image_size, generator
    stripes = torch.randint(2, (n,), generator=rng, device=device).bool()
    colour = torch.randint(len(PALETTE), (n,), generator=rng, device=device)
    centre = size / 4 + (size / 2) * torch.rand(n, 2, generator=rng, dtype=dtype, device=device)
    vertical = torch.randint(2, (n,), generator=rng, device=device).bool()
    phase = 2 * math.pi * torch.rand(n, generator=rng, dtype=dtype, device=device)
    grid = torch.arange(size, dtype=dtype, device=device) + 0.5
    rows, cols = grid.view(1, -1, 1), grid.view(1, 1, -1)
    dist2 = (rows - centre[:, 0, None, None]) ** 2 + (cols - centre[:, 1, None, None]) ** 2
    blob = torch.exp(-dist2 / (2 * (size / 10) ** 2))
    axis = torch.where(vertical[:, None, None], cols, rows)
    wave = 0.5 * (1 + torch.cos(2 * math.pi * axis / (size / 4) + phase[:, None, None]))
    intensity = torch.where(stripes[:, None, None], wave, blob)
    palette = torch.tensor(PALETTE, dtype=dtype, device=device)
    return 2 * intensity[:, None] * palette[colour][:, :, None, None] - 1


def _stages(image_size: int) -> int:
    stages = round(math.log2(image_size)) - 2 if image_size > 0 else 0
    if stages < 1 or 2 ** (stages + 2) != image_size:
        raise ValueError(
            f"image_size must be a power of two >= 8 (8, 16, 32, 64, ...), got {image_size}"
        )
    return stages


def _generator(latent: int, channels: int, stages: int, batchnorm: bool) -> nn.Sequential:
    widths = [channels * 2 ** (stages - 1 - k) for k in range(stages)]
    layers: list[nn.Module] = []
    width = latent
    for k, out in enumerate(widths):
        stride, padding = (1, 0) if k == 0 else (2, 1)
        layers.append(nn.ConvTranspose2d(width, out, 4, stride, padding, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU())
        width = out
    layers += [nn.ConvTranspose2d(width, IMAGE_CHANNELS, 4, 2, 1), nn.Tanh()]
    return nn.Sequential(nn.Unflatten(1, (latent, 1, 1)), *layers)


def _discriminator(channels: int, stages: int, batchnorm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = IMAGE_CHANNELS
    for k in range(stages):
        out = channels * 2**k
        norm = batchnorm and k > 0
        layers.append(nn.Conv2d(width, out, 4, 2, 1, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.LeakyReLU(0.2))
        width = out
    layers += [nn.Conv2d(width, 1, 4, 1, 0), nn.Flatten(0)]
    return nn.Sequential(*layers)


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class ConvGAN(TwoPlayerGAN):
    r"""A DCGAN on :func:`synthetic_images`, with its game, sampler and training loop.

    The generator :math:`G` maps latent noise :math:`z \sim \mathcal N(0, I)` (shape
    ``(B, latent)``) to images of shape ``(B, 3, S, S)`` in :math:`[-1, 1]`; the
    discriminator :math:`D` maps images to one logit each (shape ``(B,)``). It is run
    on data and on samples separately (two forward passes), so a BatchNorm layer in
    train mode normalises each with its own batch statistics, as in DCGAN. With
    :math:`d_r = D(x)` on data and :math:`d_f = D(G(z))` on samples the losses are
    :func:`~specdiag.toys.mog.gan_losses`' (as :class:`~specdiag.toys.MoGGAN`'s):

    * ``"nonsaturating"``: :math:`L_D = \mathbb E[\operatorname{softplus}(-d_r)] +
      \mathbb E[\operatorname{softplus}(d_f)]`, :math:`L_G =
      \mathbb E[\operatorname{softplus}(-d_f)]`;
    * ``"minimax"``: the same :math:`L_D`, :math:`L_G = -L_D` (zero-sum);
    * ``"wgan"``: :math:`L_D = \mathbb E[d_f] - \mathbb E[d_r]`, :math:`L_G = -L_D`
      (no clipping, no penalty).

    These are the *game* losses: nothing is detached, each is differentiated only with
    respect to its own player's parameters, so the game Jacobian keeps its coupling
    blocks. BatchNorm layers are used as they are (train mode: batch statistics), so
    the game Jacobian is that of the losses training differentiates.

    Parameters
    ----------
    generator, discriminator : nn.Module
        ``generator(z)`` of shape ``(B, 3, S, S)`` for ``z`` of shape ``(B, latent)``;
        ``discriminator(x)`` of shape ``(B,)`` or ``(B, 1)``.
    latent : int
        Dimension of the latent noise.
    image_size : int
        :math:`S`, the side of the data images.
    loss : {"nonsaturating", "minimax", "wgan"}

    Attributes
    ----------
    generator, discriminator : nn.Module
    latent, image_size : int
    loss : str
    optimizers : dict
        ``{player: torch.optim.Optimizer}`` of the latest :meth:`train` (empty before).
    game : Game
        Players ``"generator"`` and ``"discriminator"``, losses :meth:`losses`; its
        batch is a dict from :meth:`sample`.
    """

    DEFAULT_LR = 2e-4  # DCGAN's, with Adam and betas (0.5, 0.999)
    DEFAULT_BATCH_SIZE = 64

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        latent: int,
        image_size: int = 32,
        loss: str = "nonsaturating",
    ) -> None:
        if loss not in MOG_LOSSES:
            raise ValueError(f"loss must be one of {MOG_LOSSES}, got {loss!r}")
        if latent < 1 or image_size < 1:
            raise ValueError(f"latent and image_size must be positive, got {latent}, {image_size}")
        self.latent, self.image_size, self.loss = int(latent), int(image_size), loss
        super().__init__(generator, discriminator)

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Draw a batch of data images and latent noise.

        Parameters
        ----------
        batch_size : int
        generator : torch.Generator, optional
            Random source (on the GAN's device); default the global random stream.

        Returns
        -------
        dict
            ``{"real": (batch_size, 3, S, S) images from :func:`synthetic_images`,
            "z": (batch_size, latent) standard normal noise}``, drawn in that order.
        """
        real = synthetic_images(
            batch_size, self.image_size, generator=generator, dtype=self.dtype, device=self.device
        )
        z = torch.randn(
            batch_size, self.latent, generator=generator, dtype=self.dtype, device=self.device
        )
        return {"real": real, "z": z}

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The game losses on ``batch`` (from :meth:`sample`), by :func:`~.mog.gan_losses`.

        Returns
        -------
        dict
            ``{"generator": L_G, "discriminator": L_D}``, graphs attached.
        """
        d_real = self.discriminator(batch["real"])
        d_fake = self.discriminator(self.generator(batch["z"]))
        return gan_losses(d_real, d_fake, self.loss)

    def __repr__(self) -> str:
        sizes = self._sizes()
        return (
            f"ConvGAN(loss={self.loss!r}, image_size={self.image_size}, latent={self.latent}, "
            f"{sizes}, dtype={self.dtype})"
        )


def conv_gan(
    *,
    channels: int = 24,
    latent: int = 64,
    image_size: int = 32,
    batchnorm: bool = True,
    loss: str = "nonsaturating",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> ConvGAN:
    r"""A DCGAN-style GAN on synthetic 3-channel images (see :class:`ConvGAN`).

    With :math:`S` = ``image_size`` :math:`= 2^{L+2}` (:math:`L \ge 1` stride-2
    stages), :math:`c` = ``channels`` and :math:`a` = ``latent``; for the default
    :math:`S = 32` (:math:`L = 3`), kernels 4 x 4 throughout ("s1 p0": stride 1,
    padding 0; "s2 p1": stride 2, padding 1):

    ====================================================  ===========================
    generator                                             output
    ====================================================  ===========================
    z, reshaped                                           :math:`a \times 1 \times 1`
    ConvTranspose2d(a, 4c) s1 p0, BatchNorm, ReLU         :math:`4c \times 4 \times 4`
    ConvTranspose2d(4c, 2c) s2 p1, BatchNorm, ReLU        :math:`2c \times 8 \times 8`
    ConvTranspose2d(2c, c) s2 p1, BatchNorm, ReLU         :math:`c \times 16 \times 16`
    ConvTranspose2d(c, 3) s2 p1 (bias), tanh              :math:`3 \times 32 \times 32`
    ====================================================  ===========================

    ====================================================  ===========================
    discriminator                                         output
    ====================================================  ===========================
    Conv2d(3, c) s2 p1 (bias), LeakyReLU(0.2)             :math:`c \times 16 \times 16`
    Conv2d(c, 2c) s2 p1, BatchNorm, LeakyReLU(0.2)        :math:`2c \times 8 \times 8`
    Conv2d(2c, 4c) s2 p1, BatchNorm, LeakyReLU(0.2)       :math:`4c \times 4 \times 4`
    Conv2d(4c, 1) s1 p0 (bias), flattened                 one logit
    ====================================================  ===========================

    Other sizes add or remove middle stages (widths doubling towards the 4 x 4
    end). Convolutions followed by BatchNorm have no bias; with ``batchnorm=False``
    every convolution has one. The weights start as DCGAN's: :math:`\mathcal N(0,
    0.02^2)` for convolutions, :math:`\mathcal N(1, 0.02^2)` for BatchNorm scales,
    biases 0.

    Parameters
    ----------
    channels : int
        :math:`c`, the width of the discriminator's first and the generator's last
        hidden layer.
    latent : int
        Dimension of the generator's Gaussian input.
    image_size : int
        A power of two >= 8.
    batchnorm : bool
        BatchNorm in the generator's hidden layers and the discriminator's middle ones.
    loss : {"nonsaturating", "minimax", "wgan"}
    seed : int
        Seeds the initialisation of both networks; the global random streams are left
        as they were.
    dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    ConvGAN

    Notes
    -----
    At :math:`S = 32` with BatchNorm the generator has :math:`64ac + 160c^2 + 62c + 3`
    parameters and the discriminator :math:`160c^2 + 125c + 1`:

    ========  ======  =====  =========  =============  =======
    channels  latent  S      generator  discriminator  total
    ========  ======  =====  =========  =============  =======
    24        64      32     191,955    95,161         287,116
    32        100     32     370,627    167,841        538,468
    4         8       16     1,755      853            2,608
    ========  ======  =====  =========  =============  =======

    The default (first row) has 287,116 parameters.

    Examples
    --------
    >>> import specdiag as sd
    >>> from specdiag import toys
    >>> gan = toys.conv_gan()
    >>> sum(gan.n_parameters.values())
    287116
    >>> history = gan.train(2, seed=0)
    >>> batch = gan.sample(16, torch.Generator().manual_seed(0))
    >>> r = sd.eigsh(sd.PlayerHessian(gan.game, "discriminator", batch), k=2, which="LA")
    >>> r.all_converged
    True
    """
    if loss not in MOG_LOSSES:
        raise ValueError(f"loss must be one of {MOG_LOSSES}, got {loss!r}")
    if channels < 1 or latent < 1:
        raise ValueError(f"channels and latent must be positive, got {channels}, {latent}")
    stages = _stages(image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = _generator(latent, channels, stages, batchnorm)
        D = _discriminator(channels, stages, batchnorm)
        _dcgan_init(G)
        _dcgan_init(D)
    G.to(device=device, dtype=dtype)
    D.to(device=device, dtype=dtype)
    return ConvGAN(G, D, latent=latent, image_size=image_size, loss=loss)
