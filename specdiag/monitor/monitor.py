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

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

import torch

from ..dynamics import UpdateRule
from ..errors import ProbeWarning, TraceError, user_stacklevel
from ..game import Game
from ..linalg.options import DEFAULT_TOL, BasisOptions
from ..probing import ProbeOptions, ProbeRecord
from ..probing.core import run_probe
from ..probing.distributed import ProbeGroup, all_agree, resolve_group
from ..probing.options import DEFAULT_K
from ..probing.plan import SPECTRA, Plan, plan_operators
from ..trace import TraceWriter
from .batches import ProbeBatches, check_metadata
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
        schedule (:class:`~specdiag.monitor.schedules.Every`, :class:`~specdiag.monitor.schedules.AtSteps`,
        :class:`~specdiag.monitor.schedules.LogSpaced`, or an object with ``due(step)``).
    k : int
        Eigenvalues per operator. The trace stores ``k + 1`` columns (a conjugate pair
        at the k-th place is kept whole).
    operators : sequence of str, optional
        ``"jacobian"`` and/or player names (their Hessians); default all.
    which : str or mapping, optional
        As for :func:`~specdiag.probe`: a string for the Jacobian (default ``"LM"``) or
        ``{operator: which}`` (Hessians default to ``"LA"``).
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
        probe batches are probed).
    resume : bool
        Append to an existing trace of the same layout, replacing its probes at or after
        the first step probed now (as after a restart from a checkpoint); ``False``
        starts a new trace.
    resume_step : int, optional
        With ``resume``: the step training restarts from (a checkpoint's). Probes at or
        after it are removed from the trace at once, rather than at the first new probe.
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

    Attributes
    ----------
    game : Game
    path : str
    schedule : Schedule
    last : ProbeRecord or None
        The most recent record (the last probe batch's, when several).

    Raises
    ------
    ValueError
        Bad operator names, ``which`` or solver settings, or both ``probe_batch`` and
        ``probe_batches``.
    TraceError
        ``resume=True`` and the existing file is not a trace of this game's layout.

    Notes
    -----
    :meth:`step` on a step that is not due costs about a microsecond. The monitor is a
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
        resume: bool = True,
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
        )
        self._plans = plan_operators(game, self.options)
        self.schedule = as_schedule(every)
        self._due = self.schedule.due
        self._batches = ProbeBatches(probe_batch, probe_batches)
        self._summary_writer = _checked_writer(summary_writer)
        self.game = game
        self.path = os.fspath(path)
        self.last: Optional[ProbeRecord] = None
        self._closed = False
        config = self._config(resume=resume, swmr=swmr, metadata=metadata, group=group)
        self._writer = self._open_trace(
            group,
            config=config,
            resume=resume,
            swmr=swmr,
            locking=locking,
            resume_step=resume_step,
        )

    def _config(
        self,
        *,
        resume: bool,
        swmr: bool,
        metadata: Optional[Mapping[str, Any]],
        group: Optional[ProbeGroup],
    ) -> dict[str, Any]:
        """The monitor's settings as the trace's ``config`` attribute stores them."""
        spectra = [p for p in self._plans if p.kind in SPECTRA]
        return {
            "every": schedule_config(self.schedule),
            "probe_batch": self._batches.mode,
            "resume": bool(resume),
            "swmr": bool(swmr),
            **self.options.config(),
            "operators": [p.name for p in spectra],
            "which": {p.name: p.which for p in spectra},
            "metadata": check_metadata(metadata),
            "world_size": 1 if group is None else group.world_size,
        }

    def _open_trace(
        self,
        group: Optional[ProbeGroup],
        *,
        config: dict[str, Any],
        resume: bool,
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
                    operators=_layout(self._plans),
                    players=self.game.sizes,
                    width=self.options.k + 1,
                    config=config,
                    resume=resume,
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
            Probe now whatever the schedule says.

        Returns
        -------
        list of ProbeRecord
            One per probe batch; empty when no probe was due.
        """
        if not (force or self._due(step)):
            return []
        if self._closed:
            raise RuntimeError(
                f"SpectrumMonitor({self.path!r}) is closed; create a new monitor (resume=True "
                "appends to the same trace)"
            )
        records: list[ProbeRecord] = []
        try:
            for index, probe_batch in enumerate(self._batches(step, batch)):
                record = run_probe(
                    self.game,
                    probe_batch,
                    self.options,
                    step=step,
                    batch_index=index,
                    plans=self._plans,
                )
                self._write(record)
                records.append(record)
                self.last = record
        except BaseException:
            self.close()
            raise
        self._log_scalars(records, step)
        return records

    def _log_scalars(self, records: list[ProbeRecord], step: int) -> None:
        """Every record's scalars to the summary writer (rank 0 only)."""
        if self._summary_writer is None or self._writer is None:
            return
        several = len(records) > 1
        for record in records:
            suffix = f"/batch{record.batch_index}" if several else ""
            for name, op in record.items():
                for scalar, value in op.scalars.items():
                    self._summary_writer.add_scalar(
                        f"specdiag/{name}/{scalar}{suffix}", value, step
                    )

    def _write(self, record: ProbeRecord) -> None:
        if self._writer is None:  # a rank other than 0 of a distributed probe
            return
        try:
            self._writer.write(record)
        except TraceError as error:
            if self.options.on_error == "raise":
                raise
            if self.options.on_error == "warn":
                warnings.warn(
                    f"specdiag: the probe at step {record.step} was not recorded: {error}",
                    ProbeWarning,
                    stacklevel=user_stacklevel(),
                )

    def close(self) -> None:
        """Close the trace; idempotent. The summary writer is the caller's to close."""
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


def _layout(plans: list[Plan]) -> dict[str, dict[str, Any]]:
    """The trace's operators: kind, which and order of every planned solve."""
    return {p.name: {"kind": p.kind, "which": p.which, "n": p.n} for p in plans}


def _checked_writer(summary_writer: Any) -> Any:
    """``summary_writer`` if it has ``add_scalar``, else a TypeError."""
    if summary_writer is not None and not callable(getattr(summary_writer, "add_scalar", None)):
        raise TypeError(
            "summary_writer must have an add_scalar(tag, value, global_step) method "
            "(e.g. torch.utils.tensorboard.SummaryWriter), got "
            f"{type(summary_writer).__name__}"
        )
    return summary_writer
