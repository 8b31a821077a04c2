r"""Deferred probes: a trace computed afterwards from snapshots or checkpoints.

:func:`probe_snapshots` probes the snapshots a deferred monitor wrote
(:mod:`specdiag.monitor.snapshots`), or a run's own checkpoints, in step order with one
:class:`~specdiag.probing.session.ProbeSession` -- warm starts carried from each probe
to the next as in the training loop -- and writes one trace. With one worker the trace
is the one the monitor would have written in the loop: the same parameters, batch,
seed and warm-start chain give the same eigenvalues, bit for bit.

With ``workers=N`` the snapshots are cut into ``N`` contiguous chunks probed in ``N``
spawned processes (each chunk's first probe starts cold, so results agree with one
worker within the tolerance, relative to :math:`|\lambda|_{\max}`), each writing a part
trace next to the output; the parts are then merged in step order. Under ``torchrun``
(``torch.distributed`` initialised with more than one rank) each rank takes its chunk
the same way and rank 0 merges.

.. code-block:: python

    sd.probe_snapshots(game, mon.snapshot_dir, "run.h5", k=10)
    sd.probe_snapshots("train:build_game", "snapshots/", "run.h5", workers=4)
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import importlib.util
import os
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from ..errors import SpecdiagError
from ..game import Game
from ..linalg.options import DEFAULT_TOL, BasisOptions
from ..probing import OperatorRecord, ProbeOptions, ProbeRecord
from ..probing.distributed import ProbeGroup, resolve_group
from ..probing.options import DEFAULT_K
from ..probing.plan import SPECTRA, Plan, plan_operators
from ..probing.session import ProbeSession
from ..trace import Trace, TraceWriter, open_trace
from .monitor import layout_of
from .schedules import AtSteps, schedule_config
from .snapshots import SnapshotError, load_state, open_snapshot, read_manifest, read_snapshots
from .snapshots import state_of as _state_of

__all__ = ["probe_snapshots", "records_of", "merge_traces", "ProbeWorkerError", "game_from_spec"]

PathLike = Union[str, "os.PathLike[str]"]
#: Seconds a worker process may stay silent (no probe finished) before it is called hung.
WORKER_TIMEOUT_S = 3600.0


class ProbeWorkerError(SpecdiagError, RuntimeError):
    """A worker of :func:`probe_snapshots` (a process or a rank) failed.

    The message names the worker and its error.
    """


# --------------------------------------------------------------------------- what to probe


@dataclass(frozen=True)
class _Item:
    """One thing to probe: a snapshot file, or a user checkpoint and its step."""

    step: int
    path: str
    seed: Optional[int] = None  # the snapshot's stored seed (None: a checkpoint)


def _import(spec: str, what: str) -> Callable[..., Any]:
    """The function ``"module:function"`` names.

    The module is a dotted module importable from the current directory, or a path to a
    ``.py`` file.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"{what} must be 'MODULE:FUNCTION', got {spec!r}")
    module_name, _, name = spec.rpartition(":")
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise ValueError(f"{what} {spec!r}: no file {path}")
            unique = f"_specdiag_spec_{abs(hash(path))}"
            module = sys.modules.get(unique)
            if module is None:
                loader = importlib.util.spec_from_file_location(unique, path)
                assert loader is not None and loader.loader is not None
                module = importlib.util.module_from_spec(loader)
                sys.modules[unique] = module
                loader.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{what} {spec!r}: cannot import {module_name!r} ({error})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"{what} {spec!r}: {module_name!r} has no function {name!r}")
    return function


_NO_BATCH: Any = object()


def game_from_spec(spec: str) -> tuple[Game, Any]:
    """The game the function ``spec`` (``"module:function"``) builds, and its batch.

    The function takes no argument and returns a Game or ``(Game, batch)``; without a
    batch the second value is a private marker.
    """
    function = _import(spec, "--game")
    try:
        built = function()
    except Exception as error:
        raise SnapshotError(f"--game {spec!r} raised {type(error).__name__}: {error}") from error
    game, batch = built if isinstance(built, tuple) and len(built) == 2 else (built, _NO_BATCH)
    if not isinstance(game, Game):
        raise TypeError(
            f"--game {spec!r} must return a specdiag.Game or (Game, batch), got "
            f"{type(built).__name__}"
        )
    return game, batch


