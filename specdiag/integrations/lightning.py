"""Lightning 2.x: probe the game's spectrum while ``Trainer.fit`` runs.

:class:`SpectrumCallback` builds a :class:`~specdiag.SpectrumMonitor` when fitting
starts, passes it every completed training batch, and closes it when fitting ends or
fails. It is written for GANs trained with manual optimisation
(``self.automatic_optimization = False`` and one optimiser per player), and works with
any LightningModule whose game you can build.

Works with ``lightning.pytorch`` (the ``lightning`` package) and, when that is not
installed, with the standalone ``pytorch_lightning`` package.

Step convention: the step given to the monitor is the 0-based index of the training
batch just completed, counted over the whole run (epochs included), the same number as
``step`` in ``for step, batch in enumerate(loader)``. It is read from
``trainer.fit_loop.total_batch_idx``, which Lightning saves in its checkpoints, so a
resumed run continues the count. It is *not* ``trainer.global_step``: with manual
optimisation that counts optimiser steps, twice per batch in a GAN with two optimisers.
"""

from __future__ import annotations

from typing import Any, Callable

from ..game import Game
from ..monitor import SpectrumMonitor
from ..probing.distributed import resolve_group

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError:  # the standalone package of Lightning 2.x
    from pytorch_lightning import (  # type: ignore[assignment, unused-ignore]
        Callback,
        LightningModule,
        Trainer,
    )

__all__ = ["SpectrumCallback"]


class SpectrumCallback(Callback):
    """A Lightning callback that runs a :class:`~specdiag.SpectrumMonitor` during fit.

    Parameters
    ----------
    game_fn : callable
        ``game_fn(pl_module) -> Game``: how to build the game from the LightningModule,
        e.g. ``lambda m: sd.Game({"generator": m.G, "discriminator": m.D}, m.game_losses)``.
        Called in ``on_fit_start``, after the model has been moved to its device.
    path : str or os.PathLike
        The trace file, passed to the monitor.
    batch_fn : callable, optional
        ``batch_fn(batch) -> game batch``: turns the training batch Lightning passes to
        ``on_train_batch_end`` into the batch the game's loss closure takes. Called
        only when a probe is due. Default: the training batch as it is.
    **monitor_kwargs
        Passed to :class:`~specdiag.SpectrumMonitor` (``every``, ``k``, ``operators``,
        ``probe_batch``, ``resume``, ...). ``every`` counts training batches.

    Attributes
    ----------
    monitor : SpectrumMonitor or None
        The running monitor; ``None`` before fitting starts, and on processes other
        than global rank 0 unless probes are distributed. It stays readable after
        fitting (closed), e.g. ``monitor.last``.

    Notes
    -----
    * Multi-process strategies (``strategy="ddp"``): when ``torch.distributed`` is
      initialised with more than one rank, every rank builds a monitor and probes its
      own training batch; products are averaged over the ranks, so the spectrum is that
      of the global batch (:mod:`specdiag.probing.distributed`), and only rank 0 writes the
      trace. With ``distributed=False`` in ``monitor_kwargs`` the monitor exists only
      on global rank 0 (``trainer.is_global_zero``) and probes its own batch; other
      ranks do nothing. Either way the probe reads the model through the game, whose
      players are unwrapped from DDP, so DDP's gradient hooks and buckets are not
      involved.
    * Step: ``trainer.fit_loop.total_batch_idx`` at ``on_train_batch_end``, the
      0-based index of the batch over the whole run; a run resumed from a checkpoint
      continues it: the callback then passes ``resume_step`` (the restored batch count),
      so the monitor, created in ``on_train_start`` once Lightning has restored the
      checkpoint, continues the trace and removes at once the probes at or after the
      step it resumes from. A fresh ``fit`` onto an existing trace needs ``resume=`` or
      ``overwrite=True`` in ``monitor_kwargs``, as the monitor itself does.
    * The fixed probe batch, if any, is moved to the game's device by the monitor.
    * The monitor is closed in ``on_fit_end``, ``on_exception`` and ``teardown``;
      closing is idempotent. A new ``fit`` builds a new monitor on the same file.
    """

    def __init__(
        self,
        game_fn: Callable[[LightningModule], Game],
        path: Any,
        *,
        batch_fn: Callable[[Any], Any] | None = None,
        **monitor_kwargs: Any,
    ) -> None:
        if not callable(game_fn):
            raise TypeError(
                "game_fn must be a callable game_fn(pl_module) -> specdiag.Game, "
                f"got {type(game_fn).__name__}"
            )
        if batch_fn is not None and not callable(batch_fn):
            raise TypeError(f"batch_fn must be callable or None, got {type(batch_fn).__name__}")
        self.game_fn = game_fn
        self.path = path
        self.batch_fn = batch_fn
        self.monitor_kwargs = monitor_kwargs
        self.monitor: SpectrumMonitor | None = None
        self._game: Game | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Build the game from the module (on rank zero unless probes are distributed)."""
        self._close()
        self.monitor = self._game = None
        if (
            not trainer.is_global_zero
            and resolve_group(self.monitor_kwargs.get("distributed")) is None
        ):
            return
        game = self.game_fn(pl_module)
        if not isinstance(game, Game):
            raise TypeError(f"game_fn must return a specdiag.Game, got {type(game).__name__}")
        self._game = game

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Open the monitor, continuing the trace when the run resumes a checkpoint."""
        # Lightning restores a checkpoint's loop state after on_fit_start: only now does
        # the batch counter say where a resumed run restarts.
        if self._game is None:
            return
        kwargs = dict(self.monitor_kwargs)
        restart = trainer.fit_loop.total_batch_idx + 1
        if restart > 0:  # resumed from a checkpoint: continue the trace from there
            kwargs.setdefault("resume_step", restart)
        self.monitor = SpectrumMonitor(self._game, self.path, **kwargs)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Probe after the optimiser steps when the schedule says this batch is due."""
        if self.monitor is None:
            return
        step = trainer.fit_loop.total_batch_idx
        if self.monitor.due(step):
            self.monitor.step(step, batch if self.batch_fn is None else self.batch_fn(batch))

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Close the monitor and its trace."""
        self._close()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Close the trace so that everything probed before the exception is kept."""
        self._close()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Close the monitor if the run ends without on_fit_end."""
        self._close()

    def _close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
