r"""Matrix-free operators of a game: the game Jacobian and the players' Hessians.

All operators here are built on one :class:`GameField`: the vector field
:math:`v(x) = (\nabla_{x_1} L_1, \dots, \nabla_{x_P} L_P)` evaluated once, on one batch,
with its autograd graph kept (``create_graph=True``). Products then differentiate
through that cached graph:

* :math:`J^\top u = \nabla_x \langle v(x), u\rangle` -- one reverse pass
  (reverse-over-reverse), about twice the cost of evaluating :math:`v`;
* :math:`J u` by the double-vjp trick: :math:`g(w) = J^\top w` is linear in :math:`w`,
  so :math:`J u = \nabla_w \langle g(w), u\rangle`; the graph of :math:`g` is built once,
  on the first product, then each :math:`J u` is again one reverse pass;
* :math:`H_i u = \nabla_{x_i} \langle \nabla_{x_i} L_i, u\rangle` for player :math:`i`'s
  own Hessian :math:`H_i = J_{ii}` (Pearlmutter's trick).

Because the losses are evaluated once, the operator is fixed for its lifetime: noise,
dropout masks and the batch are drawn once, which a Krylov method needs.
"""

from __future__ import annotations

from typing import Any

import torch

from ..linalg.operator import LinearOperator
from .field import GameField
from .game import Game

__all__ = ["GameField", "GameJacobian", "PlayerHessian"]


class GameJacobian(LinearOperator):
    r"""The game Jacobian :math:`J = \partial v / \partial x` as a matrix-free operator.

    :math:`J` is :math:`n \times n`, real and in general non-symmetric; its diagonal
    blocks :math:`J_{ii} = \nabla^2_{x_i} L_i` are the players' own Hessians. Gradient
    flow :math:`\dot x = -v(x)` is locally stable at a stationary point iff every
    eigenvalue of :math:`J` has positive real part (descent convention).

    Parameters
    ----------
    game : Game
    batch : object
        Passed to the losses closure once, when the operator is built.
    seed : int, optional
        Seed for randomness inside the losses closure (see :meth:`Game.evaluation`).

    Notes
    -----
    ``rmatvec`` (:math:`J^\top u`) costs about two evaluations of :math:`v`; ``matvec``
    (:math:`J u`) about the same after a one-off build of the double-vjp graph on the
    first call. Since :math:`\operatorname{eig}(J^\top) = \operatorname{eig}(J)`, the
    eigensolvers use the transposed product when only eigenvalues are asked for
    (``prefer_transpose = True``).

    Examples
    --------
    >>> gan = toys.mog_gan(hidden=8, depth=1)
    >>> J = sd.GameJacobian(gan.game, gan.sample(64, torch.Generator().manual_seed(0)))
    >>> J.shape
    (187, 187)
    >>> r = sd.eigs(J, k=4)
    >>> r.all_converged
    True
    """

    prefer_transpose = True

    def __init__(self, game: Game, batch: Any = None, *, seed: int | None = None) -> None:
        self._init_from(GameField(game, batch, seed=seed))

    @classmethod
    def from_field(cls, field: GameField) -> "GameJacobian":
        """The Jacobian of an existing :class:`GameField` (shares its graph)."""
        op = cls.__new__(cls)
        op._init_from(field)
        return op

    def _init_from(self, field: GameField) -> None:
        game = field.game
        super().__init__(game.n, game.dtype, game.device)
        self.field = field
        self.game = game

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        return self.field.jvp(u)

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        return self.field.vjp(u)


class PlayerHessian(LinearOperator):
    r"""Player :math:`i`'s own Hessian :math:`H_i = \nabla^2_{x_i} L_i` (symmetric).

    The diagonal block :math:`J_{ii}` of the game Jacobian, on the player's own
    parameters only (shape :math:`n_i \times n_i`). Products by Pearlmutter's trick on
    the cached graph of :math:`\nabla_{x_i} L_i`.

    Parameters
    ----------
    game : Game
    player : str
        The player's name.
    batch : object
        Passed to the losses closure once, when the operator is built.
    seed : int, optional
        Seed for randomness inside the losses closure.
    """

    symmetric = True

    def __init__(
        self, game: Game, player: str, batch: Any = None, *, seed: int | None = None
    ) -> None:
        game.player_slice(player)  # raises a KeyError naming the players
        self._init_from(GameField(game, batch, seed=seed), player)

    @classmethod
    def from_field(cls, field: GameField, player: str) -> "PlayerHessian":
        """Player ``player``'s Hessian on an existing :class:`GameField` (shares its graph)."""
        field.game.player_slice(player)
        op = cls.__new__(cls)
        op._init_from(field, player)
        return op

    def _init_from(self, field: GameField, player: str) -> None:
        game = field.game
        super().__init__(game.sizes[player], game.dtype, game.device)
        self.field = field
        self.game = game
        self.player = player

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        return self.field.vjp(u, self.player)

    _rmatvec = _matvec

    def __repr__(self) -> str:
        return (
            f"PlayerHessian({self.player!r}, shape={self.shape}, dtype={self.dtype}, "
            f"device={self.device})"
        )
