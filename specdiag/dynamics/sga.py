r"""Symplectic gradient adjustment (Balduzzi et al., 2018) as an update operator.

Balduzzi, Racanière, Martens, Foerster, Tuyls and Graepel, *The Mechanics of n-Player
Differentiable Games* (ICML 2018), split the game Jacobian :math:`J = S + A` into its
symmetric part :math:`S = (J + J^\top)/2` and antisymmetric part :math:`A = (J -
J^\top)/2`, and follow the adjusted field

.. math:: \xi_\lambda = \xi + \lambda A^\top \xi

instead of the game's field :math:`\xi = v = (\nabla_{x_1} L_1, \dots, \nabla_{x_P}
L_P)` (descent convention). The step :math:`x_{t+1} = x_t - H\xi_\lambda(x_t)`
(:math:`H` = step sizes and preconditioner, as for every update operator) has the
Jacobian

.. math::

    \partial T = I - H\bigl(J + \lambda A^\top J + \lambda\,(\partial A^\top)[\xi]\bigr),

and at a stationary point (:math:`\xi = 0`) the last term vanishes:
:math:`\partial T = I - H(J + \lambda A^\top J)`. For a purely rotational game
(:math:`S = 0`, :math:`A = J`) the adjusted Jacobian is :math:`J + \lambda J^\top J`,
whose eigenvalues :math:`i\mu` of :math:`J` move to :math:`i\mu + \lambda\mu^2`:
the rotation gains a positive real part, and gradient descent converges.

The sign rule ("alignment", Algorithm 1 of the paper) chooses the sign of
:math:`\lambda` from the Hamiltonian :math:`\mathcal H = \frac12\|\xi\|^2`, whose
gradient is :math:`\nabla\mathcal H = J^\top\xi`:

.. math::

    \lambda = \gamma\,\operatorname{sign}\Bigl(\frac1d\,
        \langle \xi, \nabla\mathcal H\rangle\,\langle A^\top\xi, \nabla\mathcal H\rangle
        + \epsilon\Bigr),

with :math:`d` the number of parameters and :math:`\epsilon = 1/10`: the adjustment
points towards the stationary point near a stable one and away from it near an
unstable one.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..game import GameJacobian
from ..validation import non_negative
from .updates import UpdateOperator

__all__ = ["SGAUpdate"]


class SGAUpdate(UpdateOperator):
    r"""Symplectic gradient adjustment: :math:`\partial T = I - H(J + \lambda A^\top J)`.

    :math:`A = (J - J^\top)/2`, so :math:`A^\top w = (J^\top w - J w)/2`; see
    :mod:`specdiag.dynamics.sga` for the method.

    What is linearised. The operator is the exact Jacobian of the SGA step at a
    stationary point. Elsewhere it drops :math:`\lambda(\partial A^\top)[\xi]` (third
    derivatives of the losses applied to :math:`\xi`, which vanish with :math:`\xi`)
    and, with ``align``, freezes the sign of :math:`\lambda` at its value at the point
    where ``jacobian`` was built (the sign is piecewise constant, so its derivative is
    zero away from the surface where it switches). At a stationary point the sign rule
    gives :math:`\operatorname{sign}(\epsilon) = +1`.

    Parameters
    ----------
    jacobian, lr, preconditioner
        See :class:`~specdiag.dynamics.updates.UpdateOperator`.
    gamma : float
        The adjustment's magnitude :math:`|\lambda| \ge 0` (:math:`\lambda = \gamma`
        without ``align``).
    align : bool
        Choose the sign of :math:`\lambda` by the paper's rule from :math:`\xi`, read from
        ``jacobian.field.value`` (the field at the point; two extra products,
        :math:`J\xi` and :math:`J^\top\xi`, once, at construction).
    epsilon : float
        The :math:`\epsilon \ge 0` of the sign rule.

    Attributes
    ----------
    gamma, epsilon : float
    align : bool
    sign : float
        :math:`+1` or :math:`-1` (always :math:`+1` without ``align``).
    weight : float
        :math:`\lambda` = ``sign * gamma``.
    alignment : float or None
        The argument of the sign, :math:`\frac1d\langle\xi, \nabla\mathcal H\rangle
        \langle A^\top\xi, \nabla\mathcal H\rangle + \epsilon` (``None`` without ``align``).

    Notes
    -----
    Three :math:`J` products per product (:math:`Ju, J^\top Ju, JJu` for ``matvec``;
    :math:`Jw, J^\top w, J^\top(\cdot)` for ``rmatvec``), one when :math:`\lambda = 0`.

    Examples
    --------
    On Balduzzi et al.'s four-player game gradient descent diverges and SGA converges:

    >>> J = sd.GameJacobian(toys.four_player_game(seed=0).game)
    >>> round(sd.spectral_radius(sd.update_operator(J, "gd", 0.1)), 4)
    1.0287
    >>> round(sd.spectral_radius(SGAUpdate(J, lr=0.1, gamma=1.0)), 4)
    0.9837
    """

    method = "sga"

    def __init__(
        self,
        jacobian: GameJacobian,
        lr: float | Mapping[str, float],
        gamma: float,
        *,
        align: bool = False,
        epsilon: float = 0.1,
        preconditioner: torch.Tensor | None = None,
    ) -> None:
        super().__init__(jacobian, lr, preconditioner=preconditioner)
        self.gamma = non_negative(gamma, "gamma")
        self.epsilon = non_negative(epsilon, "epsilon")
        self.align = bool(align)
        self.alignment: float | None = None
        self.sign = 1.0
        if self.align:
            self.alignment = self._alignment()
            self.sign = 1.0 if self.alignment >= 0 else -1.0
        self.weight = self.sign * self.gamma

    def _alignment(self) -> float:
        r"""The sign rule's argument (see :attr:`alignment`), from :math:`\xi` at the point."""
        xi = self.jacobian.field.value.detach()
        grad_h = self.jacobian.rmatvec(xi)
        adjustment = (grad_h - self.jacobian.matvec(xi)) / 2  # Aᵀξ
        d = self.game.n
        return float(xi @ grad_h) * float(adjustment @ grad_h) / d + self.epsilon

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        Ju = self.jacobian.matvec(u)
        if self.weight == 0:
            return u - self.step_sizes * Ju
        adjusted = (self.jacobian.rmatvec(Ju) - self.jacobian.matvec(Ju)) / 2  # AᵀJu
        return u - self.step_sizes * (Ju + self.weight * adjusted)

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        w = self.step_sizes * u
        if self.weight == 0:
            return u - self.jacobian.rmatvec(w)
        Aw = (self.jacobian.matvec(w) - self.jacobian.rmatvec(w)) / 2
        return u - self.jacobian.rmatvec(w + self.weight * Aw)
