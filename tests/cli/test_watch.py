"""``specdiag watch`` against a real writer process: new probes appear as they are written,
Ctrl-C ends it cleanly, and it never stands in a writer's way."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from trace_writer_proc import OPERATORS, PLAYERS, TIMEOUT_S, WIDTH, Child, probe_record

from specdiag.trace import TraceWriter

INTERVAL = "0.1"
ROW = re.compile(r"^\s*(\d+)\s+(ok|unconverged|budget|nonfinite|error)\s")
FOOTER = re.compile(r"^\[\d\d:\d\d:\d\d\] checking every ")
#: Runs the command line with torch made unimportable: watching must never need it.
NO_TORCH = (
    "import sys; sys.modules['torch'] = None; from specdiag.cli import main; sys.exit(main())"
)


class Watch:
    """``specdiag watch`` in a subprocess, its output read view by view."""

    def __init__(self, *args: str, no_torch: bool = False) -> None:
        launcher = ["-c", NO_TORCH] if no_torch else ["-m", "specdiag"]
        self.proc = subprocess.Popen(
            [sys.executable, *launcher, "watch", *args, "--interval", INTERVAL],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("<eof>")

    def view(self) -> list[str]:
        """The lines of the next view printed (up to its footer)."""
        deadline = time.monotonic() + TIMEOUT_S
        lines: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"watch printed no whole view in {TIMEOUT_S} s") from None
            if line == "<eof>":
                raise AssertionError(f"watch exited: {self.interrupt()[1]}")
            if FOOTER.match(line):
                return lines
            if line:
                lines.append(line)

    def until(self, steps: list[int]) -> list[str]:
        """The first view whose table rows are the probes ``steps``."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            view = self.view()
            if shown(view) == steps:
                return view
        raise AssertionError(f"watch never showed steps {steps}")

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: the exit status and standard error."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=TIMEOUT_S)
        return self.proc.returncode, err


def shown(view: list[str]) -> list[int]:
    return [int(m.group(1)) for m in map(ROW.match, view) if m]


def writes(child: Child, n: int) -> None:
    for _ in range(n):
        child.send("write")
    child.expect(f"wrote {n}")


@pytest.fixture
def child_factory():
    children: list[Child] = []

    def start(path: Path, mode: str) -> Child:
        child = Child(str(path), mode, "stdin")
        children.append(child)
        child.expect("ready")
        return child

    yield start
    for child in children:
        child.kill()


def test_watch_shows_new_probes_as_they_are_written_and_ctrl_c_exits_0(tmp_path, child_factory):
    path = tmp_path / "run.h5"
    child = child_factory(path, "default")
    writes(child, 5)
    watch = Watch(str(path), "--rows", "3")
    first = watch.view()
    assert shown(first) == [2, 3, 4]  # the newest 3 of 5
    assert first[0].startswith(f"{path}: 5 probe(s)") and "Re λ > 0" in first[0]
    assert "(2 earlier probe(s) not shown" in "\n".join(first)
    assert first[1].split()[:2] == ["step", "status"] and "min Re λ" in first[1]
    assert "0 warning(s)" in first  # the notes below the summary's table come along
    for _ in range(2):
        child.send("write")
    child.expect("wrote 7")
    view = watch.until([4, 5, 6])
    assert view[0].startswith(f"{path}: 7 probe(s)")
    status, err = watch.interrupt()
    assert status == 0, err
    assert "Traceback" not in err and err == ""


def test_watch_waits_for_a_missing_trace_and_never_imports_torch(tmp_path, child_factory):
    path = tmp_path / "later.h5"
    watch = Watch(str(path), no_torch=True)
    assert watch.view() == [f"waiting for {path} to appear (a monitor creates it at its start)"]
    child = child_factory(path, "default")
    assert watch.view() == [f"{path}: no probes yet; waiting for the first"]
    writes(child, 2)
    watch.until([0, 1])
    status, err = watch.interrupt()
    assert status == 0 and "Traceback" not in err, err


def test_watch_swmr_follows_a_live_trace_without_blocking_a_resumed_writer(tmp_path, child_factory):
    path = tmp_path / "live.h5"
    child = child_factory(path, "swmr")
    writes(child, 2)
    plain = subprocess.run(
        [sys.executable, "-m", "specdiag", "watch", str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert plain.returncode == 2 and "--swmr" in plain.stderr, plain.stderr
    watch = Watch(str(path), "--swmr")
    watch.until([0, 1])
    child.send("write")
    watch.until([0, 1, 2])
    child.send("close")
    child.expect("closed")
    # the run is resumed: the watcher must have let go of the file, or this would fail
    with TraceWriter(
        path, operators=OPERATORS, players=PLAYERS, width=WIDTH, resume=True, swmr=True
    ) as writer:
        writer.write(probe_record(3))
        watch.until([0, 1, 2, 3])
    status, err = watch.interrupt()
    assert status == 0 and "Traceback" not in err, err


@pytest.mark.parametrize(
    "case, expected",
    [
        ("not-a-trace", "not an HDF5 file"),
        ("interval", "--interval must be a positive number of seconds"),
        ("rows", "--rows must be at least 1"),
    ],
)
def test_watch_refuses_bad_input_with_one_line_exit_2(tmp_path, case, expected):
    path = tmp_path / "t.h5"
    path.write_bytes(b"not a trace\n" * 10)
    args = {"interval": ["--interval", "0"], "rows": ["--rows", "0"]}.get(case, [])
    out = subprocess.run(
        [sys.executable, "-m", "specdiag", "watch", str(path), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specdiag: error: "), out.stderr
    assert expected in lines[0]
