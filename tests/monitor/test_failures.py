"""A failure stays inside the probe: the monitor records it, warns once per cause, and
training goes on."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag import toys
from specdiag.monitor.batches import to_device


def gan_and_batch():
    gan = toys.mog_gan(hidden=8, depth=2, seed=0)
    return gan, gan.sample(64, torch.Generator().manual_seed(1))


def test_a_probe_batch_callable_that_raises_is_a_failed_probe_not_a_crash(tmp_path):
    gan, batch = gan_and_batch()

    def source(step):
        if step == 2:
            raise KeyError("no batch for step 2")
        return batch

    with pytest.warns(sd.ProbeWarning, match="probe batch raised KeyError"):
        with sd.SpectrumMonitor(
            gan.game, tmp_path / "run.h5", every=2, k=2, probe_batch=source, resume=False
        ) as mon:
            records = [r for step in range(5) for r in mon.step(step)]
            assert not mon.closed
    assert [r.status for r in records] == ["ok", "error", "ok"]
    trace = sd.open_trace(tmp_path / "run.h5")
    assert trace.status("jacobian").tolist() == ["ok", "error", "ok"]
    assert "KeyError" in trace.messages("jacobian")[1]


def test_a_closure_that_steps_the_optimiser_is_recorded_and_training_goes_on(tmp_path):
    gan, batch = gan_and_batch()
    opt = torch.optim.SGD(gan.game.parameters(), lr=0.0)

    def stepping(b):
        out = gan.losses(b)
        out["discriminator"].backward()
        opt.step()
        return out

    game = sd.Game({"generator": gan.generator, "discriminator": gan.discriminator}, stepping)
    with pytest.warns(sd.ProbeWarning, match="recompute the losses"):
        with sd.SpectrumMonitor(
            game, tmp_path / "run.h5", every=1, k=2, probe_batch=batch, resume=False
        ) as mon:
            records = [r for step in range(3) for r in mon.step(step)]
    assert [r.status for r in records] == ["error"] * 3
    assert not any(p.grad is not None for p in game.parameters())


def test_warnings_come_once_per_cause_and_are_counted(tmp_path):
    gan, batch = gan_and_batch()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sd.SpectrumMonitor(
            gan.game,
            tmp_path / "run.h5",
            every=1,
            k=3,
            probe_batch=batch,
            max_matvecs=3,
            resume=False,
        ) as mon:
            for step in range(4):
                mon.step(step)
    said = [w for w in caught if issubclass(w.category, sd.ProbeWarning)]
    assert len(said) == 1 and "jacobian: budget" in str(said[0].message)
    assert mon.warning_counts["jacobian:budget"] == 4


def test_loggers_that_raise_are_warned_about_once(tmp_path):
    gan, batch = gan_and_batch()

    class Broken:
        def add_scalar(self, *args):
            raise OSError("disk gone")

    seen = []
    with pytest.warns(sd.ProbeWarning) as said:
        with sd.SpectrumMonitor(
            gan.game,
            tmp_path / "run.h5",
            every=1,
            k=2,
            probe_batch=batch,
            summary_writer=Broken(),
            on_probe=lambda r: 1 / 0,
            resume=False,
        ) as mon:
            for step in range(3):
                mon.step(step)
                assert mon.last is not None
                seen.append(mon.last.step)
    texts = [str(w.message) for w in said]
    assert sum("summary_writer raised OSError" in t for t in texts) == 1
    assert sum("on_probe raised ZeroDivisionError" in t for t in texts) == 1
    assert seen == [0, 1, 2] and len(sd.open_trace(tmp_path / "run.h5")) == 3


def test_on_error_raise_still_raises(tmp_path):
    gan, batch = gan_and_batch()

    def source(step):
        raise KeyError("boom")

    mon = sd.SpectrumMonitor(
        gan.game,
        tmp_path / "run.h5",
        every=1,
        k=2,
        probe_batch=source,
        on_error="raise",
        resume=False,
    )
    with pytest.raises(KeyError, match="boom"):
        mon.step(0)
    assert mon.closed


def test_bad_steps_and_schedules_say_what_to_do(tmp_path):
    game = toys.dirac_gan().game
    with sd.SpectrumMonitor(game, tmp_path / "run.h5", every=2, k=2, resume=False) as mon:
        with pytest.raises(TypeError, match="step \\(the training step\\) must be an integer"):
            mon.step(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="never probe"):
        sd.SpectrumMonitor(game, tmp_path / "other.h5", every=[])


def test_batches_keep_their_structure_on_the_way_to_the_device():
    batch = {"real": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(3), 7]), "name": "x"}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["real"] is batch["real"]  # already there: not copied
    assert isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)
    assert moved["pair"][1][1] == 7 and moved["name"] == "x"
    assert np.array_equal(moved["pair"][1][0].numpy(), np.ones(3))


def test_a_full_disk_keeps_probes_in_memory_and_writes_them_when_space_returns(tmp_path):
    from specdiag.registry import flag_names
    from specdiag.trace import TraceWriteError, TraceWriter

    gan, batch = gan_and_batch()
    full = {"on": False}
    original = TraceWriter.write

    def write(self, record):
        if full["on"]:
            raise TraceWriteError("no space left on device", disk_full=True, step=record.step)
        return original(self, record)

    path = tmp_path / "run.h5"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TraceWriter, "write", write)
        with sd.SpectrumMonitor(
            gan.game, path, every=1, k=2, probe_batch=batch, resume=False
        ) as mon:
            mon.step(0)
            full["on"] = True
            with pytest.warns(sd.ProbeWarning, match="disk is full.*1 probe"):
                mon.step(1)
            mon.step(2)  # still full: no second warning for the same outage
            full["on"] = False
            mon.step(3)  # space returned: 1, 2 and 3 are written, in order
    trace = sd.open_trace(path)
    assert trace.probe_steps().tolist() == [0, 1, 2, 3]
    flags = [flag_names(f) for f in trace.probes()["flags"]]
    assert flags == [[], ["unwritten"], ["unwritten"], []]
