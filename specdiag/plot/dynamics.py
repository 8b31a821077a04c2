r"""The run's optimiser and the game's rotation over training.

The update operator's spectral radius, the largest stable step size, and the
Helmholtz split.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..trace import Trace
from .axes import apply_scale, choose_scale, edge_markers, mark_failed, plot_series
from .data import (
    TraceLike,
    check_plottable,
    failed_steps,
    median_by_step,
    of_kind,
    opened,
    trace_name,
    update_rule,
)
from .labels import CONVENTION_NOTE, scalar_label
from .scalars import panel_height
from .styles import Style, Width, drawing, finish, new_figure, resolve, suptitle

__all__ = ["dynamics_figure", "DYNAMICS_KINDS"]

#: Operator kinds the dynamics figure draws.
DYNAMICS_KINDS = ("update", "helmholtz")


def dynamics_figure(
    trace: TraceLike, *, style: Optional[str] = None, width: Width = None
) -> Figure:
    r"""The run's optimiser and the game's rotation over training.

    From a trace probed with an update rule and/or the Helmholtz split (see
    :class:`specdiag.SpectrumMonitor`, ``update=`` and ``helmholtz=``):

    * :math:`\rho(\partial T)` of the run's update operator, with the line 1: above it
      the optimiser moves away from the point along some direction at the step size
      it uses;
    * the largest stable step size :math:`\eta^*` from the Jacobian's computed
      eigenvalues (log scale; where the update has a closed form) against the step size
      used: training is locally stable only below the curve; probes where no step size
      is stable are triangles on the bottom edge;
    * the rotation fraction :math:`\|A\|_F^2 / \|J\|_F^2` (0: a potential game, 1:
      purely rotational) with its standard error, and for two players the zero-sum
      defect (0: zero-sum).

    Parameters
    ----------
    trace : Trace or path
    style, width
        See :func:`specdiag.plot.style` (paper default: the page).

    Raises
    ------
    ValueError
        The trace has neither an ``update`` nor a ``helmholtz`` operator.
    """
    with opened(trace) as tr:
        check_plottable(tr)
        updates, helmholtz = of_kind(tr, "update"), of_kind(tr, "helmholtz")
        if not updates and not helmholtz:
            raise ValueError(
                f"{tr.path} has no update or helmholtz operator; probe with "
                "update=UpdateRule(...) or helmholtz=N to record them"
            )
        n = 2 * len(updates) + len(helmholtz)
        st, w = resolve(style, width, 4.6 * n, "page")
        with drawing(st):
            ncols = n if w / n >= 2.2 else max(int(w // 2.2), 1)
            nrows = -(-n // ncols)
            fig = new_figure(st, w, nrows * panel_height(st, w / ncols) * 1.3 + 0.5)
            axes = list(fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel())
            for ax in axes[n:]:
                ax.remove()
            for i, op in enumerate(updates):
                _update_panels(axes[2 * i], axes[2 * i + 1], st, tr, op)
            for i, op in enumerate(helmholtz):
                _helmholtz_panel(axes[2 * len(updates) + i], st, tr, op)
            text = st.heading(trace_name(tr), "the optimiser's update and the game's rotation")
            suptitle(fig, st, f"{text} ({CONVENTION_NOTE})", w)
            return finish(fig, st)


def _update_panels(rho_ax: Axes, lr_ax: Axes, st: Style, tr: Trace, op: str) -> None:
    """ρ(∂T) against 1, and the largest stable step size against the one used."""
    sc = tr.scalars(op)
    steps, rho = median_by_step(tr, op, sc["spectral_radius"])
    scale = choose_scale(rho, log="spans")
    apply_scale(rho_ax, st, scale)
    plot_series(rho_ax, st, steps, rho, scale, color=st.color(0), lw=1.2, marker=".")
    rho_ax.axhline(1.0, color=st.reference, lw=0.8)
    mark_failed(rho_ax, st, failed_steps(tr, [op]))
    rho_ax.set_title(f"ρ(∂T), {update_rule(tr).get('method', op)}", fontsize=st.font("panel"))
    rho_ax.set_xlabel("training step")
    _, bound = median_by_step(tr, op, sc["max_stable_lr"])
    _, used = median_by_step(tr, op, sc["lr"])
    scale = choose_scale(np.concatenate([bound[bound > 0], used]), log="always")
    apply_scale(lr_ax, st, scale)
    line: dict[str, Any] = {"lw": 1.2}
    # 0 means no stable step size: marked as such below, not as a value off the log scale
    plot_series(
        lr_ax,
        st,
        steps,
        np.where(bound == 0, np.nan, bound),
        scale,
        color=st.color(0),
        marker=".",
        label=scalar_label(tr, op, "max_stable_lr"),
        **line,
    )
    plot_series(
        lr_ax,
        st,
        steps,
        used,
        scale,
        color=st.color(1),
        ls="--",
        label=scalar_label(tr, op, "lr"),
        **line,
    )
    edge_markers(
        lr_ax, st, steps[bound == 0], where=0.04, marker="v", color=st.failed, label="no stable η"
    )
    lr_ax.set_title("step size", fontsize=st.font("panel"))
    lr_ax.set_xlabel("training step")
    lr_ax.legend(fontsize=st.font("legend"))


def _helmholtz_panel(ax: Axes, st: Style, tr: Trace, op: str) -> None:
    """The rotation fraction and the zero-sum defect, each ± its standard error.

    The limits hold [0, 1] and every estimate (noise can put one outside [0, 1]).
    """
    sc = tr.scalars(op)
    shown = [np.array([0.0, 1.0])]
    for i, name in enumerate(("rotation_fraction", "zero_sum_defect")):
        steps, mid = median_by_step(tr, op, sc[name])
        _, err = median_by_step(tr, op, sc[f"{name}_se"])
        if not np.isfinite(mid).any():
            continue
        color = st.color(i)
        label = "rotation ‖A‖²/‖J‖²" if i == 0 else scalar_label(tr, op, name)
        ax.plot(steps, mid, color=color, lw=1.2, marker=".", label=label)
        ax.fill_between(steps, mid - err, mid + err, color=color, alpha=0.2, lw=0)
        shown.append(np.concatenate([mid - err, mid + err]))
    data = np.concatenate(shown)
    data = data[np.isfinite(data)]
    ax.set_ylim(data.min() - 0.02, data.max() + 0.02)
    ax.set_title("Helmholtz split of J", fontsize=st.font("panel"))
    ax.set_xlabel("training step")
    ax.legend(fontsize=st.font("legend"))
