"""Snapshots: what a deferred probe needs, stored exactly and crash-safely."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import specdiag as sd
from specdiag.monitor.snapshots import (
    GameState,
    SnapshotError,
    SnapshotWriter,
    load_state,
    open_snapshot,
    read_manifest,
    read_snapshots,
    state_of,
)

ROOT = Path(__file__).resolve().parents[2]
Pair = namedtuple("Pair", "a b")


def _game(dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[sd.Game, dict]:
    """A module player with BatchNorm (buffers, an int64 counter), a player given as
    tensors, and another module (buffers only) given with ``modules=``."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 1)).to(dtype)
    frozen = nn.Linear(2, 2).to(dtype)  # a module whose weight is a tensor player
    frozen.bias.requires_grad_(False)
    extra = nn.BatchNorm1d(2).to(dtype)
    norm: Any = net[1]
    with torch.no_grad():  # buffers that are not their initial values
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.num_batches_tracked.fill_(7)
        extra.running_mean.uniform_(-1, 1)  # type: ignore[union-attr]

    def losses(batch):
        out = net(batch["x"]).mean()
        return {"net": out * frozen.weight.sum(), "w": -out * frozen.weight.sum()}

    game = sd.Game({"net": net, "w": [frozen.weight]}, losses, modules=[frozen, extra])
    return game, {"net": net, "frozen": frozen, "extra": extra}


def _all_tensors(modules: dict) -> dict[str, torch.Tensor]:
    return {
        f"{m}.{k}": v.detach().clone()
        for m, mod in modules.items()
        for k, v in mod.state_dict().items()
    }


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's raw bits (bitwise comparison whatever the dtype, NaN included)."""
    size = t.element_size()
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[size]
    return t.contiguous().view(view)


def _assert_bitwise(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(_bits(a[k]), _bits(b[k])), k


def _scramble(modules: dict) -> None:
    with torch.no_grad():
        for mod in modules.values():
            for v in mod.state_dict(keep_vars=True).values():
                v.copy_(torch.full_like(v, 3) if v.is_floating_point() else v + 5)
            mod.train(not mod.training)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_parameters_buffers_and_flags_round_trip_bitwise(tmp_path, dtype):
    game, modules = _game(dtype)
    modules["net"][2].eval()  # a submodule flag differing from its parent's
    saved, flags = _all_tensors(modules), [m.training for m in modules["net"].modules()]
    path = SnapshotWriter(tmp_path, game).save(40, {"x": torch.zeros(2, 3, dtype=dtype)})
    _scramble(modules)
    assert not torch.equal(modules["net"][0].weight, saved["net.0.weight"])
    (snap,) = read_snapshots(tmp_path)
    assert (snap.step, snap.seed, snap.path) == (40, 0, path)
    snap.load_into(game)
    _assert_bitwise(_all_tensors(modules), saved)
    assert [m.training for m in modules["net"].modules()] == flags
    assert game.parameters("w")[0] is modules["frozen"].weight  # copied in place
    with h5py.File(path, "r") as f:  # dtypes numpy lacks are stored as their bits
        first = json.loads(f.attrs["state"])["entries"][0]["tensors"][0]
        datasets = sorted(f["state"])
    stored = "uint16" if dtype == torch.bfloat16 else str(dtype)[6:]
    assert first == {"dtype": str(dtype), "raw": dtype == torch.bfloat16, "shape": [4, 3],
                     "data": stored, "offset": 0}  # fmt: skip
    assert datasets == sorted([stored, "int64"])  # one flat dataset per stored dtype


def test_state_of_and_load_state_put_a_game_back(tmp_path):
    game, modules = _game()
    before = _all_tensors(modules)
    state = state_of(game)
    assert isinstance(state, GameState) and set(state.players) == {"net", "w"}
    assert isinstance(state.players["w"], list) and len(state.modules) == 2
    _scramble(modules)
    load_state(game, state)
    _assert_bitwise(_all_tensors(modules), before)
    assert all(m.training for m in modules["net"].modules())


def test_a_user_checkpoint_loads_as_a_plain_mapping():
    game, modules = _game()
    other, other_modules = _game(seed=1)
    state = {
        "net": other_modules["net"].state_dict(),
        "w": [other_modules["frozen"].weight.detach().numpy()],
    }
    load_state(game, state)
    assert torch.equal(modules["net"][0].weight, other_modules["net"][0].weight)
    assert torch.equal(modules["frozen"].weight, other_modules["frozen"].weight)
    assert not torch.equal(modules["extra"].running_mean, other_modules["extra"].running_mean)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("w"), "no state for player(s) ['w']"),
        (lambda s: s.update(x=[]), "unknown player(s) ['x']"),
        (lambda s: s["net"].pop("1.running_var"), "missing ['1.running_var']"),
        (lambda s: s["net"].update({"module.0.weight": torch.zeros(1)}), "strip 'module.'"),
        (lambda s: s["net"].update({"0.weight": torch.zeros(4, 2)}), "shape (4, 2) in the state"),
        (
            lambda s: s["net"].update({"0.bias": torch.zeros(4, dtype=torch.float64)}),
            "'0.bias': dtype torch.float64 in the state, torch.float32 in the game",
        ),
        (lambda s: s.update(w=[torch.zeros(2, 2)] * 2), "holds 2 tensor(s), the player 1"),
        (lambda s: s.update(net=[torch.zeros(1)]), "must be a state_dict() mapping"),
    ],
)
def test_a_state_that_does_not_fit_is_refused_before_anything_is_copied(change, message):
    game, modules = _game()
    state = {"net": dict(modules["net"].state_dict()), "w": [torch.ones(2, 2)]}
    change(state)
    before = _all_tensors(modules)
    with pytest.raises(SnapshotError) as info:
        load_state(game, state)
    assert message in str(info.value)
    _assert_bitwise(_all_tensors(modules), before)


