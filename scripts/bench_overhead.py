#!/usr/bin/env python
"""What watching costs a training run, side by side in one run.

Each GAN is trained from the same seed, with the same batches, five ways:

(a) plain, no monitor;
(b) a :class:`~specdiag.SpectrumMonitor` probing in the loop every 50 steps (k = 8,
    tol = 1e-3, the default operators: the game Jacobian and both players' Hessians,
    on a fixed probe batch of the training batch size);
(c) the same with ``budget=0.1``;
(d) ``defer=True``: snapshots only, nothing probed during training;
(e) (d)'s snapshots probed afterwards by :func:`specdiag.probe_snapshots` (timed on
    its own), whose eigenvalues are compared with (b)'s at the steps both probed.

Per run: wall seconds, wall time over the plain run's, probes, mean seconds per probe,
one probe in training steps, and whether the final parameters and buffers, the
optimiser states and the torch, numpy and Python random streams are bit-identical to
the plain run's. Then, on the MoG GAN: the products of a 20-probe monitor run with
``warm_start=False`` against the same 20 probes warm (the first 20 of run (b): the
same training and schedule), a probe bounded by ``max_matvecs``, and runs (a) and (c)
again over ``--budget-steps`` (12,000): over 2,000 steps a budget of 0.1 fits one probe
of a few hundred training steps, the longer run shows it holding over three or more.

Defaults: the MoG MLP GAN ``toys.mog_gan(hidden=128, depth=3)`` (68,995 parameters;
batch 256, Adam, learning rate 1e-4) for 2,000 steps; the conv GAN ``toys.conv_gan()``
(287,116 parameters; batch 64, Adam, learning rate 2e-4, betas (0.5, 0.999)) for 1,000
steps (``--conv-steps``): one of its steps costs about 15 of the MoG GAN's. Probes
every 50 steps, k = 8, tol = 1e-3, ``budget=0.1``, 20 warm/cold probes,
``max_matvecs`` 40, 2 torch threads (1 with ``--smoke``). Runs (a) and (d) are
repeated, interleaved in the order a d d a a d ... (a slow drift of the machine favours
neither), and the fastest of ``--repeats`` (3) counts: their difference is a few percent,
less than the spread between single runs on a shared machine. A
probe costs a few hundred training steps of either GAN, so nearly all the time goes
to the probes of runs (b) and (e) and of the warm run: about 18 minutes on a quiet
2-core CPU machine, 28 with the repeats and the longer budget runs.

Usage::

    python scripts/bench_overhead.py --markdown docs/benchmarks.md   # ~28 min, 2 cores
    python scripts/bench_overhead.py --smoke       # tiny GANs, few steps: checks it runs
    python scripts/bench_overhead.py --smoke --warm-probes 6   # flags given still apply
    python scripts/bench_overhead.py --gans mog --steps 1000         # one GAN, shorter
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from bench_eigs import write_section
from scipy.optimize import linear_sum_assignment

import specdiag as sd
from specdiag import toys
from specdiag.monitor.snapshots import read_snapshots

START, END = "<!-- bench_overhead:start -->", "<!-- bench_overhead:end -->"
#: Seed of the private generator that draws each GAN's fixed probe batch.
PROBE_BATCH_SEED = 12345
#: The issue's targets.
BUDGET_TARGET, MIN_BUDGET_PROBES, DEFER_TARGET = 1.12, 3, 1.03
DEFERRED_TOL, WARM_RATIO_TARGET = 1e-6, 0.6
#: The defaults of ``--smoke``: tiny GANs, few steps, one thread.
SMOKE = {
    "steps": 40, "conv_steps": 20, "hidden": 16, "depth": 1, "batch": 64, "conv_batch": 16,
    "every": 10, "k": 4, "warm_probes": 3, "max_matvecs": 10, "threads": 1, "repeats": 2,
    "budget_steps": 80,
}  # fmt: skip

Toy = Union[toys.MoGGAN, toys.ConvGAN]


@dataclass(frozen=True)
class Setup:
    """One GAN of the benchmark: how to build it, how long to train it, its batch."""

    key: str
    name: str
    build: Callable[[], Toy]
    steps: int
    batch: int
    sizes: str


@dataclass(frozen=True)
class Final:
    """What a run leaves behind: module states, optimiser states, global random streams."""

    modules: dict[str, dict[str, torch.Tensor]]
    optimizers: dict[str, dict[str, Any]]
    streams: tuple[Any, ...]


@dataclass(frozen=True)
class Run:
    """One timed run.

    ``seconds`` is the monitor's own time (probing, writing, saving), or the whole
    of ``probe_snapshots`` for run (e).
    """

    label: str
    wall: float
    probes: int
    seconds: float
    final: Final
    trace: Optional[Path] = None


# ---------------------------------------------------------------- runs


def setups(args: argparse.Namespace) -> list[Setup]:
    """The GANs asked for by ``--gans`` (with ``--smoke``, a tiny conv GAN)."""
    mog_sizes = (args.hidden, args.depth)
    conv_sizes = (4, 8, 8) if args.smoke else (24, 32, 64)  # channels, image size, latent
    mog = Setup(
        "mog",
        "MoG MLP GAN",
        lambda: toys.mog_gan(hidden=mog_sizes[0], depth=mog_sizes[1], seed=args.seed),
        args.steps,
        args.batch,
        f"hidden {mog_sizes[0]}, depth {mog_sizes[1]}",
    )
    conv = Setup(
        "conv",
        "conv GAN (DCGAN)",
        lambda: toys.conv_gan(
            channels=conv_sizes[0], image_size=conv_sizes[1], latent=conv_sizes[2], seed=args.seed
        ),
        args.conv_steps,
        args.conv_batch,
        f"channels {conv_sizes[0]}, {conv_sizes[1]}x{conv_sizes[1]} images",
    )
    return [s for s in (mog, conv) if s.key in args.gans]


def reset_streams(seed: int) -> None:
    """Seed the global torch, numpy and Python random streams (the same before every run)."""
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the global stream is what is checked)
    random.seed(seed)


def final_state(toy: Toy) -> Final:
    """Copies of the players' state dicts, the optimisers' and the global random streams."""
    players = {"generator": toy.generator, "discriminator": toy.discriminator}
    return Final(
        modules={
            p: {k: v.detach().clone() for k, v in m.state_dict().items()}
            for p, m in players.items()
        },
        optimizers={p: copy.deepcopy(o.state_dict()) for p, o in toy.optimizers.items()},
        streams=(torch.get_rng_state(), np.random.get_state(), random.getstate()),  # noqa: NPY002
    )


def probe_batch(setup: Setup, toy: Toy) -> dict[str, torch.Tensor]:
    """The fixed probe batch, from its own generator (the same in every run)."""
    return toy.sample(setup.batch, generator=torch.Generator().manual_seed(PROBE_BATCH_SEED))


def train(
    setup: Setup,
    args: argparse.Namespace,
    label: str,
    monitor: Optional[dict[str, Any]],
    path: Path,
    steps: Optional[int] = None,
) -> tuple[Run, Toy]:
    """Train ``setup``'s GAN from the seed, with a monitor of these options (None: none).

    The wall time covers creating the monitor, the training loop with the monitor's
    calls, and closing it.
    """
    toy = setup.build()
    batch = probe_batch(setup, toy)
    reset_streams(args.seed)
    start = time.perf_counter()
    mon = None
    if monitor is not None:
        mon = sd.SpectrumMonitor(
            toy.game,
            path,
            every=args.every,
            k=args.k,
            tol=args.tol,
            probe_batch=batch,
            resume=False,
            **monitor,
        )
    records: list[sd.ProbeRecord] = []

    def callback(step: int, batch: dict[str, torch.Tensor]) -> None:
        if mon is not None:
            records.extend(mon.step(step, batch))

    toy.train(
        setup.steps if steps is None else steps,
        batch_size=setup.batch,
        seed=args.seed,
        callback=callback,
    )
    if mon is not None:
        mon.close()
    wall = time.perf_counter() - start
    final = final_state(toy)
    if mon is not None and mon.snapshot_dir is not None:
        count = len(read_snapshots(mon.snapshot_dir))
        return Run(label, wall, count, mon.probe_seconds, final), toy
    seconds = 0.0 if mon is None else mon.probe_seconds
    return Run(label, wall, len(records), seconds, final, None if mon is None else path), toy


def probe_afterwards(args: argparse.Namespace, toy: Toy, snapshots: Path, path: Path) -> Run:
    """Run (e): probe (d)'s snapshots with (b)'s settings; the players are put back."""
    start = time.perf_counter()
    sd.probe_snapshots(toy.game, snapshots, path, k=args.k, tol=args.tol, progress=False)
    wall = time.perf_counter() - start
    probes = len(sd.open_trace(path))
    return Run("(e) (d)'s snapshots probed afterwards", wall, probes, wall, final_state(toy), path)


def gan_runs(setup: Setup, args: argparse.Namespace, tmp: Path) -> tuple[list[Run], Toy]:
    """Runs (a) to (e) of one GAN, in order; also the plain run's trained GAN."""
    every = f"every {args.every}"
    plans: list[tuple[str, Optional[dict[str, Any]]]] = [
        ("(a) plain", None),
        (f"(b) in the loop, {every}", {}),
        (f"(c) in the loop, {every}, budget {args.budget}", {"budget": args.budget}),
        (f"(d) defer=True, {every} (snapshots only)", {"defer": True}),
    ]
    runs: list[Run] = []
    trained: list[Toy] = []
    for index, (label, options) in enumerate(plans):
        run, toy = train(setup, args, label, options, tmp / f"{setup.key}-{index}.h5")
        runs.append(run)
        trained.append(toy)
        print(f"  {label:48s} {run.wall:8.1f} s  ({run.probes} probes)", flush=True)
    snapshots = (tmp / f"{setup.key}-3.h5").with_suffix(".snapshots")
    runs.append(probe_afterwards(args, trained[3], snapshots, tmp / f"{setup.key}-4.h5"))
    print(f"  {runs[-1].label:48s} {runs[-1].wall:8.1f} s  ({runs[-1].probes} probes)", flush=True)
    for repeat in range(1, args.repeats):  # (a) and (d) again, interleaved: the fastest counts
        for index in (3, 0) if repeat % 2 else (0, 3):  # a b b a: a drift favours neither
            label, options = plans[index]
            again, _ = train(setup, args, label, options, tmp / f"{setup.key}-{index}-{repeat}.h5")
            print(f"  {label + f' (repeat {repeat})':48s} {again.wall:8.1f} s", flush=True)
            if again.wall < runs[index].wall:
                runs[index] = replace(runs[index], wall=again.wall)
    return runs, trained[0]


