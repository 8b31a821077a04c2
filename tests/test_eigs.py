"""eigs (Krylov–Schur) against dense ground truth: numpy.linalg.eig of the Jacobian
that torch.autograd.functional.jacobian builds independently of specdiag."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from games import gan_game, sorted_by, three_player_game
from linalg.linalg_cases import assert_top_eigenvalues

import specdiag as sd
from specdiag.linalg import paths

_cache: dict = {}


@pytest.fixture(params=["auto", "krylov"])
def path(request, monkeypatch):
    """The path chosen for the game's size (dense for interior ``which``), and the
    Krylov–Schur path alone (as before small operators were solved exactly)."""
    if request.param == "krylov":
        monkeypatch.setattr(paths, "DENSE_MAX_N", 0)
    return request.param


def small_gan(loss: str, dtype: torch.dtype):
    key = (loss, dtype)
    if key not in _cache:
        g = gan_game(loss=loss, hidden=16, dtype=dtype)
        _cache[key] = (g, np.linalg.eigvals(g.dense_jacobian().double().numpy()))
    return _cache[key]


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax", "wgan"])
@pytest.mark.parametrize("which", ["LM", "LR", "SR", "LI", "SI"])
@pytest.mark.parametrize(
    "dtype,tol", [(torch.float64, 1e-8), (torch.float64, 1e-3), (torch.float32, 1e-3)]
)
def test_eigs_matches_dense_jacobian(loss, which, dtype, tol, path):
    g, true = small_gan(loss, dtype)
    J = sd.GameJacobian(g.game, None)
    # These games have two complex pairs far from the real axis; the third lies inside
    # the spectrum (|Im| ~ 0.03), see test_li_never_reports_a_wrong_set_as_converged.
    k = 4 if which == "LI" else 6
    r = sd.eigs(J, k=k, which=which, tol=tol)
    scale = np.abs(true).max()
    atol = max(tol, 2e-6 if dtype == torch.float32 else 0) * scale
    assert r.all_converged, r
    assert r.k in (k, k + 1)
    assert_top_eigenvalues(r, true, which, atol)


def test_three_player_game():
    g = three_player_game()
    true = np.linalg.eigvals(g.dense_jacobian().numpy())
    for which in ("LM", "LR", "SR"):
        r = sd.eigs(sd.GameJacobian(g.game, None), k=5, which=which, tol=1e-8)
        assert r.all_converged
        assert_top_eigenvalues(r, true, which, 1e-8 * np.abs(true).max())


def test_conjugate_pairs_complete_and_k_rounds_up():
    g, true = small_gan("nonsaturating", torch.float64)
    J = sd.GameJacobian(g.game, None)
    ordered = sorted_by(true, "LM")
    # a k whose k-th eigenvalue opens a complex pair
    k = next(i + 1 for i, v in enumerate(ordered) if v.imag > 0 and i > 0)
    r = sd.eigs(J, k=k, tol=1e-8)
    vals = r.eigenvalues.numpy()
    assert r.k == k + 1 and r.k_requested == k
    assert any("pair" in note for note in r.notes)
    for v in vals:
        if v.imag != 0:
            assert np.any(vals == np.conj(v)), f"{v} returned without its conjugate"
    # pairs adjacent, positive imaginary part first
    for i, v in enumerate(vals):
        if v.imag > 0:
            assert vals[i + 1] == np.conj(v)


def test_eigenvalues_only_uses_transposed_product():
    g, _ = small_gan("nonsaturating", torch.float64)
    J = sd.GameJacobian(g.game, None)
    r = sd.eigs(J, k=4)
    assert r.transposed
    assert J.n_matvec == 0 and J.n_rmatvec == r.n_matvec


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_right_eigenvectors(dtype):
    g, true = small_gan("minimax", dtype)
    J = sd.GameJacobian(g.game, None)
    tol = 1e-3
    r = sd.eigs(J, k=6, tol=tol, return_eigenvectors=True)
    assert not r.transposed and J.n_matvec > 0
    X = r.eigenvectors
    assert X is not None
    assert X.shape == (g.game.n, r.k) and X.is_complex()
    scale = np.abs(true).max()
    for i, lam in enumerate(r.eigenvalues.tolist()):
        x = X[:, i]
        Jx = torch.complex(J.matvec(x.real.contiguous()), J.matvec(x.imag.contiguous()))
        res = torch.linalg.vector_norm(Jx - lam * x).item()
        assert res <= tol * scale * torch.linalg.vector_norm(x).item()
        assert res == pytest.approx(r.residuals[i].item(), rel=0.05, abs=1e-5 * scale)


def test_product_budget():
    g, _ = small_gan("nonsaturating", torch.float64)
    J = sd.GameJacobian(g.game, None)
    with pytest.warns(sd.ConvergenceWarning):
        r = sd.eigs(J, k=6, which="LR", tol=1e-12, max_matvecs=15)
    assert r.n_matvec == 15
    assert any("max_matvecs" in note for note in r.notes)


def test_same_call_is_bit_identical():
    g, _ = small_gan("nonsaturating", torch.float32)
    a = sd.eigs(sd.GameJacobian(g.game, None), k=6, which="LR")
    b = sd.eigs(sd.GameJacobian(g.game, None), k=6, which="LR")
    assert torch.equal(a.eigenvalues, b.eigenvalues)
    assert torch.equal(a.residuals, b.residuals)
    c = sd.eigs(
        sd.GameJacobian(g.game, None),
        k=6,
        which="LR",
        generator=torch.Generator().manual_seed(7),
    )
    assert not torch.equal(a.residuals, c.residuals)


def test_li_never_reports_a_wrong_set_as_converged(path):
    """Real Ritz values under which='LI' may hide interior complex eigenvalues."""
    g, true = small_gan("nonsaturating", torch.float64)
    scale = np.abs(true).max()
    for ncv in (14, 20, 40):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sd.ConvergenceWarning)  # expected for small ncv
            r = sd.eigs(sd.GameJacobian(g.game, None), k=6, which="LI", tol=1e-8, ncv=ncv)
        expected = sorted_by(true, "LI")
        for i, (v, ok) in enumerate(zip(r.eigenvalues.numpy(), r.converged.numpy())):
            if ok:
                assert abs(abs(v.imag) - abs(expected[i].imag)) <= 1e-8 * scale


def test_minimax_gan_li_is_exact():
    """A slow rotation (0.0018 +- 0.019i) inside the spectrum of a minimax GAN: the Krylov
    path flagged two of four eigenvalues unconverged after 179 products; the operator is
    small enough to solve exactly (n products), and every eigenvalue is numpy's."""
    g = gan_game(loss="minimax")
    true = np.linalg.eigvals(g.dense_jacobian().numpy())
    J = sd.GameJacobian(g.game, None)
    for which in ("LI", "SI", "SR", "SM"):
        r = sd.eigs(J, k=4, which=which)
        assert r.all_converged and r.n_matvec == g.game.n
        assert any("exactly" in note for note in r.notes)
        got = r.eigenvalues.numpy()
        expected = sorted_by(true, which)[: len(got)]
        np.testing.assert_allclose(got, expected, atol=1e-10)
