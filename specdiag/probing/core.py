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

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import torch

from ..dynamics import UpdateRule
from ..errors import (
    GameDefinitionError,
    LossClosureError,
    NonFiniteError,
    ProbeWarning,
    user_stacklevel,
)
from ..game import Game, GameField
from ..linalg.options import DEFAULT_TOL, BasisOptions
from ..registry import flag_bit
from .checks import derivative_check, explain
from .distributed import agree, check_device, check_share, resolve_group
from .isolation import untouched
from .memory import probe_memory
from .options import DEFAULT_K, ProbeOptions
from .plan import Plan, plan_operators
from .records import OperatorRecord, ProbeRecord
from .solves import ProbeContext, ProbeState, failed_record, solve_plan

__all__ = ["probe", "run_probe"]


def probe(
    game: Game,
    batch: Any = None,
    *,
    k: int = DEFAULT_K,
    operators: Optional[Sequence[str]] = None,
    which: str | Mapping[str, str] | None = None,
    tol: float = DEFAULT_TOL,
    ncv: Optional[int] = None,
    maxiter: Optional[int] = None,
    max_matvecs: Optional[int] = None,
    seed: Optional[int] = 0,
    on_error: str = "warn",
    step: Optional[int] = None,
    batch_index: int = 0,
    backend: str = "krylov-schur",
    distributed: bool | Any | None = None,
    shard_weight: Optional[float] = None,
    basis_device: torch.device | str | None = None,
    basis_dtype: Optional[torch.dtype] = None,
    shard_basis: bool = False,
    update: Optional[UpdateRule] = None,
    helmholtz: Optional[int] = None,
    shares: bool | str = False,
    density: Any = False,
    check_derivatives: bool = True,
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
        Defaults: ``"LM"`` for the Jacobian, ``"BE"`` for Hessians (both ends:
        ``ceil(k/2)`` from the top, ``floor(k/2)`` from the bottom, so negative
        curvature shows).
    tol, ncv, maxiter, backend
        Passed to the solvers (see :func:`~specdiag.eigs`). ``ncv=None`` chooses the
        basis size from the memory free: ``max(3k, 30)`` vectors when they take at most
        5% of it, else ``max(2k + 1, 20)``
        (:func:`~specdiag.probing.memory.choose_ncv`).
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
    shares : bool or {"left", "right"}
        Also record where each top eigenvector lives: ``record[op].shares`` (parameter
        name -> share per eigenvalue) and ``record[op].player_shares``, and, in a
        sequence of probes (a monitor), how far the top subspace turned since the
        previous probe (scalar ``subspace_overlap``, array ``principal_cosines``). For
        the Jacobian, ``True``/``"left"`` uses left eigenvectors (products
        :math:`J^\top u`, as for the eigenvalues), ``"right"`` right ones (products
        :math:`J u`). See :mod:`specdiag.probing.analyses`.
    density : bool, sequence of str or DensityRequest
        Also record spectral densities by stochastic Lanczos quadrature (operators
        ``"density.<target>"``, kind ``"density"``): ``True`` for every player's Hessian,
        or names of players and/or ``"symmetric"`` (:math:`S = (J + J^\top)/2`); each
        costs ``n_vectors * n_steps`` products (:class:`~specdiag.probing.options.DensityRequest`).
    check_derivatives : bool
        Compare one product :math:`J u` with finite differences of the field first
        (:mod:`specdiag.probing.checks`); a mismatch is flagged and warned about.

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

    Notes
    -----
    Before the solves, once the field is built, the probe compares the memory the
    solves need (:func:`~specdiag.probing.memory.probe_memory`) with the memory free on each
    device; when it would not fit, the probe is recorded as failed (``"error"``, a
    ``MemoryError`` with ``on_error="raise"``) with a message naming the options above.

    Examples
    --------
    >>> from specdiag import toys
    >>> toy = toys.dirac_gan(loss="standard", r1=0.3)
    >>> rec = probe(toy.game, k=2)
    >>> round(rec["jacobian"].scalars["min_real"], 6)
    0.15
    """
    options = ProbeOptions.build(
        k=k,
        operators=operators,
        which=which,
        tol=tol,
        ncv=ncv,
        maxiter=maxiter,
        max_matvecs=max_matvecs,
        backend=backend,
        basis=BasisOptions(basis_device, basis_dtype),
        seed=seed,
        on_error=on_error,
        distributed=distributed,
        shard_weight=shard_weight,
        shard_basis=shard_basis,
        update=update,
        helmholtz=helmholtz,
        shares=shares,
        density=density,
        check_derivatives=check_derivatives,
    )
    return run_probe(game, batch, options, step=step, batch_index=batch_index)


class _Failure(NamedTuple):
    """Why no solve of a probe can run: a status, a message and the exception."""

    status: str
    message: str
    exception: Exception


def run_probe(
    game: Game,
    batch: Any,
    options: ProbeOptions,
    *,
    step: Optional[int] = None,
    batch_index: int = 0,
    plans: Optional[list[Plan]] = None,
    state: Optional[ProbeState] = None,
    check: Optional[bool] = None,
) -> ProbeRecord:
    """:func:`probe` with its settings in ``options``.

    Parameters
    ----------
    plans : list of Plan, optional
        From :func:`~specdiag.probing.plan.plan_operators`, when already made.
    state : ProbeState, optional
        Warm starts from the previous probe of a sequence, updated in place.
    check : bool, optional
        Run the derivative check (default ``options.check_derivatives``).
    """
    plans = plan_operators(game, options) if plans is None else plans
    group = resolve_group(options.distributed)
    if group is not None:
        check_device(group, game.device)
    ctx = ProbeContext(options, group, state=state)
    check = options.check_derivatives if check is None else check
    start = time.perf_counter()
    with untouched(game) as moved:
        outcome = _probe_field(game, batch, plans, ctx, check)
    notes = list(outcome.notes)
    if moved:
        notes.append(("modified_in_place", _moved_message(moved)))
        outcome.flags |= flag_bit("modified_in_place")
    records = outcome.records
    record = ProbeRecord(
        step=None if step is None else int(step),
        batch_index=int(batch_index),
        seed=options.seed,
        losses=outcome.losses,
        wall_time=time.perf_counter() - start,
        build_time=outcome.build_time,
        status=next((r.status for r in records.values() if r.status != "ok"), "ok"),
        operators=records,
        message="; ".join(text for _, text in notes),
        flags=outcome.flags,
    )
    # Under torch.distributed rank 0 speaks for the group; other ranks only of their own failures.
    if group is None or group.rank == 0 or outcome.own_failure or bool(moved):
        _warn(record, outcome.problems + notes, options.on_error)
    return record


@dataclass
class _Outcome:
    """What happened inside a probe: the records and what to say about them."""

    records: dict[str, OperatorRecord]
    losses: dict[str, float]
    build_time: float
    own_failure: bool
    problems: list[tuple[str, str]] = field(default_factory=list)  # (cause, text)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (cause, text), in the record
    flags: int = 0


def _probe_field(
    game: Game, batch: Any, plans: list[Plan], ctx: ProbeContext, check: bool
) -> _Outcome:
    """Build the field, agree on failures across ranks, check a product, run the solves."""
    gamefield, failure, build_time, notes = _build(game, batch, plans, ctx)
    outcome = _Outcome(
        {},
        _agreed_losses(game, gamefield, failure, ctx),
        build_time,
        own_failure=failure is not None,
        notes=notes,
    )
    if failure is None and ctx.group is not None and ctx.failed_elsewhere:
        failure = _failed_elsewhere(ctx.failed_elsewhere)
    if failure is not None:
        if ctx.options.on_error == "raise":
            raise failure.exception
        refused = isinstance(failure.exception, MemoryError)
        outcome.records = {p.name: failed_record(p, failure.status, failure.message) for p in plans}
        outcome.problems.append(
            (
                f"failed:{failure.status}",
                f"{'the probe was refused' if refused else 'the losses failed'} "
                f"({failure.status}): "
                f"{failure.message}",
            )
        )
        return outcome
    assert gamefield is not None
    if gamefield.uncoupled:  # then J is known not to be v's derivative: no check needed
        outcome.flags |= flag_bit("uncoupled")
    elif check:
        note = _checked(game, batch, ctx)
        if note is not None:
            outcome.notes.append(note)
            if note[0] == "derivative_mismatch":
                outcome.flags |= flag_bit("derivative_mismatch")
    outcome.records = _solve_all(gamefield, plans, ctx)
    outcome.problems += [
        (f"{r.name}:{r.status}", f"{r.name}: {r.status}" + (f" ({r.message})" if r.message else ""))
        for r in outcome.records.values()
        if r.status != "ok"
    ]
    return outcome


def _checked(game: Game, batch: Any, ctx: ProbeContext) -> Optional[tuple[str, str]]:
    """``(cause, message)`` of the derivative check.

    A mismatch, or a check that could not run; None when the product passed.
    """
    try:
        mismatch = derivative_check(game, batch, seed=ctx.field_seed, generator_seed=ctx.seed)
        return None if mismatch is None else ("derivative_mismatch", mismatch)
    except Exception as exc:  # the solves will meet the same problem and record it
        if ctx.options.on_error == "raise":
            raise
        return ("derivative_check", f"the derivative check could not run ({explain(exc)})")


def _build(
    game: Game, batch: Any, plans: list[Plan], ctx: ProbeContext
) -> tuple[Optional[GameField], Optional[_Failure], float, list[tuple[str, str]]]:
    """The probe's field, or why there is none; the seconds spent; what the field said.

    There is no field when differentiating the losses failed, or the solves would not
    fit in memory; the field speaks when it is built of an uncoupled game.
    """
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            gamefield = GameField(game, batch, seed=ctx.field_seed)
    except (GameDefinitionError, TypeError):  # a bad definition of the game is a bug
        raise
    except Exception as exc:  # the closure, its graph or its numbers failed
        status = "nonfinite" if isinstance(exc, NonFiniteError) else "error"
        return None, _Failure(status, explain(exc), exc), time.perf_counter() - start, []
    build_time = time.perf_counter() - start
    notes = [
        ("uncoupled" if "does not depend" in str(w.message) else "field", str(w.message))
        for w in said
    ]
    return gamefield, _memory_failure(game, plans, ctx), build_time, notes


def _memory_failure(game: Game, plans: list[Plan], ctx: ProbeContext) -> Optional[_Failure]:
    """A failure when the solves would not fit in the memory free now, else None."""
    solver, rule = ctx.options.solver, ctx.options.update
    ncvs = [ctx.solver_options(p).ncv for p in plans if p.solver is not None]
    memory = probe_memory(
        game,
        k=max(p.k for p in plans),
        ncv=max((n for n in ncvs if n is not None), default=None),
        operators=[p.name for p in plans],
        basis_device=solver.basis.device,
        basis_dtype=solver.basis.dtype,
        world_size=1 if ctx.group is None else ctx.group.world_size,
        shard_basis=ctx.options.shard_basis and ctx.group is not None,
        update=None if rule is None else rule.method,
    )
    reason = memory.shortfall()
    return None if reason is None else _Failure("error", reason, MemoryError(reason))


def _agreed_losses(
    game: Game, field: Optional[GameField], failure: Optional[_Failure], ctx: ProbeContext
) -> dict[str, float]:
    """The probe's losses.

    Under torch.distributed, after one collective that tells every rank which ranks failed
    (``ctx.failed_elsewhere``) and sets its weight.
    """
    nan = dict.fromkeys(game.player_names, float("nan"))
    losses = dict(field.losses) if field is not None else nan
    ctx.failed_elsewhere = {}
    if ctx.group is None:
        return losses
    agreement = agree(
        ctx.group,
        failure.status if failure else "ok",
        check_share(ctx.options.shard_weight),
        list(losses.values()),
        game.device,
    )
    ctx.weight = agreement.weight
    ctx.failed_elsewhere = {r: s for r, s in agreement.failed.items() if r != ctx.group.rank}
    return nan if agreement.failed else dict(zip(game.player_names, agreement.losses))


def _failed_elsewhere(failed: Mapping[int, str]) -> _Failure:
    """The failure this rank records when the losses failed on other ranks."""
    status = next(iter(failed.values()))
    ranks = ", ".join(f"{r} ({s})" for r, s in sorted(failed.items()))
    message = f"the probe failed on rank(s) {ranks}; those ranks' records and warnings say why"
    exc_type = NonFiniteError if status == "nonfinite" else LossClosureError
    return _Failure(status, message, exc_type(message))


def _solve_all(field: GameField, plans: list[Plan], ctx: ProbeContext) -> dict[str, OperatorRecord]:
    """Every planned solve, in order (the update operator uses the Jacobian's record)."""
    records: dict[str, OperatorRecord] = {}
    for plan in plans:
        records[plan.name] = solve_plan(field, plan, ctx, records.get("jacobian"))
    return records


def _moved_message(moved: list[str]) -> str:
    if not moved:
        return ""
    return (
        f"the losses closure changed parameter(s) in place ({', '.join(moved)}); a probe "
        "cannot undo that: compute the losses without modifying the parameters"
    )


def _warn(record: ProbeRecord, problems: list[tuple[str, str]], on_error: str) -> None:
    """One ProbeWarning listing the probe's problems, with their causes.

    None with ``on_error="ignore"``.
    """
    if not problems or on_error == "ignore":
        return
    where = "probe" if record.step is None else f"probe at step {record.step}"
    if record.batch_index:
        where += f" (batch {record.batch_index})"
    message = f"specdiag {where}: " + "; ".join(text for _, text in problems)
    causes = tuple(dict.fromkeys(cause for cause, _ in problems))
    warnings.warn(ProbeWarning(message, causes), stacklevel=user_stacklevel())
