"""eigs and eigsh on plain matrices with known spectra: every dtype x which x operator kind.

The operators are larger than ``DENSE_MAX_N`` so that the Krylov–Schur path runs (the
dense path has its own tests in test_linalg_dense.py). Ground truth is the spectrum the
matrix was built from (see ``linalg_cases``), which numpy's dense solve confirms once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag.linalg import GENERAL_WHICH, SYMMETRIC_WHICH, paths

from .linalg_cases import (
    KINDS,
    as_kind,
    assert_top_eigenvalues,
    block_diagonal,
    eigenvalues_of,
    general_spectrum,
    products,
    reflector,
    symmetric_spectrum,
)

N = paths.DENSE_MAX_N + 176  # 1200: the Krylov path
TOL = {torch.float64: 1e-9, torch.float32: 1e-4}

_general = general_spectrum(N)
_truth = eigenvalues_of(*_general)
_D = block_diagonal(*_general)
_u = reflector(N, 1)


def test_the_test_matrix_has_the_spectrum_it_was_built_with():
    from .linalg_cases import dense

    spectrum = general_spectrum(300)
    A = dense(block_diagonal(*spectrum), reflector(300, 1)).numpy()
    truth = eigenvalues_of(*spectrum)
    got = np.linalg.eigvals(A)
    assert np.abs(np.sort_complex(got) - np.sort_complex(truth)).max() < 1e-10


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", list(GENERAL_WHICH))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_eigs_every_which_dtype_and_kind(kind, which, dtype):
    op = as_kind(kind, _D, _u, dtype)
    tol = TOL[dtype]
    r = sd.eigs(op, k=4, which=which, tol=tol)
    assert r.all_converged, r
    assert r.k == 4 and r.k_requested == 4  # the outliers come in whole pairs
    scale = np.abs(_truth).max()
    assert_top_eigenvalues(r, _truth, which, atol=10 * tol * scale)
    vals = r.eigenvalues.numpy()
    for i, v in enumerate(vals):  # pairs whole, adjacent, positive imaginary part first
        if v.imag > 0:
            assert vals[i + 1] == np.conj(v)
    if kind != "tensor":
        assert products(op) == r.n_matvec
    rel = r.relative_residuals.numpy()
    assert (rel <= tol).all()
    floor = np.sqrt(torch.finfo(dtype).eps) * np.abs(vals).max()
    np.testing.assert_allclose(
        r.residuals.numpy(), rel * np.maximum(np.abs(vals), floor), rtol=1e-12
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", list(SYMMETRIC_WHICH))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_eigsh_every_which_dtype_and_kind(kind, which, dtype):
    truth = symmetric_spectrum(N, positive=which == "SM")
    D = torch.diag(torch.from_numpy(truth))
    op = as_kind(kind, D, _u, dtype)
    tol = TOL[dtype]
    r = sd.eigsh(op, k=4, which=which, tol=tol)
    assert r.all_converged and r.k == 4
    assert r.eigenvalues.dtype == torch.float64
    # symmetric: eigenvalue error ~ residual^2 / gap
    assert_top_eigenvalues(r, truth, which, atol=10 * tol * np.abs(truth).max())
    if kind != "tensor":
        assert products(op) == r.n_matvec
    assert (r.relative_residuals.numpy() <= tol).all()


@pytest.mark.parametrize("symmetric", [False, True])
def test_eigenvectors_and_basis(symmetric):
    if symmetric:
        truth = symmetric_spectrum(N, positive=False)
        op = as_kind("matrix", torch.diag(torch.from_numpy(truth)), _u, torch.float64)
        r = sd.eigsh(op, k=5, tol=1e-10, return_eigenvectors=True, return_basis=True)
    else:
        op = as_kind("matrix", _D, _u, torch.float64)
        r = sd.eigs(op, k=5, tol=1e-10, return_eigenvectors=True, return_basis=True)
    X, B = r.eigenvectors, r.basis
    assert X is not None and B is not None
    A = op.matrix
    for i, lam in enumerate(r.eigenvalues.tolist()):
        x = X[:, i]
        Ax = A.to(x.dtype) @ x
        assert torch.linalg.vector_norm(Ax - lam * x).item() <= 1e-9 * 10
    # the basis: real, orthonormal, spanning the eigenvectors (real and imaginary parts)
    assert not B.is_complex() and B.dtype == torch.float64
    torch.testing.assert_close(
        B.T @ B, torch.eye(B.shape[1], dtype=torch.float64), atol=1e-12, rtol=0
    )
    assert B.shape[1] == (5 if symmetric else 6)  # k = 5 opens a pair: kept whole
    parts = [X.real] if symmetric else [X.real, X.imag]
    for P in parts:
        P = P.to(torch.float64)
        assert torch.linalg.vector_norm(P - B @ (B.T @ P)).item() < 1e-8


def test_k_rounds_up_to_keep_a_pair_whole():
    op = as_kind("matrix", _D, _u, torch.float64)
    r = sd.eigs(op, k=2, which="LM", tol=1e-10)  # 9, then the pair 8 +- 3i
    assert r.k == 3 and r.k_requested == 2
    assert any("pair" in note for note in r.notes)


def test_transposed_operator_reports_its_own_products():
    base = as_kind("transposed", _D, _u, torch.float64)
    r = sd.eigs(base, k=4, tol=1e-8)
    assert base.base.n_rmatvec == r.n_matvec and base.base.n_matvec == 0


# ------------------------------------------------------------- moved from tests/test_eigs.py


@pytest.fixture(params=["auto", "krylov"])
def path(request, monkeypatch):
    """Run a test on the path chosen for its size, and on the Krylov path alone."""
    if request.param == "krylov":
        monkeypatch.setattr(paths, "DENSE_MAX_N", 0)
    return request.param


@pytest.mark.parametrize("which", ["LM", "LR", "SR", "LI", "SI"])
def test_random_nonnormal_matrix_against_arpack_and_dense(which, path):
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
    assert_top_eigenvalues(r, true, which, atol)
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


# ------------------------------------------------------------ moved from tests/test_eigsh.py
def test_both_ends_split():
    d = torch.linspace(-5, 3, 400, dtype=torch.float64)
    r = sd.eigsh(torch.diag(d), k=5, which="BE", tol=1e-10)
    got = np.sort(r.eigenvalues.numpy())
    np.testing.assert_allclose(got, np.sort(np.r_[d.numpy()[:2], d.numpy()[-3:]]), atol=1e-8)


def test_eigsh_rejects_non_symmetric_which():
    with pytest.raises(ValueError, match="eigsh: which='LR'"):
        sd.eigsh(torch.eye(30, dtype=torch.float64), which="LR")
