"""The HDF5 trace: one row per probe, written while training runs, read without torch.

A trace holds, for every probe, the eigenvalues of each probed operator (the game
Jacobian and the players' Hessians), their residuals and convergence flags, the solver's
cost, a status, a few summary numbers, and the players' losses. The format is specified
field by field in ``docs/trace-format.md``; this module is its only writer and reader.

This module imports numpy and h5py and specdiag's torch-free modules only, so reading
and plotting a trace works on a machine that only has the file.

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
    and :meth:`Trace.refresh`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Optional, Union

import h5py
import numpy as np

from ._version import __version__
from .errors import TraceError

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "DEFAULT_SCALARS",
    "MESSAGE_BYTES",
    "TraceWriter",
    "Trace",
    "open_trace",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Value of the root attribute ``schema`` that marks a specdiag trace.
SCHEMA = "specdiag-trace"
#: ``"MAJOR.MINOR"``: a minor step only adds; a reader refuses a newer major version.
SCHEMA_VERSION = "1.1"
#: Status names; a status dataset stores the index into this tuple (int8).
STATUSES = ("ok", "unconverged", "budget", "nonfinite", "error")
#: Summary scalars stored per operator kind unless the operator names its own.
DEFAULT_SCALARS = {
    "jacobian": ("min_real", "max_imag", "max_imag_over_real", "spectral_radius"),
    "hessian": ("max", "min"),
    # since 1.1: the update operator of the run's optimiser, and the Helmholtz split of J
    "update": ("spectral_radius", "max_stable_lr", "lr"),
    "helmholtz": ("symmetric_sq", "symmetric_sq_se", "antisymmetric_sq", "antisymmetric_sq_se",
                  "rotation_fraction", "rotation_fraction_se", "zero_sum_defect",
                  "zero_sum_defect_se"),
}
#: Size in bytes of the fixed-length UTF-8 ``message`` field; longer messages are cut.
MESSAGE_BYTES = 256

_CONVENTION = "descent"
_SCHEMA_MAJOR = int(SCHEMA_VERSION.split(".")[0])
#: Rows per chunk of every dataset.
_CHUNK_ROWS = 64
#: How long to wait for a file that another process holds (HDF5 file lock).
_LOCK_WAIT_S = 10.0
#: File format for SWMR files: HDF5 1.10 objects, readable by HDF5 >= 1.10.
_SWMR_LIBVER = ("v110", "v110")
_MESSAGE_DTYPE = h5py.string_dtype("utf-8", length=MESSAGE_BYTES)

#: Per-probe datasets of an operator group: name -> (dtype, has a width axis, description).
_OPERATOR_COLUMNS: dict[str, tuple[Any, bool, str]] = {
    "step": ("i8", False, "training step of the probe"),
    "batch_index": ("i4", False, "index of the probe batch within the probe"),
    "eig_real": ("f8", True, "real parts of the eigenvalues (descent convention), NaN-padded"),
    "eig_imag": ("f8", True, "imaginary parts of the eigenvalues, NaN-padded"),
    "residual": ("f8", True, "relative residual of each eigenpair, NaN-padded"),
    "converged": (np.bool_, True, "whether each eigenpair converged, False-padded"),
    "n_matvec": ("i8", False, "matrix-vector products spent by the solver"),
    "wall_time": ("f8", False, "seconds spent by the solver"),
    "status": ("i1", False, "outcome of the solve, see flag_meanings"),
    "message": (_MESSAGE_DTYPE, False, "what went wrong, or empty (UTF-8, cut to fit)"),
}
#: Per-probe datasets at the root: name -> (dtype, description). ``probe_step`` is
#: written last, after a flush, so a row it shows is complete in every other dataset.
_PROBE_COLUMNS: dict[str, tuple[str, str]] = {
    "probe_batch_index": ("i4", "index of the probe batch within the probe"),
    "probe_seed": ("i8", "random seed of the probe (-1: none)"),
    "probe_wall_time": ("f8", "seconds for the whole probe, building the graph included"),
    "probe_build_time": ("f8", "seconds for building the vector field's graph"),
    "probe_status": ("i1", "ok if every operator is ok, else the first other status"),
    "probe_step": ("i8", "training step of the probe"),
}
_LOSS_GROUP = "loss"
_RESERVED = frozenset({_LOSS_GROUP, *_PROBE_COLUMNS})


# --------------------------------------------------------------------------- layout


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{what} name {name!r} must be a non-empty string without '/'")
    return name


def _normalise_layout(operators: Mapping[str, Mapping[str, Any]],
                      players: Mapping[str, int]) -> dict[str, Any]:
    """The ``layout`` attribute: operators (kind, which, n, scalars) and player sizes."""
    if not operators:
        raise ValueError("a trace needs at least one operator")
    ops: dict[str, dict[str, Any]] = {}
    for name, spec in operators.items():
        _check_name("operator", name)
        if name in _RESERVED:
            raise ValueError(f"operator name {name!r} is reserved in a trace "
                             f"(reserved: {', '.join(sorted(_RESERVED))})")
        missing = {"kind", "n"} - set(spec)
        if missing:
            raise ValueError(f"operator {name!r} needs keys 'kind' and 'n' "
                             f"(missing: {', '.join(sorted(missing))})")
        kind = str(spec["kind"])
        scalars = tuple(spec.get("scalars", DEFAULT_SCALARS.get(kind, ())))
        for scalar in scalars:
            _check_name(f"scalar of operator {name!r}", scalar)
            if scalar in _OPERATOR_COLUMNS:
                raise ValueError(f"scalar name {scalar!r} of operator {name!r} clashes "
                                 f"with a dataset of the same name")
        ops[name] = {"kind": kind, "which": str(spec.get("which", "")),
                     "n": int(spec["n"]), "scalars": list(scalars)}
    return {"operators": ops,
            "players": {_check_name("player", p): int(n) for p, n in players.items()}}


def _dataset_paths(layout: Mapping[str, Any]) -> list[str]:
    """Every per-probe dataset of a trace with this layout, ``probe_step`` last."""
    paths = [f"{op}/{col}"
             for op, spec in layout["operators"].items()
             for col in (*_OPERATOR_COLUMNS, *spec["scalars"])]
    paths += [f"{_LOSS_GROUP}/{p}" for p in layout["players"]]
    return paths + list(_PROBE_COLUMNS)


def _layout_difference(old: Mapping[str, Any], old_width: int,
                       new: Mapping[str, Any], new_width: int) -> Optional[str]:
    """What differs between the file's layout and the writer's, or None."""
    old_ops, new_ops = old["operators"], new["operators"]
    if list(old_ops) != list(new_ops):
        return f"operators {list(old_ops)} in the file, {list(new_ops)} now"
    if dict(old["players"]) != dict(new["players"]):
        return f"players and parameter counts {dict(old['players'])} in the file, " \
               f"{dict(new['players'])} now"
    if old_width != new_width:
        return f"width {old_width} in the file, {new_width} now"
    for name, spec in new_ops.items():
        for key in ("kind", "which", "n", "scalars"):
            if old_ops[name].get(key) != spec[key]:
                return f"{key} of operator {name!r}: {old_ops[name].get(key)!r} in the " \
                       f"file, {spec[key]!r} now"
    return None


def _status_code(status: Any, what: str) -> int:
    try:
        return STATUSES.index(status)
    except ValueError:
        raise ValueError(f"{what} status {status!r} is not one of {', '.join(STATUSES)}") from None


def _fit_message(message: Any) -> bytes:
    """``message`` as UTF-8 of at most MESSAGE_BYTES bytes, cut at a character boundary."""
    data = str(message or "").encode("utf-8")
    if len(data) <= MESSAGE_BYTES:
        return data
    return data[:MESSAGE_BYTES - 3].decode("utf-8", errors="ignore").encode("utf-8") + b"..."


def _padded(values: Any, width: int, fill: Any, dtype: Any, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=dtype).reshape(-1)
    if array.size > width:
        raise ValueError(f"{what}: {array.size} values do not fit the trace's width {width}")
    row = np.full(width, fill, dtype=dtype)
    row[:array.size] = array
    return row


# --------------------------------------------------------------------------- opening


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    # h5py: "[Errno 2] Unable to synchronously open file (reason ...)" -> "reason ..."
    if "(" in text and text.endswith(")"):
        text = text[text.index("(") + 1:-1]
    return text


def _unreadable(path: str, error: Exception) -> TraceError:
    """A one-line TraceError for a file h5py could not open or read."""
    reason = _one_line(error)
    if isinstance(error, FileNotFoundError) or not os.path.exists(path):
        return TraceError(f"{path}: no such file")
    if isinstance(error, BlockingIOError):
        return TraceError(f"{path}: locked by another process that has it open for writing "
                          f"(retry later; HDF5_USE_FILE_LOCKING=FALSE or locking=False turns "
                          f"the lock off)")
    if not h5py.is_hdf5(path):
        return TraceError(f"{path}: not an HDF5 file")
    if "already open for write" in reason:
        return TraceError(f"{path}: marked open for writing (a live SWMR trace, or its writer "
                          f"was killed): read it with open_trace(path, swmr=True), or clear "
                          f"the mark with `h5clear -s {path}`")
    return TraceError(f"{path}: damaged or truncated HDF5 file ({reason})")


def _open_h5(path: str, mode: str, *, locking: Optional[bool], swmr: bool = False,
             libver: Any = None) -> h5py.File:
    """``h5py.File``, waiting while another process holds the file's lock."""
    kwargs: dict[str, Any] = {}
    if locking is not None:
        kwargs["locking"] = locking
    if swmr and mode == "r":
        kwargs["swmr"] = True
    if libver is not None:
        kwargs["libver"] = libver
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            return h5py.File(path, mode, **kwargs)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _attr_str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_meta(path: str, f: h5py.File) -> dict[str, Any]:
    """The root attributes, checked and decoded; TraceError if not a readable trace."""
    if _attr_str(f.attrs.get("schema", "")) != SCHEMA:
        raise TraceError(f"{path}: not a specdiag trace (no schema attribute {SCHEMA!r})")
    version = _attr_str(f.attrs.get("schema_version", ""))
    major = version.split(".")[0]
    if not major.isdigit():
        raise TraceError(f"{path}: unreadable schema_version {version!r}")
    if int(major) > _SCHEMA_MAJOR:
        raise TraceError(f"{path}: written by a newer specdiag (schema {version}); "
                         f"upgrade specdiag to read it")
    if int(major) < _SCHEMA_MAJOR:
        raise TraceError(f"{path}: schema {version} is older than this specdiag reads "
                         f"({SCHEMA_VERSION})")
    meta: dict[str, Any] = {}
    for key, value in f.attrs.items():
        if isinstance(value, (bytes, str)):
            value = _attr_str(value)
            if key in ("config", "versions", "layout"):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise TraceError(f"{path}: attribute {key!r} is not valid JSON") from None
        elif isinstance(value, np.generic):
            value = value.item()
        meta[key] = value
    if not isinstance(meta.get("layout"), dict) or "width" not in meta:
        raise TraceError(f"{path}: damaged specdiag trace (no layout or width)")
    return meta


