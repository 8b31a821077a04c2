"""Errors that say what happened: creating a trace (nothing left behind by a failed
creation), failed writes (the writer stays usable), and strict JSON attributes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, probe_record

import specdiag.trace.writer as writer_module
from specdiag.errors import TraceError
from specdiag.trace import TraceWriteError, TraceWriter, open_trace, strict_json

TESTS = Path(__file__).resolve().parent.parent


def writer(path, **kwargs) -> TraceWriter:
    return TraceWriter(
        path, **{"operators": OPERATORS, "players": PLAYERS, "width": WIDTH, **kwargs}
    )


def test_a_missing_directory_says_so(tmp_path):
    path = tmp_path / "runs" / "run.h5"
    with pytest.raises(TraceError) as info:
        writer(path)
    message = str(info.value)
    assert f"the directory {tmp_path / 'runs'} does not exist" in message
    assert "no such file" not in message and "\n" not in message
    assert os.listdir(tmp_path) == []


CREATE_IN_READ_ONLY = """
import os, sys
from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, load_trace_module
trace = load_trace_module()
if os.geteuid() == 0:  # root writes anywhere: become nobody, once everything is imported
    os.setgid(65534); os.setuid(65534)
try:
    trace.TraceWriter(sys.argv[1], operators=OPERATORS, players=PLAYERS, width=WIDTH)
except trace.TraceError as error:
    print(type(error).__name__, error)
"""


def test_a_read_only_directory_says_permission_denied():
    base = Path(tempfile.mkdtemp(prefix="specdiag-ro-"))  # under /tmp: others may enter
    try:
        os.chmod(base, 0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        os.chmod(locked, 0o555)
        out = subprocess.run(
            [sys.executable, "-c", CREATE_IN_READ_ONLY, str(locked / "run.h5")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=TESTS,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.startswith("TraceError ")
        assert f"permission denied: this user cannot create files in {locked}" in out.stdout
        assert os.listdir(locked) == []
    finally:
        os.chmod(base / "locked", 0o755)
        shutil.rmtree(base)


@pytest.mark.parametrize(
    "number, reason",
    [
        (errno.EROFS, "is on a read-only file system"),
        (errno.EACCES, "permission denied"),
        (errno.ENOSPC, "no space left on the device"),
    ],
)
def test_creation_errors_name_their_cause(tmp_path, monkeypatch, number, reason):
    real_open = os.open

    def refusing_open(path, flags, *args):
        if str(path).endswith(".lock"):
            raise OSError(number, os.strerror(number), path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(TraceError) as info:
        writer(tmp_path / "run.h5")
    assert reason in str(info.value) and str(tmp_path) in str(info.value)
    assert isinstance(info.value, TraceWriteError) == (number == errno.ENOSPC)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def _fail_building(*args, **kwargs):
    raise RuntimeError("Can't write data (file write failed: errno = 28, No space left)")


def test_a_failed_creation_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    with writer(path) as w:
        w.write(probe_record(0))
    before = path.read_bytes()
    monkeypatch.setattr(writer_module, "build_layout", _fail_building)
    with pytest.raises(TraceWriteError) as info:
        writer(path, overwrite=True)
    assert info.value.disk_full and "cannot create the trace" in str(info.value)
    with pytest.raises(TraceWriteError):
        writer(tmp_path / "new.h5")
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["run.h5"]
    assert len(open_trace(path)) == 1


@pytest.mark.parametrize("swmr", [False, True], ids=["default", "swmr"])
def test_a_failed_write_leaves_the_file_and_the_writer_usable(tmp_path, monkeypatch, swmr):
    """h5py raises RuntimeError when a flush fails: it becomes a TraceWriteError."""
    path = tmp_path / "run.h5"
    w = writer(path, swmr=swmr)
    w.write(probe_record(0))
    real_flush = h5py.File.flush
    calls = {"n": 0}

    def failing_flush(self):
        calls["n"] += 1
        raise RuntimeError("Can't flush (file write failed: errno = 28, No space left on device)")

    monkeypatch.setattr(h5py.File, "flush", failing_flush)
    with pytest.raises(TraceWriteError) as info:
        w.write(probe_record(1))
    error = info.value
    assert error.disk_full and error.errno == errno.ENOSPC and error.step == 1 and calls["n"]
    assert "\n" not in str(error)
    assert error.__context__ is None or error.__suppress_context__
    monkeypatch.setattr(h5py.File, "flush", real_flush)
    assert len(open_trace(path, swmr=swmr)) == 1  # the torn row is not counted
    w.write(probe_record(1))  # and the next write overwrites it
    w.close()
    tr = open_trace(path)
    np.testing.assert_array_equal(tr.probe_steps(), [0, 1])
    np.testing.assert_array_equal(tr.eigenvalues("generator")[:, 0].real, [0.0, 2.0])


def test_a_refused_first_write_purges_when_it_is_written_again(tmp_path, monkeypatch):
    """The monitor keeps the records it could not write and writes them again, in order."""
    path = tmp_path / "run.h5"
    with writer(path) as w:
        for step in (0, 10, 20, 30):
            w.write(probe_record(step))
    w = writer(path, resume=True)
    monkeypatch.setattr(writer_module, "room_problem", lambda *a, **k: (errno.ENOSPC, "full"))
    for step in (20, 25):
        with pytest.raises(TraceWriteError, match="did not write the probe at step") as info:
            w.write(probe_record(step))
        assert info.value.disk_full and info.value.step == step
    assert w.purged is None
    np.testing.assert_array_equal(open_trace(path).probe_steps(), [0, 10, 20, 30])  # as it was
    monkeypatch.undo()
    for step in (20, 25):  # space is back: the kept records, in order
        w.write(probe_record(step))
    assert w.purged == (2, 20)
    w.close()
    np.testing.assert_array_equal(open_trace(path).probe_steps(), [0, 10, 20, 25])


def test_config_is_strict_json(tmp_path):
    path = tmp_path / "run.h5"
    config = {
        "lr": float("nan"),
        "clip": float("inf"),
        "floor": -np.inf,
        "betas": (0.9, np.float32(0.999)),
        "sizes": np.array([1, 2]),
        "nested": {"x": [float("nan"), 1], 3: True},
        "object": object,
    }
    writer(path, config={"metadata": config}).close()
    with h5py.File(path, "r") as f:
        text = f.attrs["config"]

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    stored = json.loads(text, parse_constant=refuse)["metadata"]
    assert stored["lr"] is None and stored["clip"] == "inf" and stored["floor"] == "-inf"
    assert stored["betas"] == [0.9, pytest.approx(0.999)] and stored["sizes"] == [1, 2]
    assert stored["nested"] == {"x": [None, 1], "3": True}
    assert stored["object"] == repr(object)
    assert open_trace(path).meta["config"]["metadata"]["clip"] == "inf"
    assert strict_json([float("nan"), float("-inf")]) == '[null, "-inf"]'
