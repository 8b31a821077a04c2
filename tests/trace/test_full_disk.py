"""A full disk: every probe written before stays readable, the writer raises
TraceWriteError, and writing resumes when there is room again (issue: a flush failing
with RuntimeError crashed the process and left a 64-probe trace unreadable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CHILD = HERE / "full_disk_proc.py"


def run_child(mode: str, directory: Path) -> dict[str, list[dict]]:
    out = subprocess.run(
        [sys.executable, str(CHILD), mode, str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]  # no crash, no uncaught error
    events: dict[str, list[dict]] = {}
    for line in out.stdout.splitlines():
        event = json.loads(line)
        events.setdefault(event.pop("event"), []).append(event)
    return events


def check(events: dict[str, list[dict]], errno: int, reason: str) -> None:
    for event in ("checked", "reserved"):  # refused before HDF5 writes, either way
        (result,) = events[event]
        assert result["ok"] is False and result["disk_full"] is True
        assert result["errno"] == errno and "step 64" in result["message"]
        assert "\n" not in result["message"]
    assert reason in events["checked"][0]["message"]
    assert [e["probes"] for e in events["readable"]] == [64, 64]
    for event in ("create", "create-unchecked"):  # a failed creation leaves nothing behind
        (result,) = events[event]
        assert result["ok"] is False and result["disk_full"] is True
        assert "cannot create the trace" in result["message"]
    assert "other.h5" not in " ".join(events["left"][0]["files"])
    assert not [f for f in events["left"][0]["files"] if f.endswith(".tmp")]
    assert [e["ok"] for e in events["again"]] == [True, True]
    (final,) = events["final"]
    assert final["steps"] == list(range(66))
    assert "run.h5.lock" not in final["files"]


def test_the_file_size_limit(tmp_path):
    """ulimit -f: writes past the limit fail with EFBIG (Python ignores SIGXFSZ)."""
    check(run_child("fsize", tmp_path), errno=27, reason="file-size limit (ulimit -f)")


def _mount_small_tmpfs(point: Path) -> None:
    point.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def test_a_full_file_system(tmp_path):
    """A 2 MiB tmpfs filled by another file: writes fail with ENOSPC."""
    point = tmp_path / "small"
    _mount_small_tmpfs(point)
    try:
        check(run_child("fill", point), errno=28, reason="no space left on the device")
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
