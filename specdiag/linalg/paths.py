r"""How a solve runs (exactly, by Krylov–Schur, or warm) and the :class:`~.EigResult` it gives.

**Which path** (:func:`choose_path`), for an ``n x n`` operator:

* ``n <= ncv`` or ``k >= n - 1``: **dense** (:mod:`~.dense`): no Krylov space fits;
* ``n <= DENSE_MAX_N`` and ``n`` within the product budget: the dense solve costs ``n``
  products and is exact, so

  - for the ``which`` that seek eigenvalues which can lie *inside* the spectrum
    (``eigs``: ``"SR"``, ``"SI"``, ``"SM"``, ``"LI"``; ``eigsh``: ``"SM"``), **dense**:
    a Krylov method finds those last and can report a wrong set as converged, and on
    operators this small it typically needs more than ``n`` products anyway (a
    141-parameter minimax GAN, ``which="LI"``: two of four eigenvalues unconverged
    after 179 products);
  - otherwise **Krylov, then dense**: the Krylov iteration (cold or warm) with a budget
    of ``n`` products; if it has not converged by then, the dense solve. Without
    knowing in advance what the iteration will cost, this never spends more than twice
    the products of the cheaper of the two (and is exact when it falls back);
* otherwise **Krylov**: :class:`~.krylov_schur.KrylovSchur` from a start vector, or
  :class:`~.recycle.RecycledSolve` from a block (a warm start).

**Interior eigenvalues.** On the Krylov path, a ``which`` in ``("SR", "LI", "SI", "SM")``
may miss eigenvalues that lie inside the convex hull of the spectrum: every returned
pair is then a genuine eigenpair within the tolerance (the residual test), but not
necessarily the most wanted one. On rotation-dominated random matrices, ``which="SR"``
reported min Re +0.0014 where the truth was -0.005, all flagged converged (ARPACK fails
the same case). The result's ``notes`` warn (:func:`interior_note`) when the Ritz values
suggest it: for ``"SR"`` and ``"LI"`` when the gap, in the quantity ``which`` orders
by, between the last wanted and the next Ritz value is below ``INTERIOR_MARGIN`` times
the spread of the Ritz values across it (imaginary parts for ``"SR"``, real parts for
``"LI"``): a flat edge of a wide cloud, along which Krylov methods converge slowly and
in no particular order; for ``"SI"`` when a wanted value lies strictly between others
in real part (inside the cloud, not at its ends); for ``"SM"`` when the origin lies
inside the Ritz values' hull (between the smallest and largest real part: the hull of
a conjugation-symmetric set meets the real axis exactly there).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

from .basis import KrylovBasis
from .dense import assemble, dense_ritz
from .krylov_schur import KrylovSchur, Ritz, ritz_vectors
from .options import BasisOptions, SolveSettings
from .recycle import RecycledSolve
from .result import EigResult, relative_residuals

__all__ = [
    "DENSE_MAX_N",
    "INTERIOR_MARGIN",
    "choose_path",
    "krylov_solve",
    "interior_note",
]

#: Largest ``n`` solved densely when cheaper or more reliable than a Krylov solve: its
#: ``n`` products are then no more than a Krylov solve of ``k >= 6`` typically takes on
#: such operators (100-300 on the small GANs of the tests), and LAPACK's O(n^3) float64
#: solve of the assembled matrix (8 MiB) takes about 1.2 s (``eig``) or 0.2 s (``eigh``)
#: on one CPU core; at 2048 it would take 7 s.
DENSE_MAX_N = 1024
#: The ``which`` of each vocabulary that can target eigenvalues inside the spectrum.
INTERIOR = {False: ("SR", "SI", "SM", "LI"), True: ("SM",)}
#: An edge of the Ritz values flatter than this (gap / spread) is noted as risky.
INTERIOR_MARGIN = 0.01


def choose_path(n: int, s: SolveSettings, symmetric: bool) -> str:
    """``"dense"``, ``"krylov"`` or ``"krylov-then-dense"`` (see the module docstring)."""
    if n <= s.ncv or s.k >= n - 1:
        return "dense"
    if n <= DENSE_MAX_N and n <= s.budget:
        return "dense" if s.which in INTERIOR[symmetric] else "krylov-then-dense"
    return "krylov"


@dataclass
class Outcome:
    """The last state of one path, before it becomes an :class:`~.EigResult`."""

    ritz: Ritz
    stop: str
    n_matvec: int
    n_restarts: int
    vectors: Callable[[list[int]], torch.Tensor]  # unit Ritz vectors at positions
    span: Callable[[Ritz], torch.Tensor]  # orthonormal basis of the wanted ones
    complete: bool = False  # the Ritz values are the whole spectrum (dense)
    zero: bool = False  # every product was exactly zero
    notes: list[str] = field(default_factory=list)


def krylov_solve(
    op: Any,
    s: SolveSettings,
    storage: BasisOptions,
    *,
    symmetric: bool,
    start: torch.Tensor,
    generator: torch.Generator,
    return_eigenvectors: bool,
    return_basis: bool,
    transposed: bool,
) -> EigResult:
    """The eigenvalues of ``op`` by the path :func:`choose_path` picks.

    ``start`` is a vector ``(n,)`` (cold) or a block ``(n, p)`` (warm).
    """
    begin = time.perf_counter()
    n = op.shape[0]
    path = choose_path(n, s, symmetric)
    if path == "dense":
        out = dense_outcome(op, s, symmetric)
        why = (
            "n <= ncv or k >= n - 1"
            if n <= s.ncv or s.k >= n - 1
            else f"n <= {DENSE_MAX_N}, and which={s.which!r} can target interior eigenvalues"
        )
        out.notes.append(f"solved exactly: dense LAPACK, {n} products ({why})")
    else:
        limited = dataclasses.replace(s, budget=min(s.budget, n)) if path != "krylov" else s
        out = iterate(op, limited, storage, symmetric, start, generator)
        if path != "krylov" and not out.ritz.done and out.n_matvec + n <= s.budget:
            used = out.n_matvec
            out = dense_outcome(op, s, symmetric)
            out.n_matvec += used
            out.notes.append(
                f"solved exactly: the Krylov iteration had not converged after {used} "
                f"products (n = {n} <= DENSE_MAX_N), so the dense solve took {n} more"
            )
    return build_result(
        out,
        s,
        op,
        symmetric=symmetric,
        return_eigenvectors=return_eigenvectors,
        return_basis=return_basis,
        transposed=transposed,
        wall=time.perf_counter() - begin,
    )


# ---------------------------------------------------------------------- the paths
def dense_outcome(op: Any, s: SolveSettings, symmetric: bool) -> Outcome:
    """The exact solve of the assembled matrix (``n`` products)."""
    n = op.shape[0]
    A = assemble(op.matvec, n, op.dtype, op.device)
    eps = torch.finfo(op.dtype).eps
    ritz = dense_ritz(A, symmetric=symmetric, which=s.which, k=s.k, tol=s.tol, eps=eps)
    complex_dtype = torch.complex64 if op.dtype == torch.float32 else torch.complex128

    def vectors(positions: list[int]) -> torch.Tensor:
        vec = ritz.X[:, positions]
        out = torch.from_numpy(vec.real.copy() if symmetric else vec)
        return out.to(device=op.device, dtype=op.dtype if symmetric else complex_dtype)

    def span(r: Ritz) -> torch.Tensor:
        Q = orthonormal_span(r)
        return torch.from_numpy(Q).to(device=op.device, dtype=op.dtype)

    return Outcome(ritz, "converged", n, 0, vectors, span, complete=True, zero=not A.any())


def iterate(
    op: Any,
    s: SolveSettings,
    storage: BasisOptions,
    symmetric: bool,
    start: torch.Tensor,
    generator: torch.Generator,
) -> Outcome:
    """Krylov–Schur from a vector, or the recycled solve from a block."""
    kwargs = _storage(storage)
    if start.ndim == 2:
        return _warm(op, s, kwargs, symmetric, start, generator)
    basis = KrylovBasis(s.ncv + 1, op.shape[0], op.dtype, op.device, **kwargs) if kwargs else None
    return _cold(op, s, symmetric, start, generator, basis, done=(0, 0))


def _storage(storage: BasisOptions) -> dict:
    if not storage.custom:
        return {}
    return {
        "storage_dtype": storage.dtype,
        "storage_device": storage.device,
        "group": storage.group,
    }


def _cold(
    op: Any,
    s: SolveSettings,
    symmetric: bool,
    v0: torch.Tensor,
    generator: torch.Generator,
    basis: Optional[KrylovBasis],
    *,
    done: tuple[int, int],
    first_check: Optional[int] = None,
) -> Outcome:
    """Krylov–Schur from ``v0``.

    ``done`` = (products, restarts) already spent by a warm phase; ``first_check``: the
    basis size from which convergence is tested at every step.
    """
    solver = KrylovSchur(
        op.matvec,
        op.shape[0],
        op.dtype,
        op.device,
        k=s.k,
        which=s.which,
        tol=s.tol,
        ncv=s.ncv,
        maxiter=max(1, s.maxiter - done[1]),
        max_matvecs=max(1, s.budget - done[0]),
        v0=v0,
        generator=generator,
        symmetric=symmetric,
        basis=basis,
    )
    if first_check is not None:
        solver.first_check = first_check
    ritz, stop = solver.run()

    def vectors(positions: list[int]) -> torch.Tensor:
        return solver.ritz_vectors(ritz, positions)

    def span(r: Ritz) -> torch.Tensor:
        return solver.basis.combine(orthonormal_span(r, solver.coefficients))

    return Outcome(
        ritz,
        stop,
        solver.n_matvec + done[0],
        solver.n_restarts + done[1],
        vectors,
        span,
        zero=solver.scale.value is None,
    )


def _warm(
    op: Any,
    s: SolveSettings,
    storage: dict,
    symmetric: bool,
    block: torch.Tensor,
    generator: torch.Generator,
) -> Outcome:
    """The recycled solve from ``block``; Krylov–Schur if it hands over."""
    solver = RecycledSolve(
        op.matvec,
        op.shape[0],
        op.dtype,
        op.device,
        k=s.k,
        which=s.which,
        tol=s.tol,
        ncv=s.ncv,
        maxiter=s.maxiter,
        max_matvecs=s.budget,
        block=block,
        generator=generator,
        symmetric=symmetric,
        storage=storage,
    )
    ritz, stop, _ = solver.run()
    note = (
        f"warm start: {solver.recycled} of {block.shape[1]} recycled vectors and one random "
        f"direction; {solver.iterations} block iteration(s), {solver.n_matvec} products"
    )
    if stop == "handover":
        done = (solver.n_matvec, solver.iterations)
        v0 = solver.handover_start(ritz)
        out = _cold(
            op, s, symmetric, v0, generator, solver.release(), done=done, first_check=s.k + 1
        )
        out.notes.append(note + ", then Krylov–Schur from their Ritz vectors")
        return out

    def vectors(positions: list[int]) -> torch.Tensor:
        return ritz_vectors(solver.V, solver.coefficients(ritz, positions), symmetric)

    def span(r: Ritz) -> torch.Tensor:
        return solver.V.combine(orthonormal_span(r, solver.coefficients))

    out = Outcome(
        ritz,
        stop,
        solver.n_matvec,
        solver.iterations,
        vectors,
        span,
        zero=solver.scale.value is None,
    )
    out.notes.append(note)
    return out


# ---------------------------------------------------------------------- results
def orthonormal_span(
    ritz: Ritz, coefficients: Optional[Callable[[Ritz, list[int]], np.ndarray]] = None
) -> np.ndarray:
    r"""A real orthonormal basis (float64 columns) of the wanted Ritz vectors.

    ``coefficients(ritz, positions)`` gives their coordinates in the iteration's basis;
    without it, ``ritz.X`` holds the vectors themselves (dense). One column per real
    eigenvalue, two (real and imaginary parts) per complex pair, orthonormalised by QR;
    columns that QR finds dependent (``|R_ii|`` below ``1e-10`` of the largest) are
    dropped.
    """
    firsts = [ritz.blocks[bi][0] for bi in ritz.wanted]
    C = ritz.X[:, firsts] if coefficients is None else coefficients(ritz, firsts)
    pairs = [i for i, bi in enumerate(ritz.wanted) if ritz.blocks[bi][1] == 2]
    R = np.concatenate([C.real, C.imag[:, pairs]], axis=1) if len(C) else np.zeros((0, 0))
    if R.size == 0:
        return np.zeros((C.shape[0], 0))
    Q, Rr = np.linalg.qr(R)
    diag = np.abs(np.diag(Rr))
    return np.ascontiguousarray(Q[:, diag > 1e-10 * diag.max()])


def wanted_positions(ritz: Ritz) -> list[int]:
    """Diagonal positions of the wanted eigenvalues, most wanted first, pairs (+, -)."""
    positions: list[int] = []
    for bi in ritz.wanted:
        s, size = ritz.blocks[bi]
        if size == 1:
            positions.append(s)
        else:
            plus = s if ritz.lam[s].imag > 0 else s + 1
            positions.extend([plus, 2 * s + 1 - plus])
    return positions


def build_result(
    out: Outcome,
    s: SolveSettings,
    op: Any,
    *,
    symmetric: bool,
    return_eigenvectors: bool,
    return_basis: bool,
    transposed: bool,
    wall: float,
) -> EigResult:
    """The :class:`~.EigResult` of a path's last state."""
    ritz = out.ritz
    positions = wanted_positions(ritz)
    block_of = {st + i: bi for bi, (st, size) in enumerate(ritz.blocks) for i in range(size)}
    converged = np.array([ritz.block_converged[block_of[p]] for p in positions], dtype=bool)
    values = ritz.lam[positions]
    resid = ritz.resid[positions].astype(np.float64)
    relative = relative_residuals(resid, values, ritz.floor)
    notes = out.notes + result_notes(out, s, len(positions))
    return EigResult(
        eigenvalues=torch.from_numpy(values.real.copy() if symmetric else values.copy()),
        residuals=torch.from_numpy(resid),
        converged=torch.from_numpy(converged),
        relative_residuals=torch.from_numpy(relative.astype(np.float64)),
        n_matvec=out.n_matvec,
        n_restarts=out.n_restarts,
        wall_time=wall,
        which=s.which,
        tol=s.tol,
        ncv=s.ncv,
        backend="krylov-schur",
        k_requested=s.k,
        transposed=transposed,
        eigenvectors=out.vectors(positions) if return_eigenvectors else None,
        notes=tuple(notes),
        basis=out.span(ritz) if return_basis else None,
    )


