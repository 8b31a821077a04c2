"""Worker functions for tests/probing/test_distributed.py, run in spawned processes.

:func:`launch` starts ``world_size`` processes, each joining a gloo process group (on a
file store in a temporary directory, so no port can clash) and calling
``target(rank, world_size, *args)``; it returns the targets' return values in rank
order. A worker that raises, dies or outlives ``timeout`` fails the test with every
rank's traceback: collectives time out after ``timeout`` seconds too, so a hang fails
instead of blocking.
"""

from __future__ import annotations

import datetime
import os
import pickle
import tempfile
import time
import traceback
import warnings
from typing import Any, Callable

import numpy as np
import torch
import torch.multiprocessing as mp
from torch import distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn import functional as F

import specdiag as sd
from specdiag import toys
from specdiag.errors import ProbeWarning
from specdiag.probing.distributed import AveragedOperator, ProbeGroup, resolve_group


def launch(
    target: Callable[..., Any], world_size: int, *args: Any, timeout: float = 90.0
) -> list[Any]:
    """Run ``target(rank, world_size, *args)`` on ``world_size`` gloo ranks; their results."""
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        procs = [
            ctx.Process(target=_entry, args=(target, rank, world_size, tmp, timeout, args))
            for rank in range(world_size)
        ]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout + 30
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        hung = [rank for rank, p in enumerate(procs) if p.is_alive()]
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        outcomes = []
        for rank in range(world_size):
            path = os.path.join(tmp, f"result{rank}.pkl")
            outcomes.append(
                pickle.load(open(path, "rb")) if os.path.exists(path) else ("missing", None)
            )
    errors = [f"rank {r}: {value}" for r, (kind, value) in enumerate(outcomes) if kind != "ok"]
    if hung or errors:
        raise AssertionError(f"ranks {hung} hung; " + "\n".join(errors))
    return [value for _, value in outcomes]


def _entry(target, rank: int, world_size: int, tmp: str, timeout: float, args: tuple) -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", FutureWarning)
    store = dist.FileStore(os.path.join(tmp, "store"), world_size)
    dist.init_process_group(
        "gloo",
        store=store,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout),
    )
    try:
        outcome = ("ok", target(rank, world_size, *args))
    except BaseException:
        outcome = ("error", traceback.format_exc())
    with open(os.path.join(tmp, f"result{rank}.pkl"), "wb") as f:
        pickle.dump(outcome, f)
    if outcome[0] == "ok":
        dist.barrier()
    dist.destroy_process_group()


# ---------------------------------------------------------------------- shared pieces
GLOBAL_BATCH = 24
PROBE: dict[str, Any] = dict(k=4, tol=1e-10, seed=0)
#: The run's update operator and the Helmholtz split, probed along with the spectra.
DYNAMICS: dict[str, Any] = dict(update=sd.UpdateRule("gd", lr=0.1), helmholtz=4)


def tiny_gan(dtype: torch.dtype = torch.float64) -> toys.MoGGAN:
    return toys.mog_gan(hidden=8, depth=1, latent=4, seed=0, dtype=dtype)


def global_batch(
    gan: toys.MoGGAN, size: int = GLOBAL_BATCH, seed: int = 1
) -> dict[str, torch.Tensor]:
    return gan.sample(size, torch.Generator().manual_seed(seed))


