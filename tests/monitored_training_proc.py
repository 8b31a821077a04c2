"""A GAN training process with a SpectrumMonitor attached, for the crash test.

    python monitored_training_proc.py PATH

Trains a small mixture-of-Gaussians GAN for a very long time, probing every 3 steps,
and prints ``probed STEP`` (flushed) after every probe written to the trace.
"""

from __future__ import annotations

import sys

import torch

import specdiag as sd
from specdiag import toys


def main(path: str) -> None:
    torch.set_num_threads(1)
    gan = toys.mog_gan(hidden=16, depth=2, seed=0)
    probe_batch = gan.sample(64, generator=torch.Generator().manual_seed(1))
    monitor = sd.SpectrumMonitor(
        gan.game, path, every=3, k=4, probe_batch=probe_batch, resume=False
    )

    def callback(step: int, batch: dict) -> None:
        for record in monitor.step(step, batch):
            print(f"probed {record.step}", flush=True)

    gan.train(10**6, batch_size=64, callback=callback)


if __name__ == "__main__":
    main(sys.argv[1])
