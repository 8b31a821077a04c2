"""spectral_density against dense eigenvalues: matrices with known spectra, GAN Hessians."""

from __future__ import annotations

import functools
import random
import warnings

import numpy as np
import pytest
import torch
from games import gan_game
from scipy.integrate import cumulative_trapezoid, trapezoid

import specdiag as sd
from specdiag.linalg.density import DEFAULT_SIGMA_FRACTION, SpectralDensity, spectral_density
from specdiag.linalg.operator import MatrixOperator
from specdiag.linalg.parts import SymmetricPart

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def wasserstein1(result: SpectralDensity, eigenvalues: np.ndarray) -> float:
    r"""W1 = ∫ |F_est - F_true| dx, exactly, for F_est the cumulative trapezoid integral of
    the density (linear between grid points, 0 before the grid and 1 after it) and F_true
    the empirical distribution function of the eigenvalues.
    """
    lam = np.sort(eigenvalues)
    cumulative = cumulative_trapezoid(result.density, result.grid, initial=0.0)
    x = np.union1d(result.grid, lam)
    estimate = np.interp(x, result.grid, cumulative, left=0.0, right=1.0)
    true = np.searchsorted(lam, x[:-1], side="right") / len(lam)  # constant on [x_k, x_k+1)
    d0, d1, h = estimate[:-1] - true, estimate[1:] - true, np.diff(x)
    same_sign = d0 * d1 >= 0
    total = np.abs(d0) + np.abs(d1)
    crossing = np.divide(d0**2 + d1**2, 2 * total, out=np.zeros_like(h), where=total > 0)
    return float(np.sum(h * np.where(same_sign, total / 2, crossing)))