def warm_up(gans: list[Setup], args: argparse.Namespace, tmp: Path) -> None:
    """Pay the one-off costs before timing anything.

    Lazy imports, the first optimiser steps, allocator growth and opening the first
    trace and snapshot files would otherwise land on whichever run comes first.
    """
    for setup in gans:
        setup.build().train(3, batch_size=setup.batch)
    tiny = Setup("tiny", "tiny", lambda: toys.mog_gan(hidden=8, depth=1), 4, 16, "")
    small = argparse.Namespace(**{**vars(args), "every": 2, "k": 2})
    train(tiny, small, "", {"on_error": "ignore"}, tmp / "warm-a.h5")
    _, toy = train(tiny, small, "", {"defer": True, "on_error": "ignore"}, tmp / "warm-d.h5")
    probe_afterwards(small, toy, tmp / "warm-d.snapshots", tmp / "warm-e.h5")


# ---------------------------------------------------------------- comparisons


def same(a: Any, b: Any) -> bool:
    """Bit-identical nested states: tensors by ``torch.equal``, arrays exactly, the rest by ==."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        both = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
        return both and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def identical(run: Run, plain: Run) -> str:
    """``"yes / yes / yes"``: parameters and buffers, optimiser states, random streams."""
    a, b = run.final, plain.final
    checks = (
        same(a.modules, b.modules),
        same(a.optimizers, b.optimizers),
        same(a.streams, b.streams),
    )
    return " / ".join("yes" if c else "**no**" for c in checks)


def matched_difference(a: np.ndarray, b: np.ndarray) -> float:
    r"""Largest :math:`|a_i - b_j| / |b_j|` over a one-to-one matching of nearest eigenvalues.

    NaN padding is dropped; the matching (least total relative distance) keeps a
    conjugate pair listed in another order, or an eigenvalue one list has and the other
    has not at the k-th place, from counting as a difference.
    """
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return 0.0 if a.size == b.size else math.inf
    cost = np.abs(a[:, None] - b[None, :]) / np.maximum(np.abs(b)[None, :], np.finfo(float).tiny)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


def rows_at(trace: sd.Trace, steps: np.ndarray) -> np.ndarray:
    """The trace's row of each of ``steps`` (every one must be there)."""
    row = {int(s): i for i, s in enumerate(trace.probe_steps())}
    return np.array([row[int(s)] for s in steps], dtype=np.int64)


