"""The framework adapters against the real frameworks: Lightning, Ignite, accelerate.

Every run here trains a tiny GAN on 6 batches per epoch for 2 epochs (12 batches) with
``every=4``: the probes must sit at the 0-based batch indices 0, 4 and 8 of the whole
run, whatever the framework counts internally, the batch handed to the probe must be
the training batch with that index, and the monitor must be closed when the run ends.
The frameworks are imported plainly: a missing one is a failure, not a skip.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any, cast

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from ignite.engine import Engine, Events
from torch.utils.data import DataLoader, TensorDataset

from specdiag import Game, toys
from specdiag.integrations.ignite import SpectrumHandler, attach_spectrum_monitor
from specdiag.integrations.lightning import SpectrumCallback
from specdiag.monitor import SpectrumMonitor
from specdiag.trace import open_trace

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers:UserWarning",
    "ignore:.*isinstance\\(treespec, LeafSpec\\)",
)

BATCH, PER_EPOCH, EPOCHS, EVERY, LATENT = 16, 6, 2, 4, 4
EXPECTED = [0, 4, 8]  # range(0, PER_EPOCH * EPOCHS, EVERY)
MONITOR: dict[str, Any] = dict(every=EVERY, k=2, operators=("jacobian",))
OPEN_FOR_WRITING = "import sys, h5py; h5py.File(sys.argv[1], 'r+').close()"


def tiny_gan() -> toys.MoGGAN:
    return toys.mog_gan(hidden=8, depth=1, latent=LATENT, seed=0)


def real_data(gan: toys.MoGGAN) -> torch.Tensor:
    return gan.sample(BATCH * PER_EPOCH, torch.Generator().manual_seed(1))["real"]


def loader(data: torch.Tensor) -> DataLoader:
    return DataLoader(TensorDataset(data), batch_size=BATCH, shuffle=False)


def batch_at(data: torch.Tensor, step: int) -> torch.Tensor:
    """The real data of the batch with 0-based index ``step`` of the whole run."""
    start = (step % PER_EPOCH) * BATCH
    return data[start : start + BATCH]


class GameBatches:
    """``batch_fn``: the loader's ``[real]`` -> the game's ``{"real", "z"}``; records it."""

    def __init__(self, latent: int) -> None:
        self.latent = latent
        self.seen: list[torch.Tensor] = []

    def __call__(self, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        (real,) = batch
        self.seen.append(real.clone())
        z = torch.randn(len(real), self.latent, generator=torch.Generator().manual_seed(7))
        return {"real": real, "z": z}


def gan_step(gan: toys.MoGGAN, real: torch.Tensor, opt_g, opt_d, backward=None) -> None:
    """One alternating GAN update: the discriminator, then the generator."""
    backward = backward or (lambda loss: loss.backward())
    for player, opt in (("discriminator", opt_d), ("generator", opt_g)):
        z = torch.randn(len(real), gan.latent)
        opt.zero_grad()
        backward(gan.losses({"real": real, "z": z})[player])
        opt.step()


def assert_closed_trace(path, steps=EXPECTED) -> None:
    """The trace holds the expected probe steps and no writer holds the file open.

    Opened for writing by another process: HDF5 refuses that while a (SWMR) writer
    still has the file open, even in a process whose own opens it would share.
    """
    out = subprocess.run(
        [sys.executable, "-c", OPEN_FOR_WRITING, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"the trace is still open for writing: {out.stderr[-300:]}"
    with open_trace(path) as trace:
        assert list(trace.steps("jacobian")) == steps
        assert list(trace.probe_steps()) == steps
        assert len(trace) == len(steps)
        assert np.isfinite(trace.eigenvalues("jacobian")[:, 0]).all()


def assert_probed_batches(seen: list[torch.Tensor], data: torch.Tensor, steps=EXPECTED) -> None:
    assert len(seen) == len(steps)
    for real, step in zip(seen, steps):
        assert torch.equal(real, batch_at(data, step)), f"probe at step {step} saw another batch"


# ---------------------------------------------------------------------- Lightning
class LitGAN(L.LightningModule):
    """A GAN with manual optimisation: two optimisers, two optimiser steps per batch."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.gan = tiny_gan()
        self.generator, self.discriminator = self.gan.generator, self.gan.discriminator
        self.fail_at = fail_at

    def training_step(self, batch, batch_idx):
        if self.trainer.fit_loop.total_batch_idx == self.fail_at:
            raise RuntimeError("training failed on purpose")
        optimizers = self.optimizers()
        assert isinstance(optimizers, list)  # one per player
        opt_g, opt_d = optimizers
        gan_step(self.gan, batch[0], opt_g, opt_d, backward=self.manual_backward)

    def configure_optimizers(self):
        return (
            torch.optim.SGD(self.generator.parameters(), lr=0.01),
            torch.optim.SGD(self.discriminator.parameters(), lr=0.01),
        )


