"""``eigs`` and ``eigsh``: the public eigensolvers, in scipy.sparse.linalg's vocabulary.

Both build a :class:`~specdiag.linalg.options.SolverOptions` from their keywords and call
:func:`solve`, the one entry point below them (the probes call it with their own
options). :func:`solve` resolves the settings for the operator, picks the operator the
iteration works on (the transpose when it is cheaper and only eigenvalues are asked
for), and runs one of the paths of :mod:`specdiag.linalg.paths`: an exact dense solve
for small operators, the Krylov–Schur iteration from a start vector, the recycled
(warm) solve from a block, or scipy's ARPACK as a reference. Every path returns an
:class:`~specdiag.EigResult`.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import torch

from ..errors import ConvergenceWarning, user_stacklevel
from .arpack import arpack_solve
from .operator import as_operator
from .options import DEFAULT_TOL, BasisOptions, SolverOptions
from .paths import krylov_solve
from .result import EigResult

__all__ = ["eigs", "eigsh", "solve"]


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
    return_basis: bool = False,
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
        |\theta|_{\max})` (its ``relative_residuals`` entry is at most ``tol``). The test
        is invariant under scaling the operator: operators with eigenvalues near the
        ends of the floating-point range are solved as well as any. ``0`` means machine
        precision of the operator's dtype.
    ncv : int, optional
        Largest Krylov basis, ``k + 2 <= ncv``; default ``max(2k + 1, 20)``. Small
        operators are solved exactly (``n`` products, dense LAPACK): always when
        ``n <= ncv``; up to ``n = DENSE_MAX_N`` (1024) when ``which`` may lie inside
        the spectrum (``"SR"``, ``"SI"``, ``"SM"``, ``"LI"``), or when the Krylov
        iteration has not converged within ``n`` products (see
        :mod:`specdiag.linalg.paths`).
    maxiter : int, optional
        Largest number of restarts (default 300).
    v0 : torch.Tensor, optional
        Start vector, shape ``(n,)``. Default: a normal random vector from
        ``generator``. Or a block, shape ``(n, p)``: an (approximately) invariant
        subspace, such as ``basis`` of a previous result on a nearby operator, recycled
        into the first basis (a warm start, :mod:`specdiag.linalg.recycle`; at most
        ``ncv - 2`` columns are used). With ``backend="arpack"`` the block's columns
        are summed into one start vector.
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
    return_basis : bool
        Also return ``basis``: a real orthonormal ``(n, m)`` tensor spanning the wanted
        Ritz vectors (real and imaginary parts of a complex pair) of the operator the
        iteration worked on (:math:`A^\top` when ``transposed``), to pass as ``v0`` of
        the next solve on a nearby operator.

    Returns
    -------
    EigResult
        Eigenvalues (complex128, most wanted first), absolute and relative residuals,
        converged flags, product count, and eigenvectors and basis if asked. If the
        solve stops before every wanted eigenvalue converged, a
        :class:`~specdiag.ConvergenceWarning` is issued and ``converged`` says which
        did; no exception is raised.
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
        return_basis=return_basis,
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
    return_basis: bool = False,
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
    symmetric. Small operators are solved exactly as in :func:`eigs` (densely when
    ``which="SM"`` and ``n <= 1024``).
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
        return_basis=return_basis,
    )


def solve(
    op: Any,
    options: SolverOptions,
    *,
    symmetric: bool,
    v0: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    return_eigenvectors: bool = False,
    return_basis: bool = False,
) -> EigResult:
    """Eigenvalues of ``op`` with ``options``: the entry below :func:`eigs` and :func:`eigsh`.

    :func:`eigs` (``symmetric=False``) or :func:`eigsh` (``symmetric=True``) without
    the keyword interface.

    Parameters are those of :func:`eigs`; ``options`` holds the solver settings.
    ``v0`` may be a vector ``(n,)`` or a block ``(n, p)`` to recycle (a warm start, see
    :mod:`specdiag.linalg.recycle`). Issues a :class:`~specdiag.ConvergenceWarning`
    when a wanted eigenvalue did not converge.
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
    start = _start(v0, op, generator, name)
    if options.backend == "arpack":
        result = arpack_solve(
            target,
            settings,
            symmetric=symmetric,
            v0=start if start.ndim == 1 else _one_vector(start, generator),
            return_eigenvectors=return_eigenvectors,
            return_basis=return_basis,
            transposed=transposed,
        )
    else:
        result = krylov_solve(
            target,
            settings,
            options.basis,
            symmetric=symmetric,
            start=start,
            generator=generator,
            return_eigenvectors=return_eigenvectors,
            return_basis=return_basis,
            transposed=transposed,
        )
    return _warn_unconverged(result, name)


def _start(
    v0: Optional[torch.Tensor], op: Any, generator: torch.Generator, name: str
) -> torch.Tensor:
    """``v0`` on the operator's device and dtype, or a normal random vector.

    ``v0`` may be a vector or a block.

    Raises
    ------
    ValueError
        ``v0`` is not a tensor of shape ``(n,)`` or ``(n, p)`` with ``p >= 1``, or holds
        NaN or Inf.
    """
    n = op.shape[0]
    if v0 is None:
        return torch.randn(n, generator=generator, dtype=op.dtype, device=op.device)
    shapes_ok = isinstance(v0, torch.Tensor) and (
        tuple(v0.shape) == (n,) or (v0.ndim == 2 and v0.shape[0] == n and v0.shape[1] >= 1)
    )
    if not shapes_ok:
        got = tuple(v0.shape) if isinstance(v0, torch.Tensor) else type(v0).__name__
        raise ValueError(
            f"{name}: v0 must be a tensor of shape ({n},) (a start vector) or ({n}, p) (a "
            f"block to recycle, such as a previous result's basis), got {got}"
        )
    if v0.is_complex() or not bool(torch.isfinite(v0).all()):
        raise ValueError(f"{name}: v0 must be real and finite")
    return v0.detach().to(device=op.device, dtype=op.dtype)


def _one_vector(block: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The one start vector ARPACK takes: the block's columns summed.

    Plus a small random part, so that the vector is neither zero nor orthogonal to
    everything else.
    """
    v = block.sum(dim=1)
    noise = torch.randn(v.shape[0], generator=generator, dtype=v.dtype, device=v.device)
    scale = torch.linalg.vector_norm(v) / torch.linalg.vector_norm(noise)
    return v + 1e-3 * (scale if scale > 0 else 1.0) * noise


def _warn_unconverged(result: EigResult, name: str) -> EigResult:
    if not result.all_converged:
        notes = "; " + "; ".join(result.notes) if result.notes else ""
        warnings.warn(
            f"{name}: {result.n_converged} of {result.k} eigenvalues converged "
            f"({result.n_matvec} products{notes}); "
            "raise maxiter or max_matvecs, or loosen tol. The result reports which converged.",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )
    return result
