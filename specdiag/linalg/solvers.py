"""``eigs`` and ``eigsh``: the public eigensolvers, in scipy.sparse.linalg's vocabulary."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
import torch

from ..errors import ConvergenceWarning, user_stacklevel
from .arpack import arpack_solve
from .basis import KrylovBasis
from .dense import assemble, dense_ritz
from .krylov_schur import KrylovSchur, Ritz
from .operator import as_operator
from .result import EigResult
from .which import check_which

__all__ = ["eigs", "eigsh", "DEFAULT_MAXITER"]

logger = logging.getLogger("specdiag")

#: Default largest number of restarts.
DEFAULT_MAXITER = 300
BACKENDS = ("krylov-schur", "arpack")


def eigs(
    op: Any,
    k: int = 6,
    which: str = "LM",
    tol: float = 1e-3,
    ncv: int | None = None,
    maxiter: int | None = None,
    v0: torch.Tensor | None = None,
    return_eigenvectors: bool = False,
    generator: torch.Generator | None = None,
    *,
    max_matvecs: int | None = None,
    backend: str = "krylov-schur",
    basis_device: torch.device | str | None = None,
    basis_dtype: torch.dtype | None = None,
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
    return _solve(
        op,
        symmetric=False,
        k=k,
        which=which,
        tol=tol,
        ncv=ncv,
        maxiter=maxiter,
        v0=v0,
        return_eigenvectors=return_eigenvectors,
        generator=generator,
        max_matvecs=max_matvecs,
        backend=backend,
        basis_device=basis_device,
        basis_dtype=basis_dtype,
        basis_group=basis_group,
    )


def eigsh(
    op: Any,
    k: int = 6,
    which: str = "LA",
    tol: float = 1e-3,
    ncv: int | None = None,
    maxiter: int | None = None,
    v0: torch.Tensor | None = None,
    return_eigenvectors: bool = False,
    generator: torch.Generator | None = None,
    *,
    max_matvecs: int | None = None,
    backend: str = "krylov-schur",
    basis_device: torch.device | str | None = None,
    basis_dtype: torch.dtype | None = None,
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
    return _solve(
        op,
        symmetric=True,
        k=k,
        which=which,
        tol=tol,
        ncv=ncv,
        maxiter=maxiter,
        v0=v0,
        return_eigenvectors=return_eigenvectors,
        generator=generator,
        max_matvecs=max_matvecs,
        backend=backend,
        basis_device=basis_device,
        basis_dtype=basis_dtype,
        basis_group=basis_group,
    )


def _solve(
    op: Any,
    *,
    symmetric: bool,
    k: int,
    which: str,
    tol: float,
    ncv: int | None,
    maxiter: int | None,
    v0: torch.Tensor | None,
    return_eigenvectors: bool,
    generator: torch.Generator | None,
    max_matvecs: int | None,
    backend: str,
    basis_device: torch.device | str | None,
    basis_dtype: torch.dtype | None,
    basis_group: Any,
) -> EigResult:
    name = "eigsh" if symmetric else "eigs"
    op = as_operator(op, name)
    n = op.shape[0]
    which = check_which(which, symmetric)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"{name}: k must be an integer with 1 <= k <= n = {n}, got {k!r}")
    k = int(k)
    if not isinstance(tol, (int, float)) or not np.isfinite(tol) or tol < 0:
        raise ValueError(f"{name}: tol must be a finite number >= 0, got {tol!r}")
    eps = torch.finfo(op.dtype).eps
    tol = float(tol) if tol > 0 else eps
    min_ncv = k + 1 if symmetric else k + 2
    if ncv is None:
        ncv = max(2 * k + 1, 20)
    elif not isinstance(ncv, (int, np.integer)) or ncv < min_ncv:
        raise ValueError(
            f"{name}: ncv must be an integer >= {min_ncv} (k + {min_ncv - k}) for k = {k}, got {ncv!r}"
        )
    ncv = int(min(ncv, n))
    if maxiter is None:
        maxiter = DEFAULT_MAXITER
    elif not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise ValueError(f"{name}: maxiter must be a positive integer, got {maxiter!r}")
    if max_matvecs is not None and (
        not isinstance(max_matvecs, (int, np.integer)) or max_matvecs < 1
    ):
        raise ValueError(f"{name}: max_matvecs must be a positive integer, got {max_matvecs!r}")
    budget = int(max_matvecs) if max_matvecs is not None else np.iinfo(np.int64).max
    if backend not in BACKENDS:
        raise ValueError(f"{name}: backend must be one of {BACKENDS}, got {backend!r}")
    custom_basis = (
        basis_device is not None or basis_dtype is not None or basis_group not in (None, False)
    )
    if custom_basis and backend == "arpack":
        raise ValueError(
            f"{name}: basis_device, basis_dtype and basis_group need backend='krylov-schur'"
        )

    transposed = bool(
        not symmetric and not return_eigenvectors and getattr(op, "prefer_transpose", False)
    )
    target = op.T if transposed else op
    if generator is None:
        generator = torch.Generator(device=op.device).manual_seed(0)
    if v0 is None:
        v0 = torch.randn(n, generator=generator, dtype=op.dtype, device=op.device)
    else:
        if not isinstance(v0, torch.Tensor) or tuple(v0.shape) != (n,):
            raise ValueError(f"{name}: v0 must be a tensor of shape ({n},)")
        v0 = v0.detach().to(device=op.device, dtype=op.dtype)
    settings = dict(which=which, tol=tol, ncv=ncv, k_requested=k, transposed=transposed)
    notes: list[str] = []
    start = time.perf_counter()

    if backend == "arpack":
        if n <= min_ncv or k >= n - 1:
            raise ValueError(f"{name}: ARPACK needs k < n - 1 and n > ncv; use the default backend")
        raw = arpack_solve(
            target,
            symmetric=symmetric,
            k=k,
            which=which,
            tol=tol,
            ncv=ncv,
            maxiter=maxiter,
            v0=v0,
            return_eigenvectors=return_eigenvectors,
        )
        vectors = None
        if raw["vectors"] is not None:
            vectors = torch.from_numpy(raw["vectors"]).to(op.device)
        result = EigResult(
            eigenvalues=torch.from_numpy(raw["values"]),
            residuals=torch.from_numpy(raw["resid"]),
            converged=torch.from_numpy(raw["converged"]),
            n_matvec=raw["n_matvec"],
            n_restarts=-1,
            wall_time=raw["wall"],
            backend="arpack",
            eigenvectors=vectors,
            **settings,
        )
        return _warn_unconverged(result, name)

    if n <= ncv or k >= n - 1:
        ritz = dense_ritz(
            assemble(target.matvec, n, op.dtype, op.device),
            symmetric=symmetric,
            which=which,
            k=k,
            tol=tol,
            eps=eps,
        )
        n_matvec, n_restarts, stop, solver = n, 0, "converged", None
        notes.append(f"solved exactly: n = {n} <= ncv or k >= n - 1 ({n} products, dense LAPACK)")
    else:
        solver = KrylovSchur(
            target.matvec,
            n,
            op.dtype,
            op.device,
            k=k,
            which=which,
            tol=tol,
            ncv=ncv,
            maxiter=maxiter,
            max_matvecs=budget,
            v0=v0,
            generator=generator,
            symmetric=symmetric,
            basis=KrylovBasis(
                ncv + 1,
                n,
                op.dtype,
                op.device,
                storage_dtype=basis_dtype,
                storage_device=basis_device,
                group=basis_group,
            )
            if custom_basis
            else None,
        )
        ritz, stop = solver.run()
        n_matvec, n_restarts = solver.n_matvec, solver.n_restarts

    positions = _wanted_positions(ritz)
    values = ritz.lam[positions]
    if len(values) > k:
        notes.append(
            f"returned {len(values)} eigenvalues for k = {k}: the k-th is one of a complex-conjugate pair, kept whole"
        )
        logger.info("%s: %s", name, notes[-1])
    if ritz.unresolved:
        notes.append(
            "which='LI' reached real eigenvalues; complex eigenvalues with small imaginary "
            "parts may lie inside the spectrum, unfound, so those are reported as not "
            "converged: ask for fewer or raise ncv"
        )
    if stop == "budget":
        notes.append(f"stopped at the product budget max_matvecs = {max_matvecs}")
    elif stop == "maxiter":
        notes.append(f"stopped after maxiter = {maxiter} restarts")
    block_of = {s + i: bi for bi, (s, size) in enumerate(ritz.blocks) for i in range(size)}
    converged = np.array([ritz.block_converged[block_of[p]] for p in positions], dtype=bool)
    vectors = None
    if return_eigenvectors:
        if solver is None:
            vec = ritz.X[:, positions]
            vectors = torch.from_numpy(vec.real if symmetric else vec)
            vectors = vectors.to(
                device=op.device, dtype=op.dtype if symmetric else _complex_of(op.dtype)
            )
        else:
            vectors = solver.ritz_vectors(ritz, positions)
    result = EigResult(
        eigenvalues=torch.from_numpy(values.real.copy() if symmetric else values.copy()),
        residuals=torch.from_numpy(ritz.resid[positions].astype(np.float64)),
        converged=torch.from_numpy(converged),
        n_matvec=n_matvec,
        n_restarts=n_restarts,
        wall_time=time.perf_counter() - start,
        backend="krylov-schur",
        eigenvectors=vectors,
        notes=tuple(notes),
        **settings,
    )
    return _warn_unconverged(result, name)


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


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return torch.complex64 if dtype == torch.float32 else torch.complex128


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
