"""Exception and warning classes raised by specdiag.

Every error specdiag raises on purpose derives from :class:`SpecdiagError`, and also
from the built-in class a Python user would expect (``ValueError`` for a badly defined
game, ``FloatingPointError`` for non-finite numbers), so ``except ValueError`` keeps
working in code that does not know about specdiag.
"""

from __future__ import annotations

__all__ = [
    "SpecdiagError",
    "GameDefinitionError",
    "LossClosureError",
    "NonFiniteError",
    "ConvergenceWarning",
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


class ConvergenceWarning(UserWarning):
    """An eigensolver stopped (iteration limit or product budget) before all wanted
    eigenvalues converged. The result is still returned, with ``converged`` flags."""
