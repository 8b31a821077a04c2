"""A Lightning run of a tiny GAN with specdiag's callback, for tests/probing/test_distributed.py.

    python lightning_ddp_script.py TRACE DEVICES

``DEVICES = 2``: ``strategy="ddp"`` on 2 CPU processes (Lightning relaunches this
script for rank 1), each rank on its half of every global batch of 16; ``DEVICES = 1``:
one process on the same global batches. The noise ``z`` is part of the data, so both
runs train and probe the same game.
"""

from __future__ import annotations

import sys
import warnings

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from specdiag import Game, toys
from specdiag.integrations.lightning import SpectrumCallback

GLOBAL_BATCH, STEPS = 16, 6


class LitGAN(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.gan = toys.mog_gan(hidden=8, depth=1, latent=4, seed=0, dtype=torch.float64)
        self.generator, self.discriminator = self.gan.generator, self.gan.discriminator
        data = self.gan.sample(GLOBAL_BATCH * STEPS, torch.Generator().manual_seed(1))
        self.data = TensorDataset(data["real"], data["z"])

    def train_dataloader(self) -> DataLoader:
        """Rank r of W gets rows [r B/W, (r+1) B/W) of every global batch of B."""
        W, r = self.trainer.world_size, self.global_rank
        per_rank = GLOBAL_BATCH // W
        rows = [b * GLOBAL_BATCH + r * per_rank + i for b in range(STEPS) for i in range(per_rank)]
        return DataLoader(Subset(self.data, rows), batch_size=per_rank, shuffle=False)

    def training_step(self, batch, batch_idx):
        real, z = batch
        for player, opt in zip(("discriminator", "generator"), reversed(self.optimizers())):
            opt.zero_grad()
            self.manual_backward(self.gan.losses({"real": real, "z": z})[player])
            opt.step()

    def configure_optimizers(self):
        return (
            torch.optim.SGD(self.generator.parameters(), lr=0.05),
            torch.optim.SGD(self.discriminator.parameters(), lr=0.05),
        )


def lit_game(module: L.LightningModule) -> Game:
    """The callback's ``game_fn``: the game of a :class:`LitGAN`."""
    assert isinstance(module, LitGAN)
    return module.gan.game


def main(path: str, devices: int) -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    module = LitGAN()
    callback = SpectrumCallback(
        lit_game,
        path,
        batch_fn=lambda b: {"real": b[0], "z": b[1]},
        every=2,
        k=3,
        tol=1e-10,
        operators=("jacobian", "generator"),
        resume=False,
    )
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        precision="64-true",
        use_distributed_sampler=False,
    )
    trainer.fit(module)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
