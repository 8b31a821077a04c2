"""Writing a trace: one row per probe, crash-safe, optionally followed live (SWMR).

Writing modes
-------------
default
    Every :meth:`TraceWriter.write` opens the file, appends one row to every dataset,
    flushes and closes it. The file is closed between probes, so other processes can
    read it at any time, and killing the training process loses at most the probe being
    written.
``swmr=True``
    The file is opened once in HDF5's single-writer/multiple-reader mode; every write
    appends and flushes. Readers follow the run live with ``open_trace(path, swmr=True)``
    and :meth:`~specdiag.trace.Trace.refresh`.

Failures
--------
A write either appends its whole row or leaves the file as it was: it is refused
before the file is opened when the disk or the file-size limit leaves too little room
(:mod:`~specdiag.trace.storage`), its bytes are reserved before HDF5 writes them, and a
row cut off anyway is invisible (``probe_step`` is written last) and overwritten by the
next write. Every failure raises :class:`~specdiag.trace.TraceWriteError`; the writer
stays usable, so the caller can keep the record and write it again later.
"""

from __future__ import annotations

import os
import platform
import secrets
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Optional, Union

import h5py
import numpy as np

from .._version import __version__
from ..errors import TraceError
from .encode import encode_record
from .files import SWMR_LIBVER, one_line, open_h5, read_meta, strict_json, unreadable
from .layout import build_layout, chunk_bytes
from .lock import WriterLock
from .schema import (
    SCHEMA_VERSION,
    dataset_specs,
    layout_difference,
    normalise_layout,
)
from .storage import creation_error, refused, remove_quietly, reserve, room_problem, write_error

__all__ = ["TraceWriter"]

PathLike = Union[str, "os.PathLike[str]"]
#: Room for HDF5's metadata (object headers, chunk indexes, the superblock) per write,
#: and per dataset (a new trace takes about 850 bytes a dataset; a write, next to nothing
#: but the chunks it starts).
METADATA_BYTES = 16 * 1024
DATASET_BYTES = 512
#: What ``TraceWriter`` suggests when it refuses an existing file.
HINT = "pass overwrite=True (or resume=False) to replace it, or write to another path"
#: Errors h5py raises for a failed read or write (a full disk is a RuntimeError).
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


def _has_content(path: str) -> bool:
    """Whether ``path`` exists with at least one byte (a 0-byte file counts as absent)."""
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