def _items(snapshots: Any, load: Optional[str]) -> tuple[list[_Item], dict[str, Any]]:
    """What to probe, in step order, and the run's settings (a snapshot manifest's)."""
    if load is None:
        if isinstance(snapshots, (str, os.PathLike)):
            manifest = read_manifest(snapshots)
            found = read_snapshots(snapshots)
        else:
            manifest, found = {}, [open_snapshot(getattr(s, "path", s)) for s in snapshots]
        items = [_Item(s.step, str(s.path), s.seed) for s in found]
        config = dict(manifest.get("config", {}))
        config.setdefault("probe_batch", manifest.get("probe_batch", "per snapshot"))
    else:
        loader = _import(load, "load")
        items = [_Item(_checkpoint(loader, path, load)[1], path) for path in _files(snapshots)]
        config = {"probe_batch": "from the game spec"}
    items.sort(key=lambda item: item.step)
    for a, b in zip(items, items[1:]):
        if a.step == b.step:
            raise ValueError(f"{a.path} and {b.path} are both of step {a.step}")
    if not items:
        raise ValueError(f"nothing to probe: no snapshots or checkpoints in {snapshots!r}")
    return items, config


def _files(snapshots: Any) -> list[str]:
    """The checkpoint files: a directory's files, a glob's matches, or a list."""
    if isinstance(snapshots, (str, os.PathLike)):
        where = os.fspath(snapshots)
        if os.path.isdir(where):
            paths = (os.path.join(where, n) for n in os.listdir(where) if not n.startswith("."))
            return sorted(p for p in paths if os.path.isfile(p))
        if glob.has_magic(where):
            return sorted(glob.glob(where))
        return [where]
    return [os.fspath(s) for s in snapshots]


def _checkpoint(loader: Callable[..., Any], path: str, spec: str) -> tuple[Any, int]:
    """``loader(path) -> (state, step)``, checked."""
    try:
        out = loader(path)
    except Exception as error:
        raise SnapshotError(
            f"load {spec!r} failed on {path}: {type(error).__name__}: {error}"
        ) from error
    if not (isinstance(out, tuple) and len(out) == 2) or isinstance(out[1], bool):
        raise TypeError(f"load {spec!r} must return (state, step), got {type(out).__name__}")
    return out[0], int(out[1])


# --------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class _Job:
    """What every worker needs to probe its items (picklable, for spawned processes)."""

    settings: dict[str, Any]  # probe keywords, for ProbeOptions.build
    seed: Optional[int]
    warm_start: bool
    load: Optional[str]
    config: dict[str, Any]  # the trace's configuration


def _options(settings: Mapping[str, Any], seed: int) -> ProbeOptions:
    """The probe options; a deferred probe runs in one process (never distributed)."""
    s = dict(settings)
    basis = BasisOptions(s.pop("basis_device"), s.pop("basis_dtype"))
    return ProbeOptions.build(basis=basis, seed=seed, distributed=False, **s)


def _seed_of(item: _Item, seed: Optional[int]) -> int:
    """The probe seed: the one given, else the snapshot's, else 0 (the monitor's default)."""
    if seed is not None:
        return seed
    return 0 if item.seed is None else item.seed


def _writer(path: str, game: Game, job: _Job, *, resume: bool) -> TraceWriter:
    """A trace writer with the monitor's layout (the widths and arrays it stores)."""
    options = _options(job.settings, 0)
    return TraceWriter(
        path,
        operators=layout_of(plan_operators(game, options), game, options),
        players=game.sizes,
        width=options.k + 1,
        config=job.config,
        resume=resume,
        versions={"torch": torch.__version__},
    )


def _fallback(batch: Any, step: int) -> Any:
    """The batch of a snapshot that stores none: ``batch(step)`` or ``batch``."""
    if batch is _NO_BATCH:
        return None
    return batch(step) if callable(batch) else batch


def _loaded(game: Game, item: _Item, job: _Job, batch: Any) -> Any:
    """Put the item's values into the game; the batch to probe it on."""
    if job.load is None:
        snapshot = open_snapshot(item.path)
        snapshot.load_into(game)
        return snapshot.batch(game.device) if snapshot.has_batch else _fallback(batch, item.step)
    state, _ = _checkpoint(_import(job.load, "load"), item.path, job.load)
    try:
        load_state(game, state)
    except SnapshotError as error:
        raise SnapshotError(f"{item.path}: {error}") from None
    return _fallback(batch, item.step)


