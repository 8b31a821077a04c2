r"""Restarted Krylov–Schur iteration (Stewart, 2001), torch-native.

The iteration keeps a Krylov decomposition

.. math:: A V_j = V_{j+1} \underline{B}_j, \qquad V_{j+1}^\top V_{j+1} = I,

whose basis :math:`V` (``ncv + 1`` vectors of length ``n``) lives on the operator's
device in its dtype (or as :class:`~.basis.KrylovBasis` says: on the host, in a lower
precision, sharded over ranks); only the small :math:`(j+1) \times j` matrix
:math:`\underline{B}_j` (last row :math:`b^\top`) is brought to the host, in float64.

* **Expansion** (Arnoldi): :math:`w = A v_j / s` (:math:`s` a power of two fixed at the
  first product, :class:`~.gram_schmidt.Scale`, so that badly scaled operators neither
  underflow nor overflow), written straight into its basis row and orthogonalised there
  by classical Gram–Schmidt with fused norms, repeated when the first pass kept less than
  :math:`1/\sqrt 2` of the norm (DGKS; see :mod:`~.gram_schmidt`). On breakdown (an
  invariant subspace) the iteration continues with a random vector orthogonal to the
  basis.
* **Convergence**: the Ritz pair :math:`(\theta, V y)` of the projected matrix has
  residual :math:`\|A V y - \theta V y\| = |b^\top y|` (unit :math:`y`); it has
  converged when that is at most ``tol * max(|θ|, sqrt(eps) * max|θ|)``, ARPACK's
  criterion with a floor for eigenvalues tiny next to the spectrum's scale.
  Convergence is checked after every expansion step once the basis is large enough,
  so the iteration can stop before the basis is full.
* **Restart**: Schur form of the projected matrix, wanted Ritz values moved to the
  leading block (LAPACK ``dtrsen``), the decomposition truncated to ``p`` vectors.
  ``p`` follows ARPACK's adaptive rule ``k + min(nconv, (m - k) / 2)``; complex
  conjugate pairs (2x2 blocks of the real Schur form) are never split.
* **Locking**: converged wanted Ritz vectors are moved to the front and, once their
  coupling :math:`b_i` is below ``LOCK_FRACTION * tol * |θ|``, it is set to zero (a
  perturbation well inside the tolerance); they stay in the basis, for
  orthogonality, but take no further part in the Schur updates.

The symmetric case (thick-restart Lanczos with full reorthogonalisation) is the same
iteration with a symmetric projected problem (:class:`~.projected.SymmetricEig`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .basis import KrylovBasis
from .gram_schmidt import BREAKDOWN, Scale, check_product, orthogonalize, unit
from .projected import RealSchur, SymmetricEig
from .which import wanted_order

__all__ = ["KrylovSchur", "Ritz"]

#: Restarts to keep going once only unresolved wanted values are left.
UNRESOLVED_PATIENCE = 3
#: A converged Schur vector is locked once its residual is below this fraction of the
#: tolerance. Locking sets the residual to zero, a perturbation of that size; at the
#: full tolerance it mixes the eigenvectors of a tight cluster (a generator Hessian's
#: top, say) and cost up to 2.2x ARPACK's products on the clustered benchmarks.
LOCK_FRACTION = 0.01


@dataclass
class Ritz:
    """Ritz values of one state of the iteration, and what is wanted of them."""

    lam: np.ndarray  # complex, per diagonal position of the full projected Schur form
    resid: np.ndarray  # residual norm per position
    X: np.ndarray  # unit eigenvectors of the full projected Schur form (columns)
    T: np.ndarray  # Schur form of the active (unlocked) block
    Z: np.ndarray  # its Schur vectors
    blocks: list[tuple[int, int]]  # (start, size) of every diagonal block, full form
    order: np.ndarray  # block indices, most wanted first
    wanted: list[int]  # the wanted block indices (k eigenvalues, pairs whole)
    block_converged: np.ndarray  # per block
    floor: float
    unresolved: list[int]  # wanted blocks that ``which`` cannot tell from unwanted ones
    scale: float = 1.0  # lam, resid and floor are in the operator's units; T is in 1/scale

    @property
    def n_wanted(self) -> int:
        """Eigenvalues in the wanted set (``k``, or ``k + 1`` for a pair at its end)."""
        return sum(self.blocks[b][1] for b in self.wanted)

    @property
    def n_converged(self) -> int:
        """Wanted eigenvalues that converged."""
        return sum(self.blocks[b][1] for b in self.wanted if self.block_converged[b])

    @property
    def done(self) -> bool:
        """Every wanted block converged, those ``which`` cannot resolve aside."""
        return all(self.block_converged[b] for b in self.wanted if b not in self.unresolved)


def rank(
    lam: np.ndarray,
    resid: np.ndarray,
    X: np.ndarray,
    blocks: list[tuple[int, int]],
    which: str,
    k: int,
    tol: float,
    eps: float,
    T: np.ndarray | None = None,
    Z: np.ndarray | None = None,
    *,
    complete: bool = False,
    scale: float = 1.0,
) -> Ritz:
    """Order the Ritz values by ``which``, pick the wanted ``k`` and test convergence.

    A pair counts as one block; the wanted set takes whole blocks until it holds at
    least ``k`` eigenvalues, so a pair at the boundary makes it ``k + 1``.

    With ``which="LI"`` a *real* wanted Ritz value is unresolved: every real
    eigenvalue has the same key (``|Im| = 0``), and complex eigenvalues with small
    imaginary parts lie inside the spectrum, where a Krylov space finds them last,
    so a real Ritz value in the wanted set may stand where an undiscovered complex
    one belongs. Such values are reported as not converged, unless ``complete``
    (the Ritz values are the whole spectrum, as in the dense path).

    ``lam`` and ``resid`` are those of the operator divided by ``scale`` (the test is
    scale-invariant); the returned values are multiplied back.
    """
    reps = np.array([lam[s] if size == 1 or lam[s].imag > 0 else lam[s + 1] for s, size in blocks])
    order = wanted_order(reps, which)
    floor = math.sqrt(eps) * (float(np.abs(lam).max()) if len(lam) else 0.0)
    limit = tol * np.maximum(np.abs(reps), floor)
    block_resid = np.array([resid[s : s + size].max() for s, size in blocks])
    block_converged = block_resid <= limit
    wanted, count = [], 0
    for bi in order:
        if count >= k:
            break
        wanted.append(int(bi))
        count += blocks[bi][1]
    unresolved = [b for b in wanted if which == "LI" and blocks[b][1] == 1 and not complete]
    block_converged[unresolved] = False
    empty = np.zeros((0, 0))
    return Ritz(
        lam * scale,
        resid * scale,
        X,
        empty if T is None else T,
        empty if Z is None else Z,
        blocks,
        order,
        wanted,
        block_converged,
        floor * scale,
        unresolved,
        scale,
    )


def ritz_vectors(basis: KrylovBasis, C: np.ndarray, symmetric: bool) -> torch.Tensor:
    """Unit vectors ``V C`` (complex unless ``symmetric``) on the operator's device."""
    real = basis.combine(C.real)
    if symmetric:
        return real / torch.linalg.vector_norm(real, dim=0)
    vecs = torch.complex(real, basis.combine(C.imag))
    return vecs / torch.linalg.vector_norm(vecs, dim=0)


