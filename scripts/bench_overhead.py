#!/usr/bin/env python
"""What monitoring costs a training run, side by side in one run.

Trains the same mixture-of-Gaussians MLP GAN (about 1M parameters, CPU, Adam,
simultaneous updates, batch 256) from the same seed three times: without a monitor,
with a monitor probing the game Jacobian, and with one probing the Jacobian and both
players' Hessians (k = 10, tol = 1e-3, every 1,000 steps by default). Prints the
overhead of each monitored run over the plain one and the cost of one probe in
training steps. Then, on the trained weights and the same probe batch, times the same
probe computed with scipy ARPACK over the same products (same k, tol, ncv), and shows
that ``max_matvecs`` bounds a probe and that the record says when it cut a solve short.

Usage::

    python scripts/bench_overhead.py                          # ~10 min on 2 cores
    python scripts/bench_overhead.py --steps 200 --every 100 --hidden 64   # quick look
    python scripts/bench_overhead.py --markdown docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_eigs import write_section

import specdiag as sd
from specdiag import toys

START, END = "<!-- bench_overhead:start -->", "<!-- bench_overhead:end -->"


def train(
    args: argparse.Namespace, operators: tuple[str, ...] | None, path: Path
) -> tuple[float, toys.MoGGAN, list]:
    """One training run; returns wall seconds, the trained GAN and the probe records."""
    gan = toys.mog_gan(hidden=args.hidden, depth=args.depth, seed=args.seed)
    probe_batch = gan.sample(args.batch, generator=torch.Generator().manual_seed(12345))
    records: list = []
    monitor = None
    if operators is not None:
        monitor = sd.SpectrumMonitor(
            gan.game,
            path,
            every=args.every,
            k=args.k,
            tol=args.tol,
            operators=operators,
            probe_batch=probe_batch,
            resume=False,
        )

    def callback(step: int, batch: dict) -> None:
        if monitor is not None:
            records.extend(monitor.step(step, batch))

    start = time.perf_counter()
    gan.train(
        args.steps,
        lr=1e-4,
        batch_size=args.batch,
        optimizer="adam",
        seed=args.seed,
        callback=callback,
    )
    wall = time.perf_counter() - start
    if monitor is not None:
        monitor.close()
    return wall, gan, records


def parameters(gan: toys.MoGGAN) -> list[torch.Tensor]:
    return [p.detach() for p in (*gan.generator.parameters(), *gan.discriminator.parameters())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument(
        "--budget", type=int, default=40, help="max_matvecs for the budget demonstration"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    command = "python scripts/bench_overhead.py " + " ".join(sys.argv[1:] if argv is None else argv)
    n = sum(toys.mog_gan_parameter_count(args.hidden, args.depth).values())
    players = ("generator", "discriminator")
    print(
        f"MoG GAN, {n:,d} parameters, {args.steps} steps, probe every {args.every}, k = {args.k}",
        flush=True,
    )

    # Warm-up: one-off costs (lazy imports on the first optimiser step, allocator growth)
    # would otherwise land on whichever run comes first.
    toys.mog_gan(hidden=args.hidden, depth=args.depth, seed=args.seed).train(
        5, batch_size=args.batch
    )
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, tuple[float, toys.MoGGAN, list]] = {}
        for label, ops in [
            ("plain", None),
            ("J", ("jacobian",)),
            ("J + both Hessians", ("jacobian", *players)),
        ]:
            wall, gan, records = train(args, ops, Path(tmp) / f"{len(runs)}.h5")
            runs[label] = (wall, gan, records)
            print(f"  {label:18s} {wall:8.1f} s  ({len(records)} probes)", flush=True)
    plain_wall, gan, _ = runs["plain"]
    step_s = plain_wall / args.steps
    identical = all(
        all(torch.equal(a, b) for a, b in zip(parameters(gan), parameters(other)))
        for _, other, _ in list(runs.values())[1:]
    )

    # ARPACK on the same probe (the plain run's trained weights, same batch, same k/tol/ncv).
    batch = gan.sample(args.batch, generator=torch.Generator().manual_seed(12345))
    compare = {}
    for backend in ("krylov-schur", "arpack"):
        start = time.perf_counter()
        rec = sd.probe(gan.game, batch, k=args.k, tol=args.tol, backend=backend)
        compare[backend] = (time.perf_counter() - start, rec)
    budget = sd.probe(
        gan.game, batch, k=args.k, tol=args.tol, max_matvecs=args.budget, on_error="ignore"
    )

    lines = [
        START,
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads; torch "
        f"{torch.__version__}; "
        f"{datetime.date.today().isoformat()}.  ",
        f"GAN: {n:,d} parameters (hidden {args.hidden}, depth {args.depth}), batch {args.batch}, "
        "Adam; "
        f"{args.steps} steps; probes every {args.every} steps (k = {args.k}, tol = {args.tol}); "
        f"one training step {1e3 * step_s:.1f} ms.",
        "",
        "| run | wall s | overhead | probes | mean probe s | one probe in training steps |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, (wall, _, records) in runs.items():
        if label == "plain":
            lines.append(f"| {label} | {wall:.1f} | — | 0 | — | — |")
            continue
        probe_s = sum(r.wall_time for r in records) / max(len(records), 1)
        lines.append(
            f"| monitor: {label} | {wall:.1f} | {100 * (wall - plain_wall) / plain_wall:+.1f}% | "
            f"{len(records)} "
            f"| {probe_s:.2f} | {probe_s / step_s:.0f} |"
        )
    lines += [
        "",
        f"Final parameters of the monitored runs bit-identical to the plain run: **{identical}**.",
        "",
        "The same probe (trained weights, same batch, same k, tol and ncv) by both backends:",
        "",
        "| operator | products specdiag / ARPACK | solve s specdiag / ARPACK |",
        "|---|---:|---:|",
    ]
    ours, ref = compare["krylov-schur"][1], compare["arpack"][1]
    for name in ours.operators:
        a, b = ours[name], ref[name]
        lines.append(
            f"| {name} | {a.n_matvec} / {b.n_matvec} | {a.wall_time:.2f} / {b.wall_time:.2f} |"
        )
    ratio = compare["krylov-schur"][0] / compare["arpack"][0]
    lines += [
        f"| whole probe (incl. building the graph) | | {compare['krylov-schur'][0]:.2f} / "
        f"{compare['arpack'][0]:.2f} "
        f"(ratio {ratio:.2f}) |",
        "",
        f"`max_matvecs = {args.budget}`: "
        + ", ".join(
            f"{name} {r.n_matvec} products, status `{r.status}`"
            for name, r in budget.operators.items()
        )
        + f"; whole probe {budget.wall_time:.2f} s.",
        END,
    ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.markdown:
        write_section(args.markdown, text, START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
