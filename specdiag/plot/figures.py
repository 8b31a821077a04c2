"""Figures from a specdiag trace.

The eigenvalue cloud of the game Jacobian in the complex plane, its motion over
training, the summary scalars, the spread across probe batches, an animated GIF, and
several runs side by side.

Every figure uses and states the descent convention: the Jacobian is
:math:`J = \\partial v / \\partial x` of the field :math:`v = (\\nabla_{x_1} L_1, \\dots,
\\nabla_{x_P} L_P)`, gradient flow :math:`\\dot x = -v(x)` is locally stable where every
eigenvalue has :math:`\\operatorname{Re}\\lambda > 0`, and simultaneous gradient descent
:math:`x \\leftarrow x - \\eta v(x)` where every eigenvalue has :math:`|1 - \\eta\\lambda| < 1`.

This module imports numpy, matplotlib, PIL and specdiag's trace reader only, never
torch. It draws on :class:`matplotlib.figure.Figure` objects with the Agg canvas, so
it needs no display and leaves pyplot's global state alone. ``docs/plots.md`` shows
the figures and how to read them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import QuadMesh
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image

from ..errors import TraceError
from ..stability import METHODS, update_radius
from ..trace import Trace, open_trace

__all__ = [
    "FORMATS",
    "MAX_PROBES",
    "MAX_FRAMES",
    "FPS",
    "CONVENTION_NOTE",
    "plot_trace",
    "compare_traces",
    "spectrum_figure",
    "evolution_figure",
    "scalars_figure",
    "batch_spread_figure",
    "dynamics_figure",
    "animate_spectrum",
    "compare_figure",
]

TraceLike = Union[Trace, str, "os.PathLike[str]"]

#: Formats of the still figures (the animation is always a GIF).
FORMATS = ("png", "pdf", "svg")
#: Probes drawn as points at most; more are decimated evenly (first and last kept).
MAX_PROBES = 2000
#: Frames of the animated GIF at most; more probe steps are decimated evenly.
MAX_FRAMES = 100
#: Frames per second of the animated GIF.
FPS = 8
#: The sign convention, as every figure of the complex plane states it.
CONVENTION_NOTE = "descent convention: gradient flow stable where Re λ > 0"

_HESSIAN_NOTE = "Hessian: real eigenvalues; λ < 0: the player's loss curves downwards"
_DPI = 120
_GIF_DPI = 80
_CMAP = colormaps["viridis"]
_FAILED_COLOR = "tab:red"
_REGION_COLOR = "tab:blue"
_SCALAR_LABELS = {
    "min_real": "min Re λ",
    "max_imag": "max |Im λ|",
    "max_imag_over_real": "max |Im λ / Re λ|",
    "spectral_radius": "|λ|max",
    "max": "λ max",
    "min": "λ min",
}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Cloud:
    """The finite eigenvalues of some probes of one operator, one entry per eigenvalue."""

    steps: np.ndarray  # int64 (M,): training step of the probe
    values: np.ndarray  # complex128 (M,)
    converged: np.ndarray  # bool (M,)
    note: str  # how the probes were decimated, or ""


@contextmanager
def _opened(trace: TraceLike, swmr: bool = False) -> Iterator[Trace]:
    """``trace`` itself if it is a :class:`Trace`, else the file opened for the block."""
    if isinstance(trace, Trace):
        yield trace
        return
    tr = open_trace(trace, swmr=swmr)
    try:
        yield tr
    finally:
        tr.close()


def _check_plottable(tr: Trace, operator: Optional[str] = None) -> None:
    """TraceError for a trace without probes, ValueError for an unknown operator."""
    if len(tr) == 0:
        raise TraceError(
            f"{tr.path} has no probes yet; plot it once the monitor has written its first probe"
        )
    if operator is not None and operator not in tr.operators:
        raise ValueError(
            f"{tr.path} has no operator {operator!r}; pass one of its "
            f"operators: {', '.join(tr.operators)}"
        )


def _kind(tr: Trace, operator: str) -> str:
    return tr.meta["layout"]["operators"][operator]["kind"]


def _is_hessian(tr: Trace, operator: str) -> bool:
    return _kind(tr, operator) == "hessian"


def _of_kind(tr: Trace, kind: str) -> list[str]:
    return [op for op in tr.operators if _kind(tr, op) == kind]


def _require_complex(tr: Trace, operator: str, what: str) -> None:
    if _is_hessian(tr, operator):
        raise ValueError(
            f"{what} draws complex eigenvalues, and operator {operator!r} is a "
            f"Hessian (real eigenvalues): use spectrum_figure, which draws them "
            f"against the training step"
        )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _decimate(n: int, limit: int, what: str = "probe") -> tuple[np.ndarray, str]:
    """``min(n, limit)`` of ``n`` indices, evenly spread, the first and the last kept.

    Returns the indices :math:`\\operatorname{round}(i (n - 1) / (\\text{limit} - 1))`,
    :math:`i = 0, \\dots, \\text{limit} - 1` (all of them when :math:`n \\le` limit), and a
    note for the figure (``""`` when all are kept).
    """
    if limit < 2:
        raise ValueError(f"the number of {what}s to show must be at least 2, got {limit}")
    if n <= limit:
        return np.arange(n), ""
    gap = (n - 1) / (limit - 1)
    rows = np.round(np.arange(limit) * gap).astype(np.int64)
    about = "" if gap.is_integer() else "about "
    return rows, f"{about}every {_ordinal(round(gap))} {what} shown ({limit:,} of {n:,})"


def _cloud(tr: Trace, operator: str, max_probes: Optional[int] = None) -> _Cloud:
    """The finite eigenvalues of ``operator``, of every probe or of ``max_probes``
    probes evenly spread.
    """
    rows, note = (np.arange(len(tr)), "") if max_probes is None else _decimate(len(tr), max_probes)
    eig = tr.eigenvalues(operator)[rows]
    finite = np.isfinite(eig)
    steps = np.broadcast_to(tr.steps(operator)[rows, None], eig.shape)
    return _Cloud(steps[finite], eig[finite], tr.converged(operator)[rows][finite], note)


def _by_step(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct steps and a NaN-padded table ``(n_steps, most rows at one step)`` of
    the values of each step's rows (one row per probe batch).
    """
    order = np.argsort(steps, kind="stable")
    uniq, first, counts = np.unique(steps[order], return_index=True, return_counts=True)
    group = np.repeat(np.arange(uniq.size), counts)
    table = np.full((uniq.size, counts.max()), np.nan)
    table[group, np.arange(steps.size) - first[group]] = values[order]
    return uniq, table


