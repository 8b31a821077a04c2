r"""What watching costs: training time against probing time, and the overhead budget.

The monitor never sees the training step itself, only its calls to ``step()``; the
time between the end of one call and the start of the next is the training's own wall
time (forward, backward, optimiser step, data loading). Time spent inside ``step()``
(probes, snapshots, writing) is the monitor's. With a budget :math:`b`, a due probe
runs only if the probing time so far plus the expected cost of the probe stays within
:math:`b` times the training time so far,

.. math:: t_{\text{probe}} + \hat c \le b\, t_{\text{train}},

otherwise it waits for the first later step where it fits. :math:`\hat c` is the wall
time of the last probe; the first probe has no estimate, so it runs when due and
measures what a probe costs. The overhead after it is then held at :math:`b` for the
rest of the run (the first probe's share shrinks as training goes on).

Several monitors in one process (one per field, or per probe batch) share the budget:
the time another monitor spends in its ``step()`` is neither this monitor's training
time nor left out of its probing time, so :math:`t_{\text{probe}}` above counts the
work of every monitor since this one started, and ``budget=0.1`` on each keeps the
whole run's overhead at about 10%. :data:`WATCHING` keeps the process's total.

What a training step costs, :attr:`TrainingClock.step_time`, leaves out the first
interval: from the monitor's creation to its first ``step()`` call it holds the loop's
set-up and the first step's one-off costs (lazy initialisation, optimiser state,
allocator growth, compilation), often many steady steps' worth.
"""

from __future__ import annotations

import math
import time
from typing import Callable

__all__ = ["TrainingClock", "WatchingTime", "WATCHING"]


class WatchingTime:
    """Seconds spent inside the ``step()`` of any monitor of the process, all together."""

    def __init__(self) -> None:
        self.seconds = 0.0


#: The process's total, shared by every :class:`TrainingClock` unless told otherwise.
WATCHING = WatchingTime()


class TrainingClock:
    """Training and probing seconds of a run, measured around the monitor's ``step()``.

    Attributes
    ----------
    train_time : float
        Seconds of training so far (between ``step()`` calls).
    probe_time : float
        Seconds spent inside ``step()`` doing the monitor's work.
    other_time : float
        Seconds other monitors spent in their ``step()`` while this one ran.
    steps : int
        ``step()`` calls so far.
    steady_time : float
        Training seconds after the first ``step()`` call (the intervals between calls).
    since_probe : float
        Training seconds since the last probe (or since the start).
    last_cost : float
        Wall time of the last probe (NaN before the first).
    now : callable
        The clock, ``time.perf_counter`` (a test may give another).
    watching : WatchingTime
        The work of all monitors of the process (default :data:`WATCHING`).
    """

    def __init__(
        self, now: Callable[[], float] = time.perf_counter, watching: WatchingTime = WATCHING
    ) -> None:
        self.now = now
        self.watching = watching
        self._left = now()
        self._seen = watching.seconds
        self.train_time = 0.0
        self.probe_time = 0.0
        self.other_time = 0.0
        self.steps = 0
        self.steady_time = 0.0
        self.since_probe = 0.0
        self.last_cost = math.nan

    def enter(self) -> None:
        """A ``step()`` call begins: the time since the last one was training.

        Except what other monitors spent in their ``step()`` meanwhile.
        """
        others = self.watching.seconds - self._seen
        elapsed = max(self.now() - self._left - others, 0.0)
        self.other_time += others
        self.train_time += elapsed
        self.since_probe += elapsed
        if self.steps:
            self.steady_time += elapsed
        self.steps += 1

    def leave(self, worked: float) -> None:
        """A ``step()`` call ends after ``worked`` seconds of the monitor's work."""
        self.probe_time += worked
        self.watching.seconds += worked
        self._seen = self.watching.seconds
        self._left = self.now()

    def probed(self, seconds: float) -> None:
        """A probe (or a snapshot) of ``seconds`` was taken."""
        self.last_cost = seconds
        self.since_probe = 0.0

    @property
    def step_time(self) -> float:
        """Mean training seconds per step after the first (NaN before the second call).

        The first interval (set-up and one-off costs) is left out, so that a probe's
        cost in training steps is counted in steady steps.
        """
        steady = self.steps - 1
        return self.steady_time / steady if steady > 0 else math.nan

    @property
    def overhead(self) -> float:
        """Probing seconds divided by training seconds (NaN before any training)."""
        return self.probe_time / self.train_time if self.train_time > 0 else math.nan

    def fits(self, budget: float) -> bool:
        """Whether a probe of the last probe's cost fits in ``budget`` now.

        Every monitor's work counts against it: this one's and the others'.
        """
        if math.isnan(self.last_cost):
            return True
        spent = self.probe_time + self.other_time
        return spent + self.last_cost <= budget * self.train_time
