"""specdiag: spectral diagnostics for GANs and other differentiable games.

Measures the spectrum of the game Jacobian :math:`J = \\partial v / \\partial x` (and of
each player's Hessian) with matrix-free Krylov methods. Sign convention: descent,
:math:`v = (\\nabla_{x_1} L_1, \\dots, \\nabla_{x_P} L_P)`; gradient flow is locally stable
where every eigenvalue of :math:`J` has positive real part.
"""

from ._version import __version__
from .errors import (
    ConvergenceWarning,
    GameDefinitionError,
    LossClosureError,
    NonFiniteError,
    ProbeWarning,
    SpecdiagError,
    TraceError,
)
from . import schedules, toys
from .game import Game
from .linalg import EigResult, MatrixOperator, eigs, eigsh
from .monitor import SpectrumMonitor
from .operators import GameField, GameJacobian, LinearOperator, PlayerHessian
from .probe import OperatorRecord, ProbeRecord, probe  # binds the function, not the module
from .schedules import AtSteps, Every, LogSpaced
from .trace import Trace, open_trace

#: Every eigenvalue specdiag reports uses this sign convention.
CONVENTION = "descent"

__all__ = [
    "__version__",
    "CONVENTION",
    "Game",
    "GameField",
    "GameJacobian",
    "PlayerHessian",
    "LinearOperator",
    "MatrixOperator",
    "eigs",
    "eigsh",
    "EigResult",
    "probe",
    "ProbeRecord",
    "OperatorRecord",
    "SpectrumMonitor",
    "Every",
    "AtSteps",
    "LogSpaced",
    "open_trace",
    "Trace",
    "SpecdiagError",
    "GameDefinitionError",
    "LossClosureError",
    "NonFiniteError",
    "TraceError",
    "ConvergenceWarning",
    "ProbeWarning",
]
