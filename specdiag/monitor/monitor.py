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

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

import torch

from ..dynamics import UpdateRule
from ..errors import ProbeWarning, TraceError, user_stacklevel
from ..game import Game
from ..probing import ProbeRecord, probe
from ..probing.distributed import all_agree, check_share, resolve_group
from ..probing.plan import check_settings, plan_operators
from ..trace import TraceWriter
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
        k: int = 10,
        operators: Sequence[str] | None = None,
        which: str | Mapping[str, str] | None = None,
        tol: float = 1e-3,
        ncv: int | None = None,
        maxiter: int | None = None,
        max_matvecs: int | None = None,
        probe_batch: Any = None,
        probe_batches: Sequence[Any] | None = None,
        seed: int | None = 0,
        on_error: str = "warn",
        summary_writer: Any = None,
        resume: bool = True,
        resume_step: int | None = None,
        swmr: bool = False,
        locking: bool | None = None,
        backend: str = "krylov-schur",
        metadata: Mapping[str, Any] | None = None,
        distributed: bool | Any | None = None,
        shard_weight: float | None = None,
        basis_device: torch.device | str | None = None,
        basis_dtype: torch.dtype | None = None,
        shard_basis: bool = False,
        update: UpdateRule | None = None,
        helmholtz: int | None = None,
    ) -> None:
        if not isinstance(game, Game):
            raise TypeError(f"game must be a specdiag.Game, got {type(game).__name__}")
        check_settings(k, tol, ncv, maxiter, max_matvecs, seed, on_error, backend)
        plans = plan_operators(game, operators, which, int(k), update, helmholtz)
        spectra = [p for p in plans if p.kind in ("jacobian", "hessian")]
        self.schedule = as_schedule(every)
        self._due = self.schedule.due
        self._batches, batch_mode = _batch_source(probe_batch, probe_batches)
        if summary_writer is not None and not callable(getattr(summary_writer, "add_scalar", None)):
            raise TypeError(
                "summary_writer must have an add_scalar(tag, value, global_step) method "
                f"(e.g. torch.utils.tensorboard.SummaryWriter), got {type(summary_writer).__name__}"
            )
        self.game = game
        self.path = os.fspath(path)
        self.last: ProbeRecord | None = None
        self._summary_writer = summary_writer
        self._on_error = on_error
        check_share(shard_weight)
        group = resolve_group(distributed)
        self._probe_kwargs = dict(
            k=int(k),
            operators=[p.name for p in spectra],
            which={p.name: p.which for p in spectra},
            tol=tol,
            ncv=ncv,
            maxiter=maxiter,
            max_matvecs=max_matvecs,
            seed=seed,
            on_error=on_error,
            backend=backend,
        )
        config = {
            "every": schedule_config(self.schedule),
            "probe_batch": batch_mode,
            "resume": bool(resume),
            "swmr": bool(swmr),
            **self._probe_kwargs,
            "metadata": _check_metadata(metadata),
            "world_size": 1 if group is None else group.world_size,
            "basis": {
                "device": None if basis_device is None else str(basis_device),
                "dtype": None if basis_dtype is None else str(basis_dtype),
                "sharded": bool(shard_basis and group is not None),
            },
            "update": None if update is None else update.config(),
            "helmholtz": helmholtz,
        }
        self._probe_kwargs.update(
            distributed=False if group is None else group.group or True,
            shard_weight=shard_weight,
            basis_device=basis_device,
            basis_dtype=basis_dtype,
            shard_basis=shard_basis,
            update=update,
            helmholtz=helmholtz,
        )
        self._writer: TraceWriter | None = None
        self._closed = False
        error: Exception | None = None
        if group is None or group.rank == 0:
            try:
                self._writer = TraceWriter(
                    self.path,
                    operators={p.name: {"kind": p.kind, "which": p.which, "n": p.n} for p in plans},
                    players=game.sizes,
                    width=int(k) + 1,
                    config=config,
                    resume=resume,
                    swmr=swmr,
                    locking=locking,
                    versions={"torch": torch.__version__},
                    resume_step=resume_step,
                )
            except Exception as exc:  # re-raised below, once every rank knows
                error = exc
        if group is not None and not all_agree(group, error is None, game.device):
            self._closed = True
            if error is None:
                raise TraceError(
                    f"rank 0 could not open the trace {self.path!r}; its error says why"
                )
        if error is not None:
            raise error

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
                record = probe(
                    self.game, probe_batch, step=step, batch_index=index, **self._probe_kwargs
                )
                self._write(record)
                records.append(record)
                self.last = record
        except BaseException:
            self.close()
            raise
        if self._summary_writer is not None and self._writer is not None:
            several = len(records) > 1
            for record in records:
                suffix = f"/batch{record.batch_index}" if several else ""
                for name, op in record.items():
                    for scalar, value in op.scalars.items():
                        self._summary_writer.add_scalar(
                            f"specdiag/{name}/{scalar}{suffix}", value, step
                        )
        return records

    def _write(self, record: ProbeRecord) -> None:
        if self._writer is None:  # a rank other than 0 of a distributed probe
            return
        try:
            self._writer.write(record)
        except TraceError as error:
            if self._on_error == "raise":
                raise
            if self._on_error == "warn":
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
        return self._closed

    def __enter__(self) -> SpectrumMonitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SpectrumMonitor({self.path!r}, every={self.schedule!r}, {state})"


def _batch_source(
    probe_batch: Any, probe_batches: Sequence[Any] | None
) -> tuple[Callable[[int, Any], list[Any]], str]:
    """``batches(step, current) -> [batch, ...]`` for a probe, and a description."""
    if probe_batches is not None:
        if probe_batch is not None:
            raise ValueError("pass probe_batch or probe_batches, not both")
        if isinstance(probe_batches, (str, bytes)) or not isinstance(probe_batches, Iterable):
            raise TypeError(
                f"probe_batches must be a sequence of batches, got {type(probe_batches).__name__}"
            )
        fixed = list(probe_batches)
        if not fixed:
            raise ValueError("probe_batches is empty; give at least one batch")
        return (lambda step, current: fixed), f"{len(fixed)} fixed batches"
    if isinstance(probe_batch, str):
        if probe_batch != "current":
            raise ValueError(
                f"probe_batch={probe_batch!r}: the only string accepted is 'current' (the batch "
                "passed to step()); pass a batch, a callable probe_batch(step) or None"
            )
        probe_batch = None
    if probe_batch is None:
        return (lambda step, current: [current]), "current"
    if callable(probe_batch):
        source = probe_batch
        return (
            lambda step, current: [source(step)]
        ), f"callable {getattr(source, '__name__', repr(source))}"
    return (lambda step, current: [probe_batch]), "fixed"


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metadata`` as a plain dict that JSON can store, or a TypeError saying why not."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
    try:
        return json.loads(json.dumps(dict(metadata), allow_nan=True))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"metadata must hold JSON values (str, numbers, bools, None, lists, dicts): {error}"
        ) from None
