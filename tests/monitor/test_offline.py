"""probe_snapshots: the trace a monitor would have written, computed afterwards."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import distributed_workers as workers
import h5py
import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag import cli as specdiag_cli
from specdiag import toys
from specdiag.linalg.options import DEFAULT_TOL, BasisOptions
from specdiag.monitor import offline
from specdiag.monitor.offline import ProbeWorkerError, probe_snapshots, records_of
from specdiag.monitor.snapshots import SnapshotError, SnapshotWriter, read_snapshots
from specdiag.probing.options import ProbeOptions
from specdiag.probing.session import ProbeSession
from specdiag.trace import TraceWriter, open_trace

ROOT = Path(__file__).resolve().parents[2]
K, EVERY, STEPS = 4, 5, 16

#: The game the workers and the command line build: a module file written by the tests.
GAME_MODULE = """
import numpy as np
import torch
from specdiag import cli as specdiag_cli
from specdiag import toys


def toy():
    return toys.mog_gan(hidden=8, depth=1, latent=4, batchnorm=True, seed=0)


def game():
    return toy().game


def game_and_batch():
    t = toy()
    return t.game, t.sample(48, torch.Generator().manual_seed(5))


def broken():
    raise RuntimeError("no data on this machine")


def load(path):
    data = np.load(path)
    state = {}
    for key in data.files:
        if key != "step":
            player, name = key.split("/", 1)
            state.setdefault(player, {})[name] = torch.from_numpy(data[key])
    return state, int(data["step"])
