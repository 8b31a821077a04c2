"""defer=True: the monitor saves snapshots; probe_snapshots computes the in-loop trace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag import toys
from specdiag.monitor.offline import probe_snapshots
from specdiag.monitor.snapshots import read_snapshots


def train(
    path, steps: int, **monitor
) -> tuple[list[torch.Tensor], toys.MoGGAN, sd.SpectrumMonitor]:
    gan = toys.mog_gan(hidden=16, depth=2, seed=0)
    batch = gan.sample(128, torch.Generator().manual_seed(1))
    with sd.SpectrumMonitor(
        gan.game, path, every=5, k=4, probe_batch=batch, overwrite=True, **monitor
    ) as mon:
        gan.train(steps, lr=1e-3, seed=2, callback=lambda step, b: mon.step(step))
    return [p.detach().clone() for p in gan.game.parameters()], gan, mon


@pytest.mark.parametrize("warm_start", [False, True], ids=["cold", "warm"])
def test_deferred_then_probed_equals_the_in_loop_trace(tmp_path, warm_start):
    loop_params, _, _ = train(tmp_path / "loop.h5", 16, warm_start=warm_start)
    deferred_params, gan, mon = train(tmp_path / "run.h5", 16, defer=True)
    # training is the same in both modes, and the deferred monitor wrote no trace
    for in_loop, deferred in zip(loop_params, deferred_params):
        assert torch.equal(in_loop, deferred)
    assert not (tmp_path / "run.h5").exists()
    assert mon.snapshot_dir is not None  # defer=True
    assert [s.step for s in read_snapshots(mon.snapshot_dir)] == [0, 5, 10, 15]
    probe_snapshots(
        gan.game, mon.snapshot_dir, tmp_path / "run.h5", k=4, warm_start=warm_start, progress=False
    )
    loop, late = sd.open_trace(tmp_path / "loop.h5"), sd.open_trace(tmp_path / "run.h5")
    assert late.probe_steps().tolist() == loop.probe_steps().tolist() == [0, 5, 10, 15]
    assert late.operators == loop.operators
    for op in loop.operators:
        a, b = loop.eigenvalues(op), late.eigenvalues(op)
        scale = np.nanmax(np.abs(a), axis=1, keepdims=True)
        assert np.allclose(a, b, rtol=0, atol=1e-6 * np.nanmax(scale), equal_nan=True), op
        assert loop.n_matvec(op).tolist() == late.n_matvec(op).tolist()


def test_defer_needs_a_seed(tmp_path):
    gan = toys.mog_gan(hidden=8, depth=2, seed=0)
    with pytest.raises(ValueError, match="integer seed"):
        sd.SpectrumMonitor(gan.game, tmp_path / "run.h5", defer=True, seed=None)


def test_a_snapshot_that_cannot_be_written_is_warned_and_training_goes_on(tmp_path, monkeypatch):
    import specdiag.monitor.snapshots as snapshots

    plain, _, _ = train(tmp_path / "plain.h5", 21, defer=True)
    write = snapshots._write_atomic

    def full_disk(path, data):  # on the writer's thread, after save() returned
        if path.name.startswith("snapshot-0000000010"):
            raise OSError(28, "No space left on device")
        write(path, data)

    monkeypatch.setattr(snapshots, "_write_atomic", full_disk)
    with pytest.warns(sd.ProbeWarning, match="snapshot at step 10 was not saved"):
        params, _, mon = train(tmp_path / "run.h5", 21, defer=True)
    assert mon.snapshot_dir is not None
    assert [s.step for s in read_snapshots(mon.snapshot_dir)] == [0, 5, 15, 20]
    assert all(torch.equal(a, b) for a, b in zip(params, plain))  # training went on the same
    # with on_error="raise" the failure is raised at the next snapshot, and the monitor closes
    with pytest.raises(OSError, match="No space left"):
        train(tmp_path / "raise.h5", 21, defer=True, on_error="raise")
    # a failure of the last write is reported when the monitor closes
    with pytest.warns(sd.ProbeWarning, match="snapshot at step 10 was not saved"):
        train(tmp_path / "last.h5", 11, defer=True)