def lit_game(module: L.LightningModule) -> Game:
    """The callback's ``game_fn``: the game of a :class:`LitGAN`."""
    assert isinstance(module, LitGAN)
    return module.gan.game


class SaveAfterFirstEpoch(L.Callback):
    """Writes a checkpoint at the end of the first epoch."""

    def __init__(self, path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            trainer.save_checkpoint(self.path)


def lightning_trainer(max_epochs: int = EPOCHS, callbacks=()) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
    )


def lightning_callback(path, latent: int, **kwargs) -> tuple[SpectrumCallback, GameBatches]:
    batches = GameBatches(latent)
    return SpectrumCallback(lit_game, path, batch_fn=batches, **MONITOR, **kwargs), batches


def test_lightning_probes_at_batch_indices_not_global_step(tmp_path) -> None:
    path = tmp_path / "run.h5"
    module = LitGAN()
    data = real_data(module.gan)
    callback, batches = lightning_callback(path, module.gan.latent, swmr=True)
    trainer = lightning_trainer(callbacks=[callback])
    trainer.fit(module, loader(data))
    # Lightning counts optimiser steps: two per batch with two optimisers.
    assert trainer.global_step == 2 * PER_EPOCH * EPOCHS
    assert isinstance(callback.monitor, SpectrumMonitor) and callback.monitor.closed
    assert_closed_trace(path)
    assert_probed_batches(batches.seen, data)


def test_lightning_training_is_bit_identical_with_and_without_the_callback(tmp_path) -> None:
    def train(callbacks) -> list[torch.Tensor]:
        torch.manual_seed(3)
        module = LitGAN()
        lightning_trainer(callbacks=callbacks).fit(module, loader(real_data(module.gan)))
        return [p.detach().clone() for p in module.parameters()]

    callback, batches = lightning_callback(tmp_path / "run.h5", LATENT)
    with_probes, without = train([callback]), train([])
    assert len(batches.seen) == len(EXPECTED)
    assert all(torch.equal(a, b) for a, b in zip(with_probes, without))


def test_lightning_resumed_run_continues_the_batch_count(tmp_path) -> None:
    path, ckpt = tmp_path / "run.h5", tmp_path / "epoch1.ckpt"
    first = LitGAN()
    data = real_data(first.gan)
    callback, _ = lightning_callback(path, first.gan.latent)
    trainer = lightning_trainer(max_epochs=1, callbacks=[callback])
    trainer.fit(first, loader(data))
    trainer.save_checkpoint(ckpt)
    with open_trace(path) as trace:
        assert list(trace.steps("jacobian")) == [0, 4]

    callback, batches = lightning_callback(path, first.gan.latent)
    trainer = lightning_trainer(max_epochs=2, callbacks=[callback])
    trainer.fit(LitGAN(), loader(data), ckpt_path=ckpt)
    assert trainer.global_step == 2 * PER_EPOCH * EPOCHS
    assert_closed_trace(path)
    assert_probed_batches(batches.seen, data, steps=[8])


def test_lightning_rerun_from_an_earlier_checkpoint_replaces_later_probes(tmp_path) -> None:
    path, ckpt = tmp_path / "run.h5", tmp_path / "epoch1.ckpt"

    module = LitGAN()
    data = real_data(module.gan)
    callback, _ = lightning_callback(path, module.gan.latent)
    lightning_trainer(callbacks=[callback, SaveAfterFirstEpoch(ckpt)]).fit(module, loader(data))
    assert_closed_trace(path)

    callback, batches = lightning_callback(path, module.gan.latent)
    lightning_trainer(callbacks=[callback]).fit(LitGAN(), loader(data), ckpt_path=ckpt)
    assert_closed_trace(path)  # step 8 replaced, not duplicated
    assert_probed_batches(batches.seen, data, steps=[8])


