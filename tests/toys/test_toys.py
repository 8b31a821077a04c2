"""The reference games of specdiag.toys against their known spectra and dense Jacobians."""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import specdiag as sd
from specdiag import toys

F_PRIME = {"standard": 0.5, "wgan": 1.0}


def operator_matrix(op: sd.LinearOperator) -> torch.Tensor:
    """The dense matrix of an operator, column by column from its products J e_i."""
    eye = torch.eye(op.shape[0], dtype=op.dtype)
    return torch.stack([op.matvec(e) for e in eye], dim=1)


def field_jacobian(
    losses: Mapping[str, torch.Tensor], players: Mapping[str, Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Dense J = dv/dx by differentiating every entry of v with plain autograd."""
    params = [p for ps in players.values() for p in ps]
    v = torch.cat(
        [
            g.reshape(-1)
            for name, ps in players.items()
            for g in torch.autograd.grad(losses[name], ps, create_graph=True)
        ]
    )
    n = v.numel()
    rows = []
    for vi in v:  # an entry of v that is constant in x (a bias the loss is linear in) is a zero row
        if not vi.requires_grad:
            rows.append(torch.zeros(n, dtype=v.dtype))
            continue
        grads = torch.autograd.grad(vi, params, retain_graph=True, allow_unused=True)
        parts = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        rows.append(torch.cat([g.reshape(-1) for g in parts]))
    return torch.stack(rows).detach()


def assert_close_complex(got, expected, atol: float) -> None:
    got, expected = np.asarray(got, dtype=complex), np.asarray(expected, dtype=complex)
    assert got.shape == expected.shape, (got, expected)
    assert np.abs(got - expected).max() <= atol, (got, expected)


def as_multiset(values) -> np.ndarray:
    """Sort complex values by (real, imag) after rounding away the last bits."""
    v = np.asarray(values, dtype=complex)
    return v[np.lexsort((np.round(v.imag, 8), np.round(v.real, 8)))]


# ---------------------------------------------------------------------- Dirac-GAN
def dirac_spectrum(loss: str, **kw) -> np.ndarray:
    toy = toys.dirac_gan(loss=loss, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = sd.eigs(sd.GameJacobian(toy.game, None), k=2)
    assert r.all_converged
    return r.eigenvalues.numpy()


@pytest.mark.parametrize("loss", ["standard", "wgan"])
def test_dirac_gan_plain_eigenvalues_are_pm_i_fprime(loss):
    a = F_PRIME[loss]
    got = dirac_spectrum(loss)
    assert_close_complex(got, [1j * a, -1j * a], 1e-10)
    assert_close_complex(toys.dirac_gan_eigenvalues(loss), [1j * a, -1j * a], 1e-15)


@pytest.mark.parametrize("loss", ["standard", "wgan"])
@pytest.mark.parametrize("ratio", [0.3, 0.9, 1.0, 1.1, 3.0])
def test_dirac_gan_r1_eigenvalues(loss, ratio):
    a = F_PRIME[loss]
    gamma = ratio * 2 * a
    disc = complex(gamma**2 / 4 - a**2) ** 0.5
    expected = [gamma / 2 + disc, gamma / 2 - disc]
    got = dirac_spectrum(loss, r1=gamma)
    # gamma = 2 f'(0): a defective double eigenvalue, found only to about sqrt(eps).
    atol = 1e-6 if ratio == 1.0 else 1e-10
    assert_close_complex(as_multiset(got), as_multiset(expected), atol)
    assert_close_complex(toys.dirac_gan_eigenvalues(loss, r1=gamma), expected, 1e-12)
    if ratio < 1.0:
        assert np.all(np.abs(got.imag) > 1e-3)  # damped rotation
    elif ratio > 1.0:
        assert np.all(np.abs(got.imag) == 0.0)  # two real, distinct
        assert abs(got[0] - got[1]) > 1e-3


@pytest.mark.parametrize("loss", ["standard", "wgan"])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_dirac_gan_consensus_eigenvalues(loss, gamma):
    a = F_PRIME[loss]
    expected = [gamma * a**2 + 1j * a, gamma * a**2 - 1j * a]
    assert_close_complex(dirac_spectrum(loss, consensus=gamma), expected, 1e-10)
    assert_close_complex(toys.dirac_gan_eigenvalues(loss, consensus=gamma), expected, 1e-12)


@pytest.mark.parametrize("loss", ["standard", "wgan"])
def test_dirac_gan_r1_with_consensus_matches_j_plus_gamma_jtj(loss):
    a, r1, c = F_PRIME[loss], 0.4, 0.7
    J = np.array([[0.0, a], [-a, r1]])
    expected = as_multiset(np.linalg.eigvals(J + c * J.T @ J))
    assert_close_complex(as_multiset(dirac_spectrum(loss, r1=r1, consensus=c)), expected, 1e-10)
    assert_close_complex(
        as_multiset(toys.dirac_gan_eigenvalues(loss, r1=r1, consensus=c)), expected, 1e-12
    )
    toy = toys.dirac_gan(loss=loss, r1=r1, consensus=c)
    assert toy.equilibrium_eigenvalues() == toys.dirac_gan_eigenvalues(loss, r1=r1, consensus=c)


def dirac_closed_form_field(loss: str, r1: float, consensus: float):
    """v(theta, psi) written out by hand, with the consensus term v + c J^T v."""
    fprime = (lambda t: torch.sigmoid(-t)) if loss == "standard" else (lambda t: torch.ones_like(t))

    def plain(x: torch.Tensor) -> torch.Tensor:
        theta, psi = x[0], x[1]
        d = fprime(theta * psi)
        return torch.stack([d * psi, -d * theta + r1 * psi])

    def field(x: torch.Tensor) -> torch.Tensor:
        if consensus == 0:
            return plain(x)
        Jx = torch.autograd.functional.jacobian(plain, x, create_graph=True)
        return plain(x) + consensus * Jx.T @ plain(x)

    return field


@pytest.mark.parametrize("loss", ["standard", "wgan"])
@pytest.mark.parametrize("r1,consensus", [(0.0, 0.0), (0.6, 0.0), (0.0, 1.5), (0.6, 1.5)])
@pytest.mark.parametrize("point", [(0.0, 0.0), (0.3, -0.7)])
def test_dirac_gan_operator_matches_closed_form_jacobian(loss, r1, consensus, point):
    toy = toys.dirac_gan(loss=loss, theta=point[0], psi=point[1], r1=r1, consensus=consensus)
    J = sd.GameJacobian(toy.game, None)
    x = torch.tensor(point, dtype=torch.float64)
    field = dirac_closed_form_field(loss, r1, consensus)
    expected = torch.autograd.functional.jacobian(field, x)
    torch.testing.assert_close(J.field.value, field(x).detach(), rtol=0, atol=1e-14)
    torch.testing.assert_close(operator_matrix(J), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(operator_matrix(J.T), expected.T, rtol=0, atol=1e-12)


def test_dirac_gan_rejects_bad_settings():
    with pytest.raises(ValueError, match="loss"):
        toys.dirac_gan(loss="hinge")
    with pytest.raises(ValueError, match="r1"):
        toys.dirac_gan_eigenvalues("standard", r1=-1.0)
    with pytest.raises(ValueError, match="consensus"):
        toys.dirac_gan(consensus=float("nan"))


# ---------------------------------------------------------------------- bilinear game
def random_matrix(shape: tuple[int, int], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def pm_i_sigma(A: torch.Tensor, count: int) -> np.ndarray:
    sigma = np.linalg.svd(A.numpy(), compute_uv=False)[:count]
    return np.stack([1j * sigma, -1j * sigma], axis=1).reshape(-1)


@pytest.mark.parametrize("which", ["LM", "LI"])
def test_bilinear_top_eigenvalues_are_pm_i_sigma(which):
    A = random_matrix((30, 20), seed=1)
    toy = toys.bilinear_game(A)
    assert torch.equal(toy.A, A) and toy.game.n == 50
    tol = 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = sd.eigs(sd.GameJacobian(toy.game, None), k=6, which=which, tol=tol)
    # LM runs Krylov-Schur; LI seeks eigenvalues that may lie inside the spectrum, so an
    # operator this small is solved exactly (n products)
    exact = "solved exactly" in " ".join(r.notes)
    assert r.all_converged and exact is (which == "LI")
    expected = pm_i_sigma(A, 3)
    assert_close_complex(r.eigenvalues.numpy(), expected, tol * abs(expected[0]))
    assert_close_complex(toy.eigenvalues().numpy()[:6], expected, 1e-12)


def test_bilinear_has_n_minus_m_zero_eigenvalues():
    A = random_matrix((30, 20), seed=2)
    toy = toys.bilinear_game(A)
    J = sd.GameJacobian(toy.game, None)
    dense = operator_matrix(J)
    block = torch.zeros(50, 50, dtype=torch.float64)
    block[:30, 30:], block[30:, :30] = A, -A.T
    torch.testing.assert_close(dense, block, rtol=0, atol=1e-14)
    lam = np.linalg.eigvals(dense.numpy())
    scale = np.abs(lam).max()
    assert int(np.sum(np.abs(lam) < 1e-10 * scale)) == 10
    assert_close_complex(as_multiset(lam), as_multiset(toy.eigenvalues().numpy()), 1e-10 * scale)
    r = sd.eigs(J, k=1, which="SM", tol=1e-6)
    assert r.all_converged
    assert abs(complex(r.eigenvalues[0])) < 1e-8 * scale


def test_bilinear_rank_deficient_invariant_subspace():
    # rank 3, n = 80: the Krylov space is invariant after 7 vectors.
    A = random_matrix((40, 3), seed=3) @ random_matrix((3, 40), seed=4)
    toy = toys.bilinear_game(A)
    tol = 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = sd.eigs(sd.GameJacobian(toy.game, None), k=6, which="LM", tol=tol)
    assert r.all_converged
    expected = pm_i_sigma(A, 3)
    assert_close_complex(r.eigenvalues.numpy(), expected, tol * abs(expected[0]))
    assert r.n_matvec < 40


def test_bilinear_factory_seed_init_and_point_independence():
    a, b = toys.bilinear_game(n=7, m=4, seed=5), toys.bilinear_game(n=7, m=4, seed=5)
    assert torch.equal(a.A, b.A) and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.A, toys.bilinear_game(n=7, m=4, seed=6).A)
    zero = toys.bilinear_game(a.A, init="zero")
    assert not zero.x.any() and not zero.y.any() and a.x.abs().min() > 0
    torch.testing.assert_close(
        operator_matrix(sd.GameJacobian(a.game, None)),
        operator_matrix(sd.GameJacobian(zero.game, None)),
    )
    lam = a.eigenvalues()
    assert lam.dtype == torch.complex128 and lam.shape == (11,)
    assert int((lam == 0).sum()) == 3
    with pytest.raises(ValueError, match="init"):
        toys.bilinear_game(n=3, m=3, init="ones")


# ---------------------------------------------------------------------- MoG GAN
def hand_count(n_in: int, n_out: int, hidden: int, depth: int, batchnorm: bool) -> int:
    sizes = [n_in] + [hidden] * depth + [n_out]
    linear = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    return linear + (2 * hidden * depth if batchnorm else 0)


@pytest.mark.parametrize(
    "hidden,depth,latent,batchnorm,activation",
    [(16, 1, 4, False, "relu"), (16, 4, 16, True, "leaky_relu"), (220, 3, 16, False, "relu")],
)
def test_mog_parameter_counts(hidden, depth, latent, batchnorm, activation):
    gan = toys.mog_gan(
        hidden=hidden, depth=depth, latent=latent, batchnorm=batchnorm, activation=activation
    )
    expected = {
        "generator": hand_count(latent, 2, hidden, depth, batchnorm),
        "discriminator": hand_count(2, 1, hidden, depth, batchnorm),
    }
    assert gan.n_parameters == expected
    assert toys.mog_gan_parameter_count(hidden, depth, latent, batchnorm=batchnorm) == expected
    assert sum(p.numel() for p in gan.generator.parameters()) == expected["generator"]


def test_mog_documented_sizes():
    assert sum(toys.mog_gan_parameter_count(220, 3).values()) == 199_543
    assert sum(toys.mog_gan_parameter_count(576, 4).values()) == 2_007_363
    doc = toys.mog_gan.__doc__
    assert doc is not None and "199,543" in doc and "2,007,363" in doc


def test_mog_sampling_is_seeded_and_on_the_ring():
    gan = toys.mog_gan(hidden=8, depth=1)
    a = gan.sample(512, torch.Generator().manual_seed(0))
    b = gan.sample(512, torch.Generator().manual_seed(0))
    c = gan.sample(512, torch.Generator().manual_seed(1))
    assert torch.equal(a["real"], b["real"]) and torch.equal(a["z"], b["z"])
    assert not torch.equal(a["real"], c["real"])
    assert a["real"].shape == (512, 2) and a["z"].shape == (512, 16)
    assert a["real"].dtype == torch.float32
    centres = torch.tensor(
        [[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)]
    )
    dist = torch.cdist(a["real"], centres)
    nearest = dist.min(dim=1)
    assert nearest.values.max() < 6 * 0.02
    assert set(nearest.indices.tolist()) == set(range(8))
    assert 0.01 < nearest.values.mean() < 0.04  # ~ std * sqrt(pi/2)


def test_mog_sampling_uses_the_global_stream_without_generator():
    gan = toys.mog_gan(hidden=8, depth=1)
    torch.manual_seed(11)
    a = gan.sample(16)
    torch.manual_seed(11)
    assert torch.equal(a["real"], gan.sample(16)["real"])


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax", "wgan"])
def test_mog_losses_are_the_game_losses(loss):
    gan = toys.mog_gan(hidden=16, depth=2, loss=loss)
    batch = gan.sample(64, torch.Generator().manual_seed(0))
    out = gan.losses(batch)
    assert set(out) == {"generator", "discriminator"}
    for value in out.values():
        assert value.shape == () and torch.isfinite(value)
    with torch.no_grad():
        d_real = gan.discriminator(batch["real"]).reshape(-1)
        d_fake = gan.discriminator(gan.generator(batch["z"])).reshape(-1)
    if loss == "wgan":
        l_d = d_fake.mean() - d_real.mean()
    else:
        l_d = -(F.logsigmoid(d_real).mean() + torch.log1p(-torch.sigmoid(d_fake)).mean())
    l_g = F.softplus(-d_fake).mean() if loss == "nonsaturating" else -l_d
    torch.testing.assert_close(out["discriminator"].detach(), l_d, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["generator"].detach(), l_g, rtol=1e-5, atol=1e-6)
    # No detach: the generator's parameters reach the discriminator's loss.
    grads = torch.autograd.grad(
        out["discriminator"], list(gan.generator.parameters()), allow_unused=True
    )
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def snapshot(gan: toys.MoGGAN) -> list[torch.Tensor]:
    return [p.detach().clone() for p in gan.game.parameters()]


def test_mog_train_is_deterministic_and_leaves_global_rng():
    runs = []
    for _ in range(2):
        gan = toys.mog_gan(hidden=32, depth=2, seed=3)
        before = snapshot(gan)
        rng_state = torch.get_rng_state()
        history = gan.train(20, lr=1e-3, batch_size=64, seed=7)
        assert torch.equal(torch.get_rng_state(), rng_state)
        runs.append((snapshot(gan), history))
    (p1, h1), (p2, h2) = runs
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))
    assert all(torch.equal(h1[k], h2[k]) for k in h1)
    assert all(not torch.equal(a, b) for a, b in zip(p1, before))
    assert h1["generator"].shape == (20,) and torch.isfinite(h1["discriminator"]).all()
    assert all(p.grad is None for p in gan.game.parameters())
    other = toys.mog_gan(hidden=32, depth=2, seed=3)
    other.train(20, lr=1e-3, batch_size=64, seed=8)
    assert not all(torch.equal(a, b) for a, b in zip(p1, snapshot(other)))


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_mog_train_updates_simultaneously(loss):
    gan = toys.mog_gan(hidden=16, depth=2, loss=loss, dtype=torch.float64, seed=1)
    lr = 0.05
    batch = gan.sample(32, torch.Generator().manual_seed(4))
    v = gan.game.vector_field(batch)
    x0 = torch.cat([p.detach().reshape(-1) for p in gan.game.parameters()])
    gan.train(1, lr=lr, batch_size=32, optimizer="sgd", seed=4)
    x1 = torch.cat([p.detach().reshape(-1) for p in gan.game.parameters()])
    torch.testing.assert_close(x1, x0 - lr * v, rtol=0, atol=1e-12)


def test_mog_train_callback_sees_each_step():
    gan = toys.mog_gan(hidden=8, depth=1)
    seen = []
    gan.train(
        3, batch_size=8, callback=lambda step, batch: seen.append((step, batch["real"].shape))
    )
    assert seen == [(0, (8, 2)), (1, (8, 2)), (2, (8, 2))]
    with pytest.raises(ValueError, match="optimizer"):
        gan.train(1, optimizer="lbfgs")


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax", "wgan"])
def test_mog_jacobian_spectrum_matches_dense(loss):
    gan = toys.mog_gan(hidden=16, depth=1, latent=4, loss=loss, dtype=torch.float64, seed=2)
    gan.train(10, lr=1e-2, batch_size=32, seed=0)
    batch = gan.sample(32, torch.Generator().manual_seed(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        J = sd.GameJacobian(gan.game, batch)
        r = sd.eigs(J, k=4, tol=1e-8)
    assert r.all_converged
    players = {
        "generator": list(gan.generator.parameters()),
        "discriminator": list(gan.discriminator.parameters()),
    }
    dense = field_jacobian(gan.losses(batch), players)
    ng = gan.n_parameters["generator"]
    coupling = dense[:ng, ng:]
    assert coupling.abs().max() > 1e-6
    if loss != "nonsaturating":  # zero-sum: J_GD = -J_DG^T
        torch.testing.assert_close(coupling, -dense[ng:, :ng].T, rtol=0, atol=1e-12)
    lam = np.linalg.eigvals(dense.numpy())
    top = lam[np.argsort(-np.abs(lam), kind="stable")][: r.k]
    scale = np.abs(lam).max()
    got = r.eigenvalues.numpy()
    assert_close_complex(np.sort(np.abs(got)), np.sort(np.abs(top)), 1e-6 * scale)
    for g in got:
        assert np.abs(lam - g).min() < 1e-6 * scale


def test_mog_consensus_field_is_v_plus_gamma_jt_v():
    gamma = 10.0
    plain = toys.mog_gan(hidden=8, depth=2, latent=4, dtype=torch.float64, seed=3)
    plain.train(5, lr=1e-2, batch_size=32, seed=0)
    consensus = toys.mog_gan(
        hidden=8, depth=2, latent=4, dtype=torch.float64, seed=3, consensus=gamma
    )
    with torch.no_grad():
        for a, b in zip(consensus.game.parameters(), plain.game.parameters()):
            a.copy_(b)
    batch = plain.sample(32, torch.Generator().manual_seed(1))
    v = plain.game.vector_field(batch)
    jt_v = sd.GameJacobian(plain.game, batch).rmatvec(v)
    torch.testing.assert_close(
        consensus.game.vector_field(batch), v + gamma * jt_v, rtol=1e-10, atol=1e-12
    )
    assert "consensus=10.0" in repr(consensus)
    with pytest.raises(ValueError, match="consensus"):
        toys.mog_gan(consensus=-1.0)
