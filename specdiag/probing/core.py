r"""One probe: the spectra of a game's operators at the current parameters.

:func:`probe` evaluates the game's vector field once on a batch (one
:class:`~specdiag.GameField`, graph kept), builds the game Jacobian and the players'
Hessians on it, computes a few eigenvalues of each with the Krylov solvers, and
returns a :class:`ProbeRecord`. It is what :class:`~specdiag.SpectrumMonitor` calls
every so many training steps, and it is usable on its own.

A probe is invisible to the training run around it:

* parameters are never written (a parameter whose version counter moved during the
  probe -- the losses closure changed it in place -- is reported);
* ``.grad`` fields are set aside for the probe and put back as the same tensor
  objects, so a pre-existing gradient stays bitwise equal and ``None`` stays ``None``;
* buffers (BatchNorm running statistics, spectral-norm vectors), ``requires_grad``
  and ``training`` flags are preserved by :meth:`Game.evaluation`;
* the global random streams (CPU and the game's CUDA device) are forked: noise drawn
  inside the losses closure comes from a stream seeded with ``seed``, so two probes of
  the same weights give the same numbers, and training draws what it would have drawn;
* autocast is off and the probe runs in the parameters' dtype;
* models wrapped by ``DistributedDataParallel``, ``DataParallel`` or
  ``torch.compile`` are run through their underlying modules (no collective
  communication, no compilation, which cannot differentiate twice anyway).

A probe never raises into the training loop because of the numbers: a NaN or Inf
loss, gradient or product, an exception inside the losses closure, or a solve that
stops before converging is recorded in the record (``status``, NaN eigenvalues or
``converged`` flags, ``message``) with a :class:`~specdiag.ProbeWarning`, unless
``on_error="raise"``. Mistakes in the arguments or in the game's definition (a loss
missing for a player, a loss that is not a scalar) are bugs and always raise.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..dynamics import UpdateRule, helmholtz_split
from ..errors import (
    ConvergenceWarning,
    LossClosureError,
    NonFiniteError,
    ProbeWarning,
    user_stacklevel,
)
from ..game import Game, GameField, GameJacobian, PlayerHessian
from ..linalg import eigs, eigsh
from ..linalg.operator import LinearOperator
from ..stability import max_stable_lr
from .distributed import (
    AveragedOperator,
    ProbeGroup,
    agree,
    check_device,
    check_share,
    resolve_group,
)
from .isolation import untouched
from .memory import probe_memory
from .plan import Plan, check_settings, plan_operators
from .records import OperatorRecord, ProbeRecord
from .scalars import SCALARS, spectrum_scalars

__all__ = ["probe"]

#: Float32 products resolve relative residuals down to about this.
_RESIDUAL_FLOOR = 1e-6


def probe(
    game: Game,
    batch: Any = None,
    *,
    k: int = 10,
    operators: Sequence[str] | None = None,
    which: str | Mapping[str, str] | None = None,
    tol: float = 1e-3,
    ncv: int | None = None,
    maxiter: int | None = None,
    max_matvecs: int | None = None,
    seed: int | None = 0,
    on_error: str = "warn",
    step: int | None = None,
    batch_index: int = 0,
    backend: str = "krylov-schur",
    distributed: bool | Any | None = None,
    shard_weight: float | None = None,
    basis_device: torch.device | str | None = None,
    basis_dtype: torch.dtype | None = None,
    shard_basis: bool = False,
    update: UpdateRule | None = None,
    helmholtz: int | None = None,
) -> ProbeRecord:
    r"""Probe the spectra of a game's operators at the current parameters.

    Evaluates the losses once on ``batch`` (one :class:`~specdiag.GameField`), then
    computes ``k`` eigenvalues of each operator on that graph: the game Jacobian with
    :func:`~specdiag.eigs` (through the cheaper product :math:`J^\top u`) and the
    players' Hessians with :func:`~specdiag.eigsh`. The models are left exactly as they
    were (see the module's documentation).

    Parameters
    ----------
    game : Game
    batch : object
        Passed to the losses closure once.
    k : int
        Eigenvalues per operator (at most the operator's order: fewer for a smaller
        operator).
    operators : sequence of str, optional
        ``"jacobian"`` and/or player names (their Hessians). Default: the Jacobian and
        every player's Hessian.
    which : str or mapping, optional
        A string applies to the Jacobian; a mapping ``{operator: which}`` sets any.
        Defaults: ``"LM"`` for the Jacobian, ``"LA"`` for Hessians.
    tol, ncv, maxiter, backend
        Passed to the solvers (see :func:`~specdiag.eigs`).
    max_matvecs : int, optional
        Product budget of *each* operator's solve, so that a probe cannot stall
        training. A solve stopped there before converging has status ``"budget"``.
    seed : int or None
        Seeds the (forked) random stream the losses closure draws its noise from, and
        the solvers' start vectors: the same seed on the same weights gives the same
        eigenvalues. ``None``: the closure draws what the training run would draw next
        (without consuming it).
    on_error : {"warn", "ignore", "raise"}
        A failure (NaN/Inf, an exception in the closure or the solver) or an
        unconverged solve is recorded in the returned record; ``"warn"`` also issues a
        :class:`~specdiag.ProbeWarning`, ``"ignore"`` does not, ``"raise"`` re-raises
        a failure's exception (after restoring the models) and warns on unconverged
        solves.
    step, batch_index : int
        Stored in the record.
    distributed : None, bool or ProcessGroup
        Under ``torch.distributed`` (see :mod:`specdiag.probing.distributed`): ``None``
        (default) probes with every rank of the default group when it is initialised
        with more than one rank; a ``ProcessGroup``: with that group; ``False``: this
        process alone. In a distributed probe every rank of the group must call
        :func:`probe` with the same settings, each with its own shard of the batch;
        the products are averaged over the ranks, so the eigenvalues are those of the
        global batch, the same on every rank. The losses closure on rank ``r`` draws
        its noise from a stream seeded with ``seed + r``.
    shard_weight : float, optional
        This rank's share of the global batch, in any unit (e.g. its number of
        examples): rank ``r``'s products and losses are weighted by
        ``shard_weight / sum of all ranks' shard_weight``. Default: equal shares,
        exact for losses that are means over equal-sized shards.
    basis_device, basis_dtype : optional
        Keep the solvers' Krylov bases (``(ncv + 1) n`` numbers) in host memory
        (``"cpu"``; pinned when the game is on CUDA) or in a lower precision
        (``torch.float16``): see :func:`~specdiag.eigs`.
    shard_basis : bool
        In a distributed probe, shard each Krylov basis over the ranks (each keeps
        ``1/W`` of every vector); same eigenvalues. No effect in a single process.
    update : UpdateRule, optional
        Also probe the update operator :math:`\partial T` of the run's optimiser
        (operator ``"update"``, kind ``"update"``): its ``k`` eigenvalues of largest
        modulus, with scalars ``spectral_radius`` (:math:`\rho`, the largest
        :math:`|\mu|` computed), ``max_stable_lr`` (:func:`~specdiag.max_stable_lr` of
        the Jacobian's computed eigenvalues for the rule's method; for gradient descent
        with per-player step sizes or a preconditioner, of the eigenvalues
        :math:`\nu = (1 - \mu)/\eta` of :math:`(H/\eta)J` from :math:`\partial T`'s
        computed ones, so the bound is on :math:`\eta`, the largest step size, with the
        others in proportion; NaN for the other methods without a closed form, or
        without the Jacobian) and ``lr`` (the step size used). Its eigenvalues
        cluster near 1 at small step sizes, so its tolerance is ``tol`` times
        :math:`\min(1, \eta|\lambda|_{\max})` (the Jacobian's), no lower than 1e-6:
        :math:`\rho - 1` is then resolved.
    helmholtz : int, optional
        Also estimate the Helmholtz split of the Jacobian from this many Hutchinson
        samples (operator ``"helmholtz"``, kind ``"helmholtz"``, no eigenvalues; scalars
        as :class:`~specdiag.HelmholtzEstimate`'s).

    Before the solves, once the field is built, the probe compares the memory the
    solves need (:func:`~specdiag.probing.memory.probe_memory`) with the memory free on each
    device; when it would not fit, the probe is recorded as failed (``"error"``, a
    ``MemoryError`` with ``on_error="raise"``) with a message naming the options above.

    Returns
    -------
    ProbeRecord
        A mapping from operator names to :class:`OperatorRecord`.

    Raises
    ------
    ValueError
        An unknown operator name, a bad ``which`` or solver setting.
    GameDefinitionError, TypeError
        The losses closure returned something that is not one scalar loss per player.

    Examples
    --------
    >>> from specdiag import toys
    >>> toy = toys.dirac_gan(loss="standard", r1=0.3)
    >>> rec = probe(toy.game, k=2)
    >>> round(rec["jacobian"].scalars["min_real"], 6)
    0.15
    """
    check_settings(k, tol, ncv, maxiter, max_matvecs, seed, on_error, backend)
    plans = plan_operators(game, operators, which, int(k), update, helmholtz)
    share = check_share(shard_weight)
    group = resolve_group(distributed)
    if group is not None:
        check_device(group, game.device)
    start = time.perf_counter()
    problems: list[str] = []
    records: dict[str, OperatorRecord] = {}
    losses = dict.fromkeys(game.player_names, float("nan"))
    with untouched(game) as moved:
        field_seed = seed if group is None or seed is None else seed + group.rank
        field_, failure = _build_field(game, batch, field_seed)
        build_time = time.perf_counter() - start
        shard = shard_basis and group is not None
        if failure is None:
            failure = _memory_failure(
                game,
                plans,
                ncv=ncv,
                basis_device=basis_device,
                basis_dtype=basis_dtype,
                world_size=1 if group is None else group.world_size,
                shard_basis=shard,
                update=None if update is None else update.method,
            )
        own_failure = failure is not None
        weight = 1.0
        if field_ is not None:
            losses = dict(field_.losses)
        if group is not None:
            agreement = agree(
                group, failure[0] if failure else "ok", share, list(losses.values()), game.device
            )
            weight = agreement.weight
            others = {r: s for r, s in agreement.failed.items() if r != group.rank}
            losses = (
                dict.fromkeys(game.player_names, float("nan"))
                if agreement.failed
                else dict(zip(game.player_names, agreement.losses))
            )
            if failure is None and others:
                failure = _failed_elsewhere(others)
        if failure is not None:
            status, message, exc = failure
            if on_error == "raise":
                raise exc
            records = {p.name: _failed(p, status, message, 0, 0.0) for p in plans}
            what = "the probe was refused" if isinstance(exc, MemoryError) else "the losses failed"
            problems.append(f"{what} ({status}): {message}")
        else:
            for plan in plans:
                settings = dict(
                    tol=tol,
                    ncv=ncv,
                    maxiter=maxiter,
                    max_matvecs=max_matvecs,
                    seed=seed,
                    backend=backend,
                    on_error=on_error,
                    group=group,
                    weight=weight,
                    basis=dict(
                        basis_device=basis_device,
                        basis_dtype=basis_dtype,
                        basis_group=(group.group or True) if shard else None,
                    ),
                )
                if plan.kind in ("update", "helmholtz"):
                    records[plan.name] = _probe_dynamics(
                        field_, plan, records.get("jacobian"), update, helmholtz, **settings
                    )
                else:
                    records[plan.name] = _solve(field_, plan, **settings)
            problems.extend(
                f"{r.name}: {r.status}" + (f" ({r.message})" if r.message else "")
                for r in records.values()
                if r.status != "ok"
            )
        del field_
    message = ""
    if moved:
        message = (
            f"the losses closure changed parameter(s) in place ({', '.join(moved)}); a probe "
            "cannot undo that: compute the losses without modifying the parameters"
        )
        problems.append(message)
    status = next((r.status for r in records.values() if r.status != "ok"), "ok")
    record = ProbeRecord(
        step=None if step is None else int(step),
        batch_index=int(batch_index),
        seed=None if seed is None else int(seed),
        losses=losses,
        wall_time=time.perf_counter() - start,
        build_time=build_time,
        status=status,
        operators=records,
        message=message,
    )
    # Under torch.distributed rank 0 speaks for the group; other ranks only of their own failures.
    speaks = group is None or group.rank == 0 or own_failure or bool(moved)
    if problems and on_error != "ignore" and speaks:
        where = "probe" if step is None else f"probe at step {step}"
        if batch_index:
            where += f" (batch {batch_index})"
        warnings.warn(
            f"specdiag {where}: " + "; ".join(problems),
            ProbeWarning,
            stacklevel=user_stacklevel(),
        )
    return record


def _solve(
    field_: GameField,
    plan: Plan,
    *,
    tol: float,
    ncv: int | None,
    maxiter: int | None,
    max_matvecs: int | None,
    seed: int | None,
    backend: str,
    on_error: str,
    group: ProbeGroup | None,
    weight: float,
    basis: Mapping[str, Any],
    op: LinearOperator | None = None,
) -> OperatorRecord:
    """One operator's solve on the probe's field, failures recorded; with a ``group``
    the products are averaged over its ranks with this rank's ``weight``. ``op`` is the
    operator (default: the plan's Jacobian or Hessian).
    """
    solver = eigsh if plan.kind == "hessian" else eigs
    if op is None:
        op = (
            GameJacobian.from_field(field_)
            if plan.kind == "jacobian"
            else PlayerHessian.from_field(field_, plan.name)
        )
    if group is not None:
        op = AveragedOperator(op, group, weight)
    generator = torch.Generator(device=op.device).manual_seed(0 if seed is None else int(seed))
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = solver(
                op,
                k=plan.k,
                which=plan.which,
                tol=tol,
                ncv=ncv,
                maxiter=maxiter,
                generator=generator,
                max_matvecs=max_matvecs,
                backend=backend,
                **basis,
            )
    except Exception as exc:  # recorded, not raised: a probe must not stop training
        if on_error == "raise":
            raise
        status = "nonfinite" if isinstance(exc, NonFiniteError) else "error"
        return _failed(plan, status, _describe(exc), op.n_products, time.perf_counter() - start)
    eigenvalues = result.eigenvalues.numpy().astype(np.complex128)
    converged = result.converged.numpy().astype(bool)
    notes = list(result.notes)
    if converged.all():
        status = "ok"
    else:
        budget = max_matvecs is not None and result.n_matvec >= max_matvecs
        status = "budget" if budget else "unconverged"
        notes.insert(0, f"{int(converged.sum())} of {len(converged)} eigenvalues converged")
    return OperatorRecord(
        name=plan.name,
        kind=plan.kind,
        which=plan.which,
        eigenvalues=eigenvalues,
        residuals=result.residuals.numpy().astype(np.float64),
        converged=converged,
        n_matvec=int(result.n_matvec),
        wall_time=time.perf_counter() - start,
        status=status,
        message="; ".join(notes),
        scalars=spectrum_scalars(plan.kind, eigenvalues),
    )


def _probe_dynamics(
    field_: GameField,
    plan: Plan,
    jacobian: OperatorRecord | None,
    update: UpdateRule | None,
    helmholtz: int | None,
    *,
    tol: float,
    seed: int | None,
    on_error: str,
    group: ProbeGroup | None,
    weight: float,
    **settings: Any,
) -> OperatorRecord:
    """The update operator's solve, or the Helmholtz estimate, on the probe's Jacobian."""
    J = GameJacobian.from_field(field_)
    computed = np.empty(0, dtype=np.complex128)
    if jacobian is not None:
        computed = jacobian.eigenvalues[np.isfinite(jacobian.eigenvalues)]
    if plan.kind == "helmholtz":
        return _helmholtz(plan, J, int(helmholtz), seed, on_error, group, weight)
    assert update is not None
    try:
        op = update.operator(J)  # reads the optimizers' state now
    except Exception as exc:  # e.g. an optimizer that has not stepped yet
        if on_error == "raise":
            raise
        return _failed(plan, "error", _describe(exc), 0, 0.0)
    # ‖HJ‖ <= max step size * |λ|max: the scale of ρ - 1, which the tolerance must resolve
    scale = float(op.step_sizes.abs().max()) * (np.abs(computed).max() if computed.size else 1.0)
    record = _solve(
        field_,
        plan,
        tol=max(tol * min(1.0, scale), _RESIDUAL_FLOOR),
        seed=seed,
        on_error=on_error,
        group=group,
        weight=weight,
        op=op,
        **settings,
    )
    finite = record.eigenvalues[np.isfinite(record.eigenvalues)]
    bound = float("nan")
    if update.closed_form is not None and computed.size:
        bound = max_stable_lr(computed, update.closed_form, beta=update.beta or 0.0).lr
    elif update.method == "gd" and finite.size:
        # ∂T = I - η (H/η) J for preconditioned or per-player steps: ν = (1 - μ)/η are
        # eigenvalues of (H/η) J, and GD's bound on them is the largest stable η
        bound = max_stable_lr((1 - finite) / update.step_size, "gd").lr
    scalars = {
        "spectral_radius": float(np.abs(finite).max()) if finite.size else float("nan"),
        "max_stable_lr": bound,
        "lr": update.step_size,
    }
    return dataclasses.replace(record, scalars=scalars)


def _helmholtz(
    plan: Plan,
    J: GameJacobian,
    n_samples: int,
    seed: int | None,
    on_error: str,
    group: ProbeGroup | None,
    weight: float,
) -> OperatorRecord:
    """The Helmholtz split of J (averaged over the group's ranks) as a record."""
    start = time.perf_counter()
    op = J if group is None else AveragedOperator(J, group, weight)
    try:
        estimate = helmholtz_split(op, n_samples, seed=0 if seed is None else int(seed))
    except Exception as exc:  # recorded, not raised: a probe must not stop training
        if on_error == "raise":
            raise
        status = "nonfinite" if isinstance(exc, NonFiniteError) else "error"
        return _failed(plan, status, _describe(exc), op.n_products, time.perf_counter() - start)
    scalars = {
        name: (float("nan") if value is None else float(value))
        for name, value in dataclasses.asdict(estimate).items()
        if name in SCALARS["helmholtz"]
    }
    nonfinite = not all(
        math.isfinite(v) for k, v in scalars.items() if not k.startswith("zero_sum")
    )
    return OperatorRecord(
        name=plan.name,
        kind=plan.kind,
        which=plan.which,
        eigenvalues=np.empty(0, dtype=np.complex128),
        residuals=np.empty(0),
        converged=np.empty(0, dtype=bool),
        n_matvec=estimate.n_matvec,
        wall_time=time.perf_counter() - start,
        status="nonfinite" if nonfinite else "ok",
        message="",
        scalars=scalars,
    )


def _build_field(
    game: Game, batch: Any, seed: int | None
) -> tuple[GameField | None, tuple[str, str, Exception] | None]:
    """The probe's field, or ``None`` and ``(status, message, exception)`` when the
    losses or their gradients failed (exceptions of the game's definition propagate).
    """
    try:
        return GameField(game, batch, seed=seed), None
    except (NonFiniteError, LossClosureError) as exc:
        status = "nonfinite" if isinstance(exc, NonFiniteError) else "error"
        return None, (status, _describe(exc), exc)


def _memory_failure(
    game: Game,
    plans: Sequence[Plan],
    *,
    ncv: int | None,
    basis_device: Any,
    basis_dtype: torch.dtype | None,
    world_size: int,
    shard_basis: bool,
    update: str | None,
) -> tuple[str, str, Exception] | None:
    """A failure when the solves would not fit in the memory free now, else None."""
    memory = probe_memory(
        game,
        k=max(p.k for p in plans),
        ncv=ncv,
        operators=[p.name for p in plans],
        basis_device=basis_device,
        basis_dtype=basis_dtype,
        world_size=world_size,
        shard_basis=shard_basis,
        update=update,
    )
    reason = memory.shortfall()
    return None if reason is None else ("error", reason, MemoryError(reason))


def _failed_elsewhere(failed: Mapping[int, str]) -> tuple[str, str, Exception]:
    """The failure this rank records when the losses failed on other ranks."""
    status = next(iter(failed.values()))
    ranks = ", ".join(f"{r} ({s})" for r, s in sorted(failed.items()))
    message = f"the probe failed on rank(s) {ranks}; those ranks' records and warnings say why"
    exc_type = NonFiniteError if status == "nonfinite" else LossClosureError
    return status, message, exc_type(message)


def _failed(
    plan: Plan, status: str, message: str, n_matvec: int, wall_time: float
) -> OperatorRecord:
    return OperatorRecord(
        name=plan.name,
        kind=plan.kind,
        which=plan.which,
        eigenvalues=np.full(plan.k, complex("nan+nanj"), dtype=np.complex128),
        residuals=np.full(plan.k, np.nan),
        converged=np.zeros(plan.k, dtype=bool),
        n_matvec=int(n_matvec),
        wall_time=wall_time,
        status=status,
        message=message,
        scalars=spectrum_scalars(plan.kind, np.empty(0, dtype=np.complex128)),
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
