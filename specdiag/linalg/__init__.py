"""Eigensolvers for matrix-free operators (knows nothing about games).

:func:`eigs` (Krylov–Schur, non-symmetric) and :func:`eigsh` (thick-restart Lanczos,
symmetric) accept any object with ``shape``, ``dtype``, ``device`` and ``matvec``.
"""

from .operator import LinearOperator, MatrixOperator, Operator, TransposedOperator
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
    "GENERAL_WHICH",
    "SYMMETRIC_WHICH",
]
