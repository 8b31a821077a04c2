"""SymmetricPart against dense (A + Aᵀ)/2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from games import gan_game

import specdiag as sd
from specdiag.linalg.operator import LinearOperator, MatrixOperator
from specdiag.linalg.parts import SymmetricPart

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_products_are_those_of_the_dense_symmetric_part(dtype, device) -> None:
    rng = np.random.default_rng(0)
    M = torch.from_numpy(rng.normal(size=(30, 30))).to(device, dtype)
    base = MatrixOperator(M)
    S = SymmetricPart(base)
    assert isinstance(S, LinearOperator) and S.symmetric and S.T is S
    assert (S.shape, S.dtype, S.device) == ((30, 30), dtype, torch.device(device))
    u = torch.from_numpy(rng.normal(size=30)).to(device, dtype)
    expected = (M + M.T) @ u / 2
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(S.matvec(u), expected, rtol=tol, atol=tol)
    torch.testing.assert_close(S.rmatvec(u), expected, rtol=tol, atol=tol)
    assert (S.n_matvec, S.n_rmatvec) == (1, 1)
    assert (base.n_matvec, base.n_rmatvec) == (2, 2)


def test_eigsh_of_the_symmetric_part_gives_its_dense_eigenvalues() -> None:
    rng = np.random.default_rng(1)
    M = rng.normal(size=(120, 120)) + np.diag(np.linspace(0, 30, 120))
    result = sd.eigsh(SymmetricPart(torch.from_numpy(M)), k=4, which="LA", tol=1e-10)
    dense = np.sort(np.linalg.eigvalsh((M + M.T) / 2))[::-1][:4]
    np.testing.assert_allclose(result.eigenvalues.numpy(), dense, rtol=1e-8)


def test_of_a_game_jacobian_equals_the_dense_symmetric_part() -> None:
    small = gan_game(hidden=8)
    J = small.dense_jacobian()
    S = SymmetricPart(sd.GameJacobian(small.game, None))
    u = torch.randn(J.shape[0], generator=torch.Generator().manual_seed(0), dtype=J.dtype)
    torch.testing.assert_close(S.matvec(u), (J + J.T) @ u / 2, rtol=1e-10, atol=1e-12)


def test_a_symmetric_operator_is_its_own_symmetric_part_at_one_product() -> None:
    base = MatrixOperator(torch.eye(5) * 2.0, symmetric=True)
    S = SymmetricPart(base)
    torch.testing.assert_close(S.matvec(torch.ones(5)), torch.full((5,), 2.0))
    assert (base.n_matvec, base.n_rmatvec) == (1, 0)


def test_an_operator_without_a_transposed_product_is_refused() -> None:
    class OnlyMatvec:
        shape, dtype, device = (3, 3), torch.float64, torch.device("cpu")

        def matvec(self, v: torch.Tensor) -> torch.Tensor:
            return v

    with pytest.raises(TypeError, match="rmatvec"):
        SymmetricPart(OnlyMatvec())
    with pytest.raises(ValueError, match="square"):
        SymmetricPart(torch.zeros(2, 3))
    assert repr(SymmetricPart(torch.eye(2))).startswith("SymmetricPart(MatrixOperator(")
