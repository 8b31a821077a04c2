r"""The optimisers' update methods: one table for the dynamics, the stability maps and plots.

Each :class:`UpdateMethod` names the matrix-free operator class of
:mod:`specdiag.dynamics` that builds its update Jacobian :math:`\partial T`, the
parameters it takes (momentum :math:`\beta`, a weight :math:`\gamma`), whether it acts
on the augmented state :math:`(x_t, x_{t-1})` (its operator is :math:`2n \times 2n`),
whether the players move one after the other, and, when every player uses one step
size and nothing preconditions it, the closed form of its update eigenvalues.

Closed forms are written as shifts :math:`\nu = \mu - 1` of the update eigenvalues
:math:`\mu` of :math:`z = \eta\lambda` (descent convention), which keeps
:math:`|\mu|^2 - 1 = 2\operatorname{Re}\nu + |\nu|^2` accurate when :math:`\mu \approx 1`
(small step sizes), where :math:`|\mu| - 1` itself would be lost to round-off.
Substituting :math:`\mu = 1 + \nu` in the quadratics of :mod:`specdiag.stability` gives
:math:`\nu^2 + (1 + 2z)\nu + z` (optimistic) and :math:`\nu^2 + (1 - \beta + z)\nu + z`
(momentum).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["UpdateMethod", "UPDATE_METHODS", "CLOSED_FORM_METHODS", "update_method"]

Shifts = Callable[[np.ndarray, float], np.ndarray]


def quadratic_roots(b: np.ndarray, c: Any) -> np.ndarray:
    r"""Both roots of :math:`\mu^2 + b\mu + c`, stacked on a new last axis.

    The larger root comes from :math:`q = -(b + s)/2` with the sign of
    :math:`s = \sqrt{b^2 - 4c}` that avoids cancellation, the other from :math:`c/q`.
    """
    s = np.sqrt(b * b - 4 * c + 0j)
    s = np.where((np.conj(b) * s).real < 0, -s, s)
    q = -(b + s) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        other = np.where(q == 0, 0, np.broadcast_to(c, q.shape) / np.where(q == 0, 1, q))
    return np.stack([q, other], axis=-1)


@dataclass(frozen=True)
class UpdateMethod:
    r"""One update method.

    Attributes
    ----------
    name : str
        Its name in :func:`specdiag.update_operator` and :class:`specdiag.UpdateRule`.
    operator : str
        ``"module:Class"`` of its operator in :mod:`specdiag.dynamics`.
    description : str
        The update rule in one line.
    options : dict
        Fixed keyword arguments of the operator class (``alternating=True``).
    parameters : tuple of str
        The parameters it needs (``"beta"``, ``"gamma"``); others are refused.
    optional : tuple of str
        Parameters it takes but does not need (``"align"``).
    augmented : bool
        Whether :math:`\partial T` acts on :math:`(x_t, x_{t-1})`.
    alternating : bool
        Whether the players step one after the other (an ``order`` applies).
    shifts : callable or None
        ``shifts(z, beta) -> nu`` of shape ``z.shape + (m,)``: the closed form, or
        ``None`` when the update eigenvalues are not functions of :math:`\eta\lambda`.
    """

    name: str
    operator: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    augmented: bool = False
    alternating: bool = False
    shifts: Optional[Shifts] = None


#: Every update method by name.
UPDATE_METHODS: dict[str, UpdateMethod] = {
    m.name: m
    for m in (
        UpdateMethod(
            "gd",
            "updates:GradientDescentUpdate",
            "x ← x − η v(x)",
            shifts=lambda z, beta: (-z)[..., None],
        ),
        UpdateMethod(
            "alternating_gd",
            "updates:GradientDescentUpdate",
            "players step in turn, each at the point the previous one left",
            options={"alternating": True},
            alternating=True,
        ),
        UpdateMethod(
            "extragradient",
            "updates:ExtragradientUpdate",
            "x ← x − η v(x − η v(x))",
            shifts=lambda z, beta: (z * z - z)[..., None],
        ),
        UpdateMethod(
            "optimistic",
            "updates:OptimisticUpdate",
            "x ← x − 2η v(x_t) + η v(x_{t−1})",
            augmented=True,
            shifts=lambda z, beta: quadratic_roots(1 + 2 * z, z),
        ),
        UpdateMethod(
            "momentum",
            "updates:MomentumUpdate",
            "x ← x − η v(x) + β (x_t − x_{t−1})",
            parameters=("beta",),
            augmented=True,
            shifts=lambda z, beta: quadratic_roots(1 - beta + z, z),
        ),
        UpdateMethod(
            "alternating_momentum",
            "updates:MomentumUpdate",
            "heavy-ball momentum, players in turn (Gidel et al. 2019)",
            options={"alternating": True},
            parameters=("beta",),
            augmented=True,
            alternating=True,
        ),
        UpdateMethod(
            "consensus",
            "updates:ConsensusUpdate",
            "x ← x − η (v + γ Jᵀv)",
            parameters=("gamma",),
        ),
        UpdateMethod(
            "sga",
            "sga:SGAUpdate",
            "symplectic gradient adjustment x ← x − η (v + γ Aᵀv), A = (J − Jᵀ)/2 "
            "(Balduzzi et al. 2018); align: the sign rule of γ",
            parameters=("gamma",),
            optional=("align",),
        ),
    )
}
#: The methods whose update eigenvalues have a closed form in :math:`\eta\lambda`.
CLOSED_FORM_METHODS: tuple[str, ...] = tuple(
    name for name, m in UPDATE_METHODS.items() if m.shifts is not None
)


def update_method(name: str) -> UpdateMethod:
    """The registry entry of method ``name``; ValueError listing the methods otherwise."""
    try:
        return UPDATE_METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown update method {name!r}; choose one of {tuple(UPDATE_METHODS)}"
        ) from None
