"""A GAN on a 2-D ring of Gaussians: MLP players, a sampler and a training loop."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .common import check_weight, with_consensus
from .gan import TwoPlayerGAN
from .mlp import ACTIVATIONS, mlp

__all__ = ["MoGGAN", "mog_gan", "mog_gan_parameter_count", "gan_losses", "MOG_LOSSES"]

#: The mixture-of-Gaussians GAN objectives.
MOG_LOSSES = ("nonsaturating", "minimax", "wgan")


def gan_losses(d_real: torch.Tensor, d_fake: torch.Tensor, loss: str) -> dict[str, torch.Tensor]:
    r"""The GAN objectives from the discriminator's logits on data and on samples.

    With :math:`d_r` = ``d_real`` and :math:`d_f` = ``d_fake`` (any shapes, flattened;
    means over the batch):

    * ``"nonsaturating"``: :math:`L_D = \mathbb E[\operatorname{softplus}(-d_r)] +
      \mathbb E[\operatorname{softplus}(d_f)]` (binary cross-entropy),
      :math:`L_G = \mathbb E[\operatorname{softplus}(-d_f)] = -\mathbb E\log\sigma(d_f)`;
    * ``"minimax"``: the same :math:`L_D`, :math:`L_G = -L_D` (zero-sum);
    * ``"wgan"``: :math:`L_D = \mathbb E[d_f] - \mathbb E[d_r]`, :math:`L_G = -L_D`
      (zero-sum; no clipping, no penalty).

    Nothing is detached: these are the game losses (see :class:`MoGGAN`).

    Returns
    -------
    dict
        ``{"generator": L_G, "discriminator": L_D}``.
    """
    d_real, d_fake = d_real.reshape(-1), d_fake.reshape(-1)
    if loss == "wgan":
        l_d = d_fake.mean() - d_real.mean()
        l_g = -l_d
    elif loss in MOG_LOSSES:
        l_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        l_g = -l_d if loss == "minimax" else F.softplus(-d_fake).mean()
    else:
        raise ValueError(f"loss must be one of {MOG_LOSSES}, got {loss!r}")
    return {"generator": l_g, "discriminator": l_d}


def mog_gan_parameter_count(
    hidden: int, depth: int, latent: int = 16, *, batchnorm: bool = False
) -> dict[str, int]:
    r"""Trainable parameters of :func:`mog_gan`'s players, without building them.

    An MLP :math:`a \to h \to \dots \to h \to b` with :math:`d` hidden layers has
    :math:`(a + 1)h + (d - 1)(h + 1)h + (h + 1)b` parameters, plus :math:`2hd` with
    BatchNorm. The generator maps ``latent`` to 2, the discriminator 2 to 1, so the
    total is :math:`(a + 7)h + 2(d - 1)(h^2 + h) + 3` (:math:`+ 4hd` with BatchNorm)
    for :math:`a` = ``latent``.

    Returns
    -------
    dict
        ``{"generator": n_G, "discriminator": n_D}``.
    """

    def count(n_in: int, n_out: int) -> int:
        n = (n_in + 1) * hidden + (depth - 1) * (hidden + 1) * hidden + (hidden + 1) * n_out
        return n + (2 * hidden * depth if batchnorm else 0)

    return {"generator": count(latent, 2), "discriminator": count(2, 1)}


class MoGGAN(TwoPlayerGAN):
    r"""A GAN on a 2-D ring of Gaussians, with its game, sampler and training loop.

    The data distribution is an equal-weight mixture of ``n_modes`` isotropic
    Gaussians with standard deviation ``std`` centred on a circle of radius
    ``radius``: centre :math:`k` is :math:`r(\cos 2\pi k/K, \sin 2\pi k/K)`. The
    generator :math:`G` maps latent noise :math:`z \sim \mathcal N(0, I)` to
    :math:`\mathbb R^2`; the discriminator :math:`D` maps :math:`\mathbb R^2` to a logit.
    With :math:`d_r = D(x)` on data and :math:`d_f = D(G(z))` on samples:

    * ``"nonsaturating"``: :math:`L_D = \mathbb E[\operatorname{softplus}(-d_r)] +
      \mathbb E[\operatorname{softplus}(d_f)]` (binary cross-entropy),
      :math:`L_G = \mathbb E[\operatorname{softplus}(-d_f)] = -\mathbb E\log\sigma(d_f)`;
    * ``"minimax"``: the same :math:`L_D`, :math:`L_G = -L_D` (zero-sum);
    * ``"wgan"``: :math:`L_D = \mathbb E[d_f] - \mathbb E[d_r]`, :math:`L_G = -L_D`
      (zero-sum; the critic is not constrained: no clipping, no penalty).

    With consensus optimisation (``consensus`` :math:`= \gamma > 0`, Mescheder, Nowozin
    and Geiger, 2017) both losses get :math:`\frac{\gamma}{2}\|v\|^2` added, where
    :math:`v` is the field of the losses above; the game's field is then
    :math:`v + \gamma J^\top v`, the one consensus optimisation follows, and its
    Jacobian is what a probe measures (:math:`J + \gamma J^\top J` at a stationary
    point).

    These are the *game* losses: nothing is detached, each is differentiated only with
    respect to its own player's parameters, so the game Jacobian keeps its coupling
    blocks.

    Parameters
    ----------
    generator, discriminator : nn.Module
        ``generator(z)`` of shape ``(B, 2)`` for ``z`` of shape ``(B, latent)``;
        ``discriminator(x)`` of shape ``(B, 1)`` or ``(B,)``.
    centres : torch.Tensor
        Mixture centres, shape ``(n_modes, 2)``, in the modules' dtype and device.
    std : float
        Standard deviation of each mixture component.
    latent : int
        Dimension of the latent noise.
    loss : {"nonsaturating", "minimax", "wgan"}
    consensus : float
        Consensus weight :math:`\gamma \ge 0`.

    Attributes
    ----------
    generator, discriminator : nn.Module
    centres : torch.Tensor
    std : float
    latent : int
    loss : str
    consensus : float
    optimizers : dict
        ``{player: torch.optim.Optimizer}`` of the latest :meth:`train` (empty before).
    game : Game
        Players ``"generator"`` and ``"discriminator"``, losses :meth:`losses`; its
        batch is a dict from :meth:`sample`.
    """

    DEFAULT_LR = 1e-4
    DEFAULT_BATCH_SIZE = 256

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        centres: torch.Tensor,
        std: float,
        latent: int,
        loss: str = "nonsaturating",
        consensus: float = 0.0,
    ) -> None:
        if loss not in MOG_LOSSES:
            raise ValueError(f"loss must be one of {MOG_LOSSES}, got {loss!r}")
        check_weight("consensus", consensus)
        if centres.ndim != 2 or centres.shape[1] != 2:
            raise ValueError(f"centres must have shape (n_modes, 2), got {tuple(centres.shape)}")
        self.centres, self.std, self.latent, self.loss = centres, float(std), int(latent), loss
        self.consensus = float(consensus)
        super().__init__(generator, discriminator)

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Draw a batch of data and latent noise.

        Parameters
        ----------
        batch_size : int
        generator : torch.Generator, optional
            Random source (on the GAN's device); default the global random stream.

        Returns
        -------
        dict
            ``{"real": (batch_size, 2) data, "z": (batch_size, latent) noise}``.
        """
        rng, device, dtype = generator, self.device, self.dtype
        modes = torch.randint(len(self.centres), (batch_size,), generator=rng, device=device)
        noise = torch.randn(batch_size, 2, generator=rng, dtype=dtype, device=device)
        z = torch.randn(batch_size, self.latent, generator=rng, dtype=dtype, device=device)
        return {"real": self.centres[modes] + self.std * noise, "z": z}

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The game losses on ``batch`` (from :meth:`sample`), by :func:`gan_losses`.

        Returns
        -------
        dict
            ``{"generator": L_G, "discriminator": L_D}``, graphs attached.
        """
        d_real = self.discriminator(batch["real"])
        d_fake = self.discriminator(self.generator(batch["z"]))
        return with_consensus(self.game, gan_losses(d_real, d_fake, self.loss), self.consensus)

    def __repr__(self) -> str:
        sizes = self._sizes()
        return (
            f"MoGGAN(loss={self.loss!r}, consensus={self.consensus}, "
            f"modes={len(self.centres)}, latent={self.latent}, "
            f"{sizes}, dtype={self.dtype})"
        )


def mog_gan(
    *,
    hidden: int = 64,
    depth: int = 2,
    latent: int = 16,
    loss: str = "nonsaturating",
    consensus: float = 0.0,
    activation: str = "relu",
    batchnorm: bool = False,
    n_modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> MoGGAN:
    r"""An MLP GAN on a ring of Gaussians (see :class:`MoGGAN`).

    The defaults follow the ring of Metz et al. (2016, *Unrolled GANs*): 8 modes on a
    circle of radius 2 with standard deviation 0.02. *The Numerics of GANs* (Mescheder,
    Nowozin and Geiger, 2017) use 8 modes on the unit circle with standard deviation
    0.01, 16-dimensional latent noise and 4 hidden ReLU layers of 16 units in both
    networks (trained with RMSProp, learning rate 1e-4, batch 512):
    ``mog_gan(hidden=16, depth=4, radius=1.0, std=0.01)``.

    Parameters
    ----------
    hidden : int
        Width of every hidden layer, generator and discriminator.
    depth : int
        Number of hidden layers of each network (>= 1).
    latent : int
        Dimension of the generator's Gaussian input.
    loss : {"nonsaturating", "minimax", "wgan"}
    consensus : float
        Consensus optimisation weight :math:`\gamma \ge 0` (see :class:`MoGGAN`);
        *The Numerics of GANs* use :math:`\gamma = 10`.
    activation : {"relu", "leaky_relu"}
        Hidden activation (LeakyReLU with slope 0.2).
    batchnorm : bool
        BatchNorm after every hidden linear layer of both networks.
    n_modes, radius, std
        The data distribution.
    seed : int
        Seeds the initialisation of both networks; the global random streams are left
        as they were.
    dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    MoGGAN

    Notes
    -----
    Parameter counts (:func:`mog_gan_parameter_count`, ``latent=16``, no BatchNorm):

    ======  =====  =========  =============  =========
    hidden  depth  generator  discriminator  total
    ======  =====  =========  =============  =========
    16      4      1,122      881            2,003
    64      2      5,378      4,417          9,795
    200     3      84,202     81,201         165,403
    220     3      101,422    98,121         199,543
    512     4      797,698    790,017        1,587,715
    576     4      1,008,002  999,361        2,007,363
    ======  =====  =========  =============  =========

    Examples
    --------
    >>> import specdiag as sd
    >>> from specdiag import toys
    >>> gan = toys.mog_gan(hidden=220, depth=3)
    >>> sum(gan.n_parameters.values())
    199543
    >>> history = gan.train(10, seed=0)
    >>> batch = gan.sample(256, torch.Generator().manual_seed(0))
    >>> r = sd.eigs(sd.GameJacobian(gan.game, batch), k=4)
    >>> r.all_converged
    True
    """
    if loss not in MOG_LOSSES:
        raise ValueError(f"loss must be one of {MOG_LOSSES}, got {loss!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if hidden < 1 or depth < 1 or latent < 1 or n_modes < 1:
        raise ValueError(
            f"hidden, depth, latent and n_modes must be positive, got {hidden}, {depth}, "
            f"{latent}, {n_modes}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = mlp(latent, 2, hidden, depth, activation, batchnorm)
        D = mlp(2, 1, hidden, depth, activation, batchnorm)
    G.to(device=device, dtype=dtype)
    D.to(device=device, dtype=dtype)
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    centres = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    centres = centres.to(device=device, dtype=dtype)
    return MoGGAN(G, D, centres=centres, std=std, latent=latent, loss=loss, consensus=consensus)
