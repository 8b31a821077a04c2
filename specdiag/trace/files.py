"""Opening trace files: waiting for locks, one-line errors, the root attributes."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

import h5py
import numpy as np

from ..errors import TraceError
from .schema import SCHEMA, SCHEMA_MAJOR, SCHEMA_VERSION

__all__ = ["open_h5", "read_meta", "unreadable", "one_line", "attr_str", "SWMR_LIBVER"]

#: How long to wait for a file that another process holds (HDF5 file lock).
LOCK_WAIT_S = 10.0
#: File format for SWMR files: HDF5 1.10 objects, readable by HDF5 >= 1.10.
SWMR_LIBVER = ("v110", "v110")


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    # h5py: "[Errno 2] Unable to synchronously open file (reason ...)" -> "reason ..."
    if "(" in text and text.endswith(")"):
        text = text[text.index("(") + 1 : -1]
    return text


def unreadable(path: str, error: Exception) -> TraceError:
    """A one-line TraceError for a file h5py could not open or read."""
    reason = one_line(error)
    if isinstance(error, FileNotFoundError) or not os.path.exists(path):
        return TraceError(f"{path}: no such file")
    if isinstance(error, BlockingIOError):
        return TraceError(
            f"{path}: locked by another process that has it open for writing "
            f"(retry later; HDF5_USE_FILE_LOCKING=FALSE or locking=False turns "
            f"the lock off)"
        )
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
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_meta(path: str, f: h5py.File) -> dict[str, Any]:
    """The root attributes, checked and decoded; TraceError if not a readable trace."""
    if attr_str(f.attrs.get("schema", "")) != SCHEMA:
        raise TraceError(f"{path}: not a specdiag trace (no schema attribute {SCHEMA!r})")
    version = attr_str(f.attrs.get("schema_version", ""))
    major = version.split(".")[0]
    if not major.isdigit():
        raise TraceError(f"{path}: unreadable schema_version {version!r}")
    if int(major) > SCHEMA_MAJOR:
        raise TraceError(
            f"{path}: written by a newer specdiag (schema {version}); upgrade specdiag to read it"
        )
    if int(major) < SCHEMA_MAJOR:
        raise TraceError(
            f"{path}: schema {version} is older than this specdiag reads ({SCHEMA_VERSION})"
        )
    meta: dict[str, Any] = {}
    for key, value in f.attrs.items():
        if isinstance(value, (bytes, str)):
            value = attr_str(value)
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
