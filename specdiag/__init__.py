r"""specdiag: spectral diagnostics for GANs and other differentiable games.

Measures the spectrum of the game Jacobian :math:`J = \partial v / \partial x` (and of
each player's Hessian) with matrix-free Krylov methods. Sign convention: descent,
:math:`v = (\nabla_{x_1} L_1, \dots, \nabla_{x_P} L_P)`; gradient flow is locally stable
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
    "GameField": "game",
    "GameJacobian": "game",
    "PlayerHessian": "game",
    "LinearOperator": "linalg",
    "MatrixOperator": "linalg",
    "eigs": "linalg",
    "eigsh": "linalg",
    "EigResult": "linalg",
    "SymmetricPart": "linalg",
    "spectral_density": "linalg",
    "SpectralDensity": "linalg",
    "trace_estimate": "linalg",
    "TraceEstimate": "linalg",
    "probe": "probing",
    "ProbeRecord": "probing",
    "OperatorRecord": "probing",
    "probe_memory": "probing",
    "ProbeMemory": "probing",
    "SpectrumMonitor": "monitor",
    "Every": "monitor",
    "AtSteps": "monitor",
    "LogSpaced": "monitor",
    "probe_snapshots": "monitor",
    "DensityRequest": "probing",
    "open_trace": "trace",
    "Trace": "trace",
    "update_operator": "dynamics",
    "spectral_radius": "dynamics",
    "optimizer_preconditioner": "dynamics",
    "UpdateRule": "dynamics",
    "helmholtz_split": "dynamics",
    "HelmholtzEstimate": "dynamics",
    "path_angle": "dynamics",
    "PathAngle": "dynamics",
    "max_stable_lr": "stability",
    "update_radius": "stability",
    "update_eigenvalues": "stability",
    "StepSizeBound": "stability",
    "schedules": "monitor.schedules",
    "toys": "toys",
}

if TYPE_CHECKING:  # static analysers see the eager imports
    from . import toys
    from .dynamics import (
        HelmholtzEstimate,
        PathAngle,
        UpdateRule,
        helmholtz_split,
        optimizer_preconditioner,
        path_angle,
        spectral_radius,
        update_operator,
    )
    from .game import Game, GameField, GameJacobian, PlayerHessian
    from .linalg import (
        EigResult,
        LinearOperator,
        MatrixOperator,
        SpectralDensity,
        SymmetricPart,
        TraceEstimate,
        eigs,
        eigsh,
        spectral_density,
        trace_estimate,
    )
    from .monitor import AtSteps, Every, LogSpaced, SpectrumMonitor, probe_snapshots, schedules
    from .probing import (
        DensityRequest,
        OperatorRecord,
        ProbeMemory,
        ProbeRecord,
        probe,
        probe_memory,
    )
    from .stability import StepSizeBound, max_stable_lr, update_eigenvalues, update_radius
    from .trace import Trace, open_trace


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'specdiag' has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __name__)
    value = module if module_name.split(".")[-1] == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "CONVENTION",
    "schedules",
    "toys",
    "Game",
    "GameField",
    "GameJacobian",
    "PlayerHessian",
    "LinearOperator",
    "MatrixOperator",
    "eigs",
    "eigsh",
    "EigResult",
    "SymmetricPart",
    "spectral_density",
    "SpectralDensity",
    "trace_estimate",
    "TraceEstimate",
    "probe",
    "ProbeRecord",
    "OperatorRecord",
    "DensityRequest",
    "SpectrumMonitor",
    "Every",
    "AtSteps",
    "LogSpaced",
    "probe_snapshots",
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
    "path_angle",
    "PathAngle",
    "SpecdiagError",
    "GameDefinitionError",
    "LossClosureError",
    "NonFiniteError",
    "TraceError",
    "ConvergenceWarning",
    "ProbeWarning",
]
