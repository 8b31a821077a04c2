"""Eigensolvers for matrix-free operators (knows nothing about games).

:func:`eigs` (Krylov–Schur, non-symmetric) and :func:`eigsh` (thick-restart Lanczos,
symmetric) accept any object with ``shape``, ``dtype``, ``device`` and ``matvec``;
:func:`spectral_density` (stochastic Lanczos quadrature) and :func:`trace_estimate`
(Hutch++) describe a symmetric operator's whole spectrum.
"""

from .density import SpectralDensity, spectral_density
from .hutchpp import TraceEstimate, trace_estimate
from .operator import LinearOperator, MatrixOperator, Operator, TransposedOperator
from .parts import SymmetricPart
from .result import EigResult
from .solvers import eigs, eigsh
from .which import GENERAL_WHICH, SYMMETRIC_WHICH

__all__ = [
    "eigs",
    "eigsh",
    "EigResult",
    "LinearOperator",
    "TransposedOperator",
    "MatrixOperator",
    "Operator",
    "SymmetricPart",
    "spectral_density",
    "SpectralDensity",
    "trace_estimate",
    "TraceEstimate",
    "GENERAL_WHICH",
    "SYMMETRIC_WHICH",
]
