r"""Small reference games: a bilinear game, the Dirac-GAN and a mixture-of-Gaussians GAN.

Each toy is an object with a :class:`~specdiag.Game` in its ``game`` attribute and a
``losses(batch)`` method (the game's loss closure), built by a factory function:

* :func:`bilinear_game` -> :class:`BilinearGame`: :math:`\min_x \max_y x^\top A y`;
  the spectrum of :math:`J` is :math:`\pm i\sigma_k(A)` and :math:`|n - m|` zeros at
  every point (:meth:`BilinearGame.eigenvalues`).
* :func:`dirac_gan` -> :class:`DiracGAN`: the two-parameter Dirac-GAN, optionally with
  an R1 penalty or consensus optimisation; closed-form spectrum at the equilibrium
  (:func:`dirac_gan_eigenvalues`).
* :func:`mog_gan` -> :class:`MoGGAN`: an MLP GAN on a ring of 2-D Gaussians, from a
  few thousand to millions of parameters, with a sampler and a training loop; no
  known spectrum, a realistic game to probe.

Sign convention: descent. Player :math:`i` minimises :math:`L_i`, the vector field is
:math:`v = (\nabla_{x_1} L_1, \dots, \nabla_{x_P} L_P)` and the game Jacobian is
:math:`J = \partial v / \partial x`; gradient flow is locally stable where every
eigenvalue of :math:`J` has positive real part. (Mescheder et al. use the ascent
convention: their Jacobian is :math:`-J`.)

Examples
--------
>>> import specdiag as sd
>>> from specdiag import toys
>>> toy = toys.dirac_gan(loss="standard", r1=0.3)
>>> sd.eigs(sd.GameJacobian(toy.game), k=2).eigenvalues   # doctest: +SKIP
tensor([0.1500+0.4770j, 0.1500-0.4770j], dtype=torch.complex128)
>>> toys.dirac_gan_eigenvalues("standard", r1=0.3)        # doctest: +SKIP
((0.15+0.476969600708473j), (0.15-0.476969600708473j))
"""

from __future__ import annotations

import cmath
import math
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from .game import Game

__all__ = [
    "BilinearGame",
    "bilinear_game",
    "DiracGAN",
    "dirac_gan",
    "dirac_gan_eigenvalues",
    "DIRAC_LOSSES",
    "MoGGAN",
    "mog_gan",
    "mog_gan_parameter_count",
    "MOG_LOSSES",
]


def _with_consensus(game: Game, losses: dict[str, torch.Tensor], gamma: float) -> dict[str, torch.Tensor]:
    r"""Add consensus optimisation's :math:`\frac{\gamma}{2}\|v\|^2` to every player's loss.

    :math:`v = (\nabla_{x_1} L_1, \dots, \nabla_{x_P} L_P)` is differentiated here with
    ``create_graph=True``, so the field of the new losses is :math:`v + \gamma J^\top v`
    (Mescheder, Nowozin and Geiger, 2017). ``gamma = 0`` returns ``losses`` unchanged.
    """
    if gamma == 0:
        return losses
    squared = sum(
        g.pow(2).sum()
        for p in game.player_names
        for g in torch.autograd.grad(losses[p], list(game.parameters(p)), create_graph=True)
    )
    return {p: loss + 0.5 * gamma * squared for p, loss in losses.items()}