def spectrum(kind: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    if kind == "uniform":
        return np.linspace(-1.0, 3.0, n)
    if kind == "clusters_and_outliers":
        half = (n - 3) // 2
        clusters = [rng.normal(0.0, 0.01, half), rng.normal(1.0, 0.01, n - 3 - half)]
        return np.concatenate([*clusters, [-3.0, 5.0, 8.0]])
    if kind == "gan_hessian":  # a bulk at 0 of both signs, a few large outliers, one negative
        k = max(3, n // 100)
        return np.concatenate([rng.normal(0.0, 0.02, n - k - 1), rng.uniform(1, 20, k), [-2.0]])
    if kind == "semicircle":
        return 2 * np.sqrt(rng.uniform(size=n)) * np.cos(np.pi * rng.uniform(size=n)) - 0.5
    raise ValueError(kind)


def numpy_global_state() -> tuple:
    state = np.random.get_state(legacy=False)  # noqa: NPY002 (it must stay untouched)
    assert isinstance(state, dict)
    return state["state"]["key"].tobytes(), state["state"]["pos"], state["gauss"]


@functools.lru_cache(maxsize=None)
def rotation(n: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(1000 + n).normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def known(kind: str, n: int, dtype: torch.dtype = torch.float64, device: str = "cpu"):
    lam = spectrum(kind, n)
    q = rotation(n)
    matrix = torch.from_numpy((q * lam) @ q.T).to(device, dtype)
    return MatrixOperator(matrix), lam


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [50, 400, 2000])
@pytest.mark.parametrize("kind", ["uniform", "clusters_and_outliers", "gan_hessian", "semicircle"])
def test_default_settings_within_two_percent_of_the_range_in_w1(kind, n, dtype) -> None:
    op, lam = known(kind, n, dtype)
    result = spectral_density(op)
    assert wasserstein1(result, lam) <= 0.02 * (lam.max() - lam.min())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("player", ["generator", "discriminator"])
def test_player_hessian_of_a_gan_within_two_percent_in_w1(player, dtype) -> None:
    small = gan_game(hidden=64, dtype=dtype)  # generator 386, discriminator 257 parameters
    block = small.game.player_slice(player)
    hessian = small.dense_jacobian()[block, block].double().numpy()
    lam = np.linalg.eigvalsh((hessian + hessian.T) / 2)
    op = sd.PlayerHessian(small.game, player)
    assert op.shape[0] > 80  # the stochastic path, not the exact one
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Hessian is symmetric: no warning
        result = spectral_density(op)
    assert wasserstein1(result, lam) <= 0.02 * (lam.max() - lam.min())
    assert result.n_matvec == op.n_matvec == 10 * 80


@pytest.mark.parametrize("device", DEVICES)
def test_weights_sum_to_one_density_integrates_to_one_and_products_are_counted(device) -> None:
    op, lam = known("semicircle", 300, torch.float32, device)
    result = spectral_density(op, n_vectors=4, n_steps=30, n_grid=300)
    assert result.nodes.shape == result.weights.shape == (4, 30)
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, atol=1e-12)
    assert trapezoid(result.density, result.grid) == pytest.approx(1.0, abs=1e-12)
    assert result.n_matvec == op.n_matvec == 4 * 30
    assert np.all(result.nodes >= lam.min() - 1e-4) and np.all(result.nodes <= lam.max() + 1e-4)
    assert result.density.dtype == result.grid.dtype == np.float64
    assert result.grid.shape == result.density.shape == (300,)


def test_default_grid_and_sigma() -> None:
    op, _ = known("uniform", 200)
    result = spectral_density(op, n_vectors=2, n_steps=20)
    lo, hi = result.nodes.min(), result.nodes.max()
    assert result.sigma == pytest.approx(DEFAULT_SIGMA_FRACTION * (hi - lo))
    assert len(result.grid) == 500
    assert result.grid[0] == pytest.approx(lo - 3 * result.sigma)
    assert result.grid[-1] == pytest.approx(hi + 3 * result.sigma)


def test_given_grid_and_sigma_are_used_and_the_density_is_normalised_on_them() -> None:
    op, _ = known("uniform", 200)
    grid = np.linspace(-2.0, 4.0, 101)
    result = spectral_density(op, n_vectors=2, n_steps=20, grid=grid, sigma=0.1)
    np.testing.assert_array_equal(result.grid, grid)
    assert result.sigma == 0.1
    assert trapezoid(result.density, grid) == pytest.approx(1.0, abs=1e-12)
    # the same nodes, broadened by hand
    z = (grid[:, None, None] - result.nodes[None]) / 0.1
    by_hand = (np.exp(-0.5 * z**2) * result.weights[None]).sum(axis=(1, 2))
    np.testing.assert_allclose(result.density, by_hand / trapezoid(by_hand, grid), rtol=1e-12)


def test_same_seed_same_result_other_seed_other_result_global_streams_untouched() -> None:
    op, _ = known("gan_hessian", 300)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    np_state = numpy_global_state()
    a, b = spectral_density(op, seed=3), spectral_density(op, seed=3)
    c = spectral_density(op, seed=4)
    for name in ("grid", "density", "nodes", "weights"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.weights, c.weights)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    assert numpy_global_state() == np_state


@pytest.mark.parametrize("n_steps", [60, 61, 200])
def test_n_steps_at_least_n_gives_the_exact_eigenvalues(n_steps) -> None:
    op, lam = known("clusters_and_outliers", 60)
    result = spectral_density(op, n_steps=n_steps)
    np.testing.assert_allclose(result.nodes[0], np.sort(lam), atol=1e-12)
    np.testing.assert_allclose(result.weights, 1 / 60, rtol=1e-15)
    assert result.n_matvec == op.n_matvec == 60
    midpoints = (np.sort(lam)[1:] + np.sort(lam)[:-1]) / 2
    np.testing.assert_allclose(result.cdf(midpoints), np.arange(1, 60) / 60, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_run_stops_at_an_invariant_subspace_with_exact_nodes(dtype) -> None:
    distinct = np.array([-1.0, 0.5, 2.0, 3.0, 7.0])
    lam = np.repeat(distinct, 80)  # n = 400, five distinct eigenvalues
    q = rotation(400)
    op = MatrixOperator(torch.from_numpy((q * lam) @ q.T).to(dtype))
    result = spectral_density(op, n_vectors=3, n_steps=40)
    np.testing.assert_array_equal(result.steps, [5, 5, 5])
    assert result.n_matvec == op.n_matvec == 15
    atol = 1e-10 if dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(result.nodes, np.tile(distinct, (3, 1)), atol=atol)
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, atol=1e-12)


class ReturnsItsInput:
    """The identity, returning the very tensor it was given (a view of the basis)."""

    shape, dtype, device = (100, 100), torch.float32, torch.device("cpu")

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return v


def test_the_identity_breaks_down_at_once_and_gets_a_nonzero_width() -> None:
    result = spectral_density(ReturnsItsInput(), n_vectors=2)
    np.testing.assert_array_equal(result.steps, [1, 1])
    np.testing.assert_allclose(result.nodes, 1.0, rtol=1e-6)
    assert result.sigma == pytest.approx(DEFAULT_SIGMA_FRACTION)  # 1% of |1|: nodes coincide
    assert trapezoid(result.density, result.grid) == pytest.approx(1.0)
    assert result.grid[np.argmax(result.density)] == pytest.approx(1.0, abs=1e-3)


def test_cdf_of_the_node_measure() -> None:
    op, _ = known("gan_hessian", 300)
    result = spectral_density(op, n_vectors=3, n_steps=25)
    nodes, weights = result.nodes.ravel(), result.weights.ravel()
    x = np.linspace(nodes.min() - 1, nodes.max() + 1, 57)
    by_hand = np.array([weights[nodes <= t].sum() / 3 for t in x])
    np.testing.assert_allclose(result.cdf(x), by_hand, atol=1e-12)
    assert result.cdf(nodes.min() - 1) == 0.0 and result.cdf(nodes.max()) == pytest.approx(1.0)
    assert isinstance(result.cdf(0.0), float)


def test_a_tensor_is_accepted_and_repr_says_what_was_done() -> None:
    q = rotation(100)
    result = spectral_density(torch.from_numpy((q * np.arange(100.0)) @ q.T), n_vectors=2)
    text = repr(result)
    assert text.startswith("SpectralDensity(") and "n_matvec=160" in text and "sigma=" in text


def test_a_non_symmetric_operator_gets_a_warning() -> None:
    rng = np.random.default_rng(0)
    op = MatrixOperator(torch.from_numpy(rng.normal(size=(200, 200))))
    with pytest.warns(UserWarning, match="not symmetric"):
        spectral_density(op, n_vectors=1, n_steps=10)
    with pytest.warns(UserWarning, match="not symmetric"):
        spectral_density(torch.from_numpy(rng.normal(size=(9, 9))))  # the exact path


def test_a_game_jacobian_warns_and_its_symmetric_part_does_not() -> None:
    small = gan_game(hidden=64, dtype=torch.float32)  # 643 parameters
    jacobian = sd.GameJacobian(small.game, None)
    with pytest.warns(UserWarning, match="not symmetric"):
        spectral_density(jacobian, n_vectors=1, n_steps=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = spectral_density(SymmetricPart(jacobian), n_vectors=1, n_steps=20)
    J = small.dense_jacobian().double().numpy()
    lam = np.linalg.eigvalsh((J + J.T) / 2)
    assert result.nodes.max() == pytest.approx(lam.max(), rel=1e-3)  # the top Ritz value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_vectors=0), "n_vectors"),
        (dict(n_vectors=2.0), "n_vectors"),
        (dict(n_vectors=True), "n_vectors"),
        (dict(n_steps=0), "n_steps"),
        (dict(n_grid=1), "n_grid"),
        (dict(sigma=0.0), "sigma"),
        (dict(sigma=-1.0), "sigma"),
        (dict(sigma=float("nan")), "sigma"),
        (dict(sigma=float("inf")), "sigma"),
        (dict(grid=[0.0]), "grid"),
        (dict(grid=np.zeros((3, 3))), "grid"),
        (dict(grid=[0.0, 2.0, 1.0]), "grid"),
        (dict(grid=[0.0, float("nan"), 1.0]), "grid"),
        (dict(grid=np.linspace(100.0, 101.0, 50)), "misses the spectrum"),
    ],
)
def test_bad_settings_raise_value_errors_naming_them(kwargs, match) -> None:
    op, _ = known("uniform", 100)
    with pytest.raises(ValueError, match=match):
        spectral_density(op, n_steps=kwargs.pop("n_steps", 10), **kwargs)