def test_lightning_resume_removes_stale_probes_before_the_first_new_one(tmp_path) -> None:
    """Resumed after epoch 1 (batch 6), the run fails at once: probe 8 of the
    abandoned run must not stay in the trace."""
    path, ckpt = tmp_path / "run.h5", tmp_path / "epoch1.ckpt"

    module = LitGAN()
    data = real_data(module.gan)
    callback, _ = lightning_callback(path, module.gan.latent)
    lightning_trainer(callbacks=[callback, SaveAfterFirstEpoch(ckpt)]).fit(module, loader(data))
    assert_closed_trace(path, steps=[0, 4, 8])

    callback, _ = lightning_callback(path, module.gan.latent)
    with pytest.raises(RuntimeError, match="on purpose"):
        lightning_trainer(callbacks=[callback]).fit(
            LitGAN(fail_at=PER_EPOCH), loader(data), ckpt_path=ckpt
        )
    assert_closed_trace(path, steps=[0, 4])


def test_lightning_closes_the_monitor_when_training_fails(tmp_path) -> None:
    path = tmp_path / "run.h5"
    module = LitGAN(fail_at=6)
    data = real_data(module.gan)
    callback, batches = lightning_callback(path, module.gan.latent, swmr=True)
    with pytest.raises(RuntimeError, match="on purpose"):
        lightning_trainer(callbacks=[callback]).fit(module, loader(data))
    assert callback.monitor is not None and callback.monitor.closed
    assert_closed_trace(path, steps=[0, 4])
    assert_probed_batches(batches.seen, data, steps=[0, 4])


def test_lightning_other_ranks_do_nothing(tmp_path) -> None:
    path = tmp_path / "run.h5"
    module = LitGAN()
    callback, batches = lightning_callback(path, module.gan.latent)
    # a stand-in Trainer on rank 1: the attributes the callback reads, nothing else
    fake = SimpleNamespace(is_global_zero=False, fit_loop=SimpleNamespace(total_batch_idx=0))
    rank1 = cast(L.Trainer, fake)
    callback.on_fit_start(rank1, module)
    callback.on_train_batch_end(rank1, module, None, [torch.zeros(BATCH, 2)], 0)
    callback.on_fit_end(rank1, module)
    callback.teardown(rank1, module, "fit")
    assert callback.monitor is None and not batches.seen and not path.exists()


def test_lightning_callback_checks_its_arguments(tmp_path) -> None:
    with pytest.raises(TypeError, match="game_fn"):
        SpectrumCallback("not callable", tmp_path / "run.h5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batch_fn"):
        SpectrumCallback(lit_game, tmp_path / "run.h5", batch_fn=3)  # type: ignore[arg-type]
    callback = SpectrumCallback(lambda m: "not a game", tmp_path / "run.h5")  # type: ignore[arg-type, return-value]
    rank0 = cast(L.Trainer, SimpleNamespace(is_global_zero=True))  # a stand-in Trainer
    with pytest.raises(TypeError, match="specdiag.Game"):
        callback.on_fit_start(rank0, LitGAN())


# ---------------------------------------------------------------------- Ignite
def ignite_trainer(gan: toys.MoGGAN, fail_at: int | None = None) -> Engine:
    opt_g = torch.optim.SGD(gan.generator.parameters(), lr=0.01)
    opt_d = torch.optim.SGD(gan.discriminator.parameters(), lr=0.01)

    def update(engine: Engine, batch: list[torch.Tensor]) -> None:
        if engine.state.iteration - 1 == fail_at:
            raise RuntimeError("training failed on purpose")
        gan_step(gan, batch[0], opt_g, opt_d)

    return Engine(update)