def _probe_items(
    game: Game,
    items: Sequence[_Item],
    writer: TraceWriter,
    job: _Job,
    batch: Any,
    tick: Callable[[], Any],
) -> None:
    """Probe the items in order with one session; the game is put back afterwards."""
    if not items:
        return
    options = _options(job.settings, _seed_of(items[0], job.seed))
    session = ProbeSession(game, options, warm_start=job.warm_start)
    saved = _state_of(game)
    try:
        for item in items:
            seed = _seed_of(item, job.seed)
            if seed != session.options.seed:  # snapshots written with another seed
                session.options = dataclasses.replace(session.options, seed=seed)
            probe_batch = _loaded(game, item, job, batch)
            writer.write(session.probe(probe_batch, step=item.step))
            tick()
    finally:
        load_state(game, saved)


def _bar(total: int, progress: bool) -> Any:
    from tqdm import tqdm

    shown = bool(progress) and sys.stderr.isatty()
    return tqdm(total=total, desc="probing snapshots", unit="probe", disable=not shown)


def _chunks(items: Sequence[_Item], n: int) -> list[list[_Item]]:
    """``items`` cut into at most ``n`` contiguous chunks of nearly equal sizes."""
    bounds = np.linspace(0, len(items), min(n, len(items)) + 1).round().astype(int)
    return [list(items[a:b]) for a, b in zip(bounds, bounds[1:])]


# --------------------------------------------------------------------------- traces


def records_of(trace: Trace) -> Iterator[ProbeRecord]:
    """The probe records of a trace, rebuilt from its rows (in file order).

    Writing them to a :class:`~specdiag.trace.TraceWriter` of the same layout gives the
    same rows: the eigenvalue columns are cut at the last value the probe stored and
    padded again when written.
    """
    layout = trace.meta["layout"]["operators"]
    probes, losses = trace.probes(), trace.losses()
    columns = {op: _columns(trace, op) for op in trace.operators}
    for i in range(len(trace)):
        seed = int(probes["seed"][i])
        yield ProbeRecord(
            step=int(probes["step"][i]),
            batch_index=int(probes["batch_index"][i]),
            seed=None if seed < 0 else seed,
            losses={player: float(values[i]) for player, values in losses.items()},
            wall_time=float(probes["wall_time"][i]),
            build_time=float(probes["build_time"][i]),
            status=str(probes["status"][i]),
            operators={op: _operator_record(op, layout[op], columns[op], i) for op in columns},
        )


def _columns(trace: Trace, op: str) -> dict[str, Any]:
    return {
        "eigenvalues": trace.eigenvalues(op),
        "residuals": trace.residuals(op),
        "converged": trace.converged(op),
        "n_matvec": trace.n_matvec(op),
        "wall_time": trace.wall_time(op),
        "status": trace.status(op),
        "message": trace.messages(op),
        "scalars": trace.scalars(op),
    }


def _operator_record(
    name: str, spec: Mapping[str, Any], columns: Mapping[str, Any], i: int
) -> OperatorRecord:
    eigenvalues, residuals = columns["eigenvalues"][i], columns["residuals"][i]
    converged = columns["converged"][i]
    stored = ~np.isnan(eigenvalues.real) | ~np.isnan(eigenvalues.imag)
    stored |= ~np.isnan(residuals) | converged
    m = int(np.flatnonzero(stored).max()) + 1 if stored.any() else 0
    return OperatorRecord(
        name=name,
        kind=spec["kind"],
        which=spec["which"],
        eigenvalues=eigenvalues[:m].copy(),
        residuals=residuals[:m].copy(),
        converged=converged[:m].copy(),
        n_matvec=int(columns["n_matvec"][i]),
        wall_time=float(columns["wall_time"][i]),
        status=str(columns["status"][i]),
        message=str(columns["message"][i]),
        scalars={s: float(values[i]) for s, values in columns["scalars"].items()},
    )


