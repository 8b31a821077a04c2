r"""Figures of the analyses the field uses: path-angle, spectral density, shares.

The path-angle of Berard et al. (2020), the spectral density of a Hessian over
training, and where the eigenvectors live.

* :func:`path_angle_figure` draws a :class:`specdiag.PathAngle` (any object with its
  attributes: :class:`PathAngleLike`), so this module never imports torch.
* :func:`density_figure` and :func:`shares_figure` read the extra arrays a monitor
  writes with ``density=True`` and ``shares=True`` (trace schema 1.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from ..trace import Trace
from .axes import (
    Scale,
    apply_scale,
    colorbar,
    corner_note,
    edge_markers,
    figure_legend,
    mark_failed,
    plot_series,
    zero_line,
)
from .data import (
    TraceLike,
    arrays,
    broadened_density,
    by_step,
    check_plottable,
    coords,
    decimate,
    failed_steps,
    kind,
    median_by_step,
    of_kind,
    opened,
    rowwise,
    spec,
    trace_name,
)
from .labels import scalar_label
from .styles import Style, Width, drawing, finish, new_figure, resolve, suptitle

__all__ = [
    "PathAngleLike",
    "path_angle_figure",
    "density_figure",
    "shares_figure",
    "MAX_COLUMNS",
    "DENSITY_FLOOR",
]

#: Probe steps drawn as columns of a heat map at most; more are decimated evenly.
MAX_COLUMNS = 400
#: Densities below this fraction of the largest are left blank on the log colour scale.
DENSITY_FLOOR = 1e-4
#: Broadening of the density: this fraction of the range of all nodes.
SIGMA_FRACTION = 0.01
#: Heat maps with more cells than this are rasterized in PDF and SVG files.
RASTER_CELLS = 5000


class PathAngleLike(Protocol):
    """What :func:`path_angle_figure` reads: the attributes of :class:`specdiag.PathAngle`."""

    @property
    def alpha(self) -> np.ndarray:
        """The grid of α."""

    @property
    def cosine(self) -> np.ndarray:
        """c(α), NaN where v = 0."""

    @property
    def norm2(self) -> np.ndarray:
        """‖v(θ(α))‖²."""

    @property
    def players(self) -> Mapping[str, tuple[np.ndarray, np.ndarray]]:
        """``{player: (cosine_i, norm2_i)}``."""

    def sign_changes(self) -> np.ndarray:
        """The α where c changes sign."""


# --------------------------------------------------------------------------- path-angle


def path_angle_figure(
    result: PathAngleLike,
    *,
    title: Optional[str] = None,
    style: Optional[str] = None,
    width: Width = None,
) -> Figure:
    r"""The path-angle :math:`c(\alpha)` and the field's norm along a line in parameter space.

    Top: :math:`c(\alpha)`; bottom: :math:`\|v\|^2` (log scale), along
    :math:`\theta(\alpha) = \alpha\theta_2 + (1 - \alpha)\theta_1`.

    The whole game's curve is drawn thick, each player's thin; the two points,
    :math:`\alpha = 0` (start, :math:`\theta_1`) and :math:`\alpha = 1` (end,
    :math:`\theta_2`), are dotted lines; the game's sign changes of :math:`c`
    (:meth:`PathAngle.sign_changes`) are diamonds on :math:`c = 0`. :math:`c > 0`: the
    descent direction :math:`-v` points from the start towards the end. A minimum at
    the end shows a clean switch from :math:`c > 0` to :math:`c < 0` at
    :math:`\alpha = 1` and a dip of :math:`\|v\|^2` there; a rotation shows
    :math:`c \approx 0` with a bump of one sign near :math:`\alpha = 1` (Berard et al.
    2020; ``docs/plots.md``).

    Parameters
    ----------
    result : PathAngle
        From :func:`specdiag.path_angle` (or anything with its attributes).
    title : str, optional
        A first title line (e.g. the run); the second says what is drawn.
    style, width
        See :func:`specdiag.plot.style` (paper default: one column).
    """
    alpha = np.asarray(result.alpha, float)
    if alpha.ndim != 1 or alpha.size < 2:
        raise ValueError(f"result.alpha must hold at least 2 points, got shape {alpha.shape}")
    st, w = resolve(style, width, 6.4, "column")
    with drawing(st):
        fig = new_figure(st, w, 0.85 * w + 0.4)
        top, bottom = fig.subplots(2, 1, sharex=True)
        series = [("game", result.cosine, result.norm2)]
        series += [(name, c, n2) for name, (c, n2) in result.players.items()]
        norms = np.concatenate([np.asarray(n2, float) for _, _, n2 in series])
        scale = Scale("log") if (norms[np.isfinite(norms)] > 0).any() else Scale()
        apply_scale(bottom, st, scale)
        for i, (name, cosine, norm2) in enumerate(series):
            line = {"color": st.color(i) if i else "black", "lw": 1.6 if i == 0 else 0.9}
            top.plot(alpha, cosine, label=name, **line)
            plot_series(bottom, st, alpha, norm2, scale, label=name, **line)
        _path_marks(top, bottom, st, result)
        top.set_ylim(-1.05, 1.05)
        top.set_ylabel("c(α) = ⟨v, θ₁ − θ₂⟩ / ‖v‖‖θ₁ − θ₂‖")
        bottom.set_ylabel("‖v(θ(α))‖²")
        bottom.set_xlabel("α   (θ(α) = αθ₂ + (1 − α)θ₁)")
        figure_legend(fig, st, [top], w)
        text = "path-angle (Berard et al. 2020); c > 0: descent moves towards the end"
        suptitle(fig, st, f"{title}\n{text}" if title else text, w)
        return finish(fig, st)


#: Below this |c| on the whole line, c is zero up to rounding: its signs are noise.
COSINE_NOISE = 1e-6


def _path_marks(top: Axes, bottom: Axes, st: Style, result: PathAngleLike) -> None:
    """The line c = 0, the two points α = 0 and α = 1, and the sign changes of c.

    A c below :data:`COSINE_NOISE` on the whole line (a pure rotation) gets a note
    instead of the sign changes of its rounding noise.
    """
    zero_line(top, st)
    for ax in (top, bottom):
        for a in (0.0, 1.0):
            ax.axvline(a, color=st.faint, lw=0.8, ls=":", zorder=0.5)
    for a, text in ((0.0, "start θ₁"), (1.0, "end θ₂")):
        top.text(
            a,
            1.0,
            text,
            transform=top.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=st.font("note"),
            color=st.faint,
        )
    cosine = np.abs(np.asarray(result.cosine, float))
    if not (cosine[np.isfinite(cosine)] >= COSINE_NOISE).any():
        corner_note(top, st, f"|c| < {COSINE_NOISE:g} on the whole line: v ⊥ the line", top=True)
        return
    changes = np.asarray(result.sign_changes(), float)
    if changes.size:
        where = ", ".join(f"{a:.3g}" for a in changes[:4]) + (" …" if changes.size > 4 else "")
        top.plot(
            changes,
            np.zeros(changes.size),
            ls="",
            marker="D",
            ms=4 if not st.paper else 3,
            color=st.failed,
            zorder=3,
            gid="sign-changes",
            label=f"sign change: α = {where}",
        )


# --------------------------------------------------------------------------- densities


def _density_operator(tr: Trace, operator: str) -> tuple[np.ndarray, np.ndarray]:
    """The nodes and weights of a density operator, ``(N, R, m)`` each."""
    check_plottable(tr, operator)
    if kind(tr, operator) != "density":
        densities = of_kind(tr, "density")
        raise ValueError(
            f"operator {operator!r} is not a spectral density; pass one of "
            f"{densities or 'none: probe with density=True'}"
        )
    data = arrays(tr, operator)
    if "nodes" not in data or "weights" not in data:
        raise ValueError(
            f"{tr.path}: operator {operator!r} has no nodes and weights (a trace written "
            "before schema 1.2); probe again with density=True"
        )
    return data["nodes"], data["weights"]


def density_grid(nodes: np.ndarray, weights: np.ndarray, points: int) -> tuple[np.ndarray, float]:
    """One grid over every probe's nodes, and the broadening σ.

    The grid runs 4σ beyond the nodes of positive weight; σ is
    :data:`SIGMA_FRACTION` of their range.
    """
    held = nodes[np.isfinite(nodes) & np.isfinite(weights) & (weights > 0)]
    if not held.size:
        raise ValueError("the density operator holds no quadrature nodes (every probe failed)")
    lo, hi = float(held.min()), float(held.max())
    sigma = SIGMA_FRACTION * (hi - lo) if hi > lo else SIGMA_FRACTION * max(abs(hi), 1.0)
    return np.linspace(lo - 4 * sigma, hi + 4 * sigma, points), sigma


def _step_edges(steps: np.ndarray) -> np.ndarray:
    """Cell edges around each step: midpoints, the ends half a gap out."""
    steps = np.asarray(steps, float)
    if steps.size == 1:
        return np.array([steps[0] - 0.5, steps[0] + 0.5])
    mid = (steps[1:] + steps[:-1]) / 2
    return np.concatenate([[2 * steps[0] - mid[0]], mid, [2 * steps[-1] - mid[-1]]])


def _columns(tr: Trace, operator: str, max_columns: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The probe rows to draw, their steps, and the decimation note.

    Every batch of an evenly decimated set of steps.
    """
    steps = tr.steps(operator)
    uniq = np.unique(steps)
    index, note = decimate(uniq.size, max_columns, "probe step")
    rows = np.nonzero(np.isin(steps, uniq[index]))[0]
    return rows, steps[rows], note


