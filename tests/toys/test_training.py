"""specdiag.toys.training: the optimiser registry and the simultaneous-update loop."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
from games import three_player_game

import specdiag as sd
from specdiag import toys
from specdiag.toys.training import optimizer_options

OPTIONS: dict[str, dict[str, Any]] = {
    "adam": {"betas": (0.6, 0.99)},
    "sgd": {"momentum": 0.5},
    "rmsprop": {"momentum": 0.3},
}


def reference_train(
    gan: toys.MoGGAN,
    steps: int,
    *,
    lr: float,
    batch_size: int,
    optimizer: str,
    betas: tuple[float, float],
    momentum: float,
    seed: int,
) -> dict[str, torch.Tensor]:
    """MoGGAN.train as it was before the loop moved to specdiag.toys.training, verbatim."""
    players = gan.game.player_names
    params = {p: list(gan.game.parameters(p)) for p in players}
    opts: dict[str, torch.optim.Optimizer]
    if optimizer == "adam":
        opts = {p: torch.optim.Adam(params[p], lr=lr, betas=betas) for p in players}
    elif optimizer == "sgd":
        opts = {p: torch.optim.SGD(params[p], lr=lr, momentum=momentum) for p in players}
    else:
        opts = {p: torch.optim.RMSprop(params[p], lr=lr, momentum=momentum) for p in players}
    rng = torch.Generator(device=gan.device).manual_seed(seed)
    history = {p: torch.empty(steps, dtype=torch.float64) for p in players}
    for step in range(steps):
        batch = gan.sample(batch_size, rng)
        losses = gan.losses(batch)
        grads = {p: torch.autograd.grad(losses[p], params[p], retain_graph=True) for p in players}
        for p in players:
            for t, g in zip(params[p], grads[p]):
                t.grad = g
            opts[p].step()
            history[p][step] = losses[p].item()
    for p in players:
        opts[p].zero_grad(set_to_none=True)
    return history


def state(gan: toys.MoGGAN) -> list[torch.Tensor]:
    modules = (gan.generator, gan.discriminator)
    return [t.detach().clone() for m in modules for t in [*m.parameters(), *m.buffers()]]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize(
    "settings",
    [
        dict(loss="nonsaturating"),
        dict(loss="minimax", batchnorm=True),
        dict(loss="wgan", consensus=1.0),
    ],
)
def test_mog_train_is_bit_identical_to_the_reference_loop(optimizer, settings):
    kw = dict(lr=5e-3, batch_size=32, optimizer=optimizer, seed=5)
    kw.update(betas=(0.6, 0.99), momentum=0.4)
    ours, theirs = (toys.mog_gan(hidden=12, depth=2, seed=1, **settings) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(state(ours), state(theirs)))
    h_ours = ours.train(12, **kw)
    h_ref = reference_train(theirs, 12, **kw)
    start = toys.mog_gan(hidden=12, depth=2, seed=1, **settings)
    assert not all(torch.equal(a, b) for a, b in zip(state(ours), state(start)))
    assert all(torch.equal(a, b) for a, b in zip(state(ours), state(theirs)))
    assert all(torch.equal(h_ours[p], h_ref[p]) for p in h_ref)
    assert all(p.grad is None for p in ours.game.parameters())


def test_registry_builds_each_optimiser_with_its_options_and_defaults():
    gan = toys.mog_gan(hidden=4, depth=1)
    assert tuple(toys.OPTIMIZERS) == ("adam", "sgd", "rmsprop")
    expected = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}
    for name, cls in expected.items():
        opts = toys.make_optimizers(gan.game, name, lr=0.01, **OPTIONS[name])
        assert list(opts) == ["generator", "discriminator"]
        for player, opt in opts.items():
            assert type(opt) is cls
            group = opt.param_groups[0]
            assert group["lr"] == 0.01
            for key, value in OPTIONS[name].items():
                assert group[key] == value
            assert [id(p) for p in group["params"]] == [id(p) for p in gan.game.parameters(player)]
    adam = toys.make_optimizers(gan.game)["generator"].param_groups[0]
    assert adam["betas"] == (0.5, 0.999) and adam["lr"] == 1e-4
    assert toys.make_optimizers(gan.game, "sgd")["generator"].param_groups[0]["momentum"] == 0.0
    assert optimizer_options("sgd", betas=(0.1, 0.2), momentum=0.7) == {"momentum": 0.7}
    assert optimizer_options("adam", betas=(0.1, 0.2), momentum=0.7) == {"betas": (0.1, 0.2)}


def test_registry_rejects_bad_settings():
    gan = toys.mog_gan(hidden=4, depth=1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        toys.make_optimizers(gan.game, "lbfgs")
    with pytest.raises(TypeError, match="betas"):
        toys.make_optimizers(gan.game, "adam", momentum=0.9)
    with pytest.raises(ValueError, match="lr"):
        toys.make_optimizers(gan.game, "sgd", lr=-1.0)
    with pytest.raises(ValueError, match="steps"):
        toys.train_game(gan.game, gan.sample, -1)
    with pytest.raises(ValueError, match="batch_size"):
        toys.train_game(gan.game, gan.sample, 1, batch_size=0)
    opts = toys.make_optimizers(gan.game)
    del opts["discriminator"]
    with pytest.raises(ValueError, match="discriminator"):
        toys.train_steps(gan.game, gan.sample, opts, 1)


def three_player_sampler(seen: list[Any]) -> Callable[[int, torch.Generator], Any]:
    def sample(batch_size: int, generator: torch.Generator) -> torch.Tensor:
        seen.append(generator)
        return torch.rand(batch_size, generator=generator)

    return sample


def flat(game: sd.Game) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in game.parameters()])


def test_train_game_sgd_step_is_x_minus_lr_v_for_three_players():
    small = three_player_game()
    game, lr = small.game, 0.1
    x0, v = flat(game), game.vector_field(None)
    seen: list[Any] = []
    history, opts = toys.train_game(game, three_player_sampler(seen), 1, optimizer="sgd", lr=lr)
    torch.testing.assert_close(flat(game), x0 - lr * v, rtol=0, atol=1e-14)
    assert list(opts) == ["a", "b", "c"] and all(type(o) is torch.optim.SGD for o in opts.values())
    assert len(seen) == 1 and isinstance(seen[0], torch.Generator)
    assert set(history) == {"a", "b", "c"} and history["a"].dtype == torch.float64


def test_train_game_history_is_the_loss_before_each_update():
    small = three_player_game()
    game = small.game
    before = {p: float(v.detach()) for p, v in game.losses(None).items()}
    history, _ = toys.train_game(game, three_player_sampler([]), 2, optimizer="sgd", lr=0.1)
    after_one = {p: float(history[p][1]) for p in history}
    assert all(float(history[p][0]) == before[p] for p in before)
    assert all(after_one[p] != before[p] for p in before)


def test_train_game_is_seeded_privately_and_calls_back():
    def run(seed: int) -> tuple[dict[str, torch.Tensor], list[int], list[torch.Tensor]]:
        gan = toys.mog_gan(hidden=8, depth=1, seed=2)
        steps_seen: list[int] = []
        history, opts = toys.train_game(
            gan.game,
            gan.sample,
            4,
            lr=1e-2,
            batch_size=16,
            seed=seed,
            callback=lambda step, batch: steps_seen.append(step),
            betas=(0.9, 0.999),
        )
        assert all(opt.state[p]["step"] == 4 for opt in opts.values() for p in opt.state)
        assert all(p.grad is None for p in gan.game.parameters())
        return history, steps_seen, [p.detach().clone() for p in gan.game.parameters()]

    torch.manual_seed(123)
    rng_state = torch.get_rng_state()
    (h1, s1, p1), (h2, _, p2), (_, _, p3) = run(3), run(3), run(4)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert s1 == [0, 1, 2, 3]
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))
    assert all(torch.equal(h1[k], h2[k]) for k in h1)
    assert not all(torch.equal(a, b) for a, b in zip(p1, p3))


def test_train_steps_continues_with_the_same_optimisers():
    gan = toys.mog_gan(hidden=8, depth=1, seed=2)
    history, opts = toys.train_game(gan.game, gan.sample, 3, lr=1e-2, batch_size=16)
    more = toys.train_steps(gan.game, gan.sample, opts, 2, batch_size=16, seed=1)
    assert more["generator"].shape == (2,)
    assert all(opt.state[p]["step"] == 5 for opt in opts.values() for p in opt.state)


def test_default_losses_are_checked_and_the_toys_carry_on_through_nan():
    gan = toys.mog_gan(hidden=8, depth=1, seed=2)
    with torch.no_grad():
        next(gan.discriminator.parameters()).fill_(float("nan"))
    with pytest.raises(sd.NonFiniteError):
        toys.train_game(gan.game, gan.sample, 2, batch_size=8)
    history = gan.train(2, batch_size=8)  # as before the refactoring: no check, NaN recorded
    assert torch.isnan(history["discriminator"]).all()


def test_toy_optimisers_are_in_place_before_the_first_callback():
    gan = toys.mog_gan(hidden=8, depth=1)
    old = gan.optimizers
    seen: list[dict[str, torch.optim.Optimizer]] = []
    gan.train(
        2, batch_size=8, optimizer="rmsprop", callback=lambda s, b: seen.append(gan.optimizers)
    )
    assert old == {} and len(seen) == 2 and seen[0] is gan.optimizers
    assert all(type(o) is torch.optim.RMSprop for o in gan.optimizers.values())
    with pytest.raises(ValueError, match="optimizer"):
        gan.train(1, optimizer="lbfgs")
    assert seen[0] is gan.optimizers  # a refused call leaves the optimisers alone