def test_loading_into_another_architecture_names_the_snapshot_and_the_tensor(tmp_path):
    game, _ = _game()
    SnapshotWriter(tmp_path, game).save(3)
    net = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 1))
    w = torch.zeros(2, 2, requires_grad=True)
    other = sd.Game(
        {"net": net, "w": [w]}, lambda b: {}, modules=[nn.Linear(2, 2), nn.BatchNorm1d(2)]
    )
    with pytest.raises(
        SnapshotError, match=r"snapshot-0000000003\.h5: player 'net', '0\.weight': shape"
    ):
        read_snapshots(tmp_path)[0].load_into(other)


def test_nested_batches_are_rebuilt_exactly(tmp_path):
    game, _ = _game()
    batch = {
        "x": torch.randn(4, 3),
        "pair": (
            torch.arange(5),
            [torch.ones(2, dtype=torch.bfloat16), torch.tensor([True, False])],
        ),
        "grad": torch.ones(2, requires_grad=True),
        "np": np.linspace(0, 1, 7, dtype=np.float32),
        "npscalar": np.int16(-3),
        "numbers": [1, 2.5, float("nan"), True, 3 + 4j, None, "text"],
        "empty": ([], {}, ()),
        "scalar": torch.tensor(2.0, dtype=torch.float64),
        "void": torch.zeros(0, 3),
    }
    SnapshotWriter(tmp_path, game).save(1, batch)
    (snap,) = read_snapshots(tmp_path)
    assert snap.has_batch
    got = snap.batch(device="cpu")
    assert list(got) == list(batch)
    assert isinstance(got["pair"], tuple) and isinstance(got["pair"][1], list)
    for a, b in [
        (got["x"], batch["x"]),
        (got["pair"][0], batch["pair"][0]),
        (got["pair"][1][0], batch["pair"][1][0]),
        (got["pair"][1][1], batch["pair"][1][1]),
        (got["scalar"], batch["scalar"]),
        (got["void"], batch["void"]),
    ]:
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    assert got["grad"].requires_grad and not got["x"].requires_grad
    np.testing.assert_array_equal(got["np"], batch["np"])
    assert got["np"].dtype == np.float32
    assert got["npscalar"] == -3 and got["npscalar"].dtype == np.int16
    assert got["numbers"][:2] == [1, 2.5] and math.isnan(got["numbers"][2])
    assert got["numbers"][3:] == [True, 3 + 4j, None, "text"]
    assert type(got["numbers"][3]) is bool
    assert got["empty"] == ([], {}, ())


@pytest.mark.parametrize(
    "batch, where",
    [
        ({"x": [torch.ones(1), object()]}, "batch['x'][1] is a object"),
        ({"x": {1: torch.ones(1)}}, "batch['x'] has a non-string key 1"),
        ((Pair(1, 2),), "batch[0] is a Pair"),
        ({"s": {1, 2}}, "batch['s'] is a set"),
        ({"o": np.array([object()])}, "batch['o'] is a numpy array of objects"),
    ],
)
def test_a_batch_a_snapshot_cannot_store_is_refused_naming_where(tmp_path, batch, where):
    game, _ = _game()
    writer = SnapshotWriter(tmp_path, game)
    with pytest.raises(TypeError) as info:
        writer.save(0, batch)
    assert where in str(info.value)
    assert "probe_batch=" in str(info.value) and "recreate it" in str(info.value)
    assert read_snapshots(tmp_path) == []  # nothing written under a final name
    with pytest.raises(TypeError) as info:
        SnapshotWriter(tmp_path, game, probe_batch=batch)
    assert where.replace("batch", "probe_batch", 1) in str(info.value)


