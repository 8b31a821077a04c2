"""``specdiag.summary`` and ``specdiag summary``: rows, warnings, table, JSON, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, operator_record, probe_record

from specdiag.summary import (
    BULK_GAP,
    BULK_LEVEL,
    format_summary,
    probe_rows,
    summary_dict,
    trace_warnings,
)
from specdiag.trace import TraceWriter, open_trace

TOL = 1e-3


def write(path, records, **config):
    with TraceWriter(
        path,
        operators=OPERATORS,
        players=PLAYERS,
        width=WIDTH,
        config={"tol": TOL, **config},
        resume=False,
    ) as w:
        for r in records:
            w.write(r)
    return open_trace(path)


def failed(step):
    r = probe_record(step)
    r.status = "unconverged"
    r.operators["jacobian"] = operator_record(
        "jacobian",
        "jacobian",
        "LM",
        [3.0, 2.0, 1.0],
        status="unconverged",
        converged=[True, False, False],
        message="1 of 3 converged after 300 restarts",
    )
    return r


def bulky(step):
    """A probe whose last two discriminator eigenvalues lie in the bulk near zero and are
    closer than the bulk gap."""
    r = probe_record(step)
    low = 0.5 * BULK_LEVEL * 3.0
    close = low - 0.5 * BULK_GAP * TOL * 3.0
    r.operators["discriminator"] = operator_record(
        "discriminator", "hessian", "LA", [3.0, low, close]
    )
    return r


def clustered_top(step):
    """Clustered eigenvalues at the top are not the bulk: no warning."""
    r = probe_record(step)
    r.operators["discriminator"] = operator_record(
        "discriminator", "hessian", "LA", [3.0, 2.0, 2.0 - 0.5 * BULK_GAP * TOL * 3.0]
    )
    return r


def specdiag(*args):
    return subprocess.run(
        [sys.executable, "-m", "specdiag", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rows_follow_the_trace(tmp_path):
    tr = write(tmp_path / "t.h5", [probe_record(0), failed(10), probe_record(20, n_matvec=77)])
    rows = probe_rows(tr)
    assert [r["step"] for r in rows] == [0, 10, 20]
    assert rows[1]["status"] == "unconverged"
    jac = rows[1]["operators"]["jacobian"]
    assert (jac["converged"], jac["eigenvalues"], jac["status"]) == (1, 3, "unconverged")
    assert rows[2]["operators"]["generator"]["n_matvec"] == 77
    assert rows[2]["operators"]["generator"]["max"] == 40.0  # 2 * step
    assert rows[0]["operators"]["jacobian"]["min_real"] == 0.0  # step +- 1j and 0.5


def test_warnings_name_failures_and_bulk(tmp_path):
    tr = write(tmp_path / "t.h5", [probe_record(0), failed(10), bulky(20), bulky(30)])
    lines = trace_warnings(tr)
    assert any(
        line.startswith("jacobian: unconverged at 1 of 4 probe(s) (steps 10): 1 of 3 converged")
        for line in lines
    )
    (bulk,) = [line for line in lines if "bulk" in line]
    assert bulk.startswith(
        "discriminator: k reaches into the bulk at 2 of 4 probe(s) (steps 20, 30)"
    )
    assert len(lines) == 2


def test_a_cluster_at_the_top_is_not_the_bulk(tmp_path):
    tr = write(tmp_path / "t.h5", [clustered_top(s) for s in (0, 10)])
    assert trace_warnings(tr) == []


def test_repeated_failures_are_one_line_with_their_count(tmp_path):
    tr = write(tmp_path / "t.h5", [failed(s) for s in range(0, 200, 10)])
    (line,) = trace_warnings(tr)
    assert line.startswith(
        "jacobian: unconverged at 20 of 20 probe(s) (steps 0, 10, 20, 30, 40, 50, 60, 70, ...)"
    )


def test_well_separated_eigenvalues_give_no_warning(tmp_path):
    tr = write(tmp_path / "t.h5", [probe_record(s) for s in (0, 10, 20)])
    assert trace_warnings(tr) == []


def test_table_has_a_row_per_probe_and_states_the_convention(tmp_path):
    tr = write(tmp_path / "t.h5", [probe_record(0), failed(10)])
    text = format_summary(tr)
    lines = text.splitlines()
    assert "descent convention" in lines[0]
    header = lines[2].split()
    assert header[:2] == ["step", "status"] and "|λ|max" in header
    assert lines[3].split()[:3] == ["0", "ok", "3/3"]
    assert lines[4].split()[:3] == ["10", "unconverged", "1/3"]
    assert "1 warning(s):" in text


def test_json_is_strict(tmp_path):
    r = probe_record(0)
    r.operators["jacobian"].scalars["max_imag_over_real"] = math.inf
    r.operators["generator"] = operator_record("generator", "hessian", "LA", [])
    r.operators["generator"].scalars = {"max": math.nan, "min": math.nan}
    tr = write(tmp_path / "t.h5", [r])
    data = summary_dict(tr)
    text = json.dumps(data, allow_nan=False)  # raises on NaN or inf
    back = json.loads(text)
    assert back["probes"][0]["operators"]["jacobian"]["max_imag_over_real"] == "inf"
    assert back["probes"][0]["operators"]["generator"]["max"] is None
    assert back["convention"] == "descent" and back["n_probes"] == 1


def test_several_probe_batches_get_a_batch_column(tmp_path):
    tr = write(tmp_path / "t.h5", [probe_record(0), probe_record(0, batch_index=1)])
    lines = format_summary(tr).splitlines()
    assert lines[2].split()[:3] == ["step", "batch", "status"]
    assert [line.split()[1] for line in lines[3:5]] == ["0", "1"]


def test_command_prints_table_and_json(tmp_path):
    write(tmp_path / "t.h5", [probe_record(0), failed(10)])
    out = specdiag("summary", tmp_path / "t.h5")
    assert out.returncode == 0, out.stderr
    assert "unconverged" in out.stdout and "1 warning(s)" in out.stdout
    out = specdiag("summary", tmp_path / "t.h5", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [row["step"] for row in data["probes"]] == [0, 10]
    assert len(data["warnings"]) == 1


@pytest.mark.parametrize("case", ["missing", "not-hdf5", "foreign-hdf5", "empty"])
def test_bad_traces_exit_2_with_one_line(tmp_path, case):
    import h5py

    path = tmp_path / "t.h5"
    if case == "not-hdf5":
        path.write_text("step,loss\n0,1.0\n")
    elif case == "foreign-hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(3)
    elif case == "empty":
        TraceWriter(path, operators=OPERATORS, players=PLAYERS, width=WIDTH).close()
    out = specdiag("summary", path)
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("specdiag: error: ") and "Traceback" not in out.stderr
    if case == "empty":
        assert "no probes yet" in out.stderr
