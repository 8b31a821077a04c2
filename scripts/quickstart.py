"""Quick start: watch the spectrum of the game Jacobian while a tiny GAN trains.

A plain PyTorch training loop (non-saturating GAN, Adam) on a ring of 8 Gaussians
in 2-D. Every ``--every`` steps the game Jacobian J on a fixed probe batch is built
matrix-free and its ``--k`` eigenvalues of largest magnitude are computed with
``specdiag.eigs``. Sign convention: descent, so gradient flow is locally stable
where every eigenvalue has positive real part; a large ``|Im λ|`` means rotation.

Run ``python scripts/quickstart.py --help`` for the options. Deterministic for a
given ``--seed`` (on one machine, with one number of threads).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

import specdiag as sd

LATENT = 8
HIDDEN = 64
BATCH = 256


def ring_of_gaussians(
    n: int, generator: torch.Generator, *, modes: int = 8, radius: float = 2.0, std: float = 0.02
) -> torch.Tensor:
    """``n`` points from ``modes`` Gaussians evenly spaced on a circle, shape ``(n, 2)``."""
    angle = 2 * math.pi * torch.randint(modes, (n,), generator=generator) / modes
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator)


def mlp(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, n_out),
    )


def gan_losses(
    G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Non-saturating GAN losses, **without** detaching the generator's output.

    Each loss is differentiated only with respect to its own player's parameters, so
    no detach is needed; a detach would cut the coupling blocks out of J.
    """
    fake = G(z)
    d_fake = D(fake)
    loss_d = F.softplus(-D(real)).mean() + F.softplus(d_fake).mean()
    loss_g = F.softplus(-d_fake).mean()
    return {"generator": loss_g, "discriminator": loss_d}


def probe(game: sd.Game, batch: tuple[torch.Tensor, torch.Tensor], step: int, k: int) -> None:
    """Print the top-``k`` eigenvalues (largest |λ|) of the game Jacobian on ``batch``."""
    start = time.perf_counter()
    J = sd.GameJacobian(game, batch)  # evaluates the losses once and keeps the graph
    result = sd.eigs(J, k=k, which="LM")  # tol=1e-3 relative, the default
    seconds = time.perf_counter() - start
    lam = result.eigenvalues
    losses = J.field.losses
    print(
        f"step {step:4d} | loss D {losses['discriminator']:.3f}  G {losses['generator']:.3f}"
        f" | J: n = {game.n}, {result.k} eigenvalues of largest |λ|,"
        f" {result.n_converged}/{result.k} converged, {result.n_matvec} products, {seconds:.2f} s"
    )
    for i, value in enumerate(lam.tolist(), start=1):
        print(f"    λ{i:<2d} = {value.real:+.4e} {value.imag:+.4e}j")
    print(
        f"    min Re λ = {lam.real.min().item():+.4e}   max |Im λ| = "
        f"{lam.imag.abs().max().item():.4e}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train a tiny GAN on a ring of 8 Gaussians and print the spectrum "
        "of its game Jacobian every few steps."
    )
    parser.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    parser.add_argument("--every", type=int, default=100, help="probe every N steps (default 100)")
    parser.add_argument("--k", type=int, default=6, help="eigenvalues per probe (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.steps < 0 or args.every < 1 or args.k < 1:
        parser.error("--steps must be >= 0, --every >= 1 and --k >= 1")

    torch.manual_seed(args.seed)
    data = torch.Generator().manual_seed(args.seed)
    G, D = mlp(LATENT, 2), mlp(2, 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))

    # The game: one loss per player, from the batch the probe passes in.
    game = sd.Game(
        players={"generator": G, "discriminator": D},
        losses=lambda batch: gan_losses(G, D, *batch),
    )
    # A fixed probe batch (data and noise), so probes at different steps compare.
    probe_batch = (ring_of_gaussians(BATCH, data), torch.randn(BATCH, LATENT, generator=data))
    print(f"{game}; eigenvalues in the descent convention (stable iff Re λ > 0)")
    probe(game, probe_batch, 0, args.k)

    for step in range(1, args.steps + 1):
        # The usual training step, written the usual way.
        real = ring_of_gaussians(BATCH, data)
        z = torch.randn(BATCH, LATENT, generator=data)
        fake = G(z)
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

        if step % args.every == 0:
            probe(game, probe_batch, step, args.k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