def result_notes(out: Outcome, s: SolveSettings, returned: int) -> list[str]:
    """What the caller should know about a solve."""
    ritz, notes = out.ritz, []
    if returned > s.k:
        notes.append(
            f"returned {returned} eigenvalues for k = {s.k}: the k-th is one of a "
            "complex-conjugate pair, kept whole"
        )
    if ritz.unresolved:
        notes.append(
            "which='LI' reached real eigenvalues; complex eigenvalues with small imaginary "
            "parts may lie inside the spectrum, unfound, so those are reported as not "
            "converged: ask for fewer or raise ncv"
        )
    if out.zero:
        notes.append("every product was exactly zero: the operator is zero on what was seen")
    if not out.complete:
        interior = interior_note(ritz, s.which)
        if interior:
            notes.append(interior)
    if out.stop == "budget":
        notes.append(f"stopped at the product budget max_matvecs = {s.max_matvecs}")
    elif out.stop == "maxiter":
        notes.append(f"stopped after maxiter = {s.maxiter} restarts")
    return notes


def interior_note(ritz: Ritz, which: str) -> Optional[str]:
    """A warning when ``which`` may have missed eigenvalues inside the spectrum.

    See the module docstring for the criteria; ``None`` when they do not apply.
    """
    lam = ritz.lam
    wanted = [s for bi in ritz.wanted for s in range(ritz.blocks[bi][0], sum(ritz.blocks[bi]))]
    rest = np.setdiff1d(np.arange(len(lam)), wanted)
    if which not in ("SR", "LI", "SI", "SM") or not len(rest) or not wanted:
        return None
    w, r = lam[wanted], lam[rest]
    if which == "SR":
        gap, spread = r.real.min() - w.real.max(), np.ptp(lam.imag)
        risky = gap < INTERIOR_MARGIN * spread
    elif which == "LI":
        gap, spread = np.abs(w.imag).min() - np.abs(r.imag).max(), np.ptp(lam.real)
        risky = gap < INTERIOR_MARGIN * spread
    elif which == "SI":
        risky = bool(np.any((w.real > r.real.min()) & (w.real < r.real.max())))
    else:
        risky = bool(lam.real.min() < 0.0 < lam.real.max())
    if not risky:
        return None
    return (
        f"which={which!r} seeks eigenvalues that can lie inside the spectrum, where Krylov "
        "methods find them last: each returned value is an eigenvalue to the tolerance, "
        "but more wanted ones may exist unfound (check with a larger ncv, or compare with "
        "the dense solve on a smaller problem)"
    )
