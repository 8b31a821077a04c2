"""Named dimensions: h5netcdf/xarray read every group without phony dimensions, and
Trace.to_xarray / Trace.scalars_frame give the same numbers as Trace."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, operator_record, probe_record

from specdiag.trace import TraceWriter, open_trace

TESTS = Path(__file__).resolve().parent.parent
SHARES = {
    "shares": {"dims": ["eig", "player"], "dtype": "f8", "description": "player shares"},
    "cosines": {"dims": ["eig"], "dtype": "f4", "description": "principal cosines"},
    "nodes": {"dims": ["vector", "node"], "dtype": "f8", "description": "Lanczos nodes"},
}
COORDS = {"player": list(PLAYERS), "vector": [0, 1], "node": [0, 1, 2]}
JACOBIAN = {**OPERATORS["jacobian"], "width": 5, "arrays": SHARES, "coords": COORDS}
LAYOUT = {**OPERATORS, "jacobian": JACOBIAN}


def record(step: int, batch_index: int = 0):
    r = probe_record(step, batch_index=batch_index)
    r.operators["jacobian"].arrays = {
        "shares": np.full((3, 2), step + 0.25),
        "cosines": np.arange(5, dtype=np.float32) * step,
        "nodes": np.arange(6.0).reshape(2, 3) + step,
    }
    r.flags, r.message = 1, f"probe {step}: ∂ ok"
    r.train_time, r.overhead, r.cost_steps = 2.0 * step, 0.1, 3.5
    if step == 20:
        r.operators["generator"] = operator_record(
            "generator", "hessian", "LA", [1.0], status="error", message="Ω failed"
        )
        r.status = "error"
    return r


def write(path, steps=(0, 10, 20, 30), **kwargs):
    with TraceWriter(path, operators=LAYOUT, players=PLAYERS, width=WIDTH, **kwargs) as w:
        for step in steps:
            w.write(record(step))
        w.write(record(30, batch_index=1))
    return path


def open_group(path, group=None):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about phony or missing dimensions
        return xr.open_dataset(path, group=group, engine="h5netcdf")


@pytest.mark.parametrize("swmr", [False, True], ids=["default", "swmr"])
def test_every_group_opens_with_named_dimensions(tmp_path, swmr):
    path = write(tmp_path / "run.h5", swmr=swmr)
    tr = open_trace(path)
    for group in (None, "loss", *tr.operators):
        ds = open_group(path, group)
        dims = set(ds.sizes)
        assert not any(d.startswith("phony_dim") for d in dims), (group, dims)
        ds.close()
    jac = open_group(path, "jacobian")
    assert dict(jac.sizes) == {"step": 5, "eig": 5, "player": 2, "vector": 2, "node": 3}
    assert jac["eig_real"].dims == ("step", "eig")
    assert jac["shares"].dims == ("step", "eig", "player")
    assert jac["nodes"].dims == ("step", "vector", "node")
    assert "step" in jac.indexes and list(jac["eig"].values) == [0, 1, 2, 3, 4]
    assert list(jac["player"].values) == list(PLAYERS)
    np.testing.assert_array_equal(jac["eig_real"].values, tr.eigenvalues("jacobian").real)
    np.testing.assert_array_equal(jac["shares"].values, tr.arrays("jacobian")["shares"])
    row = jac.sel(step=10)
    np.testing.assert_array_equal(row["eig_real"].values[:3], [10.0, 10.0, 0.5])
    np.testing.assert_array_equal(row["cosines"].values, np.arange(5) * 10)
    assert row["shares"].sel(player="discriminator").values[2] == 10.25
    jac.close()
    gen = open_group(path, "generator")
    assert dict(gen.sizes) == {"step": 5, "eig": WIDTH}
    assert gen["message"].values[2] == "Ω failed" and gen["message"].values[0] == ""
    gen.close()
    root = open_group(path)
    assert list(root.sizes) == ["probe_step"]
    assert root["probe_message"].values[1] == "probe 10: ∂ ok"  # str, not bytes
    np.testing.assert_array_equal(root["probe_flags"].values, tr.probes()["flags"])
    assert int(root.sel(probe_step=20)["probe_train_time"]) == 40
    root.close()
    loss = open_group(path, "loss")
    assert loss["generator"].dims == ("probe_step",)
    np.testing.assert_allclose(loss["generator"].values, tr.losses()["generator"])
    loss.close()


def test_dimension_scales_in_the_file(tmp_path):
    path = write(tmp_path / "run.h5")
    with h5py.File(path, "r") as f:
        group = f["jacobian"]
        assert group["step"].is_scale and group["eig"].is_scale and group["node"].is_scale
        assert group["eig"].dtype == np.int32 and list(group["eig"][:]) == [0, 1, 2, 3, 4]
        assert group["eig_real"].dims[0][0] == group["step"]
        assert group["converged"].dims[1][0] == group["eig"]
        assert group["nodes"].dims[2][0] == group["node"]
        assert group["n_matvec"].dims[0][0] == group["step"]
        assert f["loss/generator"].dims[0][0] == f["probe_step"]
        assert f["probe_message"].dims[0][0] == f["probe_step"]
        assert group["message"].attrs["_Encoding"] == "utf-8"


def test_to_xarray_merges_the_root_columns_and_losses(tmp_path):
    tr = open_trace(write(tmp_path / "run.h5"))
    ds = tr.to_xarray("jacobian")
    assert dict(ds.sizes) == {"step": 5, "eig": 5, "player": 2, "vector": 2, "node": 3}
    np.testing.assert_array_equal(ds["batch_index"].values, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(ds["eig_imag"].values, tr.eigenvalues("jacobian").imag)
    np.testing.assert_array_equal(ds["probe_train_time"].values, tr.probes()["train_time"])
    np.testing.assert_allclose(ds["loss_generator"].values, tr.losses()["generator"])
    assert list(ds["probe_status"].values) == ["ok", "ok", "error", "ok", "ok"]
    assert ds.sel(step=30)["probe_seed"].values.tolist() == [30, 30]  # two batches
    assert ds.attrs["kind"] == "jacobian" and ds.attrs["width"] == 5
    every = tr.to_xarray()
    assert list(every) == list(tr.operators)
    assert every["generator"]["message"].values[2] == "Ω failed"
    with pytest.raises(KeyError, match="critic"):
        tr.to_xarray("critic")


def test_scalars_frame_has_every_scalar_loss_and_root_column(tmp_path):
    tr = open_trace(write(tmp_path / "run.h5"))
    frame = tr.scalars_frame()
    assert type(frame).__name__ == "DataFrame" and type(frame).__module__.startswith("pandas")
    assert frame.index.names == ["step", "batch_index"]
    assert len(frame) == 5
    for op in tr.operators:
        for name, values in tr.scalars(op).items():
            np.testing.assert_array_equal(frame[f"{op}/{name}"].values, values)
    np.testing.assert_allclose(frame["loss/discriminator"].values, tr.losses()["discriminator"])
    assert frame.loc[(30, 1), "probe_cost_steps"] == 3.5
    assert frame.loc[(20, 0), "generator/status"] == "error"
    assert frame.loc[(10, 0), "probe_message"] == "probe 10: ∂ ok"
    assert {"probe_flags", "probe_overhead", "jacobian/n_matvec"} <= set(frame.columns)


def test_missing_xarray_says_which_extra_to_install(tmp_path):
    path = write(tmp_path / "run.h5")
    code = (
        "import sys; sys.modules['xarray'] = None; sys.modules['pandas'] = None\n"
        "from specdiag.trace import open_trace\n"
        f"tr = open_trace({str(path)!r})\n"
        "for call in (lambda: tr.to_xarray('jacobian'), tr.scalars_frame):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as e:\n"
        "        print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=TESTS
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all('pip install "specdiag[xarray]"' in line for line in lines)
    assert "xarray" in lines[0] and "pandas" in lines[1]
