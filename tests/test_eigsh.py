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


def test_clustered_top_of_spectrum():
    """Many nearly equal top eigenvalues over a bulk, as in GAN generator Hessians."""
    gen = torch.Generator().manual_seed(0)
    n = 2000
    d = torch.rand(n, dtype=torch.float64, generator=gen) * 0.1
    d[:30] = 1.0 + 0.01 * torch.rand(30, dtype=torch.float64, generator=gen)
    Q, _ = torch.linalg.qr(torch.randn(n, 40, dtype=torch.float64, generator=gen))

    # A = diag(d) rotated in a 40-dimensional subspace: matrix-free, not sparse-diagonal
    def matvec(v):
        return d * v

    class Op:
        shape, dtype, device = (n, n), torch.float64, torch.device("cpu")

        def matvec(self, v):
            w = v - 2 * Q @ (Q.T @ v)
            w = d * w
            return w - 2 * Q @ (Q.T @ w)

    r = sd.eigsh(Op(), k=10, which="LA", tol=1e-8)
    assert r.all_converged
    np.testing.assert_allclose(r.eigenvalues.numpy(), np.sort(d.numpy())[::-1][:10], atol=1e-7)
    ref = sd.eigsh(Op(), k=10, which="LA", tol=1e-8, backend="arpack")
    np.testing.assert_allclose(ref.eigenvalues.numpy(), r.eigenvalues.numpy(), atol=1e-7)


def test_eigenvectors_and_residuals():
    g = gan_game(hidden=16)
    H = sd.PlayerHessian(g.game, "discriminator", None)
    r = sd.eigsh(H, k=4, which="LM", tol=1e-8, return_eigenvectors=True)
    X = r.eigenvectors
    assert X.dtype == torch.float64 and X.shape == (H.shape[0], 4)
    scale = abs(r.eigenvalues[0].item())
    for i, lam in enumerate(r.eigenvalues.tolist()):
        res = torch.linalg.vector_norm(H.matvec(X[:, i]) - lam * X[:, i]).item()
        assert res <= 1e-8 * scale
    # orthonormal Ritz vectors
    torch.testing.assert_close(X.T @ X, torch.eye(4, dtype=torch.float64), atol=1e-8, rtol=0)


def test_both_ends_split():
    d = torch.linspace(-5, 3, 400, dtype=torch.float64)
    r = sd.eigsh(torch.diag(d), k=5, which="BE", tol=1e-10)
    got = np.sort(r.eigenvalues.numpy())
    np.testing.assert_allclose(got, np.sort(np.r_[d.numpy()[:2], d.numpy()[-3:]]), atol=1e-8)


def test_eigsh_rejects_non_symmetric_which():
    with pytest.raises(ValueError, match="eigsh: which='LR'"):
        sd.eigsh(torch.eye(30, dtype=torch.float64), which="LR")


def test_invariant_subspace_breakdown():
    """A rank-3 operator: the Krylov space is invariant after 4 vectors."""
    gen = torch.Generator().manual_seed(1)
    U, _ = torch.linalg.qr(torch.randn(500, 3, dtype=torch.float64, generator=gen))
    A = U @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ U.T
    r = sd.eigsh(A, k=3, which="LA", tol=1e-10)
    assert r.all_converged
    np.testing.assert_allclose(r.eigenvalues.numpy(), [3.0, 2.0, 1.0], atol=1e-10)


def test_locking_keeps_converged_vectors_and_the_answer():
    """Well-separated top eigenvalues converge (and lock) long before a slow one."""
    from specdiag.linalg.krylov_schur import KrylovSchur

    gen = torch.Generator().manual_seed(2)
    n = 3000
    d = torch.rand(n, dtype=torch.float64, generator=gen)
    d[:4] = torch.tensor(
        [20.0, 15.0, 10.0, 1.0005], dtype=torch.float64
    )  # the 4th barely separated
    solver = KrylovSchur(
        lambda v: d * v,
        n,
        torch.float64,
        torch.device("cpu"),
        k=4,
        which="LA",
        tol=1e-9,
        ncv=12,
        maxiter=500,
        max_matvecs=10**6,
        v0=torch.randn(n, dtype=torch.float64, generator=gen),
        generator=gen,
        symmetric=True,
    )
    ritz, stop = solver.run()
    assert stop == "converged"
    assert solver.l >= 3, "the three separated eigenvalues should be locked"
    got = np.sort(ritz.lam[[s for b in ritz.wanted for s in [ritz.blocks[b][0]]]].real)[::-1]
    np.testing.assert_allclose(got, [20.0, 15.0, 10.0, 1.0005], atol=1e-8)
    # locked vectors stay orthonormal with the rest of the basis
    V = solver.V[: solver.j]
    torch.testing.assert_close(
        V @ V.T, torch.eye(solver.j, dtype=torch.float64), atol=1e-10, rtol=0
    )
