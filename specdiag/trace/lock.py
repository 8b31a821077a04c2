"""One writer per trace: the sidecar lock file ``<trace>.lock``.

A :class:`~specdiag.trace.TraceWriter` holds ``<trace>.lock`` for its lifetime: the
file is created with ``O_CREAT | O_EXCL`` (atomic, also on NFS 3 and later) and holds
one line of JSON naming its holder -- ``pid``, ``host``, ``since`` (UTC, ISO 8601),
the process's start time where the system tells it (``start``) and a random
``token``. A second writer of the same trace is refused with a :class:`TraceError`
naming the holder. The lock is removed when the writer closes (or is garbage
collected, or the process exits).

A lock is stale, and taken over, when its holder is on this host and is gone: its pid
is not alive, the pid now belongs to a process that started at another time, or it is
this very process's pid while this process holds no such lock (a restarted container
reuses pids). A lock of another host cannot be checked: delete it by hand when its
process is gone. Readers never look at the lock.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from datetime import datetime, timezone
from typing import Any, Optional

from ..errors import TraceError
from .storage import creation_error, remove_quietly

__all__ = ["WriterLock"]

#: Tokens of the locks this process holds.
_HELD: set[str] = set()
#: A lock file without readable content younger than this may be in the middle of
#: being written by its creator; an older one is stale.
_YOUNG_S = 5.0


def _process_start(pid: int) -> Optional[str]:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it: assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class WriterLock:
    """The lock ``<trace>.lock`` of one trace writer.

    Parameters
    ----------
    trace : str
        The trace file; the lock is ``<trace>.lock`` next to the real file (symlinks
        resolved).
    """

    def __init__(self, trace: str) -> None:
        self.trace = trace
        self.path = os.path.realpath(trace) + ".lock"  # a symlinked trace: next to the file
        self.token = secrets.token_hex(8)
        self._pid = os.getpid()
        self.held = False

    def _content(self) -> str:
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        holder = {
            "pid": self._pid,
            "host": socket.gethostname(),
            "since": since,
            "start": _process_start(self._pid),
            "token": self.token,
        }
        return json.dumps(holder) + "\n"

    def _read(self, path: Optional[str] = None) -> tuple[Optional[dict[str, Any]], str]:
        """The holder named in a lock file (None when unreadable) and its raw text."""
        try:
            with open(path or self.path, encoding="utf-8", errors="replace") as lock:
                text = lock.read()
        except OSError:
            return None, ""
        try:
            holder = json.loads(text)
        except ValueError:
            return None, text
        ok = isinstance(holder, dict) and isinstance(holder.get("pid"), int)
        return (holder if ok else None), text

    def _stale(self, holder: Optional[dict[str, Any]]) -> bool:
        if holder is None:  # unreadable: stale once it is no longer being written
            try:
                return time.time() - os.path.getmtime(self.path) > _YOUNG_S
            except OSError:
                return False
        if holder.get("host") != socket.gethostname():
            return False
        pid = holder["pid"]
        if pid == os.getpid():
            return holder.get("token") not in _HELD
        if not _alive(pid):
            return True
        start = _process_start(pid)
        return start is not None and holder.get("start") not in (None, start)

    def _break(self, text: str) -> None:
        """Remove a stale lock whose content is ``text``.

        If another process replaced it meanwhile, the new lock is put back.
        """
        aside = f"{self.path}.{self.token}.stale"
        try:
            os.rename(self.path, aside)
        except OSError:
            return  # someone else broke it first
        if self._read(aside)[1] != text:  # a fresh lock: put it back
            try:
                os.link(aside, self.path)
            except OSError:
                pass
        remove_quietly(aside)

    def _refusal(self, holder: Optional[dict[str, Any]]) -> TraceError:
        if holder is None:
            who = "another writer (its lock file is being written)"
        elif holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            who = f"another TraceWriter of this process (pid {holder['pid']}), not closed yet"
        else:
            who = (
                f"another process: pid {holder.get('pid')} on host {holder.get('host')}, "
                f"since {holder.get('since')}"
            )
        return TraceError(
            f"{self.trace}: already being written by {who}; wait for it to finish, "
            f"write to another path, or delete {self.path} if that writer is gone"
        )

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as error:
            raise creation_error(self.trace, error, "the trace's lock file") from None
        try:
            os.write(fd, self._content().encode("utf-8"))
        except OSError as error:
            os.close(fd)
            remove_quietly(self.path)
            raise creation_error(self.trace, error, "the trace's lock file") from None
        os.close(fd)
        return True

    def acquire(self) -> None:
        """Take the lock; TraceError naming the holder when another writer has it."""
        deadline = time.monotonic() + 1.0
        while True:
            if self._try_create():
                self.held = True
                _HELD.add(self.token)
                return
            holder, text = self._read()
            if self._stale(holder):
                self._break(text)
            elif holder is None and os.path.exists(self.path) and time.monotonic() < deadline:
                time.sleep(0.02)  # its creator is writing it
            elif os.path.exists(self.path) or time.monotonic() > deadline:
                raise self._refusal(holder)

    def release(self) -> None:
        """Remove the lock if this writer still holds it; idempotent."""
        if not self.held or os.getpid() != self._pid:  # a forked child keeps its hands off
            return
        self.held = False
        _HELD.discard(self.token)
        holder, _ = self._read()
        if holder is not None and holder.get("token") == self.token:
            remove_quietly(self.path)
