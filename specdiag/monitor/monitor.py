r"""Watch a game's spectrum while it trains.

:class:`SpectrumMonitor` attaches to an existing training loop: call
:meth:`SpectrumMonitor.step` once per training step; when the schedule says a probe is
due it runs :func:`~specdiag.probe` on the probe batch(es) and appends the records to
an HDF5 trace (:mod:`specdiag.trace`), and otherwise returns at once.

.. code-block:: python

    with sd.SpectrumMonitor(game, "run.h5", every=500, k=10, probe_batch=fixed) as mon:
        for step, batch in enumerate(loader):
            ...                       # the training step, unchanged
            mon.step(step, batch)     # probes only when due

A probe leaves the models, their ``.grad`` fields, buffers, flags and the random
streams exactly as they were, so a run with the monitor ends with the same parameters
and optimiser state, bit for bit, as the run without it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import distributed as dist

from ..dynamics import UpdateRule
from ..errors import ProbeWarning, TraceError, user_stacklevel
from ..game import Game
from ..linalg.options import DEFAULT_TOL, BasisOptions
from ..probing import ProbeOptions, ProbeRecord
from ..probing.checks import explain
from ..probing.distributed import ProbeGroup, all_agree, resolve_group
from ..probing.options import DEFAULT_K
from ..probing.plan import SPECTRA, Plan, layout_spec
from ..probing.session import ProbeSession
from ..probing.solves import failed_record
from ..registry import flag_bit
from ..trace import TraceWriter
from ..validation import integer
from .batches import ProbeBatches, check_metadata
from .clock import TrainingClock
from .report import COST_STEPS, WarningLedger, cost_message, log
from .schedules import Schedule, as_schedule, schedule_config

__all__ = ["SpectrumMonitor"]


class SpectrumMonitor:
    r"""Probe a game's spectrum every so many training steps and record it in a trace.

    Parameters
    ----------
    game : Game
    path : str or os.PathLike
        The HDF5 trace file (see :class:`~specdiag.trace.TraceWriter`).
    every : int, iterable of int or Schedule
        When to probe: every ``n`` steps (0, n, 2n, ...), at the listed steps, or any
        schedule (:class:`~specdiag.monitor.schedules.Every`,
        :class:`~specdiag.monitor.schedules.AtSteps`,
        :class:`~specdiag.monitor.schedules.LogSpaced`, or an object with ``due(step)``).
    k : int
        Eigenvalues per operator. The trace stores ``k + 1`` columns (a conjugate pair
        at the k-th place is kept whole).
    operators : sequence of str, optional
        ``"jacobian"`` and/or player names (their Hessians); default all.
    which : str or mapping, optional
        As for :func:`~specdiag.probe`: a string for the Jacobian (default ``"LM"``) or
        ``{operator: which}`` (Hessians default to ``"BE"``: both ends).
    tol, ncv, maxiter, backend
        Solver settings (see :func:`~specdiag.eigs`).
    max_matvecs : int, optional
        Product budget of each operator's solve, so that a probe cannot stall training;
        a solve cut short there is recorded with status ``"budget"``.
    probe_batch : object, "current" or callable, optional
        The batch the losses are evaluated on at a probe:

        * a fixed batch (given once; probes are then comparable across training);
        * ``"current"``: the ``batch`` passed to :meth:`step`;
        * a callable ``probe_batch(step) -> batch``.

        Default: the batch passed to :meth:`step` (``None`` if none is passed: the
        losses closure then decides what to evaluate).
    probe_batches : sequence, optional
        Several fixed batches, each probed separately at every probe and stored with
        ``batch_index`` 0, 1, ... (instead of ``probe_batch``).
    seed : int or None
        Seeds the random stream the losses closure draws noise from at every probe
        (so probes of the same weights agree); ``None``: the numbers the training run
        would draw next, without consuming them.
    on_error : {"warn", "ignore", "raise"}
        A failed probe (NaN/Inf, an exception in the closure or the solver) or an
        unconverged solve is recorded in the trace; ``"warn"`` also issues a
        :class:`~specdiag.ProbeWarning`, ``"ignore"`` stays silent, ``"raise"`` raises
        the failure (after closing the monitor). A trace that cannot be written is a
        warning too, except with ``"raise"``.
    summary_writer : object, optional
        Anything with ``add_scalar(tag, value, global_step)``, such as TensorBoard's
        ``SummaryWriter``: every probe's scalars go there too, tagged
        ``specdiag/<operator>/<scalar>`` (with ``/batch<i>`` appended when several
        probe batches are probed). A real ``SummaryWriter`` (one with
        ``add_histogram`` and ``add_figure``) also gets histograms of the eigenvalues
        and the Jacobian's eigenvalue cloud
        (:class:`~specdiag.monitor.tensorboard.TensorBoardLogger` lists the tags).
    resume : bool or None
        When ``path`` holds probes of an earlier run: ``True`` continues that trace,
        replacing its probes at or after the first step probed now (as after a restart
        from a checkpoint; a warning says how many it purges and from which step);
        ``False`` (or ``overwrite=True``) starts a new trace. ``None`` (default) refuses
        to touch such a file, with an error saying how many probes it holds and
        offering these choices. A file without probes is simply continued.
    overwrite : bool
        Replace an existing trace by a new one.
    resume_step : int, optional
        The step training restarts from (a checkpoint's); implies ``resume=True``.
        Probes at or after it are removed from the trace at once, rather than at the
        first new probe.
    swmr : bool
        Keep the file open in HDF5's single-writer/multiple-reader mode so that
        ``open_trace(path, swmr=True)`` can follow the run live. Default: the file is
        opened and closed at every probe.
    locking : bool or None
        HDF5 file locking (``None``: HDF5's default and ``HDF5_USE_FILE_LOCKING``; set
        ``False`` on file systems without locks, such as some NFS mounts).
    update : UpdateRule, optional
        The run's optimiser (method, step size, momentum, Adam/RMSprop optimizers):
        every probe also records the top eigenvalues of its update operator
        :math:`\partial T`, :math:`\rho(\partial T)`, the largest stable step size
        where a closed form exists, and the step size used (operator ``"update"``; see
        :func:`~specdiag.probe`). Its settings are stored in ``config["update"]``.
    helmholtz : int, optional
        Also estimate, at every probe, the Helmholtz split of the Jacobian from this
        many Hutchinson samples (operator ``"helmholtz"``: rotation fraction, zero-sum
        defect, with standard errors).
    metadata : mapping, optional
        Facts about the run worth keeping with its spectra, stored as JSON in the
        trace's configuration (``trace.meta["config"]["metadata"]``): e.g.
        ``{"optimizer": "adam", "lr": 2e-4, "loss": "non-saturating"}``. The plots
        read ``lr`` (draw the stability region of gradient descent at that step size).
    distributed : None, bool or ProcessGroup
        Probes under ``torch.distributed`` (see :func:`~specdiag.probe`): by default,
        when the default group is initialised with more than one rank, every rank
        probes its own shard of the probe batch and the products are averaged over
        the ranks. Create the monitor on *every* rank with the same settings and call
        :meth:`step` on every rank at the same steps (each with its own batch); only
        rank 0 creates, writes and closes the trace (``path`` is not touched on the
        other ranks) and feeds ``summary_writer``; every rank gets the same records.
        ``False``: each rank probes alone (create the monitor on rank 0 only).
    shard_weight : float, optional
        This rank's share of the global probe batch (see :func:`~specdiag.probe`).
    basis_device, basis_dtype, shard_basis
        Where and how the solvers keep their Krylov bases, for models whose basis
        would not fit next to them (see :func:`~specdiag.probe`);
        :func:`~specdiag.probing.memory.probe_memory` tells the memory a probe takes.
    budget : float, optional
        Keep the time spent probing at or below this fraction of the training's own
        wall time (measured between :meth:`step` calls; see
        :mod:`specdiag.monitor.clock`): a due probe that does not fit waits for the first
        later step where it does, and is recorded at that step (its message says from
        which step it was postponed). ``budget=0.1`` costs training at most about 10%.
        The first probe always runs when due: it measures what a probe costs. Several
        monitors of one run share their budgets: each counts the others' work as
        probing, not training (:mod:`specdiag.monitor.clock`).
    defer : bool
        Probe nothing during training: at each due step save a snapshot of what the
        probe needs (parameters, buffers, the probe batch once if fixed, the seed) into
        :attr:`snapshot_dir`, and compute the trace afterwards, or elsewhere, with
        :func:`specdiag.probe_snapshots` or ``specdiag probe`` (``docs/deferred.md``).
        Nothing is written at ``path`` during training. The state is copied at the
        step; the file is written and ``fsync``-ed on a thread while training goes on
        (one write in flight at most; :meth:`close` waits for the last). A snapshot
        that cannot be written is warned about at the next one, or at :meth:`close`.
    snapshot_dir : str or os.PathLike, optional
        Where ``defer=True`` keeps its snapshots; default ``path`` with the suffix
        ``.snapshots`` instead of ``.h5``.
    warm_start : bool
        Start each solve from the Ritz subspace of the same operator at the previous
        probe (the same convergence test). Off by default: at the usual spacing of
        probes the spectrum moves too far for the recycled subspace to save products,
        and a warm solve costs more time per product (``docs/benchmarks.md``). It pays
        when consecutive probes see nearly the same operator (probes a few steps apart,
        several probe batches of one model).
    on_probe : callable, optional
        ``on_probe(record)`` after every probe is written, for any logger (Weights &
        Biases, MLflow, ...: ``docs/integrations.md`` has recipes). An exception it
        raises is warned about once and training goes on.
    shares, density
        Also record where the top eigenvectors live and how fast they turn, and the
        players' spectral densities (see :func:`~specdiag.probe`); stored per probe.

    Attributes
    ----------
    game : Game
    path : str
    schedule : Schedule
    last : ProbeRecord or None
        The most recent record (the last probe batch's, when several).
    options : ProbeOptions
        The probe settings, validated.
    snapshot_dir : str or None
        The snapshot directory (``defer=True``), else ``None``.
    probe_seconds : float
        Seconds spent inside :meth:`step` probing, writing and saving so far (kept out
        of the training's own time; report it separately from your timers).
    warning_counts : dict of str to int
        How often each cause of a ProbeWarning occurred: the monitor warns once per
        cause and counts the rest.

    Raises
    ------
    ValueError
        Bad operator names, ``which`` or solver settings, or both ``probe_batch`` and
        ``probe_batches``.
    TraceError
        ``resume=True`` and the existing file is not a trace of this game's layout.

    Notes
    -----
    A failure inside a probe (an exception while differentiating the losses, NaN, a
    probe batch callable that raises, an unwritable trace) is recorded and warned about,
    and training goes on; only ``on_error="raise"`` lets it out. At its first probe the
    monitor logs what a probe costs in training steps and what the schedule will cost
    (logger ``"specdiag"``; a warning when the schedule would slow training more than
    1.5 times). :meth:`step` on a step that is not due costs about a microsecond. The monitor is a
    context manager; :meth:`close` is idempotent. An exception raised out of a probe
    (``on_error="raise"``, a bad game definition, an interrupt) closes the monitor
    first, so the trace is never left open: the rows written so far stay readable.
    """

    def __init__(
        self,
        game: Game,
        path: str | os.PathLike[str],
        *,
        every: int | Iterable[int] | Schedule = 1000,
        k: int = DEFAULT_K,
        operators: Optional[Sequence[str]] = None,
        which: str | Mapping[str, str] | None = None,
        tol: float = DEFAULT_TOL,
        ncv: Optional[int] = None,
        maxiter: Optional[int] = None,
        max_matvecs: Optional[int] = None,
        probe_batch: Any = None,
        probe_batches: Optional[Sequence[Any]] = None,
        seed: Optional[int] = 0,
        on_error: str = "warn",
        summary_writer: Any = None,
        resume: Optional[bool] = None,
        overwrite: bool = False,
        resume_step: Optional[int] = None,
        swmr: bool = False,
        locking: Optional[bool] = None,
        backend: str = "krylov-schur",
        metadata: Optional[Mapping[str, Any]] = None,
        distributed: bool | Any | None = None,
        shard_weight: Optional[float] = None,
        basis_device: torch.device | str | None = None,
        basis_dtype: Optional[torch.dtype] = None,
        shard_basis: bool = False,
        update: Optional[UpdateRule] = None,
        helmholtz: Optional[int] = None,
        budget: Optional[float] = None,
        defer: bool = False,
        snapshot_dir: str | os.PathLike[str] | None = None,
        warm_start: bool = False,
        on_probe: Optional[Callable[[ProbeRecord], Any]] = None,
        shares: bool | str = False,
        density: Any = False,
    ) -> None:
        if not isinstance(game, Game):
            raise TypeError(f"game must be a specdiag.Game, got {type(game).__name__}")
        group = resolve_group(distributed)
        self.options = ProbeOptions.build(
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
            distributed=False if group is None else group.group or True,
            shard_weight=shard_weight,
            shard_basis=shard_basis,
            update=update,
            helmholtz=helmholtz,
            shares=shares,
            density=density,
        )
        self._session = ProbeSession(game, self.options, warm_start=warm_start)
        self._plans = self._session.plans
        self.schedule = as_schedule(every)
        self._due = self.schedule.due
        self._batches = ProbeBatches(probe_batch, probe_batches, device=game.device)
        self._summary_writer = _checked_writer(summary_writer)
        self._on_probe = _checked_callable(on_probe, "on_probe")
        self._budget = _checked_budget(budget)
        self.game, self.path = game, os.fspath(path)
        self.last: Optional[ProbeRecord] = None
        self._group, self._closed = group, False
        self._pending: Optional[int] = None
        self._clock, self._ledger, self._said_cost = TrainingClock(), WarningLedger(), False
        self._first_probe_s: Optional[float] = None  # the first probe's cost, once measured
        self._unwritten: list[ProbeRecord] = []
        self._warned_purge = self._outage = False
        self.snapshot_dir: Optional[str] = None
        self._snapshots: Any = None
        self._writer: Optional[TraceWriter] = None
        config = self._config(resume=resume, swmr=swmr, metadata=metadata, group=group)
        if defer:
            self._snapshots = self._snapshot_writer(snapshot_dir, probe_batch, seed, config)
        else:
            self._writer = self._open_trace(
                group,
                config=config,
                resume=resume,
                overwrite=overwrite,
                swmr=swmr,
                locking=locking,
                resume_step=resume_step,
            )
            self._said_purge()

    def _snapshot_writer(
        self, directory: Any, probe_batch: Any, seed: Optional[int], config: dict[str, Any]
    ) -> Any:
        """The writer of the snapshots of ``defer=True`` (rank 0 only).

        The fixed probe batch, if any, is saved once.
        """
        from .snapshots import SnapshotWriter

        if seed is None:
            raise ValueError(
                "defer=True needs an integer seed: the probes run later, and the noise drawn "
                "inside the losses closure must be the same then as it would have been now"
            )
        fixed = self._batches(0, None)[0] if self._batches.fixed else None
        where = Path(self.path).with_suffix(".snapshots") if directory is None else Path(directory)
        self.snapshot_dir = os.fspath(where)
        if self._group is not None and self._group.rank != 0:
            return None
        return SnapshotWriter(
            where, self.game, probe_batch=fixed, seed=seed, config=config, background=True
        )

    def _config(
        self,
        *,
        resume: Optional[bool],
        swmr: bool,
        metadata: Optional[Mapping[str, Any]],
        group: Optional[ProbeGroup],
    ) -> dict[str, Any]:
        """The monitor's settings as the trace's ``config`` attribute stores them."""
        spectra = [p for p in self._plans if p.kind in SPECTRA]
        return {
            "every": schedule_config(self.schedule),
            "probe_batch": self._batches.mode,
            "resume": resume,
            "swmr": bool(swmr),
            **self.options.config(),
            "operators": [p.name for p in spectra],
            "which": {p.name: p.which for p in spectra},
            "metadata": check_metadata(metadata),
            "world_size": 1 if group is None else group.world_size,
            "budget": self._budget,
            "warm_start": self._session.warm_start,
        }

    def _open_trace(
        self,
        group: Optional[ProbeGroup],
        *,
        config: dict[str, Any],
        resume: Optional[bool],
        overwrite: bool,
        swmr: bool,
        locking: Optional[bool],
        resume_step: Optional[int],
    ) -> Optional[TraceWriter]:
        """The trace writer (rank 0 only); every rank raises when rank 0 could not open it."""
        writer, error = None, None
        if group is None or group.rank == 0:
            try:
                writer = TraceWriter(
                    self.path,
                    operators=layout_of(self._plans, self.game, self.options),
                    players=self.game.sizes,
                    width=self.options.k + 1,
                    config=config,
                    resume=resume,
                    overwrite=overwrite,
                    swmr=swmr,
                    locking=locking,
                    versions={"torch": torch.__version__},
                    resume_step=resume_step,
                )
            except Exception as exc:  # re-raised below, once every rank knows
                error = exc
        if group is not None and not all_agree(group, error is None, self.game.device):
            self._closed = True
            if error is None:
                raise TraceError(
                    f"rank 0 could not open the trace {self.path!r}; its error says why"
                )
        if error is not None:
            raise error
        return writer

    # ------------------------------------------------------------------ the loop
    def due(self, step: int) -> bool:
        """Whether the schedule probes at ``step``."""
        return self._due(step)

    def step(self, step: int, batch: Any = None, *, force: bool = False) -> list[ProbeRecord]:
        """Probe if due (or ``force``), append the records to the trace, return them.

        Parameters
        ----------
        step : int
            The training step (the schedule's clock; stored with the records).
        batch : object, optional
            The current training batch: probed with ``probe_batch="current"`` or when
            no probe batch was given; ignored otherwise.
        force : bool
            Probe now whatever the schedule (and the budget) says.

        Returns
        -------
        list of ProbeRecord
            One per probe batch; empty when no probe ran (not due, postponed by the
            budget, or ``defer=True``).
        """
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            integer(step, "step (the training step)")
        self._clock.enter()
        start = self._clock.now()
        try:
            self._say_cost()
            if (force or self._due(step)) and self._pending is None:
                self._pending = int(step)
            if self._pending is None or not (force or self._now()):
                return []
            if self._closed:
                raise RuntimeError(
                    f"SpectrumMonitor({self.path!r}) is closed; create a new monitor "
                    "(resume=True appends to the same trace)"
                )
            due, self._pending = self._pending, None
            if self.snapshot_dir is not None:
                return self._snapshot(step, batch)
            return self._probe(step, batch, due)
        except BaseException:
            self.close()
            raise
        finally:
            self._clock.leave(self._clock.now() - start)

    def _now(self) -> bool:
        """Whether the pending probe fits the budget now (the same answer on every rank)."""
        fits = self._budget is None or self._clock.fits(self._budget)
        if self._group is None:
            return fits
        flag = torch.tensor([1.0 if fits else 0.0], device=self.game.device)
        dist.broadcast(flag, src=0, group=self._group.group)
        return bool(flag.item())

    def _snapshot(self, step: int, batch: Any) -> list[ProbeRecord]:
        """``defer=True``: save what the probe needs, probe nothing."""
        start = self._clock.now()
        if self._snapshots is not None:
            failed_now: Optional[Exception] = None
            try:
                self._snapshots.save(
                    step, None if self._batches.fixed else self._batches(step, batch)[0]
                )
            except Exception as exc:
                failed_now = exc
            for failed, error in self._snapshots.failures():  # earlier background writes first
                self._snapshot_failed(failed, error)
            if failed_now is not None:
                self._snapshot_failed(step, failed_now)
        self._clock.probed(self._clock.now() - start)
        return []

    def _snapshot_failed(self, step: int, exc: BaseException) -> None:
        """A snapshot not saved: raised with ``on_error="raise"``, else warned (once)."""
        if self.options.on_error == "raise":
            raise exc
        self._ledger.warn(
            "snapshot",
            f"specdiag: the snapshot at step {step} was not saved ({explain(exc)}); "
            "training goes on",
        )

    def _probe(self, step: int, batch: Any, due: int) -> list[ProbeRecord]:
        """Probe every probe batch now, write and report the records."""
        records: list[ProbeRecord] = []
        start = self._clock.now()
        try:
            batches = self._batches(step, batch)
        except Exception as exc:  # a probe_batch callable that raised
            if self.options.on_error == "raise":
                raise
            batches = [_Unavailable(exc)]
        for index, probe_batch in enumerate(batches):
            record = self._one(probe_batch, step, index)
            record = self._timed(record, self._clock.now() - start, due)
            self._write(record)
            self._report(record)
            records.append(record)
            self.last = record
        self._first_cost(self._clock.now() - start)
        return records

    def _one(self, probe_batch: Any, step: int, index: int) -> ProbeRecord:
        """One probe through the session; any failure becomes a failed record."""
        failure: Optional[Exception] = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if isinstance(probe_batch, _Unavailable):
                    raise probe_batch.error
                record = self._session.probe(probe_batch, step=step, batch_index=index)
            except Exception as exc:
                if self.options.on_error == "raise":
                    if isinstance(exc, _BatchError) and exc.__cause__ is not None:
                        raise exc.__cause__ from None
                    raise
                failure = exc
        self._ledger.replay(caught)
        return self._failed(step, index, failure) if failure is not None else record

    def _failed(self, step: int, index: int, exc: Exception) -> ProbeRecord:
        """The record of a probe that raised: every operator failed, with the reason."""
        source = "the probe batch" if isinstance(exc, _BatchError) else "the probe"
        message = f"{source} raised {explain(exc.__cause__ or exc)}"
        self._ledger.warn(
            f"raised:{type(exc).__name__}",
            f"specdiag probe at step {step}: {message}; training goes on",
        )
        return ProbeRecord(
            step=step,
            batch_index=index,
            seed=self.options.seed,
            losses=dict.fromkeys(self.game.player_names, float("nan")),
            wall_time=0.0,
            build_time=0.0,
            status="error",
            operators={p.name: failed_record(p, "error", message) for p in self._plans},
            message=message,
        )

    def _timed(self, record: ProbeRecord, seconds: float, due: int) -> ProbeRecord:
        """The record with the run's timing (and a note when the budget postponed it)."""
        clock = self._clock
        spent = clock.probe_time + seconds
        message = record.message
        if due != record.step:
            note = f"due at step {due}, postponed by the budget"
            message = f"{message}; {note}" if message else note
        return dataclasses.replace(
            record,
            message=message,
            train_time=clock.since_probe,
            overhead=spent / clock.train_time if clock.train_time > 0 else float("nan"),
            cost_steps=record.wall_time / step if (step := clock.step_time) > 0 else float("nan"),
        )

    def _first_cost(self, seconds: float) -> None:
        """Remember what the probe cost, and the first probe's cost until it is said."""
        if self._first_probe_s is None:
            self._first_probe_s = seconds
            self._say_cost()
        self._clock.probed(seconds)

    def _say_cost(self, last_chance: bool = False) -> None:
        """Log once what the first probe cost in training steps, and what the schedule will.

        Said once :data:`~specdiag.monitor.report.COST_STEPS` steady steps have been
        timed (at the first probe if they have by then; a probe at the first step waits
        for them), or when the monitor closes before that.
        """
        if self._said_cost or self._first_probe_s is None:
            return
        if self._clock.steps - 1 < COST_STEPS and not last_chance:
            return
        step_time = self._clock.step_time
        log(*cost_message(self._first_probe_s, step_time, self.schedule, self._budget))
        self._said_cost = True

    def _report(self, record: ProbeRecord) -> None:
        """The record's scalars to the summary writer, and the record to ``on_probe``."""
        if self._writer is None:  # a rank other than 0 of a distributed probe
            return
        for receiver, cause in (
            (self._summary_writer, "summary_writer"),
            (self._on_probe, "on_probe"),
        ):
            if receiver is None:
                continue
            try:
                if cause == "summary_writer":
                    _log_scalars(receiver, record, several=self._batches.count > 1)
                else:
                    receiver(record)
            except Exception as exc:  # a logger must not stop training
                if self.options.on_error == "raise":
                    raise
                self._ledger.warn(
                    cause,
                    f"specdiag: {cause} raised {explain(exc)} at step "
                    f"{record.step}; training goes on",
                )

    def _write(self, record: ProbeRecord) -> None:
        """Write ``record`` after any records a failed write left waiting, in order.

        A write that fails (a full disk) keeps its record in memory; every later probe
        tries again, oldest first, so writing resumes when space returns and no record
        is lost unless the process ends first (:meth:`close` says how many are left).
        """
        if self._writer is None:  # a rank other than 0 of a distributed probe
            return
        self._unwritten.append(record)
        while self._unwritten:
            waiting = self._unwritten[0]
            late = waiting is not record
            if late:
                waiting = dataclasses.replace(waiting, flags=waiting.flags | flag_bit("unwritten"))
            try:
                self._writer.write(waiting)
            except TraceError as error:
                if self.options.on_error == "raise":
                    raise
                if not self._outage:  # once per outage: when writing stops working
                    warnings.warn(
                        _unwritten_message(error, len(self._unwritten)),
                        ProbeWarning,
                        stacklevel=user_stacklevel(),
                    )
                self._outage = True
                return
            self._unwritten.pop(0)
            self._outage = False
            self._said_purge()

    def _said_purge(self) -> None:
        """Warn once when continuing the trace removed the earlier run's later probes."""
        purged = getattr(self._writer, "purged", None)
        if purged and not self._warned_purge:
            rows, step = purged
            warnings.warn(
                f"specdiag: {self.path}: resumed at step {step}, replacing the {rows} probe(s) "
                "of the earlier run at or after it",
                ProbeWarning,
                stacklevel=user_stacklevel(),
            )
            self._warned_purge = True

    # ------------------------------------------------------------------ lifetime
    @property
    def probe_seconds(self) -> float:
        """Seconds spent inside :meth:`step` probing, writing and saving so far."""
        return self._clock.probe_time

    @property
    def overhead(self) -> float:
        """Seconds probing divided by seconds training, so far (NaN before training)."""
        return self._clock.overhead

    @property
    def warning_counts(self) -> dict[str, int]:
        """How often each cause of a ProbeWarning occurred."""
        return dict(self._ledger.counts)

    def close(self) -> None:
        """Close the trace; idempotent. The summary writer is the caller's to close.

        With ``defer=True``, waits for the snapshot write in flight.

        Records a full disk kept waiting are tried once more; those still unwritten are
        lost with the process, and a warning says how many.
        """
        if not self._closed:
            self._say_cost(last_chance=True)
        if self._snapshots is not None and not self._closed:
            self._closed = True  # a failure raised below leaves the monitor closed
            for failed, error in self._snapshots.close():  # the write in flight finishes
                self._snapshot_failed(failed, error)
        if self._writer is not None and self._unwritten and not self._closed:
            for record in list(self._unwritten):
                try:
                    self._writer.write(record)
                    self._unwritten.pop(0)
                except TraceError:
                    break
            if self._unwritten:
                warnings.warn(
                    f"specdiag: {self.path}: {len(self._unwritten)} probe(s) could not be "
                    "written before the monitor closed and are lost",
                    ProbeWarning,
                    stacklevel=user_stacklevel(),
                )
        self._closed = True
        if self._writer is not None:
            self._writer.close()

    @property
    def closed(self) -> bool:
        """Whether the monitor is closed."""
        return self._closed

    def __enter__(self) -> SpectrumMonitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SpectrumMonitor({self.path!r}, every={self.schedule!r}, {state})"


class _BatchError(RuntimeError):
    """A probe batch could not be made (its callable raised)."""


class _Unavailable:
    """Stands for a probe batch whose callable raised: probing it raises the error."""

    def __init__(self, error: Exception) -> None:
        self.error = _BatchError(str(error))
        self.error.__cause__ = error


def layout_of(plans: list[Plan], game: Game, options: ProbeOptions) -> dict[str, dict[str, Any]]:
    """The trace's operators.

    What a trace stores for every planned solve (:func:`~specdiag.probing.plan.layout_spec`).
    """
    return {p.name: layout_spec(p, game, options) for p in plans}


def _unwritten_message(error: Exception, waiting: int) -> str:
    full = getattr(error, "disk_full", False)
    what = "the disk is full" if full else "the trace could not be written"
    return (
        f"specdiag: {what} ({error}): {waiting} probe(s) not written yet; they are kept in "
        "memory and written when the trace accepts them again, and training goes on"
    )


def _log_scalars(writer: Any, record: ProbeRecord, several: bool) -> None:
    """``record`` to a TensorBoard-like writer: its scalars, and more where it takes them.

    Every writer gets every scalar (``add_scalar``); a writer that also has
    ``add_histogram`` and ``add_figure`` (a real ``SummaryWriter``) gets the histograms
    of the eigenvalues and the Jacobian's eigenvalue cloud too
    (:class:`~specdiag.integrations.tensorboard.TensorBoardLogger` lists the tags).
    """
    from .tensorboard import TensorBoardLogger  # numpy only; no TensorBoard

    logger = TensorBoardLogger(
        writer,
        figures=callable(getattr(writer, "add_figure", None)),
        histograms=callable(getattr(writer, "add_histogram", None)),
    )
    logger(record, several=several)


def _checked_writer(summary_writer: Any) -> Any:
    """``summary_writer`` if it has ``add_scalar``, else a TypeError."""
    if summary_writer is not None and not callable(getattr(summary_writer, "add_scalar", None)):
        raise TypeError(
            "summary_writer must have an add_scalar(tag, value, global_step) method "
            "(e.g. torch.utils.tensorboard.SummaryWriter), got "
            f"{type(summary_writer).__name__}"
        )
    return summary_writer


def _checked_callable(value: Any, name: str) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
    return value


def _checked_budget(budget: Optional[float]) -> Optional[float]:
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 1:
        raise ValueError(
            f"budget must be a fraction of the training time in (0, 1], e.g. 0.1; got {budget!r}"
        )
    return float(budget)
