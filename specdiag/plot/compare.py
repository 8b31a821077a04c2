r"""Several runs side by side: their spectra, then their scalars overlaid."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Optional

import numpy as np
from matplotlib.figure import Figure

from ..trace import Trace
from .axes import (
    apply_scale,
    choose_scale,
    draw_cloud,
    figure_legend,
    plot_series,
    set_plane_limits,
    step_colorbar,
    step_norm,
    zero_line,
)
from .data import (
    MAX_PROBES,
    Cloud,
    TraceLike,
    check_plottable,
    cloud,
    is_hessian,
    median_by_step,
    opened,
)
from .labels import CONVENTION_NOTE, HESSIAN_NOTE, scalar_label
from .scalars import SCALE_RULES, panel_height
from .styles import Style, Width, drawing, finish, new_figure, resolve, suptitle

__all__ = ["compare_figure"]


def compare_figure(
    traces: Sequence[TraceLike],
    labels: Optional[Sequence[str]] = None,
    operator: str = "jacobian",
    *,
    max_probes: int = MAX_PROBES,
    style: Optional[str] = None,
    width: Width = None,
) -> Figure:
    """Several runs side by side: their spectra, then their scalars overlaid.

    Top row: one complex-plane panel per run (Hessian: λ against the step) and one
    colour scale of training step; the panels share their axes unless the runs' largest
    eigenvalues differ by more than a factor of 10 (then each run gets its own limits, so
    a small spectrum is not a dot next to a large one). Below: one panel per scalar of
    ``operator``, each run's median over probe batches in its own colour.

    Parameters
    ----------
    traces : sequence of Trace or path
        Every trace must have ``operator`` and at least one probe.
    labels : sequence of str, optional
        One per trace; default the file names without suffix.
    operator : str
    max_probes : int
        Probes drawn per run at most (decimated evenly above).
    style, width
        See :func:`specdiag.plot.style` (paper default: the page).
    """
    if not traces:
        raise ValueError("compare needs at least one trace")
    if labels is not None and len(labels) != len(traces):
        raise ValueError(
            f"labels needs one label per trace: {len(traces)} traces, {len(labels)} labels"
        )
    with ExitStack() as stack:
        opened_ = [stack.enter_context(opened(tr)) for tr in traces]
        for tr in opened_:
            check_plottable(tr, operator)
        names = list(labels) if labels is not None else [Path(tr.path).stem for tr in opened_]
        hessian = _one_kind(opened_, operator)
        scalars = list(dict.fromkeys(name for tr in opened_ for name in tr.scalars(operator)))
        natural = max(3.6 * len(opened_) + 1.2, 3.4 * len(scalars))
        st, w = resolve(style, width, natural, "page")
        with drawing(st):
            clouds = [cloud(tr, operator, max_probes) for tr in opened_]
            n_cols = min(len(scalars), max(int(w // 1.9), 1)) or 1
            top_h = min(0.85 * w / len(opened_), 3.6) + 0.6
            rows = -(-len(scalars) // n_cols)
            bottom_h = rows * min(max(0.65 * w / n_cols, panel_height(st, w / n_cols)), 2.8) + 0.5
            fig = new_figure(st, w, top_h + bottom_h + 0.4)
            ratios = [top_h, max(bottom_h, 0.1)]
            subfigures: Any = fig.subfigures(2, 1, height_ratios=ratios)
            top, bottom = subfigures
            _spectra(top, st, clouds, names, operator, hessian, w)
            _scalar_panels(bottom, st, opened_, names, operator, scalars, n_cols)
            figure_legend(bottom, st, bottom.axes, w)
            return finish(fig, st)


def _one_kind(traces: list[Trace], operator: str) -> bool:
    """Whether ``operator`` is a Hessian in every trace; ValueError if in some only."""
    hessians = {is_hessian(tr, operator) for tr in traces}
    if len(hessians) > 1:
        raise ValueError(
            f"operator {operator!r} is a Hessian in some traces and not in "
            f"others; compare operators of one kind"
        )
    return hessians.pop()


def _spectra(
    top: Any,
    st: Style,
    clouds: list[Cloud],
    names: list[str],
    operator: str,
    hessian: bool,
    width: float,
) -> None:
    """One panel of eigenvalues per run, shared axes unless the scales differ > 10x."""
    extents = [float(np.abs(c.values).max()) for c in clouds if c.values.size]
    share = not extents or max(extents) <= 10 * max(min(extents), np.finfo(float).tiny)
    axes = top.subplots(1, len(clouds), sharex=share, sharey=share, squeeze=False)[0]
    norm = step_norm(*clouds)
    for ax, points, name in zip(axes, clouds, names):
        draw_cloud(ax, st, points, norm, hessian)
        ax.set_title(name, fontsize=st.font("panel"))
        if share:
            ax.label_outer()
        elif not hessian and points.values.size:
            set_plane_limits(ax, points.values)
    if not hessian and share and extents:
        set_plane_limits(axes[0], np.concatenate([c.values for c in clouds]))
    figure_legend(top, st, [axes[0]], width)
    step_colorbar(top, st, norm, list(axes))
    note = HESSIAN_NOTE if hessian else CONVENTION_NOTE
    suptitle(top, st, f"eigenvalues of {operator} ({note})", width)


def _scalar_panels(
    bottom: Any,
    st: Style,
    traces: list[Trace],
    names: list[str],
    operator: str,
    scalars: list[str],
    n_cols: int,
) -> None:
    """One panel per scalar, one line per run (median over probe batches)."""
    if not scalars:
        return
    n_rows = -(-len(scalars) // n_cols)
    axes = bottom.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[len(scalars) :]:
        ax.remove()
    for ax, name in zip(axes, scalars):
        series = [
            (i, label, *median_by_step(tr, operator, tr.scalars(operator)[name]))
            for i, (tr, label) in enumerate(zip(traces, names))
            if name in tr.scalars(operator)
        ]
        scale = choose_scale(np.concatenate([s[3] for s in series]), **SCALE_RULES.get(name, {}))
        apply_scale(ax, st, scale)
        for i, label, steps, values in series:
            plot_series(ax, st, steps, values, scale, color=st.color(i), lw=1.2, label=label)
        if name == "min_real":
            zero_line(ax, st)
        owner = next(tr for tr in traces if name in tr.scalars(operator))
        ax.set_title(scalar_label(owner, operator, name), fontsize=st.font("panel"))
        ax.set_xlabel("training step")
