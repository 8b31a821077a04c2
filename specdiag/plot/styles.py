r"""One look for every figure: colours, fonts, sizes and resolution.

Two styles:

``"default"``
    Figures for the screen: matplotlib's ``tab10`` colours, 10 pt text, each figure at
    its own natural size, PNG at 120 dpi.
``"paper"``
    Figures for a paper: the Okabe–Ito palette (distinguishable with every common
    form of colour blindness; Okabe and Ito 2008), sequential colour maps that stay
    ordered in grey scale (viridis, cividis, magma), 8 pt text that reads at print
    size, one column (3.5 in) or the page (7 in) wide, PNG at 300 dpi, TrueType fonts
    embedded in PDF files (editable text). The file name of the trace is left out of
    the titles; the sign convention stays.

Every figure function takes ``style=`` and ``width=``; without them it uses the style
set by :func:`style` (a context manager), else ``"default"``. ``width`` is
``"column"`` (3.5 in), ``"page"`` (7 in) or a width in inches; ``None`` is the
style's choice (the natural size in ``"default"``; in ``"paper"`` one column for the
single-panel figures and the page for those with several panels side by side).
"""

from __future__ import annotations

import contextvars
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["Style", "STYLES", "WIDTHS", "Width", "style", "resolve", "new_figure"]

#: Named figure widths in inches: one column and the full text width of a two-column paper.
WIDTHS = {"column": 3.5, "page": 7.0}
#: A figure width: a name of :data:`WIDTHS`, inches, or None (the style's choice).
Width = Union[str, float, None]

_OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
_TAB10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


@dataclass(frozen=True)
class Style:
    r"""The look of a figure.

    Attributes
    ----------
    name : str
    palette : tuple of str
        Colours of categorical series (runs, operators, players), in order.
    step_cmap, density_cmap, share_cmap : str
        Colour maps of the training step, of a spectral density and of shares.
    failed, region, reference, faint : str
        Colours of failed probes, of stability regions, of reference lines
        (:math:`\lambda = 0`) and of notes.
    fonts : dict of str to float
        Font sizes in points by role: ``title``, ``panel``, ``label``, ``tick``,
        ``legend``, ``note``.
    dpi : float
        Resolution of PNG files.
    paper : bool
        Whether figures take a paper width when none is given, and leave the trace's
        file name out of their titles.
    rc : dict
        matplotlib settings in force while a figure is drawn and saved.
    """

    name: str
    palette: tuple[str, ...]
    step_cmap: str
    density_cmap: str
    share_cmap: str
    failed: str
    region: str
    reference: str
    faint: str
    fonts: Mapping[str, float]
    dpi: float
    paper: bool
    rc: Mapping[str, Any] = field(default_factory=dict)

    def color(self, i: int) -> str:
        """The ``i``-th categorical colour (the palette repeats)."""
        return self.palette[i % len(self.palette)]

    def font(self, role: str) -> float:
        """The font size of ``role`` in points."""
        return self.fonts[role]

    def heading(self, trace_name: str, text: str) -> str:
        """A figure title: ``"trace_name: text"``, or ``text`` alone in the paper style."""
        return text if self.paper else f"{trace_name}: {text}"


def _rc(fonts: Mapping[str, float], palette: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    from cycler import cycler

    return {
        "font.size": fonts["label"],
        "axes.titlesize": fonts["panel"],
        "axes.labelsize": fonts["label"],
        "xtick.labelsize": fonts["tick"],
        "ytick.labelsize": fonts["tick"],
        "legend.fontsize": fonts["legend"],
        "legend.title_fontsize": fonts["legend"],
        "figure.titlesize": fonts["title"],
        "axes.prop_cycle": cycler(color=list(palette)),
        **extra,
    }


_DEFAULT_FONTS = {"title": 10, "panel": 9, "label": 9, "tick": 8, "legend": 7.5, "note": 7}
_PAPER_FONTS = {"title": 8, "panel": 7.5, "label": 7.5, "tick": 6.5, "legend": 6.5, "note": 6}

#: The styles by name.
STYLES: dict[str, Style] = {
    "default": Style(
        name="default",
        palette=_TAB10,
        step_cmap="viridis",
        density_cmap="magma_r",
        share_cmap="cividis",
        failed="#d62728",
        region="#1f77b4",
        reference="0.3",
        faint="0.35",
        fonts=_DEFAULT_FONTS,
        dpi=120,
        paper=False,
        rc=_rc(_DEFAULT_FONTS, _TAB10),
    ),
    "paper": Style(
        name="paper",
        palette=_OKABE_ITO,
        step_cmap="viridis",
        density_cmap="magma_r",
        share_cmap="cividis",
        failed=_OKABE_ITO[5],
        region=_OKABE_ITO[0],
        reference="0.25",
        faint="0.3",
        fonts=_PAPER_FONTS,
        dpi=300,
        paper=True,
        rc=_rc(
            _PAPER_FONTS,
            _OKABE_ITO,
            **{
                "axes.linewidth": 0.6,
                "lines.linewidth": 1.0,
                "lines.markersize": 3.5,
                "xtick.major.width": 0.6,
                "ytick.major.width": 0.6,
                "xtick.major.size": 2.5,
                "ytick.major.size": 2.5,
                "pdf.fonttype": 42,
                "ps.fonttype": 42,
            },
        ),
    ),
}

_CURRENT: contextvars.ContextVar[tuple[Style, Width]] = contextvars.ContextVar(
    "specdiag_plot_style", default=(STYLES["default"], None)
)


def _named(name: Union[str, Style]) -> Style:
    if isinstance(name, Style):
        return name
    try:
        return STYLES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"style must be one of {', '.join(map(repr, STYLES))}, got {name!r}"
        ) from None


