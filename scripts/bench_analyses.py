#!/usr/bin/env python
"""What the analyses beyond the top eigenvalues cost, in products and seconds.

Two GANs of ``specdiag.toys``: the mixture-of-Gaussians MLP GAN
``toys.mog_gan(hidden=220, depth=3)`` (about 200k parameters) after 200 training steps
(``gan.train(200, seed=0)``), probe batch ``gan.sample(256, torch.Generator().manual_seed(1))``;
and the DCGAN ``toys.conv_gan()`` (287,116 parameters, BatchNorm in train mode) after
``--conv-steps`` Adam steps, probe batch ``gan.sample(64, ...)`` from the same seed. Every
measurement of a model uses that one probe batch and seed 0.

First the unit: one bare product of each operator (each player's Hessian ``H u``,
``J u``, ``Jᵀ u``, the symmetric part ``S u = (J u + Jᵀ u)/2``) and one evaluation of
the vector field ``v``, each the mean of ``--repeats`` after a warm-up. Then, called
directly, with their defaults:

* ``sd.spectral_density`` (10 vectors x 80 Lanczos steps) of each Hessian and of
  ``sd.SymmetricPart(sd.GameJacobian(...))``;
* ``sd.trace_estimate`` (Hutch++, 100 products) of each Hessian;
* ``sd.path_angle`` from the weights before training to the weights after (100 points);

each with its products (evaluations of ``v`` for the path-angle), wall seconds,
milliseconds per product, that as a multiple of one bare product of the same operator,
and the share of the wall time spent outside the products (every product timed inside
the run). Then ``sd.probe(game, batch, k=8, seed=0)`` plain and with one option each:
``shares=True``, ``shares="right"``, ``density=True``, ``helmholtz=32``; for each, the
products and seconds of every solve, the whole probe's wall time (the fastest of
``--probe-repeats``, after one warm-up probe), and what the option adds over the plain
probe: products, seconds and the extra operators' cost per product over a bare product.

``--smoke`` checks that the script runs, in seconds: tiny GANs and small settings
(densities 2 vectors x 20 steps, Hutch++ 30 products, path-angle 20 points,
``helmholtz=8``, 3 bare products, one probe per setting); its figures are no benchmark.

Usage::

    python scripts/bench_analyses.py                 # one thread, both models (~25 min)
    python scripts/bench_analyses.py --probe-repeats 1   # each probe once (~14 min)
    python scripts/bench_analyses.py --threads 2     # torch intra-op threads
    python scripts/bench_analyses.py --smoke         # tiny GANs, small sizes (~15 s)
    python scripts/bench_analyses.py --markdown docs/benchmarks.md   # also write the section
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_eigs import write_section
from torch import nn

import specdiag as sd
from specdiag import toys

START, END = "<!-- bench_analyses:start -->", "<!-- bench_analyses:end -->"
K = 8
SEED = 0


@dataclass(frozen=True)
class Sizes:
    """How much work each analysis does: the library's defaults, or tiny ones (``--smoke``)."""

    n_vectors: int = 10
    n_steps: int = 80
    trace_products: int = 100
    path_points: int = 100
    helmholtz: int = 32

    def probes(self) -> dict[str, dict[str, Any]]:
        """``{label: options of sd.probe}``: the plain probe first."""
        request = sd.DensityRequest(n_vectors=self.n_vectors, n_steps=self.n_steps)
        default = request == sd.DensityRequest()
        density = "density=True" if default else f"density=({self.n_vectors} x {self.n_steps})"
        return {
            "plain": {},
            "shares=True": {"shares": True},
            'shares="right"': {"shares": "right"},
            density: {"density": True if default else request},
            f"helmholtz={self.helmholtz}": {"helmholtz": self.helmholtz},
        }

    def describe(self) -> str:
        return (
            f"spectral densities {self.n_vectors} vectors x {self.n_steps} steps, "
            f"Hutch++ {self.trace_products} products, path-angle {self.path_points} points, "
            f"k = {K}, seed {SEED}"
        )


FULL, SMOKE = (
    Sizes(),
    Sizes(n_vectors=2, n_steps=20, trace_products=30, path_points=20, helmholtz=8),
)