def merge_traces(parts: Sequence[PathLike], writer: TraceWriter) -> int:
    """Write the probes of the part traces into ``writer``, in step order; their number."""
    records = [r for part in parts for r in records_of(open_trace(part))]
    records.sort(key=lambda r: (r.step, r.batch_index))
    for record in records:
        writer.write(record)
    return len(records)


def _remove(paths: Sequence[str]) -> None:
    """Delete part traces and the lock files of their writers.

    A worker killed after a failure elsewhere leaves its lock behind; its process is
    gone, so the lock is stale.
    """
    for p in paths:
        Path(p).unlink(missing_ok=True)
        Path(os.path.realpath(p) + ".lock").unlink(missing_ok=True)


# --------------------------------------------------------------------------- the entry point


def probe_snapshots(
    game: Game | str,
    snapshots: PathLike | Sequence[Any],
    path: PathLike,
    *,
    k: int = DEFAULT_K,
    operators: Optional[Sequence[str]] = None,
    which: str | Mapping[str, str] | None = None,
    tol: float = DEFAULT_TOL,
    ncv: Optional[int] = None,
    maxiter: Optional[int] = None,
    max_matvecs: Optional[int] = None,
    backend: str = "krylov-schur",
    basis_device: torch.device | str | None = None,
    basis_dtype: Optional[torch.dtype] = None,
    seed: Optional[int] = None,
    on_error: str = "warn",
    warm_start: bool = False,
    workers: int = 1,
    load: Optional[str] = None,
    batch: Any = None,
    resume: Optional[bool] = None,
    overwrite: bool = False,
    progress: bool = True,
    update: Any = None,
    helmholtz: Optional[int] = None,
    distributed: bool | Any | None = None,
    shares: bool | str = False,
    density: Any = False,
) -> str:
    r"""Probe snapshots (or checkpoints) in step order and write one trace.

    Each snapshot is loaded into the game's players (:meth:`Snapshot.load_into`) and
    probed on its stored batch with its stored seed, by one
    :class:`~specdiag.probing.session.ProbeSession`: the same warm-start chain as a
    monitor probing in the loop, so one worker writes the trace that monitor would have
    written (the same eigenvalues, bit for bit). The players' parameters, buffers and
    ``training`` flags are put back as they were at the end.

    Parameters
    ----------
    game : Game or str
        The game, or ``"module:function"`` naming a function that builds it (a dotted
        module importable from the current directory, or a path to a ``.py`` file; the
        function takes no argument and returns a Game or ``(Game, batch)``). Workers
        (``workers > 1``) need the string: each builds its own game.
    snapshots : path or sequence
        A snapshot directory (:class:`~specdiag.monitor.snapshots.SnapshotWriter`), or a
        list of snapshots or snapshot files. With ``load``: a directory of checkpoints,
        a glob pattern, or a list of checkpoint files.
    path : str or os.PathLike
        The trace to write.
    k, operators, which, tol, ncv, maxiter, max_matvecs, backend, on_error : optional
        The probe settings, as for :class:`~specdiag.SpectrumMonitor`.
    update, helmholtz, shares, density : optional
        The analyses, as for :class:`~specdiag.SpectrumMonitor`. An ``update``
        rule that reads optimizers is refused (a snapshot holds no optimizer state).
    basis_device, basis_dtype
        Where and how the solvers keep their Krylov bases (see :func:`~specdiag.probe`).
    seed : int, optional
        The probe seed; default each snapshot's stored seed (0 for checkpoints).
    warm_start : bool
        Start each solve from the previous probe's Ritz subspace
        (:class:`~specdiag.probing.session.ProbeSession`); off by default, as in
        :class:`~specdiag.SpectrumMonitor`.
    workers : int
        Processes probing contiguous chunks of the snapshots in parallel (spawned;
        torch threads shared out among them). Each chunk's first probe starts cold, so
        the eigenvalues agree with one worker within ``tol`` relative to
        :math:`|\lambda|_{\max}`. In a script, call it under
        ``if __name__ == "__main__":`` (spawned processes import the main module).
    load : str, optional
        ``"module:function"`` with ``function(path) -> (state, step)``, ``state =
        {player: state_dict() or list of tensors}``: probe the run's own checkpoints.
        Their batch is ``batch``, else the one the game function returns, else None.
        The loader runs twice per file: once to read the steps (the probes go in step
        order), once to probe.
    batch : object or callable, optional
        The batch of a snapshot that stores none, and of checkpoints: a batch, or
        ``batch(step) -> batch``.
    resume : bool, optional
        With an existing trace at ``path``: probe only the snapshots after its last
        step and append them (their first probe starts cold). ``None`` or ``False``: an
        existing trace is an error unless ``overwrite``.
    overwrite : bool
        Replace an existing trace.
    progress : bool
        A tqdm progress bar (shown only on a terminal).
    distributed : None, bool or ProcessGroup
        Under ``torchrun``: ``None`` (default) splits the snapshots over the ranks of the
        default group when it is initialised with more than one rank; every rank calls
        :func:`probe_snapshots` with the same arguments, probes its chunk alone, and
        rank 0 merges the parts (the ranks agree at the end by one all-reduce, under the
        process group's timeout; a rank that failed raises its error, the others a
        :class:`ProbeWorkerError` naming it). ``False``: this process alone.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    SnapshotError
        A snapshot is damaged or does not fit the game (the message names the file).
    FileExistsError
        ``path`` exists and neither ``resume`` nor ``overwrite`` is set.
    ProbeWorkerError
        A worker failed (the message names it and its error).
    """
    settings = dict(
        k=k, operators=operators, which=which, tol=tol, ncv=ncv, maxiter=maxiter,
        max_matvecs=max_matvecs, backend=backend, basis_device=basis_device,
        basis_dtype=basis_dtype, on_error=on_error, update=update, helmholtz=helmholtz,
        shares=shares, density=density,
    )  # fmt: skip
    _check_update(update)
    spec, group, workers = _check_workers(game, workers, distributed)
    built, spec_batch = game_from_spec(spec) if spec is not None else (game, _NO_BATCH)
    assert isinstance(built, Game)
    items, run_config = _items(snapshots, load)
    options = _options(settings, _seed_of(items[0], seed))  # checks every setting now
    out = os.fspath(path)
    resumed, items = _pending(out, items, resume, overwrite)
    if not items:
        return out
    config = _config(
        options, plan_operators(built, options), run_config, items,
        source=snapshots, load=load, workers=workers, warm_start=warm_start, resume=resumed,
    )  # fmt: skip
    job = _Job(settings, seed, bool(warm_start), load, config)
    fallback = batch if batch is not None else spec_batch
    if group is not None:
        _run_ranks(built, items, out, job, fallback, resumed, group, progress)
    elif workers > 1 and len(items) > 1:
        assert spec is not None
        _run_processes(built, spec, items, out, job, batch, resumed, workers, progress)
    else:
        writer = _writer(out, built, job, resume=resumed)
        try:
            with _bar(len(items), progress) as bar:
                _probe_items(built, items, writer, job, fallback, bar.update)
        finally:
            writer.close()
    return out


