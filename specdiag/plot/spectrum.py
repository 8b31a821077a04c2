r"""The eigenvalues of one operator.

The cloud in the complex plane, its motion over training, and an animated GIF of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.colors import LogNorm, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image

from ..trace import Trace
from .axes import (
    colorbar,
    corner_note,
    draw_cloud,
    figure_legend,
    outside_note,
    region_method,
    scatter_eigenvalues,
    set_plane_limits,
    step_colorbar,
    step_norm,
    update_region,
    zero_line,
)
from .data import (
    MAX_PROBES,
    Cloud,
    TraceLike,
    check_lr,
    check_plottable,
    cloud,
    decimate,
    is_hessian,
    opened,
    require_complex,
    trace_name,
    update_rule,
)
from .labels import CONVENTION_NOTE, HESSIAN_NOTE
from .styles import Style, Width, drawing, finish, new_figure, resolve, suptitle

__all__ = ["spectrum_figure", "evolution_figure", "animate_spectrum", "MAX_FRAMES", "FPS"]

#: Frames of the animated GIF at most; more probe steps are decimated evenly.
MAX_FRAMES = 100
#: Frames per second of the animated GIF.
FPS = 8
_GIF_DPI = 80

Limits = Optional[tuple[float, float]]


def spectrum_figure(
    trace: TraceLike,
    operator: str = "jacobian",
    *,
    lr: Optional[float] = None,
    max_probes: int = MAX_PROBES,
    xlim: Limits = None,
    ylim: Limits = None,
    style: Optional[str] = None,
    width: Width = None,
) -> Figure:
    r"""The eigenvalues of every probe in the complex plane, coloured by training step.

    Axes :math:`\operatorname{Re}\lambda` and :math:`\operatorname{Im}\lambda`, the line
    :math:`\operatorname{Re}\lambda = 0` (gradient flow contracts along eigen-directions
    right of it) and the convention stated. Converged eigenvalues are filled markers,
    unconverged ones hollow. With ``lr`` the stability region of the run's update rule
    (plain gradient descent: :math:`|1 - \eta\lambda| < 1`, the disc of centre and
    radius :math:`1/\eta`) is shaded and outlined.

    For a Hessian operator (real eigenvalues) the figure draws :math:`\lambda` against
    the training step instead, with the line :math:`\lambda = 0`; ``lr`` is ignored.

    Parameters
    ----------
    trace : Trace or path
    operator : str
        An operator of the trace.
    lr : float, optional
        Step size :math:`\eta`; None draws no region.
    max_probes : int
        Probes drawn at most; more are decimated evenly (the first and the last kept)
        and the figure says so.
    xlim, ylim : (float, float), optional
        Zoom: limits of the axes (default: every eigenvalue and the line 0). The figure
        says how many eigenvalues fall outside.
    style : {"default", "paper"}, optional
        See :func:`specdiag.plot.style`.
    width : "column", "page" or float, optional
        Figure width (paper default: one column).
    """
    lr = check_lr(lr)
    st, w = resolve(style, width, 7.0, "column")
    with opened(trace) as tr, drawing(st):
        check_plottable(tr, operator)
        hessian = is_hessian(tr, operator)
        points = cloud(tr, operator, max_probes)
        fig = new_figure(st, w, 0.8 * w)
        ax = fig.subplots()
        norm = step_norm(points)
        draw_cloud(ax, st, points, norm, hessian)
        step_colorbar(fig, st, norm, ax)
        suptitle(fig, st, st.heading(trace_name(tr), f"eigenvalues of {operator}"), w)
        ax.set_title(HESSIAN_NOTE if hessian else CONVENTION_NOTE, fontsize=st.font("panel"))
        if not hessian and points.values.size:
            set_plane_limits(ax, points.values)
        _zoom(ax, st, points, hessian, xlim, ylim)
        region = _region(ax, st, tr, lr) if not hessian and lr is not None else None
        figure_legend(fig, st, [ax], w, [region] if region else [])
        return finish(fig, st)


def _region(ax: Axes, st: Style, tr: Trace, lr: float) -> Optional[Patch]:
    """The stability region of the run's update rule (else plain GD) at step size ``lr``."""
    method, beta = region_method(update_rule(tr))
    return update_region(ax, st, lr, method, beta)


def _zoom(ax: Axes, st: Style, points: Cloud, hessian: bool, xlim: Limits, ylim: Limits) -> None:
    """Apply the caller's limits and say how many eigenvalues they leave out."""
    if xlim is None and ylim is None:
        return
    if xlim is not None:
        ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    steps, values = points.steps, points.values
    x, y = (steps, values.real) if hessian else (values.real, values.imag)
    outside_note(ax, st, x, y, "eigenvalues")


def _histogram(ax: Axes, st: Style, x: np.ndarray, y: np.ndarray, x_bins: int) -> QuadMesh:
    """A 2-D histogram of the points with a log colour scale (empty bins blank), rasterized."""
    counts, x_edges, y_edges = np.histogram2d(x, y, bins=(x_bins, 120))
    return ax.pcolormesh(
        x_edges,
        y_edges,
        np.ma.masked_equal(counts.T, 0),
        norm=LogNorm(),
        cmap=st.density_cmap,
        rasterized=True,
    )


