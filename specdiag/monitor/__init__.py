"""Watch a game's spectrum while it trains.

* :mod:`~specdiag.monitor.monitor` -- :class:`SpectrumMonitor`, called once per step;
* :mod:`~specdiag.monitor.schedules` -- when to probe: :class:`Every`,
  :class:`AtSteps`, :class:`LogSpaced`;
* :mod:`~specdiag.monitor.clock` and :mod:`~specdiag.monitor.report` -- the overhead
  budget, and what the monitor tells the user;
* :mod:`~specdiag.monitor.snapshots` and :mod:`~specdiag.monitor.offline` -- deferred
  probes: snapshots saved in the loop, :func:`probe_snapshots` afterwards.
"""

from .monitor import SpectrumMonitor
from .offline import probe_snapshots
from .schedules import AtSteps, Every, LogSpaced, Schedule, as_schedule
from .snapshots import Snapshot, SnapshotWriter, read_snapshots

__all__ = [
    "SpectrumMonitor",
    "Every",
    "AtSteps",
    "LogSpaced",
    "Schedule",
    "as_schedule",
    "probe_snapshots",
    "SnapshotWriter",
    "Snapshot",
    "read_snapshots",
]
