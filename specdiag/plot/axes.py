r"""Drawing primitives shared by the figures.

Eigenvalue markers, limits, colour bars, stability regions, failed probes, and series
on linear, log and symlog axes that never hide a value without saying so.

Values a scale cannot show are drawn at the edge of the axes, with a legend entry:
on a log axis a value :math:`\le 0` is a marker on the bottom edge ("≤ 0 (not on log
scale)"), an infinite value a marker on the top (or bottom, for :math:`-\infty`) edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import Locator, LogFormatterSciNotation

from ..stability import METHODS, update_radius
from .data import RASTER_POINTS, Cloud
from .styles import Style

__all__ = [
    "Scale",
    "SymlogTicks",
    "scatter_eigenvalues",
    "draw_cloud",
    "plot_series",
    "choose_scale",
]

#: Label of the markers of values a log axis cannot show.
NONPOSITIVE_LABEL = "≤ 0 (not on log scale)"
#: Label of the markers of infinite values.
INFINITE_LABEL = "∞ (off scale)"


def scatter_eigenvalues(
    ax: Axes,
    st: Style,
    x: np.ndarray,
    y: np.ndarray,
    colors: np.ndarray,
    converged: np.ndarray,
    size: float = 14.0,
) -> None:
    """Converged eigenvalues as filled markers, unconverged ones hollow (edge only).

    ``colors`` is one RGBA row per point. A layer of more than ``RASTER_POINTS`` points
    is rasterized, so vector files stay small however many points there are; smaller
    ones stay vector.
    """
    scale = size * (0.45 if st.paper else 1.0)
    ax.scatter(
        x[converged],
        y[converged],
        c=colors[converged],
        s=scale,
        linewidths=0,
        rasterized=bool(converged.sum() > RASTER_POINTS),
        gid="eigenvalues",
        label="converged",
    )
    if not converged.all():
        ax.scatter(
            x[~converged],
            y[~converged],
            facecolors="none",
            edgecolors=colors[~converged],
            s=scale,
            linewidths=0.8 if not st.paper else 0.5,
            rasterized=bool((~converged).sum() > RASTER_POINTS),
            gid="eigenvalues-unconverged",
            label="unconverged (hollow)",
        )


def padded_range(x: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of ``x`` widened by 8% (a unit around a single value)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    pad = 0.08 * (hi - lo) if hi > lo else 0.5 * max(abs(lo), 1.0)
    return lo - pad, hi + pad


def set_plane_limits(ax: Axes, values: np.ndarray) -> None:
    """Limits that hold every value and the line Re λ = 0, with a margin."""
    ax.set_xlim(*padded_range(np.append(values.real, 0.0)))
    ax.set_ylim(*padded_range(np.append(values.imag, 0.0)))


def corner_note(ax: Axes, st: Style, text: str, *, top: bool = False) -> None:
    """A small grey note in the bottom (or top) right corner of the axes."""
    ax.text(
        0.99,
        0.99 if top else 0.01,
        text,
        transform=ax.transAxes,
        ha="right",
        va="top" if top else "bottom",
        fontsize=st.font("note"),
        color=st.faint,
        gid="note",
    )


def zero_line(ax: Axes, st: Style, *, vertical: bool = False, label: Optional[str] = None) -> None:
    """The reference line 0 (horizontal, or vertical for Re λ = 0)."""
    draw = ax.axvline if vertical else ax.axhline
    draw(0.0, color=st.reference, lw=0.8 if not st.paper else 0.6, zorder=0.5, label=label)


def draw_cloud(ax: Axes, st: Style, cloud: Cloud, norm: Normalize, hessian: bool) -> None:
    """The eigenvalues coloured by step.

    In the complex plane (Re λ, Im λ) with the line Re λ = 0, or for a Hessian against
    the training step with the line λ = 0.
    """
    colors = colormaps[st.step_cmap](norm(cloud.steps))
    if hessian:
        steps = cloud.steps.astype(float)
        scatter_eigenvalues(ax, st, steps, cloud.values.real, colors, cloud.converged)
        zero_line(ax, st, label="λ = 0")
        ax.set_xlabel("training step")
        ax.set_ylabel("λ")
    else:
        scatter_eigenvalues(ax, st, cloud.values.real, cloud.values.imag, colors, cloud.converged)
        zero_line(ax, st, vertical=True, label="Re λ = 0")
        ax.set_xlabel("Re λ")
        ax.set_ylabel("Im λ")
    if cloud.note:
        corner_note(ax, st, cloud.note)


def step_norm(*clouds: Cloud) -> Normalize:
    """The colour scale of training step over every cloud."""
    steps = np.concatenate([c.steps for c in clouds])
    return Normalize(float(steps.min()), float(steps.max())) if steps.size else Normalize(0, 1)


def colorbar(fig: Any, mappable: Any, ax: Union[Axes, Sequence[Axes]], label: str) -> Any:
    """A colour bar whose colours stay vector in PDF and SVG files.

    matplotlib rasterizes the colours of long colour bars by default.
    """
    bar = fig.colorbar(mappable, ax=ax, label=label)
    if bar.solids is not None:
        bar.solids.set_rasterized(False)
    return bar


def step_colorbar(fig: Any, st: Style, norm: Normalize, ax: Union[Axes, Sequence[Axes]]) -> None:
    """The colour bar of training step."""
    colorbar(fig, ScalarMappable(norm, colormaps[st.step_cmap]), ax, "training step")


def stability_region(
    ax: Axes,
    st: Style,
    spectral_radius: Callable[[np.ndarray], np.ndarray],
    label: str,
    resolution: int = 400,
) -> Optional[Patch]:
    r"""Shade and outline :math:`\{\lambda : \rho(\lambda) < 1\}` within the axes' limits.

    ``spectral_radius`` maps eigenvalues :math:`\lambda` of :math:`J` (a complex array) to
    the spectral radius of the optimiser's update on that eigen-direction, e.g.
    :math:`|1 - \eta\lambda|` for simultaneous gradient descent. The region is found by
    contouring ``spectral_radius`` at 1 on a grid, so any optimiser whose update acts
    eigenvalue by eigenvalue plugs in. Set the limits first: the grid covers them.
    Returns the region's legend handle (None when it lies outside the view).
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    re, im = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    rho = spectral_radius(re + 1j * im)
    if rho.min() >= 1.0:  # the region lies outside the view
        return None
    ax.contourf(re, im, rho, levels=[0.0, 1.0], colors=[st.region], alpha=0.1, zorder=0)
    if rho.max() > 1.0:
        ax.contour(
            re, im, rho, levels=[1.0], colors=[st.region], linewidths=1.0, zorder=0.6
        ).set_gid("stability-region")
    return Patch(facecolor=st.region, alpha=0.25, edgecolor=st.region, label=label)


