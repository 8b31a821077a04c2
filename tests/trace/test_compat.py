"""Schema 1.2 reads the traces of 1.0 and 1.1, and 1.1-style readers read 1.2 traces."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, probe_record, write_legacy_trace

from specdiag.errors import TraceError
from specdiag.trace import SCHEMA_VERSION, TraceWriter, open_trace


def legacy(path, version="1.1", steps=(0, 10, 20)):
    records = [probe_record(s) for s in steps]
    return write_legacy_trace(
        path, records, operators=OPERATORS, players=PLAYERS, width=WIDTH, version=version
    )


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_an_older_trace_reads_with_the_new_columns_filled(tmp_path, version):
    tr = open_trace(legacy(tmp_path / "old.h5", version))
    assert tr.meta["schema_version"] == version and len(tr) == 3
    np.testing.assert_array_equal(tr.probe_steps(), [0, 10, 20])
    np.testing.assert_array_equal(tr.eigenvalues("jacobian")[2, :3], [20 + 1j, 20 - 1j, 0.5])
    probes = tr.probes()
    assert probes["flags"].dtype == np.int32 and list(probes["flags"]) == [0, 0, 0]
    assert list(probes["message"]) == ["", "", ""]
    for name in ("train_time", "overhead", "cost_steps"):
        assert probes[name].dtype == np.float64 and np.isnan(probes[name]).all()
    for op in tr.operators:  # widths, arrays and coordinates of an older file
        assert tr.operator_width(op) == WIDTH
        assert tr.arrays(op) == {} and tr.coords(op) == {}
    assert tr.scalars("generator")["max"][1] == 20.0


def test_an_older_trace_converts_to_xarray_and_pandas(tmp_path):
    tr = open_trace(legacy(tmp_path / "old.h5"))
    ds = tr.to_xarray("jacobian")
    assert dict(ds.sizes) == {"step": 3, "eig": WIDTH}
    np.testing.assert_array_equal(ds["eig_real"].sel(step=10).values[:3], [10, 10, 0.5])
    frame = tr.scalars_frame()
    assert list(frame["probe_flags"]) == [0, 0, 0]
    assert frame.loc[(20, 0), "generator/max"] == 40.0


def test_the_writer_does_not_continue_an_older_schema(tmp_path):
    path = legacy(tmp_path / "old.h5")
    with pytest.raises(TraceError) as info:
        TraceWriter(path, operators=OPERATORS, players=PLAYERS, width=WIDTH, resume=True)
    message = str(info.value)
    assert "schema 1.1" in message and SCHEMA_VERSION in message and "overwrite=True" in message
    assert len(open_trace(path)) == 3  # untouched
    with TraceWriter(path, operators=OPERATORS, players=PLAYERS, width=WIDTH, overwrite=True) as w:
        w.write(probe_record(5))
    assert open_trace(path).meta["schema_version"] == SCHEMA_VERSION


def _read_as_1_1(path):
    """What a 1.1 reader does: the 1.1 datasets of the layout, rows complete in all."""
    import json

    with h5py.File(path, "r") as f:
        layout = json.loads(f.attrs["layout"])
        width = int(f.attrs["width"])
        paths = [
            f"{op}/{c}"
            for op, spec in layout["operators"].items()
            for c in (
                "step",
                "batch_index",
                "eig_real",
                "eig_imag",
                "residual",
                "converged",
                "n_matvec",
                "wall_time",
                "status",
                "message",
                *spec["scalars"],
            )
        ]
        paths += [f"loss/{p}" for p in layout["players"]]
        paths += [
            "probe_batch_index",
            "probe_seed",
            "probe_wall_time",
            "probe_build_time",
            "probe_status",
            "probe_step",
        ]
        n = min(f[p].shape[0] for p in paths)
        return width, n, {p: f[p][:n] for p in paths}


def test_a_1_1_style_reader_reads_a_1_2_trace(tmp_path):
    path = tmp_path / "new.h5"
    with TraceWriter(path, operators=OPERATORS, players=PLAYERS, width=WIDTH) as w:
        for step in (0, 10):
            w.write(probe_record(step))
    width, n, data = _read_as_1_1(path)
    assert (width, n) == (WIDTH, 2)
    np.testing.assert_array_equal(data["probe_step"], [0, 10])
    np.testing.assert_array_equal(data["jacobian/eig_real"][1, :3], [10, 10, 0.5])
    assert data["jacobian/eig_real"].shape == (2, WIDTH)