"""


def tiny() -> toys.MoGGAN:
    return toys.mog_gan(hidden=8, depth=1, latent=4, batchnorm=True, seed=0)


@pytest.fixture
def spec(tmp_path: Path) -> str:
    """Path of the game module (``f"{spec}:game"`` names its game function)."""
    path = tmp_path / "spec_game.py"
    path.write_text(GAME_MODULE)
    return str(path)


def options(**settings) -> ProbeOptions:
    defaults = dict(
        k=K,
        operators=None,
        which=None,
        tol=DEFAULT_TOL,
        ncv=None,
        maxiter=None,
        max_matvecs=None,
        backend="krylov-schur",
        basis=BasisOptions(None, None),
        seed=0,
        distributed=False,
    )
    return ProbeOptions.build(**{**defaults, **settings})


def train_with_probes(directory, *, warm_start=False, batch=None, checkpoints=None, **settings):
    """The in-loop reference: at every due step a snapshot (or a checkpoint) is written
    AND a ProbeSession probes, as a monitor in the loop would."""
    toy = tiny()
    session = ProbeSession(toy.game, options(**settings), warm_start=warm_start)
    writer = SnapshotWriter(directory, toy.game) if checkpoints is None else None
    records = []

    def callback(step, train_batch):
        if step % EVERY:
            return
        if writer is not None:
            writer.save(step, train_batch if batch is None else None)
        else:
            save_checkpoint(toy, checkpoints / f"ckpt-{step}.npz", step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            records.append(session.probe(train_batch if batch is None else batch, step=step))

    toy.train(STEPS, lr=1e-2, batch_size=32, callback=callback)
    return toy, records


def save_checkpoint(toy: toys.MoGGAN, path: Path, step: int) -> None:
    """A user's checkpoint without torch.save: the players' state dicts as numpy arrays."""
    arrays = {
        f"{player}/{name}": t.detach().numpy()
        for player, module in (("generator", toy.generator), ("discriminator", toy.discriminator))
        for name, t in module.state_dict().items()
    }
    np.savez(path, step=np.int64(step), **arrays)


def padded(values, width: int) -> np.ndarray:
    row = np.full(width, np.nan, dtype=np.result_type(values, np.float64))
    row[: len(values)] = values
    return row


def assert_trace_is(trace_path, records) -> None:
    """The trace holds exactly the records, bit for bit."""
    tr = open_trace(trace_path)
    assert tr.probe_steps().tolist() == [r.step for r in records]
    assert tr.probes()["seed"].tolist() == [r.seed for r in records]
    for op in tr.operators:
        for i, r in enumerate(records):
            o = r[op]
            width = tr.operator_width(op)
            np.testing.assert_array_equal(tr.eigenvalues(op)[i], padded(o.eigenvalues, width))
            np.testing.assert_array_equal(tr.residuals(op)[i], padded(o.residuals, width))
            assert tr.n_matvec(op)[i] == o.n_matvec and tr.status(op)[i] == o.status
            for name, values in tr.scalars(op).items():
                np.testing.assert_equal(values[i], o.scalars.get(name, np.nan))
    for player, values in tr.losses().items():
        assert values.tolist() == [r.losses[player] for r in records]


# --------------------------------------------------------------------------- one worker


@pytest.mark.parametrize("warm_start", [False, True], ids=["cold", "warm"])
def test_one_worker_writes_the_in_loop_trace_bit_for_bit(tmp_path, warm_start):
    dynamics: dict[str, Any] = dict(update=sd.UpdateRule("gd", lr=0.05), helmholtz=4)
    toy, records = train_with_probes(tmp_path / "snaps", warm_start=warm_start, **dynamics)
    assert all(r.status == "ok" for r in records)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sd.ProbeWarning)
        out = probe_snapshots(
            toy.game,
            tmp_path / "snaps",
            tmp_path / "run.h5",
            k=K,
            warm_start=warm_start,
            progress=False,
            **dynamics,
        )
    assert out == str(tmp_path / "run.h5")
    assert_trace_is(out, records)
    tr = open_trace(out)
    assert tr.operators == ("jacobian", "generator", "discriminator", "update", "helmholtz")
    assert tr.width == K + 1
    config = tr.meta["config"]
    assert config["every"] == {"schedule": "at_steps", "steps": [0, 5, 10, 15]}
    assert config["deferred"]["warm_start"] is warm_start and config["k"] == K
    assert config["operators"] == ["jacobian", "generator", "discriminator"]


def test_warm_start_reaches_the_session(tmp_path, monkeypatch):
    toy, _ = train_with_probes(tmp_path / "snaps")
    seen = []

    class Spy(ProbeSession):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs["warm_start"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(offline, "ProbeSession", Spy)
    for warm in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sd.ProbeWarning)
            probe_snapshots(
                toy.game,
                tmp_path / "snaps",
                tmp_path / f"{warm}.h5",
                k=K,
                warm_start=warm,
                progress=False,
            )
    assert seen == [True, False]


def test_the_players_are_left_as_they_were(tmp_path):
    toy, _ = train_with_probes(tmp_path / "snaps")
    modules = (toy.generator, toy.discriminator)
    toy.discriminator.eval()
    for p in toy.game.parameters():
        p.grad = torch.full_like(p, 0.5)
    state = [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]
    flags = [[s.training for s in m.modules()] for m in modules]
    torch.manual_seed(11)
    np.random.seed(11)  # noqa: NPY002
    random.seed(11)
    probe_snapshots(
        toy.game, tmp_path / "snaps", tmp_path / "run.h5", k=K, progress=False, warm_start=False
    )
    for m, before in zip(modules, state):
        after = m.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items())
    assert [[s.training for s in m.modules()] for m in modules] == flags
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in toy.game.parameters())
    assert all(p.requires_grad for p in toy.game.parameters())
    draws = (torch.rand(1).item(), np.random.rand(), random.random())  # noqa: NPY002
    torch.manual_seed(11)
    np.random.seed(11)  # noqa: NPY002
    random.seed(11)
    assert draws == (torch.rand(1).item(), np.random.rand(), random.random())  # noqa: NPY002


def test_a_corrupted_snapshot_is_a_one_line_error_naming_the_file(tmp_path):
    toy, _ = train_with_probes(tmp_path / "snaps")
    bad = read_snapshots(tmp_path / "snaps")[2].path
    with h5py.File(bad, "r+") as f:
        del f["state/float32"]  # every parameter
    before = {k: v.clone() for k, v in toy.generator.state_dict().items()}
    with pytest.raises(SnapshotError) as info:
        probe_snapshots(
            toy.game, tmp_path / "snaps", tmp_path / "run.h5", k=K, progress=False, warm_start=False
        )
    message = str(info.value)
    assert message.startswith(f"{bad}: damaged snapshot") and "\n" not in message
    assert all(torch.equal(toy.generator.state_dict()[k], v) for k, v in before.items())
    assert open_trace(tmp_path / "run.h5").probe_steps().tolist() == [0, 5]  # the rows before


def test_an_existing_trace_is_replaced_or_continued_only_when_asked(tmp_path):
    toy, records = train_with_probes(tmp_path / "snaps")
    snaps, out = read_snapshots(tmp_path / "snaps"), tmp_path / "run.h5"
    probe_snapshots(toy.game, snaps[:2], out, k=K, progress=False, warm_start=False)
    with pytest.raises(FileExistsError, match="overwrite=True .* or resume=True"):
        probe_snapshots(toy.game, tmp_path / "snaps", out, k=K, progress=False, warm_start=False)
    probe_snapshots(
        toy.game, tmp_path / "snaps", out, k=K, resume=True, warm_start=False, progress=False
    )
    assert_trace_is(out, records)  # the later snapshots were appended
    probe_snapshots(
        toy.game, snaps[1:2], out, k=K, overwrite=True, progress=False, warm_start=False
    )
    assert open_trace(out).probe_steps().tolist() == [5]


def test_records_of_rebuilds_rows_that_write_back_identically(tmp_path):
    toy, _ = train_with_probes(tmp_path / "snaps")
    first = probe_snapshots(
        toy.game,
        tmp_path / "snaps",
        tmp_path / "a.h5",
        k=K,
        helmholtz=4,
        progress=False,
        warm_start=False,
    )
    trace = open_trace(first)
    layout = trace.meta["layout"]
    with TraceWriter(
        tmp_path / "b.h5",
        operators=layout["operators"],
        players=layout["players"],
        width=trace.width,
    ) as writer:
        offline.merge_traces([first], writer)
    assert [r.step for r in records_of(trace)] == [0, 5, 10, 15]
    with h5py.File(first, "r") as a, h5py.File(tmp_path / "b.h5", "r") as b:
        names: list[str] = []
        a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
        assert len(names) > 40
        for name in names:
            assert a[name].dtype == b[name].dtype, name
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)


def test_settings_that_cannot_work_are_refused(tmp_path):
    toy, _ = train_with_probes(tmp_path / "snaps")
    opt = torch.optim.Adam(toy.game.parameters())
    with pytest.raises(ValueError, match="optimizers' state .* a snapshot does not store"):
        rule = sd.UpdateRule("gd", lr=0.1, optimizers=opt)
        probe_snapshots(
            toy.game, tmp_path / "snaps", tmp_path / "a.h5", update=rule, warm_start=False
        )
    with pytest.raises(ValueError, match="workers=2 needs the game as a 'module:function'"):
        probe_snapshots(
            toy.game, tmp_path / "snaps", tmp_path / "a.h5", workers=2, warm_start=False
        )
    with pytest.raises(ValueError, match="unknown operator"):
        probe_snapshots(
            toy.game, tmp_path / "snaps", tmp_path / "a.h5", operators=["critic"], warm_start=False
        )
    assert not (tmp_path / "a.h5").exists()


# --------------------------------------------------------------------------- user checkpoints


def test_user_checkpoints_with_a_loader_give_the_in_loop_trace(tmp_path, spec):
    _, batch = offline.game_from_spec(f"{spec}:game_and_batch")
    (tmp_path / "ckpts").mkdir()
    _, records = train_with_probes(None, batch=batch, checkpoints=tmp_path / "ckpts")
    load = f"{spec}:load"
    for i, source in enumerate(
        [
            tmp_path / "ckpts",
            str(tmp_path / "ckpts" / "ckpt-*.npz"),
            sorted((tmp_path / "ckpts").iterdir(), reverse=True),  # any order: step order
        ]
    ):
        out = probe_snapshots(
            f"{spec}:game_and_batch",
            source,
            tmp_path / f"{i}.h5",
            k=K,
            load=load,
            progress=False,
            warm_start=False,
        )
        assert_trace_is(out, records)
    other = toys.mog_gan(hidden=9, depth=1, latent=4, batchnorm=True).game  # another shape
    with pytest.raises(SnapshotError, match=r"ckpt-0\.npz: player 'generator', '0\.weight'"):
        probe_snapshots(
            other, tmp_path / "ckpts", tmp_path / "x.h5", load=load, batch=batch, warm_start=False
        )


def test_game_and_loader_specs_are_checked(tmp_path, spec):
    cases = [
        (f"{spec}:nothing", "has no function 'nothing'"),
        (f"{tmp_path}/missing.py:game", "no file"),
        ("no_such_module_here:game", "cannot import 'no_such_module_here'"),
        ("just_a_name", "must be 'MODULE:FUNCTION'"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            offline.game_from_spec(bad)
    with pytest.raises(SnapshotError, match="raised RuntimeError: no data on this machine"):
        offline.game_from_spec(f"{spec}:broken")


# --------------------------------------------------------------------------- workers


def test_two_workers_agree_with_one(tmp_path, spec):
    toy, records = train_with_probes(tmp_path / "snaps")
    out = probe_snapshots(
        f"{spec}:game",
        tmp_path / "snaps",
        tmp_path / "two.h5",
        k=K,
        workers=2,
        warm_start=False,
        progress=False,
    )
    assert_trace_is(out, records)  # cold starts: every probe is its own, bit for bit
    assert open_trace(out).meta["config"]["deferred"]["workers"] == 2
    assert files(tmp_path) == ["snaps", "spec_game.py", "two.h5"]


def test_a_failing_worker_is_named_and_does_not_hang_the_others(tmp_path, spec):
    train_with_probes(tmp_path / "snaps")
    bad = read_snapshots(tmp_path / "snaps")[3].path
    with h5py.File(bad, "r+") as f:  # found by the worker that loads it
        del f["state/float32"]
    with pytest.raises(ProbeWorkerError) as info:
        probe_snapshots(
            f"{spec}:game",
            tmp_path / "snaps",
            tmp_path / "two.h5",
            k=K,
            workers=2,
            progress=False,
            warm_start=False,
        )
    message = str(info.value)
    assert message.startswith("probe worker 1 (steps 10 to 15) failed: SnapshotError: ")
    assert str(bad) in message and "\n" not in message
    assert files(tmp_path) == ["snaps", "spec_game.py"]


def files(directory: Path) -> list[str]:
    """What a directory holds (Python's bytecode cache aside)."""
    return sorted(p.name for p in directory.iterdir() if p.name != "__pycache__")


def _ranks_probe(rank: int, world_size: int, directory: str, tmp: str) -> dict:
    """One rank of two torchrun-style deferred probes: all well, then rank 1 with another
    game (its snapshots do not fit)."""
    found = {}
    for run, game in [
        ("good", tiny().game),
        ("bad", tiny().game if rank == 0 else toys.mog_gan(hidden=9, depth=1, latent=4).game),
    ]:
        try:
            probe_snapshots(
                game, directory, f"{tmp}/{run}.h5", k=K, warm_start=False, progress=False
            )
            found[run] = "ok"
        except (SnapshotError, ProbeWorkerError) as error:
            found[run] = f"{type(error).__name__}: {error}"
    return found


def test_under_torch_distributed_each_rank_probes_its_chunk(tmp_path):
    _, records = train_with_probes(tmp_path / "snaps")
    results = workers.launch(_ranks_probe, 2, str(tmp_path / "snaps"), str(tmp_path), timeout=60)
    assert [r["good"] for r in results] == ["ok", "ok"]
    assert_trace_is(tmp_path / "good.h5", records)
    assert results[1]["bad"].startswith("SnapshotError: ") and "snapshot-" in results[1]["bad"]
    assert results[0]["bad"] == (
        "ProbeWorkerError: rank(s) [1] failed probing their snapshots; see their errors"
    )
    assert files(tmp_path) == ["good.h5", "snaps"]  # no part traces left behind


# --------------------------------------------------------------------------- command line


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", "specdiag", "probe", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_the_probe_command_writes_the_trace(tmp_path, spec, capsys, monkeypatch):
    _, records = train_with_probes(tmp_path / "snaps")
    out = tmp_path / "cli.h5"
    args = [str(tmp_path / "snaps"), "--game", f"{spec}:game", "--out", str(out), "--k", str(K)]
    done = cli(*args, "--workers", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert_trace_is(out, records)
    monkeypatch.chdir(tmp_path)  # the rest in this process: the same entry point
    assert specdiag_cli.main(["probe", *args]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"specdiag: error: {out} exists; pass overwrite=True (specdiag probe --force) to "
        "replace it, or resume=True to probe only the snapshots after its last step"
    ]
    forced = ["--force", "--operators", "jacobian", "--seed", "0"]
    assert specdiag_cli.main(["probe", *args, *forced]) == 0
    assert open_trace(out).operators == ("jacobian",)
    (tmp_path / "dotted_game.py").write_text(GAME_MODULE)  # a module importable from here
    dotted = [*args[:2], "dotted_game:game", *args[3:], "--force"]
    assert specdiag_cli.main(["probe", *dotted]) == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--game", "nowhere:game"], "cannot import 'nowhere'"),
        (["--game", "{spec}:broken"], "raised RuntimeError: no data on this machine"),
        (["--game", "{spec}:game", "--k", "0"], "k must be a positive integer"),
        (["--game", "{spec}:game", "--load", "{spec}:load"], "failed on"),
    ],
)
def test_probe_command_errors_are_one_line_exit_2(tmp_path, spec, capsys, extra, message):
    train_with_probes(tmp_path / "snaps")
    extra = [e.replace("{spec}", spec) for e in extra]
    code = specdiag_cli.main(["probe", str(tmp_path / "snaps"), "--out", "t.h5", *extra])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("specdiag: error: ") and message in lines[0]
