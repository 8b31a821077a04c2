"""eigsh (thick-restart Lanczos) against torch.linalg.eigvalsh of dense Hessians."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from games import gan_game, sorted_by

import specdiag as sd


def hessian_block(small, player):
    J = small.dense_jacobian()
    s = small.game.player_slice(player)
    return J[s, s]


def check(result: sd.EigResult, true: np.ndarray, which: str, atol: float) -> None:
    got = result.eigenvalues.numpy()
    assert got.dtype == np.float64
    expected = sorted_by(true.astype(complex), which).real[: len(got)]
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)


@pytest.mark.parametrize("player", ["generator", "discriminator"])
@pytest.mark.parametrize("which", ["LA", "SA", "LM", "BE"])
@pytest.mark.parametrize(
    "dtype,tol", [(torch.float64, 1e-10), (torch.float64, 1e-3), (torch.float32, 1e-3)]
)
def test_player_hessian_matches_eigvalsh(player, which, dtype, tol):
    g = gan_game(loss="nonsaturating", hidden=16, dtype=dtype)
    true = torch.linalg.eigvalsh(hessian_block(g, player).double()).numpy()
    H = sd.PlayerHessian(g.game, player, None)
    r = sd.eigsh(H, k=5, which=which, tol=tol)
    assert r.all_converged and r.k == 5
    # symmetric: eigenvalue error ~ residual^2 / gap, well within tol * |λ_max|
    atol = max(tol, 2e-6 if dtype == torch.float32 else 0) * np.abs(true).max()
    check(r, true, which, atol)


def test_eigenvectors_and_residuals():
    g = gan_game(hidden=16)
    H = sd.PlayerHessian(g.game, "discriminator", None)
    r = sd.eigsh(H, k=4, which="LM", tol=1e-8, return_eigenvectors=True)
    X = r.eigenvectors
    assert X is not None
    assert X.dtype == torch.float64 and X.shape == (H.shape[0], 4)
    scale = abs(r.eigenvalues[0].item())
    for i, lam in enumerate(r.eigenvalues.tolist()):
        res = torch.linalg.vector_norm(H.matvec(X[:, i]) - lam * X[:, i]).item()
        assert res <= 1e-8 * scale
    # orthonormal Ritz vectors
    torch.testing.assert_close(X.T @ X, torch.eye(4, dtype=torch.float64), atol=1e-8, rtol=0)
