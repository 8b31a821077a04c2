"""``specdiag path-angle``: the path-angle between two snapshots, from the command line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import torch

import specdiag as sd
from specdiag import toys
from specdiag.monitor.offline import path_angle_between
from specdiag.monitor.snapshots import read_snapshots

GAME = textwrap.dedent(
    """
    from specdiag import toys

    def game():
        return toys.mog_gan(hidden=8, depth=2, seed=0).game
    """
)


def snapshots(tmp_path):
    gan = toys.mog_gan(hidden=8, depth=2, seed=0)
    batch = gan.sample(64, torch.Generator().manual_seed(1))
    with sd.SpectrumMonitor(
        gan.game, tmp_path / "run.h5", every=10, k=2, probe_batch=batch, defer=True
    ) as mon:
        gan.train(21, lr=1e-2, seed=3, callback=lambda step, b: mon.step(step))
    assert mon.snapshot_dir is not None  # defer=True
    return read_snapshots(mon.snapshot_dir), gan


def test_path_angle_between_snapshots_equals_path_angle_of_their_states(tmp_path):
    shots, gan = snapshots(tmp_path)
    start, end = shots[0], shots[-1]
    direct = sd.path_angle(
        gan.game, start.state().players, end.state().players, start.batch(), seed=start.seed
    )
    before = [p.detach().clone() for p in gan.game.parameters()]
    between = path_angle_between(gan.game, start.path, end.path)
    assert np.array_equal(direct.cosine, between.cosine)
    assert np.array_equal(direct.norm2, between.norm2)
    assert all(torch.equal(a, b) for a, b in zip(before, gan.game.parameters()))


def test_the_command_writes_the_figure_and_the_table(tmp_path):
    shots, _ = snapshots(tmp_path)
    (tmp_path / "pa_game.py").write_text(GAME)
    command = [
        sys.executable,
        "-m",
        "specdiag",
        "path-angle",
        str(shots[0].path),
        str(shots[-1].path),
        "--game",
        f"{tmp_path / 'pa_game.py'}:game",
        "--out",
        str(tmp_path / "pa"),
        "--points",
        "12",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table = np.loadtxt(tmp_path / "pa" / "path_angle.csv", delimiter=",", skiprows=1)
    assert table.shape == (12, 7)  # alpha, cosine, norm2, and both players' parts
    assert np.allclose(table[:, 0], np.linspace(-0.1, 1.1, 12))
    assert (tmp_path / "pa" / "path_angle.png").stat().st_size > 1000
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
