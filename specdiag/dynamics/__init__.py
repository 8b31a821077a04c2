r"""Game dynamics: what an optimiser does near a point, and how much of a game rotates.

* :mod:`~specdiag.dynamics.updates` -- the update operators :math:`\partial T` of
  gradient descent, extragradient, optimistic GD, momentum, consensus optimisation,
  matrix-free, and :func:`spectral_radius`;
* :mod:`~specdiag.dynamics.preconditioner` -- Adam's and RMSprop's diagonal
  preconditioner, read from their state;
* :mod:`~specdiag.dynamics.rule` -- :class:`UpdateRule`, the run's optimiser for probes;
* :mod:`~specdiag.dynamics.sga` -- symplectic gradient adjustment (Balduzzi et al. 2018);
* :mod:`~specdiag.dynamics.helmholtz` -- the Helmholtz split :math:`J = S + A`;
* :mod:`~specdiag.dynamics.path_angle` -- Berard et al.'s path-angle between two points.

The closed forms of the update eigenvalues (numpy only) are in :mod:`specdiag.stability`.
"""

from .helmholtz import HelmholtzEstimate, helmholtz_split
from .path_angle import PathAngle, path_angle
from .preconditioner import optimizer_preconditioner
from .rule import UpdateRule
from .sga import SGAUpdate
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
    "SGAUpdate",
    "update_operator",
    "optimizer_preconditioner",
    "spectral_radius",
    "UpdateRule",
    "HelmholtzEstimate",
    "helmholtz_split",
    "PathAngle",
    "path_angle",
]