def common_steps(a: Path, b: Path) -> np.ndarray:
    """The steps both traces probed."""
    return np.intersect1d(sd.open_trace(a).probe_steps(), sd.open_trace(b).probe_steps())


def scaled_difference(a: np.ndarray, b: np.ndarray) -> float:
    r"""Largest distance of an eigenvalue of one list to the other, over :math:`|λ|_{max}`.

    Two solves that both met the tolerance may differ in their last wanted eigenvalue
    when it ties with the next one (equal :math:`|λ|` within the tolerance), so each
    list's last finite eigenvalue is left out of the lists' distances to each other;
    the scale :math:`\max|b|` is the one the solver's relative tolerance refers to for
    the largest eigenvalues.
    """
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return 0.0 if a.size == b.size else math.inf
    scale = max(float(np.abs(b).max()), np.finfo(float).tiny)
    one_way = [np.abs(x[:-1, None] - y[None, :]).min(axis=1).max() for x, y in ((a, b), (b, a))]
    return float(max(one_way)) / scale


def eigenvalue_differences(
    a: Path, b: Path, steps: np.ndarray, scaled: bool = False
) -> dict[str, float]:
    """Per operator, the largest difference of ``a``'s eigenvalues from ``b``'s.

    :func:`matched_difference` (relative to each eigenvalue, one to one), or with
    ``scaled`` :func:`scaled_difference` (relative to :math:`|λ|_{max}`).
    """
    ta, tb = sd.open_trace(a), sd.open_trace(b)
    ra, rb = rows_at(ta, steps), rows_at(tb, steps)
    measure = scaled_difference if scaled else matched_difference
    return {
        op: max(
            (measure(x, y) for x, y in zip(ta.eigenvalues(op)[ra], tb.eigenvalues(op)[rb])),
            default=math.nan,
        )
        for op in ta.operators
    }