def test_ignite_probes_at_batch_indices_and_closes(tmp_path) -> None:
    path = tmp_path / "run.h5"
    gan = tiny_gan()
    data = real_data(gan)
    trainer = ignite_trainer(gan)
    batches = GameBatches(gan.latent)
    handler = attach_spectrum_monitor(
        trainer, SpectrumMonitor(gan.game, path, swmr=True, **MONITOR), batch_fn=batches
    )
    assert isinstance(handler, SpectrumHandler)
    state = trainer.run(loader(data), max_epochs=EPOCHS)
    assert state.iteration == PER_EPOCH * EPOCHS and handler.monitor.closed
    assert_closed_trace(path)
    assert_probed_batches(batches.seen, data)


def test_ignite_handler_lives_for_one_run_and_a_new_monitor_continues(tmp_path) -> None:
    path = tmp_path / "run.h5"
    gan = tiny_gan()
    data = real_data(gan)
    trainer = ignite_trainer(gan)
    first = attach_spectrum_monitor(
        trainer, SpectrumMonitor(gan.game, path, **MONITOR), batch_fn=GameBatches(gan.latent)
    )
    trainer.run(loader(data), max_epochs=1)
    assert first.monitor.closed
    assert not trainer.has_event_handler(first) and not trainer.has_event_handler(first._finish)
    batches = GameBatches(gan.latent)
    attach_spectrum_monitor(  # a new monitor continues the trace
        trainer, SpectrumMonitor(gan.game, path, resume=True, **MONITOR), batch_fn=batches
    )
    trainer.run(loader(data), max_epochs=EPOCHS)  # Ignite continues: iterations 7 to 12
    assert_closed_trace(path)
    assert_probed_batches(batches.seen, data, steps=[8])


def test_ignite_detached_handler_leaves_exceptions_raised(tmp_path) -> None:
    gan = tiny_gan()
    trainer = ignite_trainer(gan, fail_at=2)
    handler = attach_spectrum_monitor(
        trainer,
        SpectrumMonitor(gan.game, tmp_path / "run.h5", **MONITOR),
        batch_fn=GameBatches(gan.latent),
    )
    handler.detach()
    handler.detach()  # idempotent
    with pytest.raises(RuntimeError, match="on purpose"):
        trainer.run(loader(real_data(gan)), max_epochs=EPOCHS)
    assert not handler.monitor.closed  # detached: no longer its business
    handler.monitor.close()
    with pytest.raises(RuntimeError, match="already attached"):
        SpectrumHandler(handler.monitor).attach(trainer).attach(trainer)


def test_ignite_probes_on_a_given_event_whatever_the_schedule(tmp_path) -> None:
    path = tmp_path / "run.h5"
    gan = tiny_gan()
    data = real_data(gan)
    trainer = ignite_trainer(gan)
    batches = GameBatches(gan.latent)
    monitor = SpectrumMonitor(gan.game, path, every=1000, k=2, operators=("jacobian",))
    SpectrumHandler(monitor, batch_fn=batches, event=Events.EPOCH_COMPLETED).attach(trainer)
    trainer.run(loader(data), max_epochs=EPOCHS)
    last = [PER_EPOCH - 1, 2 * PER_EPOCH - 1]  # the last batch of each epoch
    assert_closed_trace(path, steps=last)
    assert_probed_batches(batches.seen, data, steps=last)


def test_ignite_filtered_event_is_its_own_schedule(tmp_path) -> None:
    path = tmp_path / "run.h5"
    gan = tiny_gan()
    trainer = ignite_trainer(gan)
    monitor = SpectrumMonitor(gan.game, path, every=1000, k=2, operators=("jacobian",))
    attach_spectrum_monitor(
        trainer,
        monitor,
        batch_fn=GameBatches(gan.latent),
        event=Events.ITERATION_COMPLETED(every=EVERY),
    )
    trainer.run(loader(real_data(gan)), max_epochs=EPOCHS)
    assert_closed_trace(path, steps=[3, 7, 11])  # after iterations 4, 8, 12 (1-based)