def _rowwise(reduce: Callable[..., np.ndarray], table: np.ndarray) -> np.ndarray:
    """``reduce(table, axis=1)`` of a nan-aware reduction; all-NaN rows give NaN quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return reduce(table, axis=1)


def _has_batches(tr: Trace, operator: str) -> bool:
    return bool((tr.batch_index(operator) > 0).any())


def _stored_lr(tr: Trace) -> Optional[float]:
    """The learning rate the monitor stored with the run: its update rule's
    (``config["update"]["lr"]``, when one number) or ``config["metadata"]["lr"]``.
    """
    metadata = (tr.meta.get("config") or {}).get("metadata") or {}
    lr = _update_rule(tr).get("lr")
    if not isinstance(lr, (int, float)):
        lr = metadata.get("lr") if isinstance(metadata, dict) else None
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
        return float(lr)
    return None


def _check_lr(lr: Optional[float]) -> Optional[float]:
    if lr is not None and not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive step size, got {lr!r}")
    return None if lr is None else float(lr)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    if force:
        return
    for path in paths:
        if path.exists():
            raise FileExistsError(f"{path} exists; pass --force (force=True) to overwrite it")


def _name(tr: Trace) -> str:
    return Path(tr.path).name


# --------------------------------------------------------------------------- drawing


def _new_figure(width: float, height: float, dpi: float = _DPI) -> Figure:
    """A figure on its own Agg canvas, laid out by constrained layout."""
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _scatter(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    colors: np.ndarray,
    converged: np.ndarray,
    size: float = 14.0,
) -> None:
    """Converged eigenvalues as filled markers, unconverged ones hollow (edge only).

    ``colors`` is one RGBA row per point. Both collections are rasterized, so vector
    formats stay small however many points there are.
    """
    ax.scatter(
        x[converged],
        y[converged],
        c=colors[converged],
        s=size,
        linewidths=0,
        rasterized=True,
        gid="eigenvalues",
        label="converged",
    )
    if not converged.all():
        ax.scatter(
            x[~converged],
            y[~converged],
            facecolors="none",
            edgecolors=colors[~converged],
            s=size,
            linewidths=0.8,
            rasterized=True,
            gid="eigenvalues-unconverged",
            label="unconverged (hollow)",
        )


def _padded_range(x: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(x)), float(np.max(x))
    pad = 0.08 * (hi - lo) if hi > lo else 0.5 * max(abs(lo), 1.0)
    return lo - pad, hi + pad


def _set_plane_limits(ax: Axes, values: np.ndarray) -> None:
    """Limits that hold every value and the line Re λ = 0, with a margin."""
    ax.set_xlim(*_padded_range(np.append(values.real, 0.0)))
    ax.set_ylim(*_padded_range(np.append(values.imag, 0.0)))


def _draw_cloud(ax: Axes, cloud: _Cloud, norm: Normalize, hessian: bool) -> None:
    """The eigenvalues coloured by step: in the complex plane (Re λ, Im λ) with the line
    Re λ = 0, or for a Hessian against the training step with the line λ = 0.
    """
    colors = _CMAP(norm(cloud.steps))
    if hessian:
        _scatter(ax, cloud.steps.astype(float), cloud.values.real, colors, cloud.converged)
        ax.axhline(0.0, color="0.3", lw=0.8, zorder=0.5, label="λ = 0")
        ax.set_xlabel("training step")
        ax.set_ylabel("λ")
    else:
        _scatter(ax, cloud.values.real, cloud.values.imag, colors, cloud.converged)
        ax.axvline(0.0, color="0.3", lw=0.8, zorder=0.5, label="Re λ = 0")
        ax.set_xlabel("Re λ")
        ax.set_ylabel("Im λ")
    if cloud.note:
        ax.text(
            0.99,
            0.01,
            cloud.note,
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.35",
        )


def _step_norm(*clouds: _Cloud) -> Normalize:
    steps = np.concatenate([c.steps for c in clouds])
    return Normalize(float(steps.min()), float(steps.max())) if steps.size else Normalize(0, 1)


def _step_colorbar(fig: Figure, norm: Normalize, ax: Union[Axes, Sequence[Axes]]) -> None:
    fig.colorbar(ScalarMappable(norm, _CMAP), ax=ax, label="training step")


def _stability_region(
    ax: Axes, spectral_radius: Callable[[np.ndarray], np.ndarray], label: str, resolution: int = 400
) -> None:
    """Shade and outline :math:`\\{\\lambda : \\rho(\\lambda) < 1\\}` within the axes' limits.

    ``spectral_radius`` maps eigenvalues :math:`\\lambda` of :math:`J` (a complex array) to
    the spectral radius of the optimiser's update on that eigen-direction, e.g.
    :math:`|1 - \\eta\\lambda|` for simultaneous gradient descent. The region is found by
    contouring ``spectral_radius`` at 1 on a grid, so any optimiser whose update acts
    eigenvalue by eigenvalue plugs in. Set the limits first: the grid covers them.
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    re, im = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    rho = spectral_radius(re + 1j * im)
    if rho.min() >= 1.0:  # the region lies outside the view
        return
    ax.contourf(re, im, rho, levels=[0.0, 1.0], colors=[_REGION_COLOR], alpha=0.1, zorder=0)
    if rho.max() > 1.0:
        ax.contour(
            re, im, rho, levels=[1.0], colors=[_REGION_COLOR], linewidths=1.0, zorder=0.6
        ).set_gid("stability-region")
    ax.add_artist(
        ax.legend(
            handles=[
                Patch(facecolor=_REGION_COLOR, alpha=0.25, edgecolor=_REGION_COLOR, label=label)
            ],
            loc="upper left",
            fontsize=8,
        )
    )


