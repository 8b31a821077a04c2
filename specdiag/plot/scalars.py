r"""The summary scalars over training, and their spread across probe batches."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..registry import scalar
from ..trace import Trace
from .axes import Scale, apply_scale, choose_scale, mark_failed, plot_series, zero_line
from .data import (
    TraceLike,
    by_step,
    check_plottable,
    failed_steps,
    has_batches,
    is_hessian,
    kind,
    median_by_step,
    opened,
    rowwise,
    trace_name,
)
from .labels import CONVENTION_NOTE, scalar_label
from .styles import Style, Width, drawing, finish, new_figure, resolve, suptitle

__all__ = ["scalars_figure", "batch_spread_figure", "SCALE_RULES", "panel_height"]

#: How each scalar's panel is scaled (:func:`specdiag.plot.axes.choose_scale`):
#: |Im/Re| on a log scale, |λ|max and max |Im λ| when they span decades (runs of very
#: different scales on one panel), min Re λ symmetric-log when it spans decades.
SCALE_RULES: dict[str, dict[str, Any]] = {
    "max_imag_over_real": {"log": "always"},
    "spectral_radius": {"log": "spans"},
    "max_imag": {"log": "spans"},
    "min_real": {"symlog": True},
}
#: Scalars drawn with the line 0.
_ZERO_LINE = ("min_real",)
#: Operator kinds whose scalars other figures draw (dynamics_figure, density_figure).
OTHER_FIGURES = ("update", "helmholtz", "density")

Panel = tuple[str, list[tuple[str, str]]]


def panel_height(st: Style, panel_width: float) -> float:
    """The height in inches of one panel of a grid of time series ``panel_width`` wide."""
    return max(0.44 * panel_width, 1.25 if st.paper else 1.6)


def _title_room(st: Style, lines: int = 1) -> float:
    return (0.25 if st.paper else 0.3) * lines + 0.15


def _scalar_panels(tr: Trace) -> list[Panel]:
    """The panels of the scalars figure: ``(y label, [(operator, scalar), ...])``.

    One panel per scalar of each Jacobian-like operator; one panel for the extreme
    eigenvalues of all Hessian operators together. Scalars of an analysis (the subspace
    overlap of ``shares``) and of the update, Helmholtz and density operators are
    drawn by their own figures.
    """
    panels: list[Panel] = []
    hessian: list[tuple[str, str]] = []
    for op in tr.operators:
        if kind(tr, op) in OTHER_FIGURES:
            continue
        names = [n for n in tr.scalars(op) if _own(tr, op, n)]
        if is_hessian(tr, op):
            hessian += [(op, name) for name in names]
        else:
            panels += [(f"{op}: {scalar_label(tr, op, name)}", [(op, name)]) for name in names]
    if hessian:
        panels.append(("Hessians: computed extremes", hessian))
    return panels


def _own(tr: Trace, op: str, name: str) -> bool:
    """Whether the scalars figure draws scalar ``name`` (not one of an analysis)."""
    entry = scalar(kind(tr, op), name)
    return entry is None or entry.requires is None


def _draw_panel(ax: Axes, st: Style, tr: Trace, title: str, items: list[tuple[str, str]]) -> None:
    """One panel: the median over probe batches of each scalar, hiding no value."""
    series = [(op, name, *median_by_step(tr, op, tr.scalars(op)[name])) for op, name in items]
    hessian = any(is_hessian(tr, op) for op, _ in items)
    rule = SCALE_RULES.get(items[0][1], {"symlog": True} if hessian else {})
    scale = choose_scale(np.concatenate([s[3] for s in series]), **rule)
    apply_scale(ax, st, scale)
    for op, name, steps, values in series:
        plot_series(
            ax,
            st,
            steps,
            values,
            scale,
            color=st.color(tr.operators.index(op)),
            ls="--" if name == "min" else "-",
            lw=1.2 if not st.paper else 0.9,
            marker="." if steps.size < 50 else None,
            label=f"{op} {scalar_label(tr, op, name)}" if len(items) > 1 else None,
        )
    if hessian or items[0][1] in _ZERO_LINE:
        zero_line(ax, st)
    mark_failed(ax, st, failed_steps(tr, sorted({op for op, _ in items})))
    ax.set_ylabel(title, fontsize=st.font("label"))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=st.font("legend"), loc="best")


def scalars_figure(trace: TraceLike, *, style: Optional[str] = None, width: Width = None) -> Figure:
    r"""The summary scalars over training, one panel per quantity.

    For a Jacobian: min Re λ (with the line 0: below it some direction does not contract
    under gradient flow; symmetric-log when it spans decades), max |Im λ| (rotation),
    max |Im λ / Re λ| (rotation against contraction, log scale) and
    :math:`|\lambda|_{\max}` (stiffness: gradient descent needs
    :math:`\eta < 2\operatorname{Re}\lambda / |\lambda|^2` for every λ). For the Hessians:
    the two extreme computed eigenvalues of each player (solid: max, dashed: min),
    labelled by which end of the spectrum they are for the solve's ``which``. Probes
    with several batches at a step show the median over the batches. Probes that failed
    (status ≠ ok) are crosses along the bottom edge; values a log axis cannot show
    (≤ 0, infinite) are markers on its edge.

    Parameters
    ----------
    trace : Trace or path
    style, width
        See :func:`specdiag.plot.style` (paper default: the page).
    """
    st, w = resolve(style, width, 11.0, "page")
    with opened(trace) as tr, drawing(st):
        check_plottable(tr)
        panels = _scalar_panels(tr)
        ncols = 2 if len(panels) > 2 and w >= 6 else 1
        nrows = max(-(-len(panels) // ncols), 1)
        fig = new_figure(st, w, nrows * panel_height(st, w / ncols) + _title_room(st, 2))
        axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
        for ax in axes[len(panels) :]:
            ax.remove()
        for i, (ax, (title, items)) in enumerate(zip(axes, panels)):
            _draw_panel(ax, st, tr, title, items)
            if i >= len(panels) - ncols:
                ax.set_xlabel("training step")
                ax.xaxis.set_tick_params(labelbottom=True)
        batches = any(has_batches(tr, op) for op in tr.operators)
        note = "; median over probe batches" if batches else ""
        text = st.heading(trace_name(tr), f"summary scalars ({CONVENTION_NOTE}{note})")
        suptitle(fig, st, text, w)
        return finish(fig, st)


def batch_spread_figure(
    trace: TraceLike,
    operator: str = "jacobian",
    *,
    style: Optional[str] = None,
    width: Width = None,
) -> Figure:
    """How much each scalar varies across the probe batches of a step.

    Per step: the median over the probe batches (line) and their min–max band. A wide
    band means the spectrum measured on one batch is noisy: trust trends, not single
    probes. ``style`` and ``width`` as for :func:`scalars_figure`.

    Raises
    ------
    ValueError
        The trace has one probe batch per step (no ``batch_index > 0``).
    """
    st, w = resolve(style, width, 8.0, "page")
    with opened(trace) as tr, drawing(st):
        check_plottable(tr, operator)
        if not has_batches(tr, operator):
            raise ValueError(
                f"{tr.path} has one probe batch per step; the batch-spread "
                f"figure needs a monitor that probes several batches"
            )
        scalars = tr.scalars(operator)
        height = len(scalars) * panel_height(st, w) * 0.8 + _title_room(st, 2)
        fig = new_figure(st, w, height)
        axes = fig.subplots(len(scalars), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (name, values) in zip(axes, scalars.items()):
            _spread_panel(ax, st, tr.steps(operator), values)
            ax.set_ylabel(scalar_label(tr, operator, name), fontsize=st.font("label"))
        axes[0].legend(fontsize=st.font("legend"), loc="best")
        axes[-1].set_xlabel("training step")
        n_batches = int(tr.batch_index(operator).max()) + 1
        text = st.heading(
            trace_name(tr),
            f"spread of {operator}'s scalars over up to {n_batches} probe batches per step",
        )
        suptitle(fig, st, f"{text}\n{CONVENTION_NOTE}", w)
        return finish(fig, st)


def _spread_panel(ax: Axes, st: Style, steps: np.ndarray, values: np.ndarray) -> None:
    """The min–max band over a step's batches (finite values) and the median line."""
    uniq, table = by_step(steps, values)
    finite = np.where(np.isfinite(table), table, np.nan)
    ax.fill_between(
        uniq,
        rowwise(np.nanmin, finite),
        rowwise(np.nanmax, finite),
        color=st.color(0),
        alpha=0.25,
        lw=0,
        label="min–max over batches",
    )
    median = rowwise(np.nanmedian, table)
    plot_series(
        ax, st, uniq, median, Scale(), color=st.color(0), lw=1.2, label="median over batches"
    )
