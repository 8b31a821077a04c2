"""Schedules: which steps a monitor probes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from specdiag.monitor.schedules import (
    AtSteps,
    Every,
    LogSpaced,
    Schedule,
    as_schedule,
    schedule_config,
)


def due_steps(schedule, stop: int) -> list[int]:
    return [s for s in range(stop) if schedule.due(s)]


def test_every():
    assert due_steps(Every(5), 21) == [0, 5, 10, 15, 20]
    assert due_steps(Every(5, start=3), 21) == [3, 8, 13, 18]
    assert due_steps(Every(1), 4) == [0, 1, 2, 3]
    assert not Every(5).due(-5)
    assert Every(5).due(10**15)
    with pytest.raises(ValueError, match="n must be >= 1"):
        Every(0)
    with pytest.raises(TypeError, match="integer"):
        Every(2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="integer"):
        Every(True)


def test_at_steps():
    schedule = AtSteps([100, 0, 7, 7, np.int64(3)])
    assert due_steps(schedule, 200) == [0, 3, 7, 100]
    assert "AtSteps([0, 3, 7, 100])" == repr(schedule)
    assert due_steps(AtSteps([]), 10) == []
    with pytest.raises(TypeError):
        AtSteps([1, 2.0])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        AtSteps(5)  # type: ignore[arg-type]


def test_log_spaced_is_dense_early_and_sparse_later():
    steps = due_steps(LogSpaced(per_decade=4), 1001)
    assert steps == [0, 1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000]
    assert due_steps(LogSpaced(per_decade=1), 10**4 + 1) == [0, 1, 10, 100, 1000, 10000]
    assert LogSpaced(per_decade=4).due(10**12) and not LogSpaced(per_decade=4).due(10**12 + 1)
    shifted = LogSpaced(per_decade=2, start=100, until=140)
    assert due_steps(shifted, 1000) == [100, 101, 103, 110, 132]
    # deterministic: every instance agrees
    assert LogSpaced(per_decade=7).steps == LogSpaced(per_decade=7).steps
    with pytest.raises(ValueError, match="until"):
        LogSpaced(start=10, until=5)


def test_as_schedule():
    assert isinstance(as_schedule(3), Every) and due_steps(as_schedule(3), 7) == [0, 3, 6]
    assert isinstance(as_schedule(np.int32(3)), Every)
    assert due_steps(as_schedule([4, 1]), 10) == [1, 4]
    assert due_steps(as_schedule(range(0, 10, 4)), 10) == [0, 4, 8]
    log = LogSpaced()
    assert as_schedule(log) is log

    class Odd:
        def due(self, step: int) -> bool:
            return step % 2 == 1

    odd = Odd()
    assert as_schedule(odd) is odd and isinstance(odd, Schedule)
    for bad in (2.5, "10", None, True):
        with pytest.raises(TypeError, match="every must be"):
            as_schedule(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        as_schedule(0)


def test_configs_are_json():
    for schedule in (Every(10, start=2), AtSteps([5, 1]), LogSpaced(3, until=100)):
        config = schedule_config(schedule)
        assert json.loads(json.dumps(config)) == config
    assert schedule_config(AtSteps([5, 1])) == {"schedule": "at_steps", "steps": [1, 5]}

    class Custom:
        def due(self, step):
            return False

        def __repr__(self):
            return "Custom()"

    assert schedule_config(Custom()) == {"schedule": "Custom()"}
