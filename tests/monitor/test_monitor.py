"""SpectrumMonitor: probing a training run without changing it, and what the trace holds."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import specdiag as sd
from specdiag import toys
from specdiag.errors import ProbeWarning, TraceError
from specdiag.monitor import SpectrumMonitor
from specdiag.monitor.schedules import AtSteps, LogSpaced
from specdiag.trace import open_trace

LATENT, BATCH = 4, 32


class GAN:
    """Two small MLPs with BatchNorm, trained the usual way: a discriminator step on
    detached samples, then a generator step, Adam, non-saturating loss, batches and
    noise from the global random stream, gradients zeroed in place (so ``.grad`` is
    set whenever the monitor runs)."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.G = nn.Sequential(nn.Linear(LATENT, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        self.D = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=1e-3, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=1e-3, betas=(0.5, 0.999))
        angles = torch.arange(4) * (math.pi / 2)
        self.centres = torch.stack([angles.cos(), angles.sin()], dim=1)
        self.poisoned = False
        self.game = sd.Game({"generator": self.G, "discriminator": self.D}, self.losses)

    def losses(self, batch: dict) -> dict:
        """The game's losses (nothing detached); draws z itself when the batch has none."""
        z = batch["z"] if "z" in batch else torch.randn(BATCH, LATENT)
        d_fake = self.D(self.G(z))
        l_d = F.softplus(-self.D(batch["real"])).mean() + F.softplus(d_fake).mean()
        if self.poisoned:
            l_d = l_d * float("nan")
        return {"generator": F.softplus(-d_fake).mean(), "discriminator": l_d}

    def sample(self) -> dict:
        modes = torch.randint(len(self.centres), (BATCH,))
        return {
            "real": self.centres[modes] + 0.05 * torch.randn(BATCH, 2),
            "z": torch.randn(BATCH, LATENT),
        }

    def train(self, steps: int, monitor: SpectrumMonitor | None = None, before_step=None) -> None:
        for step in range(steps):
            batch = self.sample()
            self.opt_d.zero_grad(set_to_none=False)
            fake = self.G(batch["z"])
            (
                F.softplus(-self.D(batch["real"])).mean() + F.softplus(self.D(fake.detach())).mean()
            ).backward()
            self.opt_d.step()
            self.opt_g.zero_grad(set_to_none=False)
            F.softplus(-self.D(fake)).mean().backward()
            self.opt_g.step()
            if before_step is not None:
                before_step(step)
            if monitor is not None:
                monitor.step(step, batch)

    def state(self) -> dict[str, torch.Tensor]:
        """Parameters, buffers, gradients, optimiser state and the random stream."""
        out = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        out.update({f"D.{k}": v for k, v in self.D.state_dict().items()})
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            for index, entry in opt.state_dict()["state"].items():
                out.update({f"{name}.{index}.{k}": torch.as_tensor(v) for k, v in entry.items()})
        for name, m in (("G", self.G), ("D", self.D)):
            out.update({f"{name}.{k}.grad": p.grad for k, p in m.named_parameters()})
        out["rng"] = torch.get_rng_state()
        return {k: v.detach().clone() for k, v in out.items()}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(
            a[key].reshape(-1).view(torch.uint8), b[key].reshape(-1).view(torch.uint8)
        ), key


def dirac_game():
    return toys.dirac_gan(loss="standard", theta=0.3, psi=-0.2, r1=0.1).game


# ---------------------------------------------------------------------- no effect on training
@pytest.mark.parametrize("source", ["current", "fixed batch, noise in the closure"])
def test_monitored_run_is_bit_identical_to_the_plain_run(tmp_path, source):
    plain = GAN()
    plain.train(30)
    expected = plain.state()

    gan = GAN()
    fixed = {"real": torch.randn(BATCH, 2, generator=torch.Generator().manual_seed(9))}
    probe_batch = "current" if source == "current" else fixed
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbeWarning)
        with SpectrumMonitor(
            gan.game, tmp_path / "run.h5", every=10, k=3, probe_batch=probe_batch
        ) as mon:
            gan.train(30, mon)
    assert_bitwise_equal(expected, gan.state())
    trace = open_trace(tmp_path / "run.h5")
    assert trace.operators == ("jacobian", "generator", "discriminator")
    for op in trace.operators:
        assert trace.steps(op).tolist() == [0, 10, 20]
        assert (trace.status(op) == "ok").all()
        assert np.isfinite(trace.eigenvalues(op)[:, :3]).all()
    assert trace.meta["config"]["probe_batch"] == ("current" if source == "current" else "fixed")


