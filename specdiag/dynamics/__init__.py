r"""Game dynamics: what an optimiser does near a point, and how much of a game rotates.

* :mod:`~specdiag.dynamics.updates` -- the update operators :math:`\partial T` of
  gradient descent, extragradient, optimistic GD, momentum and consensus optimisation,
  matrix-free, and :func:`spectral_radius`;
* :mod:`~specdiag.dynamics.preconditioner` -- Adam's and RMSprop's diagonal
  preconditioner, read from their state;
* :mod:`~specdiag.dynamics.rule` -- :class:`UpdateRule`, the run's optimiser for probes;
* :mod:`~specdiag.dynamics.helmholtz` -- the Helmholtz split :math:`J = S + A`.

The closed forms of the update eigenvalues (numpy only) are in :mod:`specdiag.stability`.
"""

from .helmholtz import HelmholtzEstimate, helmholtz_split
from .preconditioner import optimizer_preconditioner
from .rule import UpdateRule
from .updates import (
    UPDATE_METHODS,
    ConsensusUpdate,
    ExtragradientUpdate,
    GradientDescentUpdate,
    MomentumUpdate,
    OptimisticUpdate,
    UpdateOperator,
    spectral_radius,
    update_operator,
)

__all__ = [
    "UPDATE_METHODS",
    "UpdateOperator",
    "GradientDescentUpdate",
    "ExtragradientUpdate",
    "OptimisticUpdate",
    "MomentumUpdate",
    "ConsensusUpdate",
    "update_operator",
    "optimizer_preconditioner",
    "spectral_radius",
    "UpdateRule",
    "HelmholtzEstimate",
    "helmholtz_split",
]
