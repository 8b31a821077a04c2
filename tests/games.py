"""Small games with an independent dense reference Jacobian, shared by the tests.

The reference never touches specdiag's operators: the losses are written as pure
functions of explicit parameter dictionaries (``torch.func.functional_call``), the
vector field is rebuilt from a flat vector, and ``torch.autograd.functional.jacobian``
differentiates it. ``specdiag.Game`` sees the same losses through the modules' own
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

import specdiag as sd


def mlp(sizes: list[int], *, batchnorm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if batchnorm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


@dataclass
class SmallGame:
    """A game, its modules, and a dense reference Jacobian."""

    game: sd.Game
    modules: Mapping[str, nn.Module]
    loss_fn: Callable[[dict[str, dict[str, torch.Tensor]]], dict[str, torch.Tensor]]

    def dense_jacobian(self) -> torch.Tensor:
        """J by torch.autograd.functional.jacobian of v(x) (independent of specdiag)."""
        names = list(self.modules)
        keys = {
            p: [k for k, t in self.modules[p].named_parameters() if t.requires_grad] for p in names
        }
        sizes = {
            p: [dict(self.modules[p].named_parameters())[k].numel() for k in keys[p]] for p in names
        }
        shapes = {
            p: [dict(self.modules[p].named_parameters())[k].shape for k in keys[p]] for p in names
        }

        def field(flat: torch.Tensor) -> torch.Tensor:
            params: dict[str, dict[str, torch.Tensor]] = {}
            start = 0
            for p in names:
                params[p] = {}
                for key, size, shape in zip(keys[p], sizes[p], shapes[p]):
                    params[p][key] = flat[start : start + size].view(shape)
                    start += size
            losses = self.loss_fn(params)
            grads: list[torch.Tensor] = []
            for p in names:
                g = torch.autograd.grad(losses[p], list(params[p].values()), create_graph=True)
                grads.extend(t.reshape(-1) for t in g)
            return torch.cat(grads)

        flat = torch.cat([t.detach().reshape(-1) for p in names for t in self.game.parameters(p)])
        return torch.autograd.functional.jacobian(field, flat)


def gan_game(
    *,
    loss: str = "nonsaturating",
    latent: int = 3,
    data_dim: int = 2,
    hidden: int = 16,
    batch: int = 32,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> SmallGame:
    """MLP generator and discriminator, a few hundred parameters.

    ``loss``: "nonsaturating" (L_G = -log D(G(z))), "minimax" (L_G = -L_D, zero-sum)
    or "wgan" (zero-sum, linear critic loss).
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G = mlp([latent, hidden, data_dim]).to(dtype)
    D = mlp([data_dim, hidden, 1]).to(dtype)
    x_real = torch.randn(batch, data_dim, generator=gen, dtype=dtype) + 1.0
    z = torch.randn(batch, latent, generator=gen, dtype=dtype)

    def loss_fn(params: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        fake = functional_call(G, params["generator"], (z,))
        d_real = functional_call(D, params["discriminator"], (x_real,))
        d_fake = functional_call(D, params["discriminator"], (fake,))
        if loss == "wgan":
            l_d = d_fake.mean() - d_real.mean()
            return {"generator": -l_d, "discriminator": l_d}
        l_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        if loss == "minimax":
            return {"generator": -l_d, "discriminator": l_d}
        return {"generator": F.softplus(-d_fake).mean(), "discriminator": l_d}

    modules = {"generator": G, "discriminator": D}

    def losses(_batch: object) -> dict[str, torch.Tensor]:
        return loss_fn({p: dict(m.named_parameters()) for p, m in modules.items()})

    return SmallGame(sd.Game(modules, losses), modules, loss_fn)


def three_player_game(*, dtype: torch.dtype = torch.float64, seed: int = 0) -> SmallGame:
    """Three players with coupled, non-zero-sum losses (a small MLP each)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mods = {name: mlp([4, 6, 4]).to(dtype) for name in ("a", "b", "c")}
    x = torch.randn(16, 4, generator=gen, dtype=dtype)

    def loss_fn(params: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        fa = functional_call(mods["a"], params["a"], (x,))
        fb = functional_call(mods["b"], params["b"], (fa,))
        fc = functional_call(mods["c"], params["c"], (fb,))
        return {
            "a": (fa * fc).mean() + 0.1 * fa.pow(2).mean(),
            "b": -(fb * fa).mean() + (fc - x).pow(2).mean(),
            "c": torch.tanh(fc * fb).mean() + 0.05 * fc.pow(2).mean(),
        }

    def losses(_batch: object) -> dict[str, torch.Tensor]:
        return loss_fn({p: dict(m.named_parameters()) for p, m in mods.items()})

    return SmallGame(sd.Game(mods, losses), mods, loss_fn)


def sorted_by(values: np.ndarray, which: str) -> np.ndarray:
    """Dense eigenvalues ordered most wanted first, as the solvers order theirs."""
    from specdiag.linalg.which import wanted_order

    return values[wanted_order(values, which)]


def assert_same(before: Mapping[Any, Any], after: Mapping[Any, Any]) -> None:
    """Two state snapshots (name -> tensor, list of tensors or value) are bitwise equal."""
    assert before.keys() == after.keys()
    for key, old in before.items():
        new = after[key]
        if isinstance(old, torch.Tensor):
            assert old.dtype == new.dtype and old.shape == new.shape, key
            assert torch.equal(
                old.reshape(-1).view(torch.uint8), new.reshape(-1).view(torch.uint8)
            ), key
        elif isinstance(old, list):
            assert all(torch.equal(a, b) for a, b in zip(old, new)), key
        else:
            assert old == new, key


def snapshot(modules: list[nn.Module]) -> dict[object, Any]:
    """Everything a probe must leave as it was: values bitwise, identities, flags."""
    out: dict[object, Any] = {}
    for i, root in enumerate(modules):
        for name, m in root.named_modules():
            out[i, name, "training"] = m.training
        for name, p in root.named_parameters():
            out[i, name] = p.detach().clone()
            out[i, name, "id"] = id(p)
            out[i, name, "dtype"] = p.dtype
            out[i, name, "version"] = p._version
            out[i, name, "requires_grad"] = p.requires_grad
            out[i, name, "grad"] = None if p.grad is None else p.grad.clone()
            out[i, name, "grad id"] = id(p.grad)
        for name, b in root.named_buffers():
            out[i, name] = b.clone()
            out[i, name, "id"] = id(b)
            out[i, name, "version"] = b._version
    out["cpu rng"] = torch.get_rng_state()
    if torch.cuda.is_available():
        out["cuda rng"] = torch.cuda.get_rng_state_all()
    return out