def _heat_map(
    ax: Axes, st: Style, steps: np.ndarray, y_edges: np.ndarray, values: np.ndarray, **kw: Any
) -> Any:
    """``values`` (n_y, n_steps) as cells over the steps; rasterized when large."""
    return ax.pcolormesh(
        _step_edges(steps), y_edges, values, rasterized=values.size > RASTER_CELLS, **kw
    )


def density_figure(
    trace: TraceLike,
    operator: str = "density.generator",
    *,
    grid_points: int = 300,
    max_columns: int = MAX_COLUMNS,
    style: Optional[str] = None,
    width: Width = None,
) -> Figure:
    r"""The spectral density of an operator over training, as a heat map.

    x: training step, y: eigenvalue, colour: the density
    :math:`\phi(\lambda) = \frac1R \sum_r \sum_j w_{rj}\,\mathcal N(\lambda;
    \theta_{rj}, \sigma^2)` of each probe's quadrature nodes :math:`\theta` and weights
    :math:`w` (stochastic Lanczos quadrature; :func:`broadened_density`), on one grid
    for all probes, with :math:`\sigma` 1% of the range of all nodes; several probe
    batches at a step are averaged. Log colour scale; densities below
    :data:`DENSITY_FLOOR` of the largest are blank. The line :math:`\lambda = 0`: mass
    below it is negative curvature, directions in which the player's loss curves
    down. Below: the mass below 0 (``negative_mass``) over training.

    Parameters
    ----------
    trace : Trace or path
    operator : str
        A density operator, ``"density.<player>"`` or ``"density.symmetric"``.
    grid_points : int
        Points of the eigenvalue grid.
    max_columns : int
        Probe steps drawn at most (decimated evenly, the figure says so).
    style, width
        See :func:`specdiag.plot.style` (paper default: one column).
    """
    if grid_points < 10:
        raise ValueError(f"grid_points must be at least 10, got {grid_points}")
    st, w = resolve(style, width, 7.0, "column")
    with opened(trace) as tr, drawing(st):
        nodes, weights = _density_operator(tr, operator)
        rows, steps, note = _columns(tr, operator, max_columns)
        grid, sigma = density_grid(nodes[rows], weights[rows], grid_points)
        phi = np.stack([broadened_density(nodes[r], weights[r], grid, sigma) for r in rows])
        uniq, table = by_step(steps, phi)
        density = rowwise(np.nanmean, table)  # (n_steps, G)
        fig = new_figure(st, w, 0.95 * w)
        heat, mass = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        _density_panel(fig, heat, st, uniq, grid, density, sigma)
        mark_failed(heat, st, failed_steps(tr, [operator]))
        if note:
            corner_note(heat, st, note)
        _mass_panel(mass, st, tr, operator)
        figure_legend(fig, st, [heat], w)
        text = st.heading(trace_name(tr), f"spectral density of {operator} over training")
        suptitle(fig, st, f"{text}\nSLQ nodes broadened by σ = {sigma:.3g}", w)
        return finish(fig, st)


