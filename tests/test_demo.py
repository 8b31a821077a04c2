"""``specdiag demo``: a short run end to end, its outputs, and its refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from specdiag.demo import TRACE_LABELS, DemoConfig, mode_coverage
from specdiag.trace import open_trace

ARGS = ("--steps", "30", "--every", "10", "--k", "4", "--no-progress")


def specdiag(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "specdiag", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo") / "out"
    return out, specdiag("demo", "--out", out, *ARGS)


def test_demo_writes_traces_figures_and_summary(demo_dir):
    out, run = demo_dir
    assert run.returncode == 0, run.stderr
    for name, run_name in [
        ("simultaneous", "simultaneous"),
        ("consensus", "consensus"),
        ("consensus-game", "consensus"),
    ]:
        tr = open_trace(out / f"{name}.h5")
        # the default budget: the first probe when due, the last step always, others
        # when they fit in half the training time (never before they are due)
        steps = tr.probe_steps().tolist()
        assert steps[0] == 0 and steps[-1] == 29 and steps == sorted(set(steps))
        assert tr.meta["config"]["budget"] == DemoConfig().budget == 0.5
        expected = (
            ("jacobian", "helmholtz")
            if name == "consensus-game"
            else ("jacobian", "generator", "discriminator", "update", "helmholtz")
        )
        assert tr.operators == expected
        if name != "consensus-game":  # RMSProp's effective step: preconditioned GD
            rule = tr.meta["config"]["update"]
            assert rule["method"] == "gd" and rule["preconditioner"] == "callable"
            assert (tr.status("update") == "ok").all()
        assert tr.meta["config"]["metadata"]["run"] == run_name
        assert (tr.status("jacobian") == "ok").all()
        figures = sorted(p.name for p in (out / name).iterdir())
        assert {"spectrum.png", "spectrum.gif", "dynamics.png"} <= set(figures), figures
    assert any((out / "compare").iterdir())
    assert (out / "samples.png").stat().st_size > 0
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert summary in run.stdout
    header = summary.splitlines()[5]
    assert [label in header for label in TRACE_LABELS.values()] == [True] * 3
    assert "modes covered" in summary and "ρ(∂T)" in summary
    assert "within 50% of the training time" in summary


def test_consensus_run_measures_both_fields(demo_dir):
    """Same seed, same start: the probe at step 0 (after one update) sees nearly the same
    J in both runs, and the consensus field's Jacobian J + γ(JᵀJ + ...) has a larger top
    eigenvalue (JᵀJ adds |λ|² along the top directions)."""
    out, _ = demo_dir
    plain = open_trace(out / "simultaneous.h5")
    game = open_trace(out / "consensus-game.h5")
    consensus = open_trace(out / "consensus.h5")
    assert consensus.meta["config"]["metadata"]["consensus"] == DemoConfig().consensus
    assert plain.meta["config"]["metadata"]["consensus"] == 0
    r_plain = plain.scalars("jacobian")["spectral_radius"][0]
    assert game.scalars("jacobian")["spectral_radius"][0] == pytest.approx(r_plain, rel=0.1)
    r_cons = consensus.scalars("jacobian")["spectral_radius"][0]
    assert r_cons > r_plain
    # the players' Hessians at step 0 differ too (the consensus term is in both losses)
    assert consensus.scalars("discriminator")["max"][0] != plain.scalars("discriminator")["max"][0]


def test_demo_refuses_to_overwrite_without_force(demo_dir):
    out, first = demo_dir
    assert first.returncode == 0, first.stderr
    before = (out / "summary.txt").stat().st_mtime_ns
    again = specdiag("demo", "--out", out, *ARGS)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "--force" in again.stderr
    assert (out / "summary.txt").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "args, message",
    [
        (("--steps", "0"), "steps must be a positive integer"),
        (("--lr", "-1"), "lr must be a positive number"),
        (("--optimizer", "lbfgs"), "invalid choice"),
        (("--budget", "2"), "must be in (0, 1]"),
        (("--budget", "often"), "not a fraction or 'none'"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, args, message):
    run = specdiag("demo", "--out", tmp_path / "x", *args)
    assert run.returncode == 2
    assert message in run.stderr and run.stderr.strip().count("\n") == 0, run.stderr
    assert not (tmp_path / "x").exists()


def test_mode_coverage_counts_modes_and_quality():
    centres = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    rng = np.random.default_rng(0)
    two_modes = np.concatenate(
        [
            centres[0] + 0.01 * rng.standard_normal((50, 2)),
            centres[1] + 0.01 * rng.standard_normal((50, 2)),
        ]
    )
    c = mode_coverage(two_modes, centres, std=0.01)
    assert (c["modes"], c["of"]) == (2, 4)
    assert 0.95 <= c["high_quality"] <= 1.0
    far = np.full((10, 2), 5.0)
    assert mode_coverage(far, centres, std=0.01) == {"modes": 0, "of": 4, "high_quality": 0.0}


def test_demo_refuses_a_directory_holding_earlier_figures(tmp_path):
    mine = tmp_path / "out" / "compare" / "compare.png"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"mine")
    run = specdiag("demo", "--out", tmp_path / "out", *ARGS)
    assert run.returncode == 2 and "compare exists; pass --force" in run.stderr, run.stderr
    assert mine.read_bytes() == b"mine"
    assert not (tmp_path / "out" / "simultaneous.h5").exists()
