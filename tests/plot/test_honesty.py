"""Figures hide nothing: tick labels that can be read, values a scale cannot show drawn at
its edge, zooms that say what they leave out, labels that say what a number is."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.text import Text
from plot.traces import HESSIAN, jacobian_scalars, jacobian_spec, op_record, probe, write

from specdiag import plot
from specdiag.plot.axes import NONPOSITIVE_LABEL, SymlogTicks
from specdiag.trace import open_trace


def jacobian_trace(path, min_reals, ratios=None):
    """One probe per value: a conjugate pair with real part ``min_real`` and a real 5."""
    records = []
    for step, m in enumerate(min_reals):
        eig = np.array([m + 1j, m - 1j, 5.0])
        scalars = jacobian_scalars(eig)
        if ratios is not None:
            scalars["max_imag_over_real"] = ratios[step]
        records.append(
            probe(step * 10, {"jacobian": op_record("jacobian", "jacobian", eig, scalars)})
        )
    return open_trace(write(path, {"jacobian": jacobian_spec()}, records))


def overlaps(labels: list[Text]) -> list[tuple[str, str]]:
    """Pairs of tick labels whose boxes overlap (after the figure was drawn)."""
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels if t.get_text()]
    return [(a, b) for (a, x), (b, y) in itertools.combinations(boxes, 2) if x.overlaps(y)]


def panel(fig, ylabel: str) -> Axes:
    return next(ax for ax in fig.axes if ax.get_ylabel() == ylabel)


SPANNING = [(-1) ** i * 10.0 ** (i - 4) for i in range(8)]  # ±1e-4 ... ±1e3


def test_symlog_tick_labels_never_overlap(tmp_path):
    tr = jacobian_trace(tmp_path / "t.h5", SPANNING)
    for width in ("column", "page"):
        fig = plot.scalars_figure(tr, style="paper", width=width)
        fig.canvas.draw()
        ax = panel(fig, "jacobian: min Re λ")
        assert ax.get_yscale() == "symlog"
        labels = ax.get_yticklabels()
        assert len([t for t in labels if t.get_text()]) >= 3
        assert not overlaps(labels), width
        ticks = np.asarray(ax.get_yticks())
        assert 0.0 in ticks and ticks.min() < 0 < ticks.max()  # both signs labelled


def test_matplotlib_default_symlog_ticks_do_overlap_there():
    """The case the locator exists for: the same data with matplotlib's own locator."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.5, 1.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(np.arange(8), SPANNING)
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.tick_params(labelsize=6.5)
    fig.canvas.draw()
    assert overlaps(ax.get_yticklabels())
    ax.yaxis.set_major_locator(SymlogTicks(1e-4, 6.5))
    fig.canvas.draw()
    assert not overlaps(ax.get_yticklabels())


def test_values_a_log_axis_cannot_show_are_marked_at_its_edge(tmp_path):
    ratios = [0.5, 2.0, 0.0, 40.0, np.inf, 3.0]
    tr = jacobian_trace(tmp_path / "t.h5", [1.0] * 6, ratios)
    fig = plot.scalars_figure(tr)
    ax = panel(fig, "jacobian: max |Im λ / Re λ|")
    assert ax.get_yscale() == "log"
    (low,) = [ln for ln in ax.get_lines() if ln.get_gid() == "nonpositive"]
    assert np.asarray(low.get_xdata()).tolist() == [20] and low.get_label() == NONPOSITIVE_LABEL
    assert np.asarray(low.get_ydata()).tolist() == [0.0]
    assert low.get_transform() == ax.get_xaxis_transform()  # on the bottom edge
    (top,) = [ln for ln in ax.get_lines() if ln.get_gid() == "infinite"]
    assert np.asarray(top.get_xdata()).tolist() == [40]
    assert np.asarray(top.get_ydata()).tolist() == [1.0]
    labels = ax.get_legend_handles_labels()[1]
    assert NONPOSITIVE_LABEL in labels and "∞ (off scale)" in labels
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() is None]
    np.testing.assert_array_equal(line.get_ydata(), [0.5, 2.0, np.nan, 40.0, np.nan, 3.0])


def test_a_zoom_says_how_many_eigenvalues_it_leaves_out(tmp_path):
    tr = jacobian_trace(tmp_path / "t.h5", [1.0, 2.0, 3.0])
    fig = plot.spectrum_figure(tr, xlim=(0.0, 2.5), ylim=(-2.0, 2.0))
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.0, 2.5)
    # outside: the three real eigenvalues 5 and the pair at Re 3
    notes = [t.get_text() for t in ax.texts if t.get_gid() == "note"]
    assert "5 eigenvalues outside the axes (not shown)" in notes
    assert not [t for t in plot.spectrum_figure(tr).axes[0].texts if "outside" in t.get_text()]


def hessian_trace(path, which: str):
    spec = {**HESSIAN, "which": which}
    records = []
    for step in range(3):
        values = [4.0 - step, 2.0, 1.0]
        rec = op_record("g", "hessian", values, {"max": max(values), "min": min(values)})
        rec.which = which
        records.append(probe(step, {"g": rec}))
    return open_trace(write(path, {"g": spec}, records))


@pytest.mark.parametrize(
    "which, top, bottom",
    [
        ("LA", "λ max", "3rd largest λ (not λ min)"),
        ("SA", "3rd smallest λ (not λ max)", "λ min"),
        ("BE", "λ max", "λ min"),
        ("LM", "max of the top-3 |λ| (λ max if > 0)", "min of the top-3 |λ| (λ min if < 0)"),
    ],
)
def test_hessian_extremes_are_labelled_by_which_end_was_computed(tmp_path, which, top, bottom):
    fig = plot.scalars_figure(hessian_trace(tmp_path / "h.h5", which))
    labels = [ln.get_label() for ax in fig.axes for ln in ax.get_lines()]
    assert f"g {top}" in labels and f"g {bottom}" in labels


def test_helmholtz_limits_hold_estimates_outside_zero_one(tmp_path):
    from plot.traces import HELMHOLTZ, HELMHOLTZ_NAMES

    records = []
    for step, value in enumerate([0.2, 1.3, -0.4]):
        scalars = {n: value for n in HELMHOLTZ_NAMES} | {f"{n}_se": 0.05 for n in HELMHOLTZ_NAMES}
        records.append(probe(step, {"helmholtz": op_record("helmholtz", "helmholtz", [], scalars)}))
    tr = open_trace(write(tmp_path / "h.h5", {"helmholtz": HELMHOLTZ}, records))
    (ax,) = plot.dynamics_figure(tr).axes
    lo, hi = ax.get_ylim()
    assert lo < -0.45 and hi > 1.35  # every estimate ± its error is inside the axes