def shard(batch: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    return {key: value[start:stop] for key, value in batch.items()}


def eigenvalues(record: sd.ProbeRecord) -> dict[str, np.ndarray]:
    """The eigenvalues of the spectra probed (the Jacobian and the Hessians)."""
    return {
        name: op.eigenvalues for name, op in record.items() if op.kind in ("jacobian", "hessian")
    }


def dynamics(record: sd.ProbeRecord) -> dict[str, float]:
    """ρ(∂T) of the update operator and the Helmholtz rotation fraction of a probe."""
    return {
        "rho": record["update"].scalars["spectral_radius"],
        "rotation": record["helmholtz"].scalars["rotation_fraction"],
        "defect": record["helmholtz"].scalars["zero_sum_defect"],
    }


# ---------------------------------------------------------------------- equality
def probe_equality(rank: int, world_size: int, sizes: list[int] | None = None) -> dict[str, Any]:
    """Probe the rank's shard together; rank 0 also probes the whole batch alone.

    ``sizes``: unequal shard sizes, passed as ``shard_weight``; default equal shards.
    """
    gan = tiny_gan()
    batch = global_batch(gan)
    sizes = sizes or [GLOBAL_BATCH // world_size] * world_size
    start = sum(sizes[:rank])
    weight = sizes[rank] if len(set(sizes)) > 1 else None
    record = sd.probe(
        gan.game, shard(batch, start, start + sizes[rank]), shard_weight=weight, **PROBE, **DYNAMICS
    )
    sharded = sd.probe(
        gan.game,
        shard(batch, start, start + sizes[rank]),
        shard_weight=weight,
        shard_basis=True,
        **PROBE,
    )
    out = {
        "distributed": eigenvalues(record),
        "losses": record.losses,
        "status": record.status,
        "dynamics": dynamics(record),
        "sharded": eigenvalues(sharded),
        "eigs": sharded_eigs(rank, world_size),
    }
    if rank == 0:
        alone = sd.probe(gan.game, batch, distributed=False, **PROBE, **DYNAMICS)
        out.update(
            alone=eigenvalues(alone), alone_losses=alone.losses, alone_dynamics=dynamics(alone)
        )
    return out


def world_group() -> ProbeGroup:
    """The default group of this launch (always more than one rank)."""
    group = resolve_group(None)
    assert group is not None, "the workers run in a process group of several ranks"
    return group


def sharded_eigs(rank: int, world_size: int) -> dict[str, Any]:
    """eigs with eigenvectors on a replicated and on a sharded basis, same operator
    (a rank's block of rows of a 101 x 101 matrix, averaged: n not divisible by W)."""
    A = torch.randn(101, 101, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    local = sd.MatrixOperator(world_size * A * (torch.arange(101) % world_size == rank)[:, None])
    op = AveragedOperator(local, world_group(), 1.0 / world_size)
    out: dict[str, Any] = {}
    for label, group in (("replicated", None), ("sharded", True)):
        r = sd.eigs(op, k=4, tol=1e-12, return_eigenvectors=True, basis_group=group)
        assert r.eigenvectors is not None
        out[label] = (r.eigenvalues.numpy(), r.eigenvectors.numpy(), r.n_matvec)
    out["dense"] = np.linalg.eigvals(A.numpy())
    return out


# ---------------------------------------------------------------------- failures
class Poisoned:
    """A losses closure that fails on one rank when ``armed``: raises or returns NaN."""

    def __init__(self, losses: Callable[[Any], dict], rank: int, bad_rank: int) -> None:
        self.losses, self.rank, self.bad_rank = losses, rank, bad_rank
        self.armed: str | None = None

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = self.losses(batch)
        if self.armed == "raise" and self.rank == self.bad_rank:
            raise RuntimeError("the closure failed on purpose")
        if self.armed == "nan" and self.rank == self.bad_rank:
            losses["generator"] = losses["generator"] * float("nan")
        return losses


class FailingProduct(sd.LinearOperator):
    """An operator whose products raise from the ``fail_at``-th on (on one rank)."""

    def __init__(self, matrix: torch.Tensor, fail_at: int | None) -> None:
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device)
        self.matrix, self.fail_at = matrix, fail_at

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        if self.fail_at is not None and self.n_matvec >= self.fail_at:
            raise RuntimeError("the product failed on purpose")
        return self.matrix @ u

    _rmatvec = _matvec


def failures(rank: int, world_size: int) -> dict[str | None, Any]:
    """A closure raising on rank 1, NaN on rank 1, a product raising on rank 1, each
    followed by a probe that works; ``on_error="raise"`` raises on every rank."""
    gan = tiny_gan()
    batch = shard(global_batch(gan), 12 * rank, 12 * rank + 12)
    closure = Poisoned(gan.losses, rank, bad_rank=1)
    game = sd.Game({"generator": gan.generator, "discriminator": gan.discriminator}, closure)
    out: dict[str | None, Any] = {}  # keyed by the closure's failure mode, None: no failure
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProbeWarning)
        for mode in ("raise", "nan", None):
            closure.armed = mode
            record = sd.probe(game, batch, **PROBE)
            out[mode] = (record.status, [op.message for op in record.values()], dict(record.losses))
        closure.armed = "raise"
        try:
            sd.probe(game, batch, on_error="raise", **PROBE)
        except Exception as exc:
            out["raised"] = type(exc).__name__
    out["warnings"] = len([w for w in caught if issubclass(w.category, ProbeWarning)])
    out["syncbn"] = sync_batchnorm(rank)
    matrix = torch.randn(50, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    op = AveragedOperator(FailingProduct(matrix, 5 if rank == 1 else None), world_group(), 0.5)
    try:
        sd.eigs(op, k=3)
    except RuntimeError as exc:
        out["product"] = str(exc)
    return out


# ---------------------------------------------------------------------- DDP training
class DDPGAN:
    """A tiny GAN whose players are wrapped in DistributedDataParallel (gradients as
    views of DDP's buckets), trained on this rank's shard; the game's closure calls the
    wrappers and fails on rank 1 when armed."""

    def __init__(self, rank: int) -> None:
        self.gan = tiny_gan(torch.float32)
        self.G = nn.parallel.DistributedDataParallel(
            self.gan.generator, gradient_as_bucket_view=True
        )
        self.D = nn.parallel.DistributedDataParallel(
            self.gan.discriminator, gradient_as_bucket_view=True
        )
        self.comm_calls = 0
        for module in (self.G, self.D):
            module.register_comm_hook(None, self._count)
        self.opt_g = torch.optim.SGD(self.G.parameters(), lr=0.05)
        self.opt_d = torch.optim.SGD(self.D.parameters(), lr=0.05)
        self.closure = Poisoned(self.losses, rank, bad_rank=1)
        self.game = sd.Game({"generator": self.G, "discriminator": self.D}, self.closure)
        self.data = torch.Generator().manual_seed(100 + rank)

    # unannotated on purpose: DDP compares a hook's annotations with dist.GradBucket and
    # torch.futures.Future, and ``from __future__ import annotations`` makes them strings
    def _count(self, state, bucket):
        self.comm_calls += 1
        # None is the default group (torch's hook resolves it; its annotation omits None)
        return default_hooks.allreduce_hook(None, bucket)  # type: ignore[arg-type]

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        real = batch["real"]
        d = self.D(torch.cat([real, self.G(batch["z"])])).reshape(-1)
        d_real, d_fake = d[: len(real)], d[len(real) :]
        return {
            "generator": F.softplus(-d_fake).mean(),
            "discriminator": F.softplus(-d_real).mean() + F.softplus(d_fake).mean(),
        }

    def step(self) -> dict[str, torch.Tensor]:
        """One alternating update (the usual DDP GAN step); returns the batch."""
        batch = self.gan.sample(8, self.data)
        real = batch["real"]
        with torch.no_grad():
            fake = self.G(batch["z"])
        self.opt_d.zero_grad()
        d = self.D(torch.cat([real, fake])).reshape(-1)
        (F.softplus(-d[: len(real)]).mean() + F.softplus(d[len(real) :]).mean()).backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        F.softplus(-self.D(self.G(batch["z"]))).mean().backward()
        self.opt_g.step()
        return batch

    def state(self) -> dict[str, torch.Tensor]:
        return {
            f"{name}.{k}": v.detach().clone()
            for name, m in (("G", self.G), ("D", self.D))
            for k, v in m.module.state_dict().items()
        }


def grad_of(p: torch.Tensor) -> torch.Tensor:
    """``p.grad``, which a training step has set."""
    assert p.grad is not None, "the training step left a parameter without a gradient"
    return p.grad


def ddp_training(rank: int, world_size: int, tmp: str, steps: int = 7) -> dict[str, Any]:
    """The same DDP run without and with a monitor (every 3 steps; the closure raises
    on rank 1 at step 3): final parameters, gradients around each probe, DDP's
    communication during probes."""
    plain = DDPGAN(rank)
    for _ in range(steps):
        plain.step()
    run = DDPGAN(rank)
    path = os.path.join(tmp, f"run{rank}.h5")
    grads_kept, comm_during_probes = True, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeWarning)
        with sd.SpectrumMonitor(run.game, path, every=3, k=2, tol=1e-4, resume=False) as monitor:
            for step in range(steps):
                batch = run.step()
                grads = [grad_of(p).clone() for p in run.game.parameters()]
                before = run.comm_calls
                run.closure.armed = "raise" if step == 3 else None
                monitor.step(step, batch)
                comm_during_probes += run.comm_calls - before
                grads_kept &= all(
                    torch.equal(g, grad_of(p)) for g, p in zip(grads, run.game.parameters())
                )
    same = all(torch.equal(a, b) for a, b in zip(plain.state().values(), run.state().values()))
    return {
        "bit_identical": same,
        "grads_kept": grads_kept,
        "comm_during_probes": comm_during_probes,
        "comm_in_training": run.comm_calls,
        "trace": os.path.exists(path),
    }


def sync_batchnorm(rank: int) -> dict[str, Any]:
    """A generator with SyncBatchNorm, probed in training mode and in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        G = nn.SyncBatchNorm.convert_sync_batchnorm(
            nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2)).double()
        )
        D = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    data = torch.Generator().manual_seed(rank)
    z = torch.randn(8, 3, dtype=torch.float64, generator=data)
    x = torch.randn(8, 2, dtype=torch.float64, generator=data)

    def losses(batch):
        d_fake = D(G(z))
        return {
            "generator": F.softplus(-d_fake).mean(),
            "discriminator": F.softplus(-D(x)).mean() + F.softplus(d_fake).mean(),
        }

    game = sd.Game({"generator": G, "discriminator": D}, losses)
    out = {}
    for mode in ("train", "eval"):
        G.train(mode == "train")
        record = sd.probe(game, k=2, on_error="ignore")
        out[mode] = (record.status, record["jacobian"].message)
    return out
