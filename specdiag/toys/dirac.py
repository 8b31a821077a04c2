"""The Dirac-GAN of Mescheder, Geiger and Nowozin (2018), with R1 and consensus terms."""

from __future__ import annotations

import cmath
from typing import Any

import torch
from torch.nn import functional as F

from ..game import Game
from .common import check_weight, with_consensus

__all__ = ["DiracGAN", "dirac_gan", "dirac_gan_eigenvalues", "DIRAC_LOSSES"]


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
        return with_consensus(self.game, losses, self.consensus)

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
    check_weight("r1", r1)
    check_weight("consensus", consensus)


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
