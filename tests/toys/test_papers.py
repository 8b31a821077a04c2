"""Toys from the papers against their closed forms: the Dirac-GAN with instance noise.

Mescheder, Geiger and Nowozin (2018) state, in the ascent convention, the eigenvalues
λ = f″(0)σ² ± √(f″(0)²σ⁴ − f′(0)²) at the equilibrium of the Dirac-GAN with instance noise
σ; specdiag's J (descent) is minus theirs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

import specdiag as sd
from specdiag import toys
from specdiag.toys.dirac import QUADRATURE_NODES

F_PRIME = {"standard": 0.5, "wgan": 1.0}
F_SECOND = {"standard": -0.25, "wgan": 0.0}  # logsigmoid''(0) = −σ(0)(1 − σ(0))
F64 = torch.float64


def dense(op: sd.LinearOperator) -> np.ndarray:
    eye = torch.eye(op.shape[0], dtype=op.dtype)
    return torch.stack([op.matvec(e) for e in eye], dim=1).numpy()


def multiset(values) -> np.ndarray:
    v = np.asarray(values, dtype=complex)
    return v[np.lexsort((np.round(v.imag, 6), np.round(v.real, 6)))]


def ascent(loss: str, sigma: float) -> np.ndarray:
    """The paper's eigenvalues (ascent convention)."""
    a, b = F_PRIME[loss], F_SECOND[loss]
    s = np.sqrt(complex(b * b * sigma**4 - a * a))
    return np.array([b * sigma**2 + s, b * sigma**2 - s])


@pytest.mark.parametrize("loss", ["standard", "wgan"])
@pytest.mark.parametrize("sigma", [0.3, 1.0, math.sqrt(2), 1.7, 3.0])
def test_instance_noise_eigenvalues_are_minus_the_papers(loss, sigma):
    toy = toys.dirac_gan(loss=loss, instance_noise=sigma)
    J = sd.GameJacobian(toy.game)
    a, b = F_PRIME[loss], F_SECOND[loss]
    np.testing.assert_allclose(J.field.value.numpy(), 0, atol=1e-16)
    expected_J = np.array([[0.0, a], [-a, -2 * b * sigma**2]])
    np.testing.assert_allclose(dense(J), expected_J, rtol=0, atol=1e-14)
    closed = np.array(toys.dirac_gan_eigenvalues(loss, instance_noise=sigma))
    np.testing.assert_allclose(multiset(closed), multiset(-ascent(loss, sigma)), atol=1e-12)
    # a Jordan block at σ = √2 (standard): eigenvalues only to about sqrt(eps)
    atol = 1e-6 if loss == "standard" and sigma == math.sqrt(2) else 1e-10
    got_dense = np.linalg.eigvals(dense(J))
    got_eigs = sd.eigs(sd.GameJacobian(toy.game), k=2).eigenvalues.numpy()
    for got in (got_dense, got_eigs):
        np.testing.assert_allclose(multiset(got), multiset(closed), atol=atol)
    assert toy.equilibrium_eigenvalues() == tuple(closed)
    if loss == "wgan":
        np.testing.assert_allclose(multiset(closed), [-1j, 1j], atol=1e-15)


def test_standard_loss_has_a_double_eigenvalue_at_sqrt2():
    below, at, above = (
        toys.dirac_gan_eigenvalues("standard", instance_noise=s) for s in (1.4, math.sqrt(2), 1.43)
    )
    assert all(abs(z.imag) > 1e-3 for z in below)  # damped rotation
    assert all(z.imag == 0 for z in above) and abs(above[0] - above[1]) > 0.05  # two real
    assert all(abs(z - 0.5) < 1e-7 for z in at)  # 1/2, twice (to sqrt(eps))
    toy = toys.dirac_gan(loss="standard", instance_noise=math.sqrt(2))
    M = dense(sd.GameJacobian(toy.game))
    assert np.linalg.matrix_rank(M - 0.5 * np.eye(2), tol=1e-12) == 1  # defective


