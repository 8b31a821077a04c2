"""specdiag: spectral diagnostics for GANs and other differentiable games.

Measures the spectrum of the game Jacobian :math:`J = \\partial v / \\partial x` (and of
each player's Hessian) with matrix-free Krylov methods. Sign convention: descent,
:math:`v = (\\nabla_{x_1} L_1, \\dots, \\nabla_{x_P} L_P)`; gradient flow is locally stable
where every eigenvalue of :math:`J` has positive real part.

The names below are imported on first use (PEP 562), so ``import specdiag`` is cheap
and reading or plotting a trace (:func:`open_trace`, ``specdiag.plot``) never loads
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

#: Every eigenvalue specdiag reports uses this sign convention.
CONVENTION = "descent"

# public name -> module that defines it (a module's own name maps to itself)
_LAZY = {
    "Game": "game",
    "GameField": "operators",
    "GameJacobian": "operators",
    "PlayerHessian": "operators",
    "LinearOperator": "operators",
    "MatrixOperator": "linalg",
    "eigs": "linalg",
    "eigsh": "linalg",
    "EigResult": "linalg",
    "probe": "probing",
    "ProbeRecord": "probing",
    "OperatorRecord": "probing",
    "SpectrumMonitor": "monitor",
    "Every": "schedules",
    "AtSteps": "schedules",
    "LogSpaced": "schedules",
    "open_trace": "trace",
    "Trace": "trace",
    "update_operator": "dynamics",
    "spectral_radius": "dynamics",
    "optimizer_preconditioner": "dynamics",
    "UpdateRule": "dynamics",
    "probe_memory": "memory",
    "ProbeMemory": "memory",
    "max_stable_lr": "stability",
    "update_radius": "stability",
    "update_eigenvalues": "stability",
    "StepSizeBound": "stability",
    "helmholtz_split": "helmholtz",
    "HelmholtzEstimate": "helmholtz",
    "schedules": "schedules",
    "toys": "toys",
}

if TYPE_CHECKING:  # static analysers see the eager imports
    from . import schedules, toys
    from .dynamics import UpdateRule, optimizer_preconditioner, spectral_radius, update_operator
    from .game import Game
    from .helmholtz import HelmholtzEstimate, helmholtz_split
    from .linalg import EigResult, MatrixOperator, eigs, eigsh
    from .memory import ProbeMemory, probe_memory
    from .monitor import SpectrumMonitor
    from .operators import GameField, GameJacobian, LinearOperator, PlayerHessian
    from .probing import OperatorRecord, ProbeRecord, probe
    from .schedules import AtSteps, Every, LogSpaced
    from .stability import StepSizeBound, max_stable_lr, update_eigenvalues, update_radius
    from .trace import Trace, open_trace


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'specdiag' has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __name__)
    value = module if name == module_name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "update_operator",
    "spectral_radius",
    "optimizer_preconditioner",
    "UpdateRule",
    "probe_memory",
    "ProbeMemory",
    "max_stable_lr",
    "update_radius",
    "update_eigenvalues",
    "StepSizeBound",
    "helmholtz_split",
    "HelmholtzEstimate",
    "SpecdiagError",
    "GameDefinitionError",
    "LossClosureError",
    "NonFiniteError",
    "TraceError",
    "ConvergenceWarning",
    "ProbeWarning",
]