def test_nan_mid_training_is_recorded_and_training_goes_on(tmp_path):
    gan = GAN()

    def poison(step: int) -> None:
        gan.poisoned = step == 10  # only the probe's closure sees it

    with pytest.warns(ProbeWarning) as caught:
        with SpectrumMonitor(gan.game, tmp_path / "run.h5", every=10, k=3) as mon:
            gan.train(30, mon, before_step=poison)
            assert mon.last is not None
            assert mon.last.step == 20 and mon.last.status == "ok"
    problems = [w for w in caught if issubclass(w.category, ProbeWarning)]
    assert len(problems) == 1 and "step 10" in str(problems[0].message)
    assert "nonfinite" in str(problems[0].message)
    trace = open_trace(tmp_path / "run.h5")
    for op in trace.operators:
        assert trace.status(op).tolist() == ["ok", "nonfinite", "ok"]
        assert np.isnan(trace.eigenvalues(op)[1]).all()
        assert "discriminator" in trace.messages(op)[1]
    assert (
        np.isnan(trace.losses()["generator"][1])
        and np.isfinite(trace.losses()["generator"][[0, 2]]).all()
    )


# ---------------------------------------------------------------------- schedules
@pytest.mark.parametrize(
    "every, expected",
    [
        (7, [0, 7, 14, 21, 28]),
        ([29, 3, 5, 3], [3, 5, 29]),
        (LogSpaced(per_decade=2), [0, 1, 3, 10]),
        (LogSpaced(per_decade=4, start=5, until=20), [5, 6, 7, 8, 11, 15]),
    ],
)
def test_trace_holds_the_scheduled_steps(tmp_path, every, expected):
    with SpectrumMonitor(dirac_game(), tmp_path / "run.h5", every=every, k=2) as mon:
        due = [s for s in range(30) if mon.due(s)]
        probed = [s for s in range(30) if mon.step(s)]
    assert due == probed == expected
    trace = open_trace(tmp_path / "run.h5")
    assert trace.probe_steps().tolist() == expected
    for op in trace.operators:
        assert trace.steps(op).tolist() == expected


def test_force_probes_off_schedule(tmp_path):
    with SpectrumMonitor(dirac_game(), tmp_path / "run.h5", every=AtSteps([]), k=2) as mon:
        assert mon.step(4) == []
        (record,) = mon.step(4, force=True)
    assert record.step == 4 and open_trace(tmp_path / "run.h5").probe_steps().tolist() == [4]


def test_a_step_that_is_not_due_costs_microseconds(tmp_path):
    with SpectrumMonitor(dirac_game(), tmp_path / "run.h5", every=10**9, k=2) as mon:
        step = mon.step
        start = time.perf_counter()
        for s in range(1, 100_001):
            step(s)
        per_call = (time.perf_counter() - start) / 100_000
    assert per_call < 50e-6, f"{per_call * 1e6:.2f} µs per call"


# ---------------------------------------------------------------------- probe batches
def test_several_probe_batches_are_stored_with_their_index(tmp_path):
    gan = GAN()
    gen = torch.Generator().manual_seed(3)
    batches = [
        {
            "real": torch.randn(BATCH, 2, generator=gen) + i,
            "z": torch.randn(BATCH, LATENT, generator=gen),
        }
        for i in range(3)
    ]
    with SpectrumMonitor(
        gan.game, tmp_path / "run.h5", every=10, k=2, operators=["jacobian"], probe_batches=batches
    ) as mon:
        records = mon.step(0)
        assert [r.batch_index for r in records] == [0, 1, 2] and mon.last is records[-1]
        mon.step(10, batch="ignored: fixed batches are probed")
    trace = open_trace(tmp_path / "run.h5")
    assert trace.steps("jacobian").tolist() == [0, 0, 0, 10, 10, 10]
    assert trace.batch_index("jacobian").tolist() == [0, 1, 2, 0, 1, 2]
    eig = trace.eigenvalues("jacobian")
    assert not np.allclose(eig[0, :2], eig[1, :2])
    np.testing.assert_array_equal(eig[3:], eig[:3])  # the same weights, cold solves
    assert records[1]["jacobian"].eigenvalues[:2] == pytest.approx(eig[1, :2])


