"""When to probe: schedules over training steps.

A schedule answers one question, ``due(step) -> bool``, in constant time (an
arithmetic test or a set lookup), so that asking it at every training step costs
nanoseconds. Three are provided:

* :class:`Every` -- every ``n`` steps from ``start``: ``start, start + n, ...``;
* :class:`AtSteps` -- an explicit set of steps;
* :class:`LogSpaced` -- dense early, sparse later: ``start`` and then about
  ``per_decade`` steps per decade after it (``start + 1, 2, 3, 6, 10, 18, 32, 56, 100,
  ...`` for ``per_decade=4``), which suits training runs whose spectrum changes fast
  at first and slowly later.

Anything with a ``due(step)`` method is a schedule too (:class:`Schedule`).
:func:`as_schedule` turns the monitor's ``every`` argument into a schedule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Schedule", "Every", "AtSteps", "LogSpaced", "as_schedule"]


@runtime_checkable
class Schedule(Protocol):
    """Anything that says whether a probe is due at a training step."""

    def due(self, step: int) -> bool:
        """Whether a probe is due after training step ``step``."""
        ...


def _integer(value: Any, name: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class Every:
    """Every ``n`` steps from ``start``: ``start, start + n, start + 2n, ...``.

    Parameters
    ----------
    n : int
        Steps between probes, ``>= 1``.
    start : int
        First step probed.

    Examples
    --------
    >>> [s for s in range(12) if Every(5).due(s)]
    [0, 5, 10]
    >>> [s for s in range(12) if Every(5, start=3).due(s)]
    [3, 8]
    """

    def __init__(self, n: int, start: int = 0) -> None:
        self.n = _integer(n, "n", 1)
        self.start = _integer(start, "start")

    def due(self, step: int) -> bool:
        """``step >= start`` and ``(step - start) % n == 0``."""
        return step >= self.start and (step - self.start) % self.n == 0

    def config(self) -> dict[str, Any]:
        """A JSON-ready description (stored in the trace's configuration)."""
        return {"schedule": "every", "n": self.n, "start": self.start}

    def __repr__(self) -> str:
        return f"Every({self.n}, start={self.start})"


class AtSteps:
    """Exactly the given steps.

    Parameters
    ----------
    steps : iterable of int
        The steps to probe (any order; duplicates count once).

    Examples
    --------
    >>> AtSteps([0, 100, 1000]).due(100), AtSteps([0, 100, 1000]).due(101)
    (True, False)
    """

    def __init__(self, steps: Iterable[int]) -> None:
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
            raise TypeError(f"steps must be an iterable of integers, got {type(steps).__name__}")
        self.steps = frozenset(_integer(s, "every step") for s in steps)

    def due(self, step: int) -> bool:
        """Whether ``step`` is one of the scheduled steps."""
        return step in self.steps

    def config(self) -> dict[str, Any]:
        """A JSON-ready description (stored in the trace's configuration)."""
        return {"schedule": "at_steps", "steps": sorted(self.steps)}

    def __repr__(self) -> str:
        shown = sorted(self.steps)
        more = ", ..." if len(shown) > 8 else ""
        return f"AtSteps([{', '.join(map(str, shown[:8]))}{more}])"


class LogSpaced:
    r"""Logarithmically spaced steps: dense early, sparse later.

    The steps are ``start`` and ``start + round(10 ** (i / per_decade))`` for
    ``i = 0, 1, 2, ...`` (duplicates merged), up to ``until`` if given. For
    ``per_decade=4``: ``start + {0, 1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, ...}``.
    The set is computed once (about ``19 * per_decade`` steps reach past
    :math:`10^{18}`), so :meth:`due` is a set lookup.

    Parameters
    ----------
    per_decade : int
        Probes per factor of ten, ``>= 1``.
    start : int
        First step probed; offsets are counted from it.
    until : int, optional
        Last step that may be probed (inclusive).
    """

    #: Offsets are generated up to this bound (beyond any step count).
    LIMIT = 10**19

    def __init__(self, per_decade: int = 4, start: int = 0, until: int | None = None) -> None:
        self.per_decade = _integer(per_decade, "per_decade", 1)
        self.start = _integer(start, "start")
        self.until = None if until is None else _integer(until, "until", self.start)
        last = self.LIMIT if self.until is None else self.until - self.start
        offsets = {0}
        for i in range(math.ceil(math.log10(self.LIMIT) * self.per_decade) + 1):
            offset = round(10 ** (i / self.per_decade))
            if offset > last:
                break
            offsets.add(offset)
        self.steps = frozenset(self.start + o for o in offsets)

    def due(self, step: int) -> bool:
        """Whether ``step`` is one of the scheduled steps."""
        return step in self.steps

    def config(self) -> dict[str, Any]:
        """A JSON-ready description (stored in the trace's configuration)."""
        return {
            "schedule": "log_spaced",
            "per_decade": self.per_decade,
            "start": self.start,
            "until": self.until,
        }

    def __repr__(self) -> str:
        return f"LogSpaced(per_decade={self.per_decade}, start={self.start}, until={self.until})"


def as_schedule(every: int | Iterable[int] | Schedule) -> Schedule:
    """The schedule that ``every`` describes.

    Parameters
    ----------
    every : int, iterable of int or Schedule
        An integer ``n``: :class:`Every` ``(n)`` (steps 0, n, 2n, ...). An iterable of
        steps: :class:`AtSteps`. Anything with a ``due(step)`` method: itself.

    Raises
    ------
    TypeError
        ``every`` is none of these.
    ValueError
        An integer below 1.
    """
    if callable(getattr(every, "due", None)):
        return every  # type: ignore[return-value]
    if isinstance(every, (int, np.integer)) and not isinstance(every, bool):
        return Every(every)
    if isinstance(every, Iterable) and not isinstance(every, (str, bytes)):
        schedule = AtSteps(every)
        if not schedule.steps:
            raise ValueError(
                "every is empty, so the monitor would never probe; list the steps, or pass "
                "every=AtSteps([]) to probe only when step(..., force=True) asks"
            )
        return schedule
    raise TypeError(
        "every must be an integer (probe every n steps), an iterable of steps, or a schedule "
        f"with a due(step) method (specdiag.monitor.schedules.Every, AtSteps, LogSpaced); got "
        f"{type(every).__name__} {every!r}"
    )


def schedule_config(schedule: Schedule) -> dict[str, Any]:
    """A JSON-ready description of any schedule (its ``config()`` or its repr)."""
    describe = getattr(schedule, "config", None)
    return describe() if callable(describe) else {"schedule": repr(schedule)}