@pytest.mark.parametrize("loss", ["standard", "wgan"])
def test_r1_critical_weight_gives_a_double_eigenvalue(loss):
    a = F_PRIME[loss]
    toy = toys.dirac_gan(loss=loss, r1=2 * a)
    assert toys.dirac_gan_eigenvalues(loss, r1=2 * a) == (complex(a), complex(a))
    M = dense(sd.GameJacobian(toy.game))
    np.testing.assert_allclose(M, [[0, a], [-a, 2 * a]], atol=1e-15)
    np.testing.assert_allclose(np.linalg.eigvals(M), [a, a], atol=1e-6)
    np.testing.assert_allclose(
        sd.eigs(sd.GameJacobian(toy.game), k=2).eigenvalues, [a, a], atol=1e-6
    )
    assert np.linalg.matrix_rank(M - a * np.eye(2), tol=1e-12) == 1


@pytest.mark.parametrize("loss", ["standard", "wgan"])
def test_instance_noise_with_r1_and_consensus_is_j_plus_c_jtj(loss):
    a, b, r1, c, sigma = F_PRIME[loss], F_SECOND[loss], 0.3, 0.8, 0.9
    J = np.array([[0.0, a], [-a, r1 - 2 * b * sigma**2]])
    expected = np.linalg.eigvals(J + c * J.T @ J)
    toy = toys.dirac_gan(loss=loss, r1=r1, consensus=c, instance_noise=sigma)
    got = np.linalg.eigvals(dense(sd.GameJacobian(toy.game)))
    np.testing.assert_allclose(multiset(got), multiset(expected), atol=1e-12)
    closed = toys.dirac_gan_eigenvalues(loss, r1=r1, consensus=c, instance_noise=sigma)
    np.testing.assert_allclose(multiset(closed), multiset(expected), atol=1e-12)


def gaussian_mean(g, sigma: float) -> float:
    density = lambda e: math.exp(-0.5 * (e / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))  # noqa: E731
    value, err = integrate.quad(
        lambda e: g(e) * density(e), -12 * sigma, 12 * sigma, epsabs=1e-13, epsrel=1e-13, limit=200
    )
    assert err < 1e-11
    return value


def test_quadrature_matches_adaptive_integration_away_from_the_equilibrium():
    theta, psi, sigma = 0.7, -0.4, 0.8
    logsig = lambda t: -math.log1p(math.exp(-t)) if t > -30 else t  # noqa: E731
    dlogsig = lambda t: 1 / (1 + math.exp(t))  # noqa: E731
    L = gaussian_mean(lambda e: logsig(psi * (theta + e)) + logsig(-psi * e), sigma)
    dtheta = gaussian_mean(lambda e: dlogsig(psi * (theta + e)) * psi, sigma)
    dpsi = gaussian_mean(
        lambda e: dlogsig(psi * (theta + e)) * (theta + e) - dlogsig(-psi * e) * e, sigma
    )
    toy = toys.dirac_gan(theta=theta, psi=psi, instance_noise=sigma)
    losses = {k: v.detach() for k, v in toy.losses().items()}
    assert float(losses["generator"]) == pytest.approx(L, abs=1e-12)
    assert float(losses["discriminator"]) == pytest.approx(-L, abs=1e-12)
    v = toy.game.vector_field(None)
    np.testing.assert_allclose(v.numpy(), [dtheta, -dpsi], atol=1e-12)
    assert QUADRATURE_NODES >= 32


def test_no_instance_noise_is_the_plain_dirac_gan():
    toy = toys.dirac_gan(theta=0.3, psi=-1.2)
    assert toy.instance_noise == 0.0
    theta, psi = torch.tensor(0.3, dtype=F64), torch.tensor(-1.2, dtype=F64)
    value = torch.nn.functional.logsigmoid(psi * theta) + torch.nn.functional.logsigmoid(
        torch.zeros((), dtype=F64)
    )
    assert torch.equal(toy.losses()["generator"].detach(), value)


def test_instance_noise_is_checked():
    with pytest.raises(ValueError, match="instance_noise"):
        toys.dirac_gan(instance_noise=-0.1)
    with pytest.raises(ValueError, match="instance_noise"):
        toys.dirac_gan_eigenvalues("standard", instance_noise=float("inf"))
    assert "instance_noise=0.5" in repr(toys.dirac_gan(instance_noise=0.5))
