#!/usr/bin/env python
r"""Every figure of specdiag.plot from one short training run, and a page that lists them.

Trains the demo's mixture-of-Gaussians GAN (MLPs 4x16, RMSProp, ``--steps`` steps) with a
:class:`~specdiag.SpectrumMonitor` that records everything a figure can show: the
Jacobian and both Hessians, the run's update operator, the Helmholtz split, where the
eigenvectors live (``shares=True``) and both players' spectral densities
(``density=True``); then the path-angle from the initial to the final weights. Writes
every figure of the trace as PNG at a web resolution into ``--out``, one figure in the
paper style, and the page ``--page`` (Markdown, image links relative to it). With
``--traces`` it plots existing traces instead of training (no path-angle then).

With ``--readme DIR`` it also makes the README's two pictures, ``DIR/demo-compare.png``
and ``DIR/demo-samples.png``: the comparison of the traces of ``specdiag demo`` at its
default settings (about two minutes on two cores; or of an existing demo output
directory given with ``--demo``), and the demo's samples figure.

Nothing is overwritten without ``--force``; the check runs before any training.

Usage::

    python scripts/gallery.py --out docs/gallery --page docs/gallery.md
    python scripts/gallery.py --readme docs/figures --demo demo --force
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specdiag import plot  # noqa: E402

#: PNG resolution of the gallery: a web page, not print.
DPI = 100
#: What each figure shows, by file name (``density.*`` and ``shares.*`` by prefix).
CAPTIONS = {
    "spectrum.png": "Every probe's eigenvalues of the game Jacobian in the complex plane, "
    "coloured by training step, with the line Re λ = 0.",
    "evolution.png": "Re λ and Im λ of the same eigenvalues against the training step.",
    "scalars.png": "The summary scalars per probe: min Re λ, max |Im λ|, max |Im λ / Re λ|, "
    "|λ|max, and the two computed extremes of each player's Hessian.",
    "dynamics.png": "The run's own update operator (RMSProp's preconditioned step) and the "
    "Helmholtz split of J: rotation fraction and zero-sum defect.",
    "density": "The spectral density of a player's Hessian over training (stochastic "
    "Lanczos quadrature, log colour) and the mass below 0.",
    "shares": "Where the leading and the fastest-rotating eigenvector of J live, per "
    "parameter tensor, and how much the top subspace turns between probes.",
    "spectrum.gif": "The eigenvalue cloud over training, one frame per probe.",
    "path_angle.png": "The path-angle from the initial to the final weights (Berard et al. "
    "2020): c(α) and ‖v‖² along the line, per player too.",
    "spectrum-paper.png": "The spectrum figure in the paper style, one column wide "
    '(`style="paper", width="column"`).',
}


@dataclass(frozen=True)
class Run:
    """The gallery run's settings."""

    steps: int = 300
    every: int = 25
    k: int = 6
    lr: float = 1e-3
    seed: int = 0
    batch_size: int = 256
    density_vectors: int = 4
    density_steps: int = 40