class KrylovSchur:
    """One restarted Krylov–Schur solve. Build, then call :meth:`run` once.

    Parameters
    ----------
    apply : callable
        ``apply(v) -> A v`` for a vector of shape ``(n,)`` of ``dtype`` on ``device``.
    n, dtype, device
        The operator's order and the vectors' dtype and device.
    k : int
        Number of wanted eigenvalues.
    which : str
        See :mod:`specdiag.linalg.which`.
    tol : float
        Relative tolerance (> 0).
    ncv : int
        Largest basis size ``m`` (``k < m < n``).
    maxiter : int
        Largest number of restarts.
    max_matvecs : int
        Product budget.
    v0 : torch.Tensor
        Start vector (non-zero).
    generator : torch.Generator
        For random vectors after a breakdown.
    symmetric : bool
        Symmetric operator (Lanczos) or not (Arnoldi).
    basis : KrylovBasis, optional
        Where and how the ``ncv + 1`` basis vectors are kept (default: one tensor on
        ``device`` in ``dtype``).
    """

    def __init__(
        self,
        apply: Callable[[torch.Tensor], torch.Tensor],
        n: int,
        dtype: torch.dtype,
        device: torch.device,
        *,
        k: int,
        which: str,
        tol: float,
        ncv: int,
        maxiter: int,
        max_matvecs: int,
        v0: torch.Tensor,
        generator: torch.Generator,
        symmetric: bool,
        basis: KrylovBasis | None = None,
    ) -> None:
        self.apply = apply
        self.n, self.dtype, self.device = n, dtype, device
        self.k, self.which, self.tol, self.m = k, which, tol, ncv
        self.maxiter, self.max_matvecs = maxiter, max_matvecs
        self.generator = generator
        self.proj = SymmetricEig if symmetric else RealSchur
        self.eps = torch.finfo(dtype).eps
        self.basis = KrylovBasis(ncv + 1, n, dtype, device) if basis is None else basis
        self.B = np.zeros((ncv + 1, ncv))
        self.j = 0  # basis vectors with a column in B; V[j] is the residual direction
        self.l = 0  # locked leading vectors
        self.locked_resid = np.zeros(ncv)
        self.n_matvec = 0
        self.n_restarts = 0
        self.first_check = min(ncv, 2 * k + 1)
        self._done_since: int | None = None
        self.scale = Scale(dtype)
        self._restart_row = 0  # j just after the last restart (row j of B is then full)
        self.basis.set(0, self.basis.local(unit(v0)))

    @property
    def V(self) -> torch.Tensor:
        """The basis vectors as stored (see :class:`~.basis.KrylovBasis`), one per row."""
        return self.basis.V

    # ------------------------------------------------------------------ driver
    def run(self) -> tuple[Ritz, str]:
        """Iterate until the wanted eigenvalues converge or a limit is reached.

        Returns the last :class:`Ritz` state and why the iteration stopped:
        ``"converged"``, ``"maxiter"`` or ``"budget"``.
        """
        while True:
            ritz = None
            while self.j < self.m:
                if self.n_matvec >= self.max_matvecs:
                    return self.analyse(), "budget"
                self.expand()
                if self.j >= self.first_check:
                    ritz = self.analyse()
                    if self._finished(ritz):
                        return ritz, "converged"
            if ritz is None:
                ritz = self.analyse()
            if self.n_restarts >= self.maxiter:
                return ritz, "maxiter"
            if self.n_matvec >= self.max_matvecs:
                return ritz, "budget"
            self.restart(ritz)
            self.n_restarts += 1

    def _finished(self, ritz: Ritz) -> bool:
        """Whether the iteration has converged.

        With unresolved wanted values only after ``UNRESOLVED_PATIENCE`` further
        restarts, which give hidden eigenvalues a chance to appear.
        """
        if not ritz.done:
            self._done_since = None
            return False
        if not ritz.unresolved:
            return True
        if self._done_since is None:
            self._done_since = self.n_restarts
        return self.n_restarts - self._done_since >= UNRESOLVED_PATIENCE

    # ------------------------------------------------------------------ expansion
    def expand(self) -> None:
        """One Arnoldi step: column ``j`` of ``B`` and the basis vector ``V[j+1]``."""
        j, basis = self.j, self.basis
        w = check_product(self.apply(basis.full(j)), self.n, self.dtype, self.device)
        self.n_matvec += 1
        x = basis.slot(j + 1)
        basis.load(x, w, self.scale.factor(w))
        known = self._three_term(x, j)
        h, beta, norm0 = orthogonalize(basis, x, j + 1, self.n_matvec)
        if known is not None:  # add back what the three-term step took out
            h[j] += known[1]
            if j > 0:
                h[j - 1] += known[0]
            norm0 = math.sqrt(norm0 * norm0 + known[0] ** 2 + known[1] ** 2)
        self.B[: j + 1, j] = h
        if beta > BREAKDOWN * self.eps * norm0:
            self.B[j + 1, j] = beta
            basis.commit(j + 1, x, 1.0 / beta)
        else:  # invariant subspace: carry on in a random direction orthogonal to V
            self.B[j + 1, j] = 0.0
            self._random_orthogonal(j + 1)
        self.j += 1

    def _three_term(self, x: torch.Tensor, j: int) -> tuple[float, float] | None:
        r"""Lanczos' three-term step on ``x`` = :math:`A v_j` (symmetric operators only).

        For symmetric :math:`A`, :math:`V^\top A v_j` is known but for one entry: row
        ``j`` of ``B`` (here :math:`\beta_{j-1}` alone, except on the first step after
        a restart, where that row holds the restart's coupling and the step is skipped)
        and :math:`\alpha_j = v_j^\top A v_j`. Taking out
        :math:`\beta_{j-1} v_{j-1} + \alpha_j v_j` first (three passes over one vector)
        leaves Gram–Schmidt tiny coefficients, so its first pass keeps the norm and the
        DGKS test passes: one read of the basis less on the steps that would need two.
        Returns :math:`(\beta_{j-1}, \alpha_j)`, or ``None`` when not applicable.
        """
        if not self.proj.symmetric or 0 < j <= self._restart_row:
            return None
        beta = float(self.B[j, j - 1]) if j > 0 else 0.0
        if beta != 0.0:
            self.basis.axpy_row(x, j - 1, -beta)
        alpha = self.basis.dot_row(j, x)
        self.basis.axpy_row(x, j, -alpha)
        return beta, alpha

    def _random_orthogonal(self, count: int) -> None:
        """Store a random unit vector orthogonal to ``V[:count]`` as ``V[count]``."""
        for _ in range(10):
            x = self.basis.slot(count)
            r = torch.randn(self.n, generator=self.generator, dtype=self.dtype, device=self.device)
            self.basis.load(x, r)
            _, nrm, norm0 = orthogonalize(self.basis, x, count)
            if nrm > 0.5 * norm0:
                self.basis.commit(count, x, 1.0 / nrm)
                return
        raise RuntimeError("could not extend the Krylov basis with a random vector")

    # ------------------------------------------------------------------ Ritz values
    def analyse(self) -> Ritz:
        """Ritz values, residuals and the wanted set of the current decomposition."""
        j, nl, B, proj = self.j, self.l, self.B, self.proj
        T, Z = proj.schur(B[nl:j, nl:j])
        full = np.zeros((j, j))
        full[:nl, :nl] = B[:nl, :nl]
        if not proj.symmetric:
            full[:nl, nl:j] = B[:nl, nl:j] @ Z
        full[nl:j, nl:j] = T
        b = np.zeros(j)
        b[nl:] = B[j, nl:j] @ Z
        lam, X = proj.ritz(full)
        resid = np.abs(b @ X)
        resid[:nl] = self.locked_resid[:nl]
        return rank(
            lam,
            resid,
            X,
            proj.blocks(full),
            self.which,
            self.k,
            self.tol,
            self.eps,
            T,
            Z,
            scale=self.scale.s,
        )

    def coefficients(self, ritz: Ritz, positions: list[int]) -> np.ndarray:
        """Coordinates in ``V[:j]`` of the unit Ritz vectors at ``positions`` (complex)."""
        j, nl = self.j, self.l
        Zfull = np.eye(j)
        Zfull[nl:j, nl:j] = ritz.Z
        return Zfull @ ritz.X[:, positions]

    def ritz_vectors(self, ritz: Ritz, positions: list[int]) -> torch.Tensor:
        """Unit Ritz vectors ``V Z X[:, positions]`` on the device (complex unless symmetric)."""
        return ritz_vectors(self.basis, self.coefficients(ritz, positions), self.proj.symmetric)

    # ------------------------------------------------------------------ restart
    def _keep_count(self, ritz: Ritz) -> int:
        """ARPACK's adaptive number of vectors kept at a restart."""
        k_eff, m = ritz.n_wanted, self.m
        p = k_eff + min(ritz.n_converged, (m - k_eff) // 2)
        if p == 1 and m >= 6:
            p = m // 2
        elif p == 1 and m > 2:
            p = 2
        return min(p, m - 1)

    def restart(self, ritz: Ritz) -> None:
        """Truncate the decomposition to the wanted Ritz vectors and lock converged ones."""
        j, nl, proj = self.j, self.l, self.proj
        keep, conv, size = self._kept_blocks(ritz)
        T, Z, conv_size = self._reordered(ritz, keep, conv)
        new_blocks = proj.blocks(T)
        ends = [s + bsize for s, bsize in new_blocks]
        # Smallest block boundary holding the kept vectors, leaving room to expand.
        p_active = next(e for e in ends if e >= size - nl)
        if p_active >= j - nl:
            p_active = max([e for e in ends if e < j - nl], default=0)
        b = self.B[j, nl:j] @ Z
        n_lock = self._lock(ritz, T, b, new_blocks, min(conv_size, p_active))
        b[:n_lock] = 0.0
        # Truncate: V[nl:nl+p] <- Z[:, :p]^T V[nl:j], B updated to match.
        p = nl + p_active
        Zk = Z[:, :p_active]
        self.basis.rotate(nl, j, Zk.T)
        self.basis.copy(p, j)
        B = np.zeros_like(self.B)
        B[:nl, :nl] = self.B[:nl, :nl]
        if not proj.symmetric:
            B[:nl, nl:p] = self.B[:nl, nl:j] @ Zk
        B[nl:p, nl:p] = T[:p_active, :p_active]
        B[p, nl:p] = b[:p_active]
        self.B = B
        self.j = p
        self._restart_row = p
        self.l = nl + n_lock

    def _kept_blocks(self, ritz: Ritz) -> tuple[list[int], list[int], int]:
        """The active blocks a restart keeps, most wanted first, up to the keep count.

        Also the converged wanted ones among them, and the size kept (locked included).
        """
        target = self._keep_count(ritz)
        wanted = set(ritz.wanted)
        keep, size = [], self.l
        for bi in ritz.order:
            start, bsize = ritz.blocks[bi]
            if start < self.l:
                continue
            if size >= target:
                break
            keep.append(int(bi))
            size += bsize
        conv = [bi for bi in keep if bi in wanted and ritz.block_converged[bi]]
        return keep, conv, size

    def _reordered(
        self, ritz: Ritz, keep: list[int], conv: list[int]
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The active Schur form reordered: converged kept blocks first, then the others.

        Returns ``T``, ``Z`` and the size of the converged leading part (0 when LAPACK
        refused a swap: the form is still valid, but nothing is locked).
        """
        j, nl, proj = self.j, self.l, self.proj
        # Active-block coordinates: position of block bi is blocks[bi][0] - nl.
        mask = np.zeros(j - nl, bool)
        for bi in conv:
            s, bsize = ritz.blocks[bi]
            mask[s - nl : s - nl + bsize] = True
        T, Z, ok = proj.reorder(ritz.T, ritz.Z, mask)
        conv_size = int(mask.sum())
        if ok:
            # After the first reorder, blocks sit as [conv in order] + [rest in order].
            moved = conv + [
                bi for bi in range(len(ritz.blocks)) if ritz.blocks[bi][0] >= nl and bi not in conv
            ]
            mask = np.zeros(j - nl, bool)
            pos = 0
            keep_set = set(keep)
            for bi in moved:
                bsize = ritz.blocks[bi][1]
                if bi in keep_set:
                    mask[pos : pos + bsize] = True
                pos += bsize
            T, Z, ok = proj.reorder(T, Z, mask)
        return T, Z, conv_size if ok else 0

    def _lock(
        self, ritz: Ritz, T: np.ndarray, b: np.ndarray, blocks: list[tuple[int, int]], limit: int
    ) -> int:
        """Lock the leading converged blocks whose Schur-vector residual is negligible.

        Returns how many leading active vectors are locked (their residuals recorded).
        """
        n_lock, nl = 0, self.l
        for s, bsize in blocks:
            if s + bsize > limit:
                break
            theta = np.abs(np.linalg.eigvals(T[s : s + bsize, s : s + bsize])).max()
            bnorm = float(np.linalg.norm(b[: s + bsize]))
            if bnorm > LOCK_FRACTION * self.tol * max(theta, ritz.floor / ritz.scale):
                break
            self.locked_resid[nl + s : nl + s + bsize] = bnorm
            n_lock = s + bsize
        return n_lock
