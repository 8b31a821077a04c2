"""The ``specdiag`` command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import scipy
import torch

import specdiag
from specdiag import cli

SPECDIAG = shutil.which("specdiag")


def run(*args: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``specdiag ARGS`` (the console script) or ``python -m specdiag ARGS``."""
    if module or SPECDIAG is None:
        command = [sys.executable, "-m", "specdiag", *args]
    else:
        command = [SPECDIAG, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(SPECDIAG is None, reason="the specdiag console script is not on PATH")
def test_console_script_version() -> None:
    out = run("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"specdiag {specdiag.__version__}"


def test_module_version_matches_package() -> None:
    out = run("--version", module=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"specdiag {specdiag.__version__}"


@pytest.mark.parametrize("module", [False, True], ids=["script", "python-m"])
def test_help_names_program_and_info_command(module: bool) -> None:
    out = run("--help", module=module)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: specdiag ")
    assert "info" in out.stdout
    assert "--version" in out.stdout


def test_no_command_prints_help() -> None:
    out = run(module=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: specdiag ")


def test_info_reports_versions_threads_and_cuda() -> None:
    out = run("info")
    assert out.returncode == 0, out.stderr
    # "name<two or more spaces>value", one per line
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.stdout.strip().splitlines())
    assert fields["specdiag"] == specdiag.__version__
    assert fields["torch"] == torch.__version__
    assert fields["numpy"] == numpy.__version__
    assert fields["scipy"] == scipy.__version__
    assert int(fields["torch threads"]) >= 1
    assert fields["cuda available"] in ("yes", "no")
    assert fields["python"].startswith(".".join(map(str, sys.version_info[:3])))


@pytest.mark.parametrize(
    "args",
    [("frobnicate",), ("--no-such-option",), ("info", "--no-such-option")],
    ids=["unknown-command", "unknown-option", "unknown-info-option"],
)
def test_usage_errors_are_one_line_exit_2(args: tuple[str, ...]) -> None:
    out = run(*args, module=True)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("specdiag: error: ")
    assert args[-1] in lines[0]
    assert "Traceback" not in out.stderr


def test_errors_inside_a_command_are_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise specdiag.GameDefinitionError("player 'x' has no trainable parameters")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(handler=broken)
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err == "specdiag: error: player 'x' has no trainable parameters\n"


# ----------------------------------------------------------------- plot, compare, summary
def small_trace(path, steps=(0, 10, 20)):
    from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, probe_record

    from specdiag.trace import TraceWriter

    with TraceWriter(
        path,
        operators=OPERATORS,
        players=PLAYERS,
        width=WIDTH,
        config={"metadata": {"lr": 0.1}},
        resume=False,
    ) as w:
        for step in steps:
            w.write(probe_record(step))
    return path


def test_plot_and_compare_write_figures(tmp_path) -> None:
    a, b = small_trace(tmp_path / "a.h5"), small_trace(tmp_path / "b.h5", (0, 5))
    out = run("plot", str(a), "--format", "svg", module=True)
    assert out.returncode == 0, out.stderr
    written = [line for line in out.stdout.splitlines() if line]
    assert {p.rsplit("/", 1)[-1] for p in written} >= {"spectrum.svg", "spectrum.gif"}
    assert all(p.startswith(str(tmp_path / "a_plots")) for p in written)
    out = run(
        "compare", str(a), str(b), "--out", str(tmp_path / "cmp"), "--labels", "A", "B", module=True
    )
    assert out.returncode == 0, out.stderr
    assert any((tmp_path / "cmp").iterdir())


def test_plot_script_is_the_plot_command(tmp_path) -> None:
    trace = small_trace(tmp_path / "a.h5")
    out = subprocess.run(
        [
            sys.executable,
            "scripts/plot_spectra.py",
            str(trace),
            "--out",
            str(tmp_path / "figs"),
            "--no-gif",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "figs" / "spectrum.png").exists()
    assert not (tmp_path / "figs" / "spectrum.gif").exists()


def test_reading_commands_never_import_torch(tmp_path) -> None:
    trace = small_trace(tmp_path / "a.h5")
    code = (
        "import sys; from specdiag.cli import main; "
        f"assert main(['summary', {str(trace)!r}]) == 0; "
        f"assert main(['plot', {str(trace)!r}, '--out', {str(tmp_path / 'p')!r}]) == 0; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "case", ["missing", "not-a-trace", "empty", "operator", "exists", "labels"]
)
def test_bad_input_exits_2_with_one_line(tmp_path, case) -> None:
    from trace_writer_proc import OPERATORS, PLAYERS, WIDTH

    from specdiag.trace import TraceWriter

    trace = tmp_path / "t.h5"
    args = ["plot", str(trace)]
    if case == "not-a-trace":
        trace.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    elif case == "empty":
        TraceWriter(trace, operators=OPERATORS, players=PLAYERS, width=WIDTH).close()
    elif case in ("operator", "exists", "labels"):
        small_trace(trace)
    if case == "operator":
        args += ["--operator", "critic"]
    if case == "exists":
        (tmp_path / "t_plots").mkdir()
        (tmp_path / "t_plots" / "spectrum.png").write_bytes(b"mine")
    if case == "labels":
        args = ["compare", str(trace), str(trace), "--labels", "only-one"]
    out = run(*args, module=True)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specdiag: error: "), out.stderr
    expected = {
        "missing": "no such file",
        "not-a-trace": str(trace),
        "empty": "no probes",
        "operator": "critic",
        "exists": "--force",
        "labels": "--labels",
    }[case]
    assert expected.lower() in lines[0].lower(), lines[0]
    if case == "exists":
        assert (tmp_path / "t_plots" / "spectrum.png").read_bytes() == b"mine"
