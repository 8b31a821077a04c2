r"""Room on the disk: refusing writes that would fail, reserving space, naming failures.

HDF5 cannot survive a write that fails half-way: when the file cannot grow (no space
left, ``ENOSPC``; the file-size limit of ``ulimit -f``, ``EFBIG``) while a flush writes
its metadata, the superblock may already promise more bytes than the file holds, and
the whole file reads as truncated. Two guards keep that from happening:

* :func:`room_problem` checks, before the file is opened, that the file system has the
  bytes a write may need (``os.statvfs``) and that the file may grow that much
  (``resource.getrlimit(RLIMIT_FSIZE)``); a write that could fail is refused untouched.
* :func:`reserve` allocates those bytes at the end of the open file beforehand
  (``os.posix_fallocate``): HDF5 then writes only into blocks the file already owns,
  which cannot fail for lack of room. HDF5 ignores bytes past its end-of-allocation
  mark and trims them when it next truncates the file.

numpy, h5py and the standard library only.
"""

from __future__ import annotations

import errno as errnos
import os
from typing import Any, Optional

import h5py

from ..errors import TraceError
from .files import TraceWriteError, error_errno, one_line

__all__ = ["room_problem", "reserve", "write_error", "creation_error", "DISK_FULL"]

#: Errors that mean "no room": no space, disk quota, file-size limit.
DISK_FULL = frozenset({errnos.ENOSPC, errnos.EDQUOT, errnos.EFBIG})
#: Errors of a file system that cannot preallocate (then only room_problem guards).
_NO_FALLOCATE = frozenset(
    {errnos.EOPNOTSUPP, errnos.EINVAL, errnos.ENOSYS, getattr(errnos, "ENOTSUP", 95)}
)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _file_size_limit() -> Optional[int]:
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def room_problem(path: str, needed: int, size: Optional[int] = None) -> Optional[tuple[int, str]]:
    """Why ``path`` cannot grow by ``needed`` bytes now, as ``(errno, reason)``, or None.

    Parameters
    ----------
    path : str
        The file (it may not exist yet: its directory is checked).
    needed : int
        Bytes the coming write may add to the file.
    size : int, optional
        The file's size now (default: its size on disk, 0 if absent).
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):  # no statvfs here, or the directory is gone
        free = None
    else:
        free = st.f_bavail * st.f_frsize
    if free is not None and free < needed:
        return errnos.ENOSPC, (
            f"no space left on the device ({free} bytes free, a write needs up to {needed})"
        )
    limit = _file_size_limit()
    size = _size(path) if size is None else size
    if limit is not None and size + needed > limit:
        return errnos.EFBIG, (
            f"the file-size limit (ulimit -f) of {limit} bytes does not leave room for a "
            f"write of up to {needed} bytes (the file has {size})"
        )
    return None


def reserve(f: h5py.File, nbytes: int) -> None:
    """Allocate ``nbytes`` past HDF5's end of file, so its next writes cannot fail.

    OSError (``ENOSPC``, ``EFBIG``) when they cannot be allocated. Does nothing where
    the file system or the platform cannot preallocate.
    """
    fallocate = getattr(os, "posix_fallocate", None)
    try:
        fd = f.id.get_vfd_handle()
    except (RuntimeError, ValueError, OSError):
        return
    if fallocate is None or not isinstance(fd, int):
        return
    target = int(f.id.get_filesize()) + int(nbytes)
    size = os.fstat(fd).st_size
    if target <= size:
        return
    try:
        fallocate(fd, size, target - size)
    except OSError as error:
        if error.errno not in _NO_FALLOCATE:
            raise


def write_error(path: str, error: BaseException, what: str, step: Optional[int]) -> TraceWriteError:
    """A one-line :class:`TraceWriteError` for a failed write of ``what``."""
    number = error_errno(error)
    reason = one_line(error)
    if number is not None and not reason:
        reason = os.strerror(number)
    return TraceWriteError(
        f"{path}: could not write {what} ({reason}); the trace keeps the probes written "
        f"before, and the writer can write again once the cause is gone",
        disk_full=number in DISK_FULL,
        errno=number,
        step=step,
    )


def refused(path: str, problem: tuple[int, str], what: str, step: Optional[int]) -> TraceWriteError:
    """The :class:`TraceWriteError` of a write that :func:`room_problem` refused."""
    number, reason = problem
    if step is None and what == "a new trace":
        message = f"{path}: cannot create the trace: {reason}; nothing was written"
    else:
        message = (
            f"{path}: did not write {what}: {reason}; the file is untouched, and the writer "
            f"can write again once there is room"
        )
    return TraceWriteError(message, disk_full=True, errno=number, step=step)


def creation_error(path: str, error: BaseException, what: str = "the trace") -> TraceError:
    """A one-line TraceError saying why ``what`` could not be created next to ``path``."""
    number = error_errno(error)
    directory = os.path.dirname(os.path.abspath(path))
    reasons = {
        errnos.ENOENT: f"the directory {directory} does not exist",
        errnos.ENOTDIR: f"{directory} is not a directory",
        errnos.EACCES: f"permission denied: this user cannot create files in {directory}",
        errnos.EPERM: f"permission denied: this user cannot create files in {directory}",
        errnos.EROFS: f"{directory} is on a read-only file system",
        errnos.ENOSPC: f"no space left on the device of {directory}",
        errnos.EDQUOT: f"the disk quota of {directory} is exhausted",
        errnos.EFBIG: "the file-size limit (ulimit -f) is too small for a new trace",
    }
    reason = reasons.get(number) if number is not None else None
    message = f"{path}: cannot create {what}: {reason or one_line(error)}"
    if number in DISK_FULL:
        return TraceWriteError(message, disk_full=True, errno=number)
    return TraceError(message)


def remove_quietly(path: Any) -> None:
    """Remove a file if it exists; errors are ignored (cleaning up after a failure)."""
    try:
        os.remove(path)
    except OSError:
        pass
