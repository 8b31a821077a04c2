"""The dense path: small operators solved exactly, for every ``which``.

Moved here from tests/test_eigs.py: test_dense_path_for_tiny_operators.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag.linalg import GENERAL_WHICH, SYMMETRIC_WHICH, paths

from .linalg_cases import assert_top_eigenvalues


def test_dense_path_for_tiny_operators():
    A = torch.randn(12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    r = sd.eigs(A, k=4, which="LR", return_eigenvectors=True)
    assert r.n_matvec == 12 and any("exactly" in note for note in r.notes)
    true = np.linalg.eigvals(A.numpy())
    assert_top_eigenvalues(r, true, "LR", 1e-12)
    assert (r.residuals < 1e-12).all()


@pytest.mark.parametrize("which", list(GENERAL_WHICH))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_small_operators_exactly_for_every_which(which, dtype):
    """n = 300 <= DENSE_MAX_N: interior targets go dense at once (n products), the others
    after a Krylov attempt of at most n products. Either way converged and exact."""
    gen = torch.Generator().manual_seed(0)
    n = 300
    A = torch.randn(n, n, dtype=torch.float64, generator=gen) / n**0.5
    A[:4, :4] += torch.diag(torch.tensor([4.0, -3.0, 2.5, 2.0], dtype=torch.float64))
    true = np.linalg.eigvals(A.to(dtype).double().numpy())
    r = sd.eigs(A.to(dtype), k=4, which=which, tol=1e-3)
    assert r.all_converged
    if which in paths.INTERIOR[False]:
        assert r.n_matvec == n and any("exactly" in note for note in r.notes)
    assert r.n_matvec <= 2 * n
    atol = 1e-3 * np.abs(true).max() if r.n_matvec < n else 1e-5 * np.abs(true).max()
    assert_top_eigenvalues(r, true, which, atol)


@pytest.mark.parametrize("which", list(SYMMETRIC_WHICH))
def test_small_symmetric_operators_exactly(which):
    gen = torch.Generator().manual_seed(1)
    n = 200
    S = torch.randn(n, n, dtype=torch.float64, generator=gen)
    S = (S + S.T) / 2
    true = np.linalg.eigvalsh(S.numpy())
    r = sd.eigsh(S, k=5, which=which, tol=1e-6)
    assert r.all_converged
    if which == "SM":
        assert r.n_matvec == n
    got = np.sort(r.eigenvalues.numpy())
    if which == "BE":
        expected = np.sort(np.r_[true[:2], true[-3:]])
    else:
        order = {"LA": -true, "SA": true, "LM": -np.abs(true), "SM": np.abs(true)}[which]
        expected = np.sort(true[np.argsort(order, kind="stable")[:5]])
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(true).max())


def test_krylov_that_does_not_converge_within_n_products_falls_back_to_dense():
    gen = torch.Generator().manual_seed(2)
    n = 300
    A = torch.randn(n, n, dtype=torch.float64, generator=gen) / n**0.5  # circular law
    r = sd.eigs(A, k=6, which="LM", tol=1e-13)
    assert r.all_converged
    assert n < r.n_matvec <= 2 * n
    assert any("had not converged" in note for note in r.notes)
    true = np.linalg.eigvals(A.numpy())
    assert_top_eigenvalues(r, true, "LM", 1e-10)


def test_the_product_budget_keeps_a_small_operator_on_the_krylov_path():
    A = torch.randn(300, 300, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with pytest.warns(sd.ConvergenceWarning):
        r = sd.eigs(A, k=6, which="SR", tol=1e-13, max_matvecs=50)
    assert r.n_matvec == 50 and any("max_matvecs" in note for note in r.notes)


class Wrong:
    def __init__(self, n, out):
        self.shape, self.dtype, self.device, self.out = (
            (n, n),
            torch.float64,
            torch.device("cpu"),
            out,
        )

    def matvec(self, v):
        return self.out(v)


@pytest.mark.parametrize("n", [12, 300, paths.DENSE_MAX_N + 5])
@pytest.mark.parametrize(
    "out, error, match",
    [
        (lambda v: torch.zeros(len(v) + 1, dtype=torch.float64), ValueError, r"shape \(\d+,\)"),
        (lambda v: v.float(), TypeError, "dtype torch.float32"),
        (lambda v: v.numpy(), TypeError, "ndarray"),
    ],
)
def test_operators_returning_the_wrong_thing_raise_clear_errors(n, out, error, match):
    """Dense path (n = 12), Krylov-then-dense (300), Krylov (1029): all name what was
    expected."""
    with pytest.raises(error, match=match) as info:
        sd.eigs(Wrong(n, out), k=2, which="LR")
    assert f"({n},)" in str(info.value) and "expected" in str(info.value)
