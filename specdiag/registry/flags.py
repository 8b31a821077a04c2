"""Facts about a probe as a whole: the probe flags, one bit each.

A trace stores a probe's flags as a bit mask (``probe_flags``, int32) next to its
status; ``specdiag summary`` counts each flag over the run.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ProbeFlag", "PROBE_FLAGS", "flag_bit", "flag_names"]


@dataclass(frozen=True)
class ProbeFlag:
    """One flag: its name, its bit and what it means."""

    name: str
    bit: int
    meaning: str


#: Every probe flag; ``bit`` is its value in the mask.
PROBE_FLAGS: tuple[ProbeFlag, ...] = (
    ProbeFlag(
        "uncoupled",
        1,
        "a player's gradient does not depend on the other players (a detach in the losses "
        "closure): the coupling blocks of J are zero",
    ),
    ProbeFlag(
        "derivative_mismatch",
        2,
        "a product of J disagreed with central finite differences of v (an operation "
        "without a true second derivative)",
    ),
    ProbeFlag(
        "modified_in_place",
        4,
        "the losses closure changed a parameter in place during the probe",
    ),
    ProbeFlag(
        "unwritten",
        8,
        "the probe was kept in memory because the trace could not be written at the time "
        "(a full disk, say) and written later",
    ),
)


def flag_bit(name: str) -> int:
    """The bit of flag ``name``; ValueError for an unknown flag."""
    for flag in PROBE_FLAGS:
        if flag.name == name:
            return flag.bit
    raise ValueError(f"unknown probe flag {name!r}; flags are {[f.name for f in PROBE_FLAGS]}")


def flag_names(mask: int) -> list[str]:
    """The names of the flags set in ``mask``."""
    return [f.name for f in PROBE_FLAGS if int(mask) & f.bit]
