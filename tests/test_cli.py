"""The ``specdiag`` command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

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
