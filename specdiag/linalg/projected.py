r"""The small projected eigenproblem of a Krylov–Schur iteration, in float64 on the host.

A Krylov decomposition :math:`A V_m = V_m B_m + v_{m+1} b^\top` reduces the operator to
the :math:`m \times m` matrix :math:`B_m`. Krylov–Schur needs four things of it: a Schur
form :math:`B = Z T Z^\top`, a reordering of that form that moves chosen eigenvalues to
the leading block, the diagonal block structure of :math:`T`, and the eigenvectors of
:math:`T` (for Ritz residuals and Ritz vectors). :class:`RealSchur` provides them for
non-symmetric problems (real Schur form, 2x2 blocks for complex-conjugate pairs, so
the Krylov basis stays real); :class:`SymmetricEig` for symmetric ones (T diagonal).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

__all__ = ["RealSchur", "SymmetricEig"]


class RealSchur:
    """Projected problem of a non-symmetric operator: real Schur form."""

    symmetric = False

    @staticmethod
    def schur(B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Real Schur form ``B = Z T Z^T`` (T upper quasi-triangular, standardised)."""
        T, Z = scipy.linalg.schur(B, output="real")
        return T, Z

    @staticmethod
    def reorder(
        T: np.ndarray, Z: np.ndarray, select: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Move the selected diagonal positions to the top (LAPACK ``dtrsen``).

        The relative order within the selected and within the other positions is
        kept. Returns ``ok=False`` when LAPACK could not swap two nearly equal
        eigenvalues; ``T`` and ``Z`` are then still a valid (partially reordered)
        Schur form.
        """
        if len(T) == 0 or select.all() or not select.any():
            return T, Z, True
        ts, qs, _, _, _, _, _, info = lapack.dtrsen(
            select.astype(np.int32), T, Z, job="N", lwork=max(1, len(T))
        )
        return ts, qs, info == 0

    @staticmethod
    def blocks(T: np.ndarray) -> list[tuple[int, int]]:
        """Diagonal blocks of a quasi-triangular ``T`` as ``(start, size)``, size 1 or 2."""
        out, i, m = [], 0, len(T)
        while i < m:
            size = 2 if i + 1 < m and T[i + 1, i] != 0.0 else 1
            out.append((i, size))
            i += size
        return out

    @staticmethod
    def ritz(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues of quasi-triangular ``T`` in diagonal order, and unit eigenvectors.

        ``T`` is brought to complex triangular form ``T = Q U Q^H`` (same diagonal
        order), eigenvectors of ``U`` come by back substitution (denominators bounded
        away from zero as in LAPACK ``trevc``), and are mapped back by ``Q``. Both
        members of a complex-conjugate pair come out exactly conjugate.
        """
        m = len(T)
        if m == 0:
            return np.zeros(0, complex), np.zeros((0, 0), complex)
        U, Q = scipy.linalg.rsf2csf(T, np.eye(m))
        lam = np.diag(U).copy()
        smin = max(np.finfo(float).eps * np.abs(U).max(), np.finfo(float).tiny)
        Y = np.eye(m, dtype=complex)
        for i in range(m - 2, -1, -1):
            num = U[i, i + 1 :] @ Y[i + 1 :, i + 1 :]
            den = U[i, i] - lam[i + 1 :]
            small = np.abs(den) < smin
            den[small] = smin
            Y[i, i + 1 :] = -num / den
        X = Q @ Y
        X /= np.linalg.norm(X, axis=0)
        # Make each conjugate pair exact conjugates (rounding in rsf2csf breaks symmetry).
        for start, size in RealSchur.blocks(T):
            if size == 2:
                a, b = (start, start + 1) if lam[start].imag > 0 else (start + 1, start)
                lam[b] = np.conj(lam[a])
                X[:, b] = np.conj(X[:, a])
        return lam, X


class SymmetricEig:
    """Projected problem of a symmetric operator: ``T`` is diagonal."""

    symmetric = True

    @staticmethod
    def schur(B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eigendecomposition of the symmetric part of ``B``: ``T`` diagonal, ``Z``."""
        w, Z = np.linalg.eigh((B + B.T) / 2)
        return np.diag(w), Z

    @staticmethod
    def reorder(
        T: np.ndarray, Z: np.ndarray, select: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Move the selected positions to the top (a permutation: ``T`` is diagonal)."""
        order = np.concatenate([np.flatnonzero(select), np.flatnonzero(~select)])
        return T[np.ix_(order, order)], Z[:, order], True

    @staticmethod
    def blocks(T: np.ndarray) -> list[tuple[int, int]]:
        """Every position is a 1x1 block."""
        return [(i, 1) for i in range(len(T))]

    @staticmethod
    def ritz(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The diagonal, and the identity as eigenvectors."""
        return np.diag(T).astype(complex), np.eye(len(T), dtype=complex)
