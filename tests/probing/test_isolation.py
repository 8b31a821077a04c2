"""A probe leaves every random stream and every hook as it was, and bypasses hooks."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import specdiag as sd


def wgan_gp_like(noise: str):
    """A GAN whose losses draw from numpy's or Python's global stream, as public WGAN-GP
    code does for the interpolation weights of its gradient penalty."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    D = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).double()

    def draw(n: int) -> torch.Tensor:
        if noise == "numpy":
            return torch.from_numpy(np.random.random((n, 1)))
        return torch.tensor([[random.random()] for _ in range(n)], dtype=torch.float64)

    def losses(batch):
        real, z = batch
        fake = G(z)
        alpha = draw(real.shape[0])
        mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(mix).sum(), mix, create_graph=True)
        penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
        return {
            "generator": -D(fake).mean(),
            "discriminator": D(fake).mean() - D(real).mean() + 10 * penalty,
        }

    gen = torch.Generator().manual_seed(1)
    batch = (
        torch.randn(16, 2, generator=gen, dtype=torch.float64),
        torch.randn(16, 3, generator=gen, dtype=torch.float64),
    )
    return sd.Game({"generator": G, "discriminator": D}, losses), batch


@pytest.mark.parametrize("noise", ["numpy", "python"])
def test_numpy_and_python_streams_are_untouched_and_seeded_per_probe(noise):
    game, batch = wgan_gp_like(noise)
    np.random.seed(5)
    random.seed(5)
    before = (np.random.get_state(legacy=False)["state"]["key"].copy(), random.getstate())
    first = sd.probe(game, batch, k=3, seed=0)
    assert np.array_equal(np.random.get_state(legacy=False)["state"]["key"], before[0])
    assert random.getstate() == before[1]
    np.random.random(7)  # the training run moves its streams on
    random.random()
    second = sd.probe(game, batch, k=3, seed=0)
    for name in first:
        assert np.array_equal(first[name].eigenvalues, second[name].eigenvalues)


def test_training_with_numpy_noise_is_bit_identical_with_and_without_the_monitor(tmp_path):
    def run(monitor: bool) -> list[torch.Tensor]:
        game, batch = wgan_gp_like("numpy")
        np.random.seed(3)
        opt = torch.optim.SGD(game.parameters(), lr=1e-2)
        mon = (
            sd.SpectrumMonitor(
                game, tmp_path / f"run{monitor}.h5", every=2, k=2, probe_batch=batch, resume=False
            )
            if monitor
            else None
        )
        for step in range(5):
            opt.zero_grad()
            loss = sum(game._losses(batch).values())
            loss.backward()
            opt.step()
            if mon is not None:
                mon.step(step)
        if mon is not None:
            mon.close()
        return [p.detach().clone() for p in game.parameters()]

    for a, b in zip(run(False), run(True)):
        assert torch.equal(a, b)


def small_game():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    D = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    real = torch.randn(12, 2, dtype=torch.float64)
    z = torch.randn(12, 2, dtype=torch.float64)

    def losses(_batch):
        d_fake = D(G(z))
        return {
            "generator": F.softplus(-d_fake).mean(),
            "discriminator": F.softplus(-D(real)).mean() + F.softplus(d_fake).mean(),
        }

    return sd.Game({"generator": G, "discriminator": D}, losses), G, D


def test_gradient_hooks_neither_fire_nor_change_the_jacobian():
    game, G, D = small_game()
    reference = sd.probe(game, k=4, seed=0)
    calls: list[int] = []

    def count_and_halve(g: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return g * 0.5

    handles = [p.register_hook(count_and_halve) for p in D.parameters()]
    handles.append(G[0].weight.register_hook(lambda g: calls.append(1)))
    module = D.register_full_backward_hook(lambda m, gi, go: calls.append(1))
    hooked = sd.probe(game, k=4, seed=0)
    assert calls == []
    for name in reference:
        np.testing.assert_allclose(
            hooked[name].eigenvalues, reference[name].eigenvalues, rtol=1e-12, atol=1e-12
        )
    # the hooks are back: training's own backward still runs them
    sum(game._losses(None).values()).backward()
    assert len(calls) > 0
    for h in [*handles, module]:
        h.remove()
