"""Checks of user-given numbers, shared by every options object (numpy only).

Each check returns the value converted (``int`` or ``float``) or raises with a message
that names the setting and what it must be. ``bool`` is never accepted as a number.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

__all__ = ["integer", "real", "positive", "non_negative", "optional_integer"]


def integer(value: Any, name: str, minimum: Optional[int] = None) -> int:
    """``value`` as an ``int``, at least ``minimum`` when given.

    Raises
    ------
    TypeError
        ``value`` is not an integer (``bool`` included).
    ValueError
        ``value`` is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def optional_integer(value: Any, name: str, minimum: Optional[int] = None) -> Optional[int]:
    """:func:`integer`, or ``None`` for ``None``."""
    return None if value is None else integer(value, name, minimum)


def real(value: Any, name: str) -> float:
    """``value`` as a finite ``float``; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive(value: Any, name: str) -> float:
    """``value`` as a finite ``float > 0``; ValueError otherwise."""
    value = real(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def non_negative(value: Any, name: str) -> float:
    """``value`` as a finite ``float >= 0``; ValueError otherwise."""
    value = real(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value