def test_probe_batch_sources(tmp_path):
    gan = GAN()
    fixed = gan.sample()
    seen = []

    def source(step):
        seen.append(step)
        return fixed

    kwargs: dict[str, Any] = dict(every=1, k=2, operators=["jacobian"])
    with SpectrumMonitor(gan.game, tmp_path / "a.h5", probe_batch=source, **kwargs) as mon:
        by_callable = mon.step(5)[0]
    with SpectrumMonitor(gan.game, tmp_path / "b.h5", probe_batch=fixed, **kwargs) as mon:
        by_fixed = mon.step(5, gan.sample())[0]
    with SpectrumMonitor(
        gan.game, tmp_path / "c.h5", **kwargs
    ) as mon:  # default: the current batch
        by_current = mon.step(5, fixed)[0]
    assert seen == [5]
    assert np.array_equal(by_callable["jacobian"].eigenvalues, by_fixed["jacobian"].eigenvalues)
    assert np.array_equal(by_current["jacobian"].eigenvalues, by_fixed["jacobian"].eigenvalues)
    with pytest.raises(ValueError, match="not both"):
        SpectrumMonitor(gan.game, tmp_path / "d.h5", probe_batch=fixed, probe_batches=[fixed])
    with pytest.raises(ValueError, match="'current'"):
        SpectrumMonitor(gan.game, tmp_path / "d.h5", probe_batch="latest")


# ---------------------------------------------------------------------- budget
def test_budget_is_recorded(tmp_path):
    gan = GAN()
    with pytest.warns(ProbeWarning, match="budget"):
        with SpectrumMonitor(gan.game, tmp_path / "run.h5", every=1, k=3, max_matvecs=5) as mon:
            (record,) = mon.step(0, gan.sample())
    assert record.status == "budget"
    trace = open_trace(tmp_path / "run.h5")
    for op in trace.operators:
        assert trace.status(op).tolist() == ["budget"]
        assert trace.n_matvec(op)[0] <= 5
        assert "max_matvecs = 5" in trace.messages(op)[0]


# ---------------------------------------------------------------------- lifetime
def test_close_is_idempotent_and_a_closed_monitor_refuses_to_probe(tmp_path):
    mon = SpectrumMonitor(dirac_game(), tmp_path / "run.h5", every=1, k=2)
    mon.step(0)
    mon.close()
    mon.close()
    assert mon.closed and "closed" in repr(mon)
    with pytest.raises(RuntimeError, match="closed"):
        mon.step(1)
    assert len(open_trace(tmp_path / "run.h5")) == 1


@pytest.mark.parametrize("swmr", [False, True], ids=["default", "swmr"])
def test_an_exception_in_the_with_block_closes_the_trace(tmp_path, swmr):
    path = tmp_path / "run.h5"
    with pytest.raises(KeyError, match="boom"):
        with SpectrumMonitor(dirac_game(), path, every=1, k=2, swmr=swmr) as mon:
            mon.step(0)
            mon.step(1)
            raise KeyError("boom")
    assert mon.closed
    with h5py.File(path, "r+"):  # no handle left open, no lock held
        pass
    assert open_trace(path).probe_steps().tolist() == [0, 1]


@pytest.mark.parametrize("swmr", [False, True], ids=["default", "swmr"])
def test_a_probe_that_raises_closes_the_trace(tmp_path, swmr):
    gan = GAN()
    path = tmp_path / "run.h5"
    mon = SpectrumMonitor(gan.game, path, every=1, k=2, on_error="raise", swmr=swmr)
    mon.step(0, gan.sample())
    gan.poisoned = True
    with pytest.raises(sd.NonFiniteError):
        mon.step(1, gan.sample())
    assert mon.closed
    with h5py.File(path, "r+"):
        pass
    trace = open_trace(path)
    assert trace.probe_steps().tolist() == [0] and (trace.status("jacobian") == "ok").all()


def test_resume_replaces_probes_at_and_after_the_restart(tmp_path):
    path = tmp_path / "run.h5"
    game = dirac_game()
    with SpectrumMonitor(game, path, every=10, k=2) as mon:
        for s in range(40):
            mon.step(s)
    # re-running onto the trace says what it holds and offers the choices
    with pytest.raises(TraceError, match=r"4 probe.*steps 0.*30.*resume=True.*overwrite=True"):
        SpectrumMonitor(game, path, every=10, k=2)
    with pytest.warns(ProbeWarning, match=r"resumed at step 20, replacing the 2 probe"):
        with SpectrumMonitor(game, path, every=10, k=2, resume=True) as mon:  # from step 20
            for s in range(20, 50):
                mon.step(s)
    assert open_trace(path).probe_steps().tolist() == [0, 10, 20, 30, 40]
    with SpectrumMonitor(game, path, every=10, k=2, overwrite=True) as mon:
        mon.step(0)
    assert open_trace(path).probe_steps().tolist() == [0]
    with SpectrumMonitor(game, path, every=10, k=2, resume=False) as mon:  # the same
        mon.step(0)
    assert open_trace(path).probe_steps().tolist() == [0]
    with pytest.raises(TraceError, match="overwrite=True"):
        SpectrumMonitor(game, path, every=10, k=3, resume=True)  # another width