def _update_rule(tr: Trace) -> dict:
    """The run's update rule as stored by a monitor (``config["update"]``), or ``{}``."""
    rule = (tr.meta.get("config") or {}).get("update")
    return rule if isinstance(rule, dict) else {}


def _region_method(rule: dict) -> tuple[str, float]:
    """The closed-form method (and momentum) whose region to draw: the run's own when it
    maps eigenvalues exactly (one step size, no preconditioner), else plain GD.
    """
    closed = (
        rule.get("method") in METHODS
        and rule.get("preconditioner") is None
        and isinstance(rule.get("lr"), (int, float))
    )
    if not closed:
        return "gd", 0.0
    return rule["method"], float(rule.get("beta") or 0.0)


def _update_region(ax: Axes, lr: float, method: str, beta: float) -> None:
    """The stability region of ``method`` at step size ``lr``: the eigenvalues λ of J with
    every update eigenvalue inside the unit disc (:func:`specdiag.stability.update_radius`);
    for gradient descent the disc :math:`|1 - \\eta\\lambda| < 1` of centre and radius
    :math:`1/\\eta`.
    """
    label = (
        ("GD stable: |1 − ηλ| < 1" if method == "gd" else f"{method} stable")
        + f", η = {lr:g}"
        + (f", β = {beta:g}" if method == "momentum" else "")
    )
    _stability_region(ax, lambda lam: update_radius(lam, method, lr, beta=beta), label)


def _mark_failed(ax: Axes, steps: np.ndarray) -> None:
    """Probes whose solve failed (status ≠ ok), as crosses along the bottom edge."""
    if steps.size:
        ax.plot(
            steps,
            np.full(steps.size, 0.02),
            ls="",
            marker="x",
            ms=5,
            color=_FAILED_COLOR,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="failed probe (status ≠ ok)",
        )


def _scalar_axis(ax: Axes, name: str) -> None:
    """Scale and reference line of a scalar's panel.

    |Im/Re| goes on a log scale when it has positive values; |λ|max and max |Im λ| when
    their positive values span more than two decades (runs of very different scales
    compared on one panel); min Re λ gets the line 0, and a symmetric log scale when
    its values span more than two decades.
    """
    data = np.concatenate(
        [np.asarray(line.get_ydata(), float) for line in ax.get_lines()] or [np.empty(0)]
    )
    data = data[np.isfinite(data)]
    positive = data[data > 0]
    spans = positive.size > 0 and positive.max() > 100 * positive.min()
    if name == "max_imag_over_real" and positive.size:
        ax.set_yscale("log")
    elif name in ("spectral_radius", "max_imag") and spans:
        ax.set_yscale("log")
    if name == "min_real":
        ax.axhline(0.0, color="0.3", lw=0.8, zorder=0.5)
        nonzero = np.abs(data[data != 0])
        if nonzero.size and nonzero.max() > 100 * nonzero.min():
            ax.set_yscale("symlog", linthresh=float(np.percentile(nonzero, 10)))


def _failed_steps(tr: Trace, operators: Sequence[str]) -> np.ndarray:
    return np.unique(np.concatenate([tr.steps(op)[tr.status(op) != "ok"] for op in operators]))


# --------------------------------------------------------------------------- figures


