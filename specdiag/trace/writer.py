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
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Optional, Union

import h5py
import numpy as np

from .._version import __version__
from ..errors import TraceError
from ..registry import status_code
from .files import SWMR_LIBVER, one_line, open_h5, read_meta, unreadable
from .schema import (
    CHUNK_ROWS,
    CONVENTION,
    LOSS_GROUP,
    MESSAGE_BYTES,
    OPERATOR_COLUMNS,
    PROBE_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    dataset_paths,
    layout_difference,
    normalise_layout,
)

__all__ = ["TraceWriter"]

PathLike = Union[str, "os.PathLike[str]"]


def _fit_message(message: Any) -> bytes:
    """``message`` as UTF-8 of at most MESSAGE_BYTES bytes, cut at a character boundary."""
    data = str(message or "").encode("utf-8")
    if len(data) <= MESSAGE_BYTES:
        return data
    return data[: MESSAGE_BYTES - 3].decode("utf-8", errors="ignore").encode("utf-8") + b"..."


def _padded(values: Any, width: int, fill: Any, dtype: Any, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=dtype).reshape(-1)
    if array.size > width:
        raise ValueError(f"{what}: {array.size} values do not fit the trace's width {width}")
    row = np.full(width, fill, dtype=dtype)
    row[: array.size] = array
    return row


