"""What several toys share: the consensus term and the check of a non-negative weight."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..game import Game

__all__ = ["with_consensus", "check_weight"]


def with_consensus(
    game: Game, losses: dict[str, torch.Tensor], gamma: float
) -> dict[str, torch.Tensor]:
    r"""Add consensus optimisation's :math:`\frac{\gamma}{2}\|v\|^2` to every player's loss.

    :math:`v = (\nabla_{x_1} L_1, \dots, \nabla_{x_P} L_P)` is differentiated here with
    ``create_graph=True``, so the field of the new losses is :math:`v + \gamma J^\top v`
    (Mescheder, Nowozin and Geiger, 2017). ``gamma = 0`` returns ``losses`` unchanged.
    """
    if gamma == 0:
        return losses
    squared = sum(
        g.pow(2).sum()
        for p in game.player_names
        for g in torch.autograd.grad(losses[p], list(game.parameters(p)), create_graph=True)
    )
    return {p: loss + 0.5 * gamma * squared for p, loss in losses.items()}


def check_weight(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a finite number >= 0."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