def _density_panel(
    fig: Figure,
    ax: Axes,
    st: Style,
    steps: np.ndarray,
    grid: np.ndarray,
    density: np.ndarray,
    sigma: float,
) -> None:
    """The heat map with its log colour bar and the line λ = 0."""
    top = float(np.nanmax(density))
    shown = np.ma.masked_where(~(density >= DENSITY_FLOOR * top), density)
    step = grid[1] - grid[0]
    edges = np.append(grid - step / 2, grid[-1] + step / 2)
    mesh = _heat_map(
        ax,
        st,
        steps,
        edges,
        shown.T,
        cmap=st.density_cmap,
        norm=LogNorm(DENSITY_FLOOR * top, top),
    )
    colorbar(fig, mesh, ax, f"density (log; < {DENSITY_FLOOR:g} × max blank)")
    if grid[0] < 0 < grid[-1]:
        ax.axhline(0.0, color=st.region, lw=1.0, ls="--", zorder=2, label="λ = 0")
    ax.set_ylabel("λ")


def _mass_panel(ax: Axes, st: Style, tr: Trace, operator: str) -> None:
    """The mass below zero over training; the limits hold every value."""
    scalars = tr.scalars(operator)
    if "negative_mass" not in scalars:
        ax.set_visible(False)
        return
    steps, mass = median_by_step(tr, operator, scalars["negative_mass"])
    plot_series(ax, st, steps, mass, Scale(), color=st.color(0), lw=1.2, marker=".")
    finite = mass[np.isfinite(mass)]
    ax.set_ylim(0.0, max(float(finite.max()) * 1.1 if finite.size else 0.0, 0.05))
    ax.set_ylabel(scalar_label(tr, operator, "negative_mass"))
    ax.set_xlabel("training step")


