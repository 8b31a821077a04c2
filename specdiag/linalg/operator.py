"""What the eigensolvers accept as an operator.

The solvers know nothing about games: they accept any object with ``shape``
(``(n, n)``), ``dtype`` (a real floating dtype), ``device`` and ``matvec(v) -> A v``
on vectors of shape ``(n,)``. Optional attributes: ``prefer_transpose`` with ``T``
(eigenvalues may be computed on the cheaper transpose). A square ``torch.Tensor`` is
accepted too and wrapped in :class:`MatrixOperator`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Operator", "MatrixOperator", "as_operator"]


@runtime_checkable
class Operator(Protocol):
    """The interface :func:`~specdiag.eigs` and :func:`~specdiag.eigsh` rely on."""

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor: ...


class MatrixOperator:
    """A dense square tensor as an operator (tests, small problems, examples).

    Parameters
    ----------
    matrix : torch.Tensor
        Shape ``(n, n)``, real floating dtype.
    """

    prefer_transpose = False

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"expected a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.shape = (int(matrix.shape[0]), int(matrix.shape[1]))
        self.dtype = matrix.dtype
        self.device = matrix.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v

    def rmatvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix.T @ v

    @property
    def T(self) -> "MatrixOperator":
        return MatrixOperator(self.matrix.T)


def as_operator(op: Any, solver: str) -> Any:
    """Check that ``op`` is usable by the eigensolvers; wrap a tensor."""
    if isinstance(op, torch.Tensor):
        op = MatrixOperator(op)
    missing = [a for a in ("shape", "dtype", "device", "matvec") if not hasattr(op, a)]
    if missing:
        raise TypeError(
            f"{solver}: the operator ({type(op).__name__}) lacks {', '.join(missing)}; pass a "
            "square torch.Tensor or an object with shape, dtype, device and matvec(v)"
        )
    shape = tuple(op.shape)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{solver}: the operator must be square, got shape {shape}")
    if op.dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"{solver}: the operator's dtype must be torch.float32 or torch.float64, got {op.dtype}"
        )
    return op
