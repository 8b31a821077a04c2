"""Pairwise zero-sum defects of the Helmholtz estimate, on a smooth market and on GANs.

Ground truth: dense Jacobians by torch.autograd.functional.jacobian, whose blocks give
d_ij = ‖J_ij + J_jiᵀ‖_F / (‖J_ij‖_F + ‖J_ji‖_F) exactly.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from games import gan_game, three_player_game

import specdiag as sd
from specdiag.dynamics.helmholtz import helmholtz_split
from specdiag.toys.nplayer import SmoothMarket, smooth_market

F64 = torch.float64


def market_jacobian(toy: SmoothMarket) -> torch.Tensor:
    """Dense J of the market by autograd of its losses as a function of a flat point."""
    dim = toy.x[0].numel()

    def field(flat: torch.Tensor) -> torch.Tensor:
        xs = list(flat.split(dim))
        losses = toy.losses_of(xs)
        grads = [
            torch.autograd.grad(losses[f"x{i + 1}"], x, create_graph=True)[0]
            for i, x in enumerate(xs)
        ]
        return torch.cat(grads)

    flat = torch.cat([t.detach() for t in toy.x])
    return torch.autograd.functional.jacobian(field, flat)


def dense_defects(game: sd.Game, J: torch.Tensor) -> dict[tuple[str, str], float]:
    out = {}
    for p, q in itertools.combinations(game.player_names, 2):
        a, b = game.player_slice(p), game.player_slice(q)
        Jpq, Jqp = J[a, b], J[b, a]
        out[p, q] = float((Jpq + Jqp.T).norm() / (Jpq.norm() + Jqp.norm()))
    return out


def test_smooth_market_is_pairwise_zero_sum_and_not_trivial():
    toy = smooth_market(n_players=4, dim=3, seed=0)
    J = market_jacobian(toy)
    game = toy.game
    for p, q in itertools.combinations(game.player_names, 2):
        a, b = game.player_slice(p), game.player_slice(q)
        assert float(J[a, b].norm()) > 0.1  # a real coupling
        torch.testing.assert_close(J[a, b], -J[b, a].T, rtol=0, atol=1e-14)
    # the game is neither potential nor a plain rotation, and J moves with the point
    S, A = (J + J.T) / 2, (J - J.T) / 2
    assert float(S.norm()) > 0.5 and float(A.norm()) > 0.5
    other = smooth_market(n_players=4, dim=3, seed=0)
    with torch.no_grad():
        for t in other.x:
            t.mul_(0.3)
    assert float((market_jacobian(other) - J)[0:3, 3:6].norm()) > 1e-2
    # specdiag's operator agrees with the dense reference
    op = sd.GameJacobian(game)
    columns = torch.stack([op.matvec(e) for e in torch.eye(game.n, dtype=F64)], dim=1)
    torch.testing.assert_close(columns, J, rtol=1e-12, atol=1e-12)


def test_smooth_market_pairwise_defects_vanish():
    toy = smooth_market(n_players=4, dim=3, seed=1)
    op = sd.GameJacobian(toy.game)
    h = helmholtz_split(op, 16, pairwise=True)
    assert h.pairwise is not None and len(h.pairwise) == 6
    assert list(h.pairwise) == list(itertools.combinations(toy.game.player_names, 2))
    for value, se in h.pairwise.values():
        assert 0 <= value <= 1e-6 and se <= 1e-6
    assert h.n_matvec == 16 * 2 * 4 == op.n_products
    assert h.zero_sum_defect is None  # the two-player field stays two-player only
    J = market_jacobian(toy)
    S, A = (J + J.T) / 2, (J - J.T) / 2
    assert abs(h.symmetric_sq - float(S.norm() ** 2)) <= 4 * h.symmetric_sq_se
    assert abs(h.antisymmetric_sq - float(A.norm() ** 2)) <= 4 * h.antisymmetric_sq_se


def test_three_player_pairwise_defects_match_dense_norms():
    sg = three_player_game()
    h = helmholtz_split(sd.GameJacobian(sg.game), 64, pairwise=True)
    exact = dense_defects(sg.game, sg.dense_jacobian())
    assert h.pairwise is not None and h.pairwise.keys() == exact.keys()
    for pair, d in exact.items():
        value, se = h.pairwise[pair]
        assert 0 < se < 0.2 * d, (pair, value, se, d)
        assert abs(value - d) <= 4 * se, (pair, value, se, d)
    default = helmholtz_split(sd.GameJacobian(sg.game), 8)
    assert default.pairwise is None and default.n_matvec == 16


def test_nonsaturating_gan_is_not_zero_sum():
    sg = gan_game(loss="nonsaturating", hidden=6)
    h = helmholtz_split(sd.GameJacobian(sg.game), 48, seed=2)
    assert h.pairwise is not None and len(h.pairwise) == 1
    ((pair, (value, se)),) = h.pairwise.items()
    assert pair == ("generator", "discriminator")
    assert (value, se) == (h.zero_sum_defect, h.zero_sum_defect_se)
    assert value > 0.05 and value > 10 * se
    exact = dense_defects(sg.game, sg.dense_jacobian())[pair]
    assert abs(value - exact) <= 4 * se
    assert h.n_matvec == 4 * 48
    minimax = gan_game(loss="minimax", hidden=6)
    hm = helmholtz_split(sd.GameJacobian(minimax.game), 8)
    assert hm.pairwise is not None and hm.pairwise["generator", "discriminator"][0] <= 1e-12


def test_pairwise_switch():
    sg = gan_game(loss="nonsaturating", hidden=6)
    off = helmholtz_split(sd.GameJacobian(sg.game), 8, pairwise=False)
    on = helmholtz_split(sd.GameJacobian(sg.game), 8)
    assert off.pairwise is None and off.zero_sum_defect == on.zero_sum_defect
    with pytest.raises(TypeError, match="pairwise"):
        helmholtz_split(sd.GameJacobian(sg.game), 8, pairwise=1)  # type: ignore[arg-type]
    w = torch.ones(2, dtype=F64, requires_grad=True)
    alone = sd.Game({"w": [w]}, lambda _b: {"w": (w**4).sum()})
    one = helmholtz_split(sd.GameJacobian(alone), 4, pairwise=True)
    assert one.pairwise == {} and one.n_matvec == 8


def test_smooth_market_settings_are_checked():
    with pytest.raises(ValueError, match="n_players"):
        smooth_market(n_players=1)
    with pytest.raises(ValueError, match="dim"):
        smooth_market(dim=0)
    toy = smooth_market(n_players=3, dim=2, seed=4)
    assert toy.game.player_names == ("x1", "x2", "x3") and toy.game.n == 6
    losses = toy.losses()
    assert set(losses) == {"x1", "x2", "x3"}