class TraceWriter:
    """Appends probe records to an HDF5 trace.

    Parameters
    ----------
    path : str or os.PathLike
        The trace file. A new trace is built under a temporary name in the same
        directory and renamed into place when complete, so a failed creation leaves
        nothing behind. An existing file of 0 bytes counts as absent.
    operators : mapping
        ``{name: spec}``, the probed operators in order; ``spec`` has ``"kind"``
        (``"jacobian"``, ``"hessian"``, ``"update"``, ``"helmholtz"``), ``"n"`` (the
        operator's order) and optionally ``"which"``, ``"scalars"`` (names of the
        summary scalars; default :data:`DEFAULT_SCALARS` by kind), ``"width"`` (columns
        of its eigenvalue datasets; default ``width``), ``"arrays"`` (``{name: {"dims":
        [dim, ...], "dtype": "f8", "description": str}}``, extra per-probe arrays whose
        dimensions are ``"eig"`` or named in ``"coords"``) and ``"coords"`` (``{dim:
        [labels]}``, strings or numbers).
    players : mapping
        ``{player: number of parameters}``; one loss column per player.
    width : int
        Default width: columns of the eigenvalue datasets of operators that give none
        (``k + 1``: room for a conjugate pair kept whole). Shorter results are
        NaN-padded; longer ones are refused.
    config : mapping, optional
        The monitor's settings, stored as strict JSON (NaN as null, infinities as
        "inf" and "-inf", values JSON cannot hold as their ``repr``).
    resume : bool or None
        What to do with an existing trace that holds probes. None (default): refuse it
        with a :class:`TraceError` saying how many probes it holds and from which step
        to which. True: continue it: its layout (operators, their kind, ``which``,
        size, width, scalars, arrays and coordinates, the players' parameter counts)
        must equal this writer's, and the first record written removes every row at
        or after its step (``purged`` says what was removed). False: a synonym of
        ``overwrite=True``. An existing trace of this layout without probes is
        continued whatever ``resume`` says.
    overwrite : bool
        Replace an existing file by a new trace (the old file stays in place until the
        new one is complete). Not together with ``resume=True``.
    swmr : bool
        Keep the file open in HDF5's single-writer/multiple-reader mode so readers can
        follow it live (``open_trace(path, swmr=True)``). Only a trace created with
        ``swmr=True`` can be resumed with ``swmr=True``.
    locking : bool or None
        HDF5 file locking (``h5py.File(locking=...)``); None leaves HDF5's default and
        the ``HDF5_USE_FILE_LOCKING`` environment variable in charge.
    specdiag_version : str
        Stored as the ``specdiag_version`` attribute.
    versions : mapping, optional
        Library versions to record (e.g. torch's); python, numpy, h5py and HDF5 are
        always recorded.
    resume_step : int, optional
        The step a resumed run restarts from (implies ``resume=True`` when ``resume``
        is None): rows at or after it are removed when the file is opened, so a run
        that stops again before its first probe leaves no stale probes behind.

    Attributes
    ----------
    existing : tuple of int or None
        ``(probes, min_step, max_step)`` of the file when this writer opened it, or
        None (a new trace, or one without probes).
    purged : tuple of int or None
        ``(rows, step)``: the rows removed because they were at or after ``step`` (at
        opening with ``resume_step``, else by the first write), or None.

    Raises
    ------
    TraceError
        The existing file is not a trace, is unreadable, has another schema version or
        another layout, holds probes and neither ``resume`` nor ``overwrite`` was
        given, or another writer holds the trace's lock file ``<path>.lock``; or the
        trace cannot be created (missing directory, permission denied, read-only file
        system: the message says which).
    TraceWriteError
        The disk or the file-size limit leaves no room to create or update the file.
    ValueError
        A malformed operator, player, scalar, array or coordinate specification, or
        ``resume=True`` with ``overwrite=True``.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        operators: Mapping[str, Mapping[str, Any]],
        players: Mapping[str, int],
        width: int,
        config: Optional[Mapping] = None,
        resume: Optional[bool] = None,
        overwrite: bool = False,
        swmr: bool = False,
        locking: Optional[bool] = None,
        specdiag_version: str = __version__,
        versions: Optional[Mapping[str, str]] = None,
        resume_step: Optional[int] = None,
    ) -> None:
        self.path = os.fspath(path)
        if resume is True and overwrite:
            raise ValueError("resume=True and overwrite=True contradict each other; pass one")
        if resume is None and resume_step is not None:
            resume = True
        if isinstance(width, bool) or int(width) < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        self.width = int(width)
        self.swmr = bool(swmr)
        self._locking = locking
        self._libver = SWMR_LIBVER if self.swmr else None
        self._layout = normalise_layout(operators, players, self.width)
        self._specs = dataset_specs(self._layout)
        self._paths = list(self._specs)
        self._room = chunk_bytes(self._specs) + METADATA_BYTES + DATASET_BYTES * len(self._paths)
        self._room_last = chunk_bytes({"probe_step": self._specs["probe_step"]}) + METADATA_BYTES
        self.existing: Optional[tuple[int, int, int]] = None
        self.purged: Optional[tuple[int, int]] = None
        self._purge_pending = True
        self._closed = False
        self._file: Optional[h5py.File] = None
        attrs = self._attrs(config, specdiag_version, versions)
        self._lock = WriterLock(self.path)
        self._lock.acquire()
        self._release = weakref.finalize(self, self._lock.release)
        try:
            if overwrite or resume is False or not _has_content(self.path):
                self._create(attrs)
            else:
                self._continue(bool(resume), resume_step, attrs)
            if self.swmr and self._file is None:
                self._file = self._open("r+", HINT)
                self._start_swmr(self._file)
        except BaseException:
            self._closed = True
            self._drop(self._file)
            self._release()
            raise

    @staticmethod
    def _attrs(
        config: Optional[Mapping], specdiag_version: str, versions: Optional[Mapping[str, str]]
    ) -> dict[str, str]:
        """The attributes every writer sets: its versions and the monitor's config."""
        all_versions = {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version,
        }
        all_versions.update({str(k): str(v) for k, v in (versions or {}).items()})
        return {
            "specdiag_version": str(specdiag_version),
            "versions": strict_json(all_versions),
            "config": strict_json(dict(config or {})),
        }

    # -- opening, creating, continuing

    def _open(self, mode: str, hint: Optional[str] = None) -> h5py.File:
        """The trace opened by h5py; TraceError (with ``hint``) or TraceWriteError."""
        try:
            return open_h5(self.path, mode, locking=self._locking, libver=self._libver)
        except OSError as error:
            problem = unreadable(self.path, error)
        if hint is None:  # while writing: every failure is a write error
            raise write_error(self.path, problem, "to the trace", None)
        if "locked" in str(problem):
            raise problem
        raise TraceError(f"{problem}; {hint}")

    def _create(self, attrs: Mapping[str, str]) -> None:
        """Build a new trace under a temporary name, then rename it into place."""
        directory = os.path.dirname(os.path.abspath(self.path))
        room = METADATA_BYTES + 4 * DATASET_BYTES * len(self._paths)
        problem = room_problem(self.path, room, size=0)
        if problem is not None:
            raise refused(self.path, problem, "a new trace", None)
        name = os.path.basename(self.path)
        temporary = os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            f = open_h5(temporary, "w", locking=self._locking, libver=self._libver)
            try:
                reserve(f, room)
                created = datetime.now(timezone.utc).isoformat(timespec="seconds")
                build_layout(f, self._layout, self.width, {**attrs, "created": created})
            finally:
                f.close()
            open_h5(temporary, "r+", locking=self._locking).close()  # HDF5 trims the reserve
            os.replace(temporary, self.path)
        except BaseException as error:
            remove_quietly(temporary)
            if isinstance(error, H5_ERRORS) and not isinstance(error, TraceError):
                raise creation_error(self.path, error) from None
            raise

    def _check_existing(self, f: h5py.File) -> None:
        """TraceError unless ``f`` is a trace this writer may continue."""
        try:
            meta = read_meta(self.path, f)
        except TraceError as error:
            raise TraceError(f"{error}; {HINT}") from None
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise TraceError(
                f"{self.path}: written with schema {meta.get('schema_version')}, this "
                f"specdiag writes {SCHEMA_VERSION} (it still reads the file); {HINT}"
            )
        difference = layout_difference(meta["layout"], meta["width"], self._layout, self.width)
        if difference:
            raise TraceError(
                f"{self.path}: cannot continue a trace of another layout ({difference}); {HINT}"
            )
        missing = [p for p in self._paths if not isinstance(f.get(p), h5py.Dataset)]
        if missing:
            raise TraceError(f"{self.path}: damaged specdiag trace (no dataset {missing[0]!r})")
        if self.swmr and f.id.get_create_plist().get_version()[0] < 3:
            raise TraceError(
                f"{self.path}: was not written with swmr=True, so it cannot be continued "
                f"in SWMR mode; pass swmr=False, or overwrite=True (resume=False) to start anew"
            )

    def _inspect(self, resume: bool) -> int:
        """Check the existing trace and return its number of complete rows.

        The file is opened read-only, so a refused file stays untouched.
        """
        f = self._open("r", HINT)
        try:
            self._check_existing(f)
            rows = self._rows(f)
            if rows:
                steps = f["probe_step"][:rows]
                self.existing = (rows, int(steps.min()), int(steps.max()))
        finally:
            f.close()
        if rows and not resume:
            _, low, high = self.existing or (0, 0, 0)
            raise TraceError(
                f"{self.path}: holds {rows} probes (steps {low} to {high}); pass "
                f"resume=True to continue it (probes at or after the first step written "
                f"are replaced), overwrite=True (or resume=False) to start a new trace in "
                f"its place, or write to another path"
            )
        return rows

    def _continue(self, resume: bool, resume_step: Optional[int], attrs: Mapping[str, str]) -> None:
        """Continue the existing trace: update its attributes, purge if asked."""
        rows = self._inspect(resume)
        extra = 2 * sum(len(v) for v in attrs.values())
        with self._session("the trace's attributes", None, extra=extra) as f:
            f.attrs.update(attrs)
            if resume_step is not None:  # the run restarts here: later rows are stale now
                self._purge(f, self._rows(f), int(resume_step))
                self._purge_pending = False
            if self.swmr:
                self._file = f
                if not self._purge_pending or rows == 0:
                    self._start_swmr(f)

    def _start_swmr(self, f: h5py.File) -> None:
        try:
            f.swmr_mode = True
        except (RuntimeError, ValueError, OSError) as error:
            raise TraceError(
                f"{self.path}: cannot start SWMR writing ({one_line(error)})"
            ) from None

    # -- sessions: room, reservation, errors

    @contextmanager
    def _session(self, what: str, step: Optional[int], *, extra: int = 0) -> Iterator[h5py.File]:
        """The open file, with room checked and reserved.

        Any failure to write is a TraceWriteError (TraceErrors of the body pass through).
        """
        problem = room_problem(self.path, self._room + extra + self._room_last)
        if problem is not None:
            raise refused(self.path, problem, what, step)
        f = self._file if self._file is not None else self._open("r+")
        try:
            reserve(f, self._room + extra)
            yield f
            if f is not self._file:
                f.close()
        except TraceError:
            self._drop(f)
            raise
        except H5_ERRORS as error:
            self._drop(f)
            raise write_error(self.path, error, what, step) from None
        except BaseException:
            self._drop(f)
            raise

    def _drop(self, f: Optional[h5py.File]) -> None:
        """Close ``f`` after a failure, ignoring errors; forget it if it was kept open."""
        if f is None:
            return
        handle: h5py.File = f
        if handle is self._file:
            self._file = None
        try:
            handle.close()
        except Exception:  # noqa: S110 - closing after a failure: the first error counts
            pass

    # -- writing

    def _rows(self, f: h5py.File) -> int:
        """Complete rows: the shortest dataset (a torn write leaves some longer)."""
        return min(f[p].shape[0] for p in self._paths)

    def _flush(self, f: h5py.File, room: int) -> None:
        """Flush, then reserve ``room`` again (HDF5 trims the reserve when it flushes)."""
        f.flush()
        reserve(f, room)

    def _purge(self, f: h5py.File, n: int, step: int) -> int:
        """Remove the rows with step >= ``step``; the number of rows kept.

        ``probe_step`` first shrinks to the rows before the first removed one, so if
        the purge is cut off, readers see only rows that are whole in every dataset.
        """
        steps = f["probe_step"][:n]
        keep = steps < step
        kept = int(keep.sum())
        if kept == n:
            return n
        first = int(np.argmin(keep))  # the first removed row
        f["probe_step"].resize(first, axis=0)
        if kept > first:  # rows after a removed one are kept: move them up
            self._flush(f, self._room)
            for p in self._paths[:-1]:
                ds = f[p]
                ds[first:kept] = ds[:n][keep][first:]
        for p in self._paths[:-1]:
            f[p].resize(kept, axis=0)
        if kept > first:
            self._flush(f, self._room)
            f["probe_step"].resize(kept, axis=0)
            f["probe_step"][first:kept] = steps[keep][first:]
        self.purged = (n - kept, step)
        return kept

    def write(self, record: Any) -> None:
        """Append one probe record.

        ``record`` is a :class:`~specdiag.ProbeRecord` or any object with the same
        attributes holding numpy values. The first record a writer writes removes the
        rows at or after its step. A write either appends the whole row or leaves the
        file's probes as they were.

        Raises
        ------
        ValueError
            The record does not fit the trace (checked before the file is touched), or
            the writer is closed.
        TraceWriteError
            The row could not be written (``disk_full`` says whether for lack of room).
            The writer stays usable: keep the record and write it again later, in
            order; the first record written successfully does the purge.
        """
        if self._closed:
            raise ValueError(f"write to a closed TraceWriter ({self.path})")
        row = encode_record(record, self._layout, self.path)
        step = row["probe_step"]
        with self._session(f"the probe at step {step}", step) as f:
            self._append(f, row, step)
        self._purge_pending = False

    def _append(self, f: h5py.File, row: Mapping[str, Any], step: int) -> None:
        datasets = {p: f[p] for p in self._paths}  # looked up once: h5py lookups are slow
        n = min(ds.shape[0] for ds in datasets.values())
        if self._purge_pending:
            n = self._purge(f, n, step)
        if self.swmr:
            self._file = f
            if not f.swmr_mode:
                self._start_swmr(f)
        for p, value in row.items():
            if p == "probe_step":  # every other dataset is on disk before the row counts
                self._flush(f, self._room_last)
            ds = datasets[p]
            ds.resize(n + 1, axis=0)
            ds[n] = value
        f.flush()

    def close(self) -> None:
        """Close the file (SWMR mode) and remove the lock file; idempotent.

        Raises
        ------
        TraceWriteError
            The SWMR file could not be closed cleanly (its last flush failed).
        """
        self._closed = True
        f, self._file = self._file, None
        try:
            if f is not None:
                f.close()
        except H5_ERRORS as error:
            raise write_error(self.path, error, "the trace's last changes", None) from None
        finally:
            self._release()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "swmr" if self.swmr else "default"
        state = "closed" if self._closed else "open"
        return f"TraceWriter({self.path!r}, mode={mode}, {state})"