def test_bad_operators_and_seeds_raise() -> None:
    with pytest.raises(TypeError, match="lacks"):
        spectral_density(object())
    with pytest.raises(ValueError, match="square"):
        spectral_density(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="dtype"):
        spectral_density(torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="seed"):
        spectral_density(torch.eye(3), seed=1.5)  # type: ignore[arg-type]


def test_cpu_and_cuda_draw_the_same_start_vectors() -> None:
    op, _ = known("semicircle", 200)
    reference = spectral_density(op, n_vectors=2, n_steps=20)
    for device in DEVICES:
        on_device, _ = known("semicircle", 200, device=device)
        result = spectral_density(on_device, n_vectors=2, n_steps=20)
        np.testing.assert_allclose(result.nodes, reference.nodes, atol=1e-10)
        np.testing.assert_allclose(result.weights, reference.weights, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_no_ghost_copies_of_converged_outliers(dtype) -> None:
    # Without reorthogonalisation, 80 steps on this spectrum repeat the outliers many times.
    outliers = np.array([-50.0, 100.0, 300.0, 1000.0])
    lam = np.concatenate([np.linspace(-1.0, 1.0, 1996), outliers])
    q = rotation(2000)
    op = MatrixOperator(torch.from_numpy((q * lam) @ q.T).to(dtype))
    result = spectral_density(op, n_vectors=3)
    for nodes in result.nodes:
        for outlier in outliers:
            assert np.sum(np.abs(nodes - outlier) < 1.0) == 1, (outlier, nodes[-6:])
        assert np.all((nodes > -1.0 - 1e-3) | np.isin(np.round(nodes), outliers))