# --------------------------------------------------------------------------- shares


def _shares_of(tr: Trace, operator: str) -> tuple[np.ndarray, np.ndarray]:
    """The shares ``(N, width, T)`` of an operator and its tensor names."""
    check_plottable(tr, operator)
    data = arrays(tr, operator)
    if "shares" not in data:
        with_shares = [op for op in tr.operators if "shares" in arrays(tr, op)]
        raise ValueError(
            f"{tr.path}: operator {operator!r} has no shares; probe with shares=True "
            f"(operators with shares: {with_shares or 'none'})"
        )
    names = coords(tr, operator).get("tensor")
    shares = data["shares"]
    if names is None or len(names) != shares.shape[-1]:
        names = np.array([f"tensor {i}" for i in range(shares.shape[-1])])
    return shares, np.asarray(names, dtype=str)


def fastest_rotation(eigenvalues: np.ndarray) -> np.ndarray:
    r"""Per probe, the column of the eigenvalue of largest :math:`|\operatorname{Im}\lambda|`.

    -1 where no eigenvalue is complex.
    """
    imag = np.abs(np.where(np.isfinite(eigenvalues), eigenvalues.imag, 0.0))
    return np.where(imag.max(axis=1, initial=0.0) > 0, imag.argmax(axis=1), -1)


