"""``eigs`` and ``eigsh``: the public eigensolvers, in scipy.sparse.linalg's vocabulary.

Both build a :class:`~specdiag.linalg.options.SolverOptions` from their keywords and call
:func:`solve`, the one entry point below them (the probes call it with their own
options). :func:`solve` resolves the settings for the operator, picks the operator the
iteration works on (the transpose when it is cheaper and only eigenvalues are asked
for), and runs one of three paths: an exact dense solve for operators too small for a
Krylov space, the Krylov–Schur iteration, or scipy's ARPACK as a reference. Every path
returns an :class:`~specdiag.EigResult`.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any, Optional

import numpy as np
import torch

from ..errors import ConvergenceWarning, user_stacklevel
from .arpack import arpack_solve
from .basis import KrylovBasis
from .dense import assemble, dense_ritz
from .krylov_schur import KrylovSchur, Ritz
from .operator import as_operator
from .options import DEFAULT_TOL, BasisOptions, SolverOptions, SolveSettings
from .result import EigResult

__all__ = ["eigs", "eigsh", "solve"]

logger = logging.getLogger("specdiag")


def eigs(
    op: Any,
    k: int = 6,
    which: str = "LM",
    tol: float = DEFAULT_TOL,
    ncv: Optional[int] = None,
    maxiter: Optional[int] = None,
    v0: Optional[torch.Tensor] = None,
    return_eigenvectors: bool = False,
    generator: Optional[torch.Generator] = None,
    *,
    max_matvecs: Optional[int] = None,
    backend: str = "krylov-schur",
    basis_device: Optional[torch.device | str] = None,
    basis_dtype: Optional[torch.dtype] = None,
    basis_group: Any = None,
) -> EigResult:
    r"""Top-``k`` eigenvalues of a real, non-symmetric, matrix-free operator.

    Restarted Krylov–Schur (see :mod:`specdiag.linalg.krylov_schur`), torch-native: the
    Krylov basis stays on the operator's device, in its dtype; only the small
    projected problem is solved on the host, in float64.

    Parameters
    ----------
    op : operator or torch.Tensor
        Anything with ``shape`` ``(n, n)``, a float32/float64 ``dtype``, ``device`` and
        ``matvec(v)``; or a square tensor. If ``op.prefer_transpose`` is true and no
        eigenvectors are asked for, ``op.T`` is used instead (same eigenvalues,
        cheaper products): :class:`~specdiag.GameJacobian` uses :math:`J^\top u`.
    k : int
        Number of eigenvalues. Complex-conjugate pairs are never split: if the k-th
        eigenvalue is one of a pair, ``k + 1`` are returned (and ``notes`` says so).
    which : {"LM", "SM", "LR", "SR", "LI", "SI"}
        Largest/smallest magnitude, real part, or absolute imaginary part. ``"LI"``
        finds the fastest rotations of a game. ``"SM"`` converges slowly without
        shift-invert, as in scipy.
    tol : float
        Relative tolerance: a Ritz pair :math:`(\theta, x)` has converged when
        :math:`\|A x - \theta x\| \le \mathrm{tol}\cdot\max(|\theta|, \sqrt{\epsilon}\,
        |\theta|_{\max})`. ``0`` means machine precision of the operator's dtype.
    ncv : int, optional
        Largest Krylov basis, ``k + 2 <= ncv``; default ``max(2k + 1, 20)``. Operators
        with ``n <= ncv`` are solved exactly (``n`` products, dense LAPACK).
    maxiter : int, optional
        Largest number of restarts (default 300).
    v0 : torch.Tensor, optional
        Start vector. Default: a normal random vector from ``generator``.
    return_eigenvectors : bool
        Also return unit right eigenvectors, shape ``(n, k)``, complex.
    generator : torch.Generator, optional
        Random source for the start vector; default a generator on the operator's
        device seeded with 0, so the same call on the same device is reproducible.
    max_matvecs : int, optional
        Product budget; the solve stops there and reports what converged.
    backend : {"krylov-schur", "arpack"}
        ``"arpack"`` runs scipy's ARPACK on the same operator (products cross to
        numpy), as a reference.
    basis_device : torch.device or str, optional
        Keep the Krylov basis (``(ncv + 1) n`` numbers) there instead of on the
        operator's device: ``"cpu"`` moves it to host memory (pinned when the operator
        is on CUDA) when it would not fit next to the model.
    basis_dtype : torch.dtype, optional
        Store the basis in this lower precision (``torch.float16``, ``torch.bfloat16``)
        to halve its memory; eigenvalues are then accurate to about that precision's
        unit roundoff times ``|λ_max|`` (see :mod:`specdiag.linalg.basis`).
    basis_group : ProcessGroup or True, optional
        Shard the basis over the ranks of this ``torch.distributed`` group (``True``:
        the default group): each rank keeps ``1/W`` of every vector. Every rank must
        call the solver alike, with an operator whose products are the same on every
        rank (such as an average all-reduced over the group); the eigenvalues are those
        of the unsharded solve.

    Returns
    -------
    EigResult
        Eigenvalues (complex128, most wanted first), residuals, converged flags,
        product count, and eigenvectors if asked. If the solve stops before every
        wanted eigenvalue converged, a :class:`~specdiag.ConvergenceWarning` is
        issued and ``converged`` says which did; no exception is raised.
    """
    options = SolverOptions(
        k=k,
        which=which,
        tol=tol,
        ncv=ncv,
        maxiter=maxiter,
        max_matvecs=max_matvecs,
        backend=backend,
        basis=BasisOptions(basis_device, basis_dtype, basis_group),
    )
    return solve(
        op,
        options,
        symmetric=False,
        v0=v0,
        generator=generator,
        return_eigenvectors=return_eigenvectors,
    )


def eigsh(
    op: Any,
    k: int = 6,
    which: str = "LA",
    tol: float = DEFAULT_TOL,
    ncv: Optional[int] = None,
    maxiter: Optional[int] = None,
    v0: Optional[torch.Tensor] = None,
    return_eigenvectors: bool = False,
    generator: Optional[torch.Generator] = None,
    *,
    max_matvecs: Optional[int] = None,
    backend: str = "krylov-schur",
    basis_device: Optional[torch.device | str] = None,
    basis_dtype: Optional[torch.dtype] = None,
    basis_group: Any = None,
) -> EigResult:
    r"""Top-``k`` eigenvalues of a real symmetric matrix-free operator.

    Thick-restart Lanczos with full reorthogonalisation (the symmetric case of
    Krylov–Schur). Parameters as in :func:`eigs`, except:

    Parameters
    ----------
    which : {"LA", "SA", "LM", "SM", "BE"}
        Largest/smallest algebraic, largest/smallest magnitude, or both ends
        (``ceil(k/2)`` from the top, ``floor(k/2)`` from the bottom).
    ncv : int, optional
        ``k + 1 <= ncv``; default ``max(2k + 1, 20)``.

    Returns
    -------
    EigResult
        Real (float64) eigenvalues, most wanted first; real eigenvectors if asked.

    Notes
    -----
    Only the symmetric part of the operator is seen: a non-symmetric operator gives
    meaningless results. Player Hessians (:class:`~specdiag.PlayerHessian`) are
    symmetric.
    """
    options = SolverOptions(
        k=k,
        which=which,
        tol=tol,
        ncv=ncv,
        maxiter=maxiter,
        max_matvecs=max_matvecs,
        backend=backend,
        basis=BasisOptions(basis_device, basis_dtype, basis_group),
    )
    return solve(
        op,
        options,
        symmetric=True,
        v0=v0,
        generator=generator,
        return_eigenvectors=return_eigenvectors,
    )


def solve(
    op: Any,
    options: SolverOptions,
    *,
    symmetric: bool,
    v0: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    return_eigenvectors: bool = False,
) -> EigResult:
    """Eigenvalues of ``op`` with ``options``: :func:`eigs` (``symmetric=False``) or
    :func:`eigsh` (``symmetric=True``) without the keyword interface.

    Parameters are those of :func:`eigs`; ``options`` holds the solver settings.
    Issues a :class:`~specdiag.ConvergenceWarning` when a wanted eigenvalue did not
    converge.
    """
    name = "eigsh" if symmetric else "eigs"
    op = as_operator(op, name)
    settings = options.resolve(op.shape[0], op.dtype, symmetric=symmetric)
    transposed = bool(
        not symmetric and not return_eigenvectors and getattr(op, "prefer_transpose", False)
    )
    target = op.T if transposed else op
    if generator is None:
        generator = torch.Generator(device=op.device).manual_seed(0)
    start = _start_vector(v0, op, generator, name)
    if options.backend == "arpack":
        result = arpack_solve(
            target,
            settings,
            symmetric=symmetric,
            v0=start,
            return_eigenvectors=return_eigenvectors,
            transposed=transposed,
        )
    else:
        result = _krylov_schur(
            target,
            settings,
            options.basis,
            symmetric=symmetric,
            v0=start,
            generator=generator,
            return_eigenvectors=return_eigenvectors,
            transposed=transposed,
        )
    return _warn_unconverged(result, name)


def _start_vector(
    v0: Optional[torch.Tensor], op: Any, generator: torch.Generator, name: str
) -> torch.Tensor:
    """``v0`` on the operator's device and dtype, or a normal random vector."""
    n = op.shape[0]
    if v0 is None:
        return torch.randn(n, generator=generator, dtype=op.dtype, device=op.device)
    if not isinstance(v0, torch.Tensor) or tuple(v0.shape) != (n,):
        raise ValueError(f"{name}: v0 must be a tensor of shape ({n},)")
    return v0.detach().to(device=op.device, dtype=op.dtype)


