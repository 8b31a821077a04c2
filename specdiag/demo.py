r"""``specdiag demo``: the spectrum of a GAN's game Jacobian over training, two ways.

Trains the mixture-of-Gaussians GAN of *The Numerics of GANs* (Mescheder, Nowozin and
Geiger, 2017: 8 Gaussians on the unit circle, standard deviation 0.01, 16-dimensional
latent noise, four hidden ReLU layers of 16 units in both networks, RMSProp) twice
from the same seed and the same batches:

* ``simultaneous``: simultaneous gradient descent on the game, field :math:`v`;
* ``consensus``: consensus optimisation, field :math:`v + \gamma J^\top v`
  (:math:`\gamma = 10`, as in the paper).

:class:`~specdiag.SpectrumMonitor`\ s record, on one fixed probe batch, the top
eigenvalues of the Jacobian of the field each run follows (and of both players'
Hessians), and along the consensus run also those of the game's own Jacobian
:math:`J`, so the two runs can be compared on the same operator. Each run's own trace
also records its update operator (gradient descent preconditioned by RMSProp's second
moments, :class:`~specdiag.dynamics.UpdateRule`) and every trace the Helmholtz split
of its Jacobian. The demo writes,
into the output directory::

    simultaneous.h5                     J along simultaneous GD
    consensus-game.h5                   J along consensus optimisation
    consensus.h5                        Jacobian of v + γJᵀv along consensus optimisation
    simultaneous/, consensus-game/,     every figure of specdiag.plot for each trace
    consensus/
    compare/                            the three traces overlaid
    samples.png                         data and generated samples at the end
    summary.txt                         what the spectra and the samples say

Nothing in the directory is overwritten unless ``force=True``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

__all__ = [
    "DemoConfig",
    "RunResult",
    "run_demo",
    "mode_coverage",
    "demo_summary",
    "RUNS",
    "TRACES",
    "TRACE_LABELS",
]

#: The training runs.
RUNS = ("simultaneous", "consensus")
#: The traces: name -> the field whose Jacobian it records.
TRACES = {
    "simultaneous": "v",
    "consensus-game": "v (the game's field, along the consensus run)",
    "consensus": "v + γJᵀv (the field consensus optimisation follows)",
}
#: Hutchinson samples of the Helmholtz split at every probe.
HELMHOLTZ_SAMPLES = 8
#: Short labels of the traces in figures and the summary.
TRACE_LABELS = {
    "simultaneous": "simultaneous GD: J",
    "consensus-game": "consensus: J",
    "consensus": "consensus: J of v+γJᵀv",
}


@dataclass(frozen=True)
class DemoConfig:
    r"""Settings of the demo (the ``specdiag demo`` options).

    Attributes
    ----------
    steps : int
        Training steps of each run.
    every : int
        A probe is due every ``every`` steps (and at the last step, always probed).
    budget : float or None
        Share of the training time the probes may take (see
        :class:`~specdiag.SpectrumMonitor`): due probes that do not fit wait until they
        do. ``None``: every due probe runs when due.
    k : int
        Eigenvalues per operator and probe.
    seed : int
        Seeds the initial weights, the training batches and the probe batch; both runs
        use the same.
    lr : float
        Learning rate of both players.
    optimizer : {"rmsprop", "adam", "sgd"}
    loss : {"nonsaturating", "minimax", "wgan"}
    consensus : float
        :math:`\gamma` of the consensus run.
    batch_size : int
        Training and probe batch size.
    hidden, depth : int
        Width and number of hidden layers of both networks.
    """

    steps: int = 4000
    every: int = 200
    budget: Optional[float] = 0.5
    k: int = 10
    seed: int = 0
    lr: float = 1e-3
    optimizer: str = "rmsprop"
    loss: str = "nonsaturating"
    consensus: float = 10.0
    batch_size: int = 512
    hidden: int = 16
    depth: int = 4

    def __post_init__(self) -> None:
        for name in ("steps", "every", "k", "batch_size", "hidden", "depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "consensus"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.budget is not None and not 0 < self.budget <= 1:
            raise ValueError(f"budget must be in (0, 1] or None, got {self.budget!r}")


@dataclass
class RunResult:
    """What one training run of the demo produced.

    Attributes
    ----------
    name : str
        ``"simultaneous"`` or ``"consensus"``.
    traces : dict
        ``{trace name: path}`` (see :data:`TRACES`): ``simultaneous`` for the first
        run; ``consensus`` and ``consensus-game`` for the second.
    figures : list of Path
    samples : numpy.ndarray
        ``(n, 2)`` generated samples after training.
    coverage : dict
        :func:`mode_coverage` of ``samples``.
    seconds : float
        Wall time of training and probing.
    """

    name: str
    traces: dict[str, Path]
    figures: list[Path]
    samples: np.ndarray
    coverage: dict[str, Any]
    seconds: float


def mode_coverage(samples: np.ndarray, centres: np.ndarray, std: float) -> dict[str, Any]:
    r"""How well samples cover a mixture of Gaussians.

    A sample is *high quality* when it lies within :math:`3\sigma` of its nearest
    centre; a mode is *covered* when at least a quarter of its fair share of the
    samples, :math:`n / (4K)`, are high quality near it (the criterion of Srivastava
    et al. 2017, *VEEGAN*, with a looser count).

    Parameters
    ----------
    samples : array, shape (n, 2)
    centres : array, shape (K, 2)
    std : float
        Standard deviation :math:`\sigma` of every mode.

    Returns
    -------
    dict
        ``modes`` (number covered), ``of`` (:math:`K`), ``high_quality`` (fraction of
        high-quality samples).
    """
    samples, centres = np.asarray(samples, float), np.asarray(centres, float)
    distance = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)
    nearest = distance.argmin(axis=1)
    good = distance.min(axis=1) <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(centres))
    return {
        "modes": int((counts >= len(samples) / (4 * len(centres))).sum()),
        "of": len(centres),
        "high_quality": float(good.mean()) if len(samples) else float("nan"),
    }


def _outputs(out: Path) -> list[Path]:
    """Files and figure directories the demo writes (checked before anything runs)."""
    return (
        [out / f"{name}.h5" for name in TRACES]
        + [out / name for name in TRACES]
        + [out / "compare", out / "samples.png", out / "summary.txt"]
    )


def _check_out(out: Path, force: bool) -> None:
    """Refuse, unless ``force``, when an output file or a non-empty figure directory exists."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    for path in _outputs(out):
        taken = any(path.iterdir()) if path.is_dir() else path.exists()
        if taken and not force:
            raise FileExistsError(f"{path} exists; pass --force to overwrite")