@dataclass
class Model:
    """A trained GAN with its probe batch and the weights before and after training."""

    label: str
    description: str
    game: sd.Game
    batch: dict[str, torch.Tensor]
    start: dict[str, dict[str, torch.Tensor]]
    end: dict[str, dict[str, torch.Tensor]]


@dataclass
class Row:
    """One analysis called directly: its cost against the bare unit of its operator."""

    analysis: str
    operator: str
    n: int
    products: int
    seconds: float
    unit: float
    outside: float | None = None
    result: str = ""


class Timed:
    """An operator that forwards to ``op`` and sums the seconds spent in its products."""

    def __init__(self, op: Any) -> None:
        self.op, self.shape, self.dtype, self.device = op, op.shape, op.dtype, op.device
        self.symmetric = bool(getattr(op, "symmetric", False))
        self.seconds = 0.0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.op.matvec(v)
        if out.is_cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return out


def states(gan: toys.MoGGAN | toys.ConvGAN) -> dict[str, dict[str, torch.Tensor]]:
    """``{player: a copy of its module's state_dict}`` (parameters and buffers)."""
    modules: dict[str, nn.Module] = {"generator": gan.generator, "discriminator": gan.discriminator}
    return {
        name: {key: value.detach().clone() for key, value in module.state_dict().items()}
        for name, module in modules.items()
    }


def player_sizes(game: sd.Game) -> str:
    return ", ".join(f"{p} {n:,}" for p, n in game.sizes.items())


def mlp_model(smoke: bool) -> Model:
    """The 200k MoG GAN after 200 steps (smoke: a tiny one after 5)."""
    hidden, depth, steps, size = (16, 2, 5, 64) if smoke else (220, 3, 200, 256)
    gan = toys.mog_gan(hidden=hidden, depth=depth)
    start = states(gan)
    gan.train(steps, seed=0)
    batch = gan.sample(size, torch.Generator().manual_seed(1))
    text = (
        f"`toys.mog_gan(hidden={hidden}, depth={depth})` ({player_sizes(gan.game)}), "
        f"`gan.train({steps}, seed=0)`, probe batch {size}"
    )
    return Model("MLP GAN", text, gan.game, batch, start, states(gan))


def conv_model(smoke: bool, steps: int) -> Model:
    """The default DCGAN after ``steps`` Adam steps (smoke: an 8 x 8 one, 2 channels)."""
    channels, latent, image, size = (2, 4, 8, 16) if smoke else (24, 64, 32, 64)
    gan = toys.conv_gan(channels=channels, latent=latent, image_size=image)
    start = states(gan)
    gan.train(steps, batch_size=size, seed=0)
    batch = gan.sample(size, torch.Generator().manual_seed(1))
    text = (
        f"`toys.conv_gan(channels={channels}, latent={latent}, image_size={image})` "
        f"({player_sizes(gan.game)}), "
        f"`gan.train({steps}, batch_size={size}, seed=0)`, probe batch {size}"
    )
    return Model("conv GAN", text, gan.game, batch, start, states(gan))


def mean_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Mean wall seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def operators(model: Model) -> dict[str, Any]:
    """The operators of the analyses, on one graph of the probe batch (seed 0)."""
    field = sd.GameField(model.game, model.batch, seed=SEED)
    jacobian = sd.GameJacobian.from_field(field)
    ops: dict[str, Any] = {
        f"H[{p}]": sd.PlayerHessian.from_field(field, p) for p in model.game.player_names
    }
    ops["S = sym(J)"] = sd.SymmetricPart(jacobian)
    ops["J"] = jacobian
    return ops


def bare_costs(model: Model, ops: dict[str, Any], repeats: int) -> dict[str, float]:
    """Seconds of one bare product of each operator (``J``: ``J u`` and ``Jᵀ u``) and of ``v``."""
    gen = torch.Generator().manual_seed(0)

    def vector(op: Any) -> torch.Tensor:
        return torch.randn(op.shape[0], generator=gen, dtype=op.dtype).to(op.device)

    products: dict[str, Callable[[], Any]] = {}
    for name, op in ops.items():
        u = vector(op)
        if name == "J":
            products["J u"] = partial(op.matvec, u)
            products["Jᵀ u"] = partial(op.rmatvec, u)
        else:
            products[name] = partial(op.matvec, u)
    products["v"] = partial(model.game.vector_field, model.batch, seed=SEED)
    return {name: mean_seconds(fn, repeats) for name, fn in products.items()}


