r"""Games and their matrix-free operators.

* :mod:`~specdiag.game.game` -- :class:`Game`: players, their parameters, their losses;
* :mod:`~specdiag.game.flat` -- :class:`ParameterLayout`: lists of tensors as flat vectors;
* :mod:`~specdiag.game.state` -- evaluating a game without side effects;
* :mod:`~specdiag.game.wrappers` -- DDP, DataParallel and ``torch.compile`` wrappers;
* :mod:`~specdiag.game.field` -- :class:`GameField`: :math:`v(x)` on one batch, graph kept;
* :mod:`~specdiag.game.operators` -- :class:`GameJacobian` and :class:`PlayerHessian`.
"""

from .field import GameField
from .flat import ParameterLayout
from .game import RESERVED_NAMES, Game
from .operators import GameJacobian, PlayerHessian
from .wrappers import module_wrappers, unwrap_module

__all__ = [
    "Game",
    "RESERVED_NAMES",
    "ParameterLayout",
    "GameField",
    "GameJacobian",
    "PlayerHessian",
    "unwrap_module",
    "module_wrappers",
]