def _krylov_schur(
    op: Any,
    s: SolveSettings,
    basis: BasisOptions,
    *,
    symmetric: bool,
    v0: torch.Tensor,
    generator: torch.Generator,
    return_eigenvectors: bool,
    transposed: bool,
) -> EigResult:
    """The Krylov–Schur iteration, or an exact dense solve when ``n <= ncv`` or
    ``k >= n - 1`` (a Krylov space cannot be built)."""
    n = op.shape[0]
    start = time.perf_counter()
    eps = torch.finfo(op.dtype).eps
    notes: list[str] = []
    solver = None
    if n <= s.ncv or s.k >= n - 1:
        ritz = dense_ritz(
            assemble(op.matvec, n, op.dtype, op.device),
            symmetric=symmetric,
            which=s.which,
            k=s.k,
            tol=s.tol,
            eps=eps,
        )
        n_matvec, n_restarts, stop = n, 0, "converged"
        notes.append(f"solved exactly: n = {n} <= ncv or k >= n - 1 ({n} products, dense LAPACK)")
    else:
        solver = KrylovSchur(
            op.matvec,
            n,
            op.dtype,
            op.device,
            k=s.k,
            which=s.which,
            tol=s.tol,
            ncv=s.ncv,
            maxiter=s.maxiter,
            max_matvecs=s.budget,
            v0=v0,
            generator=generator,
            symmetric=symmetric,
            basis=KrylovBasis(
                s.ncv + 1,
                n,
                op.dtype,
                op.device,
                storage_dtype=basis.dtype,
                storage_device=basis.device,
                group=basis.group,
            )
            if basis.custom
            else None,
        )
        ritz, stop = solver.run()
        n_matvec, n_restarts = solver.n_matvec, solver.n_restarts
    positions = _wanted_positions(ritz)
    notes += _notes(ritz, s, stop, len(positions))
    vectors = None
    if return_eigenvectors:
        vectors = (
            _dense_vectors(ritz, positions, op, symmetric)
            if solver is None
            else solver.ritz_vectors(ritz, positions)
        )
    block_of = {st + i: bi for bi, (st, size) in enumerate(ritz.blocks) for i in range(size)}
    converged = np.array([ritz.block_converged[block_of[p]] for p in positions], dtype=bool)
    values = ritz.lam[positions]
    return EigResult(
        eigenvalues=torch.from_numpy(values.real.copy() if symmetric else values.copy()),
        residuals=torch.from_numpy(ritz.resid[positions].astype(np.float64)),
        converged=torch.from_numpy(converged),
        n_matvec=n_matvec,
        n_restarts=n_restarts,
        wall_time=time.perf_counter() - start,
        which=s.which,
        tol=s.tol,
        ncv=s.ncv,
        backend="krylov-schur",
        k_requested=s.k,
        transposed=transposed,
        eigenvectors=vectors,
        notes=tuple(notes),
    )


