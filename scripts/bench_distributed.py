#!/usr/bin/env python
"""Distributed probes on one machine: time and peak memory for 1, 2 and 4 processes.

The mixture-of-Gaussians GAN of ``specdiag.toys`` (``hidden=576, depth=4``: 2,007,363
parameters) after a few training steps is probed on a global batch of 256 split
evenly over W = 1, 2, 4 processes (gloo, CPU; each process gets cores / W torch
threads), with the Krylov basis replicated on every rank and, for W > 1, sharded
over the ranks. Printed per run: wall time of the probe (all three operators), its
products, the peak resident memory of the busiest rank, the basis per rank, and the
largest difference of the eigenvalues from the single-process probe, relative to
|λ_max|.

Usage::

    python scripts/bench_distributed.py                    # the full table (~10 min, 2 cores)
    python scripts/bench_distributed.py --quick            # a small GAN: checks the script runs
    python scripts/bench_distributed.py --markdown docs/benchmarks.md   # also write the table there
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp
from torch import distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eigs import write_section  # noqa: E402

import specdiag as sd  # noqa: E402
from specdiag import toys  # noqa: E402
from specdiag.probing.memory import probe_memory  # noqa: E402

START, END = "<!-- bench_distributed:start -->", "<!-- bench_distributed:end -->"


def worker(
    rank: int, world_size: int, store: str, args: argparse.Namespace, sharded: bool, queue: Any
) -> None:
    """One rank: train (identically on every rank), probe its shard, report rank 0's numbers."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    dist.init_process_group(
        "gloo",
        store=dist.FileStore(store, world_size),
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=1800),
    )
    try:
        gan = toys.mog_gan(hidden=args.hidden, depth=args.depth, seed=0)
        gan.train(args.train_steps, seed=0)
        batch = gan.sample(args.batch, torch.Generator().manual_seed(1))
        size = args.batch // world_size
        mine = {key: value[rank * size : (rank + 1) * size] for key, value in batch.items()}
        start = time.perf_counter()
        record = sd.probe(
            gan.game, mine, k=args.k, tol=args.tol, shard_basis=sharded, on_error="ignore"
        )
        seconds = time.perf_counter() - start
        peak = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0])
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
        memory = probe_memory(gan.game, k=args.k, world_size=world_size, shard_basis=sharded)
        if rank == 0:
            queue.put(
                {
                    "seconds": seconds,
                    "peak": float(peak),
                    "basis": memory.basis,
                    "n": gan.game.n,
                    "products": {name: op.n_matvec for name, op in record.items()},
                    "eigenvalues": {name: op.eigenvalues for name, op in record.items()},
                    "status": record.status,
                }
            )
    finally:
        dist.destroy_process_group()


def run(world_size: int, sharded: bool, args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [
            ctx.Process(
                target=worker,
                args=(r, world_size, os.path.join(tmp, "store"), args, sharded, queue),
            )
            for r in range(world_size)
        ]
        for p in procs:
            p.start()
        result = queue.get(timeout=3600)
        for p in procs:
            p.join()
    return result


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    lines = [
        START,
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (cores / W torch threads per "
        "process); "
        f"Python {platform.python_version()}, torch {torch.__version__}; {datetime.date.today()}. "
        " ",
        f"Game: MoG GAN hidden = {args.hidden}, depth = {args.depth}, n = {rows[0]['n']:,}, after "
        f"{args.train_steps} training steps; global probe batch {args.batch} split evenly; k = "
        f"{args.k}, "
        f"tol = {args.tol}; gloo.",
        "",
        "| processes | basis | probe s | products (J / H_G / H_D) | peak RSS per rank, MiB | "
        "basis per rank, MiB | max Δλ / \\|λ_max\\| vs 1 process | status |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    base = rows[0]["eigenvalues"]
    for row in rows:
        delta = max(
            float(np.nanmax(np.abs(row["eigenvalues"][k] - base[k])))
            / float(np.nanmax(np.abs(base[k])))
            if row["eigenvalues"][k].shape == base[k].shape
            else float("nan")
            for k in base
        )
        lines.append(
            f"| {row['world_size']} | {row['mode']} | {row['seconds']:.2f} | "
            f"{' / '.join(str(v) for v in row['products'].values())} | {row['peak'] / 2**20:.0f} | "
            f"{row['basis'] / 2**20:.1f} | {delta:.1e} | {row['status']} |"
        )
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small GAN and 1-2 processes, to check the script runs",
    )
    parser.add_argument("--markdown", type=Path, help="write the table into this Markdown file")
    args = parser.parse_args(argv)
    command = "python scripts/bench_distributed.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    if args.quick:
        args.hidden, args.depth, args.batch, args.train_steps, args.k, args.worlds = (
            16,
            2,
            64,
            20,
            4,
            [1, 2],
        )
    rows = []
    for world_size in args.worlds:
        for mode in ("replicated", "sharded") if world_size > 1 else ("replicated",):
            print(f"W = {world_size}, {mode} basis", flush=True)
            rows.append(
                {"world_size": world_size, "mode": mode, **run(world_size, mode == "sharded", args)}
            )
    text = markdown(rows, args, command)
    print()
    print(text)
    if args.markdown:
        write_section(args.markdown, text, START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