def _check_width(width: Width) -> Width:
    if width is None or isinstance(width, str) and width in WIDTHS:
        return width
    if isinstance(width, (int, float)) and not isinstance(width, bool) and 0.5 <= width <= 40:
        return float(width)
    raise ValueError(
        f"width must be 'column' (3.5 in), 'page' (7 in) or inches between 0.5 and 40, "
        f"got {width!r}"
    )


@contextmanager
def style(name: Union[str, Style] = "paper", width: Width = None) -> Iterator[Style]:
    """Draw every figure made in the block in style ``name`` (and at ``width``).

    Examples
    --------
    >>> from specdiag import plot
    >>> game = toys.dirac_gan(loss="standard", r1=0.6).game
    >>> with sd.SpectrumMonitor(game, "run.h5", every=1, k=2) as mon:
    ...     for step in range(3):
    ...         _ = mon.step(step)
    >>> with plot.style("paper", width="column"):
    ...     fig = plot.spectrum_figure("run.h5")
    >>> float(fig.get_size_inches()[0])  # one column of a printed page
    3.5
    """
    token = _CURRENT.set((_named(name), _check_width(width)))
    try:
        yield _CURRENT.get()[0]
    finally:
        _CURRENT.reset(token)


def resolve(
    name: Union[str, Style, None], width: Width, natural: float, preferred: str
) -> tuple[Style, float]:
    """The style and the width in inches of one figure.

    Parameters
    ----------
    name, width
        What the caller asked for (None: the :func:`style` block's, else the defaults).
    natural : float
        The figure's width in inches in the default style.
    preferred : {"column", "page"}
        Its width in the paper style when none is asked for.

    Returns
    -------
    (Style, float)
    """
    current, current_width = _CURRENT.get()
    st = current if name is None else _named(name)
    asked = _check_width(width) if width is not None else current_width
    if asked is None:
        asked = preferred if st.paper else natural
    return st, WIDTHS[asked] if isinstance(asked, str) else float(asked)


def new_figure(st: Style, width: float, height: float, *, dpi: Optional[float] = None) -> Figure:
    """A figure of ``width`` x ``height`` inches on its own Agg canvas, constrained layout."""
    fig = Figure(figsize=(width, height), dpi=dpi or st.dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


@contextmanager
def drawing(st: Style) -> Iterator[None]:
    """The style's matplotlib settings, while a figure is made or saved."""
    settings: Any = dict(st.rc)
    with rc_context(settings):
        yield


def wrap(text: str, width: float, size: float) -> str:
    """``text`` broken into lines that fit ``width`` inches at ``size`` points.

    Each existing line is wrapped on its own.
    """
    chars = max(int(width * 72 / (0.56 * size)), 20)
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def suptitle(fig: Any, st: Style, text: str, width: float) -> None:
    """The title of a figure or subfigure, wrapped to its width."""
    fig.suptitle(wrap(text, width, st.font("title")), fontsize=st.font("title"))


def finish(fig: Figure, st: Style) -> Figure:
    """Tick labels of every axes at the style's size; returns ``fig``.

    Ticks made later, when the figure is drawn outside :func:`drawing`, keep it.
    """
    major = 3.5 if not st.paper else 2.5
    width = 0.8 if not st.paper else 0.6
    for ax in fig.axes:
        ax.tick_params(labelsize=st.font("tick"), width=width, length=major, which="major")
        ax.tick_params(width=width * 0.8, length=major * 0.6, which="minor")
    return fig
