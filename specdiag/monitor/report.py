"""What the monitor tells the user: each warning once per cause, and what probing costs."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable
from typing import Any, Optional

from ..errors import ProbeWarning, user_stacklevel
from .schedules import Every, Schedule

__all__ = ["WarningLedger", "cost_message"]

logger = logging.getLogger("specdiag")

#: Slowdown above which the cost message is a warning rather than information.
SLOWDOWN_WARNING = 1.5
#: Steady training steps timed before the monitor says what a probe costs in steps.
COST_STEPS = 5


class WarningLedger:
    """Re-issues a ProbeWarning only when it names a cause not seen before; counts all.

    Attributes
    ----------
    counts : dict of str to int
        How many warnings named each cause.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def replay(self, caught: Iterable[warnings.WarningMessage]) -> None:
        """Pass on the warnings caught during a probe.

        Other categories always, a ProbeWarning when one of its causes is new (saying that repeats
        are counted).
        """
        for w in caught:
            message = w.message
            if not isinstance(message, ProbeWarning):
                warnings.warn(message, stacklevel=user_stacklevel())
                continue
            causes = message.causes or (str(message),)
            new = [c for c in causes if c not in self.counts]
            for cause in causes:
                self.counts[cause] = self.counts.get(cause, 0) + 1
            if new:
                text = (
                    f"{message} (this monitor warns once per cause; `specdiag summary` counts them)"
                )
                warnings.warn(ProbeWarning(text, message.causes), stacklevel=user_stacklevel())

    def warn(self, cause: str, text: str) -> None:
        """A warning of the monitor's own (a failing logger, say), once per cause."""
        self.replay([_message(ProbeWarning(text, (cause,)))])


def _message(warning: ProbeWarning) -> warnings.WarningMessage:
    return warnings.WarningMessage(warning, ProbeWarning, __file__, 0)


def cost_message(
    seconds: float, step_time: float, schedule: Schedule, budget: Optional[float]
) -> tuple[int, str]:
    """``(logging level, text)`` of what a probe costs and what the schedule will cost."""
    if not (math.isfinite(step_time) and step_time > 0):
        return logging.INFO, f"specdiag: a probe takes {seconds:.3g} s"
    cost = seconds / step_time
    text = (
        f"specdiag: a probe ≈ {cost:,.0f} training steps "
        f"({seconds:.3g} s; a step ≈ {step_time:.3g} s)"
    )
    level = logging.INFO
    if isinstance(schedule, Every) and budget is None:
        slowdown = 1 + cost / schedule.n
        text += f"; every={schedule.n} makes training about {slowdown:.1f}× slower"
        level = logging.WARNING if slowdown > SLOWDOWN_WARNING else logging.INFO
    shown = 0.1 if budget is None else budget
    text += f"; budget={shown:g} probes about every {cost / shown:,.0f} steps" + (
        "" if budget is not None else " (pass budget= to cap the cost)"
    )
    return level, text


def log(level: int, text: str, **extra: Any) -> None:
    """``text`` on the ``"specdiag"`` logger."""
    logger.log(level, text, **extra)
