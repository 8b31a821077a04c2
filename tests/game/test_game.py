"""Game: players, parameter order, loss checking, the vector field, side-effect-free evaluation."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
from games import gan_game, three_player_game
from torch import nn

import specdiag as sd

F64 = torch.float64


def leaf(*shape: int, dtype: torch.dtype = F64, grad: bool = True) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype).requires_grad_(grad)


def two_tensor_game(losses) -> sd.Game:
    """Players "a" and "b", one vector each; ``losses(a, b, batch)``."""
    a, b = leaf(3), leaf(2)
    return sd.Game({"a": [a], "b": b}, lambda batch: losses(a, b, batch))


def coupled(a: torch.Tensor, b: torch.Tensor, batch=None) -> dict[str, torch.Tensor]:
    return {"a": (a.sum() * b.sum()) ** 2, "b": -((a.sum() * b.sum()) ** 2) + (b**2).sum()}


# ---------------------------------------------------------------------- structure
def test_module_player_counts_only_trainable_parameters_in_order():
    g_net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    d_net = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    d_net[0].bias.requires_grad_(False)
    game = sd.Game({"generator": g_net, "discriminator": d_net}, lambda b: {})

    g_params = list(g_net.parameters())
    d_params = [d_net[0].weight, d_net[2].weight, d_net[2].bias]
    assert game.player_names == ("generator", "discriminator")
    assert all(p is q for p, q in zip(game.parameters("generator"), g_params))
    assert all(p is q for p, q in zip(game.parameters("discriminator"), d_params))
    assert len(game.parameters("discriminator")) == 3
    assert [id(p) for p in game.parameters()] == [id(p) for p in g_params + d_params]
    assert game.sizes == {"generator": 12 + 4 + 8 + 2, "discriminator": 10 + 5 + 1}
    assert game.n == 26 + 16
    assert game.player_slice("generator") == slice(0, 26)
    assert game.player_slice("discriminator") == slice(26, 42)
    assert game.player_tensors("generator") == range(0, 4)
    assert game.player_tensors("discriminator") == range(4, 7)
    assert game.player_tensors() == range(7)
    assert game.player_layout("discriminator").shapes == (
        torch.Size([5, 2]),
        torch.Size([1, 5]),
        torch.Size([1]),
    )
    assert game.player_layout().size == game.n
    assert game.dtype == F64 and game.device == torch.device("cpu")
    assert game.modules == (g_net, d_net)
    assert "n=42" in repr(game)


@pytest.mark.parametrize("spec", ["list", "tuple", "generator", "tensor"])
def test_tensor_players(spec):
    a, frozen, c = leaf(2, 3), leaf(4, grad=False), leaf(5)
    tensors = {
        "list": [a, frozen, c],
        "tuple": (a, frozen, c),
        "generator": iter([a, frozen, c]),
        "tensor": c,
    }[spec]
    expected = (c,) if spec == "tensor" else (a, c)
    game = sd.Game({"p": tensors, "q": leaf(1)}, lambda b: {})
    assert len(game.parameters("p")) == len(expected)
    assert all(x is y for x, y in zip(game.parameters("p"), expected))
    assert game.sizes["p"] == sum(t.numel() for t in expected)
    assert game.player_slice("q") == slice(game.sizes["p"], game.n)
    assert game.modules == ()


def test_a_tensor_listed_twice_counts_once():
    a = leaf(3)
    game = sd.Game({"p": [a, a]}, lambda b: {})
    assert game.parameters("p") == (a,) and game.n == 3


def test_one_player():
    x = leaf(4)
    game = sd.Game({"x": x}, lambda b: {"x": (x**2).sum() + x.prod()})
    assert game.n == 4 and game.player_names == ("x",)
    v = game.vector_field(None)
    (expected,) = torch.autograd.grad((x**2).sum() + x.prod(), x)
    torch.testing.assert_close(v, expected, rtol=1e-14, atol=0)


def test_three_players():
    sg = three_player_game()
    game = sg.game
    assert game.player_names == ("a", "b", "c")
    assert game.sizes == {name: 4 * 6 + 6 + 6 * 4 + 4 for name in "abc"}
    assert [game.player_slice(p) for p in "abc"] == [slice(0, 58), slice(58, 116), slice(116, 174)]
    assert [game.player_tensors(p) for p in "abc"] == [range(0, 4), range(4, 8), range(8, 12)]
    assert game.vector_field(None).shape == (174,)


def test_unknown_player_names_the_players():
    game = two_tensor_game(coupled)
    with pytest.raises(KeyError, match=r"'z'.*\['a', 'b'\]"):
        game.player_slice("z")


# ---------------------------------------------------------------------- definition errors
def _frozen_module() -> nn.Module:
    return nn.Linear(2, 2).double().requires_grad_(False)


_shared = leaf(2)

# (players factory, losses, error, message): the players and losses are wrong on purpose
DEFINITION_ERRORS: dict[str, tuple[Callable[[], Any], Any, type[Exception], str]] = {
    "players-not-mapping": (
        lambda: [leaf(2)],
        lambda b: {},
        TypeError,
        r"players must be a mapping.*got list",
    ),
    "empty-players": (lambda: {}, lambda b: {}, sd.GameDefinitionError, r"at least one player"),
    "losses-not-callable": (
        lambda: {"a": leaf(2)},
        {"a": 0.0},
        TypeError,
        r"losses must be a callable.*got dict",
    ),
    "reserved-name": (
        lambda: {"jacobian": leaf(2)},
        lambda b: {},
        sd.GameDefinitionError,
        r"'jacobian' is reserved.*rename the player",
    ),
    "bad-player-type": (
        lambda: {"a": 3.0},
        lambda b: {},
        TypeError,
        r"player 'a' must be an nn.Module or an iterable of tensors",
    ),
    "non-tensor-in-player": (
        lambda: {"a": [leaf(2), "w"]},
        lambda b: {},
        TypeError,
        r"player 'a': expected tensors, got str",
    ),
    "no-trainable-module": (
        lambda: {"a": leaf(2), "d": _frozen_module()},
        lambda b: {},
        sd.GameDefinitionError,
        r"player 'd' has no trainable.*unfreeze",
    ),
    "no-trainable-tensors": (
        lambda: {"a": [leaf(2, grad=False)]},
        lambda b: {},
        sd.GameDefinitionError,
        r"player 'a' has no trainable.*unfreeze",
    ),
    "shared-parameter": (
        lambda: {"a": [_shared, leaf(1)], "b": [_shared]},
        lambda b: {},
        sd.GameDefinitionError,
        r"players 'a' and 'b' share a parameter.*exactly one player",
    ),
    "mixed-dtypes": (
        lambda: {"a": leaf(2), "b": leaf(2, dtype=torch.float32)},
        lambda b: {},
        sd.GameDefinitionError,
        r"'a': torch.float64 on cpu; 'b': torch.float32 on cpu.*same device and",
    ),
}


@pytest.mark.parametrize("case", DEFINITION_ERRORS)
def test_definition_errors(case):
    players, losses, exc, message = DEFINITION_ERRORS[case]
    with pytest.raises(exc, match=message):
        sd.Game(players(), losses)


def test_modules_argument_must_hold_modules():
    with pytest.raises(TypeError, match="modules must hold nn.Module"):
        sd.Game({"a": leaf(2)}, lambda b: {}, modules=[leaf(2)])  # type: ignore[list-item]


# ---------------------------------------------------------------------- loss errors
def _no_grad_loss(a, b, batch):
    with torch.no_grad():
        return {"a": (a**2).sum(), "b": (b**2).sum()}


LOSS_ERRORS = {
    "missing-key": (
        lambda a, b, _: {"a": (a**2).sum()},
        sd.GameDefinitionError,
        r"no loss for player\(s\) \['b'\].*exactly one loss per player",
    ),
    "extra-key": (
        lambda a, b, _: {**coupled(a, b), "c": a.sum()},
        sd.GameDefinitionError,
        r"losses for unknown player\(s\) \['c'\].*exactly one loss per player",
    ),
    "non-scalar": (
        lambda a, b, _: {"a": a[:2] * b, "b": (b**2).sum()},
        sd.GameDefinitionError,
        r"loss of player 'a' has shape \(2,\).*scalar.*\.mean\(\)",
    ),
    "non-floating": (
        lambda a, b, _: {"a": (a.sum() * b.sum()).long(), "b": (b**2).sum()},
        TypeError,
        r"loss of player 'a' has dtype torch.int64.*floating point",
    ),
    "non-tensor": (
        lambda a, b, _: {"a": 1.0, "b": (b**2).sum()},
        TypeError,
        r"loss of player 'a' must be a tensor, got float",
    ),
    "non-mapping": (
        lambda a, b, _: [(a**2).sum(), (b**2).sum()],
        TypeError,
        r"must return a dict.*got list",
    ),
    "no-grad": (
        _no_grad_loss,
        sd.GameDefinitionError,
        r"loss of player 'a' does not depend on its own parameters.*no_grad",
    ),
    "detached-own-params": (
        lambda a, b, _: {"a": a.detach().sum() * b.sum(), "b": (b**2).sum()},
        sd.GameDefinitionError,
        r"loss of player 'a' does not depend on its own parameters.*detached",
    ),
}

ENTRY_POINTS = {
    "vector_field": lambda game: game.vector_field(None),
    "GameField": lambda game: sd.GameField(game, None),
    "GameJacobian": lambda game: sd.GameJacobian(game, None),
    "PlayerHessian": lambda game: sd.PlayerHessian(game, "b", None),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", LOSS_ERRORS)
def test_loss_errors(case, entry):
    losses, exc, message = LOSS_ERRORS[case]
    game = two_tensor_game(losses)
    with pytest.raises(exc, match=message):
        ENTRY_POINTS[entry](game)


def test_closure_error_is_chained():
    original = KeyError("no such batch key")

    def losses(a, b, batch):
        raise original

    game = two_tensor_game(losses)
    message = r"closure raised KeyError.*no such batch key"
    with pytest.raises(sd.LossClosureError, match=message) as info:
        game.vector_field(None)
    assert info.value.__cause__ is original
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, sd.SpecdiagError)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss(bad):
    game = two_tensor_game(lambda a, b, _: {"a": (a**2).sum(), "b": (b**2).sum() * bad})
    with pytest.raises(sd.NonFiniteError, match=r"loss of player 'b' is (nan|inf|-inf)") as info:
        sd.GameJacobian(game, None)
    assert info.value.player == "b"


def test_non_finite_gradient():
    # sqrt at 0: a finite loss (0) whose gradient is inf.
    def losses(a, b, _):
        return {"a": (a**2).sum(), "b": (b - b.detach()).sqrt().sum() + (a * b.sum()).sum()}

    game = two_tensor_game(losses)
    for build in (game.vector_field, lambda batch: sd.GameField(game, batch)):
        message = r"gradient of player 'b' contains NaN or Inf"
        with pytest.raises(sd.NonFiniteError, match=message) as info:
            build(None)
        assert info.value.player == "b"


def test_error_hierarchy():
    assert issubclass(sd.NonFiniteError, FloatingPointError)
    assert issubclass(sd.GameDefinitionError, ValueError)
    assert issubclass(sd.LossClosureError, RuntimeError)
    for exc in (sd.NonFiniteError, sd.GameDefinitionError, sd.LossClosureError):
        assert issubclass(exc, sd.SpecdiagError)
    assert issubclass(sd.ConvergenceWarning, UserWarning)


# ---------------------------------------------------------------------- vector field
@pytest.mark.parametrize("loss", ["nonsaturating", "minimax", "wgan", "three-player"])
def test_vector_field_is_each_players_own_gradient(loss):
    sg = three_player_game() if loss == "three-player" else gan_game(loss=loss, hidden=6)
    losses = sg.loss_fn({p: dict(m.named_parameters()) for p, m in sg.modules.items()})
    by_hand = []
    for p, m in sg.modules.items():
        grads = torch.autograd.grad(losses[p], list(m.parameters()), retain_graph=True)
        by_hand += [g.reshape(-1) for g in grads]
    expected = torch.cat(by_hand)
    v = sg.game.vector_field(None)
    assert v.shape == (sg.game.n,) and not v.requires_grad
    torch.testing.assert_close(v, expected, rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------- evaluation
def noisy_game():
    a, b = leaf(3), leaf(3)
    seen: list[torch.Tensor] = []

    def losses(batch):
        noise = torch.randn(3, dtype=F64)
        seen.append(noise)
        return {"a": ((a + noise) * b).sum() ** 2, "b": -((a + noise) * b).sum() + (b**2).sum()}

    return sd.Game({"a": a, "b": b}, losses), seen


def test_seeded_evaluation_is_reproducible_and_leaves_the_global_stream():
    game, seen = noisy_game()
    state = torch.get_rng_state()
    v1 = game.vector_field(None, seed=7)
    v2 = game.vector_field(None, seed=7)
    v3 = game.vector_field(None, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(seen[0], seen[1]) and torch.equal(v1, v2)
    seven = torch.Generator().manual_seed(7)
    assert torch.equal(seen[0], torch.randn(3, dtype=F64, generator=seven))
    assert not torch.equal(seen[0], seen[2]) and not torch.equal(v1, v3)


def test_unseeded_evaluation_draws_the_next_numbers_without_consuming_them():
    game, seen = noisy_game()
    state = torch.get_rng_state()
    v1 = game.vector_field(None)
    with game.evaluation():
        torch.randn(100)
    v2 = game.vector_field(None)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(v1, v2)
    assert torch.equal(seen[0], torch.randn(3, dtype=F64))  # what training would draw next


def test_evaluation_restores_state_when_the_closure_raises():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).double()
    frozen = leaf(2)
    flags_inside: list[bool] = []

    def failing(batch):
        torch.randn(10)
        net.eval()
        flags_inside.append(frozen.requires_grad)
        raise RuntimeError("bad batch")

    game = sd.Game({"net": net, "frozen": frozen}, failing)
    frozen.requires_grad_(False)  # the training code freezes a player after the game is built
    state = torch.get_rng_state()
    with pytest.raises(sd.LossClosureError):
        game.vector_field(None)
    assert flags_inside == [True]  # evaluation turns every player's parameters on
    assert net.training and net[1].training
    assert not frozen.requires_grad
    assert torch.equal(torch.get_rng_state(), state)


def test_evaluation_turns_autograd_on_inside_no_grad_and_inference_mode():
    game = two_tensor_game(coupled)
    expected = game.vector_field(None)
    with torch.no_grad():
        torch.testing.assert_close(game.vector_field(None), expected, rtol=0, atol=0)
    with torch.inference_mode():
        torch.testing.assert_close(game.vector_field(None), expected, rtol=0, atol=0)
