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

import warnings
from typing import Any, Sequence

import torch

from .errors import user_stacklevel
from .game import Game
from .state import autograd_on, requires_grad_enabled

__all__ = ["LinearOperator", "TransposedOperator", "GameField", "GameJacobian", "PlayerHessian"]


class LinearOperator:
    """A square matrix-free operator on flat vectors, with product counters.

    Subclasses implement ``_matvec`` and ``_rmatvec``. The public ``matvec`` and
    ``rmatvec`` check the vector and count products.

    Attributes
    ----------
    shape : tuple of int
        ``(n, n)``.
    dtype, device
        Of the vectors the operator takes and returns.
    n_matvec, n_rmatvec : int
        Products :math:`A u` and :math:`A^\\top u` computed so far.
    symmetric : bool
        Whether the operator is symmetric (then ``rmatvec`` equals ``matvec``).
    prefer_transpose : bool
        Whether :math:`A^\\top u` is cheaper than :math:`A u`; eigenvalue solvers may
        then work on the transpose, whose eigenvalues are the same.
    """

    symmetric: bool = False
    prefer_transpose: bool = False

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        self.shape = (n, n)
        self.dtype = dtype
        self.device = device
        self.n_matvec = 0
        self.n_rmatvec = 0

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, u: torch.Tensor) -> torch.Tensor:
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(u).__name__}")
        if u.shape != (self.shape[1],):
            raise ValueError(
                f"{type(self).__name__} has shape {self.shape}; expected a vector of shape "
                f"({self.shape[1]},), got {tuple(u.shape)}"
            )
        if u.dtype != self.dtype or u.device != self.device:
            raise TypeError(
                f"{type(self).__name__} works on {self.dtype} vectors on {self.device}; got "
                f"{u.dtype} on {u.device} (convert with u.to(op.device, op.dtype))"
            )
        return u.detach()

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        """The product :math:`A u` of a vector of shape ``(n,)``."""
        u = self._check(u)
        self.n_matvec += 1
        return self._matvec(u)

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        """The product :math:`A^\\top u` of a vector of shape ``(n,)``."""
        u = self._check(u)
        self.n_rmatvec += 1
        return self._rmatvec(u)

    def __matmul__(self, u: torch.Tensor) -> torch.Tensor:
        return self.matvec(u)

    @property
    def n_products(self) -> int:
        """All products computed so far, :math:`A u` and :math:`A^\\top u`."""
        return self.n_matvec + self.n_rmatvec

    @property
    def T(self) -> "LinearOperator":
        """The transposed operator (shares this operator's graph and counters)."""
        return self if self.symmetric else TransposedOperator(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, device={self.device})"


class TransposedOperator(LinearOperator):
    """:math:`A^\\top` of an operator ``A``: its ``matvec`` is ``A.rmatvec``."""

    def __init__(self, base: LinearOperator) -> None:
        super().__init__(base.shape[0], base.dtype, base.device)
        self.base = base
        self.prefer_transpose = False

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        return self.base.rmatvec(u)

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        return self.base.matvec(u)

    @property
    def n_matvec(self) -> int:  # type: ignore[override]
        return self.base.n_rmatvec

    @n_matvec.setter
    def n_matvec(self, value: int) -> None:
        pass

    @property
    def n_rmatvec(self) -> int:  # type: ignore[override]
        return self.base.n_matvec

    @n_rmatvec.setter
    def n_rmatvec(self, value: int) -> None:
        pass

    @property
    def T(self) -> LinearOperator:
        return self.base


