"""Opening trace files: waiting for locks, one-line errors, the root attributes, JSON."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Mapping
from typing import Any, Optional

import h5py
import numpy as np

from ..errors import TraceError
from .schema import SCHEMA, SCHEMA_MAJOR, SCHEMA_VERSION, normalise_layout, parse_version

__all__ = [
    "TraceWriteError",
    "open_h5",
    "read_meta",
    "unreadable",
    "one_line",
    "attr_str",
    "strict_json",
    "error_errno",
    "SWMR_LIBVER",
]

#: How long to wait for a file that another process holds (HDF5 file lock).
LOCK_WAIT_S = 10.0
#: File format for SWMR files: HDF5 1.10 objects, readable by HDF5 >= 1.10.
SWMR_LIBVER = ("v110", "v110")


class TraceWriteError(TraceError):
    """A probe, or a new trace, could not be written.

    Raised by :class:`~specdiag.trace.TraceWriter` for every failure to write: no
    space left, the file-size limit (``ulimit -f``), an I/O error, a file deleted or
    locked meanwhile. The trace keeps every probe written before, and the writer stays
    usable: once the cause is gone (space freed), the next ``write`` appends.

    Attributes
    ----------
    disk_full : bool
        The cause is a lack of room: no space left on the device, a disk quota, or the
        process's file-size limit (errno ``ENOSPC``, ``EDQUOT`` or ``EFBIG``).
    errno : int or None
        The operating system's error number, when known.
    step : int or None
        The step of the probe that was not written (None when creating the trace).
    """

    def __init__(
        self,
        message: str,
        *,
        disk_full: bool = False,
        errno: Optional[int] = None,
        step: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.disk_full = bool(disk_full)
        self.errno = errno
        self.step = step


def one_line(error: BaseException) -> str:
    """The error's text on one line, without h5py's "Unable to ... (" wrapping."""
    text = " ".join(str(error).split())
    # h5py: "[Errno 2] Unable to synchronously open file (reason ...)" -> "reason ..."
    if "(" in text and text.endswith(")"):
        text = text[text.index("(") + 1 : -1]
    return text


def error_errno(error: BaseException) -> Optional[int]:
    """The errno of an OSError, or the ``errno = N`` h5py puts in its messages."""
    number = getattr(error, "errno", None)
    if isinstance(number, int) and number > 0:
        return number
    found = re.search(r"errno = (\d+)", str(error))
    return int(found.group(1)) if found else None


def unreadable(path: str, error: Exception) -> TraceError:
    """A one-line TraceError for a file h5py could not open or read."""
    reason = one_line(error)
    number = error_errno(error)
    if isinstance(error, FileNotFoundError) or not os.path.exists(path):
        return TraceError(f"{path}: no such file")
    if isinstance(error, BlockingIOError):
        return TraceError(
            f"{path}: locked by another process that has it open for writing "
            f"(retry later; HDF5_USE_FILE_LOCKING=FALSE or locking=False turns "
            f"the lock off)"
        )
    if number in (13, 1):  # EACCES, EPERM
        return TraceError(f"{path}: permission denied")
    if os.path.getsize(path) == 0:
        return TraceError(f"{path}: empty file (0 bytes), not a trace")
    if not h5py.is_hdf5(path):
        return TraceError(f"{path}: not an HDF5 file")
    if "already open for write" in reason:
        return TraceError(
            f"{path}: marked open for writing (a live SWMR trace, or its writer "
            f"was killed): read it with open_trace(path, swmr=True), or clear "
            f"the mark with `h5clear -s {path}`"
        )
    return TraceError(f"{path}: damaged or truncated HDF5 file ({reason})")


def open_h5(
    path: str, mode: str, *, locking: Optional[bool], swmr: bool = False, libver: Any = None
) -> h5py.File:
    """``h5py.File``, waiting while another process holds the file's lock."""
    kwargs: dict[str, Any] = {}
    if locking is not None:
        kwargs["locking"] = locking
    if swmr and mode == "r":
        kwargs["swmr"] = True
    if libver is not None:
        kwargs["libver"] = libver
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return h5py.File(path, mode, **kwargs)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def attr_str(value: Any) -> str:
    """A string attribute as str (bytes decoded as UTF-8, bad bytes replaced)."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: NaN as None, infinities as "inf" and "-inf"."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {
            k if isinstance(k, str) else json.dumps(_jsonable(k)).strip('"'): _jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    return repr(value)


def strict_json(value: Any) -> str:
    """Standard JSON text of ``value`` (RFC 8259: no NaN or Infinity tokens).

    NaN is written as ``null``, infinities as the strings ``"inf"`` and ``"-inf"``,
    numpy scalars and arrays as numbers and lists, anything else JSON cannot hold as
    its ``repr``.
    """
    return json.dumps(_jsonable(value), allow_nan=False)


def _check_version(path: str, version: str) -> None:
    try:
        major, _ = parse_version(version)
    except ValueError:
        raise TraceError(f"{path}: unreadable schema_version {version!r}") from None
    if major > SCHEMA_MAJOR:
        raise TraceError(
            f"{path}: written by a newer specdiag (schema {version}); upgrade specdiag to read it"
        )
    if major < SCHEMA_MAJOR:
        raise TraceError(
            f"{path}: schema {version} is older than this specdiag reads ({SCHEMA_VERSION})"
        )


def _decoded_attrs(path: str, f: h5py.File) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, value in f.attrs.items():
        if isinstance(value, (bytes, str)):
            value = attr_str(value)
            if key in ("config", "versions", "layout"):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise TraceError(f"{path}: attribute {key!r} is not valid JSON") from None
                if not isinstance(value, dict):
                    raise TraceError(
                        f"{path}: attribute {key!r} is JSON {type(value).__name__}, not an object"
                    )
        elif isinstance(value, np.generic):
            value = value.item()
        meta[key] = value
    return meta


def read_meta(path: str, f: h5py.File) -> dict[str, Any]:
    """The root attributes, checked and decoded; TraceError if not a readable trace.

    ``meta["layout"]`` is normalised: every operator has its ``width`` (the root
    ``width`` in files older than 1.2), ``arrays`` and ``coords``.
    """
    if attr_str(f.attrs.get("schema", "")) != SCHEMA:
        raise TraceError(f"{path}: not a specdiag trace (no schema attribute {SCHEMA!r})")
    version = attr_str(f.attrs.get("schema_version", ""))
    _check_version(path, version)
    meta = _decoded_attrs(path, f)
    layout, width = meta.get("layout"), meta.get("width")
    if not isinstance(layout, dict) or "width" not in meta:
        raise TraceError(f"{path}: damaged specdiag trace (no layout or width)")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise TraceError(f"{path}: damaged specdiag trace (width {width!r} is not a count)")
    for key in ("config", "versions"):
        meta.setdefault(key, {})
        if not isinstance(meta[key], dict):
            raise TraceError(f"{path}: damaged specdiag trace ({key} is not a JSON object)")
    try:
        normal = normalise_layout(layout.get("operators", {}), layout.get("players", {}), width)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise TraceError(f"{path}: damaged specdiag trace (layout: {one_line(error)})") from None
    raw_ops = layout["operators"]
    normal["operators"] = {
        name: {**raw_ops[name], **spec} for name, spec in normal["operators"].items()
    }
    meta["layout"] = {**layout, **normal}
    return meta
