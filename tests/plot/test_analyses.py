"""The analyses' figures: path-angle on games with a known answer, the spectral density
against its closed form, and the shares of the eigenvectors."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.collections import QuadMesh
from plot.artists import blank, cells, xdata, y_edges, ydata
from plot.traces import (
    TENSORS,
    density_scalars,
    density_spec,
    jacobian_scalars,
    jacobian_spec,
    op_record,
    probe,
    rich_trace,
    write,
)

import specdiag as sd
from specdiag import plot
from specdiag.trace import open_trace

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- path-angle


def two_player_path_angle(kind: str) -> sd.PathAngle:
    """The path-angle from a point to the equilibrium 0 of a two-player game.

    ``"minimum"``: both players minimise one strongly convex f (a potential game whose
    J is symmetric positive definite): c > 0 before α = 1 and c < 0 after, one sign
    change at the end point. ``"rotation"``: the bilinear game x·y against −x·y (J
    antisymmetric): v ⊥ the line everywhere, c ≡ 0.
    """
    x = torch.nn.Parameter(torch.tensor([1.0, -0.5], dtype=torch.float64))
    y = torch.nn.Parameter(torch.tensor([0.3, 0.8], dtype=torch.float64))

    def losses(batch):
        if kind == "minimum":
            f = 0.5 * (x @ x) + 0.5 * (y @ y) + 0.2 * (x @ y) + 0.3 * x[0] ** 2
            return {"x": f, "y": f}
        return {"x": x @ y, "y": -(x @ y)}

    game = sd.Game(players={"x": [x], "y": [y]}, losses=losses)
    start = {"x": [x.detach().clone()], "y": [y.detach().clone()]}
    zero = torch.zeros(2, dtype=torch.float64)
    alphas = np.linspace(-0.1, 1.1, 25)
    return sd.path_angle(game, start, {"x": [zero], "y": [zero.clone()]}, None, alphas=alphas)


def test_a_minimum_switches_sign_at_the_end_point():
    pa = two_player_path_angle("minimum")
    fig = plot.path_angle_figure(pa, title="minimum")
    top, bottom = fig.axes[:2]
    game = next(ln for ln in top.get_lines() if ln.get_label() == "game")
    np.testing.assert_array_equal(ydata(game), pa.cosine)
    (marks,) = [ln for ln in top.get_lines() if ln.get_gid() == "sign-changes"]
    np.testing.assert_allclose(xdata(marks), pa.sign_changes())
    assert xdata(marks) == pytest.approx([1.0], abs=0.05)
    assert ydata(marks).tolist() == [0.0]
    assert bottom.get_yscale() == "log" and bottom.get_ylabel() == "‖v(θ(α))‖²"
    norms = {ln.get_label(): ydata(ln) for ln in bottom.get_lines()}
    np.testing.assert_allclose(norms["x"] + norms["y"], norms["game"], rtol=1e-12)
    for ax in (top, bottom):  # the two points
        verticals = {xdata(ln)[0] for ln in ax.get_lines() if ln.get_linestyle() == ":"}
        assert verticals == {0.0, 1.0}
    assert [t.get_text() for t in top.texts][:2] == ["start θ₁", "end θ₂"]


def test_a_rotation_has_c_zero_and_no_sign_change():
    pa = two_player_path_angle("rotation")
    assert np.nanmax(np.abs(pa.cosine)) < 1e-12
    fig = plot.path_angle_figure(pa)
    top = fig.axes[0]
    assert not [ln for ln in top.get_lines() if ln.get_gid() == "sign-changes"]
    assert any("v ⊥ the line" in t.get_text() for t in top.texts)


def test_a_zero_norm_is_drawn_at_the_edge_of_the_log_axis():
    alpha = np.linspace(0.0, 1.0, 5)
    pa = sd.PathAngle(alpha, 1 - 2 * alpha, (1 - alpha) ** 2, {})
    bottom = plot.path_angle_figure(pa).axes[1]
    (zero,) = [ln for ln in bottom.get_lines() if ln.get_gid() == "nonpositive"]
    assert xdata(zero).tolist() == [1.0]
    with pytest.raises(ValueError, match="at least 2 points"):
        plot.path_angle_figure(sd.PathAngle(alpha[:1], alpha[:1], alpha[:1], {}))


# --------------------------------------------------------------------------- density


def gaussian(x, mean, sigma):
    return np.exp(-((x - mean) ** 2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))


def density_trace(path, probes, batches=1):
    """``probes`` is a list of (nodes, weights) per step; every batch repeats them scaled."""
    records = []
    for step, (nodes, weights) in enumerate(probes):
        for b in range(batches):
            shifted = nodes + b
            record = op_record(
                "density.generator",
                "density",
                [],
                density_scalars(shifted, weights),
                {"nodes": shifted, "weights": weights},
            )
            records.append(probe(10 * step, {"density.generator": record}, b))
    return open_trace(write(path, {"density.generator": density_spec()}, records))


def heat(fig) -> QuadMesh:
    (mesh,) = [c for c in fig.axes[0].collections if isinstance(c, QuadMesh)]
    return mesh


def padded(values, rows=3, cols=5):
    out = np.full((rows, cols), np.nan)
    values = np.atleast_2d(values)
    out[: values.shape[0], : values.shape[1]] = values
    return out


def test_density_heat_map_is_the_broadened_quadrature(tmp_path):
    """Two probes, one solved exactly (row 0 only): each column is
    (1/R) Σ w N(λ; θ, σ²) on one grid, σ = 1% of the range of every node."""
    first = (
        padded([[-1.0, 1.0, 2.0], [0.0, 3.0, np.nan]]),
        padded([[0.2, 0.3, 0.5], [0.5, 0.5, np.nan]]),
    )
    second = (padded([[-2.0, 4.0]]), padded([[0.25, 0.75]]))
    tr = density_trace(tmp_path / "d.h5", [first, second])
    fig = plot.density_figure(tr, grid_points=400)
    mesh = heat(fig)
    sigma = 0.01 * (4.0 - -2.0)
    edges = y_edges(mesh)
    grid = (edges[1:] + edges[:-1]) / 2
    assert grid[0] == pytest.approx(-2.0 - 4 * sigma) and grid[-1] == pytest.approx(4 + 4 * sigma)
    expected = np.stack(
        [
            (
                0.2 * gaussian(grid, -1, sigma)
                + 0.3 * gaussian(grid, 1, sigma)
                + 0.5 * gaussian(grid, 2, sigma)
                + 0.5 * gaussian(grid, 0, sigma)
                + 0.5 * gaussian(grid, 3, sigma)
            )
            / 2,
            0.25 * gaussian(grid, -2, sigma) + 0.75 * gaussian(grid, 4, sigma),
        ],
        axis=1,
    )
    shown = cells(mesh, expected.shape)
    np.testing.assert_allclose(shown, expected, rtol=1e-9)
    step = grid[1] - grid[0]
    np.testing.assert_allclose(shown.sum(axis=0) * step, [1.0, 1.0], atol=1e-3)  # unit mass
    floor = plot.analyses.DENSITY_FLOOR * expected.max()
    np.testing.assert_array_equal(blank(mesh, expected.shape), expected < floor)
    assert mesh.norm.vmin == pytest.approx(floor) and type(mesh.norm).__name__ == "LogNorm"
    assert f"σ = {sigma:.3g}" in fig.texts[0].get_text()
    zero = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "λ = 0"]
    assert zero and ydata(zero[0]).tolist() == [0.0, 0.0]
    mass = next(ax for ax in fig.axes if ax.get_ylabel() == "mass below 0")
    np.testing.assert_allclose(ydata(mass.get_lines()[0]), [0.2 / 2, 0.25])


def test_density_averages_the_probe_batches_of_a_step(tmp_path):
    one = (padded([[0.0, 1.0]]), padded([[0.5, 0.5]]))
    tr = density_trace(tmp_path / "b.h5", [one, one], batches=2)  # batch 1: nodes + 1
    mesh = heat(plot.density_figure(tr, grid_points=300))
    edges = y_edges(mesh)
    grid = (edges[1:] + edges[:-1]) / 2
    sigma = 0.01 * 2.0
    expected = (
        0.5 * gaussian(grid, 0, sigma) + gaussian(grid, 1, sigma) + 0.5 * gaussian(grid, 2, sigma)
    ) / 2
    shown = cells(mesh, (grid.size, 2))
    np.testing.assert_allclose(shown[:, 0], expected, rtol=1e-9)


def test_density_refusals_name_the_density_operators(tmp_path):
    tr = open_trace(rich_trace(tmp_path / "r.h5"))
    with pytest.raises(
        ValueError, match=r"not a spectral density; pass one of \['density.generator'\]"
    ):
        plot.density_figure(tr, "jacobian")
    with pytest.raises(ValueError, match="has no operator 'density.critic'"):
        plot.density_figure(tr, "density.critic")


# --------------------------------------------------------------------------- shares


def shares_trace(path, eigenvalues, shares, overlap):
    records = []
    for step, (eig, share, ov) in enumerate(zip(eigenvalues, shares, overlap)):
        scalars = {**jacobian_scalars(eig), "subspace_overlap": ov}
        arrays = {
            "shares": share,
            "principal_cosines": np.ones(len(eig)),
            "player_shares": share[:, :2],
        }
        records.append(
            probe(step * 5, {"jacobian": op_record("jacobian", "jacobian", eig, scalars, arrays)})
        )
    return open_trace(write(path, {"jacobian": jacobian_spec(shares=True)}, records))


def test_share_maps_show_the_leading_and_the_fastest_rotating_eigenvector(tmp_path):
    rng = np.random.default_rng(1)
    eigenvalues = [
        np.array([3.0, 1 + 2j, 1 - 2j, 0.5]),  # fastest rotation: column 1
        np.array([3.0, 0.2, 1 + 0.5j, 1 - 0.5j]),  # column 2
        np.array([3.0, 2.0, 1.0, 0.5]),  # all real: no rotation
    ]
    shares = [rng.dirichlet(np.ones(len(TENSORS)), size=4) for _ in eigenvalues]
    tr = shares_trace(tmp_path / "s.h5", eigenvalues, shares, [np.nan, 0.8, 0.4])
    fig = plot.shares_figure(tr)
    maps = [c for ax in fig.axes[:2] for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(maps) == 2
    leading = cells(maps[0], (len(TENSORS), 3))
    np.testing.assert_allclose(leading, np.stack([s[0] for s in shares], axis=1))
    rotation = cells(maps[1], (len(TENSORS), 3))
    np.testing.assert_allclose(rotation[:, 0], shares[0][1])
    np.testing.assert_allclose(rotation[:, 1], shares[1][2])
    assert np.isnan(rotation[:, 2]).all()
    assert maps[0].norm.vmin == 0 and maps[0].norm.vmax == 1
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == TENSORS
    overlap = next(ax for ax in fig.axes if ax.get_ylabel() == "subspace overlap")
    np.testing.assert_array_equal(ydata(overlap.get_lines()[0]), [np.nan, 0.8, 0.4])
    second = plot.shares_figure(tr, eigen=3)
    column = cells(second.axes[0].collections[0], (len(TENSORS), 3))
    np.testing.assert_allclose(column, np.stack([s[3] for s in shares], axis=1))
    with pytest.raises(ValueError, match="eigen must be in 0..3"):
        plot.shares_figure(tr, eigen=4)


def test_operators_without_shares_are_refused_and_skipped(tmp_path):
    tr = open_trace(rich_trace(tmp_path / "r.h5"))
    with pytest.raises(
        ValueError,
        match=r"no shares; probe with shares=True \(operators with shares: \['jacobian'\]\)",
    ):
        plot.shares_figure(tr, "generator")
    written = plot.plot_trace(tr, tmp_path / "out", gif=False)
    assert [p.name for p in written] == [
        "spectrum.png",
        "evolution.png",
        "scalars.png",
        "dynamics.png",
        "density.generator.png",
        "shares.png",
    ]


def test_a_trace_without_analyses_writes_no_analysis_figure(tmp_path):
    eig = np.array([1 + 1j, 1 - 1j])
    rec = op_record("jacobian", "jacobian", eig, jacobian_scalars(eig))
    tr = open_trace(
        write(tmp_path / "p.h5", {"jacobian": jacobian_spec()}, [probe(0, {"jacobian": rec})])
    )
    written = plot.plot_trace(tr, tmp_path / "out", gif=False)
    assert [p.name for p in written] == ["spectrum.png", "evolution.png", "scalars.png"]


def test_the_analyses_figures_never_import_torch(tmp_path):
    path = rich_trace(tmp_path / "r.h5", batches=2)
    code = textwrap.dedent(f"""
        import sys
        from specdiag.plot import plot_trace
        written = plot_trace({str(path)!r}, {str(tmp_path / "out")!r}, gif=False, style="paper")
        assert "torch" not in sys.modules, "torch was imported"
        print(" ".join(p.name for p in written))
    """)
    env = {**os.environ, "MPLBACKEND": "module://no_such_backend"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "density.generator.png" in out.stdout and "shares.png" in out.stdout
    assert "batch_spread.png" in out.stdout
