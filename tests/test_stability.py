"""Closed-form update eigenvalues and stable step sizes (specdiag.stability, numpy only)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from specdiag.stability import METHODS, max_stable_lr, update_eigenvalues, update_radius

RNG = np.random.default_rng(0)
LAMBDAS = RNG.normal(size=12) + 1j * RNG.normal(size=12)


def polynomial(method: str, z: complex, beta: float) -> list[complex]:
    """Coefficients of the polynomial in μ whose roots are the update eigenvalues."""
    return {
        "gd": [1, -(1 - z)],
        "extragradient": [1, -(1 - z + z * z)],
        "optimistic": [1, -(1 - 2 * z), -z],
        "momentum": [1, -(1 + beta - z), beta],
    }[method]


@pytest.mark.parametrize("method", METHODS)
def test_update_eigenvalues_are_the_roots_of_the_update_polynomial(method):
    beta = -0.4 if method == "momentum" else 0.0
    mu = update_eigenvalues(LAMBDAS, method, 0.3, beta=beta)
    assert mu.shape == (12, 1 if method in ("gd", "extragradient") else 2)
    for lam, roots in zip(LAMBDAS, mu):
        expected = np.roots(polynomial(method, 0.3 * lam, beta))
        assert np.allclose(np.sort_complex(roots), np.sort_complex(expected), atol=1e-12)
    radius = update_radius(LAMBDAS, method, 0.3, beta=beta)
    assert np.allclose(radius, np.abs(mu).max(axis=-1))


def test_radius_is_vectorised_over_a_grid_and_keeps_nan():
    grid = np.linspace(-1, 1, 5)[:, None] + 1j * np.linspace(-2, 2, 7)[None, :]
    assert update_radius(grid, "optimistic", 0.1).shape == (5, 7)
    out = update_radius([np.nan, 1j], "gd", 0.5)
    assert np.isnan(out[0]) and out[1] == pytest.approx(np.sqrt(1.25))


def test_bilinear_radii():
    # eigenvalues ±i: GD spirals out, extragradient contracts
    assert update_radius([1j, -1j], "gd", 0.5) == pytest.approx([np.sqrt(1.25)] * 2)
    assert update_radius([1j], "extragradient", 0.5)[0] == pytest.approx(np.sqrt(1 - 0.25 + 0.0625))


def test_gd_bound_is_closed_form():
    lam = np.array([1 + 1j, 1 - 1j, 0.1 + 3j, 2.0, np.nan])
    bound = max_stable_lr(lam)
    assert bound.exists and bound.method == "gd"
    assert bound.lr == pytest.approx(2 * 0.1 / (0.01 + 9))
    assert bound.limiting_eigenvalue == pytest.approx(0.1 + 3j)
    assert bound.intervals == ((0.0, bound.lr),)
    assert (update_radius(lam[:-1], "gd", 0.999 * bound.lr) < 1).all()
    assert (update_radius(lam[:-1], "gd", 1.001 * bound.lr) > 1).any()


@pytest.mark.parametrize("lam", [[1j, -1j], [0.5, -0.2 + 1j], [1.0, 0.0]])
def test_gd_has_no_stable_step_size_when_some_real_part_is_not_positive(lam):
    bound = max_stable_lr(lam, "gd")
    assert not bound.exists and bound.lr == 0.0 and bound.intervals == ()
    assert "no stable step size" in str(bound)
    assert "Re λ <= 0" in bound.reason or "λ = 0" in bound.reason
    assert bound.limiting_eigenvalue is not None and bound.limiting_eigenvalue.real <= 0


@pytest.mark.parametrize(
    "method, beta",
    [("extragradient", 0.0), ("optimistic", 0.0), ("momentum", 0.5), ("momentum", -0.3)],
)
def test_numerical_bound_brackets_the_edge(method, beta):
    lam = np.concatenate([np.abs(LAMBDAS.real) + 1j * LAMBDAS.imag, [3.0, 0.2 + 2j]])
    bound = max_stable_lr(lam, method, beta=beta)
    assert bound.exists and bound.intervals[0] == (0.0, bound.lr)
    for eta in np.geomspace(1e-6, 0.999, 30) * bound.lr:
        assert (update_radius(lam, method, eta, beta=beta) < 1).all()
    assert (update_radius(lam, method, 1.001 * bound.lr, beta=beta) > 1).any()
    assert update_radius(bound.limiting_eigenvalue, method, bound.lr, beta=beta) == pytest.approx(
        1, abs=1e-9
    )


def test_extragradient_and_optimistic_converge_on_the_bilinear_game():
    assert max_stable_lr([2j, -2j], "extragradient").lr == pytest.approx(0.5, rel=1e-12)
    assert max_stable_lr([2j, -2j], "optimistic").lr == pytest.approx(0.5 / np.sqrt(3), rel=1e-9)
    assert not max_stable_lr([2j, -2j], "momentum", beta=-0.5).exists


def test_stable_set_away_from_zero_is_reported_with_its_intervals():
    bound = max_stable_lr([-0.05 + 1j], "extragradient")
    assert not bound.exists and bound.lr == 0.0
    assert "Re λ <= 0" in bound.reason and "stable only for η in" in bound.reason
    ((lo, hi),) = bound.intervals
    assert 0 < lo < hi
    assert update_radius([-0.05 + 1j], "extragradient", (lo + hi) / 2)[0] < 1
    assert update_radius([-0.05 + 1j], "extragradient", lo / 2)[0] > 1


def test_zero_eigenvalue_and_large_momentum_have_no_stable_step_size():
    for method in METHODS:
        bound = max_stable_lr([1.0, 0.0], method)
        assert not bound.exists and "λ = 0" in bound.reason
    assert "|beta|" in max_stable_lr([1.0], "momentum", beta=1.0).reason


def test_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        max_stable_lr([1.0], "adam")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        update_radius([1.0], "gd", 0.0)
    with pytest.raises(ValueError, match="takes no beta"):
        update_radius([1.0], "gd", 0.1, beta=0.5)
    with pytest.raises(ValueError, match="finite eigenvalue"):
        max_stable_lr([np.nan, np.nan])


def test_stability_does_not_import_torch():
    code = "import sys, specdiag.stability; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