# ---------------------------------------------------------------------- summary writer
class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value: float, global_step: int) -> None:
        self.calls.append((tag, value, global_step))


def test_summary_writer_receives_the_scalars(tmp_path):
    writer = Recorder()
    with SpectrumMonitor(
        dirac_game(), tmp_path / "run.h5", every=5, k=2, summary_writer=writer
    ) as mon:
        records = [r for s in range(10) for r in mon.step(s)]
    tags = {tag for tag, _, _ in writer.calls}
    assert tags == {
        "specdiag/jacobian/min_real",
        "specdiag/jacobian/max_imag",
        "specdiag/jacobian/max_imag_over_real",
        "specdiag/jacobian/spectral_radius",
        "specdiag/generator/max",
        "specdiag/generator/min",
        "specdiag/discriminator/max",
        "specdiag/discriminator/min",
    }
    assert sorted({s for _, _, s in writer.calls}) == [0, 5]
    got = {(tag, s): v for tag, v, s in writer.calls}
    assert (
        got["specdiag/jacobian/spectral_radius", 5]
        == records[1]["jacobian"].scalars["spectral_radius"]
    )
    with SpectrumMonitor(
        dirac_game(),
        tmp_path / "b.h5",
        every=1,
        k=2,
        summary_writer=writer,
        probe_batches=[None, None],
    ) as mon:
        writer.calls.clear()
        mon.step(0)
    assert {tag for tag, _, _ in writer.calls} >= {
        "specdiag/jacobian/min_real/batch0",
        "specdiag/jacobian/min_real/batch1",
    }
    with pytest.raises(TypeError, match="add_scalar"):
        SpectrumMonitor(dirac_game(), tmp_path / "c.h5", summary_writer=object())


def test_bad_settings_are_refused_before_training(tmp_path):
    game = dirac_game()
    with pytest.raises(ValueError, match="unknown operator"):
        SpectrumMonitor(game, tmp_path / "a.h5", operators=["critic"])
    with pytest.raises(TypeError, match="every"):
        SpectrumMonitor(game, tmp_path / "a.h5", every=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        SpectrumMonitor(game, tmp_path / "a.h5", on_error="loud")
    with pytest.raises(TypeError, match="specdiag.Game"):
        SpectrumMonitor(object(), tmp_path / "a.h5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="metadata must hold JSON"):
        SpectrumMonitor(game, tmp_path / "a.h5", metadata={"optimizer": object()})


def test_metadata_is_kept_in_the_trace(tmp_path):
    info = {"optimizer": "adam", "lr": 2e-4, "betas": [0.5, 0.999]}
    with SpectrumMonitor(dirac_game(), tmp_path / "run.h5", k=2, metadata=info) as mon:
        mon.step(0)
    assert open_trace(tmp_path / "run.h5").meta["config"]["metadata"] == info


def test_a_trace_that_cannot_be_written_is_a_warning_unless_raise(tmp_path):
    path = tmp_path / "run.h5"
    mon = SpectrumMonitor(dirac_game(), path, every=1, k=2)
    mon.step(0)
    path.unlink()  # the disk went away
    with pytest.warns(ProbeWarning, match="1 probe\\(s\\) not written yet"):
        (record,) = mon.step(1)
    assert record.ok and mon.last is record and not mon.closed
    with pytest.warns(ProbeWarning, match="1 probe\\(s\\) could not be written"):
        mon.close()
    mon = SpectrumMonitor(dirac_game(), path, every=1, k=2, on_error="raise")
    path.unlink()
    with pytest.raises(TraceError, match="no such file"):
        mon.step(0)
    assert mon.closed


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_of_a_monitored_training_run_keeps_every_completed_probe(tmp_path):
    """kill -9 mid-run: the trace opens and holds every probe reported written."""
    path = tmp_path / "killed.h5"
    script = Path(__file__).resolve().parents[1] / "monitored_training_proc.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True
    )
    reported: list[int] = []
    try:
        assert proc.stdout is not None  # stdout=PIPE
        deadline = time.monotonic() + 120
        while len(reported) < 4 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("probed "):
                reported.append(int(line.split()[1]))
        assert len(reported) >= 4, f"the training process reported only {reported}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sd.open_trace(path) as tr:
        steps = list(tr.steps("jacobian"))
        assert steps[: len(reported)] == reported
        assert set(steps) <= set(range(0, max(steps) + 1, 3))
        assert np.isfinite(tr.eigenvalues("jacobian")[: len(reported), 0]).all()