def products(path: Path, steps: np.ndarray) -> dict[str, tuple[int, float]]:
    """Per operator, total products and solve seconds over the probes at ``steps``."""
    trace = sd.open_trace(path)
    rows = rows_at(trace, steps)
    return {
        op: (int(trace.n_matvec(op)[rows].sum()), float(trace.wall_time(op)[rows].sum()))
        for op in trace.operators
    }


@dataclass(frozen=True)
class WarmCold:
    """Cold against warm probes at the same steps: per operator, (products, solve seconds)."""

    steps: np.ndarray
    source: str
    cold: dict[str, tuple[int, float]]
    warm: dict[str, tuple[int, float]]
    differences: dict[str, float]


def warm_vs_cold(setup: Setup, args: argparse.Namespace, in_loop: Path, tmp: Path) -> WarmCold:
    """``--warm-probes`` probes warm against the same probes cold.

    Run (b) uses the monitor's default mode; a run of the other mode over the first
    ``--warm-probes`` probes (the same training, schedule and probe settings) is set
    against (b)'s first probes.
    """
    steps = args.warm_probes * args.every
    default = bool(sd.open_trace(in_loop).meta["config"].get("warm_start"))
    mode = "warm" if not default else "cold"
    label = f"{mode} (warm_start={not default})"
    other, _ = train(setup, args, mode, {"warm_start": not default}, tmp / f"{mode}.h5", steps)
    assert other.trace is not None
    probed = sd.open_trace(other.trace).probe_steps()
    print(f"  {label:48s} {other.wall:8.1f} s  ({other.probes} probes)", flush=True)
    if not np.isin(probed, sd.open_trace(in_loop).probe_steps()).all():
        raise RuntimeError(f"run (b) did not probe every step the {mode} run probed")
    traces = {not default: other.trace, default: in_loop}
    for expected, path in traces.items():
        if sd.open_trace(path).meta["config"].get("warm_start") is not expected:
            raise RuntimeError(f"{path}: the trace does not say warm_start={expected}")
    return WarmCold(
        steps=probed,
        source=f"{'cold' if default is False else 'warm'}: the first {len(probed)} probes "
        f"of run (b); {mode}: a run of the same {steps} steps",
        cold=products(traces[False], probed),
        warm=products(traces[True], probed),
        differences=eigenvalue_differences(traces[True], traces[False], probed, scaled=True),
    )


