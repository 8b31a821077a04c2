r"""Matrix-free operators: the one base class, and what the eigensolvers accept.

:class:`LinearOperator` is the base of every operator in specdiag: the game Jacobian
and the players' Hessians (:mod:`specdiag.game.operators`), the optimisers' update
operators (:mod:`specdiag.dynamics`), the rank-averaged operator of distributed probes
and :class:`MatrixOperator`. It holds the shape, dtype and device, checks every input
vector, counts the products :math:`A u` and :math:`A^\top u`, and gives the transpose
:math:`A^\top` as :attr:`LinearOperator.T`.

The solvers know nothing about games and accept more than this class: any object with
``shape`` (``(n, n)``), ``dtype`` (a real floating dtype), ``device`` and
``matvec(v) -> A v`` on vectors of shape ``(n,)`` (the :class:`Operator` protocol);
optionally ``prefer_transpose`` with ``T`` (eigenvalues may be computed on the cheaper
transpose). A square ``torch.Tensor`` is accepted too and wrapped in
:class:`MatrixOperator`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Operator", "LinearOperator", "TransposedOperator", "MatrixOperator", "as_operator"]


@runtime_checkable
class Operator(Protocol):
    """The interface :func:`~specdiag.eigs` and :func:`~specdiag.eigsh` rely on."""

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """The product :math:`A v`."""
        ...


class LinearOperator:
    r"""A square matrix-free operator on flat vectors, with product counters.

    Subclasses implement ``_matvec`` (and ``_rmatvec`` unless symmetric). The public
    :meth:`matvec` and :meth:`rmatvec` check the vector and count products.

    Parameters
    ----------
    n : int
        The order: the operator is :math:`n \times n`.
    dtype : torch.dtype
        Of the vectors the operator takes and returns.
    device : torch.device or str
        Where they live.

    Attributes
    ----------
    shape : tuple of int
        ``(n, n)``.
    dtype, device
        Of the vectors the operator takes and returns.
    symmetric : bool
        Whether the operator is symmetric (then ``rmatvec`` equals ``matvec``).
    prefer_transpose : bool
        Whether :math:`A^\top u` is cheaper than :math:`A u`; eigenvalue solvers may
        then work on the transpose, whose eigenvalues are the same.
    """

    symmetric: bool = False
    prefer_transpose: bool = False

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device | str) -> None:
        self.shape = (int(n), int(n))
        self.dtype = dtype
        self.device = torch.device(device)
        self._products = [0, 0]  # A u, Aᵀ u

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement _matvec")

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        if self.symmetric:
            return self._matvec(u)
        raise NotImplementedError(f"{type(self).__name__} has no transposed product")

    def _check(self, u: torch.Tensor) -> torch.Tensor:
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(u).__name__}")
        if u.shape != (self.shape[1],):
            raise ValueError(
                f"{type(self).__name__} has shape {self.shape}; expected a vector of shape "
                f"({self.shape[1]},), got {tuple(u.shape)}"
            )
        if u.dtype != self.dtype or u.device != self.device:
            raise TypeError(
                f"{type(self).__name__} works on {self.dtype} vectors on {self.device}; got "
                f"{u.dtype} on {u.device} (convert with u.to(op.device, op.dtype))"
            )
        return u.detach()

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        """The product :math:`A u` of a vector of shape ``(n,)``."""
        u = self._check(u)
        self._products[0] += 1
        return self._matvec(u)

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        r"""The product :math:`A^\top u` of a vector of shape ``(n,)``."""
        u = self._check(u)
        self._products[1] += 1
        return self._rmatvec(u)

    def __matmul__(self, u: torch.Tensor) -> torch.Tensor:
        return self.matvec(u)

    @property
    def n_matvec(self) -> int:
        """Products :math:`A u` computed so far."""
        return self._products[0]

    @property
    def n_rmatvec(self) -> int:
        r"""Products :math:`A^\top u` computed so far."""
        return self._products[1]

    @property
    def n_products(self) -> int:
        r"""All products computed so far, :math:`A u` and :math:`A^\top u`."""
        return self.n_matvec + self.n_rmatvec

    @property
    def T(self) -> LinearOperator:
        """The transposed operator (shares this operator's graph and counters)."""
        return self if self.symmetric else TransposedOperator(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, device={self.device})"
        )


class TransposedOperator(LinearOperator):
    r""":math:`A^\top` of an operator ``A``: its ``matvec`` is ``A.rmatvec``.

    Products are counted on ``A`` (a product of :math:`A^\top` is an ``rmatvec`` of
    ``A``), so the two views report the same work.
    """

    def __init__(self, base: LinearOperator) -> None:
        super().__init__(base.shape[0], base.dtype, base.device)
        self.base = base
        self.symmetric = base.symmetric

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`A^\top u`, counted as ``A.rmatvec``."""
        return self.base.rmatvec(u)

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        """:math:`A u`, counted as ``A.matvec``."""
        return self.base.matvec(u)

    @property
    def n_matvec(self) -> int:
        r"""Products :math:`A^\top u` computed so far (``A.n_rmatvec``)."""
        return self.base.n_rmatvec

    @property
    def n_rmatvec(self) -> int:
        """Products :math:`A u` computed so far (``A.n_matvec``)."""
        return self.base.n_matvec

    @property
    def T(self) -> LinearOperator:
        """The operator this is the transpose of."""
        return self.base


class MatrixOperator(LinearOperator):
    """A dense square tensor as an operator (tests, small problems, examples).

    Parameters
    ----------
    matrix : torch.Tensor
        Shape ``(n, n)``, real floating dtype.
    symmetric : bool
        Declare the matrix symmetric (``rmatvec`` is then ``matvec``); not checked.

    Examples
    --------
    >>> import torch, specdiag as sd
    >>> A = sd.MatrixOperator(torch.diag(torch.tensor([3.0, 2.0, 1.0])))
    >>> A.matvec(torch.ones(3)), A.n_matvec
    (tensor([3., 2., 1.]), 1)
    """

    def __init__(self, matrix: torch.Tensor, *, symmetric: bool = False) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"expected a square matrix, got shape {tuple(matrix.shape)}")
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device)
        self.matrix = matrix
        self.symmetric = bool(symmetric)

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        return self.matrix @ u

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        return self.matrix.T @ u


def as_operator(op: Any, solver: str) -> Any:
    """Check that ``op`` is usable by the eigensolvers; wrap a tensor.

    Raises
    ------
    TypeError
        ``op`` lacks ``shape``, ``dtype``, ``device`` or ``matvec``, or has a dtype
        other than float32 or float64.
    ValueError
        ``op`` is not square.
    """
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