def quiet(fn: Callable[[], Any]) -> tuple[Any, str]:
    """``fn()`` and the text of the warnings it issued (``""`` when none)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, "; ".join(f"warning: {w.message}" for w in caught)


def direct_row(analysis: str, name: str, op: Any, unit: float, fn: Callable[[Any], Any]) -> Row:
    """``fn(op)`` timed product by product; ``fn`` returns a result with ``n_matvec``."""
    timed = Timed(op)
    result, notes = quiet(lambda: fn(timed))
    outside = 1 - timed.seconds / result.wall_time
    text = "; ".join(s for s in (summary(result), notes) if s)
    return Row(analysis, name, op.shape[0], result.n_matvec, result.wall_time, unit, outside, text)


def summary(result: Any) -> str:
    if isinstance(result, sd.TraceEstimate):
        return f"tr = {result.value:.5g} ± {result.stderr:.2g}"
    return f"nodes in [{result.nodes.min():.4g}, {result.nodes.max():.4g}]"


def direct_rows(
    model: Model, ops: dict[str, Any], bare: dict[str, float], sizes: Sizes
) -> list[Row]:
    """Bare products, densities, traces and the path-angle, in that order."""
    rows = []
    for name, seconds in bare.items():
        n = ops[name].shape[0] if name in ops else model.game.n
        label = "v (evaluation)" if name == "v" else name
        rows.append(Row("bare product", label, n, 1, seconds, seconds))

    def density(op: Any) -> sd.SpectralDensity:
        return sd.spectral_density(op, n_vectors=sizes.n_vectors, n_steps=sizes.n_steps)

    def trace(op: Any) -> sd.TraceEstimate:
        return sd.trace_estimate(op, sizes.trace_products)

    for name, op in ops.items():
        if name != "J":
            rows.append(direct_row("spectral_density", name, op, bare[name], density))
    for name, op in ops.items():
        if name.startswith("H["):
            rows.append(direct_row("trace_estimate", name, op, bare[name], trace))
    alphas = np.linspace(-0.1, 1.1, sizes.path_points)
    pa, notes = quiet(
        lambda: sd.path_angle(model.game, model.start, model.end, model.batch, alphas)
    )
    turns = ", ".join(f"{a:.3g}" for a in pa.sign_changes()) or "none"
    text = "; ".join(s for s in (f"cosine changes sign at α = {turns}", notes) if s)
    n, evaluations, seconds = model.game.n, pa.n_evaluations, pa.wall_time
    rows.append(Row("path_angle", "v (evaluation)", n, evaluations, seconds, bare["v"], None, text))
    return rows


def probe(model: Model, options: dict[str, Any], repeats: int) -> sd.ProbeRecord:
    """The fastest of ``repeats`` probes (k = 8, seed 0) with ``options``."""
    records = [
        sd.probe(model.game, model.batch, k=K, seed=SEED, on_error="ignore", **options)
        for _ in range(repeats)
    ]
    return min(records, key=lambda r: r.wall_time)


def unit_of(name: str, bare: dict[str, float]) -> float:
    """The bare product of the operator behind a probe's extra operator ``name``."""
    if name == "helmholtz":
        return (bare["J u"] + bare["Jᵀ u"]) / 2
    target = name.removeprefix("density.")
    return bare["S = sym(J)"] if target == "symmetric" else bare[f"H[{target}]"]


