"""Probes under torch.distributed (gloo, CPU), in spawned processes.

Each test spawns 2 or 4 ranks (see ``distributed_workers.launch``, which fails a test
whose ranks hang instead of blocking) and groups several checks per spawn: process
start-up dominates the time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import distributed_workers as workers
import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag import toys
from specdiag.linalg import basis as basis_module
from specdiag.probing import memory as memory_module
from specdiag.probing.memory import available_memory, probe_memory

RTOL = 1e-5


def assert_close(got: dict, expected: dict, rtol: float = RTOL) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        a, b = np.asarray(got[name]), np.asarray(expected[name])
        assert a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b)), name
        assert np.nanmax(np.abs(a - b)) <= rtol * np.nanmax(np.abs(b)), (name, a, b)


@pytest.mark.parametrize("world_size", [2, 4])
def test_distributed_probe_equals_one_process_on_the_concatenated_batch(world_size):
    results = workers.launch(workers.probe_equality, world_size)
    alone = results[0]["alone"]
    for rank, result in enumerate(results):
        assert result["status"] == "ok"
        assert_close(result["distributed"], alone)
        # every rank holds the very same numbers
        for name, values in result["distributed"].items():
            assert np.array_equal(values, results[0]["distributed"][name]), (rank, name)
        assert_close(result["sharded"], result["distributed"], rtol=1e-10)
        for player, loss in result["losses"].items():
            assert loss == pytest.approx(results[0]["alone_losses"][player], rel=1e-12)
        # the update operator and the Helmholtz split are the global batch's too
        for name, value in result["dynamics"].items():
            assert value == pytest.approx(results[0]["alone_dynamics"][name], rel=RTOL), name

    eigs = results[0]["eigs"]
    (values, vectors, products), (s_values, s_vectors, s_products) = (
        eigs["replicated"],
        eigs["sharded"],
    )
    assert products == s_products
    np.testing.assert_allclose(s_values, values, rtol=1e-10)
    # unit eigenvectors agree up to a complex phase
    phase = (s_vectors.conj() * vectors).sum(axis=0)
    np.testing.assert_allclose(np.abs(phase), 1.0, rtol=1e-8)
    dense = eigs["dense"][np.argsort(-np.abs(eigs["dense"]))][: len(values)]
    np.testing.assert_allclose(np.sort_complex(values), np.sort_complex(dense), rtol=1e-8)


def test_unequal_shards_are_weighted_by_shard_weight():
    results = workers.launch(workers.probe_equality, 2, [10, 14])
    assert_close(results[0]["distributed"], results[0]["alone"])


def test_a_failure_on_one_rank_is_agreed_on_by_all_ranks():
    rank0, rank1 = workers.launch(workers.failures, 2)
    status, messages, losses = rank0["raise"]
    assert status == "error" and "failed on rank(s) 1 (error)" in messages[0]
    assert all(np.isnan(v) for v in losses.values())
    assert rank1["raise"][0] == "error" and "on purpose" in rank1["raise"][1][0]
    assert rank0["nan"][0] == rank1["nan"][0] == "nonfinite"
    assert rank0[None][0] == rank1[None][0] == "ok"  # the next probe works
    assert rank0["raised"] == "LossClosureError" == rank1["raised"]
    assert rank0["product"].startswith("a product failed on 1 other rank")
    assert "on purpose" in rank1["product"]
    assert rank0["warnings"] == 2 and rank1["warnings"] == 2  # rank 1: only its own failures
    # SyncBatchNorm in training mode: on CPU its forward refuses to run (on CUDA the
    # double backward is not implemented); every rank records the failure, none hangs.
    # In eval mode it is a plain BatchNorm with running statistics: the probe works.
    for result in (rank0, rank1):
        status, message = result["syncbn"]["train"]
        assert status == "error" and "SyncBatchNorm" in message
        assert result["syncbn"]["eval"][0] == "ok"


def test_ddp_training_is_bit_identical_with_the_monitor_and_only_rank_0_writes(tmp_path):
    results = workers.launch(workers.ddp_training, 2, str(tmp_path))
    for rank, result in enumerate(results):
        assert result["bit_identical"], rank
        assert result["grads_kept"], rank  # .grad, views of DDP's buckets, untouched
        assert result["comm_during_probes"] == 0  # DDP's gradient hooks never fired
        assert result["comm_in_training"] > 0
        assert result["trace"] == (rank == 0)
    with sd.open_trace(tmp_path / "run0.h5") as trace:
        assert list(trace.probe_steps()) == [0, 3, 6]
        assert list(trace.status("jacobian")) == ["ok", "error", "ok"]
        assert "failed on rank(s) 1 (error)" in trace.messages("jacobian")[1]
        eig = trace.eigenvalues("jacobian")
        assert np.isfinite(eig[[0, 2], 0]).all() and np.isnan(eig[1]).all()


# ---------------------------------------------------------------------- basis storage (one process)
def synthetic(n: int = 400, seed: int = 0) -> torch.Tensor:
    """A non-symmetric matrix with well separated outliers over a bulk."""
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    values = torch.cat(
        [
            torch.tensor([40.0, 30.0, 25.0, 20.0]),
            torch.rand(n - 4, generator=gen, dtype=torch.float64),
        ]
    )
    return (Q * values) @ Q.T + 0.1 * torch.randn(n, n, generator=gen, dtype=torch.float64) / n**0.5


@pytest.mark.parametrize("dtype, rtol", [(torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
def test_a_basis_in_lower_precision_gives_the_eigenvalues_to_its_precision(
    dtype, rtol, monkeypatch
):
    monkeypatch.setattr(basis_module, "SLAB_ELEMENTS", 1000)  # several slabs per pass
    A = synthetic().float()
    ref = sd.eigs(A, k=4, tol=1e-6)
    got = sd.eigs(A, k=4, tol=1e-3, basis_dtype=dtype)
    assert got.all_converged
    np.testing.assert_allclose(got.eigenvalues.numpy(), ref.eigenvalues.numpy(), rtol=rtol)
    sym = sd.eigsh(A + A.T, k=4, tol=1e-3, basis_dtype=dtype, return_eigenvectors=True)
    ref_sym = sd.eigsh(A + A.T, k=4, tol=1e-6)
    np.testing.assert_allclose(sym.eigenvalues.numpy(), ref_sym.eigenvalues.numpy(), rtol=rtol)
    assert sym.eigenvectors is not None and sym.eigenvectors.dtype == torch.float32


def test_a_basis_on_the_host_and_a_probe_with_a_half_precision_basis():
    A = synthetic()
    ref = sd.eigs(A, k=4, tol=1e-10)
    got = sd.eigs(A, k=4, tol=1e-10, basis_device="cpu")
    assert np.array_equal(got.eigenvalues.numpy(), ref.eigenvalues.numpy())
    gan = workers.tiny_gan(torch.float32)
    batch = workers.global_batch(gan)
    full = sd.probe(gan.game, batch, k=3, tol=1e-4)
    half = sd.probe(gan.game, batch, k=3, tol=1e-3, basis_dtype=torch.float16)
    assert half.ok
    for name in full:
        a, b = full[name].eigenvalues[:3], half[name].eigenvalues[:3]
        assert np.abs(a - b).max() <= 5e-3 * np.abs(a).max(), name
    with pytest.raises(ValueError, match="no wider"):
        sd.eigs(A.float(), k=2, basis_dtype=torch.float64)
    with pytest.raises(ValueError, match="krylov-schur"):
        sd.eigs(A, k=2, basis_dtype=torch.float32, backend="arpack")


def test_memory_report_and_refusal(monkeypatch):
    game = toys.mog_gan(hidden=576, depth=4).game  # 2,007,363 parameters
    m = probe_memory(game, k=10)
    assert (m.n, m.ncv, m.world_size) == (2_007_363, 21, 1)
    assert m.basis == 22 * 2_007_363 * 4 and m.restart == 21 * 2_007_363 * 4
    assert m.vectors == 4 * 2_007_363 * 4 and m.total == m.basis + m.restart + m.vectors
    assert m.needed() == {torch.device("cpu"): m.total}
    half = probe_memory(game, k=10, basis_dtype=torch.float16, world_size=4, shard_basis=True)
    assert half.basis == 22 * -(-2_007_363 // 4) * 2 and half.world_size == 4
    assert half.restart == 2 * min(basis_module.SLAB_ELEMENTS, 21 * -(-2_007_363 // 4)) * 4
    assert half.vectors == 6 * 2_007_363 * 4
    assert probe_memory(game, operators=["discriminator"]).n == 999_361
    assert "basis" in str(m) and m.shortfall() is None or available_memory("cpu") < m.total

    gan = workers.tiny_gan()
    monkeypatch.setattr(memory_module, "available_memory", lambda device: 1000)
    with pytest.warns(
        sd.ProbeWarning, match="refused .* 1000 B are free; pass basis_dtype=torch.float16"
    ):
        record = sd.probe(gan.game, workers.global_batch(gan), k=2)
    assert record.status == "error" and "shard_basis=True" in record["jacobian"].message
    with pytest.raises(MemoryError, match="basis_dtype=torch.float16"):
        sd.probe(gan.game, workers.global_batch(gan), k=2, on_error="raise")


# ---------------------------------------------------------------------- Lightning
def test_lightning_ddp_on_two_processes_writes_the_trace_of_one_process(tmp_path):
    """strategy="ddp", 2 CPU processes, against 1 process on the same global batches."""
    script = Path(__file__).resolve().parents[1] / "lightning_ddp_script.py"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    runs = {
        devices: subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"run{devices}.h5"), str(devices)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for devices in (2, 1)
    }
    for devices, proc in runs.items():
        try:
            out, _ = proc.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        assert proc.returncode == 0, f"{devices} device(s): {out[-3000:]}"
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == ["run1.h5", "run2.h5"]
    with sd.open_trace(tmp_path / "run1.h5") as one, sd.open_trace(tmp_path / "run2.h5") as two:
        assert list(one.probe_steps()) == list(two.probe_steps()) == [0, 2, 4]
        assert two.meta["config"]["world_size"] == 2
        for name in one.operators:
            assert list(two.status(name)) == ["ok"] * 3
            assert_close({name: two.eigenvalues(name)}, {name: one.eigenvalues(name)})
