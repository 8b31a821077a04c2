#!/usr/bin/env python
"""Cost of the spectral density (SLQ) and the trace estimate (Hutch++) of a GAN's Hessians.

The mixture-of-Gaussians GAN of specdiag.toys (``toys.mog_gan(hidden=220, depth=3)``,
about 200k parameters) is trained for 200 steps (``gan.train(200, seed=0)``); the probe
batch is ``gan.sample(256, torch.Generator().manual_seed(1))``. For each player's
Hessian ``sd.PlayerHessian(gan.game, player, batch)`` the script times one bare product
H u (the mean of ``--repeats`` products on fresh random vectors, after one warm-up),
then ``spectral_density`` (10 vectors x 80 Lanczos steps, full reorthogonalisation) and
``trace_estimate`` (Hutch++, 100 products), both with their defaults, and prints a
markdown table: products, wall seconds, milliseconds per product (wall time over
products), that as a multiple of one bare product, and the share of the wall time spent
outside the products (measured by timing every product inside the run).

Usage::

    python scripts/bench_density.py               # one thread, the full run (~3 min)
    python scripts/bench_density.py --threads 2   # torch intra-op threads
    python scripts/bench_density.py --smoke       # a tiny GAN: checks the script runs
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from typing import Any

import torch

import specdiag as sd
from specdiag import toys
from specdiag.linalg.density import spectral_density
from specdiag.linalg.hutchpp import TraceEstimate, trace_estimate


class Timed:
    """An operator that forwards to ``op`` and sums the seconds spent in its products."""

    def __init__(self, op: sd.PlayerHessian) -> None:
        self.op, self.shape, self.dtype, self.device = op, op.shape, op.dtype, op.device
        self.seconds = 0.0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.op.matvec(v)
        if out.is_cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return out


def bare_product_seconds(op: sd.PlayerHessian, repeats: int) -> float:
    """Mean seconds of one product H u on fresh random vectors, after one warm-up product."""
    gen = torch.Generator().manual_seed(0)
    vectors = [torch.randn(op.shape[0], generator=gen, dtype=op.dtype) for _ in range(repeats)]
    timed = Timed(op)
    timed.matvec(vectors[0].to(op.device))
    timed.seconds = 0.0
    for u in vectors:
        timed.matvec(u.to(op.device))
    return timed.seconds / repeats


def player_rows(gan: toys.MoGGAN, batch: dict, player: str, repeats: int) -> list[str]:
    op = sd.PlayerHessian(gan.game, player, batch)
    bare = bare_product_seconds(op, repeats)
    n = op.shape[0]
    rows = [f"| {player} | {n:,} | bare H u | 1 | {bare:.4f} | {bare * 1e3:.2f} | 1 | | |"]
    for method in (spectral_density, trace_estimate):
        timed = Timed(op)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = method(timed)
        assert not caught, [str(w.message) for w in caught]
        per = result.wall_time / result.n_matvec
        outside = 1 - timed.seconds / result.wall_time
        rows.append(
            f"| {player} | {n:,} | {method.__name__} | {result.n_matvec} | "
            f"{result.wall_time:.2f} | {per * 1e3:.2f} | {per / bare:.3f} | "
            f"{100 * outside:.0f}% | {summary(result)} |"
        )
    return rows


def summary(result: Any) -> str:
    if isinstance(result, TraceEstimate):
        return f"tr = {result.value:.5g} ± {result.stderr:.2g}"
    return f"nodes in [{result.nodes.min():.4g}, {result.nodes.max():.4g}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=20, help="products timed for the bare cost")
    parser.add_argument("--smoke", action="store_true", help="a tiny GAN, to check the script runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    hidden, depth, steps = (16, 2, 5) if args.smoke else (220, 3, 200)
    gan = toys.mog_gan(hidden=hidden, depth=depth)
    gan.train(steps, seed=0)
    batch = gan.sample(256, torch.Generator().manual_seed(1))
    sizes = ", ".join(f"{p} {n:,}" for p, n in gan.n_parameters.items())
    print(
        f"MoG GAN hidden={hidden} depth={depth} ({sizes}), {steps} training steps, batch 256; "
        f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or 'cpu'}\n"
    )
    print(
        "| player | n | method | products | wall s | ms / product | ÷ bare product "
        "| outside products | result |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for player in gan.game.player_names:
        for row in player_rows(gan, batch, player, args.repeats):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