def spectrum_figure(
    trace: TraceLike,
    operator: str = "jacobian",
    *,
    lr: Optional[float] = None,
    max_probes: int = MAX_PROBES,
) -> Figure:
    """The eigenvalues of every probe in the complex plane, coloured by training step.

    Axes :math:`\\operatorname{Re}\\lambda` and :math:`\\operatorname{Im}\\lambda`, the line
    :math:`\\operatorname{Re}\\lambda = 0` (gradient flow contracts along eigen-directions
    right of it) and the convention stated. Converged eigenvalues are filled markers,
    unconverged ones hollow. With ``lr`` the stability region of simultaneous gradient
    descent, :math:`|1 - \\eta\\lambda| < 1` (the disc of centre and radius
    :math:`1/\\eta`), is shaded and outlined.

    For a Hessian operator (real eigenvalues) the figure draws :math:`\\lambda` against
    the training step instead, with the line :math:`\\lambda = 0`; ``lr`` is ignored.

    Parameters
    ----------
    trace : Trace or path
    operator : str
        An operator of the trace.
    lr : float, optional
        Step size :math:`\\eta` of gradient descent; None draws no region.
    max_probes : int
        Probes drawn at most; more are decimated evenly (the first and the last kept)
        and the figure says so.
    """
    lr = _check_lr(lr)
    with _opened(trace) as tr:
        _check_plottable(tr, operator)
        hessian = _is_hessian(tr, operator)
        cloud = _cloud(tr, operator, max_probes)
        fig = _new_figure(7.0, 5.6)
        ax = fig.subplots()
        norm = _step_norm(cloud)
        _draw_cloud(ax, cloud, norm, hessian)
        _step_colorbar(fig, norm, ax)
        fig.suptitle(f"{_name(tr)}: eigenvalues of {operator}")
        ax.set_title(_HESSIAN_NOTE if hessian else CONVENTION_NOTE, fontsize=9)
        if not hessian:
            _set_plane_limits(ax, cloud.values)
            method, beta = _region_method(_update_rule(tr))
            if lr is not None:
                _update_region(ax, lr, method, beta)
        ax.legend(loc="lower left", fontsize=8)
    return fig


def _density(ax: Axes, x: np.ndarray, y: np.ndarray, x_bins: int) -> QuadMesh:
    """A 2-D histogram of the points with a log colour scale (empty bins blank)."""
    counts, x_edges, y_edges = np.histogram2d(x, y, bins=(x_bins, 120))
    return ax.pcolormesh(
        x_edges,
        y_edges,
        np.ma.masked_equal(counts.T, 0),
        norm=LogNorm(),
        cmap="magma_r",
        rasterized=True,
    )


def evolution_figure(
    trace: TraceLike, operator: str = "jacobian", *, max_probes: int = MAX_PROBES
) -> Figure:
    """Re λ and Im λ against the training step: how the eigenvalue cloud moves.

    Two panels with a shared step axis. Up to ``max_probes`` probes every eigenvalue is a
    point (filled: converged, hollow: not); above, each panel is a 2-D histogram of all
    eigenvalues with a logarithmic colour scale (eigenvalues per bin).

    Raises
    ------
    ValueError
        For a Hessian operator: :func:`spectrum_figure` draws its real eigenvalues
        against the step already.
    """
    with _opened(trace) as tr:
        _check_plottable(tr, operator)
        _require_complex(tr, operator, "evolution_figure")
        cloud = _cloud(tr, operator)
        dense = len(tr) > max_probes
        fig = _new_figure(8.0, 6.0)
        axes = fig.subplots(2, 1, sharex=True)
        colors = np.tile(np.array(colormaps["tab10"](0)), (cloud.steps.size, 1))
        steps = cloud.steps.astype(float)
        x_bins = min(np.unique(cloud.steps).size, 200)
        for ax, part, label in (
            (axes[0], cloud.values.real, "Re λ"),
            (axes[1], cloud.values.imag, "Im λ"),
        ):
            if dense and steps.size:
                mesh = _density(ax, steps, part, x_bins)
            else:
                _scatter(ax, steps, part, colors, cloud.converged, size=8.0)
            ax.axhline(0.0, color="0.3", lw=0.8, zorder=0.5, label=f"{label} = 0")
            ax.set_ylabel(label)
        axes[1].set_xlabel("training step")
        if dense and steps.size:
            fig.colorbar(mesh, ax=list(axes), label="eigenvalues per bin")
            axes[0].set_title(
                f"density of all {steps.size:,} eigenvalues of {len(tr):,} probes (log colour)",
                fontsize=8,
            )
        else:
            axes[0].legend(loc="lower left", fontsize=8)
        fig.suptitle(
            f"{_name(tr)}: eigenvalues of {operator} over training\n{CONVENTION_NOTE}", fontsize=10
        )
    return fig


