"""Where an eigenvector lives: shares per tensor and player, and the subspace turn.

Ground truth: dense eigenvectors of a small float64 game, its Jacobian built column by
column with plain autograd (no specdiag product), and principal angles by SVD.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag.probing.analyses import orthonormal_span

SIZES: dict[str, list[tuple[int, ...]]] = {"x": [(3,), (2, 2)], "y": [(4,), (3,)]}


def small_game(seed: int = 0) -> tuple[sd.Game, dict[str, list[torch.Tensor]], dict]:
    """Two players of two tensors each, with a non-zero-sum, non-quadratic coupling."""
    gen = torch.Generator().manual_seed(seed)
    params = {
        p: [torch.randn(s, dtype=torch.float64, generator=gen).requires_grad_() for s in shapes]
        for p, shapes in SIZES.items()
    }
    nx, ny = 7, 7
    A = torch.randn(nx, ny, dtype=torch.float64, generator=gen)
    Bx = torch.randn(nx, nx, dtype=torch.float64, generator=gen)
    By = torch.randn(ny, ny, dtype=torch.float64, generator=gen)
    consts = {"A": A, "Bx": Bx @ Bx.T / nx, "By": By @ By.T / ny}

    def losses(batch: object) -> dict[str, torch.Tensor]:
        x = torch.cat([t.reshape(-1) for t in params["x"]])
        y = torch.cat([t.reshape(-1) for t in params["y"]])
        return field_losses(x, y, consts)

    return sd.Game(params, losses), params, consts


def field_losses(x: torch.Tensor, y: torch.Tensor, c: dict) -> dict[str, torch.Tensor]:
    return {
        "x": x @ c["A"] @ torch.tanh(y) + 0.5 * x @ c["Bx"] @ x + 0.1 * (x**4).sum(),
        "y": -torch.sin(x) @ c["A"] @ y + 0.5 * y @ c["By"] @ y,
    }


def dense_jacobian(params: dict[str, list[torch.Tensor]], consts: dict) -> np.ndarray:
    x0 = torch.cat([t.detach().reshape(-1) for t in params["x"]])
    y0 = torch.cat([t.detach().reshape(-1) for t in params["y"]])
    nx = x0.numel()

    def field(z: torch.Tensor) -> torch.Tensor:
        x, y = z[:nx], z[nx:]
        ls = field_losses(x, y, consts)
        gx = torch.autograd.grad(ls["x"], x, create_graph=True)[0]
        gy = torch.autograd.grad(ls["y"], y, create_graph=True)[0]
        return torch.cat([gx, gy])

    z0 = torch.cat([x0, y0])
    return torch.autograd.functional.jacobian(field, z0).numpy()


def dense_shares(vectors: np.ndarray) -> np.ndarray:
    """Shares ``(m, T)`` of the four tensors of SIZES in each column of ``vectors``."""
    sizes = [int(np.prod(s)) for shapes in SIZES.values() for s in shapes]
    w = np.abs(vectors) ** 2
    bounds = np.cumsum([0, *sizes])
    parts = np.stack([w[a:b].sum(axis=0) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
    return parts / parts.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("side", ["left", "right"])
def test_jacobian_shares_equal_those_of_dense_eigenvectors(side):
    game, params, consts = small_game()
    J = dense_jacobian(params, consts)
    values, vectors = np.linalg.eig(J.T if side == "left" else J)
    record = sd.probe(
        game, None, k=4, tol=1e-12, operators=["jacobian"], shares=side, on_error="raise"
    )["jacobian"]
    assert record.shares is not None and record.player_shares is not None
    names = record.tensor_names
    assert len(names) == 4 and set(record.player_shares) == {"x", "y"}
    got = np.stack([record.shares[name] for name in names], axis=1)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)
    for lam, share in zip(record.eigenvalues, got):
        if not np.isfinite(lam):
            continue
        i = int(np.argmin(np.abs(values - lam)))
        assert abs(values[i] - lam) < 1e-8 * np.abs(values).max()
        np.testing.assert_allclose(share, dense_shares(vectors[:, [i]])[0], atol=1e-6)
    players = np.stack([record.player_shares["x"], record.player_shares["y"]], axis=1)
    np.testing.assert_allclose(players, np.stack([got[:, :2].sum(1), got[:, 2:].sum(1)], 1))


def test_hessian_shares_equal_those_of_dense_eigenvectors():
    game, params, consts = small_game(1)
    J = dense_jacobian(params, consts)
    H = J[:7, :7]  # the x player's own Hessian: its diagonal block of J
    values, vectors = np.linalg.eigh((H + H.T) / 2)
    record = sd.probe(game, None, k=3, tol=1e-12, operators=["x"], shares=True, on_error="raise")[
        "x"
    ]
    assert record.shares is not None and len(record.tensor_names) == 2
    got = np.stack([record.shares[name] for name in record.tensor_names], axis=1)
    sizes = [int(np.prod(s)) for s in SIZES["x"]]
    for lam, share in zip(record.eigenvalues.real, got):
        if not np.isfinite(lam):
            continue
        i = int(np.argmin(np.abs(values - lam)))
        w = vectors[:, i] ** 2
        expected = np.array([w[: sizes[0]].sum(), w[sizes[0] :].sum()])
        np.testing.assert_allclose(share, expected, atol=1e-6)


def span_of(J: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the dense left eigenvectors of the given eigenvalues."""
    values, vectors = np.linalg.eig(J.T)
    chosen = [int(np.argmin(np.abs(values - lam))) for lam in eigenvalues if np.isfinite(lam)]
    block = np.concatenate([vectors[:, chosen].real, vectors[:, chosen].imag], axis=1)
    u, s, _ = np.linalg.svd(block, full_matrices=False)
    return u[:, s > 1e-10 * s.max()]


