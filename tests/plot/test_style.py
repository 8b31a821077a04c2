"""One style for every figure: widths, palette, fonts, vector files, returned figures."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from plot.traces import rich_trace

from specdiag import plot
from specdiag.dynamics.path_angle import PathAngle
from specdiag.plot import styles
from specdiag.trace import open_trace

OKABE_ITO = set(styles.STYLES["paper"].palette)


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return open_trace(rich_trace(tmp_path_factory.mktemp("style") / "rich.h5"))


def path_angle() -> PathAngle:
    alpha = np.linspace(-0.1, 1.1, 25)
    cosine = 0.8 * np.sign(1 - alpha)
    norm2 = (1 - alpha) ** 2 + 1e-3
    return PathAngle(alpha, cosine, norm2, {"generator": (cosine, norm2 / 2)})


def every_figure(trace, **look):
    """Each figure function once, on the rich trace."""
    return {
        "spectrum": plot.spectrum_figure(trace, lr=0.1, **look),
        "evolution": plot.evolution_figure(trace, **look),
        "scalars": plot.scalars_figure(trace, **look),
        "dynamics": plot.dynamics_figure(trace, **look),
        "compare": plot.compare_figure([trace, trace], ["a", "b"], **look),
        "density": plot.density_figure(trace, **look),
        "shares": plot.shares_figure(trace, **look),
        "path_angle": plot.path_angle_figure(path_angle(), **look),
    }


@pytest.mark.parametrize("width, inches", [("column", 3.5), ("page", 7.0), (5.0, 5.0)])
def test_every_figure_takes_the_width_it_is_given(trace, width, inches):
    for name, fig in every_figure(trace, style="paper", width=width).items():
        assert isinstance(fig, Figure), name
        assert fig.get_size_inches()[0] == pytest.approx(inches), name
        fig.canvas.draw()  # lays out without error at that width


def test_the_paper_style_picks_a_paper_width_per_figure(trace):
    with plot.style("paper"):
        figures = every_figure(trace)
    widths = {name: fig.get_size_inches()[0] for name, fig in figures.items()}
    assert widths["spectrum"] == widths["density"] == widths["path_angle"] == 3.5
    assert widths["scalars"] == widths["compare"] == widths["shares"] == 7.0
    # outside the block: the default style, natural sizes
    assert plot.spectrum_figure(trace).get_size_inches()[0] == 7.0


def test_the_style_block_sets_width_and_an_argument_overrides_it(trace):
    with plot.style("paper", width="page"):
        assert plot.spectrum_figure(trace).get_size_inches()[0] == 7.0
        assert plot.spectrum_figure(trace, width="column").get_size_inches()[0] == 3.5
        fig = plot.spectrum_figure(trace, style="default")
        assert fig.get_size_inches()[0] == 7.0
        assert fig.texts and fig.texts[0].get_text().startswith("rich.h5: ")


def test_paper_colours_are_okabe_ito_and_text_is_small(trace):
    fig = plot.compare_figure([trace, trace], ["a", "b"], style="paper")
    radius = [ax for ax in fig.axes if ax.get_title() == "|λ|max"][0]
    colours = [to_hex(line.get_color()) for line in radius.get_lines()]
    assert colours[:2] == [to_hex(c) for c in styles.STYLES["paper"].palette[:2]]
    fig.canvas.draw()
    sizes = {t.get_fontsize() for ax in fig.axes for t in ax.get_yticklabels() if t.get_text()}
    assert sizes == {styles.STYLES["paper"].font("tick")}
    titles = [t.get_text() for sub in fig.subfigs for t in sub.texts]
    assert titles and not any("rich.h5" in t for t in titles)  # no file name in paper titles


def test_unknown_styles_and_widths_are_refused(trace):
    with pytest.raises(ValueError, match="style must be one of 'default', 'paper'"):
        plot.spectrum_figure(trace, style="poster")
    with pytest.raises(ValueError, match="width must be 'column'"):
        plot.scalars_figure(trace, width="half")
    with pytest.raises(ValueError, match="width must be 'column'"):
        with plot.style("paper", width=0.1):
            pass


def images_in_pdf(data: bytes) -> int:
    """Image XObjects in a PDF, not counting their transparency masks (matplotlib does
    not compress object dictionaries)."""
    return len(re.findall(rb"/Subtype\s*/Image", data)) - len(re.findall(rb"/SMask\s", data))


def rasterized(fig) -> int:
    return sum(1 for a in fig.findobj() if getattr(a, "get_rasterized", lambda: False)())


def test_pdf_files_are_vector_but_for_rasterized_layers(trace, tmp_path):
    written = plot.plot_trace(trace, tmp_path, fmt="pdf", gif=False, style="paper")
    assert {p.name for p in written} >= {"scalars.pdf", "spectrum.pdf", "shares.pdf"}
    for path in written:
        assert images_in_pdf(path.read_bytes()) == 0, path.name  # small trace: no raster
    big = plot.evolution_figure(trace, max_probes=2)  # 2-D histograms: dense, rasterized
    big.savefig(tmp_path / "dense.pdf")
    n_images = images_in_pdf((tmp_path / "dense.pdf").read_bytes())
    assert 1 <= n_images <= rasterized(big)


def test_paper_pdf_embeds_truetype_fonts(trace, tmp_path):
    plot.plot_trace(trace, tmp_path / "p", fmt="pdf", gif=False, style="paper")
    plot.plot_trace(trace, tmp_path / "d", fmt="pdf", gif=False)
    paper = (tmp_path / "p" / "spectrum.pdf").read_bytes()
    default = (tmp_path / "d" / "spectrum.pdf").read_bytes()
    assert b"/FontFile2" in paper and b"/Type3" not in paper  # TrueType: editable text
    assert b"/Type3" in default


def test_png_resolution_follows_the_style_or_dpi(trace, tmp_path):
    from PIL import Image

    (paper,) = plot.compare_traces([trace], tmp_path / "p", style="paper", width="column")
    (web,) = plot.compare_traces([trace], tmp_path / "w", style="paper", width="column", dpi=100)
    assert Image.open(paper).size[0] == pytest.approx(3.5 * 300, abs=2)
    assert Image.open(web).size[0] == pytest.approx(3.5 * 100, abs=2)


def test_svg_files_are_vector(trace, tmp_path):
    for path in plot.plot_trace(trace, tmp_path, fmt="svg", gif=False, style="paper"):
        svg = path.read_text()
        assert "<image" not in svg and svg.count("<path") > 20, path.name
