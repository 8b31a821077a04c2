"""The overhead budget, the cost said before it is paid, and the monitor's clock."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag import toys
from specdiag.monitor.clock import TrainingClock
from specdiag.monitor.report import cost_message
from specdiag.monitor.schedules import Every


def warmed_up_gan():
    """A small GAN whose first probe in this process has run already (the first probe of a
    process pays one-off costs, which would make the budget's first estimate pessimistic)."""
    gan = toys.mog_gan(hidden=16, depth=2, seed=0)
    batch = gan.sample(128, torch.Generator().manual_seed(1))
    sd.probe(gan.game, batch, k=2)
    return gan, batch


class FakeClock:
    """A clock the test moves: training steps and probes take exactly what it says."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def budgeted(tmp_path, budget: float, every: int, steps: int, step_s: float, probe_s: float):
    """A monitored run on a clock where a training step takes ``step_s`` and a probe
    ``probe_s`` seconds; the records."""
    gan, batch = warmed_up_gan()
    clock = FakeClock()
    mon = sd.SpectrumMonitor(
        gan.game,
        tmp_path / "run.h5",
        every=every,
        k=2,
        probe_batch=batch,
        budget=budget,
        overwrite=True,
    )
    mon._clock = TrainingClock(clock)
    probe = mon._session.probe

    def slow_probe(*args, **kwargs):
        clock.t += probe_s
        return probe(*args, **kwargs)

    mon._session.probe = slow_probe  # type: ignore[method-assign]  # a probe on the test's clock
    records = []
    with mon:
        for step in range(steps):
            clock.t += step_s  # the training step
            records += mon.step(step)
    return mon, records


def test_a_budget_keeps_probing_within_its_share_of_the_training_time(tmp_path):
    mon, records = budgeted(tmp_path, 0.1, every=50, steps=2000, step_s=0.01, probe_s=0.5)
    # 40 were due; 0.1 of 20 s of training pays for 4 probes of 0.5 s
    assert [r.step for r in records][0] == 0 and 3 <= len(records) <= 5
    assert mon.overhead <= 0.1 + 1e-9
    assert records[-1].overhead == pytest.approx(
        mon._clock.probe_time / mon._clock.train_time, rel=0.05
    )
    trace = sd.open_trace(tmp_path / "run.h5")
    assert trace.probe_steps().tolist() == [r.step for r in records]
    assert np.allclose(trace.probes()["overhead"], [r.overhead for r in records])


def test_postponed_probes_say_from_which_step(tmp_path):
    _, records = budgeted(tmp_path, 0.2, every=7, steps=600, step_s=0.01, probe_s=0.2)
    assert records[0].step == 0 and "postponed" not in records[0].message
    late = records[1:]
    assert late and all("postponed by the budget" in r.message for r in late)
    for r in late:
        due = int(r.message.split("due at step ")[1].split(",")[0])
        assert due < r.step and due % 7 == 0
        # it ran at the first step where probing (this probe included) fits 0.2 of training
        assert r.overhead <= 0.2 + 1e-9


def test_the_first_probe_says_what_probing_costs(tmp_path, caplog):
    game = toys.dirac_gan(loss="standard", theta=0.3, psi=-0.2).game
    with caplog.at_level(logging.INFO, logger="specdiag"):
        with sd.SpectrumMonitor(game, tmp_path / "run.h5", every=2, k=2, resume=False) as mon:
            for step in range(5):
                mon.step(step)
    said = [r.getMessage() for r in caplog.records if r.name == "specdiag"]
    assert len(said) == 1 and "training steps" in said[0] and "every=2" in said[0]
    assert "budget=" in said[0]
    record = mon.last
    assert record is not None and math.isfinite(record.cost_steps) and record.cost_steps > 0


def test_the_cost_is_said_in_steady_steps_not_counting_the_first(tmp_path, caplog):
    # a probe at step 0 of 0.5 s; the first interval (set-up, one-off costs) takes 1 s,
    # every later step 0.01 s: the probe is 50 steps, not the 1 it would be counted in
    # the first step's time
    gan, batch = warmed_up_gan()
    clock = FakeClock()
    mon = sd.SpectrumMonitor(
        gan.game, tmp_path / "run.h5", every=100, k=2, probe_batch=batch, overwrite=True
    )
    mon._clock = TrainingClock(clock)
    probe = mon._session.probe

    def slow_probe(*args, **kwargs):
        clock.t += 0.5
        return probe(*args, **kwargs)

    mon._session.probe = slow_probe  # type: ignore[method-assign]
    records, said = [], []
    with caplog.at_level(logging.INFO, logger="specdiag"):
        for step in range(8):
            clock.t += 1.0 if step == 0 else 0.01
            records += mon.step(step)
            said.append(len([r for r in caplog.records if r.name == "specdiag"]))
        mon.close()
    # said once, after five steady steps (at the sixth call), not before, not at close
    assert said == [0, 0, 0, 0, 0, 1, 1, 1]
    text = [r.getMessage() for r in caplog.records if r.name == "specdiag"][0]
    assert "a probe ≈ 50 training steps" in text and "a step ≈ 0.01 s" in text
    assert "every=100 makes training about 1.5× slower" in text
    # the record of the probe at the first call cannot know a steady step yet
    assert [r.step for r in records] == [0] and math.isnan(records[0].cost_steps)


def test_cost_message_names_the_slowdown_and_the_budget_interval():
    level, text = cost_message(4.7, 0.01, Every(50), None)
    assert level == logging.WARNING and "470 training steps" in text
    assert "about 10.4× slower" in text and "every 4,700 steps" in text
    level, text = cost_message(4.7, 0.01, Every(50), 0.2)
    assert level == logging.INFO and "budget=0.2 probes about every 2,350 steps" in text


def test_the_clock_counts_training_between_calls_and_probing_inside_them():
    clock = TrainingClock()
    time.sleep(0.02)
    clock.enter()
    assert clock.train_time >= 0.02 and clock.steps == 1 and clock.fits(0.1)
    assert math.isnan(clock.step_time)  # the first interval is set-up, not a steady step
    clock.leave(0.5)
    clock.probed(0.5)
    assert clock.probe_time == 0.5 and clock.overhead > 1 and not clock.fits(0.1)
    time.sleep(0.01)
    clock.enter()
    assert clock.steps == 2 and clock.step_time == clock.steady_time >= 0.01
    assert clock.train_time == pytest.approx(clock.steady_time + 0.02, abs=0.05)


def test_bad_budget_is_refused(tmp_path):
    game = toys.dirac_gan().game
    for bad in (0, -0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match="budget"):
            sd.SpectrumMonitor(game, tmp_path / "run.h5", budget=bad)  # type: ignore[arg-type]


def test_two_monitors_of_one_run_share_the_budget(tmp_path):
    """The second monitor's probes are neither training time for the first nor free."""
    from specdiag.monitor.clock import WatchingTime

    gan, batch = warmed_up_gan()
    clock, watching = FakeClock(), WatchingTime()
    monitors = []
    for name in ("a", "b"):
        mon = sd.SpectrumMonitor(
            gan.game,
            tmp_path / f"{name}.h5",
            every=50,
            k=2,
            probe_batch=batch,
            operators=("jacobian",),
            budget=0.1,
            overwrite=True,
        )
        mon._clock = TrainingClock(clock, watching)
        probe = mon._session.probe

        def slow_probe(*args, _probe=probe, **kwargs):
            clock.t += 0.5
            return _probe(*args, **kwargs)

        mon._session.probe = slow_probe  # type: ignore[method-assign]
        monitors.append(mon)
    records = {0: 0, 1: 0}
    for step in range(2000):
        clock.t += 0.01
        for i, mon in enumerate(monitors):
            records[i] += len(mon.step(step))
    for mon in monitors:
        mon.close()
    train = 2000 * 0.01
    spent = 0.5 * (records[0] + records[1])
    # alone, each would take 4 probes; together they share 0.1 of the training time
    assert records[0] >= 1 and records[1] >= 1 and records[0] + records[1] <= 5
    assert spent <= 0.1 * train + 0.5 + 1e-9  # the first probes run before any estimate
    for mon in monitors:
        assert mon._clock.train_time == pytest.approx(train, rel=1e-6)
    assert watching.seconds == pytest.approx(spent, rel=1e-6)
