"""Figures from traces: what each figure holds, decimation, the files, refusals, no torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
from matplotlib.text import Text
from PIL import Image
from plot.artists import xdata, ydata
from trace_writer_proc import operator_record

from specdiag import plot
from specdiag.errors import TraceError
from specdiag.plot import data, files
from specdiag.trace import TraceWriter, open_trace

ROOT = Path(__file__).resolve().parents[2]
OPERATORS = {
    "jacobian": {"kind": "jacobian", "which": "LM", "n": 8},
    "generator": {"kind": "hessian", "which": "LA", "n": 4},
    "discriminator": {"kind": "hessian", "which": "LA", "n": 4},
}
PLAYERS = {"generator": 4, "discriminator": 4}
WIDTH = 5  # k = 4


def jacobian_eigenvalues(step: int) -> np.ndarray:
    """2 to 4 eigenvalues that depend on the step: a conjugate pair, then real ones."""
    pair = [1.0 + 0.1 * step + 0.5j, 1.0 + 0.1 * step - 0.5j]
    return np.array(pair + [2.0, -0.25 - 0.01 * step][: step % 3], dtype=complex)


def record(
    step: int, *, batch_index: int = 0, status: str = "ok", eigenvalues=None, converged=None
) -> SimpleNamespace:
    eig = jacobian_eigenvalues(step) if eigenvalues is None else np.asarray(eigenvalues)
    operators = {
        "jacobian": operator_record(
            "jacobian", "jacobian", "LM", eig, status=status, converged=converged
        ),
        "generator": operator_record(
            "generator", "hessian", "LA", [1.0 + step + batch_index, -0.5]
        ),
        "discriminator": operator_record("discriminator", "hessian", "LA", [3.0, 0.5]),
    }
    return SimpleNamespace(
        step=step,
        batch_index=batch_index,
        seed=step,
        wall_time=1.0,
        build_time=0.1,
        status=status,
        operators=operators,
        losses={"generator": 0.7, "discriminator": 0.6},
    )


def writer(path, **kwargs) -> TraceWriter:
    return TraceWriter(
        path,
        **{"operators": OPERATORS, "players": PLAYERS, "width": WIDTH, "resume": False, **kwargs},
    )


def write_trace(path, records, **kwargs) -> Path:
    with writer(path, **kwargs) as w:
        for r in records:
            w.write(r)
    return Path(path)


def big_trace(path, n: int) -> Path:
    """A trace of ``n`` probes, each with WIDTH eigenvalues, filled in bulk.

    One probe is written by TraceWriter; then every per-probe dataset is extended to
    ``n`` rows (the layout docs/trace-format.md describes) and the steps and Jacobian
    eigenvalues are set: probe i has eigenvalues i/n + j·(m + 1) for m = 0..WIDTH-1.
    """
    write_trace(path, [record(0, eigenvalues=np.ones(WIDTH))])
    steps = np.arange(n) * 10
    with h5py.File(path, "r+") as f:

        def extend(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.maxshape[0] is None:
                first = obj[:1]
                obj.resize(n, axis=0)
                obj[...] = np.repeat(first, n, axis=0)

        f.visititems(extend)
        for op in OPERATORS:
            f[f"{op}/step"][...] = steps
        f["probe_step"][...] = steps
        f["jacobian/eig_real"][...] = np.repeat((np.arange(n) / n)[:, None], WIDTH, axis=1)
        f["jacobian/eig_imag"][...] = np.tile(np.arange(1.0, WIDTH + 1), (n, 1))
    return Path(path)


def points(ax) -> np.ndarray:
    """The eigenvalues drawn on ``ax`` as complex numbers (every eigenvalue scatter)."""
    offsets = [
        c.get_offsets()
        for c in ax.collections
        if isinstance(c, PathCollection) and (c.get_gid() or "").startswith("eigenvalues")
    ]
    xy = np.concatenate(offsets) if offsets else np.empty((0, 2))
    return xy[:, 0] + 1j * xy[:, 1]


def texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


@pytest.fixture
def small(tmp_path) -> Path:
    """Six probes of 2 to 4 eigenvalues; probe 4 has 2 of 3 unconverged, probe 3 failed."""
    records = [record(s) for s in range(6)]
    records[4] = record(4, converged=[True, False, False])
    records[3] = record(3, status="error", eigenvalues=[np.nan] * 2)
    return write_trace(
        tmp_path / "small.h5", records, config={"metadata": {"lr": 0.5, "optimizer": "sgd"}}
    )


# --------------------------------------------------------------------------- figures


def test_spectrum_draws_every_finite_eigenvalue_with_its_conventions(small):
    tr = open_trace(small)
    fig = plot.spectrum_figure(tr)
    ax = fig.axes[0]
    eig = tr.eigenvalues("jacobian")
    finite = np.isfinite(eig)
    drawn = points(ax)
    assert drawn.size == finite.sum() == 2 + 3 + 4 + 0 + 3 + 4
    np.testing.assert_allclose(np.sort_complex(drawn), np.sort_complex(eig[finite]))
    hollow = [c for c in ax.collections if c.get_gid() == "eigenvalues-unconverged"]
    assert len(hollow) == 1 and np.asarray(hollow[0].get_offsets()).shape[0] == 2
    assert (np.asarray(hollow[0].get_facecolor())[:, 3] == 0).all()  # hollow: no face
    assert ax.get_xlabel() == "Re λ" and ax.get_ylabel() == "Im λ"
    assert any(a.get_ylabel() == "training step" for a in fig.axes[1:]), "no colour bar"
    assert any(xdata(line).tolist() == [0, 0] for line in ax.get_lines()), "no Re λ = 0"
    assert plot.CONVENTION_NOTE in texts(fig)
    assert not [c for c in ax.collections if c.get_gid() == "stability-region"]
    x0, x1 = ax.get_xlim()
    assert x0 < 0 < x1 and x0 < eig[finite].real.min() and x1 > eig[finite].real.max()


def test_stability_region_of_gd_is_the_disc_through_0_and_2_over_lr(tmp_path):
    lr = 0.5  # the disc |1 - λ/2| < 1: centre 2, radius 2, through 0 and 4
    path = write_trace(
        tmp_path / "t.h5",
        [record(0, eigenvalues=[4.0, 1 + 2j, 1 - 2j]), record(1, eigenvalues=[3.5, 0.2 + 2.5j])],
    )
    fig = plot.spectrum_figure(path, lr=lr)
    ax = fig.axes[0]
    (region,) = [c for c in ax.collections if c.get_gid() == "stability-region"]
    xy = np.concatenate([p.vertices for p in region.get_paths()])
    lam = xy[:, 0] + 1j * xy[:, 1]
    grid = (ax.get_xlim()[1] - ax.get_xlim()[0]) / 400
    np.testing.assert_allclose(np.abs(1 - lr * lam), 1.0, atol=lr * 2 * grid)
    on_axis = lam[np.abs(lam.imag) < 0.2]
    assert on_axis.real.min() == pytest.approx(0.0, abs=2 * grid)
    assert on_axis.real.max() == pytest.approx(2 / lr, abs=2 * grid)
    assert "|1 − ηλ| < 1, η = 0.5" in texts(fig)


def test_plot_trace_takes_lr_from_the_run_metadata(small, tmp_path, monkeypatch):
    seen = []
    original = plot.spectrum_figure

    def spy(*args, **kwargs):
        seen.append(kwargs["lr"])
        return original(*args, **kwargs)

    monkeypatch.setattr(files, "spectrum_figure", spy)
    plot.plot_trace(small, tmp_path / "a", gif=False)
    plot.plot_trace(small, tmp_path / "b", gif=False, lr=0.01)
    plain = write_trace(tmp_path / "plain.h5", [record(0)])
    plot.plot_trace(plain, tmp_path / "c", gif=False)
    assert seen == [0.5, 0.01, None]


def test_evolution_scatters_small_traces_and_bins_large_ones(small, tmp_path):
    tr = open_trace(small)
    fig = plot.evolution_figure(tr)
    re_ax, im_ax = fig.axes[:2]
    eig = tr.eigenvalues("jacobian")
    finite = np.isfinite(eig)
    steps = np.broadcast_to(tr.steps("jacobian")[:, None], eig.shape)[finite]
    for ax, part in ((re_ax, eig[finite].real), (im_ax, eig[finite].imag)):
        drawn = points(ax)  # (step, part) as x + iy
        np.testing.assert_allclose(np.sort_complex(drawn), np.sort_complex(steps + 1j * part))
    assert (re_ax.get_ylabel(), im_ax.get_ylabel()) == ("Re λ", "Im λ")
    assert im_ax.get_xlabel() == "training step"

    big = open_trace(big_trace(tmp_path / "big.h5", 3000))
    fig = plot.evolution_figure(big, max_probes=1000)
    meshes = [c for c in fig.axes[0].collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1 and np.asarray(meshes[0].get_array()).sum() == 3000 * WIDTH
    assert not points(fig.axes[0]).size
    assert "log colour" in texts(fig)


def test_a_ten_thousand_probe_trace_is_decimated(tmp_path):
    n = 10_000
    tr = open_trace(big_trace(tmp_path / "big.h5", n))
    fig = plot.spectrum_figure(tr, max_probes=500)
    drawn = points(fig.axes[0])
    rows, note = data.decimate(n, 500)
    assert drawn.size == 500 * WIDTH
    assert note == "about every 20th probe shown (500 of 10,000)"
    assert note in texts(fig)
    # the first and the last probe are among those drawn
    assert {0.0, (n - 1) / n} <= set(np.round(drawn.real, 12))
    gif = plot.animate_spectrum(tr, tmp_path / "big.gif", max_frames=12)
    with Image.open(gif) as frames:
        assert frames.n_frames == 12


@pytest.mark.parametrize("n, limit", [(10, 3), (101, 10), (11, 10), (10_000, 2000), (7, 7), (2, 2)])
def test_decimation_is_even_and_keeps_both_ends(n, limit):
    rows, note = data.decimate(n, limit)
    assert rows.size == min(n, limit) and rows[0] == 0 and rows[-1] == n - 1
    gaps = np.diff(rows)
    assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1
    assert (note == "") == (n <= limit)


def test_gif_has_one_frame_per_probe_step(small, tmp_path):
    path = plot.animate_spectrum(small, tmp_path / "s.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6
    batches = write_trace(
        tmp_path / "b.h5", [record(s, batch_index=b) for s in range(4) for b in range(3)]
    )
    with Image.open(plot.animate_spectrum(batches, tmp_path / "b.gif")) as gif:
        assert gif.n_frames == 4
    long = write_trace(tmp_path / "l.h5", [record(s) for s in range(10)])
    with Image.open(plot.animate_spectrum(long, tmp_path / "l.gif", max_frames=4)) as gif:
        assert gif.n_frames == 4


def test_scalars_figure_has_a_panel_per_quantity_and_marks_failed_probes(small):
    fig = plot.scalars_figure(small)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == [
        "jacobian: min Re λ",
        "jacobian: max |Im λ|",
        "jacobian: max |Im λ / Re λ|",
        "jacobian: |λ|max",
        "Hessians: computed extremes",
    ]
    tr = open_trace(small)
    min_real = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(ydata(min_real), tr.scalars("jacobian")["min_real"])
    failed = [ln for ln in fig.axes[0].get_lines() if str(ln.get_label()).startswith("failed")]
    assert len(failed) == 1 and xdata(failed[0]).tolist() == [3]
    hessian_lines = [ln.get_label() for ln in fig.axes[4].get_lines()]
    # which="LA": "min" is the k-th largest computed eigenvalue, and the label says so
    assert {
        "generator λ max",
        "generator 2nd largest λ (not λ min)",
        "discriminator λ max",
        "discriminator 2nd largest λ (not λ min)",
    } <= set(hessian_lines)


def test_batch_spread_shows_median_and_range_across_batches(tmp_path):
    path = write_trace(
        tmp_path / "b.h5", [record(s, batch_index=b) for s in (0, 10, 20) for b in range(3)]
    )
    fig = plot.batch_spread_figure(path, "generator")
    ax_max = fig.axes[0]  # generator "max" = 1 + step + batch_index
    np.testing.assert_allclose(ydata(ax_max.get_lines()[0]), [2.0, 12.0, 22.0])
    (band,) = [c for c in ax_max.collections if isinstance(c, PolyCollection)]
    ys = np.asarray(band.get_paths()[0].vertices)[:, 1]
    assert ys.min() == pytest.approx(1.0) and ys.max() == pytest.approx(23.0)
    written = plot.plot_trace(path, tmp_path / "out", gif=False)
    assert tmp_path / "out" / "batch_spread.png" in written


def test_a_single_batch_writes_no_batch_spread(small, tmp_path):
    written = plot.plot_trace(small, tmp_path / "out")
    assert [p.name for p in written] == [
        "spectrum.png",
        "evolution.png",
        "scalars.png",
        "spectrum.gif",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)
    for p in written[:-1]:
        assert p.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="one probe batch per step"):
        plot.batch_spread_figure(small)


def test_hessian_operator_draws_eigenvalues_against_step(small, tmp_path):
    written = plot.plot_trace(small, tmp_path / "g", operator="generator")
    assert [p.name for p in written] == ["spectrum.png", "scalars.png"]
    ax = plot.spectrum_figure(small, "generator").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("training step", "λ")
    assert points(ax).size == 12
    with pytest.raises(ValueError, match="Hessian"):
        plot.evolution_figure(small, "generator")


def test_compare_two_runs(small, tmp_path):
    other = write_trace(tmp_path / "consensus.h5", [record(s) for s in range(0, 8, 2)])
    fig = plot.compare_figure([small, other])
    top = [ax for ax in fig.axes if ax.get_xlabel() == "Re λ"]
    assert [ax.get_title() for ax in top] == ["small", "consensus"]
    assert top[0].get_xlim() == top[1].get_xlim() and top[0].get_ylim() == top[1].get_ylim()
    assert points(top[0]).size == 16 and points(top[1]).size == 2 + 4 + 3 + 2
    radius = [ax for ax in fig.axes if ax.get_title() == "|λ|max"][0]
    assert [ln.get_label() for ln in radius.get_lines()] == ["small", "consensus"]
    written = plot.compare_traces([small, other], tmp_path / "cmp", labels=["GD", "CO"], fmt="svg")
    assert written == [tmp_path / "cmp" / "compare.svg"]
    assert "<svg" in written[0].read_text()
    with pytest.raises(ValueError, match="one label per trace"):
        plot.compare_figure([small, other], labels=["only one"])
    with pytest.raises(FileExistsError):
        plot.compare_traces([small, other], tmp_path / "cmp", fmt="svg")


# --------------------------------------------------------------------------- files and errors


def test_existing_outputs_are_not_overwritten_without_force(small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "scalars.png"
    existing.write_bytes(b"keep me")
    os.utime(existing, (1_000_000, 1_000_000))
    with pytest.raises(FileExistsError, match="scalars.png exists; pass --force"):
        plot.plot_trace(small, out)
    assert existing.read_bytes() == b"keep me" and existing.stat().st_mtime == 1_000_000
    assert [p.name for p in out.iterdir()] == ["scalars.png"], "wrote something anyway"
    plot.plot_trace(small, out, force=True, gif=False)
    assert existing.read_bytes().startswith(b"\x89PNG")


def test_refusals_are_one_line_and_say_what_to_do(small, tmp_path):
    with pytest.raises(ValueError) as error:
        plot.plot_trace(small, tmp_path / "o", operator="critic")
    assert str(error.value).count("\n") == 0
    assert "jacobian, generator, discriminator" in str(error.value)
    with pytest.raises(ValueError, match="fmt must be one of png, pdf, svg"):
        plot.plot_trace(small, tmp_path / "o", fmt="jpg")
    with pytest.raises(ValueError, match="lr must be a positive"):
        plot.plot_trace(small, tmp_path / "o", lr=-1.0)
    empty = tmp_path / "empty.h5"
    writer(empty).close()
    with pytest.raises(TraceError, match="has no probes yet"):
        plot.plot_trace(empty, tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("fmt, magic", [("pdf", b"%PDF"), ("svg", b"<svg")])
def test_vector_formats_are_valid(small, tmp_path, fmt, magic):
    written = plot.plot_trace(small, tmp_path, fmt=fmt, gif=False)
    assert [p.suffix for p in written] == [f".{fmt}"] * 3
    for path in written:
        data = path.read_bytes()
        assert data.startswith(magic) if fmt == "pdf" else magic in data


def test_plotting_never_imports_torch_or_pyplot(small, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from specdiag.plot import plot_trace, compare_traces
        plot_trace({str(small)!r}, {str(tmp_path / "out")!r})
        compare_traces([{str(small)!r}], {str(tmp_path / "cmp")!r})
        assert "torch" not in sys.modules, "torch was imported"
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        print("ok")
    """)
    env = {**os.environ, "MPLBACKEND": "module://no_such_backend"}  # never resolved
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_trace_still_being_written_can_be_plotted(tmp_path):
    path = tmp_path / "live.h5"
    w = writer(path)
    for s in range(3):
        w.write(record(s))
    try:
        written = plot.plot_trace(path, tmp_path / "live")
        assert len(written) == 4
        w.write(record(3))
        with Image.open(plot.animate_spectrum(path, tmp_path / "again.gif")) as gif:
            assert gif.n_frames == 4
    finally:
        w.close()


def test_a_live_swmr_trace_can_be_plotted(tmp_path):
    path = tmp_path / "swmr.h5"
    w = writer(path, swmr=True)
    try:
        for s in range(3):
            w.write(record(s))
        written = plot.plot_trace(path, tmp_path / "live", swmr=True, gif=False)
        assert [p.name for p in written] == ["spectrum.png", "evolution.png", "scalars.png"]
    finally:
        w.close()
