"""GameField's products are bitwise those of a bare torch.autograd.grad on its graph.

The per-player lookups are cached and the flat vectors split and joined with fewer
operations; what the products compute must not change.
"""

from __future__ import annotations

import torch
from games import gan_game, three_player_game

import specdiag as sd


def bare_vjp(field: sd.GameField, u: torch.Tensor, player: str | None) -> torch.Tensor:
    game = field.game
    params = list(game.parameters(player))
    idx = list(game.player_tensors(player))
    pieces = list(torch.split(u, [p.numel() for p in params]))
    outs = [field._grads[i] for i in idx]
    grads = torch.autograd.grad(
        outs,
        params,
        grad_outputs=[pc.view(p.shape) for pc, p in zip(pieces, params)],
        retain_graph=True,
        allow_unused=True,
    )
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]
    )


def test_vjp_and_hessian_products_are_bitwise_the_bare_ones():
    for small in (gan_game(dtype=torch.float32), three_player_game()):
        field = sd.GameField(small.game, None)
        gen = torch.Generator().manual_seed(0)
        for player in (None, *small.game.player_names):
            n = small.game.n if player is None else small.game.sizes[player]
            u = torch.randn(n, generator=gen, dtype=small.game.dtype)
            for _ in range(2):  # the cached lookups give the same on every call
                assert torch.equal(field.vjp(u, player), bare_vjp(field, u, player))


def test_jvp_is_bitwise_the_double_vjp():
    small = gan_game()
    field = sd.GameField(small.game, None)
    u = torch.randn(small.game.n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    first = field.jvp(u)
    assert torch.equal(field.jvp(u), first)
    J = small.dense_jacobian()
    torch.testing.assert_close(first, J @ u, rtol=1e-10, atol=1e-12)


def test_products_leave_frozen_parameters_frozen():
    small = gan_game()
    field = sd.GameField(small.game, None)
    frozen = small.game.parameters("generator")[0]
    frozen.requires_grad_(False)
    try:
        u = torch.randn(
            small.game.n, generator=torch.Generator().manual_seed(2), dtype=torch.float64
        )
        out = field.vjp(u)
        assert not frozen.requires_grad and out.shape == (small.game.n,)
    finally:
        frozen.requires_grad_(True)
