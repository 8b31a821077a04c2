r"""The result of an eigenvalue computation.

Two residuals are reported for each eigenvalue :math:`\theta` with unit vector
:math:`x` (a Ritz vector, or an eigenvector of the dense path):

* ``residuals``: the absolute :math:`\|A x - \theta x\|`;
* ``relative_residuals``: the quantity the tolerance bounds,
  :math:`\|A x - \theta x\| / \max(|\theta|, \sqrt{\epsilon}\,|\theta|_{\max})`,
  with :math:`\epsilon` the operator dtype's machine epsilon and :math:`|\theta|_{\max}`
  the largest Ritz value of the last projected problem (a proxy for :math:`\|A\|`, so
  that eigenvalues tiny next to the spectrum's scale are judged on that scale). An
  eigenvalue has converged when its relative residual is at most ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["EigResult", "relative_residuals"]


@dataclass(frozen=True)
class EigResult:
    r"""Eigenvalues found by :func:`~specdiag.eigs` or :func:`~specdiag.eigsh`.

    Attributes
    ----------
    eigenvalues : torch.Tensor
        Shape ``(k,)`` on the CPU: ``complex128`` from ``eigs``, ``float64`` from
        ``eigsh``; ordered most wanted first (by ``which``), the two members of a
        complex-conjugate pair next to each other (positive imaginary part first).
    residuals : torch.Tensor
        ``float64``, shape ``(k,)``: the absolute residual :math:`\|A x - \lambda x\|` for
        the unit Ritz vector :math:`x` of each eigenvalue (NaN where the backend does not
        report one).
    converged : torch.Tensor
        ``bool``, shape ``(k,)``: whether each eigenvalue met the tolerance, i.e. whether
        its relative residual is at most ``tol``.
    relative_residuals : torch.Tensor
        ``float64``, shape ``(k,)``: :math:`\|A x - \lambda x\| / \max(|\lambda|,
        \sqrt{\epsilon}\,|\theta|_{\max})`, the quantity ``tol`` bounds (see the module
        docstring); every backend fills it (ARPACK from its eigenvectors, with products
        that are not counted).
    n_matvec : int
        Operator products the solver used.
    n_restarts : int
        Restarts of the Krylov iteration (0 for the dense path).
    wall_time : float
        Seconds spent in the solver, products included.
    eigenvectors : torch.Tensor or None
        Shape ``(n, k)`` on the operator's device, unit columns (complex for ``eigs``),
        when ``return_eigenvectors=True``.
    which, tol, ncv, backend : str, float, int, str
        The settings used.
    k_requested : int
        The ``k`` asked for; ``len(eigenvalues)`` is one more when the k-th eigenvalue
        is one of a complex-conjugate pair (pairs are never split).
    transposed : bool
        True when the eigenvalues were computed on :math:`A^\top` (same eigenvalues,
        cheaper products); residuals and ``basis`` then refer to :math:`A^\top`.
    basis : torch.Tensor or None
        When ``return_basis=True``: a real orthonormal ``(n, m)`` tensor, in the
        operator's dtype and on its device, spanning the wanted Ritz vectors (for a
        complex pair its real and imaginary parts, so ``m`` is ``k`` or ``k + 1``) of the
        operator the iteration worked on (:math:`A^\top` when ``transposed``): an
        approximately invariant subspace, to pass as ``v0`` of the next solve on a
        nearby operator (a warm start, see :mod:`specdiag.linalg.recycle`).
    notes : tuple of str
        Anything the caller should know (pair kept whole, budget reached, dense solve,
        warm start, interior eigenvalues possibly missed).
    """

    eigenvalues: torch.Tensor
    residuals: torch.Tensor
    converged: torch.Tensor
    relative_residuals: torch.Tensor
    n_matvec: int
    n_restarts: int
    wall_time: float
    which: str
    tol: float
    ncv: int
    backend: str
    k_requested: int
    transposed: bool = False
    eigenvectors: torch.Tensor | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    basis: torch.Tensor | None = None

    @property
    def k(self) -> int:
        """Number of eigenvalues returned."""
        return int(self.eigenvalues.numel())

    @property
    def all_converged(self) -> bool:
        """Whether every returned eigenvalue met the tolerance."""
        return bool(self.converged.all())

    @property
    def n_converged(self) -> int:
        """Number of eigenvalues that met the tolerance."""
        return int(self.converged.sum())

    def __repr__(self) -> str:
        vals = ", ".join(_fmt(v) for v in self.eigenvalues.tolist()[:6])
        more = ", ..." if self.k > 6 else ""
        return (
            f"EigResult(k={self.k}, which={self.which!r}, converged={self.n_converged}/{self.k}, "
            f"n_matvec={self.n_matvec}, eigenvalues=[{vals}{more}])"
        )


def _fmt(v: complex | float) -> str:
    if isinstance(v, complex):
        return f"{v.real:.4g}{v.imag:+.4g}j"
    return f"{v:.4g}"


def relative_residuals(resid: np.ndarray, values: np.ndarray, floor: float) -> np.ndarray:
    r"""Relative residuals :math:`\|r\| / \max(|\theta|, \text{floor})`.

    0 where the residual is 0 (a zero operator), ``inf`` where only the scale is 0.
    """
    scale = np.maximum(np.abs(values), floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(resid == 0.0, 0.0, resid / np.where(scale > 0, scale, 0.0))
    return out.astype(np.float64)
