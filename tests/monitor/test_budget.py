"""The overhead budget, the cost said before it is paid, and the monitor's clock."""

from __future__ import annotations

import logging
import math
import time

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


def slow_training(mon: sd.SpectrumMonitor, steps: int, seconds: float) -> None:
    for step in range(steps):
        time.sleep(seconds)  # the training step
        mon.step(step)


def test_a_budget_keeps_probing_within_its_share_of_the_training_time(tmp_path):
    gan, batch = warmed_up_gan()
    mon = sd.SpectrumMonitor(
        gan.game, tmp_path / "run.h5", every=5, k=2, probe_batch=batch, budget=0.3, resume=False
    )
    with mon:
        slow_training(mon, 800, 0.003)
    trace = sd.open_trace(tmp_path / "run.h5")
    steps = trace.probe_steps().tolist()
    assert steps[0] == 0 and 2 <= len(steps) < 160  # 160 were due: the budget postponed most
    first = float(trace.probes()["wall_time"][0])
    # after the first probe (which measures the cost) the budget holds
    assert mon.overhead <= 0.3 + first / mon._clock.train_time + 0.05
    assert mon.last is not None and 0 < mon.last.overhead <= 1


def test_postponed_probes_say_from_which_step(tmp_path):
    gan, batch = warmed_up_gan()
    with sd.SpectrumMonitor(
        gan.game, tmp_path / "run.h5", every=2, k=2, probe_batch=batch, budget=0.5, resume=False
    ) as mon:
        records = []
        for step in range(300):
            time.sleep(0.003)
            records += mon.step(step)
    late = [r for r in records if "postponed" in r.message]
    assert late, "the budget should have postponed some probes"
    for r in late:
        due = int(r.message.split("due at step ")[1].split(",")[0])
        assert due < r.step and due % 2 == 0
    assert records[0].step == 0 and "postponed" not in records[0].message


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
    clock.leave(0.5)
    clock.probed(0.5)
    assert clock.probe_time == 0.5 and clock.overhead > 1 and not clock.fits(0.1)


def test_bad_budget_is_refused(tmp_path):
    game = toys.dirac_gan().game
    for bad in (0, -0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match="budget"):
            sd.SpectrumMonitor(game, tmp_path / "run.h5", budget=bad)
