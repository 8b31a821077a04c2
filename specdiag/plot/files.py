r"""Every figure of a trace written into a directory, and the comparison of several runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Union

from matplotlib.figure import Figure

from ..trace import Trace
from .analyses import density_figure, shares_figure
from .compare import compare_figure
from .data import (
    MAX_PROBES,
    TraceLike,
    arrays,
    check_lr,
    check_plottable,
    has_batches,
    is_hessian,
    kind,
    of_kind,
    opened,
    stored_lr,
)
from .dynamics import DYNAMICS_KINDS, dynamics_figure
from .scalars import batch_spread_figure, scalars_figure
from .spectrum import MAX_FRAMES, animate_spectrum, evolution_figure, spectrum_figure
from .styles import Width, drawing, resolve

__all__ = ["FORMATS", "plot_trace", "compare_traces"]

#: Formats of the still figures (the animation is always a GIF).
FORMATS = ("png", "pdf", "svg")

PathLike = Union[str, "os.PathLike[str]"]


def check_format(fmt: str) -> None:
    """ValueError unless ``fmt`` is one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")


def refuse_existing(paths: Sequence[Path], force: bool) -> None:
    """FileExistsError for the first existing path, unless ``force``."""
    if force:
        return
    for path in paths:
        if path.exists():
            raise FileExistsError(f"{path} exists; pass --force (force=True) to overwrite it")


def _figures(
    tr: Trace,
    operator: str,
    lr: Optional[float],
    max_probes: int,
    style: Optional[str],
    width: Width,
) -> dict[str, Callable[[], Figure]]:
    """The still figures that apply to the trace, by file name without suffix."""
    look: dict[str, Any] = {"style": style, "width": width}
    figures: dict[str, Callable[[], Figure]] = {
        "spectrum": partial(spectrum_figure, tr, operator, lr=lr, max_probes=max_probes, **look)
    }
    if not is_hessian(tr, operator):
        figures["evolution"] = partial(
            evolution_figure, tr, operator, max_probes=max_probes, **look
        )
    figures["scalars"] = partial(scalars_figure, tr, **look)
    if has_batches(tr, operator):
        figures["batch_spread"] = partial(batch_spread_figure, tr, operator, **look)
    if any(kind(tr, op) in DYNAMICS_KINDS for op in tr.operators):
        figures["dynamics"] = partial(dynamics_figure, tr, **look)
    for op in of_kind(tr, "density"):
        if {"nodes", "weights"} <= set(arrays(tr, op)):
            figures[op] = partial(density_figure, tr, op, **look)
    for op in tr.operators:
        if "shares" in arrays(tr, op):
            figures["shares" if op == operator else f"shares.{op}"] = partial(
                shares_figure, tr, op, **look
            )
    return figures


def plot_trace(
    trace: TraceLike,
    out_dir: PathLike,
    *,
    operator: str = "jacobian",
    fmt: str = "png",
    force: bool = False,
    lr: Optional[float] = None,
    gif: bool = True,
    max_probes: int = MAX_PROBES,
    max_frames: int = MAX_FRAMES,
    swmr: bool = False,
    style: Optional[str] = None,
    width: Width = None,
    dpi: Optional[float] = None,
) -> list[Path]:
    """Write every figure of a trace into a directory.

    Files (``FMT`` is ``fmt``), each only where it applies: ``spectrum.FMT``
    (:func:`spectrum_figure`, with the stability region when a step size is known),
    ``evolution.FMT`` (:func:`evolution_figure`, not for a Hessian), ``scalars.FMT``
    (:func:`scalars_figure`), ``batch_spread.FMT`` (several probe batches),
    ``dynamics.FMT`` (an update or Helmholtz operator), ``density.<target>.FMT`` per
    density operator with quadrature nodes (:func:`density_figure`), ``shares.FMT``
    for ``operator`` and ``shares.<op>.FMT`` for the other operators probed with
    shares (:func:`shares_figure`), and ``spectrum.gif`` (:func:`animate_spectrum`,
    when ``gif``, not for a Hessian).

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
        Step size for the stability region; default the one the monitor stored with
        the run (its update rule's, or ``trace.meta["config"]["metadata"]["lr"]``).
    gif : bool
        Also write the animation.
    max_probes, max_frames : int
        Decimation limits of the point figures and of the animation.
    swmr : bool
        Open the path in SWMR mode (a trace a monitor with ``swmr=True`` is writing).
    style : {"default", "paper"}, optional
        See :func:`specdiag.plot.style`.
    width : "column", "page" or float, optional
        Width of every figure (default: the style's choice per figure).
    dpi : float, optional
        Resolution of PNG files (default: the style's, 120 or 300).

    Returns
    -------
    list of pathlib.Path
        The files written, in the order above.

    Raises
    ------
    FileExistsError
        An output exists and not ``force``; nothing was written.
    ValueError
        Unknown ``fmt``, ``operator`` or ``style``, or a bad ``lr`` or ``width``.
    TraceError
        The trace cannot be read or has no probes yet.
    """
    check_format(fmt)
    lr = check_lr(lr)
    st, _ = resolve(style, width, 7.0, "column")
    out = Path(out_dir)
    with opened(trace, swmr) as tr:
        check_plottable(tr, operator)
        lr = stored_lr(tr) if lr is None else lr
        figures = _figures(tr, operator, lr, max_probes, style, width)
        paths = {name: out / f"{name}.{fmt}" for name in figures}
        animation = out / "spectrum.gif" if gif and not is_hessian(tr, operator) else None
        refuse_existing([*paths.values(), *([animation] if animation else [])], force)
        out.mkdir(parents=True, exist_ok=True)
        with drawing(st):
            for name, make in figures.items():
                make().savefig(paths[name], format=fmt, dpi=dpi or st.dpi)
        written = list(paths.values())
        if animation:
            written.append(
                animate_spectrum(tr, animation, operator, max_frames=max_frames, style=style)
            )
    return written


def compare_traces(
    traces: Sequence[TraceLike],
    out_dir: PathLike,
    *,
    labels: Optional[Sequence[str]] = None,
    operator: str = "jacobian",
    fmt: str = "png",
    force: bool = False,
    max_probes: int = MAX_PROBES,
    style: Optional[str] = None,
    width: Width = None,
    dpi: Optional[float] = None,
) -> list[Path]:
    """Write :func:`compare_figure` of several traces to ``out_dir/compare.FMT``.

    Parameters are those of :func:`compare_figure` and :func:`plot_trace`. Returns the
    file written (a one-element list). Raises FileExistsError if it exists and not
    ``force``.
    """
    check_format(fmt)
    st, _ = resolve(style, width, 7.0, "page")
    out = Path(out_dir)
    path = out / f"compare.{fmt}"
    refuse_existing([path], force)
    with drawing(st):
        fig = compare_figure(
            traces, labels, operator, max_probes=max_probes, style=style, width=width
        )
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=fmt, dpi=dpi or st.dpi)
    return [path]
