"""The derivative check at the first probe, and failures that stay inside the probe."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm
from torch.nn.utils.parametrizations import spectral_norm as parametrized_spectral_norm

import specdiag as sd
from specdiag import toys
from specdiag.registry import flag_bit, flag_names


class CubeWithConstantSlope(torch.autograd.Function):
    """y = x³ whose backward 3x²·g is computed from a detached x: the first derivative is
    right, the second is missing (a non-differentiable backward)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * x.detach() ** 2 * grad


class OnceDifferentiableCube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * grad


def game_with(activation, dtype=torch.float64, norm=None):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 2)).to(dtype)
    D = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 1)).to(dtype)
    if norm is not None:
        D[0] = norm(D[0])
    real = torch.randn(16, 2, dtype=dtype)
    z = torch.randn(16, 2, dtype=dtype)

    def losses(_batch):
        d_fake = activation(D(G(z)))
        return {
            "generator": F.softplus(-d_fake).mean(),
            "discriminator": F.softplus(-activation(D(real))).mean() + F.softplus(d_fake).mean(),
        }

    return sd.Game({"generator": G, "discriminator": D}, losses)


def test_a_backward_without_second_derivative_is_flagged_and_warned():
    game = game_with(CubeWithConstantSlope.apply)
    with pytest.warns(sd.ProbeWarning, match="finite differences") as said:
        rec = sd.probe(game, k=3)
    assert rec.flags & flag_bit("derivative_mismatch")
    assert "once_differentiable" in rec.message and "checkpoint" in str(said[0].message)
    # the same game written with differentiable operations passes
    clean = sd.probe(game_with(lambda x: x**3), k=3)
    assert not clean.flags & flag_bit("derivative_mismatch") and clean.message == ""


def test_a_once_differentiable_function_is_flagged():
    # torch lets the graph through without its second derivative: J is silently wrong
    with pytest.warns(sd.ProbeWarning, match="finite differences"):
        rec = sd.probe(game_with(OnceDifferentiableCube.apply), k=3)
    assert "derivative_mismatch" in flag_names(rec.flags)


def test_reentrant_checkpoint_fails_inside_the_probe_with_a_message_naming_the_cause():
    from torch.utils.checkpoint import checkpoint

    game = game_with(lambda x: checkpoint(torch.tanh, x, use_reentrant=True))
    with pytest.warns(sd.ProbeWarning, match="use_reentrant=False"):
        rec = sd.probe(game, k=3)
    assert rec.status == "error"
    assert all("use_reentrant=False" in r.message for r in rec.values())


@pytest.mark.parametrize(
    "norm", [spectral_norm, parametrized_spectral_norm], ids=["hook", "parametrization"]
)
def test_spectral_norm_is_not_a_false_alarm(norm):
    game = game_with(torch.tanh, norm=norm)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sd.ProbeWarning)
        rec = sd.probe(game, k=3)
    assert flag_names(rec.flags) == []


def test_a_relu_gan_in_float32_is_not_a_false_alarm():
    gan = toys.mog_gan(hidden=8, depth=2, seed=0)
    batch = gan.sample(128, torch.Generator().manual_seed(1))
    gan.train(11, lr=0.02, optimizer="sgd", momentum=0.5)
    rec = sd.probe(gan.game, batch, k=3, on_error="ignore")
    assert not rec.flags & flag_bit("derivative_mismatch"), rec.message


def test_a_closure_that_calls_backward_is_a_recorded_failure_that_says_what_to_do():
    game = game_with(torch.tanh)
    inner = game._losses

    def stepping(batch):
        out = inner(batch)
        out["discriminator"].backward()  # frees the graph, as a training step does
        return out

    bad = sd.Game(dict(zip(game.player_names, (game.modules[0], game.modules[1]))), stepping)
    grads = [p.grad for p in bad.parameters()]
    with pytest.warns(sd.ProbeWarning, match="recompute the losses"):
        rec = sd.probe(bad, k=2)
    assert rec.status == "error"
    assert [p.grad for p in bad.parameters()] == grads  # .grad untouched (None stays None)
    with pytest.raises(RuntimeError):
        sd.probe(bad, k=2, on_error="raise")


def test_every_error_record_has_a_message():
    game = game_with(torch.tanh)

    def silent(_batch):
        raise AssertionError()

    bad = sd.Game(dict(zip(game.player_names, game.modules)), silent)
    with pytest.warns(sd.ProbeWarning):
        rec = sd.probe(bad, k=2)
    assert rec.status == "error"
    assert all("AssertionError" in r.message for r in rec.values())


def test_an_uncoupled_game_is_flagged_in_the_record():
    torch.manual_seed(0)
    G = nn.Linear(2, 2).double()
    D = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    z = torch.randn(8, 2, dtype=torch.float64)

    def detached(_batch):
        fake = G(z)
        return {"generator": -D(fake).mean(), "discriminator": D(fake.detach()).mean()}

    game = sd.Game({"generator": G, "discriminator": D}, detached)
    with pytest.warns(sd.ProbeWarning, match="does not depend on any other player"):
        rec = sd.probe(game, k=2)
    assert "uncoupled" in flag_names(rec.flags)
    assert np.isfinite(rec["jacobian"].eigenvalues).all()
