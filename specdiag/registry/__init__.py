"""The vocabularies shared by every layer, one registry each (numpy only).

* :mod:`~specdiag.registry.statuses` -- how a solve ended (``ok``, ``unconverged``, ...);
* :mod:`~specdiag.registry.scalars` -- the per-probe summary scalars of each operator kind:
  name, label, how computed, whether ``specdiag summary`` shows it;
* :mod:`~specdiag.registry.flags` -- facts about a probe as a whole (uncoupled players, ...);
* :mod:`~specdiag.registry.methods` -- the optimisers' update methods: name, operator
  class, parameters, augmented state, closed form of the update eigenvalues.

The trace, the plots, the summary, the probes and the dynamics all read these tables,
so adding a status, a scalar or an update method is a change in one place.
"""

from .flags import PROBE_FLAGS, ProbeFlag, flag_bit, flag_names
from .methods import CLOSED_FORM_METHODS, UPDATE_METHODS, UpdateMethod, update_method
from .scalars import SCALARS, Scalar, scalar, scalar_names
from .statuses import STATUS_NAMES, STATUSES, Status, status_code

__all__ = [
    "Status",
    "STATUSES",
    "STATUS_NAMES",
    "status_code",
    "Scalar",
    "SCALARS",
    "scalar",
    "scalar_names",
    "UpdateMethod",
    "UPDATE_METHODS",
    "CLOSED_FORM_METHODS",
    "update_method",
    "ProbeFlag",
    "PROBE_FLAGS",
    "flag_bit",
    "flag_names",
]
