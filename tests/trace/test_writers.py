"""One writer per trace (the lock file), and explicit resume / overwrite."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, Child, probe_record

from specdiag.errors import TraceError
from specdiag.trace import TraceWriter, open_trace


def writer(path, **kwargs) -> TraceWriter:
    return TraceWriter(
        path, **{"operators": OPERATORS, "players": PLAYERS, "width": WIDTH, **kwargs}
    )


def write_steps(path, steps, **kwargs) -> TraceWriter:
    with writer(path, **kwargs) as w:
        for step in steps:
            w.write(probe_record(step, n_matvec=100 + step))
    return w


def lock_of(path) -> dict:
    with open(f"{path}.lock", encoding="utf-8") as f:
        return json.loads(f.read())


# --------------------------------------------------------------------------- the lock


def test_a_second_process_is_refused_and_the_first_run_is_kept(tmp_path):
    path = tmp_path / "run.h5"
    child = Child(str(path), "default", "stdin")
    try:
        child.expect("ready")
        for n in (1, 2, 3):
            child.send("write")
            assert child.expect("wrote") == f"wrote {n}"
        holder = lock_of(path)
        assert holder["pid"] == child.proc.pid and holder["host"] == socket.gethostname()
        for kwargs in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(TraceError) as info:
                writer(path, **kwargs)
            message = str(info.value)
            assert f"pid {child.proc.pid} on host {socket.gethostname()}" in message
            assert holder["since"] in message and "another path" in message
            assert "\n" not in message
        assert len(open_trace(path)) == 3  # readers are not blocked
        child.send("write")
        assert child.expect("wrote") == "wrote 4"
        child.send("close")
        child.expect("closed")
        assert child.proc.wait(timeout=30) == 0
    finally:
        child.kill()
    assert not os.path.exists(f"{path}.lock")
    np.testing.assert_array_equal(open_trace(path).probe_steps(), [0, 1, 2, 3])
    write_steps(path, [4], resume=True)  # now free
    np.testing.assert_array_equal(open_trace(path).probe_steps(), [0, 1, 2, 3, 4])


def test_a_second_writer_in_the_same_process_is_refused_until_the_first_closes(tmp_path):
    path = tmp_path / "run.h5"
    first = writer(path)
    with pytest.raises(TraceError, match="another TraceWriter of this process"):
        writer(path)
    first.close()
    second = writer(path)
    del second  # never closed: garbage collection releases its lock
    gc.collect()
    assert not os.path.exists(f"{path}.lock")
    writer(path).close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    "holder",
    [
        lambda: {"pid": _dead_pid(), "host": socket.gethostname(), "since": "x", "token": "t"},
        lambda: {"pid": os.getpid(), "host": socket.gethostname(), "since": "x", "token": "t"},
    ],
    ids=["dead pid", "this pid, not held (a restarted container)"],
)
def test_a_stale_lock_is_taken_over(tmp_path, holder):
    path = tmp_path / "run.h5"
    write_steps(path, [0, 1])
    with open(f"{path}.lock", "w", encoding="utf-8") as f:
        json.dump(holder(), f)
    with writer(path, resume=True) as w:
        assert lock_of(path)["pid"] == os.getpid() and lock_of(path)["token"] == w._lock.token
        w.write(probe_record(2))
    assert not os.path.exists(f"{path}.lock")
    assert len(open_trace(path)) == 3


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_a_reused_pid_is_told_apart_by_its_start_time(tmp_path):
    path = tmp_path / "run.h5"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with open(f"/proc/{sleeper.pid}/stat", encoding="ascii") as stat:
            start = stat.read().rsplit(")", 1)[1].split()[19]
        lock = {"pid": sleeper.pid, "host": socket.gethostname(), "since": "then", "token": "t"}
        with open(f"{path}.lock", "w", encoding="utf-8") as f:
            json.dump({**lock, "start": start}, f)
        with pytest.raises(TraceError, match=f"pid {sleeper.pid}"):
            writer(path)  # the very process: alive
        with open(f"{path}.lock", "w", encoding="utf-8") as f:
            json.dump({**lock, "start": str(int(start) - 1)}, f)
        writer(path).close()  # the pid now names another process: stale
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_of_another_host_is_refused_with_how_to_clear_it(tmp_path):
    path = tmp_path / "run.h5"
    lock = {"pid": 1, "host": "elsewhere.example", "since": "2026-01-01T00:00:00+00:00"}
    with open(f"{path}.lock", "w", encoding="utf-8") as f:
        json.dump(lock, f)
    with pytest.raises(TraceError) as info:
        writer(path)
    message = str(info.value)
    assert "pid 1 on host elsewhere.example, since 2026-01-01" in message
    assert f"delete {path}.lock" in message
    assert not path.exists() and lock_of(path) == lock


def test_an_unreadable_lock_is_stale_only_once_old(tmp_path):
    path = tmp_path / "run.h5"
    with open(f"{path}.lock", "w", encoding="utf-8") as f:
        f.write("")  # a writer between creating and filling its lock
    start = time.monotonic()
    with pytest.raises(TraceError, match="being written"):
        writer(path)
    assert time.monotonic() - start < 10
    old = time.time() - 60
    os.utime(f"{path}.lock", (old, old))
    writer(path).close()
    assert not os.path.exists(f"{path}.lock")


def test_a_refused_writer_leaves_no_lock_behind(tmp_path):
    path = tmp_path / "run.h5"
    write_steps(path, [0])
    for kwargs in ({}, {"resume": True, "width": WIDTH + 1}):
        with pytest.raises(TraceError):
            writer(path, **kwargs)
        assert not os.path.exists(f"{path}.lock")


# --------------------------------------------------------------------------- resume, overwrite


def test_a_trace_holding_probes_needs_resume_or_overwrite(tmp_path):
    path = tmp_path / "run.h5"
    write_steps(path, [30, 10, 20])
    before = path.read_bytes()
    with pytest.raises(TraceError) as info:
        writer(path)
    message = str(info.value)
    assert "holds 3 probes (steps 10 to 30)" in message
    for option in ("resume=True", "overwrite=True", "another path"):
        assert option in message
    assert str(path) in message and "\n" not in message
    assert path.read_bytes() == before


def test_resume_replaces_later_probes_and_says_what_it_purged(tmp_path):
    path = tmp_path / "run.h5"
    write_steps(path, [0, 10, 20, 30])
    with writer(path, resume=True) as w:
        assert w.existing == (4, 0, 30) and w.purged is None
        w.write(probe_record(20, n_matvec=999))
        assert w.purged == (2, 20)
        w.write(probe_record(20, batch_index=1, n_matvec=998))  # the first write purges
        assert w.purged == (2, 20)
    tr = open_trace(path)
    np.testing.assert_array_equal(tr.probe_steps(), [0, 10, 20, 20])
    np.testing.assert_array_equal(tr.n_matvec("jacobian"), [100, 110, 999, 998])
    with writer(path, resume=True) as w:
        w.write(probe_record(40))
        assert w.purged is None  # nothing at or after step 40
    with writer(path, resume_step=10) as w:  # resume_step implies resume=True
        assert w.purged == (4, 10) and w.existing == (5, 0, 40)
    np.testing.assert_array_equal(open_trace(path).probe_steps(), [0])


@pytest.mark.parametrize("kwargs", [{"overwrite": True}, {"resume": False}])
def test_overwrite_starts_a_new_trace(tmp_path, kwargs):
    path = tmp_path / "run.h5"
    write_steps(path, [0, 10])
    with writer(path, width=WIDTH + 3, **kwargs) as w:
        assert w.existing is None and w.purged is None
        w.write(probe_record(5))
    tr = open_trace(path)
    np.testing.assert_array_equal(tr.probe_steps(), [5])
    assert tr.width == WIDTH + 3
    assert sorted(os.listdir(tmp_path)) == ["run.h5"]  # no temporary file, no lock


def test_resume_and_overwrite_together_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="resume=True and overwrite=True"):
        writer(tmp_path / "run.h5", resume=True, overwrite=True)
    assert os.listdir(tmp_path) == []


def test_a_trace_without_probes_is_simply_continued(tmp_path):
    path = tmp_path / "run.h5"
    writer(path).close()
    with writer(path) as w:  # neither resume nor overwrite needed
        assert w.existing is None
        w.write(probe_record(0))
    assert len(open_trace(path)) == 1
    empty = tmp_path / "empty.h5"
    writer(empty).close()
    with pytest.raises(TraceError, match="another layout"):
        writer(empty, width=WIDTH + 1)  # empty, but of another layout


def test_an_empty_file_counts_as_absent(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"")  # a 0-byte file (an earlier failed creation, a `touch`)
    with writer(path) as w:
        w.write(probe_record(0))
    assert len(open_trace(path)) == 1
