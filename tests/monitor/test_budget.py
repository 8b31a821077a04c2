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


def test_a_budget_keeps_probing_within_its_share_and_says_which_probes_it_postponed(tmp_path):
    # due at every step: after the first probe, each one waits until it fits the budget
    gan, batch = warmed_up_gan()
    records = []
    with sd.SpectrumMonitor(gan.game, tmp_path / "run.h5", every=1, k=2, probe_batch=batch,
                            budget=0.5, resume=False) as mon:
        for step in range(1000):
            time.sleep(0.003)  # the training step
            records += mon.step(step)
    assert records[0].step == 0 and "postponed" not in records[0].message
    assert 2 <= len(records) < 500
    previous = 0
    for r in records[1:]:
        if "postponed" in r.message:  # due at once, run when it fit
            due = int(r.message.split("due at step ")[1].split(",")[0])
            assert due == previous + 1 and due < r.step
        else:  # it fitted at once (a slow training step)
            assert r.step == previous + 1
        previous = r.step
    assert any("postponed" in r.message for r in records[1:])
    first = records[0].wall_time
    # after the first probe (which measures the cost) the budget holds
    assert mon.overhead <= 0.5 + first / mon._clock.train_time + 0.05
    assert 0 < records[-1].overhead <= 1


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