def _monitors(
    run: str, gan: Any, config: DemoConfig, out: Path, schedule: Any
) -> tuple[list[Any], dict[str, Path]]:
    """The run's monitors: the field it follows, and (consensus) the game's own field."""
    import torch

    from .dynamics import UpdateRule
    from .monitor import SpectrumMonitor
    from .toys import MoGGAN

    probe_batch = gan.sample(config.batch_size, torch.Generator().manual_seed(config.seed + 1))
    games = {run: gan.game}
    if gan.consensus > 0:
        plain = MoGGAN(
            gan.generator,
            gan.discriminator,
            centres=gan.centres,
            std=gan.std,
            latent=gan.latent,
            loss=gan.loss,
        )
        games["consensus-game"] = plain.game
    traces = {name: out / f"{name}.h5" for name in games}
    # the run's own optimiser on the field it follows: its effective update operator
    rule = UpdateRule(
        "gd",
        lr=config.lr,
        optimizers=None if config.optimizer == "sgd" else (lambda: gan.optimizers),
    )
    metadata = {
        "run": run,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "loss": config.loss,
        "consensus": gan.consensus,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "model": f"MLP {config.depth}x{config.hidden}, ring of 8 Gaussians",
    }
    monitors = [
        SpectrumMonitor(
            game,
            traces[name],
            every=schedule,
            k=config.k,
            probe_batch=probe_batch,
            resume=False,
            metadata={**metadata, "field": TRACES[name]},
            operators=None if name == run else ("jacobian",),
            update=rule if name == run else None,
            helmholtz=HELMHOLTZ_SAMPLES,
            budget=config.budget,
        )
        for name, game in games.items()
    ]
    return monitors, traces