def long_budget(setup: Setup, args: argparse.Namespace, tmp: Path) -> str:
    """Runs (a) and (c) again over ``--budget-steps``, long enough for several probes.

    Over ``setup.steps`` a budget can run one probe only: the second waits until the
    training has lasted twenty probes' time. This pair, repeated and interleaved like
    (a) and (d) (the fastest of each counts), shows what the budget holds once the run
    is long enough for three probes or more. Returns the report's paragraph.
    """
    steps = args.budget_steps
    fastest: dict[str, Run] = {}
    plans = [("plain", None), (f"budget {args.budget}", {"budget": args.budget})]
    for repeat in range(args.repeats):
        for label, options in plans[::-1] if repeat % 2 else plans:  # a b b a
            run, _ = train(setup, args, label, options, tmp / f"long-{repeat}.h5", steps)
            print(f"  {label + f' over {steps} steps':48s} {run.wall:8.1f} s  "
                  f"({run.probes} probes)", flush=True)  # fmt: skip
            if label not in fastest or run.wall < fastest[label].wall:
                fastest[label] = run
    plain, budget = fastest["plain"], fastest[plans[1][0]]
    ratio = budget.wall / plain.wall
    ok = ratio <= BUDGET_TARGET and budget.probes >= MIN_BUDGET_PROBES
    repeats = f", the fastest of {args.repeats} interleaved runs each" if args.repeats > 1 else ""
    return (
        f"**Budget over a longer run** ({setup.name}, {steps:,d} steps{repeats}): plain "
        f"{plain.wall:.1f} s, `budget={args.budget}` {budget.wall:.1f} s with "
        f"{budget.probes} probe{'' if budget.probes == 1 else 's'} "
        f"({budget.seconds:.1f} s in the monitor): {ratio:.2f}x "
        f"(at most {BUDGET_TARGET}x with at least {MIN_BUDGET_PROBES} probes: {verdict(ok)}); "
        f"identical to plain: {identical(budget, plain)}."
    )


def budget_probe(setup: Setup, toy: Toy, args: argparse.Namespace) -> str:
    """One probe of the trained GAN bounded by ``max_matvecs``, as a sentence."""
    record = sd.probe(
        toy.game,
        probe_batch(setup, toy),
        k=args.k,
        tol=args.tol,
        max_matvecs=args.max_matvecs,
        on_error="ignore",
    )
    solves = ", ".join(
        f"{name} {r.n_matvec} products, status `{r.status}`" for name, r in record.operators.items()
    )
    return (
        f"`max_matvecs = {args.max_matvecs}` on the {setup.name}'s trained weights: {solves}; "
        f"whole probe {record.wall_time:.2f} s."
    )