def test_a_fixed_probe_batch_is_written_once_to_its_own_file(tmp_path):
    game, _ = _game()
    fixed = {"x": torch.randn(5, 3)}
    writer = SnapshotWriter(tmp_path, game, probe_batch=fixed, seed=9)
    for step in (0, 10, 20):
        writer.save(step, {"x": torch.zeros(1, 3)})  # ignored: the batch is fixed
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "batch-0000000000.h5",
        "manifest.json",
        "snapshot-0000000000.h5",
        "snapshot-0000000010.h5",
        "snapshot-0000000020.h5",
    ]
    snaps = read_snapshots(tmp_path)
    assert [s.seed for s in snaps] == [9, 9, 9]
    assert all(torch.equal(s.batch()["x"], fixed["x"]) for s in snaps)
    with h5py.File(snaps[1].path, "r") as f:
        assert "batch" not in f  # only the shared file holds it
    assert read_manifest(tmp_path)["probe_batch"] == "fixed"


def test_a_snapshot_saved_without_a_batch_has_none(tmp_path):
    game, _ = _game()
    SnapshotWriter(tmp_path, game).save(2)
    (snap,) = read_snapshots(tmp_path)
    assert not snap.has_batch and snap.batch() is None


def test_the_manifest_names_players_parameters_and_shapes(tmp_path):
    game, _ = _game()
    SnapshotWriter(tmp_path, game, seed=4, config={"every": {"schedule": "every", "n": 50}})
    manifest = read_manifest(tmp_path)
    assert manifest["schema"] == "specdiag-snapshots" and manifest["schema_version"] == "1.0"
    assert manifest["players"]["net"]["kind"] == "module"
    assert manifest["players"]["w"] == {"kind": "tensors", "parameters": [["w[0]", [2, 2]]]}
    assert [n for n, _ in manifest["players"]["net"]["parameters"]] == list(
        game.parameter_names("net")
    )
    assert manifest["seed"] == 4 and manifest["config"]["every"]["n"] == 50
    SnapshotWriter(tmp_path, _game(seed=3)[0])  # the same game again: accepted (a resumed run)
    net = nn.Linear(3, 1)
    other = sd.Game({"net": net, "w": [torch.zeros(2, 2, requires_grad=True)]}, lambda b: {})
    with pytest.raises(SnapshotError, match="holds snapshots of another game"):
        SnapshotWriter(tmp_path, other)


def test_snapshots_come_in_step_order_and_temporary_files_are_ignored(tmp_path):
    game, _ = _game()
    writer = SnapshotWriter(tmp_path, game)
    for step in (100, 7, 30):
        writer.save(step)
    (tmp_path / ".snapshot-0000000200.h5.123.tmp").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("not a snapshot")
    assert [s.step for s in read_snapshots(tmp_path)] == [7, 30, 100]
    SnapshotWriter(tmp_path, game)  # a new writer removes what a killed one left
    assert not (tmp_path / ".snapshot-0000000200.h5.123.tmp").exists()
    assert (tmp_path / "notes.txt").exists()


def test_background_writes_the_same_files_and_keeps_a_failed_write_for_later(tmp_path, monkeypatch):
    game, modules = _game()
    before = _all_tensors(modules)
    writer = SnapshotWriter(tmp_path / "bg", game, background=True)
    writer.save(5)
    _scramble(modules)  # after save() returns: the snapshot holds the state at the save
    assert writer.close() == [] and writer.n_saved == 1 and writer.close() == []
    read_snapshots(tmp_path / "bg")[0].load_into(game)
    _assert_bitwise(_all_tensors(modules), before)

    import specdiag.monitor.snapshots as snapshots

    write = snapshots._write_atomic

    def full_disk(path, data):
        if "0000000010" in path.name:
            raise OSError(28, "No space left on device")
        write(path, data)

    monkeypatch.setattr(snapshots, "_write_atomic", full_disk)
    writer = SnapshotWriter(tmp_path / "full", game, background=True)
    writer.save(10)  # fails on the writer's thread: nothing raised here
    writer.save(20)  # waits for step 10's write first, and keeps its failure
    failed = writer.failures()
    assert [(step, type(error)) for step, error in failed] == [(10, OSError)]
    assert writer.failures() == []  # reported once
    assert writer.close() == [] and writer.n_saved == 1
    assert [s.step for s in read_snapshots(tmp_path / "full")] == [20]


