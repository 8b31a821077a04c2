"""Multilayer perceptrons for the toys' players."""

from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["mlp", "ACTIVATIONS"]

#: Hidden activations by name.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}


def mlp(
    n_in: int, n_out: int, hidden: int, depth: int, activation: str, batchnorm: bool
) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden``: Linear [BatchNorm] activation, then Linear."""
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers.append(nn.Linear(width, hidden))
        if batchnorm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(ACTIVATIONS[activation]())
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)
