r"""Warm starts: a solve that begins from the subspace a previous solve returned.

Consecutive probes of a training run solve nearby operators, and a probe's cost is its
number of products. :func:`~specdiag.eigs` and :func:`~specdiag.eigsh` return, when
asked (``return_basis=True``), an orthonormal basis :math:`W` (``n x p``) of the wanted
Ritz vectors (for a complex pair, its real and imaginary parts: an approximately
invariant subspace of the operator). Passed back as ``v0`` of the next solve it is
recycled *into the first basis* by :class:`RecycledSolve`.

Why not Krylov–Schur directly? A Krylov–Schur decomposition
:math:`A V = V B + r b^\top` has a rank-one residual; an arbitrary block satisfies only
:math:`A W = W H + R` with :math:`R = (I - W W^\top) A W` of rank :math:`p`, and no
rotation of :math:`W` makes it rank one. So the warm solve is a **block Rayleigh–Ritz
iteration with stored products** (a block Davidson method without preconditioner):

1. :math:`V = \operatorname{orth}[W, z]` with one random direction :math:`z` (an
   eigenvalue that appeared since the last probe has a component there and nowhere in
   :math:`W`), and :math:`AV` by :math:`p + 1` products, **stored**.
2. Rayleigh–Ritz: :math:`H = V^\top (AV)` (exact up to rounding, not a recurrence),
   its Schur form :math:`H = Z T Z^\top`, Ritz pairs :math:`(\theta, x = V Z y)`, ranked by
   ``which`` exactly as in the cold solve (:func:`~.krylov_schur.rank`: the same
   wanted set, pairs whole, the same test). The residuals are **exact**:
   :math:`r = (AV) Z y - \theta\, V Z y` is formed from the stored products (a slab at a
   time) and its norm taken, so a pair has converged when
   :math:`\|r\| \le \mathrm{tol}\cdot\max(|\theta|, \sqrt{\epsilon}\,|\theta|_{\max})`,
   the cold solve's criterion: converged means the same thing.
3. Expansion: the residuals of the wanted pairs that have not converged (real and
   imaginary parts of a complex pair's) and :math:`(I - VV^\top) A e` for the newest
   random-direction vector :math:`e` (a Krylov sequence from :math:`z`, one product per
   iteration), orthogonalised against :math:`V` (:func:`~.gram_schmidt.orthogonalize`)
   and appended; their products are stored; :math:`H` is extended by the new rows and
   columns of :math:`V^\top (AV)`. Unpreconditioned Davidson expansion by residuals is
   a block Krylov step: span(:math:`V`, :math:`r`) :math:`\subset` span(:math:`V`,
   :math:`AV`). Even when every wanted pair has converged, the solve takes
   ``WARM_VERIFY`` steps of the random direction's sequence before it stops: if the
   recycled subspace is invariant, a new outlying eigenvalue (one that appeared since
   the last probe, orthogonal to :math:`W`) would otherwise never be seen; in the
   complement of :math:`W` that sequence is a power iteration that finds it, it enters
   the wanted set, and the iteration goes on.
4. When the next expansion would not fit in ``ncv`` vectors, a thick restart: the
   wanted Schur vectors (reordered to the front, so they span the wanted invariant
   subspace of :math:`H`) and the random-direction vector are kept,
   :math:`V \leftarrow V Q`, :math:`AV \leftarrow (AV) Q`, :math:`H \leftarrow Q^\top H Q`
   (no products).

**A stale subspace** is spotted for two products: the Rayleigh–Ritz step is first taken
on the leading two recycled vectors (the most wanted Ritz vector's and the next); if
neither of their Ritz pairs is within ``WARM_NEAR`` times ``tol``, the operator has moved
too far for the rest to converge in the first basis, and the solve hands over at once
(below), from the recycled vectors summed. Otherwise their products are kept and the
others computed.

**When to hand over.** Block iterations pay only when the recycled subspace is close:
each one costs a product per unconverged pair and, on clustered spectra, cuts the
residuals by a small factor (a block Krylov step of degree one, where a single-vector
Krylov–Schur cycle raises the polynomial degree by ``ncv - p``). So the block phase goes
on only while the worst unconverged relative residual is within ``WARM_NEAR`` times
``tol`` and falls by ``WARM_PROGRESS`` per iteration (at most ``WARM_ITERATIONS``);
otherwise the solve hands over to Krylov–Schur, started from the sum of the current
wanted Ritz vectors (real and imaginary parts) plus a small random part, and testing
convergence at every step from ``k + 1`` vectors on (a start rich in the wanted
eigenvectors can converge before the basis is full). The ``p + 1`` products of the first
Rayleigh–Ritz step are then the price of having looked.

Measured (``scripts/bench_eigs.py --section warm-start``, see docs/benchmarks.md): on
the 200k-parameter MoG GAN trained with Adam (learning rate 1e-4) the wanted
eigenvectors of the player Hessians, which sit in a dense cluster at the top of the
bulk, turn almost completely between probes 50 steps apart (the cosines of the
principal angles between consecutive top-10 subspaces average 0.2--0.4), and after
even one step the recycled Ritz pairs have relative residuals near ``100 tol``: every
warm solve hands over, and the warm start saves what a good start vector saves.

The recycled solve keeps :math:`V` (``ncv + 1`` vectors, reused by a hand-over) and
:math:`AV` (``ncv`` vectors: the memory a restart's temporary takes in a cold solve).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..errors import NonFiniteError
from .basis import KrylovBasis
from .gram_schmidt import Scale, check_product, orthogonalize, unit
from .krylov_schur import Ritz, rank
from .projected import RealSchur, SymmetricEig

__all__ = ["RecycledSolve", "WARM_ITERATIONS"]

#: Block iterations at most before the warm solve hands over to Krylov–Schur.
WARM_ITERATIONS = 4
#: Block iterations continue only while the worst unconverged relative residual is
#: within this factor of ``tol`` ...
WARM_NEAR = 10.0
#: ... and falls by at least this factor per iteration.
WARM_PROGRESS = 2.0
#: Steps of the random direction's Krylov sequence before a converged warm solve may
#: stop: an eigenvalue that appeared outside the recycled subspace shows up there.
WARM_VERIFY = 4
#: Weight of the random part of the hand-over's start vector (relative to its norm).
HANDOVER_NOISE = 1e-3


class RecycledSolve:
    """One warm solve from a block (see the module docstring). Build, then :meth:`run`.

    Parameters
    ----------
    apply : callable
        ``apply(v) -> A v`` for a vector of shape ``(n,)``.
    n, dtype, device
        The operator's order and its vectors' dtype and device.
    k, which, tol, ncv, maxiter, max_matvecs
        As in :class:`~.krylov_schur.KrylovSchur`; ``maxiter`` bounds the block
        iterations too.
    block : torch.Tensor
        Shape ``(n, p)``: the subspace to recycle (need not be orthonormal; dependent
        columns are dropped, and at most ``ncv - 2`` are used).
    generator : torch.Generator
        For the random direction.
    symmetric : bool
    storage : dict
        Keywords of :class:`~.basis.KrylovBasis` (storage dtype, device, group).
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
        block: torch.Tensor,
        generator: torch.Generator,
        symmetric: bool,
        storage: dict,
    ) -> None:
        self.apply, self.n, self.dtype, self.device = apply, n, dtype, device
        self.k, self.which, self.tol, self.m = k, which, tol, ncv
        self.maxiter, self.max_matvecs = maxiter, max_matvecs
        self.generator, self.symmetric = generator, symmetric
        self.proj = SymmetricEig if symmetric else RealSchur
        self.eps = torch.finfo(dtype).eps
        self.V = KrylovBasis(ncv + 1, n, dtype, device, **storage)
        self.AV: KrylovBasis | None = KrylovBasis(ncv, n, dtype, device, **storage)
        self.H = np.zeros((ncv, ncv))
        self.scale = Scale(dtype)
        self.j = 0
        self.n_matvec = 0
        self.iterations = 0
        self.explored = 0  # steps of the random direction's Krylov sequence
        self._start: np.ndarray | None = None  # hand-over coefficients when stale
        self.recycled = self._seed(block)
        self.explorer = np.zeros(ncv)  # coordinates of the random-direction vector
        self.explorer[self.j] = 1.0
        self._explore()

    # ------------------------------------------------------------------ building V
    def _seed(self, block: torch.Tensor) -> int:
        """Orthonormalise the block's columns into ``V`` (at most ``ncv - 2``)."""
        for i in range(block.shape[1]):
            if self.j >= self.m - 2:
                break
            column = block[:, i]
            if bool(torch.any(column != 0)):
                self._append(unit(column))
        return self.j

    def _explore(self) -> None:
        """Append a random direction outside the recycled block.

        The first draw lies inside the block when the block came from a solve started
        from the same seed and stopped within the first Krylov steps (a product budget
        of a few products): the block then spans that start vector. The generator has
        moved on, so the next draw is a fresh direction.
        """
        for _ in range(3):
            if self._append(self._random_vector()):
                return
        raise RuntimeError("could not extend the warm-start basis with a random vector")

    def _random_vector(self) -> torch.Tensor:
        return torch.randn(self.n, generator=self.generator, dtype=self.dtype, device=self.device)

    def _append(self, whole: torch.Tensor) -> bool:
        """Orthogonalise a whole vector against ``V[:j]`` and store it as ``V[j]``."""
        x = self.V.slot(self.j)
        self.V.load(x, whole)
        return self._commit(x)

    def _commit(self, x: torch.Tensor) -> bool:
        _, nrm, nrm0 = orthogonalize(self.V, x, self.j)
        if nrm <= math.sqrt(self.eps) * nrm0 or nrm == 0.0:
            return False
        self.V.commit(self.j, x, 1.0 / nrm)
        self.j += 1
        return True

    def _products(self, start: int) -> None:
        """Store :math:`A V[i] / s` for ``i`` in ``start .. j`` and extend ``H``."""
        assert self.AV is not None
        for i in range(start, self.j):
            w = check_product(self.apply(self.V.full(i)), self.n, self.dtype, self.device)
            self.n_matvec += 1
            x = self.AV.slot(i)
            self.AV.load(x, w, self.scale.factor(w))
            self.AV.commit(i, x)
        j = self.j
        self.H[:j, start:j] = self.V.cross(slice(0, j), self.AV, slice(start, j))
        if self.symmetric:
            self.H[start:j, :start] = self.H[:start, start:j].T
        else:
            self.H[start:j, :start] = self.V.cross(slice(start, j), self.AV, slice(0, start))
        if not np.isfinite(self.H[:j, :j]).all():
            raise NonFiniteError(f"the operator returned NaN or Inf by product {self.n_matvec}")

    # ------------------------------------------------------------------ driver
    def run(self) -> tuple[Ritz, str, list[np.ndarray]]:
        """Iterate until the wanted Ritz pairs converge or the block phase ends.

        Returns the last :class:`~.krylov_schur.Ritz` state (of ``H``, in the
        operator's units), why it stopped (``"converged"``, ``"budget"``,
        ``"maxiter"`` or ``"handover"``) and the residual columns of the unconverged
        wanted pairs (coefficients used by a hand-over).
        """
        if self.j > self.max_matvecs:  # a budget below the block: recycled vectors first
            self.j = self.max_matvecs
            self.explorer[:] = 0.0
        probe = self._probe()
        if probe is not None:
            return probe, "handover", []
        previous = math.inf
        while True:
            ritz, columns = self.analyse()
            done = ritz.done and not ritz.unresolved
            if done and (self.explored >= WARM_VERIFY or self.n_matvec >= self.max_matvecs):
                return ritz, "converged", columns
            if self.n_matvec >= self.max_matvecs:
                return ritz, "budget", columns
            if self.iterations >= self.maxiter:
                return ritz, "maxiter", columns
            if not done:
                worst = self.worst_relative(ritz)
                if (
                    ritz.unresolved
                    or worst > WARM_NEAR * self.tol
                    or worst > previous / WARM_PROGRESS
                    or self.iterations >= WARM_ITERATIONS
                ):
                    return ritz, "handover", columns
                previous = worst
            self._expand(ritz, [] if done else columns)
            self.iterations += 1

    def _probe(self) -> Ritz | None:
        """Look at the leading two recycled vectors first (two products).

        If even the better of their Ritz pairs is no closer than ``WARM_NEAR`` times
        ``tol``, the subspace is stale (the operator moved too far since it was
        computed): the products of the rest would be wasted, and the solve hands over at
        once, from the recycled vectors summed. Returns that Ritz state, or ``None``
        after computing the remaining products (the two are kept: nothing is lost).
        """
        full = self.j
        if self.recycled < 2 or full < 3:
            self._products(0)
            return None
        self.j = 2
        self._products(0)
        ritz, _ = self.analyse()
        self.j = full
        best = min(
            float(ritz.resid[ritz.blocks[bi][0]])
            / max(float(np.abs(ritz.lam[ritz.blocks[bi][0]])), ritz.floor, 1e-300)
            for bi in ritz.wanted
        )
        if best > WARM_NEAR * self.tol:
            self._start = np.zeros(self.m)
            self._start[: self.recycled] = 1.0
            return ritz
        self._products(2)
        return None

    @staticmethod
    def worst_relative(ritz: Ritz) -> float:
        """The largest relative residual among the wanted pairs that have not converged."""
        worst = 0.0
        for bi in ritz.wanted:
            if not ritz.block_converged[bi]:
                start, size = ritz.blocks[bi]
                theta = float(np.abs(ritz.lam[start]))
                worst = max(worst, float(ritz.resid[start]) / max(theta, ritz.floor, 1e-300))
        return worst

    def analyse(self) -> tuple[Ritz, list[np.ndarray]]:
        """Ritz values of ``H``, exact residuals of the wanted ones, the ranking.

        Also returns, per wanted block that has not converged, the coefficient pair
        ``(c, d)`` of its residual columns (:math:`r = AV c - V d`).
        """
        assert self.AV is not None
        j, proj = self.j, self.proj
        T, Z = proj.schur(self.H[:j, :j])
        lam, X = proj.ritz(T)
        blocks = proj.blocks(T)
        s = self.scale.s
        resid = np.full(j, np.inf)
        first = rank(lam, resid, X, blocks, self.which, self.k, self.tol, self.eps, T, Z)
        C, D, owner = self._residual_coefficients(first, lam, X, Z)
        norms = self.V.residual_norms(j, D, self.AV, C) if C.shape[1] else np.zeros(0)
        for bi in first.wanted:
            start, size = blocks[bi]
            cols = [c for c, b in enumerate(owner) if b == bi]
            resid[start : start + size] = math.sqrt(float(np.sum(norms[cols] ** 2)))
        ritz = rank(lam, resid, X, blocks, self.which, self.k, self.tol, self.eps, T, Z, scale=s)
        columns = [
            np.stack([C[:, c], D[:, c]])
            for c, bi in enumerate(owner)
            if not ritz.block_converged[bi] or bi in ritz.unresolved
        ]
        return ritz, columns

    def _residual_coefficients(
        self, ritz: Ritz, lam: np.ndarray, X: np.ndarray, Z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        r"""Real coefficient columns ``C``, ``D`` of the wanted Ritz vectors' residuals.

        Each residual is :math:`AV c - V d` (a pair: its real and imaginary parts); also
        returns the block of each column.
        """
        cs, ds, owner = [], [], []
        for bi in ritz.wanted:
            start, size = ritz.blocks[bi]
            pos = start if size == 1 or lam[start].imag > 0 else start + 1
            y, theta = Z @ X[:, pos], lam[pos]
            if size == 1:
                cs.append(y.real)
                ds.append(theta.real * y.real)
                owner.append(bi)
                continue
            a, b = theta.real, theta.imag
            cs += [y.real, y.imag]
            ds += [a * y.real - b * y.imag, a * y.imag + b * y.real]
            owner += [bi, bi]
        j = self.j
        if not cs:
            return np.zeros((j, 0)), np.zeros((j, 0)), owner
        return np.stack(cs, axis=1), np.stack(ds, axis=1), owner

    # ------------------------------------------------------------------ expansion
    def _expand(self, ritz: Ritz, columns: list[np.ndarray]) -> None:
        """Append the unconverged residuals and the next random-direction vector."""
        j = self.j
        explorer = np.stack([self.explorer[:j], self.H[:j, :j] @ self.explorer[:j]])
        wanted = [explorer, *columns]
        room = self.m - j
        if len(wanted) > room:
            Q = self._restart_basis(ritz)
            wanted = [col @ Q for col in wanted]
            room = self.m - self.j
        budget = self.max_matvecs - self.n_matvec
        start = self.j
        added_explorer = False
        for i, (c, d) in enumerate(wanted[: min(room, budget)]):
            x = self.V.slot(self.j)
            assert self.AV is not None
            self.V.fill(x, start, d, self.AV, c)
            if self._commit(x) and i == 0:
                added_explorer = True
        self.explored += 1
        if added_explorer:
            self.explorer = np.zeros(self.m)
            self.explorer[start] = 1.0
        self._products(start)

    def _restart_basis(self, ritz: Ritz) -> np.ndarray:
        """Thick restart onto the wanted Schur vectors and the random direction.

        Returns ``Q`` (old coordinates x new), with ``V <- V Q``, ``AV <- AV Q`` and
        ``H <- Q^T H Q`` applied.
        """
        assert self.AV is not None
        j, proj = self.j, self.proj
        mask = np.zeros(j, bool)
        for bi in ritz.wanted:
            start, size = ritz.blocks[bi]
            mask[start : start + size] = True
        T, Z, _ = proj.reorder(ritz.T, ritz.Z, mask)
        limit = min(int(mask.sum()), self.m - 2)
        keep = max([e for e in (s + b for s, b in proj.blocks(T)) if e <= limit], default=0)
        e = self.explorer[:j] - Z[:, :keep] @ (Z[:, :keep].T @ self.explorer[:j])
        Q = Z[:, :keep]
        if np.linalg.norm(e) > 1e-8:
            Q = np.concatenate([Q, (e / np.linalg.norm(e))[:, None]], axis=1)
        p = Q.shape[1]
        self.V.rotate(0, j, Q.T)
        self.AV.rotate(0, j, Q.T)
        self.H[:p, :p] = Q.T @ self.H[:j, :j] @ Q
        explorer = Q.T @ self.explorer[:j]
        self.explorer = np.zeros(self.m)
        self.explorer[:p] = explorer
        self.j = p
        return Q

    # ------------------------------------------------------------------ results
    def coefficients(self, ritz: Ritz, positions: list[int]) -> np.ndarray:
        """Coordinates in ``V[:j]`` of the unit Ritz vectors at ``positions``."""
        return ritz.Z @ ritz.X[:, positions]

    def handover_start(self, ritz: Ritz) -> torch.Tensor:
        """The hand-over's start vector.

        The wanted Ritz vectors summed (real and imaginary parts), or the recycled
        vectors summed when they were found stale, plus ``HANDOVER_NOISE`` of a random
        unit vector.
        """
        if self._start is not None:  # stale: the recycled vectors themselves
            c = self._start[: self.recycled]
        else:
            positions = [s for bi in ritz.wanted for s in [ritz.blocks[bi][0]]]
            C = self.coefficients(ritz, positions)
            c = (C.real + C.imag).sum(axis=1)
        v = self.V.combine(c[:, None])[:, 0]
        v = v / torch.linalg.vector_norm(v)
        noise = self._random_vector()
        return v + HANDOVER_NOISE * noise / torch.linalg.vector_norm(noise)

    def release(self) -> KrylovBasis:
        """Free the stored products and hand ``V``'s memory to the next iteration."""
        self.AV = None
        return self.V
