"""scipy's ARPACK on the same operator: the reference the benchmarks and tests use.

Every product crosses torch -> numpy -> torch, as in the scripts most papers used
(Berard et al. 2020 computed GAN spectra exactly this way). The product count is
ARPACK's own. ARPACK is always asked for its Ritz vectors (a post-processing step, no
products), so that residuals and relative residuals are reported whether or not
eigenvectors are returned: they are computed afterwards with extra products that are
not counted and not timed.

ARPACK works on :math:`A / s` with :math:`s` a power of two fixed at the first non-zero
product (:class:`~.gram_schmidt.Scale`), like specdiag's own iteration, so operators
with eigenvalues near the ends of the floating-point range neither underflow nor
overflow inside it. A zero operator (every product exactly zero), where ARPACK itself
stops with "Starting vector is zero", gives eigenvalues 0, converged, and a note.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
import torch

from ..errors import NonFiniteError
from .gram_schmidt import Scale, check_product
from .options import SolveSettings
from .result import EigResult, relative_residuals
from .which import wanted_order

__all__ = ["arpack_solve"]


def arpack_solve(
    op: Any,
    s: SolveSettings,
    *,
    symmetric: bool,
    v0: torch.Tensor,
    return_eigenvectors: bool,
    return_basis: bool = False,
    transposed: bool = False,
) -> EigResult:
    """Run ``scipy.sparse.linalg.eigs``/``eigsh`` on ``op`` with the settings ``s``.

    Raises
    ------
    ValueError
        ARPACK cannot solve the problem: ``k >= n - 1`` or ``n <= ncv``; or a product
        has the wrong shape.
    TypeError
        A product is not a tensor of the operator's dtype on its device.
    NonFiniteError
        A product returned NaN or Inf.
    """
    n = op.shape[0]
    name = "eigsh" if symmetric else "eigs"
    if n <= s.k + (1 if symmetric else 2) or s.k >= n - 1:
        raise ValueError(f"{name}: ARPACK needs k < n - 1 and n > ncv; use the default backend")
    np_dtype = np.float32 if op.dtype == torch.float32 else np.float64
    counter = _Products(op, np_dtype)
    start = time.perf_counter()
    values, vectors, zero = _run(counter, n, s, symmetric, v0.cpu().numpy().astype(np_dtype))
    wall = time.perf_counter() - start
    n_matvec = counter.count
    values, vectors = _ordered(values, vectors, s.which, symmetric)
    resid = _residuals(counter, values, vectors)
    values, resid = values * counter.scale.s, resid * counter.scale.s
    values, resid, converged, vectors = _padded(values, resid, vectors, s.k, n)
    finite = np.abs(values[np.isfinite(values)])
    floor = math.sqrt(torch.finfo(op.dtype).eps) * float(finite.max(initial=0.0))
    relative = relative_residuals(resid, values, floor)
    return EigResult(
        eigenvalues=torch.from_numpy(values),
        residuals=torch.from_numpy(resid),
        converged=torch.from_numpy(converged),
        relative_residuals=torch.from_numpy(relative.astype(np.float64)),
        n_matvec=n_matvec,
        n_restarts=-1,
        wall_time=wall,
        which=s.which,
        tol=s.tol,
        ncv=s.ncv,
        backend="arpack",
        k_requested=s.k,
        transposed=transposed,
        eigenvectors=torch.from_numpy(vectors).to(op.device) if return_eigenvectors else None,
        notes=("every product was exactly zero: the operator is zero on what was seen",)
        if zero
        else (),
        basis=_basis(vectors, op) if return_basis else None,
    )


def _run(
    counter: _Products, n: int, s: SolveSettings, symmetric: bool, v0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """ARPACK's eigenvalues and eigenvectors (those that converged).

    ``zero``: the operator returned only zeros (then all eigenvalues are 0, with unit
    vectors).
    """
    lin = spla.LinearOperator((n, n), matvec=counter, dtype=counter.np_dtype)
    solver = spla.eigsh if symmetric else spla.eigs
    try:
        values, vectors = solver(
            lin,
            k=s.k,
            which=s.which,
            tol=s.tol,
            ncv=s.ncv,
            maxiter=s.maxiter,
            v0=v0,
            return_eigenvectors=True,
        )
    except spla.ArpackNoConvergence as exc:
        values, vectors = exc.eigenvalues, exc.eigenvectors
    except spla.ArpackError:
        if counter.nonzero:
            raise
        vectors = np.eye(n, s.k, dtype=counter.np_dtype)
        return np.zeros(s.k), vectors, True
    return np.asarray(values), np.asarray(vectors), not counter.nonzero


class _Products:
    """``op.matvec`` on numpy vectors, counted, checked, and divided by the scale."""

    def __init__(self, op: Any, np_dtype: Any) -> None:
        self.op, self.np_dtype, self.count, self.nonzero = op, np_dtype, 0, False
        self.scale = Scale(op.dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.count += 1
        v = torch.from_numpy(np.ascontiguousarray(x.reshape(-1), dtype=self.np_dtype))
        w = check_product(
            self.op.matvec(v.to(self.op.device)), v.shape[0], self.op.dtype, self.op.device
        )
        factor = self.scale.factor(w)
        self.nonzero = self.nonzero or self.scale.value is not None
        out = (w * factor if factor != 1.0 else w).cpu().numpy()
        if not np.isfinite(out).all():
            raise NonFiniteError(f"the operator returned NaN or Inf at product {self.count}")
        return out


def _basis(vectors: np.ndarray, op: Any) -> torch.Tensor:
    """A real orthonormal basis of the eigenvectors' span (real and imaginary parts)."""
    finite = vectors[:, np.isfinite(vectors).all(axis=0)]
    parts = [finite.real] + (
        [finite.imag[:, (np.abs(finite.imag) > 0).any(axis=0)]] if np.iscomplexobj(finite) else []
    )
    R = np.concatenate(parts, axis=1).astype(np.float64)
    Q, Rr = np.linalg.qr(R)
    diag = np.abs(np.diag(Rr))
    keep = diag > 1e-6 * diag.max() if diag.size else np.zeros(0, bool)
    return torch.from_numpy(np.ascontiguousarray(Q[:, keep])).to(op.device, op.dtype)