# ---------------------------------------------------------------- the report


def verdict(ok: bool) -> str:
    """How a target fared, in the report's words."""
    return "met" if ok else "**not met**"


def header(args: argparse.Namespace, command: str) -> list[str]:
    """The command, the machine and the probe settings."""
    return [
        START,
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, torch threads: {torch.get_num_threads()}; torch "
        f"{torch.__version__}; {datetime.date.today().isoformat()}.  ",
        f"Probes: k = {args.k}, tol = {args.tol}, every {args.every} steps, the game Jacobian "
        "and both players' Hessians, on a fixed probe batch of the training batch size; "
        f"run (c) with budget {args.budget}.",
    ]


def run_row(run: Run, runs: list[Run], step_s: float) -> str:
    """One row of a GAN's table (run (e)'s ratio is that of (d) and (e) together)."""
    plain, deferred = runs[0], runs[3]
    if run is plain:
        return f"| {run.label} | {run.wall:.2f} | 1.00 | 0 | — | — | — |"
    if run is runs[4]:
        ratio = f"(d + e) {(deferred.wall + run.wall) / plain.wall:.2f}"
        same_as = identical(run, plain) + " (after)"
    else:
        ratio, same_as = f"{run.wall / plain.wall:.2f}", identical(run, plain)
    mean = run.seconds / run.probes if run.probes else math.nan
    return (
        f"| {run.label} | {run.wall:.2f} | {ratio} | {run.probes} | {mean:.3f} "
        f"| {mean / step_s:.0f} | {same_as} |"
    )


def targets(runs: list[Run], args: argparse.Namespace) -> str:
    """The issue's targets for one GAN: budget, defer, deferred eigenvalues = in-loop ones."""
    plain, in_loop, budget, deferred, probed = runs
    assert in_loop.trace is not None and probed.trace is not None
    steps = common_steps(in_loop.trace, probed.trace)
    worst = max(eigenvalue_differences(probed.trace, in_loop.trace, steps).values())
    b, d = budget.wall / plain.wall, deferred.wall / plain.wall
    budget_ok = b <= BUDGET_TARGET and budget.probes >= MIN_BUDGET_PROBES
    return (
        f"Targets: budget {args.budget}: {b:.2f}x with {budget.probes} probe(s) (at most "
        f"{BUDGET_TARGET}x with at least {MIN_BUDGET_PROBES}: {verdict(budget_ok)}); "
        f"defer: {d:.2f}x (at most {DEFER_TARGET}x: {verdict(d <= DEFER_TARGET)}); "
        f"(e)'s eigenvalues against (b)'s at the {len(steps)} steps both probed: largest "
        f"relative difference {worst:.1e} (at most {DEFERRED_TOL:g}: "
        f"{verdict(len(steps) > 0 and worst <= DEFERRED_TOL)})."
    )


def gan_section(setup: Setup, toy: Toy, runs: list[Run], args: argparse.Namespace) -> list[str]:
    """A GAN's table of runs (a) to (e) and its targets."""
    step_s = runs[0].wall / setup.steps
    n = sum(toy.n_parameters.values())
    rows = [run_row(run, runs, step_s) for run in runs]
    return [
        "",
        f"**{setup.name}**: {n:,d} parameters ({setup.sizes}), batch {setup.batch}, Adam; "
        f"{setup.steps} steps; one training step {1e3 * step_s:.1f} ms."
        + (
            f" Runs (a) and (d): the fastest of {args.repeats}, interleaved."
            if args.repeats > 1
            else ""
        ),
        "",
        "| run | wall s | ÷ plain | probes | mean probe s | one probe in training steps "
        "| identical to plain: parameters / optimiser / random streams |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        targets(runs, args),
    ]


