"""Watch a game's spectrum while it trains.

* :mod:`~specdiag.monitor.monitor` -- :class:`SpectrumMonitor`, called once per step;
* :mod:`~specdiag.monitor.schedules` -- when to probe: :class:`Every`,
  :class:`AtSteps`, :class:`LogSpaced`.
"""

from .monitor import SpectrumMonitor
from .schedules import AtSteps, Every, LogSpaced, Schedule, as_schedule

__all__ = ["SpectrumMonitor", "Every", "AtSteps", "LogSpaced", "Schedule", "as_schedule"]
