r"""Training a game by simultaneous updates: one optimiser per player, one loop.

At every step one batch is drawn, every player's gradient of its own loss
:math:`\nabla_{x_i} L_i` is taken at the same point (together they are the vector field
:math:`v`), then each player's optimiser steps. With plain SGD this is exactly
:math:`x \leftarrow x - \eta\, v(x)`, the map whose Jacobian :math:`I - \eta J` the
dynamics operators of :mod:`specdiag.dynamics` study.

* :data:`OPTIMIZERS`: the registry of optimisers by name, each with the options it takes
  and their defaults (adding one is one line here);
* :func:`make_optimizers`: one optimiser per player, from a name;
* :func:`train_steps`: the loop, on optimisers built beforehand;
* :func:`train_game`: both;
* :func:`check_run`: the checks of a run's length and batch size.

The GAN toys' ``train`` methods (:class:`~specdiag.toys.gan.TwoPlayerGAN`) build their
optimisers with :func:`make_optimizers` and run :func:`train_steps`.

Randomness: the batches come from ``sample(batch_size, generator)`` with a private
:class:`torch.Generator` seeded by ``seed``; the global random streams are neither used
nor changed. Same seed and same start, same parameters afterwards (bitwise, on the same
machine and thread count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..game import Game
from .common import check_weight

__all__ = [
    "OPTIMIZERS",
    "OptimizerSpec",
    "make_optimizers",
    "optimizer_options",
    "train_steps",
    "train_game",
    "check_run",
]

#: ``sample(batch_size, generator) -> batch``, drawing from the private generator given.
Sampler = Callable[[int, torch.Generator], Any]
#: ``callback(step, batch)``, called after each step's update; what it returns is ignored.
Callback = Callable[[int, Any], object]
#: ``losses(batch) -> {player: scalar loss}``.
LossClosure = Callable[[Any], Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one kind of optimiser: its factory and the options it takes.

    Attributes
    ----------
    factory : callable
        ``factory(params, lr=lr, **options) -> torch.optim.Optimizer``, e.g. an
        optimiser class.
    defaults : mapping
        Every option besides ``lr`` that the optimiser takes here, with its default.
    """

    factory: Callable[..., torch.optim.Optimizer]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def build(self, params: list[torch.Tensor], lr: float, **options: Any) -> torch.optim.Optimizer:
        """``factory(params, lr=lr, **options)``, the defaults filling the options not given.

        Raises
        ------
        TypeError
            An option this optimiser does not take.
        """
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise TypeError(
                f"{getattr(self.factory, '__name__', self.factory)} takes the options "
                f"{sorted(self.defaults)} besides lr, got {unknown}"
            )
        return self.factory(params, lr=lr, **{**self.defaults, **options})


#: The optimisers by name. Adam's default betas are DCGAN's (0.5, 0.999), not torch's.
OPTIMIZERS: dict[str, OptimizerSpec] = {
    "adam": OptimizerSpec(torch.optim.Adam, {"betas": (0.5, 0.999)}),
    "sgd": OptimizerSpec(torch.optim.SGD, {"momentum": 0.0}),
    "rmsprop": OptimizerSpec(torch.optim.RMSprop, {"momentum": 0.0}),
}


def _spec(optimizer: str) -> OptimizerSpec:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {optimizer!r}")
    return OPTIMIZERS[optimizer]


def optimizer_options(optimizer: str, **candidates: Any) -> dict[str, Any]:
    """The options among ``candidates`` that ``optimizer`` takes (the others are dropped).

    For callers with one fixed set of keywords for every optimiser (the toys' ``train``
    methods take both ``betas`` and ``momentum``).

    Raises
    ------
    ValueError
        ``optimizer`` is not in :data:`OPTIMIZERS`.
    """
    spec = _spec(optimizer)
    return {k: v for k, v in candidates.items() if k in spec.defaults}


def make_optimizers(
    game: Game, optimizer: str = "adam", *, lr: float = 1e-4, **options: Any
) -> dict[str, torch.optim.Optimizer]:
    """One fresh optimiser per player, on that player's parameters.

    Parameters
    ----------
    game : Game
    optimizer : {"adam", "sgd", "rmsprop"}
        A name in :data:`OPTIMIZERS`.
    lr : float
        Learning rate of every player's optimiser (>= 0).
    **options
        The optimiser's own options (Adam: ``betas``; SGD and RMSprop: ``momentum``);
        the registry's defaults fill the others.

    Returns
    -------
    dict
        ``{player: torch.optim.Optimizer}`` in player order.

    Raises
    ------
    ValueError
        An unknown ``optimizer`` or a negative or non-finite ``lr``.
    TypeError
        An option the optimiser does not take.
    """
    spec = _spec(optimizer)
    check_weight("lr", lr)
    return {p: spec.build(list(game.parameters(p)), lr, **options) for p in game.player_names}


