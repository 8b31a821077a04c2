r"""Adam's, AdamW's and RMSprop's diagonal preconditioner, read from their state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ..game import Game

__all__ = ["optimizer_preconditioner"]


def optimizer_preconditioner(
    game: Game,
    optimizers: torch.optim.Optimizer
    | Iterable[torch.optim.Optimizer]
    | Mapping[str, torch.optim.Optimizer],
) -> torch.Tensor:
    r"""The diagonal preconditioner :math:`P` of Adam, AdamW or RMSprop, from their state.

    Adam and AdamW step by :math:`\eta\,\hat m / (\sqrt{\hat v} + \epsilon)` with the
    bias-corrected second moment :math:`\hat v = v / (1 - \beta_2^t)` (``amsgrad``: its
    running maximum); RMSprop by :math:`\eta\, g / (\sqrt{v} + \epsilon)` (``centered``:
    :math:`v - \bar g^2`). So, with the first moment replaced by the gradient, the step
    is :math:`x \leftarrow x - \eta P^{-1} v(x)` with
    :math:`P = \operatorname{diag}(\sqrt{\hat v} + \epsilon)`, and the update operator
    :math:`I - \eta P^{-1} J` is the effective Jacobian of Adam-trained GANs. Pass the
    result as ``preconditioner=`` to any update operator.

    Parameters
    ----------
    game : Game
    optimizers : Optimizer, iterable of Optimizer, or mapping of str to Optimizer
        Usually one per player; together they must hold every parameter of the game.

    Returns
    -------
    torch.Tensor
        :math:`\operatorname{diag}(P)`, shape ``(n,)``, in the game's flat parameter
        order, dtype and device.

    Raises
    ------
    TypeError
        An optimizer other than Adam, AdamW or RMSprop.
    ValueError
        A game parameter is in none of the optimizers, in two of them, or has no state
        yet (the optimizer has not stepped).
    """
    owners = _parameter_owners(optimizers)
    pieces = []
    for player in game.player_names:
        for index, p in enumerate(game.parameters(player)):
            where = f"parameter {index} of player {player!r} (shape {tuple(p.shape)})"
            if id(p) not in owners:
                raise ValueError(
                    f"{where} is in none of the optimizers given; pass the optimizers of every "
                    "player"
                )
            opt, group = owners[id(p)]
            state = opt.state.get(p)
            if not state:
                raise ValueError(
                    f"{where} has no {type(opt).__name__} state yet; build the preconditioner "
                    "after "
                    "the optimizer's first step()"
                )
            pieces.append(_second_moment_root(opt, group, state) + group["eps"])
    return game.layout.join(pieces)


_ADAPTIVE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop)


def _parameter_owners(
    optimizers: torch.optim.Optimizer
    | Iterable[torch.optim.Optimizer]
    | Mapping[str, torch.optim.Optimizer],
) -> dict[int, tuple[torch.optim.Optimizer, dict[str, Any]]]:
    """``{id(parameter): (optimizer, param group)}`` over all optimizers."""
    if isinstance(optimizers, torch.optim.Optimizer):
        optimizers = [optimizers]
    elif isinstance(optimizers, Mapping):
        optimizers = list(optimizers.values())
    owners: dict[int, tuple[torch.optim.Optimizer, dict[str, Any]]] = {}
    for opt in optimizers:
        if not isinstance(opt, _ADAPTIVE):
            raise TypeError(
                f"cannot read a diagonal preconditioner from {type(opt).__name__}; supported: "
                "torch.optim.Adam, AdamW and RMSprop"
            )
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) in owners:
                    raise ValueError(
                        f"a parameter of shape {tuple(p.shape)} appears in two optimizers or param "
                        "groups; each parameter must be stepped by one"
                    )
                owners[id(p)] = (opt, group)
    return owners


def _second_moment_root(
    opt: torch.optim.Optimizer, group: dict[str, Any], state: dict[str, Any]
) -> torch.Tensor:
    r""":math:`\sqrt{\hat v}` of one parameter (without :math:`\epsilon`)."""
    if isinstance(opt, torch.optim.RMSprop):
        v = state["square_avg"]
        if group["centered"]:
            v = v - state["grad_avg"] ** 2
        return v.sqrt()
    v = state["max_exp_avg_sq"] if group["amsgrad"] else state["exp_avg_sq"]
    correction = 1 - group["betas"][1] ** float(state["step"])
    return (v / correction).sqrt()