def _share_rows(shares: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``shares[i, columns[i]]`` per probe ``(N, T)``; NaN where ``columns[i] < 0``."""
    picked = shares[np.arange(shares.shape[0]), np.maximum(columns, 0)]
    return np.where((columns >= 0)[:, None], picked, np.nan)


def shares_figure(
    trace: TraceLike,
    operator: str = "jacobian",
    eigen: int = 0,
    *,
    max_columns: int = MAX_COLUMNS,
    style: Optional[str] = None,
    width: Width = None,
) -> Figure:
    r"""Where the eigenvectors live: the share of each parameter tensor over training.

    For an eigenvector :math:`x` and a tensor :math:`B`, the share
    :math:`s_B = \sum_{i \in B} |x_i|^2 / \|x\|^2` (the shares of one eigenvector sum
    to 1). Heat maps of tensors (rows) against training steps (columns), coloured by
    share from 0 to 1: of eigenvalue ``eigen`` in the solver's order (0: the leading
    one, e.g. the largest :math:`|\lambda|` for ``which="LM"``), and for a Jacobian
    also of the fastest rotation, the eigenvalue of largest
    :math:`|\operatorname{Im}\lambda|` at each probe (blank where none is complex).
    Below: the subspace overlap, the mean squared cosine of the principal angles
    between consecutive probes' top eigenvectors (1: the leading directions did not
    turn). Several probe batches at a step are averaged.

    Parameters
    ----------
    trace : Trace or path
    operator : str
        An operator probed with ``shares=True``.
    eigen : int
        The column of the eigenvalue whose shares the first map shows.
    max_columns : int
        Probe steps drawn at most (decimated evenly, the figure says so).
    style, width
        See :func:`specdiag.plot.style` (paper default: the page).
    """
    with opened(trace) as tr:
        shares, names = _shares_of(tr, operator)
        if not 0 <= eigen < shares.shape[1]:
            raise ValueError(f"eigen must be in 0..{shares.shape[1] - 1}, got {eigen}")
        rows, steps, note = _columns(tr, operator, max_columns)
        order = f"eigenvalue {eigen} in the solver's order (which = {spec(tr, operator)['which']})"
        maps = [(order, shares[rows, eigen])]
        if kind(tr, operator) == "jacobian":
            columns = fastest_rotation(tr.eigenvalues(operator)[rows])
            maps.append(("fastest rotation (largest |Im λ|)", _share_rows(shares[rows], columns)))
        st, w = resolve(style, width, 8.0, "page")
        with drawing(st):
            map_h, line_h = _map_height(st, len(names)), 1.1 if not st.paper else 0.9
            fig = new_figure(st, w, len(maps) * map_h + line_h + 0.7)
            ratios = [map_h] * len(maps) + [line_h]
            axes = fig.subplots(len(maps) + 1, 1, sharex=True, height_ratios=ratios)
            for ax, (title, values) in zip(axes, maps):
                uniq, table = by_step(steps, values)
                mesh = _share_map(ax, st, uniq, rowwise(np.nanmean, table), names, map_h)
                ax.set_title(title, fontsize=st.font("panel"))
            colorbar(fig, mesh, list(axes[: len(maps)]), "share of the eigenvector")
            if note:
                corner_note(axes[0], st, note)
            _overlap_panel(axes[-1], st, tr, operator)
            text = st.heading(trace_name(tr), f"where the eigenvectors of {operator} live")
            suptitle(fig, st, text, w)
            return finish(fig, st)


#: Vertical room of one tensor's tick label, in multiples of the tick font size.
_LABEL_ROOM = 1.45
#: The part of a map's height its rows get (the rest: title and margins).
_LABEL_FILL = 0.85


def _map_height(st: Style, n_tensors: int) -> float:
    """Inches of a share map: one tick label per tensor, between 1 and 4 inches."""
    return min(max(n_tensors * _LABEL_ROOM * st.font("tick") / 72 / _LABEL_FILL, 1.2), 5.0)


def _share_map(
    ax: Axes, st: Style, steps: np.ndarray, values: np.ndarray, names: np.ndarray, height: float
) -> object:
    """Tensors x steps coloured by share (0 to 1); returns the mesh.

    The tensor names are the tick labels (every few when the ``height`` inches of the
    map cannot hold them all).
    """
    y_edges = np.arange(len(names) + 1) - 0.5
    mesh = _heat_map(ax, st, steps, y_edges, values.T, cmap=st.share_cmap, norm=Normalize(0, 1))
    room = _LABEL_FILL * height * 72 / (_LABEL_ROOM * st.font("tick")) + 1e-9  # labels that fit
    stride = max(int(np.ceil(len(names) / max(room, 1.0))), 1)
    ticks = np.arange(0, len(names), stride)
    ax.yaxis.set_major_locator(FixedLocator(ticks.tolist()))
    ax.set_yticklabels([names[i] for i in ticks])
    ax.set_ylim(len(names) - 0.5, -0.5)  # first tensor on top
    if np.isnan(values).all(axis=1).any():
        edge_markers(
            ax,
            st,
            steps[np.isnan(values).all(axis=1)],
            where=0.0,
            marker="|",
            color=st.faint,
            label="no value (blank)",
        )
    return mesh


def _overlap_panel(ax: Axes, st: Style, tr: Trace, operator: str) -> None:
    """The subspace overlap over training, in [0, 1] (NaN at the first probe)."""
    scalars = tr.scalars(operator)
    if "subspace_overlap" not in scalars:
        ax.set_visible(False)
        return
    steps, overlap = median_by_step(tr, operator, scalars["subspace_overlap"])
    plot_series(ax, st, steps, overlap, Scale(), color=st.color(0), lw=1.2, marker=".")
    held = np.append(overlap[np.isfinite(overlap)], [0.0, 1.0])
    ax.set_ylim(held.min() - 0.02, held.max() + 0.02)
    ax.set_ylabel(scalar_label(tr, operator, "subspace_overlap"))
    ax.set_xlabel("training step")
