r"""What the GAN toys share: two players, their game, and a simultaneous training loop.

:class:`TwoPlayerGAN` holds a generator and a discriminator as the players
``"generator"`` and ``"discriminator"`` of a :class:`~specdiag.Game` whose losses are
the subclass's :meth:`~TwoPlayerGAN.losses`, and trains them by simultaneous updates
(:func:`~specdiag.toys.training.train_steps`): at every step one batch is drawn, both
players' gradients :math:`\nabla_{x_i} L_i` are taken at the same point (the vector
field :math:`v`), then each player's optimiser steps. With ``optimizer="sgd"`` and no
momentum this is exactly :math:`x \leftarrow x - \eta\, v(x)`.
"""

from __future__ import annotations

from typing import Callable, ClassVar

import torch
from torch import nn

from ..game import Game
from .training import check_run, make_optimizers, optimizer_options, train_steps

__all__ = ["TwoPlayerGAN"]


class TwoPlayerGAN:
    """A generator and a discriminator, their game and its training loop.

    Subclasses define :meth:`sample` and :meth:`losses`, and set :attr:`DEFAULT_LR`
    and :attr:`DEFAULT_BATCH_SIZE` for :meth:`train`.

    Parameters
    ----------
    generator, discriminator : nn.Module

    Attributes
    ----------
    generator, discriminator : nn.Module
    optimizers : dict
        ``{player: torch.optim.Optimizer}`` of the latest :meth:`train` (empty before),
        e.g. for ``UpdateRule(..., optimizers=lambda: gan.optimizers)``.
    game : Game
        Players ``"generator"`` and ``"discriminator"``, losses :meth:`losses`; its
        batch is a dict from :meth:`sample`.
    """

    #: Learning rate of :meth:`train` when none is given.
    DEFAULT_LR: ClassVar[float] = 1e-4
    #: Batch size of :meth:`train` when none is given.
    DEFAULT_BATCH_SIZE: ClassVar[int] = 256

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        self.generator, self.discriminator = generator, discriminator
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.game = Game({"generator": generator, "discriminator": discriminator}, self.losses)

    @property
    def n_parameters(self) -> dict[str, int]:
        """Trainable parameters per player, ``{"generator": n_G, "discriminator": n_D}``."""
        return self.game.sizes

    @property
    def dtype(self) -> torch.dtype:
        """The players' dtype."""
        return self.game.dtype

    @property
    def device(self) -> torch.device:
        """The players' device."""
        return self.game.device

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Draw a batch ``{"real": data, "z": latent noise}`` from ``generator``."""
        raise NotImplementedError

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The players' losses on ``batch``, nothing detached."""
        raise NotImplementedError

    def train(
        self,
        steps: int,
        *,
        lr: float | None = None,
        batch_size: int | None = None,
        optimizer: str = "adam",
        betas: tuple[float, float] = (0.5, 0.999),
        momentum: float = 0.0,
        seed: int = 0,
        callback: Callable[[int, dict[str, torch.Tensor]], object] | None = None,
    ) -> dict[str, torch.Tensor]:
        r"""Train both players by simultaneous updates (see the module).

        Parameters
        ----------
        steps : int
            Number of steps.
        lr : float, optional
            Learning rate of both optimisers; default :attr:`DEFAULT_LR`.
        batch_size : int, optional
            Default :attr:`DEFAULT_BATCH_SIZE`.
        optimizer : {"adam", "sgd", "rmsprop"}
            One optimiser per player, created afresh by each call and kept in
            :attr:`optimizers` before the first step, so a callback reads the
            optimisers in use.
        betas : tuple of float
            Adam's :math:`(\beta_1, \beta_2)`.
        momentum : float
            Momentum of SGD and RMSprop.
        seed : int
            Seeds the private generator that draws the batches; the global random
            streams are neither used nor changed. Same seed and same start, same
            parameters afterwards (bitwise, on the same machine and thread count).
        callback : callable, optional
            ``callback(step, batch)`` after each step's update (e.g. a
            ``SpectrumMonitor.step``); what it returns is ignored.

        Returns
        -------
        dict
            ``{"generator": losses, "discriminator": losses}``, ``float64`` tensors of
            shape ``(steps,)``: each player's loss before its step's update.
        """
        lr = self.DEFAULT_LR if lr is None else lr
        batch_size = self.DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        options = optimizer_options(optimizer, betas=betas, momentum=momentum)
        check_run(steps, batch_size)
        self.optimizers = make_optimizers(self.game, optimizer, lr=lr, **options)
        return train_steps(
            self.game,
            self.sample,
            self.optimizers,
            steps,
            batch_size=batch_size,
            seed=seed,
            callback=callback,
            losses=self.losses,
        )

    def _sizes(self) -> str:
        """``generator=n_G, discriminator=n_D`` for a repr."""
        return ", ".join(f"{k}={v}" for k, v in self.n_parameters.items())
