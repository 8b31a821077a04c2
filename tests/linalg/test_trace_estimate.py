"""trace_estimate (Hutch++) against exact traces: a 2,000-parameter GAN and decaying spectra."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch
from games import gan_game

import specdiag as sd
from specdiag.linalg.hutchpp import TraceEstimate, trace_estimate
from specdiag.linalg.operator import MatrixOperator
from specdiag.linalg.parts import SymmetricPart

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@functools.lru_cache(maxsize=None)
def rotation(n: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(2000 + n).normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def decaying(kind: str, n: int = 2000) -> np.ndarray:
    i = np.arange(1, n + 1, dtype=np.float64)
    if kind == "inverse":
        return 1 / i
    if kind == "inverse_square":
        return i**-2.0
    if kind == "alternating":  # indefinite
        return (-1.0) ** i * i**-1.5
    if kind == "outliers_over_a_bulk":  # like a network's Hessian, both signs in the bulk
        rng = np.random.default_rng(n)
        return np.concatenate([rng.uniform(1.0, 20.0, 20), rng.normal(0.0, 0.02, n - 20)])
    raise ValueError(kind)


def matrix_with(lam: np.ndarray, dtype: torch.dtype = torch.float64, device: str = "cpu"):
    q = rotation(len(lam))
    return MatrixOperator(torch.from_numpy((q * lam) @ q.T).to(device, dtype))


@pytest.fixture(scope="module")
def game_2000():
    """A GAN of 2,003 parameters (generator 1,202, discriminator 801) and its dense J."""
    small = gan_game(hidden=200)
    return small, small.dense_jacobian().numpy()


def true_spectrum(game_2000, which: str) -> tuple[object, np.ndarray]:
    small, J = game_2000
    if which == "S":
        return SymmetricPart(sd.GameJacobian(small.game, None)), np.linalg.eigvalsh((J + J.T) / 2)
    block = small.game.player_slice(which)
    H = J[block, block]
    return sd.PlayerHessian(small.game, which), np.linalg.eigvalsh((H + H.T) / 2)


@pytest.mark.parametrize("which", ["S", "generator", "discriminator"])
def test_within_two_percent_of_the_nuclear_norm_on_a_2000_parameter_game(game_2000, which):
    op, lam = true_spectrum(game_2000, which)
    result = trace_estimate(op, 100)
    assert abs(result.value - lam.sum()) <= 0.02 * np.abs(lam).sum()
    assert result.n_matvec == 100


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "kind", ["inverse", "inverse_square", "alternating", "outliers_over_a_bulk"]
)
def test_within_two_percent_of_the_nuclear_norm_on_decaying_spectra(kind, dtype) -> None:
    lam = decaying(kind)
    op = matrix_with(lam, dtype)
    result = trace_estimate(op, 100)
    assert abs(result.value - lam.sum()) <= 0.02 * np.abs(lam).sum()
    assert result.n_matvec == op.n_matvec == 100


def coverage(op, trace: float, seeds: int = 20) -> tuple[int, int]:
    errors, stderrs = [], []
    for seed in range(seeds):
        result = trace_estimate(op, 100, seed=seed)
        errors.append(abs(result.value - trace))
        stderrs.append(result.stderr)
    errors_, stderrs_ = np.array(errors), np.array(stderrs)
    assert np.all(stderrs_ > 0)
    return int(np.sum(errors_ <= 2 * stderrs_)), int(np.sum(errors_ <= 4 * stderrs_))


def test_stderr_covers_the_error_on_a_synthetic_spectrum() -> None:
    lam = decaying("inverse")
    within_2, within_4 = coverage(matrix_with(lam), lam.sum())
    assert within_2 >= 14 and within_4 >= 19  # 95% and ~100% for an exact standard error


def test_stderr_covers_the_error_on_a_game(game_2000) -> None:
    op, lam = true_spectrum(game_2000, "discriminator")
    within_2, within_4 = coverage(op, lam.sum())
    assert within_2 >= 14 and within_4 >= 19


@pytest.mark.parametrize("n_matvec", [100, 101, 102])
def test_exact_when_the_rank_is_at_most_a_third_of_the_budget(n_matvec) -> None:
    rng = np.random.default_rng(n_matvec)
    lam = np.zeros(500)
    lam[:33] = rng.uniform(-5, 10, 33)
    op = matrix_with(lam)
    result = trace_estimate(op, n_matvec)
    assert abs(result.value - lam.sum()) < 1e-8 * np.abs(lam).sum()
    assert result.stderr < 1e-8 * np.abs(lam).sum()
    assert result.n_matvec == op.n_matvec == n_matvec


def test_exact_for_a_low_rank_non_symmetric_matrix_too() -> None:
    rng = np.random.default_rng(5)
    M = rng.normal(size=(400, 20)) @ rng.normal(size=(20, 400))
    result = trace_estimate(torch.from_numpy(M), 90)
    assert abs(result.value - np.trace(M)) < 1e-8 * np.abs(np.linalg.eigvals(M)).sum()


def test_small_operators_are_traced_exactly_with_n_products() -> None:
    lam = decaying("alternating", 60)
    op = matrix_with(lam)
    result = trace_estimate(op, 100)
    assert result.value == pytest.approx(lam.sum(), rel=1e-12)
    assert result.stderr == 0.0 and result.n_matvec == op.n_matvec == 60


def test_same_seed_same_estimate_and_global_streams_untouched() -> None:
    op = matrix_with(decaying("inverse", 500))
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    a, b, c = trace_estimate(op, seed=7), trace_estimate(op, seed=7), trace_estimate(op, seed=8)
    assert (a.value, a.stderr) == (b.value, b.stderr)
    assert a.value != c.value
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == py_state


def test_one_hutchinson_sample_has_no_standard_error() -> None:
    result = trace_estimate(matrix_with(decaying("inverse", 200)), 3)
    assert np.isnan(result.stderr) and result.n_matvec == 3
    assert isinstance(result, TraceEstimate)


@pytest.mark.parametrize("bad", [2, 0, -5, 100.0, True, "100", None])
def test_a_bad_budget_raises(bad) -> None:
    with pytest.raises(ValueError, match="n_matvec"):
        trace_estimate(torch.eye(200), bad)


def test_bad_operators_and_seeds_raise() -> None:
    with pytest.raises(TypeError, match="lacks"):
        trace_estimate(object())
    with pytest.raises(ValueError, match="square"):
        trace_estimate(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="seed"):
        trace_estimate(torch.eye(300), seed="0")  # type: ignore[arg-type]


@pytest.mark.parametrize("device", DEVICES)
def test_every_device_gives_the_cpu_estimate(device) -> None:
    lam = decaying("outliers_over_a_bulk", 800)
    reference = trace_estimate(matrix_with(lam), 60)
    for dtype, rel in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        result = trace_estimate(matrix_with(lam, dtype, device), 60)
        assert result.value == pytest.approx(reference.value, rel=rel)
