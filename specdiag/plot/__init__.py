r"""Figures from a specdiag trace.

The eigenvalue cloud of the game Jacobian in the complex plane, its motion over
training, the summary scalars, the spread across probe batches, the optimiser's
update and the Helmholtz split, the spectral density of a Hessian, where the
eigenvectors live, the path-angle of Berard et al. (2020), an animated GIF, and
several runs side by side.

Every figure uses and states the descent convention: the Jacobian is
:math:`J = \partial v / \partial x` of the field :math:`v = (\nabla_{x_1} L_1, \dots,
\nabla_{x_P} L_P)`, gradient flow :math:`\dot x = -v(x)` is locally stable where every
eigenvalue has :math:`\operatorname{Re}\lambda > 0`, and simultaneous gradient descent
:math:`x \leftarrow x - \eta v(x)` where every eigenvalue has :math:`|1 - \eta\lambda| < 1`.

The package imports numpy, matplotlib, PIL and specdiag's trace reader, registries and
:mod:`specdiag.stability` only, never torch. It draws on
:class:`matplotlib.figure.Figure` objects with the Agg canvas, so it needs no display
and leaves pyplot's global state alone; every ``*_figure`` function returns its figure
(a notebook shows it as the cell's value). Modules, one purpose each:

* :mod:`~specdiag.plot.data` -- reading, checking and decimating a trace; densities;
* :mod:`~specdiag.plot.styles` -- the ``"default"`` and ``"paper"`` styles, widths;
* :mod:`~specdiag.plot.labels` -- the convention note and the scalars' labels;
* :mod:`~specdiag.plot.axes` -- drawing primitives, scales that hide no value;
* :mod:`~specdiag.plot.spectrum` -- spectrum, evolution, animation;
* :mod:`~specdiag.plot.scalars` -- scalars and batch spread;
* :mod:`~specdiag.plot.dynamics` -- update operator and Helmholtz split;
* :mod:`~specdiag.plot.compare` -- several runs side by side;
* :mod:`~specdiag.plot.analyses` -- path-angle, spectral density, shares;
* :mod:`~specdiag.plot.files` -- every figure of a trace into a directory.

``docs/plots.md`` shows the figures and how to read them.
"""

from .analyses import PathAngleLike, density_figure, path_angle_figure, shares_figure
from .compare import compare_figure
from .data import MAX_PROBES
from .dynamics import dynamics_figure
from .files import FORMATS, compare_traces, plot_trace
from .labels import CONVENTION_NOTE
from .scalars import batch_spread_figure, scalars_figure
from .spectrum import FPS, MAX_FRAMES, animate_spectrum, evolution_figure, spectrum_figure
from .styles import STYLES, WIDTHS, Style, style

__all__ = [
    "FORMATS",
    "MAX_PROBES",
    "MAX_FRAMES",
    "FPS",
    "CONVENTION_NOTE",
    "STYLES",
    "WIDTHS",
    "Style",
    "style",
    "plot_trace",
    "compare_traces",
    "spectrum_figure",
    "evolution_figure",
    "scalars_figure",
    "batch_spread_figure",
    "dynamics_figure",
    "animate_spectrum",
    "compare_figure",
    "path_angle_figure",
    "density_figure",
    "shares_figure",
    "PathAngleLike",
]