def _train_one(
    run: str, config: DemoConfig, out: Path, progress: bool
) -> tuple[Any, dict[str, Path], float]:
    """Train one run with its monitors attached; return the GAN, its traces and the seconds.

    The monitors are called at every step, so that a probe the budget postponed runs as
    soon as it fits; the last step is always probed.
    """
    import time

    from tqdm.auto import tqdm

    from .monitor.schedules import Every
    from .toys import mog_gan

    gamma = config.consensus if run == "consensus" else 0.0
    gan = mog_gan(
        hidden=config.hidden,
        depth=config.depth,
        radius=1.0,
        std=0.01,
        latent=16,
        loss=config.loss,
        consensus=gamma,
        seed=config.seed,
    )
    monitors, traces = _monitors(run, gan, config, out, Every(config.every))
    label = "simultaneous GD" if gamma == 0 else f"consensus (γ={gamma:g})"
    bar = tqdm(
        total=config.steps,
        desc=f"{label:<20}",
        unit="step",
        leave=True,
        disable=None if progress else True,
        dynamic_ncols=True,
    )

    def callback(step: int, batch: Any) -> None:
        last = step == config.steps - 1
        records = [m.step(step, force=last) for m in monitors][0]
        if records:
            jac = records[0]["jacobian"].scalars
            bar.set_postfix_str(
                f"step {step}: min Re λ {jac['min_real']:+.3g}, max |Im λ| {jac['max_imag']:.3g}",
                refresh=False,
            )
        bar.update(1)

    start = time.perf_counter()
    try:
        gan.train(
            config.steps,
            lr=config.lr,
            batch_size=config.batch_size,
            optimizer=config.optimizer,
            seed=config.seed,
            callback=callback,
        )
    finally:
        for m in monitors:
            m.close()
        bar.close()
    return gan, traces, time.perf_counter() - start