# --------------------------------------------------------------------------- writer


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

    def __init__(self, path: PathLike, *, operators: Mapping[str, Mapping[str, Any]],
                 players: Mapping[str, int], width: int, config: Optional[Mapping] = None,
                 resume: bool = True, swmr: bool = False, locking: Optional[bool] = None,
                 specdiag_version: str = __version__,
                 versions: Optional[Mapping[str, str]] = None,
                 resume_step: Optional[int] = None) -> None:
        self.path = os.fspath(path)
        if int(width) < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        self.width = int(width)
        self.swmr = bool(swmr)
        self._locking = locking
        self._layout = _normalise_layout(operators, players)
        self._paths = _dataset_paths(self._layout)
        self._purge_pending = True
        self._closed = False
        self._file: Optional[h5py.File] = None
        all_versions = {"python": platform.python_version(), "numpy": np.__version__,
                        "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version}
        all_versions.update({str(k): str(v) for k, v in (versions or {}).items()})
        attrs = {"specdiag_version": str(specdiag_version),
                 "versions": json.dumps(all_versions),
                 "config": json.dumps(dict(config or {}), default=repr)}

        libver = _SWMR_LIBVER if self.swmr else None
        if resume and os.path.exists(self.path):
            f = self._open_existing(libver)
        else:
            f = self._create(libver)
        try:
            f.attrs.update(attrs)
            if resume_step is not None:   # the run restarts here: later rows are stale now
                self._purge(f, self._rows(f), int(resume_step))
                self._purge_pending = False
            if self.swmr:
                self._file = f
                if self._rows(f) == 0:   # nothing to purge: readers may follow at once
                    self._start_swmr()
        finally:
            if self._file is None:
                f.close()

    # -- opening and creating

    def _open(self, mode: str, libver: Any = None) -> h5py.File:
        try:
            return _open_h5(self.path, mode, locking=self._locking, libver=libver)
        except OSError as error:
            raise _unreadable(self.path, error) from None

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
                meta = _read_meta(self.path, f)
            except TraceError as error:
                raise TraceError(f"{error}; {hint}") from None
            if meta.get("schema_version") != SCHEMA_VERSION:
                raise TraceError(f"{self.path}: written with schema "
                                 f"{meta.get('schema_version')}, this specdiag writes "
                                 f"{SCHEMA_VERSION}; {hint}")
            difference = _layout_difference(meta["layout"], int(meta["width"]),
                                            self._layout, self.width)
            if difference:
                raise TraceError(f"{self.path}: cannot resume a trace of another layout "
                                 f"({difference}); {hint}")
            missing = [p for p in self._paths if not isinstance(f.get(p), h5py.Dataset)]
            if missing:
                raise TraceError(f"{self.path}: damaged specdiag trace (no dataset "
                                 f"{missing[0]!r}); {hint}")
            if self.swmr and f.id.get_create_plist().get_version()[0] < 3:
                raise TraceError(f"{self.path}: was not written with swmr=True, so it cannot "
                                 f"be continued in SWMR mode; pass swmr=False, or "
                                 f"resume=False to start a new trace")
        except BaseException:
            f.close()
            raise
        return f

    def _create(self, libver: Any) -> h5py.File:
        f = self._open("w", libver)
        try:
            f.attrs.update({
                "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
                "convention": _CONVENTION,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "layout": json.dumps(self._layout), "width": np.int64(self.width)})
            for name, spec in self._layout["operators"].items():
                group = f.create_group(name)
                group.attrs.update({"kind": spec["kind"], "which": spec["which"],
                                    "n": np.int64(spec["n"]),
                                    "scalars": json.dumps(spec["scalars"])})
                for column, (dtype, wide, description) in _OPERATOR_COLUMNS.items():
                    _create_dataset(group, column, dtype, self.width if wide else None,
                                    description)
                for scalar in spec["scalars"]:
                    _create_dataset(group, scalar, "f8", None, f"summary scalar {scalar}")
            losses = f.create_group(_LOSS_GROUP)
            for player in self._layout["players"]:
                _create_dataset(losses, player, "f8", None,
                                f"loss of {player} on the probe batch")
            for column, (dtype, description) in _PROBE_COLUMNS.items():
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
            raise TraceError(f"{self.path}: cannot start SWMR writing "
                             f"({_one_line(error)})") from None

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
            raise ValueError(f"the record has operators {sorted(ops)}, the trace "
                             f"{self.path} has {names}")
        row: dict[str, Any] = {}
        for name, spec in self._layout["operators"].items():
            op = ops[name]
            for key in ("kind", "which"):
                if spec[key] and getattr(op, key, spec[key]) != spec[key]:
                    raise ValueError(f"operator {name!r}: record has {key} "
                                     f"{getattr(op, key)!r}, the trace {spec[key]!r}")
            eig = np.asarray(op.eigenvalues, dtype=np.complex128).reshape(-1)
            what = f"operator {name!r}"
            unknown = set(op.scalars) - set(spec["scalars"])
            if unknown:
                raise ValueError(f"{what}: scalars {sorted(unknown)} are not in the trace "
                                 f"(it stores {spec['scalars']})")
            row.update({
                f"{name}/step": step,
                f"{name}/batch_index": batch_index,
                f"{name}/eig_real": _padded(eig.real, self.width, np.nan, np.float64, what),
                f"{name}/eig_imag": _padded(eig.imag, self.width, np.nan, np.float64, what),
                f"{name}/residual": _padded(op.residuals, self.width, np.nan, np.float64,
                                            f"{what} residuals"),
                f"{name}/converged": _padded(op.converged, self.width, False, np.bool_,
                                             f"{what} converged"),
                f"{name}/n_matvec": int(op.n_matvec),
                f"{name}/wall_time": float(op.wall_time),
                f"{name}/status": _status_code(op.status, what),
                f"{name}/message": _fit_message(op.message),
            })
            for scalar in spec["scalars"]:
                row[f"{name}/{scalar}"] = float(op.scalars.get(scalar, np.nan))
        losses = dict(record.losses)
        unknown = set(losses) - set(self._layout["players"])
        if unknown:
            raise ValueError(f"the record has losses of {sorted(unknown)}, which are not "
                             f"players of the trace {self.path}")
        for player in self._layout["players"]:
            row[f"{_LOSS_GROUP}/{player}"] = float(losses.get(player, np.nan))
        seed = getattr(record, "seed", None)
        row.update({
            "probe_batch_index": batch_index,
            "probe_seed": -1 if seed is None else int(seed),
            "probe_wall_time": float(record.wall_time),
            "probe_build_time": float(record.build_time),
            "probe_status": _status_code(record.status, "probe"),
            "probe_step": step,
        })
        return row

    def _purge(self, f: h5py.File, n: int, step: int) -> int:
        """Remove the rows with step >= ``step``; the number of rows kept."""
        keep = f["probe_step"][:n] < step
        kept = int(keep.sum())
        if kept == n:
            return n
        compact = not keep[:kept].all()   # kept rows are not simply the first ones
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
            raise TraceError(f"{self.path}: could not write the probe at step {step} "
                             f"({_one_line(error)})") from None

    def _append(self, f: h5py.File, row: Mapping[str, Any], step: int) -> None:
        n = self._rows(f)
        if self._purge_pending:
            n = self._purge(f, n, step)
            self._purge_pending = False
            if self.swmr and not f.swmr_mode:
                self._start_swmr()
        for p, value in row.items():
            if p == "probe_step":
                f.flush()   # every other dataset is on disk before the row is counted
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


def _create_dataset(group: h5py.Group, name: str, dtype: Any, width: Optional[int],
                    description: str) -> None:
    shape, maxshape, chunks = ((0,), (None,), (_CHUNK_ROWS,)) if width is None else \
        ((0, width), (None, width), (_CHUNK_ROWS, width))
    fill = np.nan if np.dtype(dtype).kind == "f" else None
    ds = group.create_dataset(name, shape=shape, maxshape=maxshape, chunks=chunks,
                              dtype=dtype, fillvalue=fill)
    ds.attrs["description"] = description
    if name in ("status", "probe_status"):
        ds.attrs["flag_values"] = np.arange(len(STATUSES), dtype=np.int8)
        ds.attrs["flag_meanings"] = " ".join(STATUSES)


# --------------------------------------------------------------------------- reader


class Trace:
    """A specdiag trace, read into memory (see :func:`open_trace`).

    Attributes
    ----------
    path : str
        The file.
    meta : dict
        The root attributes: ``schema``, ``schema_version``, ``convention``,
        ``specdiag_version``, ``created``, ``width`` and, decoded from JSON, ``config``,
        ``versions`` and ``layout``.
    """

    def __init__(self, path: PathLike, *, swmr: bool = False,
                 locking: Optional[bool] = None) -> None:
        self.path = os.fspath(path)
        self._swmr = bool(swmr)
        self._locking = locking
        self._file: Optional[h5py.File] = None
        self._data: dict[str, np.ndarray] = {}
        self._n = 0
        self.meta: dict[str, Any] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the file again: rows written since are added, purged rows go."""
        try:
            if self._swmr:
                if self._file is None:
                    self._file = _open_h5(self.path, "r", locking=self._locking, swmr=True)
                self._load(self._file, refresh=True)
            else:
                with _open_h5(self.path, "r", locking=self._locking) as f:
                    self._load(f, refresh=False)
        except (OSError, RuntimeError) as error:
            self.close()
            raise _unreadable(self.path, error) from None
        except TraceError:
            self.close()
            raise

    def _load(self, f: h5py.File, *, refresh: bool) -> None:
        meta = _read_meta(self.path, f)
        paths = _dataset_paths(meta["layout"])
        datasets = {}
        for p in paths[::-1]:   # probe_step first: rows it shows are complete elsewhere
            ds = f.get(p)
            if not isinstance(ds, h5py.Dataset):
                raise TraceError(f"{self.path}: damaged specdiag trace (no dataset {p!r})")
            if refresh:
                ds.refresh()
            datasets[p] = ds
        n = min(ds.shape[0] for ds in datasets.values())
        data = {}
        for p, ds in datasets.items():
            if p.endswith("/message"):
                data[p] = np.asarray(ds.asstr()[:n], dtype=str)
            elif "flag_meanings" in ds.attrs:
                data[p] = _decode_status(ds, n)
            else:
                data[p] = ds[:n]
        self.meta, self._data, self._n = meta, data, n

    # -- probes

    @property
    def operators(self) -> tuple[str, ...]:
        """The probed operators, in the order they were declared."""
        return tuple(self.meta["layout"]["operators"])

    @property
    def players(self) -> tuple[str, ...]:
        """The players, in flat-vector order."""
        return tuple(self.meta["layout"]["players"])

    @property
    def width(self) -> int:
        """Columns of the eigenvalue arrays (``k + 1``)."""
        return int(self.meta["width"])

    def __len__(self) -> int:
        return self._n

    def probe_steps(self) -> np.ndarray:
        """The step of every probe, int64 ``(N,)``."""
        return self._data["probe_step"]

    def probes(self) -> dict[str, np.ndarray]:
        """Per-probe columns: ``step``, ``batch_index``, ``seed`` (-1: none),
        ``wall_time``, ``build_time`` and ``status`` (str)."""
        return {p[len("probe_"):]: self._data[p] for p in _PROBE_COLUMNS}

    def losses(self) -> dict[str, np.ndarray]:
        """``{player: loss on the probe batch}``, float64 ``(N,)`` each."""
        return {p: self._data[f"{_LOSS_GROUP}/{p}"] for p in self.players}

    # -- per operator

    def _operator(self, op: str) -> dict[str, Any]:
        try:
            return self.meta["layout"]["operators"][op]
        except KeyError:
            raise KeyError(f"no operator {op!r} in {self.path}; its operators are "
                           f"{', '.join(self.operators)}") from None

    def _column(self, op: str, column: str) -> np.ndarray:
        self._operator(op)
        return self._data[f"{op}/{column}"]

    def steps(self, op: str) -> np.ndarray:
        """Training step of every probe, int64 ``(N,)``."""
        return self._column(op, "step")

    def batch_index(self, op: str) -> np.ndarray:
        """Probe-batch index of every probe, int32 ``(N,)``."""
        return self._column(op, "batch_index")

    def eigenvalues(self, op: str) -> np.ndarray:
        """Eigenvalues, complex128 ``(N, width)``, NaN-padded (descent convention)."""
        real, imag = self._column(op, "eig_real"), self._column(op, "eig_imag")
        values = np.empty(real.shape, dtype=np.complex128)
        values.real, values.imag = real, imag
        return values

    def residuals(self, op: str) -> np.ndarray:
        """Relative residuals, float64 ``(N, width)``, NaN-padded."""
        return self._column(op, "residual")

    def converged(self, op: str) -> np.ndarray:
        """Convergence flags, bool ``(N, width)``, False-padded."""
        return self._column(op, "converged")

    def n_matvec(self, op: str) -> np.ndarray:
        """Matrix-vector products per solve, int64 ``(N,)``."""
        return self._column(op, "n_matvec")

    def wall_time(self, op: str) -> np.ndarray:
        """Seconds per solve, float64 ``(N,)``."""
        return self._column(op, "wall_time")

    def status(self, op: str) -> np.ndarray:
        """Status of every solve (one of :data:`STATUSES`), str ``(N,)``."""
        return self._column(op, "status")

    def messages(self, op: str) -> np.ndarray:
        """What went wrong in every solve ("" when nothing), str ``(N,)``."""
        return self._column(op, "message")

    def scalars(self, op: str) -> dict[str, np.ndarray]:
        """``{scalar name: float64 (N,)}``, e.g. ``spectral_radius`` of the Jacobian."""
        return {name: self._column(op, name) for name in self._operator(op)["scalars"]}

    # -- lifetime

    def close(self) -> None:
        """Close the file (SWMR mode); the data read stays available."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Trace({self.path!r}, {self._n} probes, operators={list(self.operators)})"


def _decode_status(ds: h5py.Dataset, n: int) -> np.ndarray:
    """Status codes as names, using the file's own ``flag_values``/``flag_meanings``."""
    names = dict(zip(np.asarray(ds.attrs["flag_values"]).tolist(),
                     _attr_str(ds.attrs["flag_meanings"]).split()))
    codes, index = np.unique(ds[:n], return_inverse=True)
    return np.array([names.get(c, f"code {c}") for c in codes.tolist()], dtype=str)[index]


def open_trace(path: PathLike, *, swmr: bool = False, locking: Optional[bool] = None) -> Trace:
    """Read a specdiag trace.

    Parameters
    ----------
    path : str or os.PathLike
        The trace file. A trace still being written (default mode) can be read at any
        time; :meth:`Trace.refresh` picks up new probes.
    swmr : bool
        Follow a trace written with ``swmr=True`` live: the file stays open and
        :meth:`Trace.refresh` shows rows flushed since.
    locking : bool or None
        HDF5 file locking, as for :class:`TraceWriter`.

    Raises
    ------
    TraceError
        One line naming the file: missing, not HDF5, damaged or truncated, not a
        specdiag trace, or written by a newer specdiag (newer major schema version).
    """
    return Trace(path, swmr=swmr, locking=locking)