def warm_section(result: WarmCold, setup: Setup, args: argparse.Namespace) -> list[str]:
    """Products per operator cold and warm, their ratio and the eigenvalues' difference."""
    rows = []
    for op, (n_cold, s_cold) in result.cold.items():
        n_warm, s_warm = result.warm[op]
        rows.append(
            f"| {op} | {n_cold:,d} | {n_warm:,d} | {n_warm / n_cold:.2f} "
            f"| {s_cold:.2f} / {s_warm:.2f} | {result.differences[op]:.1e} |"
        )
    n_cold = sum(n for n, _ in result.cold.values())
    n_warm = sum(n for n, _ in result.warm.values())
    worst = max(result.differences.values())
    ratio = n_warm / n_cold
    return [
        "",
        f"**Warm starts** ({setup.name}): {len(result.steps)} probes every {args.every} "
        f"steps, cold (`warm_start=False`) and warm (`warm_start=True`); {result.source}; "
        "the first probe is cold in both. The difference is the largest distance of an "
        "eigenvalue to the other solve's, over |λ|max (each solve's last eigenvalue, which "
        "may tie with the next, left out).",
        "",
        "| operator | products cold | products warm | warm ÷ cold | solve s cold / warm "
        "| largest eigenvalue difference ÷ \\|λ\\|max |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        f"| all | {n_cold:,d} | {n_warm:,d} | {ratio:.2f} | | {worst:.1e} |",
        "",
        f"Targets: warm ÷ cold {ratio:.2f} (at most {WARM_RATIO_TARGET}: "
        f"{verdict(ratio <= WARM_RATIO_TARGET)}); eigenvalues within tol = {args.tol} "
        f"({verdict(worst <= args.tol)}).",
    ]


# ---------------------------------------------------------------- main


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--gans", nargs="+", choices=("mog", "conv"), default=["mog", "conv"])
    add("--steps", type=int, default=2000, help="training steps of the MoG GAN")
    add("--conv-steps", type=int, default=1000, help="training steps of the conv GAN")
    add("--hidden", type=int, default=128, help="MoG GAN hidden width")
    add("--depth", type=int, default=3, help="MoG GAN hidden layers")
    add("--batch", type=int, default=256, help="MoG GAN batch (training and probe)")
    add("--conv-batch", type=int, default=64, help="conv GAN batch (training and probe)")
    add("--every", type=int, default=50)
    add("--k", type=int, default=8)
    add("--tol", type=float, default=1e-3)
    add("--budget", type=float, default=0.1, help="the monitor's overhead budget, run (c)")
    add("--budget-steps", type=int, default=12000,
        help="MoG GAN steps of the longer plain and budgeted runs (0: none)")  # fmt: skip
    add("--warm-probes", type=int, default=20, help="probes of the warm/cold comparison")
    add("--max-matvecs", type=int, default=40, help="the max_matvecs demonstration")
    add("--repeats", type=int, default=3, help="runs (a) and (d), interleaved; the fastest counts")
    add("--threads", type=int, default=2, help="torch.set_num_threads")
    add("--seed", type=int, default=0)
    add("--smoke", action="store_true", help="tiny GANs and few steps: checks the script runs")
    add("--markdown", type=Path, help="replace this script's section of this Markdown file")
    args = parser.parse_args(argv)
    if args.smoke:  # smaller defaults; the flags given still apply
        parser.set_defaults(**SMOKE)
        args = parser.parse_args(argv)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    command = "python scripts/bench_overhead.py " + " ".join(sys.argv[1:] if argv is None else argv)
    gans = setups(args)
    lines, extra = header(args, command), []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        warm_up(gans, args, tmp)
        for setup in gans:
            print(f"{setup.name}: {setup.steps} steps, probes every {args.every}", flush=True)
            runs, toy = gan_runs(setup, args, tmp)
            lines += gan_section(setup, toy, runs, args)
            if setup.key == "mog":
                assert runs[1].trace is not None
                extra += warm_section(warm_vs_cold(setup, args, runs[1].trace, tmp), setup, args)
                extra += ["", budget_probe(setup, toy, args)]
                if args.budget_steps:
                    extra += ["", long_budget(setup, args, tmp)]
    text = "\n".join([*lines, *extra, END])
    print()
    print(text)
    if args.markdown:
        write_section(args.markdown, text, START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
