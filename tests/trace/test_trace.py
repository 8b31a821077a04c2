"""The HDF5 trace: round trip, resume and purge, refusals, crash safety, live reading."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from trace_writer_proc import (
    OPERATORS,
    PLAYERS,
    TIMEOUT_S,
    WIDTH,
    Child,
    operator_record,
    probe_record,
)

from specdiag.errors import TraceError
from specdiag.trace import MESSAGE_BYTES, STATUSES, TraceWriter, open_trace

TESTS = Path(__file__).resolve().parents[1]  # holds trace_writer_proc.py


def writer(path, **kwargs) -> TraceWriter:
    kwargs = {
        "operators": OPERATORS,
        "players": PLAYERS,
        "width": WIDTH,
        "config": {"every": 10},
        **kwargs,
    }
    return TraceWriter(path, **kwargs)


def write_steps(path, steps, **kwargs) -> None:
    with writer(path, **kwargs) as w:
        for step in steps:
            w.write(probe_record(step, n_matvec=100 + step))


# --------------------------------------------------------------------------- round trip


def varied_records():
    """Three probes: pairs and padding, a failed solve, an empty result."""
    nan = np.nan
    first = probe_record(0)
    first.operators["jacobian"] = operator_record(
        "jacobian", "jacobian", "LM", [2 + 1j, 2 - 1j, 0.5, -3.0]
    )  # full width
    first.operators["discriminator"] = operator_record(
        "discriminator",
        "hessian",
        "LA",
        [3.0, 2.0, -1.0],
        status="unconverged",
        converged=[True, True, False],
        message="2 of 3 converged",
    )
    second = probe_record(10, batch_index=1)
    second.seed = None
    second.status = "error"
    second.losses = {"discriminator": 0.25}  # the generator's loss is missing
    second.operators["jacobian"] = operator_record(
        "jacobian",
        "jacobian",
        "LM",
        [nan + nan * 1j] * 3,
        status="error",
        converged=[False] * 3,
        message="LossClosureError: Ω boom\nsecond line",
    )
    third = probe_record(20)
    third.status = "budget"
    third.operators["generator"] = operator_record(
        "generator", "hessian", "LA", [], status="budget", message="x" * 1000
    )
    return [first, second, third]


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "run.h5"
    with writer(
        path,
        config={"every": 10, "k": 3, "operators": ["jacobian"]},
        versions={"torch": "2.13.0"},
        specdiag_version="9.9.9",
    ) as w:
        for record in varied_records():
            w.write(record)

    tr = open_trace(path)
    assert len(tr) == 3
    assert tr.operators == ("jacobian", "generator", "discriminator")
    assert tr.players == ("generator", "discriminator")
    np.testing.assert_array_equal(tr.probe_steps(), [0, 10, 20])
    np.testing.assert_array_equal(tr.steps("jacobian"), [0, 10, 20])
    np.testing.assert_array_equal(tr.batch_index("generator"), [0, 1, 0])

    ev = tr.eigenvalues("jacobian")
    assert ev.dtype == np.complex128 and ev.shape == (3, WIDTH)
    np.testing.assert_array_equal(ev[0], [2 + 1j, 2 - 1j, 0.5, -3.0])
    assert np.isnan(ev[1].real).all() and np.isnan(ev[1].imag).all()
    gen = tr.eigenvalues("generator")
    np.testing.assert_array_equal(gen[0, :2], [0.0, 1.0])
    assert np.isnan(gen[0, 2:].real).all() and np.isnan(gen[0, 2:].imag).all()
    assert np.isnan(gen[2].real).all()  # an empty result is all padding

    np.testing.assert_array_equal(tr.converged("discriminator")[0], [True, True, False, False])
    res = tr.residuals("discriminator")[0]
    np.testing.assert_allclose(res[:3], np.linspace(1e-5, 1e-4, 3))
    assert np.isnan(res[3])
    np.testing.assert_array_equal(tr.n_matvec("jacobian"), [40, 40, 40])
    np.testing.assert_array_equal(tr.wall_time("jacobian"), [0.25] * 3)

    assert list(tr.status("jacobian")) == ["ok", "error", "ok"]
    assert list(tr.status("discriminator")) == ["unconverged", "ok", "ok"]
    assert list(tr.status("generator")) == ["ok", "ok", "budget"]
    messages = tr.messages("jacobian")
    assert list(messages[[0, 2]]) == ["", ""]
    assert messages[1] == "LossClosureError: Ω boom\nsecond line"
    long = tr.messages("generator")[2]
    assert long.startswith("xxx") and long.endswith("...")
    assert len(long.encode()) <= MESSAGE_BYTES

    scalars = tr.scalars("jacobian")
    assert set(scalars) == {"min_real", "max_imag", "max_imag_over_real", "spectral_radius"}
    np.testing.assert_allclose(scalars["spectral_radius"][0], 3.0)
    np.testing.assert_allclose(scalars["min_real"][0], -3.0)
    assert set(tr.scalars("generator")) == {"max", "min"}
    np.testing.assert_array_equal(tr.scalars("generator")["max"][:2], [1.0, 20.0])

    losses = tr.losses()
    np.testing.assert_allclose(losses["generator"][[0, 2]], [0.7, 20.7])
    assert np.isnan(losses["generator"][1])
    np.testing.assert_allclose(losses["discriminator"], [0.6, 0.25, 0.6])
    probes = tr.probes()
    np.testing.assert_array_equal(probes["seed"], [0, -1, 20])
    assert list(probes["status"]) == ["ok", "error", "budget"]
    np.testing.assert_array_equal(probes["batch_index"], [0, 1, 0])

    meta = tr.meta
    assert meta["schema"] == "specdiag-trace" and meta["schema_version"] == "1.2"
    assert meta["convention"] == "descent"
    assert meta["config"] == {"every": 10, "k": 3, "operators": ["jacobian"]}
    assert meta["versions"]["torch"] == "2.13.0" and meta["versions"]["h5py"] == h5py.__version__
    assert meta["specdiag_version"] == "9.9.9"
    assert meta["width"] == WIDTH
    assert meta["layout"]["players"] == PLAYERS
    assert meta["layout"]["operators"]["jacobian"]["n"] == 5
    assert meta["created"][:2] == "20"


def test_file_layout_is_plain_hdf5(tmp_path):
    """What other tools see: chunked, resizable, documented dtypes, JSON attributes."""
    path = tmp_path / "run.h5"
    write_steps(path, [0, 1])
    with h5py.File(path, "r") as f:
        group = f["jacobian"]
        assert (group.attrs["kind"], group.attrs["which"], group.attrs["n"]) == (
            "jacobian",
            "LM",
            5,
        )
        for name, dtype in [
            ("eig_real", "f8"),
            ("eig_imag", "f8"),
            ("residual", "f8"),
            ("converged", "bool"),
        ]:
            ds = group[name]
            assert ds.dtype == np.dtype(dtype) and ds.shape == (2, WIDTH)
            assert ds.maxshape == (None, WIDTH) and ds.chunks is not None
        for name, dtype in [
            ("step", "i8"),
            ("batch_index", "i4"),
            ("n_matvec", "i8"),
            ("wall_time", "f8"),
            ("status", "i1"),
            ("spectral_radius", "f8"),
        ]:
            assert group[name].dtype == np.dtype(dtype) and group[name].maxshape == (None,)
        assert group["status"].attrs["flag_meanings"].split() == list(STATUSES)
        assert group["message"].dtype.itemsize == MESSAGE_BYTES
        assert f["probe_step"].dtype == np.dtype("i8") and f["loss/generator"].shape == (2,)
        assert np.isnan(f["generator/eig_real"][0, 2])
        assert "(lp" not in f.attrs["config"] and f.attrs["config"].startswith("{")


# --------------------------------------------------------------------------- writing modes


def _open_file_names() -> set[str]:
    """Files this process has open in HDF5."""
    return {
        os.path.realpath(os.fsdecode(i.name)) for i in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)
    }


def test_default_mode_closes_the_file_between_writes(tmp_path):
    path = tmp_path / "run.h5"
    with writer(path) as w:
        for step in range(3):
            w.write(probe_record(step))
            assert os.path.realpath(path) not in _open_file_names()
            with h5py.File(path, "r") as f:
                assert f["probe_step"].shape == (step + 1,)
            assert len(open_trace(path)) == step + 1


def test_a_reader_sees_new_probes_after_refresh(tmp_path):
    path = tmp_path / "run.h5"
    with writer(path) as w:
        w.write(probe_record(0))
        tr = open_trace(path)
        w.write(probe_record(1))
        assert len(tr) == 1
        tr.refresh()
        assert len(tr) == 2
        np.testing.assert_array_equal(tr.steps("generator"), [0, 1])


def test_write_to_closed_writer_raises(tmp_path):
    w = writer(tmp_path / "run.h5")
    w.close()
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.write(probe_record(0))


def test_a_bad_record_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "run.h5"
    write_steps(path, [0])
    too_many = probe_record(1)
    too_many.operators["generator"] = operator_record("generator", "hessian", "LA", np.ones(5))
    bad_status = probe_record(1)
    bad_status.operators["jacobian"].status = "fine"
    no_step = probe_record(1)
    no_step.step = None
    missing = probe_record(1)
    del missing.operators["discriminator"]
    with writer(path, resume=True) as w:
        for record, match in [
            (too_many, "width 4"),
            (bad_status, "'fine'"),
            (no_step, "step"),
            (missing, "operators"),
        ]:
            with pytest.raises(ValueError, match=match):
                w.write(record)
    assert len(open_trace(path)) == 1


@pytest.mark.parametrize(
    "torn, complete",
    [
        # killed between the data and the probe_step row: the extra rows are not counted
        ({"jacobian/eig_real": 3, "generator/step": 3, "loss/generator": 3}, 2),
        # a dataset short of a row: that probe is incomplete and is dropped
        ({"discriminator/status": 1, "jacobian/spectral_radius": 1}, 1),
    ],
)
def test_torn_rows_are_ignored_by_readers_and_repaired_by_writers(tmp_path, torn, complete):
    path = tmp_path / "run.h5"
    write_steps(path, [0, 1])
    with h5py.File(path, "a") as f:
        for name, rows in torn.items():
            f[name].resize(rows, axis=0)
    assert len(open_trace(path)) == complete
    with writer(path, resume=True) as w:
        w.write(probe_record(7))
    tr = open_trace(path)
    assert len(tr) == complete + 1
    steps = [0, 1][:complete] + [7]
    np.testing.assert_array_equal(tr.steps("generator"), steps)
    np.testing.assert_array_equal(tr.steps("discriminator"), steps)
    np.testing.assert_array_equal(tr.eigenvalues("jacobian")[-1, :3], [7 + 1j, 7 - 1j, 0.5])
    with h5py.File(path, "r") as f:
        assert f["jacobian/eig_real"].shape == (complete + 1, WIDTH)
        assert f["discriminator/status"].shape == (complete + 1,)


# --------------------------------------------------------------------------- resume


def test_resume_replaces_rows_at_or_after_the_first_step(tmp_path):
    path = tmp_path / "run.h5"
    write_steps(path, [0, 10, 20, 30])
    with writer(path, resume=True) as w:
        w.write(probe_record(20, n_matvec=999))
        w.write(probe_record(20, batch_index=1, n_matvec=998))  # only the first write purges
    tr = open_trace(path)
    np.testing.assert_array_equal(tr.probe_steps(), [0, 10, 20, 20])
    np.testing.assert_array_equal(tr.n_matvec("jacobian"), [100, 110, 999, 998])
    np.testing.assert_array_equal(tr.batch_index("jacobian"), [0, 0, 0, 1])
    assert tr.meta["config"] == {"every": 10}


def test_resume_purge_keeps_earlier_rows_out_of_order(tmp_path):
    path = tmp_path / "run.h5"
    write_steps(path, [0, 30, 10, 40])
    write_steps(path, [20], resume=True)
    tr = open_trace(path)
    np.testing.assert_array_equal(tr.probe_steps(), [0, 10, 20])
    np.testing.assert_array_equal(tr.n_matvec("generator"), [100, 110, 120])
    np.testing.assert_array_equal(tr.eigenvalues("generator")[:, 0].real, [0.0, 20.0, 40.0])
    np.testing.assert_allclose(tr.losses()["generator"], [0.7, 10.7, 20.7])


def test_resume_step_purges_when_the_file_is_opened(tmp_path):
    """A run resumed at step 20 that stops before probing leaves no stale probes."""
    path = tmp_path / "run.h5"
    write_steps(path, [0, 10, 20, 30])
    writer(path, resume_step=20).close()
    np.testing.assert_array_equal(open_trace(path).probe_steps(), [0, 10])
    with writer(path, resume_step=15) as w:  # the first write no longer purges again
        w.write(probe_record(30))
        w.write(probe_record(20))
    np.testing.assert_array_equal(open_trace(path).probe_steps(), [0, 10, 30, 20])


@pytest.mark.parametrize(
    "change, detail",
    [
        ({"width": WIDTH + 2}, "width"),
        ({"players": {"generator": 2, "discriminator": 4}}, "parameter counts"),
        ({"operators": {"jacobian": OPERATORS["jacobian"]}}, "operators"),
        (
            {"operators": {**OPERATORS, "jacobian": {**OPERATORS["jacobian"], "n": 6}}},
            "n of operator 'jacobian': 5",
        ),
        (
            {"operators": {**OPERATORS, "jacobian": {**OPERATORS["jacobian"], "which": "LR"}}},
            "which of operator 'jacobian': 'LM' in the file, 'LR' now",
        ),
    ],
)
def test_resume_refuses_another_layout(tmp_path, change, detail):
    path = tmp_path / "run.h5"
    write_steps(path, [0, 1])
    with pytest.raises(TraceError) as info:
        writer(path, resume=True, **change)
    message = str(info.value)
    assert "overwrite=True" in message and detail in message and str(path) in message
    assert "\n" not in message
    assert len(open_trace(path)) == 2


def test_resume_false_starts_a_new_trace(tmp_path):
    path = tmp_path / "run.h5"
    write_steps(path, [0, 1, 2])
    with writer(path, width=WIDTH + 2, resume=False) as w:
        w.write(probe_record(5))
    tr = open_trace(path)
    assert len(tr) == 1 and tr.width == WIDTH + 2
    np.testing.assert_array_equal(tr.probe_steps(), [5])


@pytest.mark.parametrize("content", ["foreign", "garbage"])
def test_resume_refuses_a_file_that_is_not_a_trace(tmp_path, content):
    path = tmp_path / "data.h5"
    if content == "foreign":
        with h5py.File(path, "w") as f:
            f["precious"] = np.arange(3)
    else:
        path.write_bytes(b"precious" * 100)
    before = path.read_bytes()
    with pytest.raises(
        TraceError, match="(not a specdiag trace|not an HDF5 file).*overwrite=True"
    ) as info:
        writer(path, resume=True)
    error = info.value
    assert "\n" not in str(error) and str(path) in str(error)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert path.read_bytes() == before


def test_swmr_resume_purges_and_refuses_a_default_mode_file(tmp_path):
    path = tmp_path / "live.h5"
    write_steps(path, [0, 1, 2], swmr=True)
    write_steps(path, [1], swmr=True, resume=True)
    np.testing.assert_array_equal(open_trace(path).probe_steps(), [0, 1])
    plain = tmp_path / "plain.h5"
    write_steps(plain, [0])
    with pytest.raises(TraceError, match="swmr=False"):
        writer(plain, swmr=True, resume=True)


# --------------------------------------------------------------------------- refusals


def _trace_file(path: Path) -> Path:
    write_steps(path, range(40))
    return path


def _missing(tmp_path):
    return tmp_path / "missing.h5", "no such file"


def _garbage(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(b"this is not an HDF5 file\n" * 200)
    return path, "not an HDF5 file"


def _truncated(tmp_path):
    path = _trace_file(tmp_path / "truncated.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated"


def _foreign(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(10)
    return path, "not a specdiag trace"


def _newer(tmp_path):
    path = _trace_file(tmp_path / "newer.h5")
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = "2.0"
    return path, "newer specdiag (schema 2.0); upgrade"


@pytest.mark.parametrize(
    "make", [_missing, _garbage, _truncated, _foreign, _newer], ids=lambda f: f.__name__.strip("_")
)
def test_unreadable_files_give_one_line_trace_errors(tmp_path, make):
    path, expected = make(tmp_path)
    with pytest.raises(TraceError) as info:
        open_trace(path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message
    error = info.value  # no h5py traceback chained to it
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_a_newer_minor_version_is_read(tmp_path):
    path = _trace_file(tmp_path / "minor.h5")
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = "1.7"
        f.attrs["added_later"] = "ignored by old readers"
    assert len(open_trace(path)) == 40


def test_unknown_operator_is_a_key_error_listing_the_operators(tmp_path):
    path = _trace_file(tmp_path / "run.h5")
    tr = open_trace(path)
    for query in (tr.eigenvalues, tr.status, tr.scalars, tr.steps):
        with pytest.raises(KeyError, match="jacobian, generator, discriminator"):
            query("critic")


# --------------------------------------------------------------------------- other processes


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_loses_at_most_the_probe_in_flight(tmp_path):
    path = tmp_path / "killed.h5"
    child = Child(str(path), "default", "loop")
    try:
        reported = 0
        while reported < 5:
            reported = int(child.expect("wrote").split()[1])
        os.kill(child.proc.pid, signal.SIGKILL)
        child.proc.wait(timeout=TIMEOUT_S)
        assert child.proc.returncode == -signal.SIGKILL
    finally:
        child.kill()
    tr = open_trace(path)
    assert len(tr) >= reported
    np.testing.assert_array_equal(tr.probe_steps(), np.arange(len(tr)))
    np.testing.assert_array_equal(tr.eigenvalues("generator")[:, 0].real, 2.0 * np.arange(len(tr)))
    with writer(path, resume=True) as w:  # and the run can go on where it stopped
        w.write(probe_record(len(tr)))
    assert len(open_trace(path)) == len(tr) + 1


def test_swmr_reader_follows_a_live_writer(tmp_path):
    path = tmp_path / "live.h5"
    child = Child(str(path), "swmr", "stdin")
    try:
        child.expect("ready")
        with pytest.raises(TraceError, match="open for writing.*swmr=True"):
            open_trace(path)  # a plain reader is told how to read a live trace
        tr = open_trace(path, swmr=True)  # before the first probe
        assert len(tr) == 0 and tr.operators == tuple(OPERATORS)
        for n in (1, 2):
            child.send("write")
            assert child.expect("wrote") == f"wrote {n}"
        tr.refresh()
        assert len(tr) == 2
        for n in (3, 4, 5):
            child.send("write")
            assert child.expect("wrote") == f"wrote {n}"
        assert child.proc.poll() is None  # the writer still has the file open
        tr.refresh()
        assert len(tr) == 5
        np.testing.assert_array_equal(tr.steps("discriminator"), np.arange(5))
        np.testing.assert_allclose(tr.losses()["generator"], 0.7 + np.arange(5))
        child.send("close")
        child.expect("closed")
        assert child.proc.wait(timeout=TIMEOUT_S) == 0
        tr.refresh()
        assert len(tr) == 5
        tr.close()
    finally:
        child.kill()
    assert len(open_trace(path)) == 5


def test_trace_module_never_imports_torch(tmp_path):
    """specdiag.trace and what it imports run in an interpreter without torch."""
    code = (
        "import sys, trace_writer_proc as h\n"
        "t = h.load_trace_module()\n"
        f"w = t.TraceWriter({str(tmp_path / 'x.h5')!r}, operators=h.OPERATORS,"
        " players=h.PLAYERS, width=h.WIDTH)\n"
        "w.write(h.probe_record(3)); w.close()\n"
        f"assert list(t.open_trace({str(tmp_path / 'x.h5')!r}).probe_steps()) == [3]\n"
        "print(t.__name__, sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=TESTS, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[0] == "specdiag.trace []"