class GameField:
    r"""The vector field :math:`v(x)` of a game on one batch, with its graph kept.

    Building it calls the losses closure once (inside :meth:`Game.evaluation`, so
    models are left as they were) and differentiates each loss with respect to its
    own player's parameters with ``create_graph=True``. Operators built from one field
    share its graph: a probe of the Jacobian and every player's Hessian evaluates the
    losses once.

    Parameters
    ----------
    game : Game
    batch : object
        Passed to the losses closure unchanged.
    seed : int, optional
        Seed for the random numbers drawn inside the closure (see
        :meth:`Game.evaluation`).

    Attributes
    ----------
    value : torch.Tensor
        :math:`v(x)` as a flat vector (detached).
    losses : dict of str to float
        Each player's loss on this batch.
    """

    def __init__(self, game: Game, batch: Any = None, *, seed: int | None = None) -> None:
        self.game = game
        with game.evaluation(seed=seed):
            losses = game.losses(batch)
            grads = game.player_gradients(losses, create_graph=True)
        self.losses = {k: float(v.detach()) for k, v in losses.items()}
        self._grads = grads
        self.value = game.layout.join(grads)
        self._dual: tuple[torch.Tensor, list[int], list[torch.Tensor]] | None = None
        _warn_if_uncoupled(game, grads)

    def _with_graph(self, indices: Sequence[int]) -> list[int]:
        return [i for i in indices if self._grads[i].requires_grad]

    def vjp(self, u: torch.Tensor, player: str | None = None) -> torch.Tensor:
        r""":math:`J^\top u`, or :math:`H_i u` for ``player`` :math:`i` (flat vectors).

        For a player, ``u`` and the result live in that player's coordinates.
        """
        game = self.game
        params = game.parameters(player)
        layout = game.player_layout(player)
        indices = game.player_tensors(player)
        outs = self._with_graph(indices)
        if not outs:
            return torch.zeros_like(u)
        pieces = layout.split(u)
        with autograd_on(game.device), requires_grad_enabled(params):
            res = torch.autograd.grad(
                [self._grads[i] for i in outs],
                params,
                grad_outputs=[pieces[i - indices.start] for i in outs],
                retain_graph=True,
                allow_unused=True,
            )
        return layout.join(res)

    def jvp(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`J u` by the double-vjp trick on the cached graph."""
        game = self.game
        params = game.parameters()
        with autograd_on(game.device), requires_grad_enabled(params):
            if self._dual is None:
                w = torch.zeros(game.n, dtype=game.dtype, device=game.device, requires_grad=True)
                outs = self._with_graph(range(len(self._grads)))
                w_pieces = game.layout.split(w)
                g = torch.autograd.grad(
                    [self._grads[i] for i in outs],
                    params,
                    grad_outputs=[w_pieces[i] for i in outs],
                    create_graph=True,
                    allow_unused=True,
                )
                live = [i for i, gi in enumerate(g) if gi is not None and gi.requires_grad]
                self._dual = (w, live, [g[i] for i in live])
            w, live, g_live = self._dual
            if not live:
                return torch.zeros_like(u)
            pieces = game.layout.split(u)
            (res,) = torch.autograd.grad(
                g_live, w, grad_outputs=[pieces[i] for i in live], retain_graph=True
            )
        return res.detach()


def _warn_if_uncoupled(game: Game, grads: Sequence[torch.Tensor]) -> None:
    """Warn when a player's gradient does not depend on any other player's parameters.

    In a GAN this almost always means the losses closure detached the generator's
    output inside the discriminator's loss, which removes the coupling blocks from J.
    """
    if len(game.player_names) < 2:
        return
    for name in game.player_names:
        roots = [grads[i].grad_fn for i in game.player_tensors(name) if grads[i].grad_fn is not None]
        others = {id(p) for other in game.player_names if other != name for p in game.parameters(other)}
        if roots and not _reaches(roots, others):
            warnings.warn(
                f"the gradient of player {name!r} does not depend on any other player's "
                "parameters, so its off-diagonal blocks of the game Jacobian are zero. If the "
                "losses closure detaches another player's output (as a GAN's discriminator step "
                "usually does), remove the detach: each loss is differentiated only with respect "
                "to its own player's parameters anyway.",
                stacklevel=user_stacklevel(),
            )


def _reaches(roots: list[Any], targets: set[int]) -> bool:
    """Whether the autograd graph below ``roots`` accumulates into a tensor in ``targets``."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) in targets:
            return True
        stack.extend(nxt for nxt, _ in node.next_functions)
    return False


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
    >>> J = sd.GameJacobian(game, batch)          # doctest: +SKIP
    >>> r = sd.eigs(J, k=10)                      # doctest: +SKIP
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

    def __init__(self, game: Game, player: str, batch: Any = None, *, seed: int | None = None) -> None:
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
        return f"PlayerHessian({self.player!r}, shape={self.shape}, dtype={self.dtype}, device={self.device})"