def region_method(rule: dict[str, Any]) -> tuple[str, float]:
    """The closed-form method (and momentum) whose stability region to draw.

    The run's own when it maps eigenvalues exactly (one step size, no
    preconditioner), else plain GD.
    """
    closed = (
        rule.get("method") in METHODS
        and rule.get("preconditioner") is None
        and isinstance(rule.get("lr"), (int, float))
    )
    if not closed:
        return "gd", 0.0
    return str(rule["method"]), float(rule.get("beta") or 0.0)


def update_region(ax: Axes, st: Style, lr: float, method: str, beta: float) -> Optional[Patch]:
    r"""The stability region of ``method`` at step size ``lr``.

    The eigenvalues λ of J with every update eigenvalue inside the unit disc
    (:func:`specdiag.stability.update_radius`); for gradient descent the disc
    :math:`|1 - \eta\lambda| < 1` of centre and radius :math:`1/\eta`.
    """
    label = (
        ("GD stable: |1 − ηλ| < 1" if method == "gd" else f"{method} stable")
        + f", η = {lr:g}"
        + (f", β = {beta:g}" if method == "momentum" else "")
    )
    return stability_region(ax, st, lambda lam: update_radius(lam, method, lr, beta=beta), label)


def figure_legend(
    fig: Any, st: Style, axes: Sequence[Axes], width: float, extra: Sequence[Any] = ()
) -> None:
    """One legend below the panels of ``fig`` (a figure or subfigure ``width`` inches wide).

    It holds every labelled artist of ``axes`` and the ``extra`` handles, in as many
    columns as fit.
    """
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    for handle in extra:
        entries.setdefault(handle.get_label(), handle)
    for label in (NONPOSITIVE_LABEL, INFINITE_LABEL):  # not one series': a neutral marker
        if label in entries:
            marker = entries[label].get_marker()
            entries[label] = Line2D([], [], ls="", marker=marker, color=st.faint, label=label)
    if not entries:
        return
    size = st.font("legend")
    longest = max(len(label) for label in entries) * 0.55 * size / 72 + 0.5  # inches per entry
    ncols = int(min(len(entries), max(width // longest, 1)))
    fig.legend(
        list(entries.values()),
        list(entries),
        loc="outside lower center",
        ncols=ncols,
        fontsize=size,
        frameon=False,
    )


def edge_markers(
    ax: Axes, st: Style, x: np.ndarray, *, where: float, marker: str, color: str, label: str
) -> None:
    """Markers at ``x`` on an edge of the axes, drawn over the frame.

    ``where`` is in axes coordinates (0 bottom, 1 top); ``label`` enters the legend
    once per axes.
    """
    if not np.size(x):
        return
    taken = label in ax.get_legend_handles_labels()[1]
    ax.plot(
        x,
        np.full(np.size(x), where),
        ls="",
        marker=marker,
        ms=5 if not st.paper else 3.5,
        color=color,
        transform=ax.get_xaxis_transform(),
        clip_on=False,
        zorder=3,
        label=f"_{label}" if taken else label,
        gid={NONPOSITIVE_LABEL: "nonpositive", INFINITE_LABEL: "infinite"}.get(label, "edge"),
    )


def mark_failed(ax: Axes, st: Style, steps: np.ndarray) -> None:
    """Probes whose solve failed (status ≠ ok), as crosses along the bottom edge."""
    edge_markers(
        ax, st, steps, where=0.02, marker="x", color=st.failed, label="failed probe (status ≠ ok)"
    )


# --------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class Scale:
    """The y scale of a panel: ``"linear"``, ``"log"`` or ``"symlog"`` (with ``linthresh``)."""

    kind: str = "linear"
    linthresh: float = 1.0


def choose_scale(data: np.ndarray, *, log: str = "never", symlog: bool = False) -> Scale:
    """The scale of a panel holding ``data``.

    Parameters
    ----------
    log : {"never", "always", "spans"}
        A log scale when the data has positive values (``"always"``) or when its
        positive values span more than two decades (``"spans"``).
    symlog : bool
        A symmetric log scale when the non-zero magnitudes span more than two decades
        (signed data: ``min Re λ``); linear within the power of 10 at or below the
        10th percentile of them.
    """
    finite = np.asarray(data, float)
    finite = finite[np.isfinite(finite)]
    positive = finite[finite > 0]
    if positive.size and (log == "always" or log == "spans" and _spans(positive)):
        return Scale("log")
    nonzero = np.abs(finite[finite != 0])
    if symlog and nonzero.size and _spans(nonzero):
        # a power of the base: the edge of the linear zone gets a labelled decade
        return Scale("symlog", float(10.0 ** np.floor(np.log10(np.percentile(nonzero, 10)))))
    return Scale()


def _spans(x: np.ndarray, decades: float = 2.0) -> bool:
    return bool(x.max() > 10**decades * x.min())


def apply_scale(ax: Axes, st: Style, scale: Scale) -> None:
    """Set the panel's y scale; a symlog axis gets :class:`SymlogTicks`."""
    if scale.kind == "symlog":
        ax.set_yscale("symlog", linthresh=scale.linthresh)
        ax.yaxis.set_major_locator(SymlogTicks(scale.linthresh, st.font("tick")))
        ax.yaxis.set_minor_locator(SymlogTicks(scale.linthresh, st.font("tick"), minor=True))
        ax.yaxis.set_major_formatter(LogFormatterSciNotation(linthresh=scale.linthresh))
    elif scale.kind == "log":
        ax.set_yscale("log")


def plot_series(
    ax: Axes, st: Style, x: np.ndarray, y: np.ndarray, scale: Scale, **line: Any
) -> None:
    r"""A line of ``y`` against ``x`` on a panel of ``scale``, hiding nothing.

    On a log scale, values :math:`\le 0` are left out of the line and drawn as
    markers on the bottom edge; infinite values are markers on the top (bottom for
    :math:`-\infty`) edge on every scale. NaN (no value) is a gap.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    color = line.setdefault("color", st.color(0))
    shown = np.isfinite(y) & ((y > 0) if scale.kind == "log" else True)
    ax.plot(x, np.where(shown, y, np.nan), **line)
    if scale.kind == "log":
        low = np.isfinite(y) & (y <= 0)
        edge_markers(ax, st, x[low], where=0.0, marker="v", color=color, label=NONPOSITIVE_LABEL)
    for sign, where in ((1, 1.0), (-1, 0.0)):
        edge_markers(
            ax,
            st,
            x[y == sign * np.inf],
            where=where,
            marker="^" if sign > 0 else "v",
            color=color,
            label=INFINITE_LABEL,
        )


def outside_note(ax: Axes, st: Style, x: np.ndarray, y: np.ndarray, what: str) -> int:
    """Annotate how many of the points ``(x, y)`` lie outside the axes' limits.

    For limits a caller set; returns the count.
    """
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    x, y = np.asarray(x, float), np.asarray(y, float)
    out = int((~((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))).sum())
    if out:
        corner_note(ax, st, f"{out:,} {what} outside the axes (not shown)", top=True)
    return out


class SymlogTicks(Locator):
    r"""Major (or minor) ticks of a symmetric log axis whose labels never overlap.

    Ticks at 0 and at :math:`\pm b^e` for the decades :math:`b^e \ge` ``linthresh``
    (matplotlib's own locator also puts a decade inside the linear zone, a hair from
    0, whose label lands on the label of 0). When the axis is too short for a label
    per decade, every ``s``-th decade is kept, ``s`` the smallest stride whose labels
    are at least twice the label height apart; minor ticks mark the decades skipped.
    """

    def __init__(self, linthresh: float, fontsize: float, base: float = 10.0, minor: bool = False):
        self.linthresh, self.fontsize, self.base, self.minor = linthresh, fontsize, base, minor

    def __call__(self) -> Sequence[float]:
        """The ticks of the axis's current view."""
        axis: Any = self.axis
        lo, hi = axis.get_view_interval()
        return self.tick_values(lo, hi)

    def _room(self, n: int) -> int:
        """The stride that leaves room for the labels of ``n`` decades."""
        axis: Any = self.axis
        axes = axis.axes
        length = axes.bbox.height if axis is axes.yaxis else axes.bbox.width
        label = 2.0 * self.fontsize * axes.figure.dpi / 72  # a label and a gap, in pixels
        fits = max(int(length / label), 2)
        return max(math.ceil(n / fits), 1)

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        """Ticks between ``vmin`` and ``vmax``."""
        vmin, vmax = min(vmin, vmax), max(vmin, vmax)
        first = math.ceil(math.log(self.linthresh, self.base) - 1e-9)
        top = max(abs(vmin), abs(vmax), self.linthresh)
        exponents = np.arange(first, math.floor(math.log(top, self.base) + 1e-9) + 1)
        sides = [s for s in (-1, 1) if (vmin if s < 0 else vmax) * s >= self.linthresh]
        stride = self._room(len(exponents) * len(sides) + 1) if self.axis is not None else 1
        keep = np.arange(exponents.size) % stride == (exponents.size - 1) % stride
        chosen = exponents[~keep] if self.minor else exponents[keep]
        ticks = [s * self.base ** float(e) for s in sides for e in chosen]
        if not self.minor and vmin <= 0 <= vmax:
            ticks.append(0.0)
        return sorted(t for t in ticks if vmin <= t <= vmax)
