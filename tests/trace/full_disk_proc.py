"""A training process whose disk fills up, for the full-disk tests.

    python full_disk_proc.py fsize DIR   # the file-size limit (ulimit -f) stops the writes
    python full_disk_proc.py fill DIR    # DIR is a small file system, filled up by a filler file

Writes 64 probes, takes the room away, tries to write probe 64 (refused before the
file is opened), then with the free-space check off (the reservation refuses it), then
tries to create a second trace; gives the room back and writes probes 64 and 65. Prints
one JSON object per event. Loads ``specdiag.trace`` without torch (trace_writer_proc).
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, load_trace_module, probe_record  # noqa: E402

trace = load_trace_module()
writer_module: Any = sys.modules["specdiag.trace.writer"]


def report(event: str, **data) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


def attempt(writer, step: int, event: str) -> None:
    try:
        writer.write(probe_record(step))
    except trace.TraceWriteError as error:
        report(event, ok=False, disk_full=error.disk_full, errno=error.errno, message=str(error))
    else:
        report(event, ok=True)


def take_room(mode: str, directory: str, path: str) -> None:
    if mode == "fsize":
        limit = os.path.getsize(path) + 1000
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        return
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    os.close(fd)


def give_room(mode: str, directory: str) -> None:
    if mode == "fsize":
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    else:
        os.remove(os.path.join(directory, "filler"))


def main(mode: str, directory: str) -> None:
    path = os.path.join(directory, "run.h5")
    writer = trace.TraceWriter(path, operators=OPERATORS, players=PLAYERS, width=WIDTH)
    for step in range(64):
        writer.write(probe_record(step))
    take_room(mode, directory, path)
    attempt(writer, 64, "checked")
    report("readable", probes=len(trace.open_trace(path)))
    checked = writer_module.room_problem
    writer_module.room_problem = lambda *args, **kwargs: None  # the reservation alone
    attempt(writer, 64, "reserved")
    writer_module.room_problem = checked
    report("readable", probes=len(trace.open_trace(path)))
    other = os.path.join(directory, "other.h5")
    if mode == "fsize":  # smaller than a new trace
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    try:
        trace.TraceWriter(other, operators=OPERATORS, players=PLAYERS, width=WIDTH)
    except trace.TraceError as error:
        report("create", ok=False, disk_full=getattr(error, "disk_full", None), message=str(error))
    else:
        report("create", ok=True)
    writer_module.room_problem = lambda *args, **kwargs: None  # HDF5 fails
    try:
        trace.TraceWriter(other, operators=OPERATORS, players=PLAYERS, width=WIDTH)
    except trace.TraceError as error:
        disk_full = getattr(error, "disk_full", None)
        report("create-unchecked", ok=False, disk_full=disk_full, message=str(error))
    else:
        report("create-unchecked", ok=True)
    writer_module.room_problem = checked
    report("left", files=sorted(os.listdir(directory)))
    give_room(mode, directory)
    attempt(writer, 64, "again")
    attempt(writer, 65, "again")
    writer.close()
    tr = trace.open_trace(path)
    report("final", steps=tr.probe_steps().tolist(), files=sorted(os.listdir(directory)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