def evolution_figure(
    trace: TraceLike,
    operator: str = "jacobian",
    *,
    max_probes: int = MAX_PROBES,
    style: Optional[str] = None,
    width: Width = None,
) -> Figure:
    """Re λ and Im λ against the training step: how the eigenvalue cloud moves.

    Two panels with a shared step axis. Up to ``max_probes`` probes every eigenvalue is a
    point (filled: converged, hollow: not); above, each panel is a 2-D histogram of all
    eigenvalues with a logarithmic colour scale (eigenvalues per bin). ``style`` and
    ``width`` as for :func:`spectrum_figure`.

    Raises
    ------
    ValueError
        For a Hessian operator: :func:`spectrum_figure` draws its real eigenvalues
        against the step already.
    """
    st, w = resolve(style, width, 8.0, "column")
    with opened(trace) as tr, drawing(st):
        check_plottable(tr, operator)
        require_complex(tr, operator, "evolution_figure")
        points = cloud(tr, operator)
        dense = len(tr) > max_probes and points.steps.size > 0
        fig = new_figure(st, w, 0.75 * w)
        axes = fig.subplots(2, 1, sharex=True)
        colors = np.tile(np.array(to_rgba(st.color(0))), (points.steps.size, 1))
        steps = points.steps.astype(float)
        x_bins = min(np.unique(points.steps).size, 200)
        parts = ((axes[0], points.values.real, "Re λ"), (axes[1], points.values.imag, "Im λ"))
        for ax, part, label in parts:
            if dense:
                mesh = _histogram(ax, st, steps, part, x_bins)
            else:
                scatter_eigenvalues(ax, st, steps, part, colors, points.converged, size=8.0)
            zero_line(ax, st, label=f"{label} = 0")
            ax.set_ylabel(label)
        axes[1].set_xlabel("training step")
        if dense:
            colorbar(fig, mesh, list(axes), "eigenvalues per bin")
            axes[0].set_title(
                f"density of all {steps.size:,} eigenvalues of {len(tr):,} probes (log colour)",
                fontsize=st.font("note"),
            )
        else:
            figure_legend(fig, st, [axes[0]], w)
        heading = st.heading(trace_name(tr), f"eigenvalues of {operator} over training")
        suptitle(fig, st, f"{heading}\n{CONVENTION_NOTE}", w)
        return finish(fig, st)


def animate_spectrum(
    trace: TraceLike,
    path: Union[str, "os.PathLike[str]"],
    operator: str = "jacobian",
    *,
    max_frames: int = MAX_FRAMES,
    fps: float = FPS,
    style: Optional[str] = None,
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
        ``path`` (a GIF is a file, not a figure).

    Raises
    ------
    ValueError
        For a Hessian operator (real eigenvalues): see :func:`spectrum_figure`.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    st, _ = resolve(style, None, 5.6, "column")
    path = Path(path)
    with opened(trace) as tr, drawing(st):
        check_plottable(tr, operator)
        require_complex(tr, operator, "animate_spectrum")
        all_steps = np.unique(tr.steps(operator))
        index, note = decimate(all_steps.size, max_frames, "probe step")
        points = cloud(tr, operator)
        keep = np.isin(points.steps, all_steps[index])
        title = st.heading(trace_name(tr), f"eigenvalues of {operator}")
        frames = _frames(
            st,
            all_steps[index],
            points.steps[keep],
            points.values[keep],
            points.converged[keep],
            title,
            note,
        )
    durations = [int(1000 / fps)] * len(frames)
    durations[-1] *= 4  # linger on the last probe before looping
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
    )
    return path


def _frames(
    st: Style,
    frame_steps: np.ndarray,
    steps: np.ndarray,
    values: np.ndarray,
    converged: np.ndarray,
    title: str,
    note: str,
) -> list[Image.Image]:
    """The GIF's frames: a static background drawn once, the moving points blitted on."""
    fig = new_figure(st, 5.6, 4.6, dpi=_GIF_DPI)
    ax = fig.subplots()
    zero_line(ax, st, vertical=True)
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(CONVENTION_NOTE, fontsize=st.font("note"))
    suptitle(fig, st, title, 5.6)
    set_plane_limits(ax, values)
    if note:
        corner_note(ax, st, note)
    past = ax.scatter([], [], s=8, color="0.65", alpha=0.5, linewidths=0, animated=True)
    now: Any = ax.scatter([], [], s=28, linewidths=1.0, animated=True)
    label = ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top", animated=True)
    current_color = st.color(3 if not st.paper else 5)
    ax.legend(
        handles=[
            Line2D([], [], ls="", marker="o", color=current_color, label="this probe"),
            Line2D([], [], ls="", marker="o", mfc="none", color=current_color, label="unconverged"),
            Line2D([], [], ls="", marker="o", color="0.65", label="earlier"),
        ],
        loc="lower left",
        fontsize=st.font("legend"),
    )
    finish(fig, st)
    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)  # type: ignore[attr-defined]
    xy = np.column_stack([values.real, values.imag])
    red, clear = np.array(to_rgba(current_color)), np.zeros(4)
    frames = []
    for step in frame_steps:
        current = steps == step
        past.set_offsets(xy[steps < step])
        now.set_offsets(xy[current])
        now.set_facecolor(np.where(converged[current, None], red, clear))
        now.set_edgecolor(red)
        label.set_text(f"step {step:,}")
        canvas.restore_region(background)  # type: ignore[attr-defined]
        for artist in (past, now, label):
            ax.draw_artist(artist)
        rgb = np.asarray(canvas.buffer_rgba())[..., :3]  # type: ignore[attr-defined]
        frames.append(Image.fromarray(rgb).quantize(colors=64, method=Image.Quantize.FASTOCTREE))
    return frames
