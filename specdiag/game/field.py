r"""The vector field of a game on one batch, with its autograd graph kept.

:class:`GameField` evaluates :math:`v(x) = (\nabla_{x_1} L_1, \dots, \nabla_{x_P} L_P)`
once on one batch (``create_graph=True``) and offers the two products every operator of
:mod:`specdiag.game.operators` is built from: :math:`J^\top u` (and a player's
:math:`H_i u`) by one reverse pass, and :math:`J u` by the double-vjp trick. Because the
losses are evaluated once, the operators are fixed for the field's lifetime: noise,
dropout masks and the batch are drawn once, which a Krylov method needs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..errors import user_stacklevel
from .flat import ParameterLayout
from .game import Game
from .state import autograd_on, requires_grad_enabled

__all__ = ["GameField", "uncoupled_message"]


@dataclass(frozen=True)
class _Plan:
    """What one reverse product needs, looked up once per player and field."""

    params: tuple[torch.Tensor, ...]
    layout: ParameterLayout
    outputs: tuple[torch.Tensor, ...]  # the gradient tensors that have a graph
    positions: tuple[int, ...]  # their positions in the player's layout


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
    uncoupled : list of str
        The players whose gradient depends on no other player's parameters (their
        off-diagonal blocks of :math:`J` are zero: usually a detach in the closure); a
        warning says so when the field is built.
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
        self._plans: dict[str | None, _Plan] = {}
        self.uncoupled = _uncoupled_players(game, grads)
        if self.uncoupled:
            warnings.warn(uncoupled_message(self.uncoupled), stacklevel=user_stacklevel())

    def _with_graph(self, indices: Sequence[int]) -> list[int]:
        return [i for i in indices if self._grads[i].requires_grad]

    def _plan(self, player: str | None) -> _Plan:
        """The parameters, layout and graph outputs of ``player``'s products.

        Cached: they are fixed for the field's lifetime.
        """
        plan = self._plans.get(player)
        if plan is None:
            game = self.game
            indices = game.player_tensors(player)
            outs = self._with_graph(indices)
            plan = _Plan(
                params=game.parameters(player),
                layout=game.player_layout(player),
                outputs=tuple(self._grads[i] for i in outs),
                positions=tuple(i - indices.start for i in outs),
            )
            self._plans[player] = plan
        return plan

    def vjp(self, u: torch.Tensor, player: str | None = None) -> torch.Tensor:
        r""":math:`J^\top u`, or :math:`H_i u` for ``player`` :math:`i` (flat vectors).

        For a player, ``u`` and the result live in that player's coordinates.
        """
        plan = self._plan(player)
        if not plan.outputs:
            return torch.zeros_like(u)
        pieces = plan.layout.split(u)
        with autograd_on(self.game.device), requires_grad_enabled(plan.params):
            res = torch.autograd.grad(
                plan.outputs,
                plan.params,
                grad_outputs=[pieces[i] for i in plan.positions],
                retain_graph=True,
                allow_unused=True,
            )
        return plan.layout.join(res)

    def jvp(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`J u` by the double-vjp trick on the cached graph."""
        game = self.game
        params = self._plan(None).params
        with autograd_on(game.device), requires_grad_enabled(params):
            if self._dual is None:
                self._dual = self._dual_graph(params)
            w, live, g_live = self._dual
            if not live:
                return torch.zeros_like(u)
            pieces = game.layout.split(u)
            (res,) = torch.autograd.grad(
                g_live, w, grad_outputs=[pieces[i] for i in live], retain_graph=True
            )
        return res.detach()

    def _dual_graph(
        self, params: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, list[int], list[torch.Tensor]]:
        r"""The graph of :math:`g(w) = J^\top w` (built once, on the first :math:`J u`)."""
        game = self.game
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
        return w, live, [g[i] for i in live]


def uncoupled_message(players: Sequence[str]) -> str:
    """What an uncoupled game means and what to do about it."""
    names = ", ".join(repr(p) for p in players)
    return (
        f"the gradient of player(s) {names} does not depend on any other player's parameters, "
        "so their off-diagonal blocks of the game Jacobian are zero. If the losses closure "
        "detaches another player's output (as a GAN's discriminator step usually does), remove "
        "the detach: each loss is differentiated only with respect to its own player's "
        "parameters anyway."
    )


def _uncoupled_players(game: Game, grads: Sequence[torch.Tensor]) -> list[str]:
    """The players whose gradient does not depend on any other player's parameters.

    In a GAN this almost always means the losses closure detached the generator's
    output inside the discriminator's loss, which removes the coupling blocks from J.
    """
    if len(game.player_names) < 2:
        return []
    found = []
    for name in game.player_names:
        roots = [
            grads[i].grad_fn for i in game.player_tensors(name) if grads[i].grad_fn is not None
        ]
        others = {
            id(p) for other in game.player_names if other != name for p in game.parameters(other)
        }
        if roots and not _reaches(roots, others):
            found.append(name)
    return found


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
