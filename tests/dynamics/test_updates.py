"""Update operators against dense references built from the optimisers' own steps."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch
from games import gan_game, three_player_game
from scipy.optimize import linear_sum_assignment

import specdiag as sd
from specdiag import toys
from specdiag.dynamics import (
    UPDATE_METHODS,
    GradientDescentUpdate,
    MomentumUpdate,
    optimizer_preconditioner,
    spectral_radius,
    update_operator,
)
from specdiag.game.operators import GameJacobian
from specdiag.stability import METHODS, max_stable_lr, update_eigenvalues

F64 = torch.float64
PLAYERS = ("generator", "discriminator")


# ---------------------------------------------------------------------- references
def reference_step(
    method: str,
    J: torch.Tensor,
    h: torch.Tensor,
    first: torch.Tensor,
    *,
    beta: float = 0.0,
    gamma: float = 0.0,
):
    """One optimiser step on the linear field v(x) = J x, written as the optimiser runs it.

    ``h`` is the per-coordinate step, ``first`` the 0/1 mask of the player that moves
    first in alternating methods. Methods with memory map the state (x_t, x_{t-1}).
    """
    v = lambda x: J @ x  # noqa: E731
    second = 1 - first
    n = J.shape[0]

    def momentum_step(x, prev, mask):
        new = x + mask * (-h * v(x) + beta * (x - prev))
        return new, mask * x + (1 - mask) * prev

    def step(state):
        x, prev = state[:n], state[n:]
        if method == "gd":
            return x - h * v(x)
        if method == "alternating_gd":
            x = x - first * h * v(x)
            return x - second * h * v(x)
        if method == "extragradient":
            return x - h * v(x - h * v(x))
        if method == "consensus":
            return x - h * (v(x) + gamma * J.T @ v(x))
        if method == "sga":
            A = (J - J.T) / 2
            return x - h * (v(x) + gamma * A.T @ v(x))
        if method == "optimistic":
            return torch.cat([x - 2 * h * v(x) + h * v(prev), x])
        if method == "momentum":
            return torch.cat(momentum_step(x, prev, torch.ones_like(x)))
        x, prev = momentum_step(x, prev, first)
        return torch.cat(momentum_step(x, prev, second))

    return step


def reference_update(
    method: str, J: torch.Tensor, h: torch.Tensor, first: torch.Tensor, **kw
) -> torch.Tensor:
    """Dense ∂T by autograd of the reference step (exact: the field is linear)."""
    n = J.shape[0] * (2 if method in ("optimistic", "momentum", "alternating_momentum") else 1)
    return torch.autograd.functional.jacobian(
        reference_step(method, J, h, first, **kw), torch.zeros(n, dtype=F64)
    )


def columns(apply, n: int) -> torch.Tensor:
    return torch.stack([apply(e) for e in torch.eye(n, dtype=F64)], dim=1)


def rho(matrix: torch.Tensor) -> float:
    return float(np.abs(np.linalg.eigvals(matrix.numpy())).max())


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-12) -> None:
    err = float((actual - expected).norm() / expected.norm())
    assert err <= rtol, f"relative error {err:.1e}"


def same_multiset(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    rows, cols = linear_sum_assignment(np.abs(a[:, None] - b[None, :]))
    assert len(rows) == len(a) == len(b)
    assert np.abs(a[rows] - b[cols]).max() <= atol


@functools.lru_cache(maxsize=None)
def small_gan():
    sg = gan_game(loss="nonsaturating", hidden=4)
    return sg, sg.dense_jacobian()


def quadratic_game(n: int = 4, m: int = 3, shift: float = 0.6, seed: int = 0):
    """A two-player quadratic game with a given Jacobian M (symmetric diagonal blocks).

    L_x = ½ xᵀM_xx x + xᵀM_xy y and L_y = ½ yᵀM_yy y + yᵀM_yx x give v = M (x, y).
    M = rotation-heavy random + shift·I: every eigenvalue has Re λ > 0.
    """
    gen = torch.Generator().manual_seed(seed)
    R = torch.randn(n + m, n + m, generator=gen, dtype=F64)
    M = (R - R.T) + 0.3 * (R @ R.T) / (n + m) + shift * torch.eye(n + m, dtype=F64)
    M[:n, :n] = (M[:n, :n] + M[:n, :n].T) / 2
    M[n:, n:] = (M[n:, n:] + M[n:, n:].T) / 2
    x = torch.randn(n, generator=gen, dtype=F64).requires_grad_()
    y = torch.randn(m, generator=gen, dtype=F64).requires_grad_()

    def losses(_batch):
        return {
            "x": 0.5 * x @ M[:n, :n] @ x + x @ M[:n, n:] @ y,
            "y": 0.5 * y @ M[n:, n:] @ y + y @ M[n:, :n] @ x,
        }

    return sd.Game({"x": [x], "y": [y]}, losses), M


def set_adam_state(modules, t: int = 7, eps: float = 1e-2, betas=(0.5, 0.9)):
    """Adam optimizers (one per player) with second moments set by hand; returns
    them and the expected diag(P) = sqrt(v / (1 - β2^t)) + eps in module order."""
    gen = torch.Generator().manual_seed(3)
    opts, expected = {}, []
    for name, module in modules.items():
        opt = torch.optim.Adam(module.parameters(), lr=1e-3, betas=betas, eps=eps)
        for p in module.parameters():
            v = torch.rand(p.shape, generator=gen, dtype=F64) + 0.05
            opt.state[p] = {
                "step": torch.tensor(float(t)),
                "exp_avg": torch.zeros_like(p),
                "exp_avg_sq": v,
            }
            expected.append(((v / (1 - betas[1] ** t)).sqrt() + eps).reshape(-1))
        opts[name] = opt
    return opts, torch.cat(expected)


# ---------------------------------------------------------------------- dense checks
SETTINGS = {
    "gd": {},
    "alternating_gd": {},
    "extragradient": {},
    "optimistic": {},
    "momentum": {"beta": -0.4},
    "alternating_momentum": {"beta": 0.3},
    "consensus": {"gamma": 0.7},
    "sga": {"gamma": 0.7},
}


@pytest.mark.parametrize("method", UPDATE_METHODS)
@pytest.mark.parametrize("steps", ["one lr", "per-player lr", "adam"])
def test_update_operator_matches_the_optimisers_step(method, steps):
    sg, Jd = small_gan()
    game = sg.game
    n = game.n
    lr = {"generator": 0.3, "discriminator": 0.7} if steps != "one lr" else 0.4
    h = torch.empty(n, dtype=F64)
    for p in PLAYERS:
        h[game.player_slice(p)] = lr[p] if isinstance(lr, dict) else lr
    kw: dict[str, Any] = dict(SETTINGS[method])
    if steps == "adam":
        opts, P = set_adam_state(sg.modules)
        kw["preconditioner"] = optimizer_preconditioner(game, opts)
        assert_close(kw["preconditioner"], P, 1e-15)
        h = h / P
    order = (
        ("discriminator", "generator")
        if method.startswith("alternating") and steps == "adam"
        else None
    )
    first = torch.zeros(n, dtype=F64)
    first[game.player_slice(order[0] if order else "generator")] = 1
    if order:
        kw["order"] = order
    T = update_operator(GameJacobian(game), method, lr, **kw)
    ref_kw = {k: v for k, v in kw.items() if k in ("beta", "gamma")}
    expected = reference_update(method, Jd, h, first, **ref_kw)
    assert T.shape == expected.shape and T.method == method
    assert_close(columns(T.matvec, T.shape[0]), expected)
    assert_close(columns(T.rmatvec, T.shape[0]), expected.T)


def test_alternating_gd_block_formula():
    sg, Jd = small_gan()
    game = sg.game
    g, d = game.player_slice("generator"), game.player_slice("discriminator")
    e1, e2 = 0.3, 0.7
    I1, I2 = torch.eye(g.stop - g.start, dtype=F64), torch.eye(d.stop - d.start, dtype=F64)
    J11, J12, J21, J22 = Jd[g, g], Jd[g, d], Jd[d, g], Jd[d, d]
    expected = torch.cat(
        [
            torch.cat([I1 - e1 * J11, -e1 * J12], 1),
            torch.cat([-e2 * J21 @ (I1 - e1 * J11), I2 - e2 * J22 + e1 * e2 * J21 @ J12], 1),
        ]
    )
    T = GradientDescentUpdate(
        GameJacobian(game), {"generator": e1, "discriminator": e2}, alternating=True
    )
    assert_close(columns(T.matvec, game.n), expected)


def test_products_reuse_one_graph():
    sg, _ = small_gan()
    J = GameJacobian(sg.game)
    T = update_operator(J, "alternating_momentum", 0.1, beta=0.2)
    u = torch.ones(T.shape[0], dtype=F64)
    T.matvec(u)
    T.rmatvec(u)
    assert (T.n_matvec, T.n_rmatvec) == (1, 1)
    assert (J.n_matvec, J.n_rmatvec) == (2, 2)  # one J product per player sweep
    assert T.prefer_transpose and T.T.matvec(u).shape == u.shape


# ---------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("method", METHODS)
def test_closed_forms_agree_with_dense_update_eigenvalues(method):
    beta = -0.3 if method == "momentum" else 0.0
    sg, J_gan = small_gan()
    for game, Jd in (quadratic_game(), (sg.game, J_gan)):
        lam = np.linalg.eigvals(Jd.numpy())
        first = torch.zeros(game.n, dtype=F64)
        dense = reference_update(
            method, Jd, torch.full((game.n,), 0.2, dtype=F64), first, beta=beta
        )
        same_multiset(
            np.linalg.eigvals(dense.numpy()),
            update_eigenvalues(lam, method, 0.2, beta=beta).reshape(-1),
            atol=1e-9,
        )


@pytest.mark.parametrize("method", METHODS)
def test_max_stable_lr_is_the_edge_of_the_dense_update(method):
    game, M = quadratic_game()
    beta = -0.3 if method == "momentum" else 0.0
    bound = max_stable_lr(np.linalg.eigvals(M.numpy()), method, beta=beta)
    assert bound.exists
    first = torch.zeros(game.n, dtype=F64)
    J = GameJacobian(game)
    for factor, stable in ((0.99, True), (1.01, False)):
        eta = factor * bound.lr
        dense = reference_update(method, M, torch.full((game.n,), eta, dtype=F64), first, beta=beta)
        assert (rho(dense) < 1) is stable
        kw: dict[str, Any] = {"beta": beta} if method == "momentum" else {}
        assert spectral_radius(update_operator(J, method, eta, **kw), tol=1e-10) == pytest.approx(
            rho(dense), abs=1e-9
        )


def test_no_stable_lr_when_some_real_part_is_not_positive():
    toy = toys.bilinear_game(n=3, m=3, seed=1)
    lam = toy.eigenvalues().numpy()
    bound = max_stable_lr(lam, "gd")
    assert not bound.exists and bound.lr == 0.0
    assert bound.limiting_eigenvalue is not None
    assert "Re λ <= 0" in bound.reason and bound.limiting_eigenvalue.real == 0
    eg = max_stable_lr(lam, "extragradient")
    assert eg.lr == pytest.approx(1 / np.abs(lam).max(), rel=1e-9)


# ---------------------------------------------------------------------- bilinear game
def bilinear_jacobian() -> GameJacobian:
    return GameJacobian(toys.bilinear_game(A=torch.eye(2, dtype=F64)).game)


def test_bilinear_simultaneous_gd_spirals_out_and_alternating_gd_cycles():
    J = bilinear_jacobian()
    assert spectral_radius(update_operator(J, "gd", 0.5)) == pytest.approx(np.sqrt(1.25), abs=1e-12)
    assert spectral_radius(update_operator(J, "alternating_gd", 0.5)) == pytest.approx(
        1.0, abs=1e-12
    )


def test_negative_momentum_with_alternation_contracts_on_the_bilinear_game():
    # Gidel et al. (2019): rho = 0.965 (alternating, beta = -0.3), 1.135 (alternating,
    # beta = +0.3), 1.043 (simultaneous, beta = -0.3) at eta = 0.5.
    J = bilinear_jacobian()
    assert spectral_radius(MomentumUpdate(J, 0.5, -0.3, alternating=True)) < 0.97
    assert spectral_radius(MomentumUpdate(J, 0.5, 0.3, alternating=True)) > 1.1
    assert spectral_radius(MomentumUpdate(J, 0.5, -0.3)) > 1.04


def test_spectral_radius_by_krylov_on_a_larger_operator():
    sg, Jd = small_gan()
    T = update_operator(GameJacobian(sg.game), "extragradient", 0.3)
    expected = rho(
        reference_update(
            "extragradient",
            Jd,
            torch.full((sg.game.n,), 0.3, dtype=F64),
            torch.zeros(sg.game.n, dtype=F64),
        )
    )
    assert spectral_radius(T, k=4, tol=1e-10) == pytest.approx(expected, rel=1e-8)


# ---------------------------------------------------------------------- preconditioners
@pytest.mark.parametrize("kind", ["adam", "adamw-amsgrad", "rmsprop-centered"])
def test_preconditioner_reproduces_the_optimisers_step(kind):
    """With no first moment (β1 = 0, RMSprop momentum 0) a real step is x -= lr g / P."""
    sg, _ = small_gan()
    modules = sg.modules
    params = {p: list(m.parameters()) for p, m in modules.items()}
    make = {
        "adam": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.0, 0.9), eps=1e-4),
        "adamw-amsgrad": lambda ps: torch.optim.AdamW(
            ps, lr=0.01, betas=(0.0, 0.9), eps=1e-4, amsgrad=True, weight_decay=0.0
        ),
        "rmsprop-centered": lambda ps: torch.optim.RMSprop(ps, lr=0.01, eps=1e-4, centered=True),
    }[kind]
    opts = [make(ps) for ps in params.values()]
    gen = torch.Generator().manual_seed(0)
    saved = [p.detach().clone() for p in sg.game.parameters()]
    try:
        for _ in range(3):
            grads = [torch.randn(p.shape, generator=gen, dtype=F64) for p in sg.game.parameters()]
            before = torch.cat([p.detach().reshape(-1) for p in sg.game.parameters()])
            for p, g in zip(sg.game.parameters(), grads):
                p.grad = g
            for opt in opts:
                opt.step()
            after = torch.cat([p.detach().reshape(-1) for p in sg.game.parameters()])
            P = optimizer_preconditioner(sg.game, opts)
            assert_close(
                after - before, -0.01 * torch.cat([g.reshape(-1) for g in grads]) / P, 1e-10
            )
    finally:
        with torch.no_grad():
            for p, s in zip(sg.game.parameters(), saved):
                p.copy_(s)
                p.grad = None


def test_preconditioner_errors():
    sg, _ = small_gan()
    game, modules = sg.game, sg.modules
    opts, _ = set_adam_state(modules)
    with pytest.raises(ValueError, match="player 'discriminator'.*none of the optimizers"):
        optimizer_preconditioner(game, [opts["generator"]])
    fresh = torch.optim.Adam(modules["discriminator"].parameters())
    with pytest.raises(ValueError, match="no Adam state yet.*first step"):
        optimizer_preconditioner(game, {"generator": opts["generator"], "discriminator": fresh})
    with pytest.raises(TypeError, match="Adam, AdamW and RMSprop"):
        optimizer_preconditioner(game, torch.optim.SGD(game.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="two optimizers"):
        optimizer_preconditioner(
            game, [opts["generator"], opts["discriminator"], opts["generator"]]
        )
    J = GameJacobian(game)
    with pytest.raises(ValueError, match="shape"):
        update_operator(J, "gd", 0.1, preconditioner=torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="> 0"):
        update_operator(J, "gd", 0.1, preconditioner=-torch.ones(game.n, dtype=F64))


# ---------------------------------------------------------------------- errors
def test_argument_errors():
    sg, _ = small_gan()
    J = GameJacobian(sg.game)
    with pytest.raises(ValueError, match="unknown update method 'adam'"):
        update_operator(J, "adam", 0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        update_operator(J, "gd", 0.0)
    with pytest.raises(ValueError, match=r"missing \['discriminator'\], unknown \['D'\]"):
        update_operator(J, "gd", {"generator": 0.1, "D": 0.1})
    with pytest.raises(ValueError, match="needs beta"):
        update_operator(J, "momentum", 0.1)
    with pytest.raises(ValueError, match="takes no gamma"):
        update_operator(J, "gd", 0.1, gamma=1.0)
    with pytest.raises(ValueError, match="order must list"):
        update_operator(J, "alternating_gd", 0.1, order=("generator", "generator"))
    with pytest.raises(ValueError, match="order is for alternating"):
        update_operator(J, "gd", 0.1, order=PLAYERS)
    with pytest.raises(TypeError, match="GameJacobian"):
        update_operator(torch.eye(3, dtype=F64), "gd", 0.1)  # type: ignore[arg-type]
    three = GameJacobian(three_player_game().game)
    with pytest.raises(ValueError, match="two-player games; this game has 3 players"):
        update_operator(three, "alternating_momentum", 0.1, beta=0.1)
    assert update_operator(three, "momentum", 0.1, beta=0.1).shape == (2 * three.shape[0],) * 2
    with pytest.raises(TypeError, match="which='LM'"):
        spectral_radius(update_operator(J, "gd", 0.1), which="LR")
