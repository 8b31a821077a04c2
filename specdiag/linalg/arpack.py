"""scipy's ARPACK on the same operator: the reference the benchmarks and tests use.

Every product crosses torch -> numpy -> torch, as in the scripts most papers used
(Berard et al. 2020 computed GAN spectra exactly this way). The product count is
ARPACK's own; residuals, when eigenvectors are asked for, are computed afterwards
with extra products that are not counted.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
import torch

from ..errors import NonFiniteError
from .which import wanted_order

__all__ = ["arpack_solve"]


def arpack_solve(
    op: Any,
    *,
    symmetric: bool,
    k: int,
    which: str,
    tol: float,
    ncv: int,
    maxiter: int,
    v0: torch.Tensor,
    return_eigenvectors: bool,
) -> dict[str, Any]:
    """Run ``scipy.sparse.linalg.eigs``/``eigsh`` on ``op``; return raw fields."""
    n = op.shape[0]
    np_dtype = np.float32 if op.dtype == torch.float32 else np.float64
    count = 0

    def matvec(x: np.ndarray) -> np.ndarray:
        nonlocal count
        count += 1
        v = torch.from_numpy(np.ascontiguousarray(x.reshape(-1), dtype=np_dtype)).to(op.device)
        out = op.matvec(v).cpu().numpy()
        if not np.isfinite(out).all():
            raise NonFiniteError(f"the operator returned NaN or Inf at product {count}")
        return out

    lin = spla.LinearOperator((n, n), matvec=matvec, dtype=np_dtype)
    solver = spla.eigsh if symmetric else spla.eigs
    start = time.perf_counter()
    try:
        out = solver(
            lin,
            k=k,
            which=which,
            tol=tol,
            ncv=ncv,
            maxiter=maxiter,
            v0=v0.cpu().numpy().astype(np_dtype),
            return_eigenvectors=return_eigenvectors,
        )
    except spla.ArpackNoConvergence as exc:
        out = (exc.eigenvalues, exc.eigenvectors) if return_eigenvectors else exc.eigenvalues
    wall = time.perf_counter() - start
    n_matvec = count
    values, vectors = out if return_eigenvectors else (out, None)
    values = np.asarray(values, dtype=np.float64 if symmetric else np.complex128)
    # positive imaginary part first within a pair (the sort below is stable), then by which
    order = np.argsort(-values.imag, kind="stable")
    order = order[wanted_order(values[order], which)]
    values = values[order]
    resid = np.full(len(values), np.nan)
    if vectors is not None:
        vectors = np.asarray(vectors)[:, order]
        for i, lam in enumerate(values):
            x = vectors[:, i] / np.linalg.norm(vectors[:, i])
            ax = matvec(x.real) + (1j * matvec(x.imag) if np.iscomplexobj(x) else 0)
            resid[i] = np.linalg.norm(ax - lam * x)
    # On ArpackNoConvergence scipy returns only the converged eigenvalues: pad to k.
    converged = np.ones(len(values), bool)
    missing = k - len(values)
    if missing > 0:
        values = np.concatenate([values, np.full(missing, np.nan, values.dtype)])
        resid = np.concatenate([resid, np.full(missing, np.nan)])
        converged = np.concatenate([converged, np.zeros(missing, bool)])
        if vectors is not None:
            vectors = np.concatenate(
                [vectors, np.full((n, missing), np.nan, vectors.dtype)], axis=1
            )
    return dict(
        values=values,
        resid=resid,
        converged=converged,
        n_matvec=n_matvec,
        wall=wall,
        vectors=vectors,
    )
