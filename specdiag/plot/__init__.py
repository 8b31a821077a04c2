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

from .figures import (
    CONVENTION_NOTE,
    FORMATS,
    FPS,
    MAX_FRAMES,
    MAX_PROBES,
    animate_spectrum,
    batch_spread_figure,
    compare_figure,
    compare_traces,
    dynamics_figure,
    evolution_figure,
    plot_trace,
    scalars_figure,
    spectrum_figure,
)

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
