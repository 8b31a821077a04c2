"""The ARPACK reference backend: residuals from every solve, clear errors, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specdiag as sd


def matrix(n: int = 400, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, dtype=torch.float64, generator=gen) / n**0.5
    A[:4, :4] += torch.diag(torch.tensor([6.0, -5.0, 4.0, 3.5], dtype=torch.float64))
    return A


@pytest.mark.parametrize("symmetric", [False, True])
def test_relative_residuals_without_eigenvectors(symmetric):
    A = matrix()
    A = (A + A.T) / 2 if symmetric else A
    solve = sd.eigsh if symmetric else sd.eigs
    r = solve(A, k=4, tol=1e-8, backend="arpack")
    assert r.eigenvectors is None and np.isfinite(r.residuals.numpy()).all()
    assert (r.relative_residuals.numpy() <= 1e-8).all()
    values = r.eigenvalues.numpy()
    np.testing.assert_allclose(
        r.relative_residuals.numpy(), r.residuals.numpy() / np.abs(values), rtol=1e-12
    )
    true = np.linalg.eigvalsh(A.numpy()) if symmetric else np.linalg.eigvals(A.numpy())
    for v in values:
        assert np.min(np.abs(true - v)) < 1e-6


def test_basis_and_block_start():
    A = matrix()
    r = sd.eigs(A, k=4, tol=1e-10, backend="arpack", return_basis=True)
    B = r.basis
    assert B is not None
    torch.testing.assert_close(
        B.T @ B, torch.eye(B.shape[1], dtype=torch.float64), atol=1e-10, rtol=0
    )
    again = sd.eigs(A, k=4, tol=1e-10, backend="arpack", v0=B)  # a block: summed
    np.testing.assert_allclose(
        np.sort_complex(again.eigenvalues.numpy()),
        np.sort_complex(r.eigenvalues.numpy()),
        atol=1e-8,
    )


def test_a_zero_operator_is_a_result_not_an_arpack_error():
    r = sd.eigs(torch.zeros(200, 200, dtype=torch.float64), k=3, backend="arpack")
    assert r.all_converged and (r.eigenvalues == 0).all()
    assert any("zero" in note for note in r.notes)
    r = sd.eigsh(torch.zeros(200, 200, dtype=torch.float32), k=3, backend="arpack")
    assert (r.eigenvalues == 0).all()


class Wrong:
    shape, dtype, device = (100, 100), torch.float64, torch.device("cpu")

    def __init__(self, out):
        self.out = out

    def matvec(self, v):
        return self.out(v)


@pytest.mark.parametrize(
    "out, error, match",
    [
        (lambda v: torch.zeros(101, dtype=torch.float64), ValueError, r"shape \(101,\)"),
        (lambda v: v.float(), TypeError, "dtype torch.float32"),
        (lambda v: list(v), TypeError, "list"),
    ],
)
def test_wrong_products_raise_clear_errors(out, error, match):
    with pytest.raises(error, match=match) as info:
        sd.eigs(Wrong(out), k=2, backend="arpack")
    assert "expected a torch.Tensor of shape (100,)" in str(info.value)