def _check_update(update: Any) -> None:
    if update is not None and getattr(update, "optimizers", None) is not None:
        raise ValueError(
            "update=UpdateRule(..., optimizers=...) reads the optimizers' state at probe time, "
            "which a snapshot does not store; pass a rule without optimizers, or probe the "
            "update operator in the training loop"
        )


def _check_workers(
    game: Any, workers: Any, distributed: Any
) -> tuple[Optional[str], Optional[ProbeGroup], int]:
    """The game spec (or None), the ranks to split over (or None), the processes."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(game, (Game, str)):
        raise TypeError(
            f"game must be a specdiag.Game or a 'module:function' string, got {type(game).__name__}"
        )
    spec = game if isinstance(game, str) else None
    if workers > 1 and spec is None:
        raise ValueError(
            f"workers={workers} needs the game as a 'module:function' string naming the function "
            "that builds it (each worker process builds its own game), not a Game object"
        )
    group = resolve_group(distributed)
    if group is not None and workers > 1:
        raise ValueError(
            "under torch.distributed every rank is a worker already: pass workers=1 "
            "(or distributed=False to run worker processes on this rank)"
        )
    return spec, group, workers


def _pending(
    out: str, items: list[_Item], resume: Optional[bool], overwrite: bool
) -> tuple[bool, list[_Item]]:
    """Whether to append to ``out``, and the items still to probe."""
    if resume and overwrite:
        raise ValueError("pass resume=True or overwrite=True, not both")
    if not os.path.exists(out) or overwrite:
        return False, items
    if not resume:
        raise FileExistsError(
            f"{out} exists; pass overwrite=True (specdiag probe --force) to replace it, or "
            "resume=True to probe only the snapshots after its last step"
        )
    steps = open_trace(out).probe_steps()
    last = int(steps.max()) if len(steps) else -1
    return True, [item for item in items if item.step > last]


def _config(
    options: ProbeOptions,
    plans: list[Plan],
    run: Mapping[str, Any],
    items: Sequence[_Item],
    *,
    source: Any,
    load: Optional[str],
    workers: int,
    warm_start: bool,
    resume: bool,
) -> dict[str, Any]:
    """The trace's configuration, with the keys of ``SpectrumMonitor._config``.

    The run's settings come from the snapshot manifest; ``deferred`` says how the probes
    were run.
    """
    spectra = [p for p in plans if p.kind in SPECTRA]
    return {
        "every": run.get("every", schedule_config(AtSteps(i.step for i in items))),
        "probe_batch": run.get("probe_batch"),
        "resume": bool(resume),
        "swmr": False,
        **options.config(),
        "operators": [p.name for p in spectra],
        "which": {p.name: p.which for p in spectra},
        "metadata": run.get("metadata", {}),
        "world_size": 1,
        "deferred": {
            "source": os.fspath(source) if isinstance(source, (str, os.PathLike)) else "a list",
            "load": load,
            "workers": workers,
            "warm_start": bool(warm_start),
        },
    }


# --------------------------------------------------------------------------- workers


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _run_processes(
    game: Game,
    spec: str,
    items: list[_Item],
    out: str,
    job: _Job,
    batch: Any,
    resume: bool,
    workers: int,
    progress: bool,
) -> None:
    """Probe contiguous chunks in spawned processes, then merge their part traces."""
    import multiprocessing

    chunks = _chunks(items, workers)
    parts = [f"{out}.part{i}" for i in range(len(chunks))]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    threads = max(1, torch.get_num_threads() // len(chunks))
    processes = [
        context.Process(
            target=_worker,
            args=(i, spec, chunk, part, job, batch, threads, queue),
            name=f"specdiag-probe-{i}",
            daemon=True,
        )
        for i, (chunk, part) in enumerate(zip(chunks, parts))
    ]
    try:
        for process in processes:
            process.start()
        _wait(processes, chunks, queue, progress)
        writer = _writer(out, game, job, resume=resume)
        try:
            merge_traces(parts, writer)
        finally:
            writer.close()
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
        _remove(parts)


def _wait(processes: list[Any], chunks: list[list[_Item]], queue: Any, progress: bool) -> None:
    """Until every worker is done; ProbeWorkerError as soon as one fails or dies."""
    import queue as queues

    def failure(i: int, why: str) -> ProbeWorkerError:
        steps = f"steps {chunks[i][0].step} to {chunks[i][-1].step}"
        return ProbeWorkerError(f"probe worker {i} ({steps}) failed: {why}")

    done: set[int] = set()
    heard = time.monotonic()
    with _bar(sum(len(c) for c in chunks), progress) as bar:
        while len(done) < len(processes):
            messages: list[tuple[Any, ...]] = []
            try:
                messages.append(queue.get(timeout=0.2))
                while True:
                    messages.append(queue.get_nowait())
            except queues.Empty:
                pass
            for kind, i, *why in messages:
                heard = time.monotonic()
                if kind == "error":
                    raise failure(i, why[0])
                if kind == "done":
                    done.add(i)
                else:
                    bar.update()
            for i, process in enumerate(processes):  # messages are drained: a silent death
                if i not in done and process.exitcode is not None:
                    raise failure(i, f"the process died (exit code {process.exitcode})")
            if time.monotonic() - heard > WORKER_TIMEOUT_S:
                raise ProbeWorkerError(f"no probe worker finished a probe in {WORKER_TIMEOUT_S} s")


def _worker(
    index: int,
    spec: str,
    items: list[_Item],
    part: str,
    job: _Job,
    batch: Any,
    threads: int,
    queue: Any,
) -> None:
    """One spawned worker: build the game, probe its chunk into its part trace."""
    try:
        torch.set_num_threads(threads)
        game, spec_batch = game_from_spec(spec)
        writer = _writer(part, game, job, resume=False)
        try:
            fallback = batch if batch is not None else spec_batch
            _probe_items(game, items, writer, job, fallback, lambda: queue.put(("tick", index)))
        finally:
            writer.close()
        queue.put(("done", index))
    except BaseException as error:
        queue.put(("error", index, _one_line(error)))
        traceback.print_exc()
        sys.exit(1)


def _failed_ranks(group: ProbeGroup, failed: bool, device: torch.device) -> list[int]:
    """The ranks that failed (one all-reduce: every rank must call it)."""
    flags = torch.zeros(group.world_size, device=device)
    flags[group.rank] = float(failed)
    group.all_reduce(flags)
    return [rank for rank, flag in enumerate(flags.tolist()) if flag]


def _run_ranks(
    game: Game,
    items: list[_Item],
    out: str,
    job: _Job,
    batch: Any,
    resume: bool,
    group: ProbeGroup,
    progress: bool,
) -> None:
    """Under torch.distributed: each rank probes its chunk, rank 0 merges the parts."""
    chunks = _chunks(items, group.world_size)
    parts = [f"{out}.part{r}" for r in range(len(chunks))]
    error: Optional[BaseException] = None
    if group.rank < len(chunks):
        try:
            writer = _writer(parts[group.rank], game, job, resume=False)
            try:
                with _bar(len(chunks[group.rank]), progress and group.rank == 0) as bar:
                    _probe_items(game, chunks[group.rank], writer, job, batch, bar.update)
            finally:
                writer.close()
        except Exception as exc:  # raised below, once every rank knows
            error = exc
    failed = _failed_ranks(group, error is not None, game.device)
    if failed:
        _remove(parts[group.rank : group.rank + 1])
        if error is not None:
            raise error
        raise ProbeWorkerError(f"rank(s) {failed} failed probing their snapshots; see their errors")
    if group.rank == 0:
        try:
            writer = _writer(out, game, job, resume=resume)
            try:
                merge_traces(parts, writer)
            finally:
                writer.close()
            _remove(parts)
        except Exception as exc:  # raised below, once every rank knows
            error = exc
    if _failed_ranks(group, error is not None, game.device):
        if error is not None:
            raise error
        raise ProbeWorkerError("rank 0 could not merge the part traces; see its error")


def path_angle_between(
    game: Game | str,
    start: PathLike,
    end: PathLike,
    *,
    load: Optional[str] = None,
    batch: Any = None,
    alphas: Any = None,
    seed: Optional[int] = None,
) -> Any:
    r"""Berard et al.'s path-angle between two snapshots or checkpoints of a run.

    The states are read from two snapshot files (of ``SpectrumMonitor(defer=True)``) or,
    with ``load="module:function"``, from two of the run's own checkpoints
    (``function(path) -> (state, step)``), and handed to
    :func:`~specdiag.dynamics.path_angle.path_angle` with ``start`` as :math:`\theta_1`
    and ``end`` as :math:`\theta_2`. The batch is ``batch``, else the start snapshot's,
    else the one the game function returns; the seed is ``seed``, else the start
    snapshot's, else 0. The game's players are left as they were.

    Returns
    -------
    PathAngle
    """
    from ..dynamics.path_angle import path_angle

    built, spec_batch = game_from_spec(game) if isinstance(game, str) else (game, _NO_BATCH)
    states, stored_batch, stored_seed = [], _NO_BATCH, None
    for index, path in enumerate((os.fspath(start), os.fspath(end))):
        if load is None:
            snapshot = open_snapshot(path)
            states.append(snapshot.state().players)
            if index == 0:
                stored_seed = snapshot.seed
                if snapshot.has_batch:
                    stored_batch = snapshot.batch(built.device)
        else:
            states.append(_checkpoint(_import(load, "load"), path, load)[0])
    chosen = (
        batch
        if batch is not None
        else stored_batch
        if stored_batch is not _NO_BATCH
        else spec_batch
    )
    return path_angle(
        built,
        states[0],
        states[1],
        None if chosen is _NO_BATCH else chosen,
        alphas,
        seed=seed if seed is not None else (stored_seed or 0),
    )
