"""Symplectic gradient adjustment (Balduzzi et al., 2018) and the four-player rotation.

Ground truth: the four-player game has J = A (antisymmetric, +1 above the diagonal),
det(λI − A) = λ⁴ + 6λ² + 1, eig = ±i(√2 ± 1); SGA's Jacobian A + AᵀA has eigenvalues
(√2 ± 1)² ± i(√2 ± 1). For other games the dense ∂T = I − H(J + λAᵀJ) is built from the
dense Jacobian, and at a stationary point of a nonlinear game (the Dirac-GAN) it is
checked against autograd of the SGA field ξ + λAᵀξ itself.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from games import gan_game

import specdiag as sd
from specdiag import toys
from specdiag.dynamics.sga import SGAUpdate
from specdiag.toys.nplayer import FourPlayerGame, four_player_game

F64 = torch.float64
ROOT2 = math.sqrt(2)


def dense(op: sd.LinearOperator) -> torch.Tensor:
    eye = torch.eye(op.shape[0], dtype=op.dtype)
    return torch.stack([op.matvec(e) for e in eye], dim=1)


def multiset(values) -> np.ndarray:
    v = np.asarray(values, dtype=complex)
    return v[np.lexsort((np.round(v.imag, 8), np.round(v.real, 8)))]


def sga_matrix(J: torch.Tensor, lam: float) -> torch.Tensor:
    A = (J - J.T) / 2
    return J + lam * A.T @ J


# ------------------------------------------------------------------ the four-player game
def test_four_player_field_is_a_w_and_jacobian_is_a():
    toy = four_player_game(seed=3)
    A = torch.tensor([[0, 1, 1, 1], [-1, 0, 1, 1], [-1, -1, 0, 1], [-1, -1, -1, 0]], dtype=F64)
    assert torch.equal(toy.A, A)
    w = torch.stack([t.detach() for t in toy.w])
    torch.testing.assert_close(toy.game.vector_field(None), A @ w, rtol=0, atol=1e-15)
    assert toy.game.player_names == ("w1", "w2", "w3", "w4")
    torch.testing.assert_close(dense(sd.GameJacobian(toy.game)), A, rtol=0, atol=0)
    np.testing.assert_allclose(np.poly(A.numpy()), [1, 0, 6, 0, 1], atol=1e-12)


def test_four_player_spectrum():
    toy = four_player_game()
    expected = np.array([1j, -1j, 1j, -1j]) * np.repeat([ROOT2 + 1, ROOT2 - 1], 2)
    np.testing.assert_allclose(
        multiset(FourPlayerGame.eigenvalues()), multiset(expected), atol=1e-15
    )
    np.testing.assert_allclose(
        multiset(np.linalg.eigvals(toy.A.numpy())), multiset(expected), atol=1e-14
    )
    r = sd.eigs(sd.GameJacobian(toy.game), k=4)
    np.testing.assert_allclose(multiset(r.eigenvalues), multiset(expected), atol=1e-12)


@pytest.mark.parametrize("gamma", [1.0, 0.3])
def test_sga_field_jacobian_spectrum_on_the_four_player_game(gamma):
    toy = four_player_game(seed=1)
    A = toy.A
    mu = np.array([ROOT2 + 1, ROOT2 + 1, ROOT2 - 1, ROOT2 - 1])
    expected = gamma * mu**2 + 1j * mu * np.array([1, -1, 1, -1])
    if gamma == 1.0:  # the docstring's (√2 ± 1)² ± i(√2 ± 1) = 3 ± 2√2 ± i(√2 ± 1)
        np.testing.assert_allclose(expected.real, [3 + 2 * ROOT2] * 2 + [3 - 2 * ROOT2] * 2)
    np.testing.assert_allclose(
        multiset(FourPlayerGame.sga_eigenvalues(gamma)), multiset(expected), atol=1e-14
    )
    M = (A + gamma * A.T @ A).numpy()
    np.testing.assert_allclose(multiset(np.linalg.eigvals(M)), multiset(expected), atol=1e-12)
    # the update operator at lr = 1 is I − M (exact everywhere: the field is linear)
    T = SGAUpdate(sd.GameJacobian(toy.game), 1.0, gamma)
    torch.testing.assert_close(dense(T), torch.eye(4, dtype=F64) - A - gamma * A.T @ A)
    r = sd.eigs(T, k=4)
    np.testing.assert_allclose(multiset(1 - r.eigenvalues.numpy()), multiset(expected), atol=1e-12)
    # SGA turns the rotation into a contraction: Re > 0 everywhere
    assert np.all(np.linalg.eigvals(M).real > 0.1 * gamma)


# ------------------------------------------------------------------ a nonlinear game
@functools.lru_cache(maxsize=None)
def small_gan():
    sg = gan_game(loss="nonsaturating", hidden=4)
    return sg, sg.dense_jacobian()


@pytest.mark.parametrize("lr", [0.3, {"generator": 0.2, "discriminator": 0.05}])
def test_sga_update_matches_the_dense_matrix(lr):
    sg, Jd = small_gan()
    J = sd.GameJacobian(sg.game)
    gen = torch.Generator().manual_seed(0)
    P = 0.5 + torch.rand(J.shape[0], generator=gen, dtype=F64)
    T = SGAUpdate(J, lr, 0.7, preconditioner=P)
    h = torch.empty(J.shape[0], dtype=F64)
    for p in sg.game.player_names:
        h[sg.game.player_slice(p)] = lr if isinstance(lr, float) else lr[p]
    expected = torch.eye(J.shape[0], dtype=F64) - torch.diag(h / P) @ sga_matrix(Jd, 0.7)
    u = torch.randn(J.shape[0], generator=gen, dtype=F64)
    before = J.n_products
    torch.testing.assert_close(T.matvec(u), expected @ u, rtol=1e-10, atol=1e-12)
    assert J.n_products - before == 3
    torch.testing.assert_close(T.rmatvec(u), expected.T @ u, rtol=1e-10, atol=1e-12)
    assert J.n_products - before == 6 and T.method == "sga"
    assert T.sign == 1.0 and T.weight == 0.7 and T.alignment is None


def test_sga_at_a_stationary_point_is_the_jacobian_of_the_sga_field():
    """Dirac-GAN with R1 at (0, 0): autograd of ξ + λAᵀξ, A from autograd of ξ."""
    r1, lam = 0.3, 0.8

    def xi(x: torch.Tensor) -> torch.Tensor:
        theta, psi = x[0], x[1]
        d = torch.sigmoid(-theta * psi)  # f'(t) for f = logsigmoid
        return torch.stack([d * psi, -d * theta + r1 * psi])

    def sga_field(x: torch.Tensor) -> torch.Tensor:
        Jx = torch.autograd.functional.jacobian(xi, x, create_graph=True)
        A = (Jx - Jx.T) / 2
        return xi(x) + lam * A.T @ xi(x)

    exact = torch.autograd.functional.jacobian(sga_field, torch.zeros(2, dtype=F64))
    toy = toys.dirac_gan(loss="standard", r1=r1)
    for align in (False, True):
        T = SGAUpdate(sd.GameJacobian(toy.game), 1.0, lam, align=align)
        torch.testing.assert_close(torch.eye(2, dtype=F64) - dense(T), exact, atol=1e-14, rtol=0)
        assert T.sign == 1.0  # at a stationary point the rule gives sign(ε) = +1
    assert T.alignment == pytest.approx(0.1, abs=1e-15)


# ------------------------------------------------------------------ the sign rule
def linear_game(a: float, b: float, point: tuple[float, float]) -> sd.Game:
    """v = Jθ, J = [[a, −b], [b, a]]."""
    x = torch.tensor(point[0], dtype=F64, requires_grad=True)
    y = torch.tensor(point[1], dtype=F64, requires_grad=True)
    return sd.Game(
        {"x": [x], "y": [y]},
        lambda _b: {"x": a * x**2 / 2 - b * x * y, "y": a * y**2 / 2 + b * x * y},
    )


@pytest.mark.parametrize("a", [-1.0, 1.0, -0.01])
def test_alignment_sign_rule_by_hand(a):
    b, theta, gamma, eps = 1.0, np.array([1.0, 1.0]), 0.5, 0.1
    Jn = np.array([[a, -b], [b, a]])
    xi = Jn @ theta
    grad_h = Jn.T @ xi
    adjustment = (Jn.T - Jn) / 2 @ xi
    alignment = (xi @ grad_h) * (adjustment @ grad_h) / 2 + eps  # = a b² ‖ξ‖⁴ / 2 + ε
    assert alignment == pytest.approx(a * b**2 * (xi @ xi) ** 2 / 2 + eps)
    J = sd.GameJacobian(linear_game(a, b, (1.0, 1.0)))
    T = SGAUpdate(J, 0.1, gamma, align=True, epsilon=eps)
    assert T.alignment == pytest.approx(alignment, rel=1e-14)
    assert T.sign == np.sign(alignment) and T.weight == gamma * np.sign(alignment)
    expected = np.eye(2) - 0.1 * sga_matrix(torch.tensor(Jn), T.weight).numpy()
    np.testing.assert_allclose(dense(T).numpy(), expected, atol=1e-15)
    if a == -1.0:
        assert T.sign == -1.0  # near a repeller the adjustment is flipped


def test_sga_errors():
    J = sd.GameJacobian(four_player_game().game)
    with pytest.raises(ValueError, match="gamma"):
        SGAUpdate(J, 0.1, -1.0)
    with pytest.raises(ValueError, match="epsilon"):
        SGAUpdate(J, 0.1, 1.0, epsilon=float("nan"))
    with pytest.raises(TypeError, match="GameJacobian"):
        SGAUpdate(sd.MatrixOperator(torch.eye(4, dtype=F64)), 0.1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="init"):
        four_player_game(init="ones")


def test_an_update_rule_is_checked_when_it_is_made_not_at_its_first_probe():
    with pytest.raises(ValueError, match="'sga' needs gamma: pass gamma="):
        sd.UpdateRule("sga", lr=0.1)
    with pytest.raises(ValueError, match="'momentum' needs beta"):
        sd.UpdateRule("momentum", lr=0.1)
    with pytest.raises(ValueError, match="takes no beta"):
        sd.UpdateRule("gd", lr=0.1, beta=0.5)
    with pytest.raises(ValueError, match="takes no align"):
        sd.UpdateRule("consensus", lr=0.1, gamma=1.0, align=True)
    with pytest.raises(ValueError, match="alternating methods"):
        sd.UpdateRule("gd", lr=0.1, order=("a", "b"))
    assert sd.UpdateRule("sga", lr=0.1, gamma=1.0, align=True).align is True
