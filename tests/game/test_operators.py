"""Matrix-free game operators: products against dense references, and no side effects."""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Any, Callable

import pytest
import torch
from games import SmallGame, assert_same, gan_game, mlp, snapshot, three_player_game
from torch import nn
from torch.nn import functional as F

import specdiag as sd

F64 = torch.float64
GAN_LOSSES = ["nonsaturating", "minimax", "wgan"]
TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


@functools.lru_cache(maxsize=None)
def reference(name: str, dtype: torch.dtype = F64) -> tuple[SmallGame, torch.Tensor]:
    """A small game and its dense Jacobian (cached: the tests below only read them)."""
    if name == "three-player":
        sg = three_player_game(dtype=dtype)
    else:
        sg = gan_game(loss=name, hidden=6, dtype=dtype)
    return sg, sg.dense_jacobian()


def dense(apply, n: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """The matrix whose columns are ``apply`` of the identity's columns."""
    return torch.stack([apply(e) for e in torch.eye(n, dtype=dtype)], dim=1)


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    err = float((actual - expected).norm() / expected.norm())
    assert err <= rtol, f"relative error {err:.2e} > {rtol:.0e}"


def randn(n: int, dtype: torch.dtype = F64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dtype=dtype, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------- products
CASES = [(loss, dtype) for loss in GAN_LOSSES for dtype in (F64, torch.float32)]
CASES += [("three-player", F64)]


@pytest.mark.parametrize("name, dtype", CASES, ids=[f"{n}-{str(d)[6:]}" for n, d in CASES])
def test_jacobian_matches_dense_reference(name, dtype):
    sg, Jd = reference(name, dtype)
    J = sd.GameJacobian(sg.game, None)
    n = sg.game.n
    assert J.shape == (n, n) and J.dtype == dtype and J.device == torch.device("cpu")
    tol = TOL[dtype]
    assert_rel_close(dense(J.matvec, n, dtype), Jd, tol)
    assert_rel_close(dense(J.rmatvec, n, dtype), Jd.T, tol)
    u = randn(n, dtype, seed=1)
    assert_rel_close(J.matvec(u), Jd @ u, tol)
    assert_rel_close(J.rmatvec(u), Jd.T @ u, tol)
    assert_rel_close(J @ u, Jd @ u, tol)
    strided = randn(2 * n, dtype, seed=2)[::2]
    assert_rel_close(J.matvec(strided), Jd @ strided, tol)
    assert_rel_close(J.rmatvec(strided), Jd.T @ strided, tol)
    # the game Jacobian of these games is not symmetric: J u and Jᵀ u differ
    assert float((J.matvec(u) - J.rmatvec(u)).norm()) > 1e-3 * float(J.matvec(u).norm())


@pytest.mark.parametrize("name", GAN_LOSSES + ["three-player"])
def test_adjoint_identity(name):
    sg, _ = reference(name)
    J = sd.GameJacobian(sg.game, None)
    for seed in range(3):
        u, w = randn(J.shape[0], seed=2 * seed), randn(J.shape[0], seed=2 * seed + 1)
        Ju, JTw = J.matvec(u), J.rmatvec(w)
        assert abs(float(w @ Ju - JTw @ u)) <= 1e-12 * float(w.norm() * Ju.norm())


@pytest.mark.parametrize("name", GAN_LOSSES)
def test_zero_sum_games_have_antisymmetric_coupling(name):
    sg, _ = reference(name)
    game = sg.game
    Jp = dense(sd.GameJacobian(game, None).matvec, game.n)
    g, d = game.player_slice("generator"), game.player_slice("discriminator")
    J_gd, J_dg = Jp[g, d], Jp[d, g]
    gap = float((J_gd + J_dg.T).norm() / J_gd.norm())
    if name == "nonsaturating":
        assert gap > 1e-2  # not zero-sum
    else:
        assert gap <= 1e-12


def test_bilinear_game_has_the_known_jacobian():
    # min_x max_y xᵀAy with the players as plain tensors: J = [[0, A], [-Aᵀ, 0]].
    A = randn(12).reshape(3, 4)
    x, y = randn(3, seed=5).requires_grad_(), randn(4, seed=6).requires_grad_()
    game = sd.Game({"x": x, "y": [y]}, lambda b: {"x": x @ A @ y, "y": -(x @ A @ y)})
    expected = torch.zeros(7, 7, dtype=F64)
    expected[:3, 3:], expected[3:, :3] = A, -A.T
    J = sd.GameJacobian(game, None)
    torch.testing.assert_close(dense(J.matvec, 7), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(dense(J.rmatvec, 7), expected.T, rtol=0, atol=1e-15)
    for player in ("x", "y"):
        H = sd.PlayerHessian(game, player, None)
        assert torch.count_nonzero(H.matvec(randn(H.shape[0]))) == 0


def test_one_player_jacobian_is_its_hessian():
    A = randn(16).reshape(4, 4)
    A = A + A.T
    x = randn(4, seed=3).requires_grad_()
    game = sd.Game({"x": x}, lambda b: {"x": 0.5 * x @ A @ x + x.pow(3).sum()})
    expected = A + torch.diag(6 * x.detach())
    J, H = sd.GameJacobian(game, None), sd.PlayerHessian(game, "x", None)
    for apply in (J.matvec, J.rmatvec, H.matvec):
        torch.testing.assert_close(dense(apply, 4), expected, rtol=1e-14, atol=1e-14)


# ---------------------------------------------------------------------- player Hessians
@pytest.mark.parametrize("name", GAN_LOSSES + ["three-player"])
def test_player_hessian_is_the_diagonal_block(name):
    sg, Jd = reference(name)
    game = sg.game
    for player in game.player_names:
        H = sd.PlayerHessian(game, player, None)
        s = game.player_slice(player)
        n_i = game.sizes[player]
        assert H.shape == (n_i, n_i) and H.symmetric and H.T is H
        Hd = dense(H.matvec, n_i)
        assert_rel_close(Hd, Jd[s, s], 1e-10)
        assert_rel_close(Hd.T, Hd, 1e-12)
        u = randn(n_i, seed=4)
        assert torch.equal(H.rmatvec(u), H.matvec(u))
        assert "PlayerHessian" in repr(H) and repr(player) in repr(H)


def test_player_hessian_unknown_player():
    sg, _ = reference("minimax")
    players = r"\['generator', 'discriminator'\]"
    with pytest.raises(KeyError, match=rf"unknown player 'critic'.*{players}"):
        sd.PlayerHessian(sg.game, "critic", None)
    with pytest.raises(KeyError, match="unknown player 'critic'"):
        sd.PlayerHessian.from_field(sd.GameField(sg.game, None), "critic")


# ---------------------------------------------------------------------- transpose and counters
def test_transpose_swaps_products_and_shares_counters():
    sg, _ = reference("nonsaturating")
    J = sd.GameJacobian(sg.game, None)
    JT = J.T
    assert isinstance(JT, sd.linalg.TransposedOperator)
    assert JT.T is J and JT.shape == J.shape and JT.dtype == J.dtype and JT.device == J.device
    u = randn(J.shape[0], seed=7)
    assert torch.equal(JT.matvec(u), J.rmatvec(u))
    assert torch.equal(JT.rmatvec(u), J.matvec(u))
    assert torch.equal(JT @ u, J.rmatvec(u))
    # so far: J.rmatvec ×4 (two through JT), J.matvec ×2 (one through JT)
    assert (J.n_matvec, J.n_rmatvec, J.n_products) == (2, 4, 6)
    assert (JT.n_matvec, JT.n_rmatvec, JT.n_products) == (4, 2, 6)
    J.matvec(u)
    assert (JT.n_matvec, JT.n_rmatvec) == (4, 3)


def test_hessian_counters():
    sg, _ = reference("wgan")
    H = sd.PlayerHessian(sg.game, "discriminator", None)
    u = randn(H.shape[0])
    for product in (H.matvec, H.matvec, H.rmatvec, H.T.matvec):
        product(u)
    assert (H.n_matvec, H.n_rmatvec, H.n_products) == (3, 1, 4)


def test_bad_vectors_are_refused_clearly():
    sg, _ = reference("minimax")
    J = sd.GameJacobian(sg.game, None)
    H = sd.PlayerHessian(sg.game, "generator", None)
    n, n_g = J.shape[0], H.shape[0]
    shape = rf"expected a vector of shape \({n},\)"
    # (product, vector, error, message); one vector is a list, on purpose
    bad: list[tuple[Callable[[Any], torch.Tensor], object, type[Exception], str]] = [
        (J.matvec, torch.zeros(n + 1, dtype=F64), ValueError, rf"{shape}, got \({n + 1},\)"),
        (J.rmatvec, torch.zeros(n, 1, dtype=F64), ValueError, rf"{shape}, got \({n}, 1\)"),
        (
            J.T.matvec,
            torch.zeros(n, dtype=torch.float32),
            TypeError,
            r"torch.float64 vectors on cpu; got torch.float32 on cpu.*u.to\(op.device, op.dtype\)",
        ),
        (J.matvec, torch.zeros(n, dtype=F64, device="meta"), TypeError, r"float64 on meta"),
        (J.matvec, [0.0] * n, TypeError, r"expected a torch.Tensor, got list"),
        (H.matvec, torch.zeros(n, dtype=F64), ValueError, rf"shape \({n_g},\), got \({n},\)"),
    ]
    for apply, u, exc, message in bad:
        with pytest.raises(exc, match=message):
            apply(u)
    assert J.n_products == 0 and H.n_products == 0


# ---------------------------------------------------------------------- sharing and seeds
def counting_gan(loss: str = "nonsaturating"):
    sg, Jd = reference(loss)
    calls = []

    def losses(batch):
        calls.append(batch)
        return sg.loss_fn({p: dict(m.named_parameters()) for p, m in sg.modules.items()})

    return sd.Game(sg.modules, losses), calls, Jd


def test_one_field_serves_every_operator():
    game, calls, Jd = counting_gan()
    field = sd.GameField(game, "batch")
    players = game.player_names
    ops: list[sd.GameJacobian | sd.PlayerHessian] = [sd.GameJacobian.from_field(field)]
    ops += [sd.PlayerHessian.from_field(field, p) for p in players]
    assert calls == ["batch"]
    separate: list[sd.GameJacobian | sd.PlayerHessian] = [sd.GameJacobian(game, "batch")]
    separate += [sd.PlayerHessian(game, p, "batch") for p in players]
    assert len(calls) == 4
    for shared, alone in zip(ops, separate):
        assert shared.field is field
        u = randn(shared.shape[0], seed=8)
        torch.testing.assert_close(shared.matvec(u), alone.matvec(u), rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(shared.rmatvec(u), alone.rmatvec(u), rtol=1e-13, atol=1e-15)
    assert len(calls) == 4  # products never call the closure
    torch.testing.assert_close(field.value, game.vector_field("batch"), rtol=1e-14, atol=0)
    assert set(field.losses) == set(game.player_names)
    assert all(isinstance(v, float) for v in field.losses.values())
    assert_rel_close(dense(ops[0].matvec, game.n), Jd, 1e-10)


def noisy_game():
    """A GAN whose discriminator sees fresh noise on every call of the closure."""
    torch.manual_seed(0)
    G, D = mlp([2, 4, 2]).double(), mlp([2, 4, 1]).double()
    z, x = randn(8, seed=1).reshape(4, 2), randn(8, seed=2).reshape(4, 2)

    def losses(batch):
        d_fake = D(G(z) + 0.3 * torch.randn(4, 2, dtype=F64))
        l_d = F.softplus(-D(x)).mean() + F.softplus(d_fake).mean()
        return {"generator": F.softplus(-d_fake).mean(), "discriminator": l_d}

    return sd.Game({"generator": G, "discriminator": D}, losses)


def test_seed_fixes_the_noise():
    game = noisy_game()
    u = randn(game.n, seed=9)
    a, b, c = (sd.GameJacobian(game, None, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.matvec(u), b.matvec(u)) and torch.equal(a.rmatvec(u), b.rmatvec(u))
    assert not torch.allclose(a.rmatvec(u), c.rmatvec(u))
    h1, h2 = (sd.PlayerHessian(game, "discriminator", None, seed=s) for s in (3, 3))
    v = randn(h1.shape[0], seed=10)
    assert torch.equal(h1.matvec(v), h2.matvec(v))
    # one operator is one fixed matrix: the same product twice is the same vector
    assert torch.equal(c.rmatvec(u), c.rmatvec(u)) and torch.equal(c.matvec(u), c.matvec(u))


# ---------------------------------------------------------------------- coupling warning
def detaching_gan():
    sg, _ = reference("nonsaturating")
    G, D = sg.modules["generator"], sg.modules["discriminator"]
    z, x = randn(12, seed=1).reshape(4, 3), randn(8, seed=2).reshape(4, 2)

    def losses(batch):
        fake = G(z)
        l_d = F.softplus(-D(x)).mean() + F.softplus(D(fake.detach())).mean()
        return {"generator": F.softplus(-D(fake)).mean(), "discriminator": l_d}

    return sd.Game(sg.modules, losses)


@pytest.mark.parametrize("build", ["GameJacobian", "PlayerHessian", "GameField"])
def test_warns_when_a_player_is_cut_off_from_the_others(build):
    game = detaching_gan()
    make = {
        "GameJacobian": lambda: sd.GameJacobian(game, None),
        "PlayerHessian": lambda: sd.PlayerHessian(game, "generator", None),
        "GameField": lambda: sd.GameField(game, None),
    }[build]
    message = r"gradient of player\(s\) 'discriminator' does not depend on any other player"
    with pytest.warns(UserWarning, match=message) as record:
        make()
    assert len(record) == 1
    assert record[0].filename == __file__  # points at the user's line, not inside specdiag


@pytest.mark.parametrize("name", GAN_LOSSES + ["three-player"])
def test_no_warning_for_coupled_games(name):
    sg, _ = reference(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sd.GameJacobian(sg.game, None)


# ---------------------------------------------------------------------- grad modes
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_products_inside_no_grad_and_inference_mode(mode):
    sg, Jd = reference("minimax")
    game = sg.game
    s = game.player_slice("discriminator")
    with mode():
        J = sd.GameJacobian(game, None)
        H = sd.PlayerHessian(game, "discriminator", None)
        u = torch.randn(game.n, dtype=F64)
        Ju, JTu, Hu = J.matvec(u), J.rmatvec(u), H.matvec(u[s].clone())
    u = u.clone()
    assert_rel_close(Ju, Jd @ u, 1e-10)
    assert_rel_close(JTu, Jd.T @ u, 1e-10)
    assert_rel_close(Hu, Jd[s, s] @ u[s], 1e-10)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")  # raised by torch's own imports
@pytest.mark.parametrize("wrap", ["DataParallel", "compile"])
def test_wrapped_players_are_read_through_the_underlying_module(wrap):
    sg, Jd = reference("wgan")
    wrapper = nn.DataParallel if wrap == "DataParallel" else torch.compile  # CPU: no GPU needed
    # torch.compile is typed as returning a plain callable; on a module it returns a module
    wrapped: dict[str, Any] = {p: wrapper(m) for p, m in sg.modules.items()}

    def losses(batch):
        return sg.loss_fn({p: dict(m.named_parameters()) for p, m in sg.modules.items()})

    game = sd.Game(wrapped, losses)
    for p, m in sg.modules.items():
        assert all(a is b for a, b in zip(game.parameters(p), m.parameters()))
        assert len(game.parameters(p)) == len(list(m.parameters()))
    assert game.modules == tuple(sg.modules.values())
    assert_rel_close(dense(sd.GameJacobian(game, None).rmatvec, game.n), Jd.T, 1e-10)


# ---------------------------------------------------------------------- no side effects
def stateful_gan(kind: str):
    """A GAN with state a probe could disturb; ``kind`` picks the extra hazard."""
    torch.manual_seed(0)
    G = mlp([3, 5, 2], batchnorm=True).double()
    D = mlp([2, 5, 1], batchnorm=kind != "spectral-norm").double()
    if kind == "spectral-norm":
        D[0] = nn.utils.parametrizations.spectral_norm(D[0])
    G.train(), D.train()
    z, x = randn(18, seed=1).reshape(6, 3), randn(12, seed=2).reshape(6, 2)
    G[0].weight.grad = randn(15, seed=3).reshape(5, 3)  # a gradient left by the training step

    def losses(batch):
        noise = 0.1 * torch.randn(6, 2, dtype=F64)
        if kind == "eval-in-closure":
            G.eval()
        fake = G(z) + noise
        d_fake = D(fake)
        l_d = F.softplus(-D(x)).mean() + F.softplus(d_fake).mean()
        return {"generator": F.softplus(-d_fake).mean(), "discriminator": l_d}

    game = sd.Game({"generator": G, "discriminator": D}, losses)
    if kind == "frozen-after-build":
        D.requires_grad_(False)
    return game, [G, D]


@pytest.mark.parametrize(
    "kind", ["batchnorm-train", "spectral-norm", "frozen-after-build", "eval-in-closure"]
)
def test_operators_leave_the_models_as_they_were(kind):
    game, modules = stateful_gan(kind)
    before = snapshot(modules)
    field = sd.GameField(game, None)
    J = sd.GameJacobian.from_field(field)
    ops = [J, J.T, sd.GameJacobian(game, None, seed=0)]
    ops += [sd.PlayerHessian(game, p, None) for p in game.player_names]
    for op in ops:
        u = randn(op.shape[0], seed=11)
        for product in (op.matvec(u), op.rmatvec(u), op.matvec(u)):
            assert torch.isfinite(product).all() and product.norm() > 0
    game.vector_field(None)
    assert_same(before, snapshot(modules))
    # the products are J's: the adjoint identity holds on this graph too
    u, w = randn(game.n, seed=12), randn(game.n, seed=13)
    Ju = J.matvec(u)
    assert abs(float(w @ Ju - J.rmatvec(w) @ u)) <= 1e-12 * float(w.norm() * Ju.norm())


def test_frozen_player_gives_the_same_operator():
    game, (G, D) = stateful_gan("batchnorm-train")
    u = randn(game.n, seed=14)
    J = sd.GameJacobian(game, None)
    expected = (J.matvec(u), J.rmatvec(u))
    D.requires_grad_(False)
    J_frozen = sd.GameJacobian(game, None)
    H = sd.PlayerHessian(game, "discriminator", None)
    assert torch.equal(J_frozen.matvec(u), expected[0])
    assert torch.equal(J_frozen.rmatvec(u), expected[1])
    assert H.matvec(u[game.player_slice("discriminator")]).norm() > 0
    assert not any(p.requires_grad for p in D.parameters())
    assert all(p.requires_grad for p in G.parameters())


def test_batchnorm_train_mode_products_match_a_dense_reference():
    game, (G, D) = stateful_gan("batchnorm-train")
    # the reference runs on copies (its forward passes update their own running statistics)
    Gc, Dc = copy.deepcopy(G), copy.deepcopy(D)
    noise = 0.1 * torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    z, x = randn(18, seed=1).reshape(6, 3), randn(12, seed=2).reshape(6, 2)

    def loss_fn(params):
        def gen(inputs):
            return torch.func.functional_call(Gc, params["generator"], (inputs,))

        def disc(inputs):
            return torch.func.functional_call(Dc, params["discriminator"], (inputs,))

        d_fake = disc(gen(z) + noise)
        l_d = F.softplus(-disc(x)).mean() + F.softplus(d_fake).mean()
        return {"generator": F.softplus(-d_fake).mean(), "discriminator": l_d}

    Jd = SmallGame(game, {"generator": G, "discriminator": D}, loss_fn).dense_jacobian()
    J = sd.GameJacobian(game, None, seed=5)
    assert_rel_close(dense(J.matvec, game.n), Jd, 1e-10)
    assert_rel_close(dense(J.rmatvec, game.n), Jd.T, 1e-10)


def test_products_survive_a_training_step_between_them():
    game, (G, D) = stateful_gan("batchnorm-train")
    J = sd.GameJacobian(game, None)
    u = randn(game.n, seed=15)
    expected = (J.matvec(u), J.rmatvec(u))
    # the training code's own forward and backward update the running statistics in place
    D(G(torch.randn(6, 3, dtype=F64))).mean().backward()
    assert int(D[1].num_batches_tracked) == 1
    assert torch.equal(J.matvec(u), expected[0]) and torch.equal(J.rmatvec(u), expected[1])