def test_consecutive_probes_measure_how_far_the_top_subspace_turned(tmp_path):
    game, params, consts = small_game(2)
    batch = {"unused": torch.zeros(1)}
    with sd.SpectrumMonitor(
        game,
        tmp_path / "run.h5",
        every=1,
        k=2,
        tol=1e-12,
        operators=["jacobian"],
        shares=True,
        probe_batch=batch,
    ) as mon:
        first = mon.step(0)[0]["jacobian"]
        J0 = dense_jacobian(params, consts)
        gen = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for t in params["x"] + params["y"]:
                t.add_(0.3 * torch.randn(t.shape, dtype=t.dtype, generator=gen))
        second = mon.step(1)[0]["jacobian"]
        J1 = dense_jacobian(params, consts)
    cosines = np.linalg.svd(
        span_of(J0, first.eigenvalues).T @ span_of(J1, second.eigenvalues), compute_uv=False
    )
    assert np.isnan(first.scalars["subspace_overlap"])
    assert 0.0 < np.mean(cosines**2) < 0.999  # the perturbation turned the subspace
    assert second.scalars["subspace_overlap"] == pytest.approx(np.mean(cosines**2), abs=1e-6)
    np.testing.assert_allclose(
        np.sort(second.arrays["principal_cosines"]), np.sort(np.clip(cosines, 0, 1)), atol=1e-6
    )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_the_span_of_m_eigenvectors_has_dimension_m_despite_rounding(dtype):
    # Two real eigenvectors (imaginary parts: rounding noise) and one conjugate pair.
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(50, 2, dtype=torch.float64, generator=gen)
    pair = torch.randn(50, 1, dtype=torch.complex128, generator=gen)
    noise = 1e-6 if dtype == torch.complex64 else 1e-14
    vectors = torch.cat(
        [
            real + 1j * noise * torch.randn(50, 2, dtype=torch.float64, generator=gen),
            pair,
            pair.conj(),
        ],
        dim=1,
    ).to(dtype)
    span = orthonormal_span(vectors)
    assert span.shape == (50, 4)
    np.testing.assert_allclose((span.T @ span).numpy(), np.eye(4), atol=1e-12)
    exact = torch.cat([real, pair.real, pair.imag], dim=1)
    residual = exact - span @ (span.T @ exact)
    assert float(residual.norm() / exact.norm()) < 10 * noise