def test_ignite_reraises_and_closes_when_training_fails(tmp_path) -> None:
    path = tmp_path / "run.h5"
    gan = tiny_gan()
    data = real_data(gan)
    trainer = ignite_trainer(gan, fail_at=6)
    batches = GameBatches(gan.latent)
    handler = attach_spectrum_monitor(
        trainer, SpectrumMonitor(gan.game, path, swmr=True, **MONITOR), batch_fn=batches
    )
    with pytest.raises(RuntimeError, match="on purpose"):
        trainer.run(loader(data), max_epochs=EPOCHS)
    assert handler.monitor.closed
    assert_closed_trace(path, steps=[0, 4])
    assert_probed_batches(batches.seen, data, steps=[0, 4])


def test_ignite_leaves_exceptions_to_the_users_own_handler(tmp_path) -> None:
    path = tmp_path / "run.h5"
    gan = tiny_gan()
    trainer = ignite_trainer(gan, fail_at=6)
    caught: list[BaseException] = []
    trainer.add_event_handler(Events.EXCEPTION_RAISED, lambda engine, e: caught.append(e))
    handler = attach_spectrum_monitor(
        trainer,
        SpectrumMonitor(gan.game, path, swmr=True, **MONITOR),
        batch_fn=GameBatches(gan.latent),
    )
    trainer.run(loader(real_data(gan)), max_epochs=EPOCHS)  # the user's handler swallows it
    assert caught and "on purpose" in str(caught[0]) and handler.monitor.closed
    assert_closed_trace(path, steps=[0, 4])


def test_ignite_handler_checks_its_arguments(tmp_path) -> None:
    with pytest.raises(TypeError, match="SpectrumMonitor"):
        SpectrumHandler(object())  # type: ignore[arg-type]
    monitor = SpectrumMonitor(tiny_gan().game, tmp_path / "run.h5", **MONITOR)
    with pytest.raises(TypeError, match="batch_fn"):
        SpectrumHandler(monitor, batch_fn=3)  # type: ignore[arg-type]
    monitor.close()


# ---------------------------------------------------------------------- accelerate
def test_accelerate_recipe_probes_on_the_main_process(tmp_path) -> None:
    path = tmp_path / "run.h5"
    gan = tiny_gan()
    data = real_data(gan)
    accelerator = Accelerator(cpu=True)
    opt_g = torch.optim.SGD(gan.generator.parameters(), lr=0.01)
    opt_d = torch.optim.SGD(gan.discriminator.parameters(), lr=0.01)
    G, D, opt_g, opt_d, train_loader = accelerator.prepare(
        gan.generator, gan.discriminator, opt_g, opt_d, loader(data)
    )
    G0, D0 = accelerator.unwrap_model(G), accelerator.unwrap_model(D)
    game = toys.MoGGAN(G0, D0, centres=gan.centres, std=gan.std, latent=gan.latent).game
    assert {id(p) for p in game.parameters()} == {id(p) for p in gan.game.parameters()}
    batches = GameBatches(gan.latent)
    monitor = SpectrumMonitor(game, path, **MONITOR) if accelerator.is_main_process else None
    trained = toys.MoGGAN(G, D, centres=gan.centres, std=gan.std, latent=gan.latent)
    step = 0
    for _ in range(EPOCHS):
        for batch in train_loader:
            gan_step(trained, batch[0], opt_g, opt_d, backward=accelerator.backward)
            if monitor is not None and monitor.due(step):
                monitor.step(step, batches(batch))
            step += 1
    if monitor is not None:
        monitor.close()
    assert accelerator.is_main_process and step == PER_EPOCH * EPOCHS
    assert_closed_trace(path)
    assert_probed_batches(batches.seen, data)


# ---------------------------------------------------------------------- imports
def test_importing_specdiag_needs_no_framework() -> None:
    code = (
        "import sys, specdiag, specdiag.integrations\n"
        "loaded = [m for m in ('lightning', 'pytorch_lightning', 'ignite', 'accelerate')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_lightning_adapter_falls_back_to_pytorch_lightning() -> None:
    code = (
        "import sys\n"
        "sys.modules['lightning'] = None  # as if only pytorch_lightning were installed\n"
        "import pytorch_lightning\n"
        "from specdiag.integrations.lightning import SpectrumCallback\n"
        "assert issubclass(SpectrumCallback, pytorch_lightning.Callback)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
