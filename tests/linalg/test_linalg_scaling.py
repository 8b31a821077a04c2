"""Badly scaled operators: results are the unscaled ones times the scale.

Eigenvalues near the ends of the floating-point range (1e-24 or 1e19 in float32) used
to underflow or overflow the squared norms inside Gram–Schmidt: wrong eigenvalues
flagged converged, or a false "operator returned NaN or Inf". Every path scales the
operator by a power of two (see ``specdiag.linalg.gram_schmidt.Scale``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag.linalg import paths
from specdiag.linalg.gram_schmidt import Scale

SCALES = {
    torch.float32: [1e-24, 1e-12, 1e19, 1e30],
    torch.float64: [1e-200, 1e-24, 1e19, 1e200],
}


class Diagonal:
    def __init__(self, d: torch.Tensor) -> None:
        self.d = d
        self.shape, self.dtype, self.device = (len(d), len(d)), d.dtype, d.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.d * v


def spectrum(n: int, symmetric: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    d = torch.rand(n, dtype=torch.float64, generator=gen)
    d[:6] = torch.tensor([8.0, 7.0, -6.0, 5.0, 4.0, -3.5], dtype=torch.float64)
    return d


@pytest.mark.parametrize(
    "n, backend",
    [(60, "krylov-schur"), (paths.DENSE_MAX_N + 100, "krylov-schur"), (300, "arpack")],
    ids=["dense", "krylov-schur", "arpack"],
)
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaled_diagonal_gives_the_scaled_results(dtype, symmetric, n, backend):
    solve = sd.eigsh if symmetric else sd.eigs
    d = spectrum(n, symmetric)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    ref = solve(Diagonal(d.to(dtype)), k=4, which="LM", tol=tol, backend=backend)
    assert ref.all_converged
    for scale in SCALES[dtype]:
        r = solve(Diagonal((d * scale).to(dtype)), k=4, which="LM", tol=tol, backend=backend)
        assert r.all_converged, (scale, r)
        rtol = 1e-5 if dtype == torch.float32 else 1e-9
        np.testing.assert_allclose(
            r.eigenvalues.numpy(), scale * ref.eigenvalues.numpy(), rtol=rtol
        )
        np.testing.assert_allclose(
            r.relative_residuals.numpy(), ref.relative_residuals.numpy(), rtol=0.5, atol=tol / 10
        )
        assert r.n_matvec == ref.n_matvec or backend == "arpack"


def test_power_of_two_scaling_is_exact():
    """An operator scaled by 2^40 runs the very same iteration: bitwise equal results."""
    d = spectrum(paths.DENSE_MAX_N + 100, False).float()
    a = sd.eigs(Diagonal(d), k=4, tol=1e-4)
    b = sd.eigs(Diagonal(d * 2.0**40), k=4, tol=1e-4)
    assert torch.equal(b.eigenvalues, a.eigenvalues * 2.0**40)
    assert b.n_matvec == a.n_matvec


def test_scale_is_fixed_by_the_first_nonzero_product():
    s = Scale(torch.float32)
    assert s.factor(torch.zeros(5)) == 1.0 and s.value is None
    assert s.factor(torch.tensor([3e-30, 0.0])) == 1.0 / s.s
    assert 0.5 <= 3e-30 / s.s < 1.0
    assert s.factor(torch.tensor([1e30])) == 1.0 / s.s  # fixed once
    with pytest.raises(sd.NonFiniteError):
        Scale(torch.float64).factor(torch.tensor([float("nan")], dtype=torch.float64))


def test_a_tiny_start_vector_is_accepted():
    d = spectrum(paths.DENSE_MAX_N + 100, False).float()
    v0 = torch.full((len(d),), 1e-30)
    r = sd.eigs(Diagonal(d), k=2, tol=1e-4, v0=v0)
    assert r.all_converged
    with pytest.raises(ValueError, match="v0"):
        sd.eigs(Diagonal(d), k=2, v0=torch.zeros(len(d)))
