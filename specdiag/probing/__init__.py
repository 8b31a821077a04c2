"""One probe: the spectra of a game's operators at the current parameters.

* :mod:`~specdiag.probing.core` -- :func:`probe` itself;
* :mod:`~specdiag.probing.records` -- :class:`ProbeRecord` and :class:`OperatorRecord`;
* :mod:`~specdiag.probing.scalars` -- the per-probe summary scalars;
* :mod:`~specdiag.probing.options` -- :class:`ProbeOptions`, its settings in one place;
* :mod:`~specdiag.probing.plan` -- which solves a probe runs;
* :mod:`~specdiag.probing.solves` -- each solve, turned into a record;
* :mod:`~specdiag.probing.isolation` -- leaving training exactly as it was;
* :mod:`~specdiag.probing.memory` -- the memory a probe takes, told before it runs;
* :mod:`~specdiag.probing.distributed` -- probes under ``torch.distributed``.
"""

from ..trace import STATUSES
from .core import probe
from .memory import ProbeMemory, probe_memory
from .options import ON_ERROR, DensityRequest, ProbeOptions
from .records import OperatorRecord, ProbeRecord
from .scalars import SCALARS, spectrum_scalars

__all__ = [
    "probe",
    "ProbeRecord",
    "OperatorRecord",
    "spectrum_scalars",
    "STATUSES",
    "SCALARS",
    "ON_ERROR",
    "ProbeOptions",
    "DensityRequest",
    "probe_memory",
    "ProbeMemory",
]