def _scalar_panels(tr: Trace) -> list[tuple[str, list[tuple[str, str]]]]:
    """The panels of the scalars figure: ``(y label, [(operator, scalar), ...])``.

    One panel per scalar of each non-Hessian operator; one panel for the scalars of all
    Hessian operators together (top and bottom eigenvalue of each player).
    """
    panels: list[tuple[str, list[tuple[str, str]]]] = []
    hessian: list[tuple[str, str]] = []
    for op in tr.operators:
        if _kind(tr, op) in _DYNAMICS_KINDS:
            continue  # drawn by dynamics_figure
        names = list(tr.scalars(op))
        if _is_hessian(tr, op):
            hessian += [(op, name) for name in names]
        else:
            panels += [(f"{op}: {_SCALAR_LABELS.get(name, name)}", [(op, name)]) for name in names]
    if hessian:
        panels.append(("Hessians: λ max, λ min", hessian))
    return panels


def scalars_figure(trace: TraceLike) -> Figure:
    """The summary scalars over training, one panel per quantity.

    For a Jacobian: min Re λ (with the line 0: below it some direction does not contract
    under gradient flow), max |Im λ| (rotation), max |Im λ / Re λ| (rotation against
    contraction, log scale) and :math:`|\\lambda|_{\\max}` (stiffness: gradient descent
    needs :math:`\\eta < 2\\operatorname{Re}\\lambda / |\\lambda|^2` for every λ). For the
    Hessians: the top and bottom eigenvalue of each player (solid: max, dashed: min).
    Probes with several batches at a step show the median over the batches. Probes that
    failed (status ≠ ok) are red crosses along the bottom edge.
    """
    with _opened(trace) as tr:
        _check_plottable(tr)
        panels = _scalar_panels(tr)
        ncols = 2 if len(panels) > 2 else 1
        nrows = -(-len(panels) // ncols)
        fig = _new_figure(5.5 * ncols, 2.4 * nrows + 0.6)
        axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
        for ax in axes[len(panels) :]:
            ax.remove()
        batches = any(_has_batches(tr, op) for op in tr.operators)
        for i, (ax, (title, items)) in enumerate(zip(axes, panels)):
            for op, name in items:
                steps, table = _by_step(tr.steps(op), tr.scalars(op)[name])
                color = f"C{tr.operators.index(op) % 10}"
                ls = "--" if name == "min" else "-"
                label = f"{op} {_SCALAR_LABELS.get(name, name)}" if len(items) > 1 else None
                ax.plot(
                    steps,
                    _rowwise(np.nanmedian, table),
                    color=color,
                    ls=ls,
                    lw=1.2,
                    marker="." if steps.size < 50 else None,
                    label=label,
                )
            _scalar_axis(ax, items[0][1])
            _mark_failed(ax, _failed_steps(tr, sorted({op for op, _ in items})))
            ax.set_ylabel(title, fontsize=9)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best")
            if i >= len(panels) - ncols:
                ax.set_xlabel("training step")
                ax.xaxis.set_tick_params(labelbottom=True)
        note = "; median over probe batches" if batches else ""
        fig.suptitle(f"{_name(tr)}: summary scalars ({CONVENTION_NOTE}{note})", fontsize=10)
    return fig


_DYNAMICS_KINDS = ("update", "helmholtz")


def dynamics_figure(trace: TraceLike) -> Figure:
    """The run's optimiser and the game's rotation over training.

    From a trace probed with an update rule and/or the Helmholtz split (see
    :class:`specdiag.SpectrumMonitor`, ``update=`` and ``helmholtz=``):

    * :math:`\\rho(\\partial T)` of the run's update operator, with the line 1: above it
      the optimiser moves away from the point along some direction at the step size
      it uses;
    * the largest stable step size :math:`\\eta^*` from the Jacobian's computed
      eigenvalues (log scale; where the update has a closed form) against the step size
      used: training is locally stable only below the curve;
    * the rotation fraction :math:`\\|A\\|_F^2 / \\|J\\|_F^2` (0: a potential game, 1:
      purely rotational) with its standard error, and for two players the zero-sum
      defect (0: zero-sum).

    Raises
    ------
    ValueError
        The trace has neither an ``update`` nor a ``helmholtz`` operator.
    """
    with _opened(trace) as tr:
        _check_plottable(tr)
        updates, helmholtz = _of_kind(tr, "update"), _of_kind(tr, "helmholtz")
        if not updates and not helmholtz:
            raise ValueError(
                f"{tr.path} has no update or helmholtz operator; probe with "
                "update=UpdateRule(...) or helmholtz=N to record them"
            )
        n = 2 * len(updates) + len(helmholtz)
        fig = _new_figure(4.6 * n, 3.6)
        axes = list(fig.subplots(1, n, sharex=True, squeeze=False)[0])
        rule = _update_rule(tr)
        for op in updates:
            sc = tr.scalars(op)
            ax = axes.pop(0)
            steps, table = _by_step(tr.steps(op), sc["spectral_radius"])
            ax.plot(steps, _rowwise(np.nanmedian, table), color="C0", lw=1.2, marker=".")
            ax.axhline(1.0, color="0.3", lw=0.8)
            _scalar_axis(ax, "spectral_radius")  # log scale when it spans decades
            _mark_failed(ax, _failed_steps(tr, [op]))
            ax.set_title(f"ρ(∂T), {rule.get('method', op)}", fontsize=10)
            ax.set_xlabel("training step")
            ax = axes.pop(0)
            for name, style, label in (
                ("max_stable_lr", "-", "largest stable η"),
                ("lr", "--", "η used"),
            ):
                steps, table = _by_step(tr.steps(op), sc[name])
                ax.plot(
                    steps,
                    _rowwise(np.nanmedian, table),
                    ls=style,
                    lw=1.2,
                    marker="." if name == "max_stable_lr" else None,
                    label=label,
                )
            positive = np.concatenate([sc["max_stable_lr"], sc["lr"]])
            if (positive[np.isfinite(positive)] > 0).any():
                ax.set_yscale("log")
            none = tr.steps(op)[sc["max_stable_lr"] == 0]
            if none.size:  # no step size is stable: drawn along the bottom edge
                ax.plot(
                    np.unique(none),
                    np.full(np.unique(none).size, 0.04),
                    ls="",
                    marker="v",
                    color=_FAILED_COLOR,
                    transform=ax.get_xaxis_transform(),
                    clip_on=False,
                    label="no stable η",
                )
            ax.set_title("step size", fontsize=10)
            ax.set_xlabel("training step")
            ax.legend(fontsize=8)
        for op in helmholtz:
            sc = tr.scalars(op)
            ax = axes.pop(0)
            for name, label in (
                ("rotation_fraction", "rotation ‖A‖²/‖J‖²"),
                ("zero_sum_defect", "zero-sum defect"),
            ):
                steps, value = _by_step(tr.steps(op), sc[name])
                _, se = _by_step(tr.steps(op), sc[f"{name}_se"])
                mid, err = _rowwise(np.nanmedian, value), _rowwise(np.nanmedian, se)
                if np.isfinite(mid).any():
                    (line,) = ax.plot(steps, mid, lw=1.2, marker=".", label=label)
                    ax.fill_between(
                        steps, mid - err, mid + err, color=line.get_color(), alpha=0.2, lw=0
                    )
            ax.set_ylim(-0.02, 1.02)
            ax.set_title("Helmholtz split of J", fontsize=10)
            ax.set_xlabel("training step")
            ax.legend(fontsize=8)
        fig.suptitle(
            f"{_name(tr)}: the optimiser's update and the game's rotation ({CONVENTION_NOTE})",
            fontsize=10,
        )
    return fig


def batch_spread_figure(trace: TraceLike, operator: str = "jacobian") -> Figure:
    """How much each scalar varies across the probe batches of a step.

    Per step: the median over the probe batches (line) and their min–max band. A wide
    band means the spectrum measured on one batch is noisy: trust trends, not single
    probes.

    Raises
    ------
    ValueError
        The trace has one probe batch per step (no ``batch_index > 0``).
    """
    with _opened(trace) as tr:
        _check_plottable(tr, operator)
        if not _has_batches(tr, operator):
            raise ValueError(
                f"{tr.path} has one probe batch per step; the batch-spread "
                f"figure needs a monitor that probes several batches"
            )
        scalars = tr.scalars(operator)
        fig = _new_figure(8.0, 1.9 * len(scalars) + 0.8)
        axes = fig.subplots(len(scalars), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (name, values) in zip(axes, scalars.items()):
            steps, table = _by_step(tr.steps(operator), values)
            ax.fill_between(
                steps,
                _rowwise(np.nanmin, table),
                _rowwise(np.nanmax, table),
                color="C0",
                alpha=0.25,
                lw=0,
                label="min–max over batches",
            )
            ax.plot(
                steps,
                _rowwise(np.nanmedian, table),
                color="C0",
                lw=1.2,
                label="median over batches",
            )
            ax.set_ylabel(_SCALAR_LABELS.get(name, name), fontsize=9)
        axes[0].legend(fontsize=7, loc="best")
        axes[-1].set_xlabel("training step")
        n_batches = int(tr.batch_index(operator).max()) + 1
        fig.suptitle(
            f"{_name(tr)}: spread of {operator}'s scalars over up to {n_batches} "
            f"probe batches per step\n{CONVENTION_NOTE}",
            fontsize=10,
        )
    return fig


def animate_spectrum(
    trace: TraceLike,
    path: Union[str, "os.PathLike[str]"],
    operator: str = "jacobian",
    *,
    max_frames: int = MAX_FRAMES,
    fps: float = FPS,
) -> Path:
    """An animated GIF of the eigenvalue cloud over training.

    One frame per probe step (every probe batch of the step), or per step of an even
    selection of ``max_frames`` steps (the first and the last kept). The current probe is
    drawn in colour (filled: converged, hollow: not), earlier frames' eigenvalues faded
    grey; the axes are fixed over all frames; each frame shows its step. An existing
    file at ``path`` is replaced.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        For a Hessian operator (real eigenvalues): see :func:`spectrum_figure`.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    path = Path(path)
    with _opened(trace) as tr:
        _check_plottable(tr, operator)
        _require_complex(tr, operator, "animate_spectrum")
        all_steps = np.unique(tr.steps(operator))
        index, note = _decimate(all_steps.size, max_frames, "probe step")
        frame_steps = all_steps[index]
        cloud = _cloud(tr, operator)
        keep = np.isin(cloud.steps, frame_steps)
        steps, values, converged = cloud.steps[keep], cloud.values[keep], cloud.converged[keep]
        title = f"{_name(tr)}: eigenvalues of {operator}"
    xy = np.column_stack([values.real, values.imag])
    fig = _new_figure(5.6, 4.6, dpi=_GIF_DPI)
    ax = fig.subplots()
    ax.axvline(0.0, color="0.3", lw=0.8, zorder=0.5)
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(CONVENTION_NOTE, fontsize=8)
    fig.suptitle(title, fontsize=10)
    _set_plane_limits(ax, values)
    if note:
        ax.text(
            0.99,
            0.01,
            note,
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.35",
        )
    # the moving artists are drawn onto a copy of the static background (blitting)
    past = ax.scatter(
        np.empty(0), np.empty(0), s=8, color="0.65", alpha=0.5, linewidths=0, animated=True
    )
    now = ax.scatter(np.empty(0), np.empty(0), s=28, linewidths=1.0, animated=True)
    label = ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top", fontsize=10, animated=True)
    ax.legend(
        handles=[
            Line2D([], [], ls="", marker="o", color="C3", label="this probe"),
            Line2D([], [], ls="", marker="o", mfc="none", color="C3", label="unconverged"),
            Line2D([], [], ls="", marker="o", color="0.65", label="earlier"),
        ],
        loc="lower left",
        fontsize=7,
    )
    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    red, clear = np.array(colormaps["tab10"](3)), np.zeros(4)
    frames = []
    for step in frame_steps:
        current = steps == step
        past.set_offsets(xy[steps < step])
        now.set_offsets(xy[current])
        now.set_facecolors(np.where(converged[current, None], red, clear))
        now.set_edgecolors(red)
        label.set_text(f"step {step:,}")
        canvas.restore_region(background)
        for artist in (past, now, label):
            ax.draw_artist(artist)
        frames.append(
            Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).quantize(
                colors=64, method=Image.Quantize.FASTOCTREE
            )
        )
    durations = [int(1000 / fps)] * len(frames)
    durations[-1] *= 4  # linger on the last probe before looping
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
    )
    return path


def compare_figure(
    traces: Sequence[TraceLike],
    labels: Optional[Sequence[str]] = None,
    operator: str = "jacobian",
    *,
    max_probes: int = MAX_PROBES,
) -> Figure:
    """Several runs side by side: their spectra, then their scalars overlaid.

    Top row: one complex-plane panel per run (Hessian: λ against the step) and one
    colour scale of training step; the panels share their axes unless the runs' largest
    eigenvalues differ by more than a factor of 10 (then each run gets its own limits, so
    a small spectrum is not a dot next to a large one). Below: one panel per scalar of ``operator``,
    each run's median over probe batches in its own colour (C0, C1, ...).

    Parameters
    ----------
    traces : sequence of Trace or path
        Every trace must have ``operator`` and at least one probe.
    labels : sequence of str, optional
        One per trace; default the file names without suffix.
    operator : str
    max_probes : int
        Probes drawn per run at most (decimated evenly above).
    """
    if not traces:
        raise ValueError("compare needs at least one trace")
    if labels is not None and len(labels) != len(traces):
        raise ValueError(
            f"labels needs one label per trace: {len(traces)} traces, {len(labels)} labels"
        )
    with ExitStack() as stack:
        opened = [stack.enter_context(_opened(tr)) for tr in traces]
        return _compare(opened, labels, operator, max_probes)


def _compare(
    opened: list[Trace], labels: Optional[Sequence[str]], operator: str, max_probes: int
) -> Figure:
    """:func:`compare_figure` of open traces."""
    for tr in opened:
        _check_plottable(tr, operator)
    labels = list(labels) if labels is not None else [Path(tr.path).stem for tr in opened]
    hessians = {_is_hessian(tr, operator) for tr in opened}
    if len(hessians) > 1:
        raise ValueError(
            f"operator {operator!r} is a Hessian in some traces and not in "
            f"others; compare operators of one kind"
        )
    hessian = hessians.pop()
    clouds = [_cloud(tr, operator, max_probes) for tr in opened]
    scalars = list(dict.fromkeys(name for tr in opened for name in tr.scalars(operator)))
    n = len(opened)
    fig = _new_figure(max(3.6 * n + 1.2, 3.4 * len(scalars)), 8.0)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1.0])
    extents = [float(np.abs(c.values).max()) for c in clouds if c.values.size]
    share = not extents or max(extents) <= 10 * max(min(extents), np.finfo(float).tiny)
    axes = top.subplots(1, n, sharex=share, sharey=share, squeeze=False)[0]
    norm = _step_norm(*clouds)
    for ax, cloud, label in zip(axes, clouds, labels):
        _draw_cloud(ax, cloud, norm, hessian)
        ax.set_title(label, fontsize=10)
        if share:
            ax.label_outer()
        elif not hessian and cloud.values.size:
            _set_plane_limits(ax, cloud.values)
    if not hessian and share:
        _set_plane_limits(axes[0], np.concatenate([c.values for c in clouds]))
    axes[0].legend(loc="lower left", fontsize=8)
    _step_colorbar(top, norm, list(axes))
    top.suptitle(
        f"eigenvalues of {operator} ({_HESSIAN_NOTE if hessian else CONVENTION_NOTE})", fontsize=10
    )
    scalar_axes = bottom.subplots(1, max(len(scalars), 1), squeeze=False)[0]
    for ax, name in zip(scalar_axes, scalars):
        for i, (tr, label) in enumerate(zip(opened, labels)):
            if name in tr.scalars(operator):
                steps, table = _by_step(tr.steps(operator), tr.scalars(operator)[name])
                ax.plot(
                    steps, _rowwise(np.nanmedian, table), color=f"C{i % 10}", lw=1.2, label=label
                )
        _scalar_axis(ax, name)
        ax.set_title(_SCALAR_LABELS.get(name, name), fontsize=9)
        ax.set_xlabel("training step")
    if scalars:
        scalar_axes[0].legend(fontsize=7, loc="best")
    return fig


# --------------------------------------------------------------------------- files


def plot_trace(
    trace: TraceLike,
    out_dir: Union[str, "os.PathLike[str]"],
    *,
    operator: str = "jacobian",
    fmt: str = "png",
    force: bool = False,
    lr: Optional[float] = None,
    gif: bool = True,
    max_probes: int = MAX_PROBES,
    max_frames: int = MAX_FRAMES,
    swmr: bool = False,
) -> list[Path]:
    """Write every figure of a trace into a directory.

    Files (``FMT`` is ``fmt``):

    ``spectrum.FMT``
        :func:`spectrum_figure`, with the gradient-descent stability region when a
        step size is known.
    ``evolution.FMT``
        :func:`evolution_figure` (not for a Hessian operator).
    ``scalars.FMT``
        :func:`scalars_figure`, every operator of the trace.
    ``batch_spread.FMT``
        :func:`batch_spread_figure`, only when the trace has several probe batches.
    ``dynamics.FMT``
        :func:`dynamics_figure`, only when the trace has an update or helmholtz operator.
    ``spectrum.gif``
        :func:`animate_spectrum`, when ``gif`` (not for a Hessian operator).

    Parameters
    ----------
    trace : Trace or path
        A trace still being written can be plotted: what is complete is drawn.
    out_dir : path
        Created if missing.
    operator : str
        The operator whose eigenvalues are drawn.
    fmt : {"png", "pdf", "svg"}
        Format of the still figures.
    force : bool
        Overwrite existing files; without it nothing is written if any exists.
    lr : float, optional
        Step size of gradient descent for the stability region; default the ``lr`` the
        monitor stored in ``trace.meta["config"]["metadata"]``, if any.
    gif : bool
        Also write the animation.
    max_probes, max_frames : int
        Decimation limits of the point figures and of the animation.
    swmr : bool
        Open the path in SWMR mode (a trace a monitor with ``swmr=True`` is writing).

    Returns
    -------
    list of pathlib.Path
        The files written, in the order above.

    Raises
    ------
    FileExistsError
        An output exists and not ``force``; nothing was written.
    ValueError
        Unknown ``fmt`` or ``operator``, or a bad ``lr``.
    TraceError
        The trace cannot be read or has no probes yet.
    """
    _check_format(fmt)
    lr = _check_lr(lr)
    out = Path(out_dir)
    with _opened(trace, swmr) as tr:
        _check_plottable(tr, operator)
        complex_plane = not _is_hessian(tr, operator)
        lr = _stored_lr(tr) if lr is None else lr
        figures: dict[str, Callable[[], Figure]] = {
            "spectrum": lambda: spectrum_figure(tr, operator, lr=lr, max_probes=max_probes)
        }
        if complex_plane:
            figures["evolution"] = lambda: evolution_figure(tr, operator, max_probes=max_probes)
        figures["scalars"] = lambda: scalars_figure(tr)
        if _has_batches(tr, operator):
            figures["batch_spread"] = lambda: batch_spread_figure(tr, operator)
        if any(_kind(tr, op) in _DYNAMICS_KINDS for op in tr.operators):
            figures["dynamics"] = lambda: dynamics_figure(tr)
        paths = {name: out / f"{name}.{fmt}" for name in figures}
        animation = out / "spectrum.gif" if gif and complex_plane else None
        _refuse_existing([*paths.values(), *([animation] if animation else [])], force)
        out.mkdir(parents=True, exist_ok=True)
        for name, make in figures.items():
            make().savefig(paths[name], format=fmt, dpi=_DPI)
        written = list(paths.values())
        if animation:
            written.append(animate_spectrum(tr, animation, operator, max_frames=max_frames))
    return written


def compare_traces(
    traces: Sequence[TraceLike],
    out_dir: Union[str, "os.PathLike[str]"],
    *,
    labels: Optional[Sequence[str]] = None,
    operator: str = "jacobian",
    fmt: str = "png",
    force: bool = False,
    max_probes: int = MAX_PROBES,
) -> list[Path]:
    """Write :func:`compare_figure` of several traces to ``out_dir/compare.FMT``.

    Parameters are those of :func:`compare_figure` and :func:`plot_trace`. Returns the
    file written (a one-element list). Raises FileExistsError if it exists and not
    ``force``.
    """
    _check_format(fmt)
    out = Path(out_dir)
    path = out / f"compare.{fmt}"
    _refuse_existing([path], force)
    fig = compare_figure(traces, labels, operator, max_probes=max_probes)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=_DPI)
    return [path]