def check_run(steps: int, batch_size: int) -> None:
    """Refuse a negative number of steps or a batch size below 1."""
    if steps < 0 or batch_size < 1:
        raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {steps}, {batch_size}")


def train_steps(
    game: Game,
    sample: Sampler,
    optimizers: Mapping[str, torch.optim.Optimizer],
    steps: int,
    *,
    batch_size: int = 256,
    seed: int = 0,
    callback: Callback | None = None,
    losses: LossClosure | None = None,
) -> dict[str, torch.Tensor]:
    r"""Run ``steps`` simultaneous updates of every player with the given optimisers.

    Each step: ``batch = sample(batch_size, rng)``; ``L = losses(batch)``; for every
    player :math:`i`, :math:`g_i = \nabla_{x_i} L_i` (``torch.autograd.grad`` with
    ``retain_graph=True``, all at the same point, before any update); then for every
    player in turn ``.grad = g_i`` and ``optimizers[i].step()``; then
    ``callback(step, batch)``. At the end every player's ``.grad`` is set to ``None``.

    Parameters
    ----------
    game : Game
    sample : callable
        ``sample(batch_size, generator) -> batch``; it must draw from the generator
        given (a private :class:`torch.Generator` on the game's device, seeded by
        ``seed``), not from the global random streams.
    optimizers : mapping
        ``{player: optimizer}`` for every player of the game (e.g. from
        :func:`make_optimizers`); their state carries over between calls.
    steps : int
        Number of steps (>= 0).
    batch_size : int
    seed : int
    callback : callable, optional
        ``callback(step, batch)`` after each step's update (e.g. a
        ``SpectrumMonitor.step``).
    losses : callable, optional
        The loss closure stepped on; default ``game.losses``, which checks every loss
        and raises :class:`~specdiag.NonFiniteError` on NaN or Inf. The toys pass
        their own, unchecked closure: a run that diverges carries on and its history
        shows the NaN.

    Returns
    -------
    dict
        ``{player: losses}``, ``float64`` tensors of shape ``(steps,)``: each
        player's loss before its step's update.
    """
    check_run(steps, batch_size)
    players = game.player_names
    missing = [p for p in players if p not in optimizers]
    if missing:
        raise ValueError(f"optimizers must hold one optimiser per player; none for {missing}")
    closure = game.losses if losses is None else losses
    params = {p: list(game.parameters(p)) for p in players}
    rng = torch.Generator(device=game.device).manual_seed(seed)
    history = {p: torch.empty(steps, dtype=torch.float64) for p in players}
    for step in range(steps):
        batch = sample(batch_size, rng)
        values = closure(batch)
        grads = {p: torch.autograd.grad(values[p], params[p], retain_graph=True) for p in players}
        for p in players:
            for t, g in zip(params[p], grads[p]):
                t.grad = g
            optimizers[p].step()
            history[p][step] = values[p].item()
        if callback is not None:
            callback(step, batch)
    for p in players:
        optimizers[p].zero_grad(set_to_none=True)
    return history


def train_game(
    game: Game,
    sample: Sampler,
    steps: int,
    *,
    optimizer: str = "adam",
    lr: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
    callback: Callback | None = None,
    **optimizer_options: Any,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.optim.Optimizer]]:
    """Train every player of ``game`` by simultaneous updates with fresh optimisers.

    :func:`make_optimizers` then :func:`train_steps` (see both for the parameters).

    Returns
    -------
    history : dict
        ``{player: float64 losses of shape (steps,)}``, each before its step's update.
    optimizers : dict
        ``{player: optimizer}``, to continue with :func:`train_steps`.

    Examples
    --------
    >>> import torch
    >>> from specdiag import toys
    >>> gan = toys.mog_gan(hidden=8, depth=1)
    >>> history, opts = toys.train_game(gan.game, gan.sample, 3, optimizer="sgd", lr=0.01,
    ...                                 momentum=0.9, batch_size=16)
    >>> history["generator"].shape, type(opts["generator"]).__name__
    (torch.Size([3]), 'SGD')
    """
    check_run(steps, batch_size)
    opts = make_optimizers(game, optimizer, lr=lr, **optimizer_options)
    history = train_steps(
        game, sample, opts, steps, batch_size=batch_size, seed=seed, callback=callback
    )
    return history, opts
