"""Hutchinson estimates of the Helmholtz split against dense Frobenius norms."""

from __future__ import annotations

import functools

import pytest
import torch
from games import gan_game, three_player_game

import specdiag as sd
from specdiag import toys
from specdiag.dynamics.helmholtz import helmholtz_split
from specdiag.game.operators import GameJacobian

F64 = torch.float64


@functools.lru_cache(maxsize=None)
def gan(loss: str):
    sg = gan_game(loss=loss, hidden=6)
    return sg, sg.dense_jacobian()


def dense_split(game: sd.Game, J: torch.Tensor) -> dict[str, float]:
    S, A = (J + J.T) / 2, (J - J.T) / 2
    out = {
        "symmetric_sq": float(S.norm() ** 2),
        "antisymmetric_sq": float(A.norm() ** 2),
        "rotation_fraction": float(A.norm() ** 2 / J.norm() ** 2),
    }
    if len(game.player_names) == 2:
        a, b = (game.player_slice(p) for p in game.player_names)
        J12, J21 = J[a, b], J[b, a]
        out["zero_sum_defect"] = float((J12 + J21.T).norm() / (J12.norm() + J21.norm()))
    return out


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_estimates_agree_with_dense_norms(loss):
    sg, Jd = gan(loss)
    J = GameJacobian(sg.game)
    h = helmholtz_split(J, 48, seed=0)
    assert h.n_samples == 48 and h.n_matvec == 4 * 48 == J.n_products
    for name, exact in dense_split(sg.game, Jd).items():
        estimate, se = getattr(h, name), getattr(h, name + "_se")
        assert 0 <= se < 0.2 * max(abs(exact), 1e-12) or name == "zero_sum_defect"
        assert abs(estimate - exact) <= 4 * se + 1e-12, f"{name}: {estimate} ± {se} vs {exact}"


def test_three_players_have_no_zero_sum_defect():
    sg = three_player_game()
    h = helmholtz_split(GameJacobian(sg.game), 48)
    assert h.zero_sum_defect is None and h.zero_sum_defect_se is None and h.n_matvec == 96
    exact = dense_split(sg.game, sg.dense_jacobian())
    for name in ("symmetric_sq", "antisymmetric_sq", "rotation_fraction"):
        assert abs(getattr(h, name) - exact[name]) <= 4 * getattr(h, name + "_se")


def test_bilinear_game_is_pure_rotation_and_zero_sum():
    h = helmholtz_split(GameJacobian(toys.bilinear_game(n=5, m=4).game), 8)
    assert h.symmetric_sq <= 1e-28 * h.antisymmetric_sq and h.antisymmetric_sq > 0
    assert h.rotation_fraction == pytest.approx(1, abs=1e-14) and h.rotation_fraction_se <= 1e-14
    assert h.zero_sum_defect is not None and h.zero_sum_defect <= 1e-14


def test_potential_game_has_no_rotation():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, generator=gen, dtype=F64).requires_grad_()
    b = torch.randn(4, generator=gen, dtype=F64).requires_grad_()
    W = torch.randn(4, 3, generator=gen, dtype=F64)

    def losses(_batch):
        f = (torch.tanh(W @ a) * b).sum() + a.pow(4).sum() + (b @ b) * (a @ a)
        return {"a": f, "b": f}  # both players minimise f: J is the Hessian of f

    h = helmholtz_split(GameJacobian(sd.Game({"a": [a], "b": [b]}, losses)), 16)
    assert h.symmetric_sq > 1
    assert h.antisymmetric_sq <= 1e-25 * h.symmetric_sq and h.rotation_fraction <= 1e-25


def test_minimax_is_zero_sum_and_nonsaturating_is_not():
    minimax = helmholtz_split(GameJacobian(gan("minimax")[0].game), 8)
    nonsat = helmholtz_split(GameJacobian(gan("nonsaturating")[0].game), 8)
    assert minimax.zero_sum_defect is not None and minimax.zero_sum_defect <= 1e-12
    assert nonsat.zero_sum_defect is not None and nonsat.zero_sum_defect_se is not None
    assert nonsat.zero_sum_defect > 0.1 > 5 * nonsat.zero_sum_defect_se


def test_seeded_and_reproducible():
    game = gan("nonsaturating")[0].game
    first = helmholtz_split(GameJacobian(game), 4, seed=3)
    assert helmholtz_split(GameJacobian(game), 4, seed=3) == first
    assert helmholtz_split(GameJacobian(game), 4, seed=4) != first


def test_argument_errors():
    game = gan("nonsaturating")[0].game
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
        helmholtz_split(GameJacobian(game), 1)
    with pytest.raises(TypeError, match="GameJacobian"):
        helmholtz_split(torch.eye(3), 4)  # type: ignore[arg-type]
