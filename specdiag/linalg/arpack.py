"""scipy's ARPACK on the same operator: the reference the benchmarks and tests use.

Every product crosses torch -> numpy -> torch, as in the scripts most papers used
(Berard et al. 2020 computed GAN spectra exactly this way). The product count is
ARPACK's own; residuals, when eigenvectors are asked for, are computed afterwards
with extra products that are not counted.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np
import scipy.sparse.linalg as spla
import torch

from ..errors import NonFiniteError
from .options import SolveSettings
from .result import EigResult
from .which import wanted_order

__all__ = ["arpack_solve"]


def arpack_solve(
    op: Any,
    s: SolveSettings,
    *,
    symmetric: bool,
    v0: torch.Tensor,
    return_eigenvectors: bool,
    transposed: bool = False,
) -> EigResult:
    """Run ``scipy.sparse.linalg.eigs``/``eigsh`` on ``op`` with the settings ``s``.

    Raises
    ------
    ValueError
        ARPACK cannot solve the problem: ``k >= n - 1`` or ``n <= ncv``.
    NonFiniteError
        A product returned NaN or Inf.
    """
    n = op.shape[0]
    name = "eigsh" if symmetric else "eigs"
    if n <= s.k + (1 if symmetric else 2) or s.k >= n - 1:
        raise ValueError(f"{name}: ARPACK needs k < n - 1 and n > ncv; use the default backend")
    np_dtype = np.float32 if op.dtype == torch.float32 else np.float64
    counter = _Products(op, np_dtype)
    lin = spla.LinearOperator((n, n), matvec=counter, dtype=np_dtype)
    solver = spla.eigsh if symmetric else spla.eigs
    start = time.perf_counter()
    try:
        out = solver(
            lin,
            k=s.k,
            which=s.which,
            tol=s.tol,
            ncv=s.ncv,
            maxiter=s.maxiter,
            v0=v0.cpu().numpy().astype(np_dtype),
            return_eigenvectors=return_eigenvectors,
        )
    except spla.ArpackNoConvergence as exc:
        out = (exc.eigenvalues, exc.eigenvectors) if return_eigenvectors else exc.eigenvalues
    wall = time.perf_counter() - start
    n_matvec = counter.count
    values, vectors = out if return_eigenvectors else (out, None)
    values, vectors = _ordered(values, vectors, s.which, symmetric)
    resid = _residuals(counter, values, vectors)
    values, resid, converged, vectors = _padded(values, resid, vectors, s.k, n)
    return EigResult(
        eigenvalues=torch.from_numpy(values),
        residuals=torch.from_numpy(resid),
        converged=torch.from_numpy(converged),
        n_matvec=n_matvec,
        n_restarts=-1,
        wall_time=wall,
        which=s.which,
        tol=s.tol,
        ncv=s.ncv,
        backend="arpack",
        k_requested=s.k,
        transposed=transposed,
        eigenvectors=None if vectors is None else torch.from_numpy(vectors).to(op.device),
    )


class _Products:
    """``op.matvec`` on numpy vectors, counted and checked for NaN/Inf."""

    def __init__(self, op: Any, np_dtype: Any) -> None:
        self.op, self.np_dtype, self.count = op, np_dtype, 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.count += 1
        v = torch.from_numpy(np.ascontiguousarray(x.reshape(-1), dtype=self.np_dtype))
        out = self.op.matvec(v.to(self.op.device)).cpu().numpy()
        if not np.isfinite(out).all():
            raise NonFiniteError(f"the operator returned NaN or Inf at product {self.count}")
        return out


def _ordered(
    values: Any, vectors: Any, which: str, symmetric: bool
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Positive imaginary part first within a pair (the sort is stable), then by ``which``."""
    values = np.asarray(values, dtype=np.float64 if symmetric else np.complex128)
    order = np.argsort(-values.imag, kind="stable")
    order = order[wanted_order(values[order], which)]
    return values[order], None if vectors is None else np.asarray(vectors)[:, order]


def _residuals(counter: _Products, values: np.ndarray, vectors: Optional[np.ndarray]) -> np.ndarray:
    """Residual norms of unit eigenvectors (extra products, not counted), NaN without."""
    resid = np.full(len(values), np.nan)
    if vectors is None:
        return resid
    count = counter.count
    for i, lam in enumerate(values):
        x = vectors[:, i] / np.linalg.norm(vectors[:, i])
        ax = counter(x.real) + (1j * counter(x.imag) if np.iscomplexobj(x) else 0)
        resid[i] = np.linalg.norm(ax - lam * x)
    counter.count = count
    return resid


def _padded(
    values: np.ndarray, resid: np.ndarray, vectors: Optional[np.ndarray], k: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """On ArpackNoConvergence scipy returns only the converged eigenvalues: pad to ``k``."""
    converged = np.ones(len(values), bool)
    missing = k - len(values)
    if missing <= 0:
        return values, resid, converged, vectors
    values = np.concatenate([values, np.full(missing, np.nan, values.dtype)])
    resid = np.concatenate([resid, np.full(missing, np.nan)])
    converged = np.concatenate([converged, np.zeros(missing, bool)])
    if vectors is not None:
        vectors = np.concatenate([vectors, np.full((n, missing), np.nan, vectors.dtype)], axis=1)
    return values, resid, converged, vectors