def _ordered(
    values: Any, vectors: Any, which: str, symmetric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Positive imaginary part first within a pair (the sort is stable), then by ``which``."""
    values = np.asarray(values, dtype=np.float64 if symmetric else np.complex128)
    order = np.argsort(-values.imag, kind="stable")
    order = order[wanted_order(values[order], which)]
    return values[order], np.asarray(vectors)[:, order]


def _residuals(counter: _Products, values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Residual norms of unit eigenvectors (extra products, not counted)."""
    resid = np.full(len(values), np.nan)
    count = counter.count
    for i, lam in enumerate(values):
        x = vectors[:, i] / np.linalg.norm(vectors[:, i])
        ax = counter(x.real) + (1j * counter(x.imag) if np.iscomplexobj(x) else 0)
        resid[i] = np.linalg.norm(ax - lam * x)
    counter.count = count
    return resid


def _padded(
    values: np.ndarray, resid: np.ndarray, vectors: np.ndarray, k: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """On ArpackNoConvergence scipy returns only the converged eigenvalues: pad to ``k``."""
    converged = np.ones(len(values), bool)
    missing = k - len(values)
    if missing <= 0:
        return values, resid, converged, vectors
    values = np.concatenate([values, np.full(missing, np.nan, values.dtype)])
    resid = np.concatenate([resid, np.full(missing, np.nan)])
    converged = np.concatenate([converged, np.zeros(missing, bool)])
    vectors = np.concatenate([vectors, np.full((n, missing), np.nan, vectors.dtype)], axis=1)
    return values, resid, converged, vectors