class TraceWriter:
    """Appends probe records to an HDF5 trace.

    Parameters
    ----------
    path : str or os.PathLike
        The trace file.
    operators : mapping
        ``{name: {"kind": "jacobian" | "hessian", "which": str, "n": int}}``, the probed
        operators in order; ``"scalars"`` (a list of names) overrides the summary
        scalars stored for the operator (default :data:`DEFAULT_SCALARS` by kind).
    players : mapping
        ``{player: number of parameters}``; one loss column per player.
    width : int
        Columns of the eigenvalue datasets (``k + 1``: room for a conjugate pair kept
        whole). Shorter results are NaN-padded; longer ones are refused.
    config : mapping, optional
        The monitor's settings, stored as JSON (values JSON cannot hold are stored as
        their ``repr``).
    resume : bool
        If the file exists, append to it: its layout (operators, their kind, ``which``,
        size and scalars, the players' parameter counts, the width) must equal this
        writer's, else :class:`~specdiag.errors.TraceError`. The first record written
        removes every row whose step is at or after the record's step (or, with
        ``resume_step``, opening does). ``False`` replaces the file by a new trace.
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
        The step a resumed run restarts from: rows at or after it are removed when the
        file is opened, so a run that stops again before its first probe leaves no
        stale probes of the abandoned run behind.

    Raises
    ------
    TraceError
        The existing file is not a trace, is unreadable, has another schema version or
        another layout (``resume=True``).
    ValueError
        A malformed operator, player or scalar specification.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        operators: Mapping[str, Mapping[str, Any]],
        players: Mapping[str, int],
        width: int,
        config: Optional[Mapping] = None,
        resume: bool = True,
        swmr: bool = False,
        locking: Optional[bool] = None,
        specdiag_version: str = __version__,
        versions: Optional[Mapping[str, str]] = None,
        resume_step: Optional[int] = None,
    ) -> None:
        self.path = os.fspath(path)
        if int(width) < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        self.width = int(width)
        self.swmr = bool(swmr)
        self._locking = locking
        self._layout = normalise_layout(operators, players)
        self._paths = dataset_paths(self._layout)
        self._purge_pending = True
        self._closed = False
        self._file: Optional[h5py.File] = None
        all_versions = {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version,
        }
        all_versions.update({str(k): str(v) for k, v in (versions or {}).items()})
        attrs = {
            "specdiag_version": str(specdiag_version),
            "versions": json.dumps(all_versions),
            "config": json.dumps(dict(config or {}), default=repr),
        }

        libver = SWMR_LIBVER if self.swmr else None
        if resume and os.path.exists(self.path):
            f = self._open_existing(libver)
        else:
            f = self._create(libver)
        try:
            f.attrs.update(attrs)
            if resume_step is not None:  # the run restarts here: later rows are stale now
                self._purge(f, self._rows(f), int(resume_step))
                self._purge_pending = False
            if self.swmr:
                self._file = f
                if self._rows(f) == 0:  # nothing to purge: readers may follow at once
                    self._start_swmr()
        finally:
            if self._file is None:
                f.close()

    # -- opening and creating

    def _open(self, mode: str, libver: Any = None) -> h5py.File:
        try:
            return open_h5(self.path, mode, locking=self._locking, libver=libver)
        except OSError as error:
            raise unreadable(self.path, error) from None

    def _open_existing(self, libver: Any) -> h5py.File:
        hint = "pass resume=False to start a new trace"
        try:
            f = self._open("r+", libver)
        except TraceError as error:
            if "locked" in str(error):
                raise
            raise TraceError(f"{error}; {hint}") from None
        try:
            try:
                meta = read_meta(self.path, f)
            except TraceError as error:
                raise TraceError(f"{error}; {hint}") from None
            if meta.get("schema_version") != SCHEMA_VERSION:
                raise TraceError(
                    f"{self.path}: written with schema "
                    f"{meta.get('schema_version')}, this specdiag writes "
                    f"{SCHEMA_VERSION}; {hint}"
                )
            difference = layout_difference(
                meta["layout"], int(meta["width"]), self._layout, self.width
            )
            if difference:
                raise TraceError(
                    f"{self.path}: cannot resume a trace of another layout ({difference}); {hint}"
                )
            missing = [p for p in self._paths if not isinstance(f.get(p), h5py.Dataset)]
            if missing:
                raise TraceError(
                    f"{self.path}: damaged specdiag trace (no dataset {missing[0]!r}); {hint}"
                )
            if self.swmr and f.id.get_create_plist().get_version()[0] < 3:
                raise TraceError(
                    f"{self.path}: was not written with swmr=True, so it cannot "
                    f"be continued in SWMR mode; pass swmr=False, or "
                    f"resume=False to start a new trace"
                )
        except BaseException:
            f.close()
            raise
        return f

    def _create(self, libver: Any) -> h5py.File:
        f = self._open("w", libver)
        try:
            f.attrs.update(
                {
                    "schema": SCHEMA,
                    "schema_version": SCHEMA_VERSION,
                    "convention": CONVENTION,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "layout": json.dumps(self._layout),
                    "width": np.int64(self.width),
                }
            )
            for name, spec in self._layout["operators"].items():
                group = f.create_group(name)
                group.attrs.update(
                    {
                        "kind": spec["kind"],
                        "which": spec["which"],
                        "n": np.int64(spec["n"]),
                        "scalars": json.dumps(spec["scalars"]),
                    }
                )
                for column, (dtype, wide, description) in OPERATOR_COLUMNS.items():
                    _create_dataset(group, column, dtype, self.width if wide else None, description)
                for scalar in spec["scalars"]:
                    _create_dataset(group, scalar, "f8", None, f"summary scalar {scalar}")
            losses = f.create_group(LOSS_GROUP)
            for player in self._layout["players"]:
                _create_dataset(losses, player, "f8", None, f"loss of {player} on the probe batch")
            for column, (dtype, description) in PROBE_COLUMNS.items():
                _create_dataset(f, column, dtype, None, description)
        except BaseException:
            f.close()
            raise
        return f

    def _start_swmr(self) -> None:
        try:
            self._file.swmr_mode = True
        except (RuntimeError, ValueError, OSError) as error:
            self._file.close()
            self._file = None
            self._closed = True
            raise TraceError(
                f"{self.path}: cannot start SWMR writing ({one_line(error)})"
            ) from None

    # -- writing

    def _rows(self, f: h5py.File) -> int:
        """Complete rows: the shortest dataset (a torn write leaves some longer)."""
        return min(f[p].shape[0] for p in self._paths)

    def _encode(self, record: Any) -> dict[str, Any]:
        """The record as one value per dataset path, checked before the file is touched."""
        if record.step is None:
            raise ValueError("a record written to a trace needs a step (record.step is None)")
        step = int(record.step)
        batch_index = int(record.batch_index)
        ops = record.operators
        names = list(self._layout["operators"])
        if sorted(ops) != sorted(names):
            raise ValueError(
                f"the record has operators {sorted(ops)}, the trace {self.path} has {names}"
            )
        row: dict[str, Any] = {}
        for name, spec in self._layout["operators"].items():
            op = ops[name]
            for key in ("kind", "which"):
                if spec[key] and getattr(op, key, spec[key]) != spec[key]:
                    raise ValueError(
                        f"operator {name!r}: record has {key} "
                        f"{getattr(op, key)!r}, the trace {spec[key]!r}"
                    )
            eig = np.asarray(op.eigenvalues, dtype=np.complex128).reshape(-1)
            what = f"operator {name!r}"
            unknown = set(op.scalars) - set(spec["scalars"])
            if unknown:
                raise ValueError(
                    f"{what}: scalars {sorted(unknown)} are not in the trace "
                    f"(it stores {spec['scalars']})"
                )
            row.update(
                {
                    f"{name}/step": step,
                    f"{name}/batch_index": batch_index,
                    f"{name}/eig_real": _padded(eig.real, self.width, np.nan, np.float64, what),
                    f"{name}/eig_imag": _padded(eig.imag, self.width, np.nan, np.float64, what),
                    f"{name}/residual": _padded(
                        op.residuals, self.width, np.nan, np.float64, f"{what} residuals"
                    ),
                    f"{name}/converged": _padded(
                        op.converged, self.width, False, np.bool_, f"{what} converged"
                    ),
                    f"{name}/n_matvec": int(op.n_matvec),
                    f"{name}/wall_time": float(op.wall_time),
                    f"{name}/status": status_code(op.status, what),
                    f"{name}/message": _fit_message(op.message),
                }
            )
            for scalar in spec["scalars"]:
                row[f"{name}/{scalar}"] = float(op.scalars.get(scalar, np.nan))
        losses = dict(record.losses)
        unknown = set(losses) - set(self._layout["players"])
        if unknown:
            raise ValueError(
                f"the record has losses of {sorted(unknown)}, which are not "
                f"players of the trace {self.path}"
            )
        for player in self._layout["players"]:
            row[f"{LOSS_GROUP}/{player}"] = float(losses.get(player, np.nan))
        seed = getattr(record, "seed", None)
        row.update(
            {
                "probe_batch_index": batch_index,
                "probe_seed": -1 if seed is None else int(seed),
                "probe_wall_time": float(record.wall_time),
                "probe_build_time": float(record.build_time),
                "probe_status": status_code(record.status, "probe"),
                "probe_step": step,
            }
        )
        return row

    def _purge(self, f: h5py.File, n: int, step: int) -> int:
        """Remove the rows with step >= ``step``; the number of rows kept."""
        keep = f["probe_step"][:n] < step
        kept = int(keep.sum())
        if kept == n:
            return n
        compact = not keep[:kept].all()  # kept rows are not simply the first ones
        for p in self._paths:
            ds = f[p]
            if compact:
                ds[:kept] = ds[:n][keep]
            ds.resize(kept, axis=0)
        return kept

    def write(self, record: Any) -> None:
        """Append one probe record (a :class:`~specdiag.ProbeRecord` or any object
        with the same attributes holding numpy values).

        The first record a writer writes removes the rows at or after its step.
        """
        if self._closed:
            raise ValueError(f"write to a closed TraceWriter ({self.path})")
        row = self._encode(record)
        step = row["probe_step"]
        try:
            if self.swmr:
                self._append(self._file, row, step)
            else:
                with self._open("r+") as f:
                    self._append(f, row, step)
        except OSError as error:
            raise TraceError(
                f"{self.path}: could not write the probe at step {step} ({one_line(error)})"
            ) from None

    def _append(self, f: h5py.File, row: Mapping[str, Any], step: int) -> None:
        n = self._rows(f)
        if self._purge_pending:
            n = self._purge(f, n, step)
            self._purge_pending = False
            if self.swmr and not f.swmr_mode:
                self._start_swmr()
        for p, value in row.items():
            if p == "probe_step":
                f.flush()  # every other dataset is on disk before the row is counted
            ds = f[p]
            ds.resize(n + 1, axis=0)
            ds[n] = value
        f.flush()

    def close(self) -> None:
        """Close the file (SWMR mode); idempotent."""
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "swmr" if self.swmr else "default"
        state = "closed" if self._closed else "open"
        return f"TraceWriter({self.path!r}, mode={mode}, {state})"


def _create_dataset(
    group: h5py.Group, name: str, dtype: Any, width: Optional[int], description: str
) -> None:
    shape, maxshape, chunks = (
        ((0,), (None,), (CHUNK_ROWS,))
        if width is None
        else ((0, width), (None, width), (CHUNK_ROWS, width))
    )
    fill = np.nan if np.dtype(dtype).kind == "f" else None
    ds = group.create_dataset(
        name, shape=shape, maxshape=maxshape, chunks=chunks, dtype=dtype, fillvalue=fill
    )
    ds.attrs["description"] = description
    if name in ("status", "probe_status"):
        ds.attrs["flag_values"] = np.arange(len(STATUSES), dtype=np.int8)
        ds.attrs["flag_meanings"] = " ".join(STATUSES)
