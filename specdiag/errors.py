"""Exception and warning classes raised by specdiag.

Every error specdiag raises on purpose derives from :class:`SpecdiagError`, and also
from the built-in class a Python user would expect (``ValueError`` for a badly defined
game, ``FloatingPointError`` for non-finite numbers), so ``except ValueError`` keeps
working in code that does not know about specdiag.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Optional

__all__ = [
    "SpecdiagError",
    "GameDefinitionError",
    "LossClosureError",
    "NonFiniteError",
    "TraceError",
    "ConvergenceWarning",
    "ProbeWarning",
    "user_stacklevel",
]


class SpecdiagError(Exception):
    """Base class of all errors raised by specdiag."""


class GameDefinitionError(SpecdiagError, ValueError):
    """The players or the losses of a :class:`~specdiag.Game` are not well defined.

    Raised for a loss dictionary with missing or extra players, a loss that is not a
    floating-point scalar, a loss that does not depend on its own player's parameters,
    a player without trainable parameters, or a parameter shared by two players.
    """


class LossClosureError(SpecdiagError, RuntimeError):
    """The user's loss closure raised; the original exception is the ``__cause__``."""


class NonFiniteError(SpecdiagError, FloatingPointError):
    """A loss, a gradient or a matrix-vector product contains NaN or Inf.

    Attributes
    ----------
    player : str or None
        The player whose loss or gradient was not finite, when known.
    """

    def __init__(self, message: str, player: str | None = None) -> None:
        super().__init__(message)
        self.player = player


class TraceError(SpecdiagError, ValueError):
    """A trace file is missing, unreadable, not a trace, too new, or of another layout.

    Not a specdiag trace, written by a newer specdiag, or incompatible with the game
    being monitored. The message is one line naming the file and the problem.
    """


class ConvergenceWarning(UserWarning):
    """An eigensolver stopped before all wanted eigenvalues converged.

    It reached its iteration limit or its product budget. The result is still returned,
    with ``converged`` flags.
    """


class ProbeWarning(UserWarning):
    """A probe failed (non-finite loss, an exception in the closure) or did not converge.

    The failure is recorded in the probe's record and trace; training goes on.

    Attributes
    ----------
    causes : tuple of str
        What the warning is about, one short key per cause (``"jacobian:unconverged"``,
        ``"uncoupled"``, ...): a monitor warns once per cause and counts the rest.
    """

    def __init__(self, message: object = "", causes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.causes = tuple(causes)


def user_stacklevel() -> int:
    """``stacklevel`` for a ``warnings.warn`` that names the user's line.

    The first frame outside the specdiag package, however deep inside it the call is.
    """
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame: Optional[FrameType] = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level
