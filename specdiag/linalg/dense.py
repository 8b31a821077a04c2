"""Exact solve of small operators: assembled column by column, solved by LAPACK.

The two-parameter Dirac-GAN has a 2x2 Jacobian; a Krylov method cannot even start a
basis of 20 vectors in it. Such operators, and others small enough that ``n`` products
cost no more than a Krylov solve would (see :mod:`~specdiag.linalg.paths` for when), are
assembled column by column (``n`` products) and handed to LAPACK in float64, which has
the range to hold any float32 or float64 operator's entries: the solve is scale-free.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import NonFiniteError
from .gram_schmidt import check_product
from .krylov_schur import Ritz, rank

__all__ = ["assemble", "dense_ritz"]


def assemble(
    apply: Callable[[torch.Tensor], torch.Tensor], n: int, dtype: torch.dtype, device: torch.device
) -> np.ndarray:
    """The matrix of ``apply`` as a float64 numpy array (``n`` products).

    Raises
    ------
    TypeError, ValueError
        A product is not a tensor of shape ``(n,)``, ``dtype``, on ``device``.
    NonFiniteError
        A product holds NaN or Inf.
    """
    eye = torch.eye(n, dtype=dtype, device=device)
    A = np.empty((n, n))
    for i in range(n):
        column = check_product(apply(eye[i]), n, dtype, device)
        A[:, i] = column.detach().to(torch.float64).cpu().numpy()
        if not np.isfinite(A[:, i]).all():
            raise NonFiniteError(f"the operator returned NaN or Inf at product {i + 1}")
    return A


def dense_ritz(
    A: np.ndarray, *, symmetric: bool, which: str, k: int, tol: float, eps: float
) -> Ritz:
    r"""All eigenpairs of a small dense matrix, ranked like the Krylov path's Ritz pairs.

    Residuals :math:`\|A x - \lambda x\|` are computed exactly for unit eigenvectors.
    """
    if symmetric:
        A = (A + A.T) / 2
        w, X = np.linalg.eigh(A)
        lam, X = w.astype(complex), X.astype(complex)
        blocks = [(i, 1) for i in range(len(w))]
    else:
        lam, X = np.linalg.eig(A)
        order = _pairs_adjacent(lam)
        lam, X = lam[order], X[:, order]
        blocks, i = [], 0
        while i < len(lam):
            size = 2 if lam[i].imag != 0.0 and i + 1 < len(lam) else 1
            if size == 2:
                lam[i + 1] = np.conj(lam[i])
                X[:, i + 1] = np.conj(X[:, i])
            blocks.append((i, size))
            i += size
    X = X / np.linalg.norm(X, axis=0)
    resid = np.linalg.norm(A @ X - X * lam, axis=0)
    return rank(lam, resid, X, blocks, which, k, tol, eps, complete=True)


def _pairs_adjacent(lam: np.ndarray) -> np.ndarray:
    """Order putting each complex-conjugate pair together, positive imaginary part first."""
    order, used = [], np.zeros(len(lam), bool)
    for i in np.argsort(-lam.imag, kind="stable"):
        if used[i]:
            continue
        used[i] = True
        order.append(i)
        if lam[i].imag > 0:
            rest = np.flatnonzero(~used)
            partner = rest[np.argmin(np.abs(lam[rest] - np.conj(lam[i])))]
            used[partner] = True
            order.append(partner)
    return np.array(order, dtype=int)