def test_bad_settings_are_refused(tmp_path):
    game, _ = _game()
    with pytest.raises(ValueError, match="integer probe seed"):
        SnapshotWriter(tmp_path, game, seed=None)
    with pytest.raises(TypeError, match="specdiag.Game"):
        SnapshotWriter(tmp_path, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        SnapshotWriter(tmp_path, game).save(-1)
    with pytest.raises(SnapshotError, match="nothing: no such directory"):
        read_snapshots(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SnapshotError, match=r"not a snapshot directory \(no manifest.json\)"):
        read_snapshots(tmp_path / "empty")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "attribute"])
def test_a_damaged_snapshot_is_one_line_naming_the_file(tmp_path, damage):
    game, _ = _game()
    writer = SnapshotWriter(tmp_path, game)
    writer.save(0)
    path = writer.save(5, {"x": torch.ones(3)})
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1500])
    elif damage == "garbage":
        path.write_bytes(b"\x89HDF\r\n" + os.urandom(3000))
    else:
        with h5py.File(path, "r+") as f:
            f.attrs["state"] = "{not json"
    with pytest.raises(SnapshotError) as info:
        snaps = read_snapshots(tmp_path)
        snaps[-1].load_into(game)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_saving_leaves_the_models_and_random_streams_alone(tmp_path):
    game, modules = _game()
    grads = [torch.ones_like(p) for p in game.parameters()]
    for p, g in zip(game.parameters(), grads):
        p.grad = g.clone()
    before = _all_tensors(modules)
    torch.manual_seed(3)
    np.random.seed(3)  # noqa: NPY002
    random.seed(3)
    SnapshotWriter(tmp_path, game).save(0, {"x": torch.ones(2)})
    _assert_bitwise(_all_tensors(modules), before)
    assert all(
        p.grad is not None and torch.equal(p.grad, g) for p, g in zip(game.parameters(), grads)
    )
    draws = (torch.rand(1).item(), np.random.rand(), random.random())  # noqa: NPY002
    torch.manual_seed(3)
    np.random.seed(3)  # noqa: NPY002
    random.seed(3)
    assert draws == (torch.rand(1).item(), np.random.rand(), random.random())  # noqa: NPY002


# --------------------------------------------------------------------------- kill -9

WRITER = """
import sys, torch
from specdiag import toys
from specdiag.monitor.snapshots import SnapshotWriter
toy = toys.mog_gan(hidden=300, depth=3, seed=0)
writer = SnapshotWriter(sys.argv[1], toy.game)
step = int(sys.argv[2])
batch = toy.sample(256, torch.Generator().manual_seed(0))
print("ready", flush=True)
while True:
    with torch.no_grad():
        for p in toy.game.parameters():
            p.fill_(float(step))
    writer.save(step, batch)
    print(f"saved {step}", flush=True)
    step += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_while_writing_loses_at_most_the_snapshot_in_flight(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    directory, rng = tmp_path / "snaps", random.Random(0)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    reported: set[int] = set()
    step, leftovers = 0, 0
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, str(script), str(directory), str(step)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.startswith("ready"), child.stderr.read() if child.stderr else ""
            deadline = time.monotonic() + 60
            while not (line := child.stdout.readline()).startswith("saved"):
                assert time.monotonic() < deadline and line, "the writer saved nothing"
            reported.add(int(line.split()[1]))
            time.sleep(rng.uniform(0.0, 0.08))  # land anywhere in a later save
            os.kill(child.pid, signal.SIGKILL)
            rest, _ = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL
        reported |= {int(w.split()[1]) for w in rest.splitlines() if w.startswith("saved")}
        leftovers += sum(1 for p in directory.iterdir() if p.name.endswith(".tmp"))
        step = max(s.step for s in read_snapshots(directory)) + 1
    snaps = read_snapshots(directory)
    found = [s.step for s in snaps]
    assert set(reported) <= set(found)  # every reported snapshot survived the kills
    assert len(found) - len(reported) <= 6  # at most the one in flight per kill
    assert found == list(range(found[0], found[-1] + 1))
    game = sd.toys.mog_gan(hidden=300, depth=3, seed=1).game
    for snap in snaps:  # every file under a final name is complete
        snap.load_into(game)
        assert all(bool((p == snap.step).all()) for p in game.parameters())
        assert snap.batch()["z"].shape == (256, 16)
    print(f"temporary files left by kills: {leftovers}")


def test_open_snapshot_refuses_a_file_that_is_not_a_snapshot(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "specdiag-trace"
    with pytest.raises(SnapshotError, match="not a specdiag snapshot"):
        open_snapshot(path)
    with pytest.raises(SnapshotError, match="no such file"):
        open_snapshot(tmp_path / "missing.h5")
