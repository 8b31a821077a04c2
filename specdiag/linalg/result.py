"""The result of an eigenvalue computation."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["EigResult"]


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
        ``float64``, shape ``(k,)``: :math:`\|A x - \lambda x\|` for the unit Ritz vector
        :math:`x` of each eigenvalue (NaN where the backend does not report one).
    converged : torch.Tensor
        ``bool``, shape ``(k,)``: whether each eigenvalue met the tolerance.
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
        cheaper products); residuals then refer to :math:`A^\top`.
    notes : tuple of str
        Anything the caller should know (pair kept whole, budget reached, dense solve).
    """

    eigenvalues: torch.Tensor
    residuals: torch.Tensor
    converged: torch.Tensor
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
