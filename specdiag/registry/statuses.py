"""How a solve (or a whole probe) ended: the status vocabulary.

A trace stores a status as its index in :data:`STATUSES` (int8, with ``flag_values``
and ``flag_meanings`` attributes, the CF convention), the distributed probes exchange
the same index, and statuses are listed from best to worst: a probe's status is the
first operator status that is not ``"ok"``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Status", "STATUSES", "STATUS_NAMES", "status_code"]


@dataclass(frozen=True)
class Status:
    """One status: its name and what it means."""

    name: str
    meaning: str


#: Every status, best to worst; the index is the code stored in traces.
STATUSES: tuple[Status, ...] = (
    Status("ok", "every wanted eigenvalue converged"),
    Status("unconverged", "the iteration limit was reached before all converged"),
    Status("budget", "the product budget max_matvecs was reached before all converged"),
    Status("nonfinite", "NaN or Inf in a loss, a gradient or a product"),
    Status("error", "an exception in the losses closure, the solver or the probe"),
)
#: The names alone, in code order.
STATUS_NAMES: tuple[str, ...] = tuple(s.name for s in STATUSES)


def status_code(name: str, what: str = "") -> int:
    """The code of a status name; ValueError naming ``what`` for an unknown one."""
    try:
        return STATUS_NAMES.index(name)
    except ValueError:
        where = f"{what} " if what else ""
        raise ValueError(
            f"{where}status {name!r} is not one of {', '.join(STATUS_NAMES)}"
        ) from None
