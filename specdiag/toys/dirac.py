"""The Dirac-GAN of Mescheder, Geiger and Nowozin (2018), with R1, consensus and instance noise."""

from __future__ import annotations

import cmath
import math
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..game import Game
from .common import check_weight, with_consensus

__all__ = ["DiracGAN", "dirac_gan", "dirac_gan_eigenvalues", "DIRAC_LOSSES"]


#: The Dirac-GAN objectives and their :math:`f'(0)`.
DIRAC_LOSSES: dict[str, float] = {"standard": 0.5, "wgan": 1.0}

#: :math:`f''(0)` of the objectives: :math:`-\sigma(0)(1 - \sigma(0)) = -1/4` and 0.
_CURVATURE: dict[str, float] = {"standard": -0.25, "wgan": 0.0}

#: Gauss--Hermite nodes for the expectations over instance noise (exact for polynomials
#: of degree up to 127; for the standard loss the error is below 1e-15 for
#: :math:`|\psi|\sigma \lesssim 3`).
QUADRATURE_NODES = 64


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

    Instance noise with standard deviation :math:`\sigma` (Mescheder et al. 2018,
    section 3) perturbs both the data point and the generated point by
    :math:`\epsilon \sim \mathcal N(0, \sigma^2)`; the objective becomes

    .. math::

        L(\theta, \psi) = \mathbb E_\epsilon\, f(\psi(\theta + \epsilon))
            + \mathbb E_\epsilon\, f(-\psi\epsilon),

    (the data term :math:`f(-D(x))` at :math:`x = \epsilon`). The expectations are
    computed deterministically by Gauss--Hermite quadrature with
    :data:`QUADRATURE_NODES` nodes (``numpy.polynomial.hermite_e.hermegauss``, weight
    :math:`e^{-x^2/2}`): :math:`\mathbb E\,g(\epsilon) \approx \sum_k w_k\,
    g(\sigma x_k) / \sqrt{2\pi}`, so the game stays deterministic and differentiable,
    and the quadrature is exact for the second moments that make :math:`J` at the
    equilibrium. The R1 term is unchanged (:math:`\nabla_x D = \psi` everywhere).

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
    instance_noise : float
        Standard deviation :math:`\sigma \ge 0` of the instance noise.

    Attributes
    ----------
    theta, psi : torch.Tensor
    loss : str
    r1, consensus, instance_noise : float
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
        instance_noise: float = 0.0,
    ) -> None:
        _check_dirac_settings(loss, r1, consensus, instance_noise)
        if theta.numel() != 1 or psi.numel() != 1:
            raise ValueError(
                f"theta and psi must be one-element tensors, got shapes {tuple(theta.shape)} "
                f"and {tuple(psi.shape)}"
            )
        self.theta, self.psi = theta, psi
        self.loss, self.r1, self.consensus = loss, float(r1), float(consensus)
        self.instance_noise = float(instance_noise)
        nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
        self._noise = torch.tensor(self.instance_noise * nodes, dtype=theta.dtype).to(theta.device)
        self._weights = torch.tensor(weights / math.sqrt(2 * math.pi), dtype=theta.dtype).to(
            theta.device
        )
        self.game = Game({"generator": [theta], "discriminator": [psi]}, self.losses)

    def _f(self, t: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(t) if self.loss == "standard" else t

    def losses(self, batch: Any = None) -> dict[str, torch.Tensor]:
        r""":math:`L_G` and :math:`L_D`, with the consensus term if ``consensus > 0``.

        ``batch`` is ignored. Needs gradient mode (the consensus term differentiates
        the losses inside).
        """
        theta, psi = self.theta.reshape(()), self.psi.reshape(())
        if self.instance_noise == 0:
            value = self._f(psi * theta) + self._f(torch.zeros_like(theta))
        else:
            eps, w = self._noise, self._weights
            value = w @ self._f(psi * (theta + eps)) + w @ self._f(-psi * eps)
        l_g = value
        l_d = -value + 0.5 * self.r1 * psi**2
        losses = {"generator": l_g, "discriminator": l_d}
        return with_consensus(self.game, losses, self.consensus)

    def equilibrium_eigenvalues(self) -> tuple[complex, complex]:
        r"""The eigenvalues of :math:`J` at :math:`\theta = \psi = 0` (closed form)."""
        return dirac_gan_eigenvalues(
            self.loss, r1=self.r1, consensus=self.consensus, instance_noise=self.instance_noise
        )

    def __repr__(self) -> str:
        return (
            f"DiracGAN(loss={self.loss!r}, r1={self.r1}, consensus={self.consensus}, "
            f"instance_noise={self.instance_noise}, theta={float(self.theta.detach()):.4g}, "
            f"psi={float(self.psi.detach()):.4g})"
        )


def _check_dirac_settings(loss: str, r1: float, consensus: float, instance_noise: float) -> None:
    if loss not in DIRAC_LOSSES:
        raise ValueError(f"loss must be one of {sorted(DIRAC_LOSSES)}, got {loss!r}")
    check_weight("r1", r1)
    check_weight("consensus", consensus)
    check_weight("instance_noise", instance_noise)


def dirac_gan(
    *,
    loss: str = "standard",
    theta: float = 0.0,
    psi: float = 0.0,
    r1: float = 0.0,
    consensus: float = 0.0,
    instance_noise: float = 0.0,
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
    instance_noise : float
        Standard deviation :math:`\sigma \ge 0` of Gaussian instance noise on the data
        and the generated point (expectations by Gauss--Hermite quadrature).
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
    >>> sd.eigs(sd.GameJacobian(toy.game), k=2).eigenvalues.imag  # ±i f'(0): a pure rotation
    tensor([ 1., -1.], dtype=torch.float64)
    """
    _check_dirac_settings(loss, r1, consensus, instance_noise)
    theta_t = torch.tensor(float(theta), dtype=dtype, device=device, requires_grad=True)
    psi_t = torch.tensor(float(psi), dtype=dtype, device=device, requires_grad=True)
    return DiracGAN(
        theta_t, psi_t, loss=loss, r1=r1, consensus=consensus, instance_noise=instance_noise
    )


def dirac_gan_eigenvalues(
    loss: str, r1: float = 0.0, consensus: float = 0.0, instance_noise: float = 0.0
) -> tuple[complex, complex]:
    r"""The eigenvalues of the Dirac-GAN's Jacobian at its equilibrium, in closed form.

    Valid at :math:`\theta = \psi = 0` only (descent convention). With
    :math:`a = f'(0)`, :math:`b = f''(0)`, :math:`\sigma` the instance noise,
    :math:`r = \gamma_{R1} - 2b\sigma^2` and :math:`c = \gamma_c`, the Jacobian there is

    .. math::

        M = J + c\,J^\top J, \qquad J = \begin{pmatrix} 0 & a \\ -a & r \end{pmatrix},

    with trace :math:`T = r + c(2a^2 + r^2)` and determinant
    :math:`\Delta = a^2 + c\,a^2 r + c^2 a^4`; its eigenvalues are
    :math:`T/2 \pm \sqrt{T^2/4 - \Delta}`.

    Derivation of :math:`J`. With :math:`L = \mathbb E f(\psi(\theta + \epsilon)) +
    \mathbb E f(-\psi\epsilon)`, :math:`\epsilon \sim \mathcal N(0, \sigma^2)`, the
    field is :math:`v = (\partial_\theta L,\; -\partial_\psi L + \gamma_{R1}\psi)` and

    .. math::

        \partial_\theta^2 L = \mathbb E f''(\cdot)\,\psi^2 \to 0, \qquad
        \partial_\theta\partial_\psi L
            = \mathbb E[f'(\cdot) + f''(\cdot)\,\psi(\theta + \epsilon)] \to a,

        \partial_\psi^2 L = \mathbb E f''(\psi(\theta + \epsilon))(\theta + \epsilon)^2
            + \mathbb E f''(-\psi\epsilon)\,\epsilon^2 \to 2b\sigma^2

    at :math:`(0, 0)`, so :math:`J_{11} = 0`, :math:`J_{12} = a`, :math:`J_{21} = -a`
    and :math:`J_{22} = -2b\sigma^2 + \gamma_{R1}`. The field vanishes there
    (:math:`\mathbb E\epsilon = 0`), so consensus's extra term
    :math:`c\,(\partial J^\top)[v]` vanishes too and :math:`M = J + cJ^\top J` covers
    every combination of the three terms. Special cases:

    * plain: :math:`\pm i a`;
    * R1 only: :math:`r/2 \pm \sqrt{r^2/4 - a^2}`, a defective double eigenvalue
      :math:`r/2` at :math:`r = 2a` (a Jordan block: numerical solvers find it only to
      about :math:`\sqrt{\epsilon}`);
    * consensus only: :math:`c\,a^2 \pm i a`;
    * instance noise only: :math:`-b\sigma^2 \pm \sqrt{b^2\sigma^4 - a^2}`, minus the
      ascent-convention eigenvalues :math:`b\sigma^2 \pm \sqrt{b^2\sigma^4 - a^2}` of
      Mescheder et al. (2018). Standard loss (:math:`a = 1/2, b = -1/4`):
      :math:`\sigma^2/4 \pm \sqrt{\sigma^4/16 - 1/4}`, a defective double eigenvalue
      :math:`1/2` at :math:`\sigma = \sqrt 2`; WGAN (:math:`b = 0`): :math:`\pm i`
      whatever :math:`\sigma`.

    Parameters
    ----------
    loss : {"standard", "wgan"}
        :math:`a = 1/2, b = -1/4` or :math:`a = 1, b = 0`.
    r1, consensus : float
        :math:`\gamma_{R1}` and :math:`\gamma_c`.
    instance_noise : float
        :math:`\sigma \ge 0`.

    Returns
    -------
    tuple of complex
        :math:`(T/2 + s, T/2 - s)` with :math:`s = \sqrt{T^2/4 - \Delta}` (principal
        root): the one with positive imaginary part first for a complex pair, the
        larger first for real eigenvalues.
    """
    _check_dirac_settings(loss, r1, consensus, instance_noise)
    a, c = DIRAC_LOSSES[loss], float(consensus)
    r = float(r1) - 2 * _CURVATURE[loss] * float(instance_noise) ** 2
    trace = r + c * (2 * a * a + r * r)
    det = a * a + c * a * a * r + c * c * a**4
    s = cmath.sqrt(trace * trace / 4 - det)
    return complex(trace / 2 + s), complex(trace / 2 - s)