def parse(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"), help="figure directory")
    parser.add_argument("--page", type=Path, default=Path("docs/gallery.md"), help="the page")
    parser.add_argument("--steps", type=int, default=Run.steps, help="training steps")
    parser.add_argument("--traces", type=Path, nargs="+", help="plot these traces, no training")
    parser.add_argument("--readme", type=Path, help="also write the README's two pictures here")
    parser.add_argument("--demo", type=Path, help="an existing `specdiag demo` output directory")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = parser.parse_args(argv)
    if args.steps < 2 * Run.every:
        parser.error(f"--steps must be at least {2 * Run.every}")
    return args


def readme_pictures(directory: Path) -> dict[str, Path]:
    """The README's pictures by what they show."""
    return {"compare": directory / "demo-compare.png", "samples": directory / "demo-samples.png"}


def refuse_existing(args: argparse.Namespace) -> None:
    """FileExistsError before any work when an output exists and not ``--force``."""
    if args.force:
        return
    taken = [args.page] if args.page.exists() else []
    if args.out.is_dir() and any(args.out.iterdir()):
        taken.append(args.out)
    if args.readme is not None:
        taken += [p for p in readme_pictures(args.readme).values() if p.exists()]
    if taken:
        raise FileExistsError(f"{', '.join(map(str, taken))} exist(s); pass --force to overwrite")


def train(run: Run, trace: Path) -> tuple[Any, dict[str, Any], float]:
    """Train the GAN with a monitor recording every analysis.

    Returns the GAN, the players' initial states with the probe batch, and the seconds
    spent.
    """
    import torch

    from specdiag import SpectrumMonitor
    from specdiag.dynamics import UpdateRule
    from specdiag.probing.options import DensityRequest
    from specdiag.toys import mog_gan

    gan = mog_gan(hidden=16, depth=4, radius=1.0, std=0.01, latent=16, seed=run.seed)
    start = {
        "generator": copy.deepcopy(gan.generator.state_dict()),
        "discriminator": copy.deepcopy(gan.discriminator.state_dict()),
    }
    probe_batch = gan.sample(run.batch_size, torch.Generator().manual_seed(run.seed + 1))
    rule = UpdateRule("gd", lr=run.lr, optimizers=lambda: gan.optimizers)
    t0 = time.perf_counter()
    with SpectrumMonitor(
        gan.game,
        trace,
        every=run.every,
        k=run.k,
        probe_batch=probe_batch,
        overwrite=True,
        update=rule,
        helmholtz=4,
        shares=True,
        density=DensityRequest(n_vectors=run.density_vectors, n_steps=run.density_steps),
        metadata={"lr": run.lr, "optimizer": "rmsprop", "model": "MLP 4x16, 8 Gaussians"},
    ) as monitor:
        gan.train(
            run.steps,
            lr=run.lr,
            batch_size=run.batch_size,
            optimizer="rmsprop",
            seed=run.seed,
            callback=lambda step, batch: _probe(monitor, step),
        )
    return gan, {"start": start, "batch": probe_batch}, time.perf_counter() - t0


def _probe(monitor: Any, step: int) -> None:
    monitor.step(step)  # probes only when due


def path_angle_png(gan: Any, extra: dict[str, Any], out: Path) -> Path:
    """The path-angle from the initial to the final weights, drawn."""
    import numpy as np

    from specdiag import path_angle

    end = {"generator": gan.generator.state_dict(), "discriminator": gan.discriminator.state_dict()}
    result = path_angle(
        gan.game, extra["start"], end, extra["batch"], alphas=np.linspace(-0.1, 1.1, 49)
    )
    path = out / "path_angle.png"
    plot.path_angle_figure(result, title="MoG GAN: initial → final weights").savefig(path, dpi=DPI)
    return path


def figures(trace: Path, out: Path, prefix: str = "") -> list[Path]:
    """Every figure of one trace, and its spectrum in the paper style."""
    target = out / prefix if prefix else out
    written = plot.plot_trace(trace, target, dpi=DPI, force=True, max_frames=30)
    paper = target / "spectrum-paper.png"
    with plot.style("paper", width="column"):
        plot.spectrum_figure(trace).savefig(paper, dpi=2 * DPI)
    return [*written, paper]


def demo_outputs(args: argparse.Namespace, scratch: Path) -> Path:
    """The directory of a `specdiag demo` run at its default settings.

    ``--demo``, or a fresh run in ``scratch``.
    """
    if args.demo is not None:
        return args.demo
    from specdiag.demo import DemoConfig, run_demo

    run_demo(scratch / "demo", DemoConfig(), progress=False, report=lambda text: None)
    return scratch / "demo"


def readme_figures(demo: Path, directory: Path) -> list[Path]:
    """The README's pictures from a demo output directory.

    The comparison of the demo's traces, drawn again at the gallery's resolution
    (:data:`specdiag.demo.TRACES` in order, labelled by :data:`specdiag.demo.TRACE_LABELS`),
    and the demo's own samples figure.
    """
    from specdiag.demo import TRACE_LABELS, TRACES

    pictures = readme_pictures(directory)
    names = [name for name in TRACES if (demo / f"{name}.h5").exists()]
    with tempfile.TemporaryDirectory() as tmp:
        (drawn,) = plot.compare_traces(
            [demo / f"{name}.h5" for name in names],
            tmp,
            labels=[TRACE_LABELS[name] for name in names],
            dpi=DPI,
        )
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(drawn, pictures["compare"])
    shutil.copyfile(demo / "samples.png", pictures["samples"])
    return list(pictures.values())


def caption(path: Path) -> str:
    """What a gallery file shows."""
    name = path.name
    if name in CAPTIONS:
        return CAPTIONS[name]
    stem = name.split(".")[0]
    text = CAPTIONS.get(stem, "")
    target = ".".join(name.split(".")[1:-1])
    return f"{text} (`{target}`)" if target else text


def write_page(page: Path, files: list[Path], readme: list[Path], note: str) -> None:
    """The gallery page: one section per figure, image links relative to the page."""
    base = page.parent.resolve()
    lines = [
        "# Gallery",
        "",
        "Every figure `specdiag.plot` draws, from one short run (made by "
        "`scripts/gallery.py`; [plots.md](plots.md) says how to read each).",
        "",
        note,
        "",
        "```bash",
        "python scripts/gallery.py --out docs/gallery --page docs/gallery.md --force",
        "```",
        "",
    ]
    for path in [*files, *readme]:
        rel = os.path.relpath(path.resolve(), base)
        text = caption(path) or "The README's picture, from `specdiag demo`."
        lines += [f"## {path.name}", "", text, "", f"![{path.name}]({rel})", ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines), encoding="utf-8")


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    refuse_existing(args)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if args.traces:
            files = [f for i, t in enumerate(args.traces) for f in figures(t, args.out, f"run{i}")]
            note = f"From the traces {', '.join(t.name for t in args.traces)}."
        else:
            run = Run(steps=args.steps)
            trace = scratch / "gallery.h5"
            gan, extra, seconds = train(run, trace)
            files = figures(trace, args.out) + [path_angle_png(gan, extra, args.out)]
            note = (
                f"The demo's GAN (MLPs 4x16, 8 Gaussians, RMSProp lr {run.lr:g}), "
                f"{run.steps} steps, a probe every {run.every} (k = {run.k}) with "
                f"`update=`, `helmholtz=4`, `shares=True` and densities of "
                f"{run.density_vectors} x {run.density_steps} quadrature nodes: training and "
                f"probing took {seconds:.0f} s."
            )
        readme = []
        if args.readme is not None:
            readme = readme_figures(demo_outputs(args, scratch), args.readme)
    write_page(args.page, files, readme, note)
    for path in [*files, *readme, args.page]:
        print(f"{path.stat().st_size / 1000:8.1f} kB  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
