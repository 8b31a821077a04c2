"""Warm starts: a block recycled into the first basis (specdiag.linalg.recycle).

Ground truth: operators with known spectra (Q D Q, see ``linalg_cases``), the cold
solve, and dense eigendecompositions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag.linalg import paths, recycle

from .linalg_cases import Reflected, block_diagonal, eigenvalues_of, general_spectrum, reflector

N = paths.DENSE_MAX_N + 176


class Shifted(sd.LinearOperator):
    """``base + eps * P``: a nearby operator (P fixed, random, symmetric if asked)."""

    def __init__(self, base: sd.LinearOperator, eps: float, symmetric: bool, seed: int = 7):
        super().__init__(base.shape[0], base.dtype, "cpu")
        gen = torch.Generator().manual_seed(seed)
        U = torch.randn(base.shape[0], 6, dtype=torch.float64, generator=gen) / base.shape[0] ** 0.5
        W = (
            U
            if symmetric
            else torch.randn(base.shape[0], 6, dtype=torch.float64, generator=gen)
            / base.shape[0] ** 0.5
        )
        self.base, self.eps, self.U, self.W = base, eps, U.to(base.dtype), W.to(base.dtype)
        self.symmetric = symmetric

    def _matvec(self, x):
        return self.base._matvec(x) + self.eps * (self.U @ (self.W.T @ x))


def symmetric_base(dtype=torch.float64, extra=None):
    d = torch.rand(N, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    d[:8] = torch.tensor([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.5, 4.0], dtype=torch.float64)
    if extra is not None:
        d[100] = extra
    op = Reflected(torch.diag(d), reflector(N, 2), dtype)
    op.symmetric = True
    return op, d


def general_base(dtype=torch.float64):
    spectrum = general_spectrum(N)
    return Reflected(block_diagonal(*spectrum), reflector(N, 1), dtype), eigenvalues_of(*spectrum)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("symmetric", [True, False])
def test_the_same_operator_converges_in_the_first_basis(symmetric, dtype):
    op, _ = symmetric_base(dtype) if symmetric else general_base(dtype)
    solve = sd.eigsh if symmetric else sd.eigs
    tol = 1e-8 if dtype == torch.float64 else 1e-4
    cold = solve(op, k=6, tol=tol, return_basis=True)
    B = cold.basis
    assert B is not None
    assert B.dtype == dtype and not B.is_complex()
    eye = torch.eye(B.shape[1], dtype=torch.float64)
    assert (B.double().T @ B.double() - eye).abs().max() < 50 * torch.finfo(dtype).eps
    warm = solve(op, k=6, tol=tol, v0=B, return_basis=True)
    assert warm.all_converged
    # the recycled vectors, one random direction, and the verification steps
    assert warm.n_matvec == B.shape[1] + 1 + recycle.WARM_VERIFY < cold.n_matvec
    np.testing.assert_allclose(
        warm.eigenvalues.numpy(), cold.eigenvalues.numpy(), atol=10 * tol * 10
    )
    assert any("warm start" in note for note in warm.notes)
    assert (warm.relative_residuals.numpy() <= tol).all()


@pytest.mark.parametrize("symmetric", [True, False])
def test_a_nearby_operator_costs_fewer_products_and_gives_its_own_eigenvalues(symmetric):
    base, truth = symmetric_base() if symmetric else general_base()
    solve = sd.eigsh if symmetric else sd.eigs
    tol = 1e-6
    previous = solve(base, k=6, tol=tol, return_basis=True)
    near = Shifted(base, 1e-5, symmetric)
    cold = solve(near, k=6, tol=tol)
    warm = solve(near, k=6, tol=tol, v0=previous.basis)
    assert warm.all_converged and cold.all_converged
    assert warm.n_matvec < cold.n_matvec
    np.testing.assert_allclose(warm.eigenvalues.numpy(), cold.eigenvalues.numpy(), atol=1e-5)
    # and both are the nearby operator's (a dense solve of a 1200 x 1200 matrix)
    A = torch.stack([near.matvec(e) for e in torch.eye(N, dtype=torch.float64)], 1).numpy()
    true = np.linalg.eigvalsh(A) if symmetric else np.linalg.eigvals(A)
    for v in warm.eigenvalues.numpy():
        assert np.min(np.abs(true - v)) < 1e-5


def test_an_eigenvalue_that_appears_outside_the_recycled_subspace_is_found():
    """The new top eigenvalue's eigenvector is orthogonal to the recycled subspace, which
    is still exactly invariant: only the random direction can see it."""
    old, _ = symmetric_base()
    previous = sd.eigsh(old, k=6, tol=1e-8, return_basis=True)
    new, d = symmetric_base(extra=12.0)
    warm = sd.eigsh(new, k=6, tol=1e-8, v0=previous.basis)
    assert warm.all_converged
    np.testing.assert_allclose(
        warm.eigenvalues.numpy(), [12.0, 10.0, 9.0, 8.0, 7.0, 6.0], atol=1e-6
    )


def test_pairs_stay_whole_and_the_basis_spans_them():
    op, truth = general_base()
    r = sd.eigs(op, k=2, tol=1e-9, return_basis=True)  # 9, then the pair 8 +- 3i
    assert r.basis is not None
    assert r.k == 3 and r.basis.shape[1] == 3
    warm = sd.eigs(op, k=2, tol=1e-9, v0=r.basis, return_basis=True, return_eigenvectors=True)
    vals = warm.eigenvalues.numpy()
    assert warm.k == 3 and vals[1] == np.conj(vals[2]) and vals[1].imag > 0
    X, B = warm.eigenvectors, warm.basis
    assert X is not None and B is not None
    B = B.to(torch.complex128)
    assert torch.linalg.vector_norm(X - B @ (B.T @ X)).item() < 1e-8


def test_a_far_operator_hands_over_to_krylov_schur():
    """A start that is no closer than random: the block phase hands over at once and the
    answer is still right (converged means the same thing)."""
    op, truth = general_base()
    junk = torch.linalg.qr(
        torch.randn(N, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    )[0]
    r = sd.eigs(op, k=4, which="LR", tol=1e-8, v0=junk)
    assert r.all_converged
    assert any("then Krylov–Schur" in note for note in r.notes)
    expected = truth[np.argsort(-truth.real, kind="stable")][:4]
    np.testing.assert_allclose(
        np.sort(r.eigenvalues.numpy().real), np.sort(expected.real), atol=1e-6
    )


def test_blocks_that_are_dependent_or_too_wide():
    op, _ = symmetric_base()
    cold = sd.eigsh(op, k=4, tol=1e-8, return_basis=True)
    B = cold.basis
    assert B is not None
    dependent = torch.cat([B, B[:, :2] * 3.0, torch.zeros(N, 1, dtype=torch.float64)], dim=1)
    r = sd.eigsh(op, k=4, tol=1e-8, v0=dependent)
    assert r.all_converged and any(f"{B.shape[1]} of {dependent.shape[1]}" in n for n in r.notes)
    wide = torch.randn(N, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    r = sd.eigsh(op, k=4, tol=1e-8, v0=wide)  # only ncv - 2 columns are used
    assert r.all_converged and any("18 of 40" in n for n in r.notes)


def test_the_budget_and_maxiter_bound_a_warm_solve():
    op, _ = general_base()
    junk = torch.randn(N, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    with pytest.warns(sd.ConvergenceWarning):
        r = sd.eigs(op, k=4, tol=1e-12, v0=junk, max_matvecs=5)
    assert r.n_matvec == 5


@pytest.mark.parametrize("symmetric", [True, False])
def test_a_block_from_a_solve_cut_short_with_the_same_seed_is_recycled(symmetric):
    # A solve stopped after k products spans its own start vector; the warm solve that
    # follows draws that same vector first (same seed) and must move on to a fresh one.
    op, _ = symmetric_base() if symmetric else general_base()
    solve = sd.eigsh if symmetric else sd.eigs
    with pytest.warns(sd.ConvergenceWarning):
        short = solve(
            op, k=3, max_matvecs=3, return_basis=True, generator=torch.Generator().manual_seed(0)
        )
    assert short.basis is not None
    warm = solve(op, k=3, tol=1e-8, v0=short.basis, generator=torch.Generator().manual_seed(0))
    cold = solve(op, k=3, tol=1e-8, generator=torch.Generator().manual_seed(0))
    assert warm.all_converged
    np.testing.assert_allclose(
        np.sort_complex(warm.eigenvalues.numpy()),
        np.sort_complex(cold.eigenvalues.numpy()),
        rtol=1e-7,
    )


@pytest.mark.parametrize(
    "v0, match",
    [
        (torch.ones(N, 2, 2), "shape"),
        (torch.ones(N + 1, 3), "shape"),
        (torch.ones(N, 0), "shape"),
        (torch.full((N, 2), float("nan")), "finite"),
    ],
)
def test_bad_blocks(v0, match):
    op, _ = symmetric_base()
    with pytest.raises(ValueError, match=match):
        sd.eigsh(op, k=4, v0=v0.double())