# ---------------------------------------------------------------------- bilinear game
class BilinearGame:
    r"""The bilinear zero-sum game :math:`\min_x \max_y\, x^\top A y`.

    Players ``"x"`` (:math:`n` parameters) and ``"y"`` (:math:`m`) with
    :math:`L_x = x^\top A y` and :math:`L_y = -x^\top A y`, so

    .. math::

        v = \begin{pmatrix} A y \\ -A^\top x \end{pmatrix}, \qquad
        J = \begin{pmatrix} 0 & A \\ -A^\top & 0 \end{pmatrix}.

    :math:`J` is skew-symmetric and does not depend on the point: its eigenvalues are
    :math:`\pm i\sigma_k(A)` for the :math:`\min(n, m)` singular values of :math:`A`,
    plus :math:`|n - m|` zeros. Gradient flow circles the equilibrium forever.

    Parameters
    ----------
    A : torch.Tensor
        Shape ``(n, m)``.
    x, y : torch.Tensor
        The players' parameters, shapes ``(n,)`` and ``(m,)``, ``requires_grad=True``,
        same dtype and device as ``A``.

    Attributes
    ----------
    A, x, y : torch.Tensor
    game : Game
        Players ``"x"`` and ``"y"``; its loss closure ignores the batch (pass ``None``).
    """

    def __init__(self, A: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        if A.ndim != 2 or x.shape != (A.shape[0],) or y.shape != (A.shape[1],):
            raise ValueError(
                f"A must have shape (n, m) with x of shape (n,) and y of shape (m,); got A "
                f"{tuple(A.shape)}, x {tuple(x.shape)}, y {tuple(y.shape)}"
            )
        self.A, self.x, self.y = A, x, y
        self.game = Game({"x": [x], "y": [y]}, self.losses)

    def losses(self, batch: Any = None) -> dict[str, torch.Tensor]:
        r""":math:`L_x = x^\top A y`, :math:`L_y = -x^\top A y` (``batch`` is ignored)."""
        value = self.x @ self.A @ self.y
        return {"x": value, "y": -value}

    def eigenvalues(self) -> torch.Tensor:
        r"""All :math:`n + m` eigenvalues of :math:`J`, exactly (from the SVD of :math:`A`).

        Returns
        -------
        torch.Tensor
            ``complex128``, shape ``(n + m,)``, on the CPU: :math:`+i\sigma_1,
            -i\sigma_1, +i\sigma_2, \dots` by decreasing singular value, then the
            :math:`|n - m|` zeros.
        """
        sigma = torch.linalg.svdvals(self.A.detach().to("cpu", torch.float64))
        pairs = torch.stack([1j * sigma, -1j * sigma], dim=1).reshape(-1)
        zeros = torch.zeros(abs(self.A.shape[0] - self.A.shape[1]), dtype=torch.complex128)
        return torch.cat([pairs.to(torch.complex128), zeros])

    def __repr__(self) -> str:
        n, m = self.A.shape
        return f"BilinearGame(n={n}, m={m}, dtype={self.A.dtype})"


def bilinear_game(
    A: torch.Tensor | None = None,
    *,
    n: int = 10,
    m: int = 10,
    init: str = "random",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> BilinearGame:
    r"""The bilinear game :math:`\min_x \max_y\, x^\top A y` (see :class:`BilinearGame`).

    Parameters
    ----------
    A : torch.Tensor, optional
        The coupling matrix, shape ``(n, m)`` (it sets ``n`` and ``m``; it is cast to
        ``dtype`` and ``device``). Default: standard normal entries drawn from ``seed``.
    n, m : int
        Sizes of the players when ``A`` is not given.
    init : {"random", "zero"}
        Start point: standard normal :math:`x, y` drawn from ``seed``, or the
        equilibrium :math:`x = y = 0`. :math:`J` is the same at every point.
    seed : int
        Seed of a private random generator (the global random streams are not used).
    dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    BilinearGame
        ``.game`` is the :class:`~specdiag.Game`; ``.A`` the matrix used;
        ``.eigenvalues()`` the exact spectrum of :math:`J`.

    Examples
    --------
    >>> import torch, specdiag as sd
    >>> from specdiag import toys
    >>> toy = toys.bilinear_game(n=30, m=20)
    >>> r = sd.eigs(sd.GameJacobian(toy.game), k=4, tol=1e-8)
    >>> bool(torch.allclose(r.eigenvalues, toy.eigenvalues()[:4], atol=1e-6))
    True
    """
    if init not in ("random", "zero"):
        raise ValueError(f"init must be 'random' or 'zero', got {init!r}")
    rng = torch.Generator().manual_seed(seed)
    if A is None:
        if n < 1 or m < 1:
            raise ValueError(f"n and m must be positive, got n={n}, m={m}")
        A = torch.randn(n, m, generator=rng, dtype=torch.float64)
    elif not isinstance(A, torch.Tensor) or A.ndim != 2:
        raise ValueError("A must be a 2-D torch.Tensor of shape (n, m)")
    A = A.detach().to(device=device, dtype=dtype)
    n, m = A.shape
    if init == "random":
        x = torch.randn(n, generator=rng, dtype=torch.float64)
        y = torch.randn(m, generator=rng, dtype=torch.float64)
    else:
        x, y = torch.zeros(n), torch.zeros(m)
    x = x.to(device=device, dtype=dtype).requires_grad_()
    y = y.to(device=device, dtype=dtype).requires_grad_()
    return BilinearGame(A, x, y)


# ---------------------------------------------------------------------- Dirac-GAN
#: The Dirac-GAN objectives and their :math:`f'(0)`.
DIRAC_LOSSES: dict[str, float] = {"standard": 0.5, "wgan": 1.0}


class DiracGAN:
    r"""The Dirac-GAN of Mescheder, Geiger and Nowozin (2018).

    *Which training methods for GANs actually converge?* (ICML 2018). The data is a
    point mass at 0; the generator, with one parameter :math:`\theta`, generates the
    point :math:`\theta`; the discriminator is linear, :math:`D(x) = \psi x`. With

    .. math::

        L(\theta, \psi) = f(\psi\theta) + f(0), \qquad
        f(t) = -\log(1 + e^{-t}) \;\text{(standard, } f'(0) = \tfrac12\text{)}
        \quad\text{or}\quad f(t) = t \;\text{(WGAN, } f'(0) = 1\text{)},

    the discriminator maximises :math:`L` and the generator minimises it:

    .. math::

        L_G = L, \qquad L_D = -L + \frac{\gamma_{R1}}{2}\,\psi^2,

    where the second term is the R1 gradient penalty at the data point,
    :math:`\frac{\gamma_{R1}}{2}\|\nabla_x D(x)\|^2 = \frac{\gamma_{R1}}{2}\psi^2`.
    The vector field is :math:`v = (f'(\psi\theta)\,\psi,\; -f'(\psi\theta)\,\theta +
    \gamma_{R1}\psi)` and the unique equilibrium is :math:`\theta = \psi = 0`, where

    .. math:: J = \begin{pmatrix} 0 & f'(0) \\ -f'(0) & \gamma_{R1} \end{pmatrix}.

    Consensus optimisation with weight :math:`\gamma_c` (Mescheder, Nowozin and Geiger,
    2017) adds :math:`\frac{\gamma_c}{2}\|v\|^2` to both losses, where :math:`v` is the
    field above, computed inside the loss closure by differentiating with
    ``create_graph=True``. The field becomes :math:`v + \gamma_c J^\top v`, whose
    Jacobian at the equilibrium (where :math:`v = 0`) is :math:`J + \gamma_c J^\top J`.
    :func:`dirac_gan_eigenvalues` gives the eigenvalues there.

    Parameters
    ----------
    theta, psi : torch.Tensor
        The generator's and the discriminator's parameter: 0-dim tensors with
        ``requires_grad=True``, same dtype and device.
    loss : {"standard", "wgan"}
    r1 : float
        R1 penalty weight :math:`\gamma_{R1} \ge 0`.
    consensus : float
        Consensus weight :math:`\gamma_c \ge 0`.

    Attributes
    ----------
    theta, psi : torch.Tensor
    loss : str
    r1, consensus : float
    game : Game
        Players ``"generator"`` (:math:`\theta`) and ``"discriminator"``
        (:math:`\psi`); its loss closure ignores the batch (pass ``None``).
    """

    def __init__(
        self,
        theta: torch.Tensor,
        psi: torch.Tensor,
        *,
        loss: str = "standard",
        r1: float = 0.0,
        consensus: float = 0.0,
    ) -> None:
        _check_dirac_settings(loss, r1, consensus)
        if theta.numel() != 1 or psi.numel() != 1:
            raise ValueError(
                f"theta and psi must be one-element tensors, got shapes {tuple(theta.shape)} "
                f"and {tuple(psi.shape)}"
            )
        self.theta, self.psi = theta, psi
        self.loss, self.r1, self.consensus = loss, float(r1), float(consensus)
        self.game = Game({"generator": [theta], "discriminator": [psi]}, self.losses)

    def _f(self, t: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(t) if self.loss == "standard" else t

    def losses(self, batch: Any = None) -> dict[str, torch.Tensor]:
        r""":math:`L_G` and :math:`L_D`, with the consensus term if ``consensus > 0``.

        ``batch`` is ignored. Needs gradient mode (the consensus term differentiates
        the losses inside).
        """
        theta, psi = self.theta.reshape(()), self.psi.reshape(())
        value = self._f(psi * theta) + self._f(torch.zeros_like(theta))
        l_g = value
        l_d = -value + 0.5 * self.r1 * psi**2
        losses = {"generator": l_g, "discriminator": l_d}
        return _with_consensus(self.game, losses, self.consensus)

    def equilibrium_eigenvalues(self) -> tuple[complex, complex]:
        """The eigenvalues of :math:`J` at :math:`\\theta = \\psi = 0` (see :func:`dirac_gan_eigenvalues`)."""
        return dirac_gan_eigenvalues(self.loss, r1=self.r1, consensus=self.consensus)

    def __repr__(self) -> str:
        return (
            f"DiracGAN(loss={self.loss!r}, r1={self.r1}, consensus={self.consensus}, "
            f"theta={float(self.theta):.4g}, psi={float(self.psi):.4g})"
        )


def _check_dirac_settings(loss: str, r1: float, consensus: float) -> None:
    if loss not in DIRAC_LOSSES:
        raise ValueError(f"loss must be one of {sorted(DIRAC_LOSSES)}, got {loss!r}")
    _check_weight("r1", r1)
    _check_weight("consensus", consensus)


def _check_weight(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def dirac_gan(
    *,
    loss: str = "standard",
    theta: float = 0.0,
    psi: float = 0.0,
    r1: float = 0.0,
    consensus: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> DiracGAN:
    r"""The Dirac-GAN (see :class:`DiracGAN`) at the point :math:`(\theta, \psi)`.

    Parameters
    ----------
    loss : {"standard", "wgan"}
        :math:`f(t) = -\log(1 + e^{-t})` or :math:`f(t) = t`.
    theta, psi : float
        Start point; the equilibrium is :math:`(0, 0)`.
    r1 : float
        R1 gradient-penalty weight on the discriminator.
    consensus : float
        Consensus-optimisation weight on both players.
    dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    DiracGAN
        ``.game`` is the 2-parameter :class:`~specdiag.Game` (players ``"generator"``
        and ``"discriminator"``, 0-dim parameters).

    Examples
    --------
    >>> import specdiag as sd
    >>> from specdiag import toys
    >>> toy = toys.dirac_gan(loss="wgan")
    >>> sd.eigs(sd.GameJacobian(toy.game), k=2).eigenvalues  # doctest: +SKIP
    tensor([0.+1.j, 0.-1.j], dtype=torch.complex128)
    """
    _check_dirac_settings(loss, r1, consensus)
    theta_t = torch.tensor(float(theta), dtype=dtype, device=device, requires_grad=True)
    psi_t = torch.tensor(float(psi), dtype=dtype, device=device, requires_grad=True)
    return DiracGAN(theta_t, psi_t, loss=loss, r1=r1, consensus=consensus)


def dirac_gan_eigenvalues(
    loss: str, r1: float = 0.0, consensus: float = 0.0
) -> tuple[complex, complex]:
    r"""The eigenvalues of the Dirac-GAN's Jacobian at its equilibrium, in closed form.

    Valid at :math:`\theta = \psi = 0` only. With :math:`a = f'(0)`, :math:`r =
    \gamma_{R1}` and :math:`c = \gamma_c`, the Jacobian there is

    .. math::

        M = J + c\,J^\top J, \qquad J = \begin{pmatrix} 0 & a \\ -a & r \end{pmatrix},

    with trace :math:`T = r + c(2a^2 + r^2)` and determinant
    :math:`\Delta = a^2 + c\,a^2 r + c^2 a^4`; its eigenvalues are
    :math:`T/2 \pm \sqrt{T^2/4 - \Delta}`. Special cases:

    * plain: :math:`\pm i a`;
    * R1 only: :math:`r/2 \pm \sqrt{r^2/4 - a^2}`, a defective double eigenvalue
      :math:`r/2` at :math:`r = 2a` (a Jordan block: numerical solvers find it only to
      about :math:`\sqrt{\epsilon}`);
    * consensus only: :math:`c\,a^2 \pm i a`.

    Parameters
    ----------
    loss : {"standard", "wgan"}
        :math:`a = 1/2` or :math:`a = 1`.
    r1, consensus : float
        :math:`\gamma_{R1}` and :math:`\gamma_c`.

    Returns
    -------
    tuple of complex
        :math:`(T/2 + s, T/2 - s)` with :math:`s = \sqrt{T^2/4 - \Delta}` (principal
        root): the one with positive imaginary part first for a complex pair, the
        larger first for real eigenvalues.
    """
    _check_dirac_settings(loss, r1, consensus)
    a, r, c = DIRAC_LOSSES[loss], float(r1), float(consensus)
    trace = r + c * (2 * a * a + r * r)
    det = a * a + c * a * a * r + c * c * a**4
    s = cmath.sqrt(trace * trace / 4 - det)
    return complex(trace / 2 + s), complex(trace / 2 - s)


# ---------------------------------------------------------------------- MoG GAN
#: The mixture-of-Gaussians GAN objectives.
MOG_LOSSES = ("nonsaturating", "minimax", "wgan")
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}
_OPTIMIZERS = ("adam", "sgd", "rmsprop")


def _mlp(n_in: int, n_out: int, hidden: int, depth: int, activation: str, batchnorm: bool) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden``: Linear [BatchNorm] activation, then Linear."""
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers.append(nn.Linear(width, hidden))
        if batchnorm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(_ACTIVATIONS[activation]())
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


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


class MoGGAN:
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
        _check_weight("consensus", consensus)
        if centres.ndim != 2 or centres.shape[1] != 2:
            raise ValueError(f"centres must have shape (n_modes, 2), got {tuple(centres.shape)}")
        self.generator, self.discriminator = generator, discriminator
        self.centres, self.std, self.latent, self.loss = centres, float(std), int(latent), loss
        self.consensus = float(consensus)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.game = Game({"generator": generator, "discriminator": discriminator}, self.losses)

    @property
    def n_parameters(self) -> dict[str, int]:
        """Trainable parameters per player, ``{"generator": n_G, "discriminator": n_D}``."""
        return self.game.sizes

    @property
    def dtype(self) -> torch.dtype:
        return self.game.dtype

    @property
    def device(self) -> torch.device:
        return self.game.device

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
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
        kw = dict(generator=generator, device=self.device)
        modes = torch.randint(len(self.centres), (batch_size,), **kw)
        noise = torch.randn(batch_size, 2, dtype=self.dtype, **kw)
        z = torch.randn(batch_size, self.latent, dtype=self.dtype, **kw)
        return {"real": self.centres[modes] + self.std * noise, "z": z}

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The game losses on ``batch`` (from :meth:`sample`): ``{"generator", "discriminator"}``."""
        d_real = self.discriminator(batch["real"]).reshape(-1)
        d_fake = self.discriminator(self.generator(batch["z"])).reshape(-1)
        if self.loss == "wgan":
            l_d = d_fake.mean() - d_real.mean()
            l_g = -l_d
        else:
            l_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            l_g = -l_d if self.loss == "minimax" else F.softplus(-d_fake).mean()
        return _with_consensus(self.game, {"generator": l_g, "discriminator": l_d}, self.consensus)

    def train(
        self,
        steps: int,
        *,
        lr: float = 1e-4,
        batch_size: int = 256,
        optimizer: str = "adam",
        betas: tuple[float, float] = (0.5, 0.999),
        momentum: float = 0.0,
        seed: int = 0,
        callback: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        r"""Train both players by simultaneous updates.

        At every step one batch is drawn, both players' gradients
        :math:`\nabla_{x_i} L_i` are taken at the same point (the vector field
        :math:`v`), then each player's optimiser steps. With ``optimizer="sgd"`` and no
        momentum this is exactly :math:`x \leftarrow x - \eta\, v(x)`.

        Parameters
        ----------
        steps : int
            Number of steps.
        lr : float
            Learning rate of both optimisers.
        batch_size : int
        optimizer : {"adam", "sgd", "rmsprop"}
            One optimiser per player, created afresh by each call and kept in
            :attr:`optimizers` (``{player: optimizer}``), e.g. for
            ``UpdateRule(..., optimizers=lambda: gan.optimizers)``.
        betas : tuple of float
            Adam's :math:`(\beta_1, \beta_2)`.
        momentum : float
            Momentum of SGD and RMSprop.
        seed : int
            Seeds the private generator that draws the batches; the global random
            streams are neither used nor changed. Same seed and same start, same
            parameters afterwards (bitwise, on the same machine and thread count).
        callback : callable, optional
            ``callback(step, batch)`` after each step's update (e.g. a
            ``SpectrumMonitor.step``).

        Returns
        -------
        dict
            ``{"generator": losses, "discriminator": losses}``, ``float64`` tensors of
            shape ``(steps,)``: each player's loss before its step's update.
        """
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
        if steps < 0 or batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {steps}, {batch_size}")
        players = self.game.player_names
        params = {p: list(self.game.parameters(p)) for p in players}
        if optimizer == "adam":
            opts = {p: torch.optim.Adam(params[p], lr=lr, betas=betas) for p in players}
        elif optimizer == "sgd":
            opts = {p: torch.optim.SGD(params[p], lr=lr, momentum=momentum) for p in players}
        else:
            opts = {p: torch.optim.RMSprop(params[p], lr=lr, momentum=momentum) for p in players}
        self.optimizers = opts
        rng = torch.Generator(device=self.device).manual_seed(seed)
        history = {p: torch.empty(steps, dtype=torch.float64) for p in players}
        for step in range(steps):
            batch = self.sample(batch_size, rng)
            losses = self.losses(batch)
            grads = {
                p: torch.autograd.grad(losses[p], params[p], retain_graph=True) for p in players
            }
            for p in players:
                for t, g in zip(params[p], grads[p]):
                    t.grad = g
                opts[p].step()
                history[p][step] = losses[p].item()
            if callback is not None:
                callback(step, batch)
        for p in players:
            opts[p].zero_grad(set_to_none=True)
        return history

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.n_parameters.items())
        return (
            f"MoGGAN(loss={self.loss!r}, consensus={self.consensus}, modes={len(self.centres)}, latent={self.latent}, "
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
    >>> history = gan.train(10, seed=0)                  # doctest: +SKIP
    >>> batch = gan.sample(256)                          # doctest: +SKIP
    >>> r = sd.eigs(sd.GameJacobian(gan.game, batch), k=10)   # doctest: +SKIP
    """
    if loss not in MOG_LOSSES:
        raise ValueError(f"loss must be one of {MOG_LOSSES}, got {loss!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    if hidden < 1 or depth < 1 or latent < 1 or n_modes < 1:
        raise ValueError(
            f"hidden, depth, latent and n_modes must be positive, got {hidden}, {depth}, "
            f"{latent}, {n_modes}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = _mlp(latent, 2, hidden, depth, activation, batchnorm)
        D = _mlp(2, 1, hidden, depth, activation, batchnorm)
    G.to(device=device, dtype=dtype)
    D.to(device=device, dtype=dtype)
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    centres = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    centres = centres.to(device=device, dtype=dtype)
    return MoGGAN(G, D, centres=centres, std=std, latent=latent, loss=loss, consensus=consensus)
