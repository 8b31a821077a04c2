r"""Negative momentum (Gidel et al., 2019) on the bilinear game min_x max_y x·y.

The game: L_x = xy, L_y = −xy (scalars), v = (y, −x), J = [[0, 1], [−1, 0]], eig J = ±i.

Alternating heavy-ball, x first, state (x_t, y_t, x_{t−1}, y_{t−1}):

    x_{t+1} = (1 + β)x_t − βx_{t−1} − η v_x(x_t, y_t)     = (1 + β)x_t − βx_{t−1} − ηy_t,
    y_{t+1} = (1 + β)y_t − βy_{t−1} − η v_y(x_{t+1}, y_t) = (1 + β)y_t − βy_{t−1} + ηx_{t+1}
            = η(1 + β)x_t + (1 + β − η²)y_t − ηβx_{t−1} − βy_{t−1},

so the step is linear with matrix

    ∂T = [[ 1 + β,      −η,         −β,   0 ],
          [ η(1 + β),   1 + β − η², −ηβ,  −β ],
          [ 1,          0,          0,    0 ],
          [ 0,          1,          0,    0 ]].

Simultaneous heavy-ball evaluates v at (x_t, y_t) for both players:
∂T = [[(1 + β)I − ηJ, −βI], [I, 0]], whose eigenvalues are the roots of
μ² − (1 + β − ηλ)μ + β for λ = ±i (specdiag.stability).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag import toys
from specdiag.stability import update_radius

ETAS = (0.1, 0.5, 1.0)
BETAS = np.linspace(-1.0, 1.0, 201)  # the matrix-free scan, step 0.01
FINE = np.linspace(-1.0, 1.0, 20001)  # the dense scan for the minimiser, step 1e-4


@functools.lru_cache(maxsize=None)
def jacobian() -> sd.GameJacobian:
    toy = toys.bilinear_game(A=torch.tensor([[1.0]], dtype=torch.float64))
    return sd.GameJacobian(toy.game)


def alternating_reference(eta: float, beta: np.ndarray) -> np.ndarray:
    """The 4×4 matrices of the module docstring, one per β (shape (len(β), 4, 4))."""
    b = np.asarray(beta, dtype=float).reshape(-1)
    out = np.zeros((b.size, 4, 4))
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = 1 + b, -eta, -b
    out[:, 1, 0], out[:, 1, 1], out[:, 1, 2], out[:, 1, 3] = (
        eta * (1 + b),
        1 + b - eta**2,
        -eta * b,
        -b,
    )
    out[:, 2, 0] = out[:, 3, 1] = 1
    return out


def operator_matrix(method: str, eta: float, beta: float) -> np.ndarray:
    T = sd.update_operator(jacobian(), method, eta, beta=float(beta))
    eye = torch.eye(4, dtype=torch.float64)
    return torch.stack([T.matvec(e) for e in eye], dim=1).numpy()


def radius(matrices: np.ndarray) -> np.ndarray:
    return np.abs(np.linalg.eigvals(matrices)).max(axis=-1)


def minimiser(eta: float) -> tuple[float, float]:
    """argmin_β ρ on the fine grid, then on a grid of step 1e-7 around it."""
    k = int(np.argmin(radius(alternating_reference(eta, FINE))))
    local = np.linspace(FINE[k] - 2e-4, FINE[k] + 2e-4, 4001)
    r = radius(alternating_reference(eta, local))
    return float(local[np.argmin(r)]), float(r.min())


def test_reference_matrix_is_the_update_equations():
    gen = np.random.default_rng(0)
    for eta, beta in [(0.5, -0.3), (1.0, 0.4)]:
        x, y, x_prev, y_prev = gen.standard_normal(4)
        x_new = (1 + beta) * x - beta * x_prev - eta * y  # v_x = y
        y_new = (1 + beta) * y - beta * y_prev - eta * (-x_new)  # v_y = −x at (x_new, y)
        step = alternating_reference(eta, np.array([beta]))[0] @ [x, y, x_prev, y_prev]
        np.testing.assert_allclose(step, [x_new, y_new, x, y], rtol=1e-14)


@pytest.mark.parametrize("eta", ETAS)
def test_alternating_operator_equals_the_hand_derived_matrix(eta):
    ref = alternating_reference(eta, BETAS)
    got = np.stack([operator_matrix("alternating_momentum", eta, b) for b in BETAS])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(radius(got), radius(ref), rtol=1e-12)


@pytest.mark.parametrize("eta", ETAS)
def test_negative_momentum_minimises_the_radius_and_contracts(eta):
    beta_star, rho_star = minimiser(eta)
    assert -1 < beta_star < 0 and rho_star < 1
    # the matrix-free operator at the minimiser contracts too, by the same factor
    rho_op = radius(operator_matrix("alternating_momentum", eta, beta_star))
    assert rho_op == pytest.approx(rho_star, rel=1e-12)
    assert rho_op == pytest.approx(
        sd.spectral_radius(
            sd.update_operator(jacobian(), "alternating_momentum", eta, beta=beta_star)
        ),
        rel=1e-10,
    )
    # the minimiser of the coarse matrix-free scan is within its grid step of it
    scan = radius(np.stack([operator_matrix("alternating_momentum", eta, b) for b in BETAS]))
    assert abs(BETAS[np.argmin(scan)] - beta_star) <= 0.01
    assert scan.min() >= rho_star - 1e-12
    # alternating GD (β = 0) cycles: |μ| = 1; positive momentum diverges
    assert radius(alternating_reference(eta, np.array([0.0])))[0] == pytest.approx(1, abs=1e-12)
    assert np.all(scan[BETAS > 0.005] > 1)


@pytest.mark.parametrize("eta", ETAS)
def test_simultaneous_momentum_never_contracts(eta):
    rho_op = np.array([radius(operator_matrix("momentum", eta, b)) for b in BETAS])
    lam = np.array([1j, -1j])
    closed = np.array([update_radius(lam, "momentum", eta, beta=float(b)).max() for b in BETAS])
    np.testing.assert_allclose(rho_op, closed, rtol=1e-12)
    assert np.all(rho_op >= 1 - 1e-12)
    assert np.all(rho_op[1:-1] > 1)  # strictly inside (−1, 1)
