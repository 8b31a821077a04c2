"""eigs (Krylov–Schur) against dense ground truth: numpy.linalg.eig of the Jacobian
that torch.autograd.functional.jacobian builds independently of specdiag."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from games import gan_game, sorted_by, three_player_game

import specdiag as sd

KEYS = {
    "LM": np.abs,
    "SM": np.abs,
    "LR": np.real,
    "SR": np.real,
    "LI": lambda v: np.abs(np.imag(v)),
    "SI": lambda v: np.abs(np.imag(v)),
}

_cache: dict = {}


def small_gan(loss: str, dtype: torch.dtype):
    key = (loss, dtype)
    if key not in _cache:
        g = gan_game(loss=loss, hidden=16, dtype=dtype)
        _cache[key] = (g, np.linalg.eigvals(g.dense_jacobian().double().numpy()))
    return _cache[key]


def assert_matches_dense(result: sd.EigResult, true: np.ndarray, which: str, atol: float) -> None:
    """Every returned eigenvalue is an eigenvalue, and the set is the top by ``which``."""
    got = result.eigenvalues.numpy()
    for g in got:
        assert np.min(np.abs(true - g)) <= atol, (
            f"{g} is not an eigenvalue (nearest off by {np.min(np.abs(true - g)):.2e})"
        )
    key = KEYS[which]
    expected = sorted_by(true, which)[: len(got)]
    np.testing.assert_allclose(key(got), key(expected), atol=atol, rtol=0)


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax", "wgan"])
@pytest.mark.parametrize("which", ["LM", "LR", "SR", "LI", "SI"])
@pytest.mark.parametrize(
    "dtype,tol", [(torch.float64, 1e-8), (torch.float64, 1e-3), (torch.float32, 1e-3)]
)
def test_eigs_matches_dense_jacobian(loss, which, dtype, tol):
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
    assert_matches_dense(r, true, which, atol)


def test_three_player_game():
    g = three_player_game()
    true = np.linalg.eigvals(g.dense_jacobian().numpy())
    for which in ("LM", "LR", "SR"):
        r = sd.eigs(sd.GameJacobian(g.game, None), k=5, which=which, tol=1e-8)
        assert r.all_converged
        assert_matches_dense(r, true, which, 1e-8 * np.abs(true).max())


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
    assert X.shape == (g.game.n, r.k) and X.is_complex()
    scale = np.abs(true).max()
    for i, lam in enumerate(r.eigenvalues.tolist()):
        x = X[:, i]
        Jx = torch.complex(J.matvec(x.real.contiguous()), J.matvec(x.imag.contiguous()))
        res = torch.linalg.vector_norm(Jx - lam * x).item()
        assert res <= tol * scale * torch.linalg.vector_norm(x).item()
        assert res == pytest.approx(r.residuals[i].item(), rel=0.05, abs=1e-5 * scale)


def test_maxiter_reports_non_convergence_without_raising():
    g, _ = small_gan("nonsaturating", torch.float64)
    J = sd.GameJacobian(g.game, None)
    with pytest.warns(sd.ConvergenceWarning, match="converged") as caught:
        r = sd.eigs(J, k=6, which="SM", tol=1e-10, maxiter=2)
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert not r.all_converged
    assert r.n_restarts == 2
    assert any("maxiter" in note for note in r.notes)


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


def test_li_never_reports_a_wrong_set_as_converged():
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


def test_dense_path_for_tiny_operators():
    A = torch.randn(12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    r = sd.eigs(A, k=4, which="LR", return_eigenvectors=True)
    assert r.n_matvec == 12 and any("exactly" in note for note in r.notes)
    true = np.linalg.eigvals(A.numpy())
    assert_matches_dense(r, true, "LR", 1e-12)
    assert (r.residuals < 1e-12).all()


@pytest.mark.parametrize("which", ["LM", "LR", "SR", "LI", "SI"])
def test_random_nonnormal_matrix_against_arpack_and_dense(which):
    gen = torch.Generator().manual_seed(0)
    n = 300
    A = torch.randn(n, n, dtype=torch.float64, generator=gen) / n**0.5
    A += torch.triu(torch.randn(n, n, dtype=torch.float64, generator=gen), 1) * 0.05
    A[:4, :4] += torch.diag(torch.tensor([4.0, -3.0, 2.5, 2.0], dtype=torch.float64))
    true = np.linalg.eigvals(A.numpy())
    tol = 1e-6
    r = sd.eigs(A, k=4, which=which, tol=tol)
    ref = sd.eigs(A, k=4, which=which, tol=tol, backend="arpack")
    atol = 1e-4 * np.abs(true).max()  # non-normal: eigenvalue error ~ condition x residual
    assert r.all_converged
    assert_matches_dense(r, true, which, atol)
    assert ref.backend == "arpack" and ref.n_matvec > 0


def test_accepts_any_object_with_matvec():
    class Diagonal:
        def __init__(self, d):
            self.d, self.shape, self.dtype, self.device = d, (len(d), len(d)), d.dtype, d.device

        def matvec(self, v):
            return self.d * v

    d = torch.linspace(-1, 1, 500, dtype=torch.float64)
    d[-1] = 3.0
    r = sd.eigs(Diagonal(d), k=1, tol=1e-10)
    assert r.eigenvalues[0].real.item() == pytest.approx(3.0, abs=1e-9)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"which": "XX"}, ValueError, "which='XX'"),
        ({"which": "LA"}, ValueError, "eigs: which='LA'"),
        ({"k": 0}, ValueError, "k must be"),
        ({"k": 1000}, ValueError, "k must be"),
        ({"ncv": 7, "k": 6}, ValueError, "ncv must be"),
        ({"tol": -1.0}, ValueError, "tol must be"),
        ({"maxiter": 0}, ValueError, "maxiter"),
        ({"max_matvecs": 0}, ValueError, "max_matvecs"),
        ({"backend": "lapack"}, ValueError, "backend"),
        ({"v0": torch.ones(3)}, ValueError, "v0 must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    A = torch.eye(50, dtype=torch.float64)
    with pytest.raises(error, match=match):
        sd.eigs(A, **kwargs)


def test_bad_operators():
    with pytest.raises(TypeError, match="matvec"):
        sd.eigs(object())
    with pytest.raises(ValueError, match="square"):
        sd.eigs(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="dtype"):
        sd.eigs(torch.zeros(30, 30, dtype=torch.int64))


def test_non_finite_products_raise_a_dedicated_error():
    class Broken:
        shape, dtype, device = (100, 100), torch.float64, torch.device("cpu")

        def matvec(self, v):
            return v * float("nan")

    with pytest.raises(sd.NonFiniteError, match="NaN"):
        sd.eigs(Broken(), k=2)


def test_locking_with_complex_pairs():
    """Separated pairs converge and lock (whole 2x2 blocks) while a slow one does not."""
    from specdiag.linalg.krylov_schur import KrylovSchur

    gen = torch.Generator().manual_seed(4)
    m = 1500
    a = torch.rand(m, dtype=torch.float64, generator=gen)
    b = torch.rand(m, dtype=torch.float64, generator=gen) * 0.3
    a[:3], b[:3] = (
        torch.tensor([8.0, 5.0, 1.2], dtype=torch.float64),
        torch.tensor([4.0, 3.0, 0.1], dtype=torch.float64),
    )

    def matvec(v):
        x, y = v[0::2], v[1::2]
        out = torch.empty_like(v)
        out[0::2], out[1::2] = a * x + b * y, -b * x + a * y
        return out

    solver = KrylovSchur(
        matvec,
        2 * m,
        torch.float64,
        torch.device("cpu"),
        k=6,
        which="LM",
        tol=1e-9,
        ncv=16,
        maxiter=500,
        max_matvecs=10**6,
        v0=torch.randn(2 * m, dtype=torch.float64, generator=gen),
        generator=gen,
        symmetric=False,
    )
    ritz, stop = solver.run()
    assert stop == "converged"
    assert solver.l >= 2 and solver.l % 2 == 0, "pairs are locked whole"
    got = sorted(
        (
            complex(ritz.lam[s])
            for b_ in ritz.wanted
            for s in range(ritz.blocks[b_][0], sum(ritz.blocks[b_]))
        ),
        key=lambda z: (-abs(z), -z.imag),
    )
    expected = sorted(
        [complex(x, sgn * y) for x, y in [(8, 4), (5, 3), (1.2, 0.1)] for sgn in (1, -1)],
        key=lambda z: (-abs(z), -z.imag),
    )
    np.testing.assert_allclose(got, expected, atol=1e-8)