def run_demo(
    out_dir: str | os.PathLike[str],
    config: Optional[DemoConfig] = None,
    *,
    force: bool = False,
    progress: bool = True,
    fmt: str = "png",
    report: Callable[[str], None] = print,
) -> list[RunResult]:
    """Train both runs, write their traces, figures and a summary into ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created if missing.
    config : DemoConfig, optional
    force : bool
        Overwrite earlier outputs; otherwise an existing output file is an error
        (raised before any training).
    progress : bool
        Show tqdm progress bars.
    fmt : {"png", "pdf", "svg"}
        Format of the figures.
    report : callable
        Receives the summary text (default: print it).

    Returns
    -------
    list of RunResult
        One per training run (``RUNS``).
    """
    import torch

    from . import plot

    config = config or DemoConfig()
    out = Path(out_dir)
    if fmt not in plot.FORMATS:
        raise ValueError(f"format must be one of {', '.join(plot.FORMATS)}, got {fmt!r}")
    _check_out(out, force)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for run in RUNS:
        gan, traces, seconds = _train_one(run, config, out, progress)
        figures = [
            f
            for name, path in traces.items()
            for f in plot.plot_trace(path, out / name, fmt=fmt, force=True)
        ]
        with torch.no_grad():
            fake = gan.generator(
                torch.randn(
                    4096, gan.latent, generator=torch.Generator().manual_seed(config.seed + 2)
                )
            )
        samples = fake.double().numpy()
        results.append(
            RunResult(
                run,
                traces,
                figures,
                samples,
                mode_coverage(samples, gan.centres.double().numpy(), gan.std),
                seconds,
            )
        )
    traces = {name: path for r in results for name, path in r.traces.items()}
    order = [name for name in TRACES if name in traces]
    figures = plot.compare_traces(
        [traces[n] for n in order],
        out / "compare",
        labels=[TRACE_LABELS[n] for n in order],
        fmt=fmt,
        force=True,
    )
    _samples_figure(results, gan.centres.double().numpy(), gan.std).savefig(
        out / "samples.png", dpi=120
    )
    text = demo_summary(results, config)
    (out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    report(text)
    n_figures = len(figures) + sum(len(r.figures) for r in results) + 1
    report(f"\nwrote {len(traces)} traces, {n_figures} figures and summary.txt into {out}")
    return results


def _samples_figure(results: list[RunResult], centres: np.ndarray, std: float) -> Any:
    """Data centres and generated samples of each run, side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(results), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(results), sharex=True, sharey=True, squeeze=False)[0]
    for ax, r in zip(axes, results):
        ax.scatter(
            r.samples[:, 0],
            r.samples[:, 1],
            s=2,
            alpha=0.3,
            color="C0",
            rasterized=True,
            label="generated",
        )
        ax.scatter(centres[:, 0], centres[:, 1], s=60, marker="x", color="C3", label="modes")
        c = r.coverage
        ax.set_title(
            f"{r.name}: {c['modes']}/{c['of']} modes, {100 * c['high_quality']:.0f}% within 3σ",
            fontsize=10,
        )
        ax.set_xlabel("x₁")
        ax.set_aspect("equal")
    axes[0].set_ylabel("x₂")
    axes[0].legend(loc="upper right", fontsize=8, markerscale=2)
    lim = 1.6 + 6 * std
    axes[0].set_xlim(-lim, lim)
    axes[0].set_ylim(-lim, lim)
    return fig


#: The rows of the demo's summary, one cell per trace each.
SUMMARY_ROWS = (
    "probes",
    "probes converged",
    "final min Re λ",
    "final max |Im λ|",
    "final max |Im λ / Re λ|",
    "final |λ|max",
    "final eigenvalues with Re λ < 0",
    "probes with min Re λ < 0",
    "largest |Im λ| over training",
    "median max |Im λ / Re λ|",
    "final ρ(∂T) of the run's step",
    "probes with ρ(∂T) > 1",
    "median rotation ‖A‖²/‖J‖²",
    "median zero-sum defect",
    "modes covered (run)",
    "samples within 3σ of a mode (run)",
    "training + probing time (run)",
)


def _summary_cells(tr: Any, result: RunResult) -> list[str]:
    """One trace's column of the summary (:data:`SUMMARY_ROWS`)."""
    cov = result.coverage
    sc = tr.scalars("jacobian")
    eig = tr.eigenvalues("jacobian")
    last = eig[-1][np.isfinite(eig[-1])]
    return [
        f"{len(tr)}",
        f"{int((tr.status('jacobian') == 'ok').sum())}/{len(tr)}",
        f"{sc['min_real'][-1]:+.3g}",
        f"{sc['max_imag'][-1]:.3g}",
        f"{sc['max_imag_over_real'][-1]:.3g}",
        f"{sc['spectral_radius'][-1]:.3g}",
        f"{int((last.real < 0).sum())}/{last.size}",
        f"{int((sc['min_real'] < 0).sum())}/{len(tr)}",
        f"{np.nanmax(sc['max_imag']):.3g}",
        f"{np.nanmedian(sc['max_imag_over_real']):.3g}",
        *_dynamics_cells(tr),
        f"{cov['modes']}/{cov['of']}",
        f"{100 * cov['high_quality']:.0f}%",
        f"{result.seconds:.0f} s",
    ]


def demo_summary(results: list[RunResult], config: DemoConfig) -> str:
    """The demo's findings as text.

    Per trace, the spectrum at the end and over training; per run, how well the samples cover the
    modes.
    """
    from .trace import open_trace

    columns = {
        TRACE_LABELS[name]: _summary_cells(open_trace(r.traces[name]), r)
        for r in results
        for name in TRACES
        if name in r.traces
    }
    width = max(map(len, SUMMARY_ROWS))
    cw = max(max(len(v) for v in col) for col in columns.values())
    cw = max(cw, *(len(n) for n in columns))
    budget = "" if config.budget is None else f" within {config.budget:.0%} of the training time"
    lines = [
        f"specdiag demo: GAN on a ring of 8 Gaussians (MLPs {config.depth}x{config.hidden}), "
        f"{config.optimizer} lr {config.lr:g}, {config.loss} loss, {config.steps} steps, "
        f"probes due every {config.every} steps{budget}, k = {config.k}, seed {config.seed}.",
        "Top-k eigenvalues by magnitude of: J along the simultaneous-GD run; J along the "
        f"consensus run (γ = {config.consensus:g});",
        "and the Jacobian of v + γJᵀv, the field consensus optimisation follows, along "
        "the consensus run.",
        "Descent convention: gradient flow is locally stable where Re λ > 0; "
        "large |Im λ / Re λ| means rotation.",
        "",
        " " * width + "  " + "  ".join(n.rjust(cw) for n in columns),
    ]
    for j, label in enumerate(SUMMARY_ROWS):
        lines.append(
            label.ljust(width) + "  " + "  ".join(col[j].rjust(cw) for col in columns.values())
        )
    return "\n".join(lines)


def _dynamics_cells(tr: Any) -> list[str]:
    """The summary's cells for the update operator and the Helmholtz split ("–": not probed)."""
    cells = ["–", "–"]
    if "update" in tr.operators:
        rho = tr.scalars("update")["spectral_radius"]
        cells = [f"{rho[-1]:.6f}", f"{int((rho > 1).sum())}/{len(tr)}"]
    if "helmholtz" in tr.operators:
        h = tr.scalars("helmholtz")
        cells += [
            f"{np.nanmedian(h['rotation_fraction']):.3f}",
            f"{np.nanmedian(h['zero_sum_defect']):.3f}",
        ]
    else:
        cells += ["–", "–"]
    return cells