def probe_rows(model: Model, bare: dict[str, float], repeats: int, sizes: Sizes) -> list[str]:
    """One markdown row per probe setting, each against the plain probe."""
    probe(model, {}, 1)  # warm-up
    settings = sizes.probes()
    records = {label: probe(model, options, repeats) for label, options in settings.items()}
    plain = records["plain"]
    base = list(plain)
    lines = []
    for label, rec in records.items():
        products = sum(op.n_matvec for op in rec.values())
        extra_products = products - sum(op.n_matvec for op in plain.values())
        extras = [
            f"{name}: {op.n_matvec} products, {op.wall_time:.2f} s, "
            f"{op.wall_time / op.n_matvec / unit_of(name, bare):.2f} × bare"
            for name, op in rec.items()
            if name not in base and op.n_matvec
        ]
        lines.append(
            f"| {model.label} | {label} | "
            f"{' / '.join(str(rec[b].n_matvec) for b in base)} | "
            f"{' / '.join(f'{rec[b].wall_time:.2f}' for b in base)} | {products} | "
            f"{extra_products:+d} | {rec.wall_time:.2f} | "
            f"{rec.wall_time - plain.wall_time:+.2f} | {'; '.join(extras) or '—'} | "
            f"{rec.status} |"
        )
    return lines


def direct_lines(model: Model, rows: list[Row]) -> list[str]:
    lines = []
    for r in rows:
        per = r.seconds / r.products
        outside = "" if r.outside is None else f"{100 * r.outside:.0f}%"
        lines.append(
            f"| {model.label} | {r.analysis} | {r.operator} | {r.n:,} | {r.products} | "
            f"{r.seconds:.3f} | {per * 1e3:.2f} | {per / r.unit:.2f} | {outside} | {r.result} |"
        )
    return lines


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def header(command: str, models: list[Model]) -> list[str]:
    lines = [
        START,
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()} ({cpu_name()}), {os.cpu_count()} "
        f"cores, {torch.get_num_threads()} torch thread(s); Python {platform.python_version()}, "
        f"torch {torch.__version__}; {datetime.date.today().isoformat()}.  ",
    ]
    return lines + [f"{m.label}: {m.description}.  " for m in models]


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def markdown(args: argparse.Namespace, command: str, models: list[Model], sizes: Sizes) -> str:
    """Measure every model and return the section, START and END markers included."""
    direct = [
        "",
        f"Called directly (the bare products: mean of {args.repeats} after a warm-up):",
        "",
        "| model | analysis | operator | n | products | wall s | ms / product | "
        "÷ bare product | outside products | result |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    probes = [
        "",
        f"`sd.probe(game, batch, k={K}, seed={SEED}, ...)`, fastest of {args.probe_repeats} "
        "after one warm-up probe; extras are the operators the option adds:",
        "",
        "| model | probe | products J / H_G / H_D | solve s J / H_G / H_D | products | "
        "extra products | probe s | extra s | extra operators | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for model in models:
        progress(f"{model.label}: bare products")
        ops = operators(model)
        bare = bare_costs(model, ops, args.repeats)
        progress(f"{model.label}: densities, traces, path-angle")
        direct += direct_lines(model, direct_rows(model, ops, bare, sizes))
        progress(f"{model.label}: probes")
        probes += probe_rows(model, bare, args.probe_repeats, sizes)
    lines = [*header(command, models), f"Settings: {sizes.describe()}.", *direct, *probes, END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--repeats", type=int, help="products timed for the bare cost (default 20, smoke 3)"
    )
    parser.add_argument(
        "--probe-repeats",
        type=int,
        help="probes per setting, the fastest shown (default 3, smoke 1)",
    )
    parser.add_argument("--conv-steps", type=int, default=20, help="training steps of the DCGAN")
    parser.add_argument("--models", nargs="+", choices=("mlp", "conv"), default=["mlp", "conv"])
    parser.add_argument("--smoke", action="store_true", help="tiny GANs, to check the script runs")
    parser.add_argument("--markdown", type=Path, help="replace the section in this file")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.smoke else 20
    if args.probe_repeats is None:
        args.probe_repeats = 1 if args.smoke else 3
    if args.repeats < 1 or args.probe_repeats < 1:
        parser.error("--repeats and --probe-repeats must be at least 1")
    torch.set_num_threads(args.threads)
    command = "python scripts/bench_analyses.py " + " ".join(sys.argv[1:] if argv is None else argv)
    models = []
    if "mlp" in args.models:
        models.append(mlp_model(args.smoke))
    if "conv" in args.models:
        models.append(conv_model(args.smoke, 3 if args.smoke else args.conv_steps))
    text = markdown(args, command.strip(), models, SMOKE if args.smoke else FULL)
    print(text)
    if args.markdown:
        write_section(args.markdown, text, START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