def _notes(ritz: Ritz, s: SolveSettings, stop: str, returned: int) -> list[str]:
    """What the caller should know about a Krylov–Schur solve."""
    notes = []
    if returned > s.k:
        notes.append(
            f"returned {returned} eigenvalues for k = {s.k}: the k-th is one of a "
            "complex-conjugate pair, kept whole"
        )
        logger.info("%s", notes[-1])
    if ritz.unresolved:
        notes.append(
            "which='LI' reached real eigenvalues; complex eigenvalues with small imaginary "
            "parts may lie inside the spectrum, unfound, so those are reported as not "
            "converged: ask for fewer or raise ncv"
        )
    if stop == "budget":
        notes.append(f"stopped at the product budget max_matvecs = {s.max_matvecs}")
    elif stop == "maxiter":
        notes.append(f"stopped after maxiter = {s.maxiter} restarts")
    return notes


def _dense_vectors(ritz: Ritz, positions: list[int], op: Any, symmetric: bool) -> torch.Tensor:
    """The unit eigenvectors of a dense solve, on the operator's device."""
    vec = ritz.X[:, positions]
    vectors = torch.from_numpy(vec.real.copy() if symmetric else vec)
    complex_dtype = torch.complex64 if op.dtype == torch.float32 else torch.complex128
    return vectors.to(device=op.device, dtype=op.dtype if symmetric else complex_dtype)


def _wanted_positions(ritz: Ritz) -> list[int]:
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


def _warn_unconverged(result: EigResult, name: str) -> EigResult:
    if not result.all_converged:
        warnings.warn(
            f"{name}: {result.n_converged} of {result.k} eigenvalues converged "
            f"({result.n_matvec} products{'; ' + '; '.join(result.notes) if result.notes else ''}); "
            "raise maxiter or max_matvecs, or loosen tol. The result reports which converged.",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )
    return result
