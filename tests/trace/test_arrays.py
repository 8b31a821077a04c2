"""Per-operator widths, extra arrays and their coordinates (schema 1.2)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, operator_record, probe_record

from specdiag.errors import TraceError
from specdiag.trace import TraceWriter, open_trace

SPECTRA = {
    "jacobian": {"kind": "jacobian", "which": "LM", "n": 83},
    "generator": {"kind": "hessian", "which": "LA", "n": 2, "width": 2},
}
GAME = {"generator": 2, "discriminator": 81}


def hessian(values):
    return operator_record("generator", "hessian", "LA", values)


def test_each_operator_has_its_own_width(tmp_path):
    """k = 20000 on an 83-parameter game: the probes pass width min(k + 1, n) = 83."""
    path = tmp_path / "run.h5"
    ops = {**SPECTRA, "jacobian": {**SPECTRA["jacobian"], "width": 83}}
    with TraceWriter(path, operators=ops, players=GAME, width=20001) as w:
        r = probe_record(0)
        r.operators = {
            "jacobian": operator_record("jacobian", "jacobian", "LM", np.arange(83.0)),
            "generator": hessian([2.0]),
        }
        w.write(r)
        r.operators["generator"] = hessian([1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match="width 2"):
            w.write(r)
    tr = open_trace(path)
    assert tr.width == 20001 and tr.operator_width("jacobian") == 83
    assert tr.operator_width("generator") == 2
    assert tr.eigenvalues("jacobian").shape == (1, 83)
    np.testing.assert_array_equal(tr.eigenvalues("jacobian")[0].real, np.arange(83.0))
    assert tr.eigenvalues("generator").shape == (1, 2) and np.isnan(
        tr.eigenvalues("generator")[0, 1]
    )
    with h5py.File(path, "r") as f:
        assert f["jacobian/eig_real"].shape == (1, 83) and f["jacobian/eig"].shape == (83,)
        assert f["generator/converged"].shape == (1, 2) and f["generator"].attrs["width"] == 2


@pytest.mark.parametrize("width", [0, -3, 2.5, True, "4"])
def test_a_width_must_be_a_positive_integer(tmp_path, width):
    ops = {**SPECTRA, "generator": {**SPECTRA["generator"], "width": width}}
    with pytest.raises(ValueError, match="width of operator 'generator'"):
        TraceWriter(tmp_path / "run.h5", operators=ops, players=GAME, width=4)
    assert not (tmp_path / "run.h5").exists() and not (tmp_path / "run.h5.lock").exists()


ARRAYS = {
    "shares": {"dims": ["eig", "tensor"], "dtype": "f8", "description": "tensor shares"},
    "players": {"dims": ["eig", "player"], "dtype": "f4"},
    "cosines": {"dims": ["eig"], "dtype": "f8"},
    "nodes": {"dims": ["vector", "node"], "dtype": "f8", "description": "SLQ nodes"},
    "hits": {"dims": ["node"], "dtype": "i4"},
    "seen": {"dims": ["eig"], "dtype": "bool"},
}
COORDS = {
    "tensor": ["g.weight", "g.bias", "d.weight"],
    "player": ["generator", "discriminator"],
    "vector": [0, 1],
    "node": [0.5, 1.5, 2.5, 3.5],
}


def with_arrays(path, records, **kwargs):
    ops = {**OPERATORS, "jacobian": {**OPERATORS["jacobian"], "arrays": ARRAYS, "coords": COORDS}}
    with TraceWriter(path, operators=ops, players=PLAYERS, width=WIDTH, **kwargs) as w:
        for r in records:
            w.write(r)
    return open_trace(path)


def arrays_record(step, **arrays):
    r = probe_record(step)
    r.operators["jacobian"].arrays = arrays
    return r


def test_extra_arrays_round_trip_padded_along_eig(tmp_path):
    first = arrays_record(
        0,
        shares=np.arange(6.0).reshape(2, 3),  # 2 of WIDTH = 4 eigenvalues
        players=np.ones((4, 2)),
        cosines=[0.9, 0.8, 0.7],
        nodes=np.arange(8.0).reshape(2, 4),
        hits=[1, 2, 3, 4],
        seen=[True, True],
    )
    second = arrays_record(10, cosines=[0.5])  # the others missing: fill
    tr = with_arrays(tmp_path / "run.h5", [first, second])
    arrays = tr.arrays("jacobian")
    assert set(arrays) == set(ARRAYS)
    assert arrays["shares"].shape == (2, WIDTH, 3) and arrays["shares"].dtype == np.float64
    np.testing.assert_array_equal(arrays["shares"][0, :2], np.arange(6.0).reshape(2, 3))
    assert np.isnan(arrays["shares"][0, 2:]).all() and np.isnan(arrays["shares"][1]).all()
    assert arrays["players"].dtype == np.float32 and arrays["players"].shape == (2, WIDTH, 2)
    np.testing.assert_array_equal(arrays["cosines"][0, :3], [0.9, 0.8, 0.7])
    assert arrays["cosines"][1, 0] == 0.5 and np.isnan(arrays["cosines"][1, 1:]).all()
    np.testing.assert_array_equal(arrays["nodes"][0], np.arange(8.0).reshape(2, 4))
    np.testing.assert_array_equal(arrays["hits"], [[1, 2, 3, 4], [-1, -1, -1, -1]])
    np.testing.assert_array_equal(arrays["seen"], [[True, True, False, False]] * 1 + [[False] * 4])
    coords = tr.coords("jacobian")
    assert list(coords["tensor"]) == COORDS["tensor"] and coords["tensor"].dtype.kind == "U"
    np.testing.assert_array_equal(coords["node"], COORDS["node"])
    assert coords["vector"].dtype == np.int64
    assert tr.array_dims("jacobian")["nodes"] == ("step", "vector", "node")
    assert tr.arrays("generator") == {} and tr.coords("generator") == {}
    layout = tr.meta["layout"]["operators"]["jacobian"]
    assert layout["arrays"]["shares"] == ARRAYS["shares"]
    assert layout["arrays"]["seen"]["dtype"] == "b1" and layout["coords"] == COORDS


@pytest.mark.parametrize(
    "change, match",
    [
        ({"arrays": {"a": {"dims": ["eig", "tensor"]}}}, "dimensions \\['tensor'\\] have no coord"),
        ({"arrays": {"status": {"dims": ["eig"]}}}, "clashes"),
        ({"arrays": {"min_real": {"dims": []}}}, "clashes"),
        ({"arrays": {"a": {"dims": ["eig"]}}, "coords": {"a": [1]}}, "clashes"),
        ({"coords": {"eig": [1, 2]}}, "clashes"),
        ({"coords": {"step": [1]}}, "clashes"),
        ({"coords": {"message": ["x"]}}, "clashes"),
        ({"arrays": {"a": {"dims": ["eig", "eig"]}}}, "repeat"),
        ({"arrays": {"a": {"dims": ["eig"], "dtype": "U8"}}}, "not a number or bool"),
        ({"arrays": {"a/b": {"dims": ["eig"]}}}, "without '/'"),
        ({"arrays": {"a": {"shape": [3]}}}, "needs 'dims'"),
        ({"arrays": ["a"]}, "'arrays' must be a mapping"),
        ({"coords": {"c": []}}, "non-empty"),
        ({"coords": {"c": ["x", 1]}}, "all strings or all numbers"),
        ({"coords": {"c": [1, 1]}}, "unique"),
        ({"coords": {"c": [1.0, float("nan")]}}, "finite"),
        ({"coords": {"c": "abc"}}, "list of strings or numbers"),
    ],
)
def test_bad_array_specifications_are_value_errors(tmp_path, change, match):
    ops = {**OPERATORS, "jacobian": {**OPERATORS["jacobian"], **change}}
    with pytest.raises(ValueError, match=match):
        TraceWriter(tmp_path / "run.h5", operators=ops, players=PLAYERS, width=WIDTH)
    assert not (tmp_path / "run.h5").exists()


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"shares": np.ones((5, 3))}, "5 entries along 'eig'.*4 at most"),
        ({"shares": np.ones((4, 2))}, "2 entries along 'tensor'.*stores 3"),
        ({"nodes": np.ones(8)}, "1 dimensions.*stores 2"),
        ({"mystery": np.ones(4)}, "arrays \\['mystery'\\] are not in the trace"),
    ],
)
def test_an_array_that_does_not_fit_is_refused_before_writing(tmp_path, arrays, match):
    path = tmp_path / "run.h5"
    with_arrays(path, [arrays_record(0)])
    ops = {**OPERATORS, "jacobian": {**OPERATORS["jacobian"], "arrays": ARRAYS, "coords": COORDS}}
    with TraceWriter(path, operators=ops, players=PLAYERS, width=WIDTH, resume=True) as w:
        with pytest.raises(ValueError, match=match):
            w.write(arrays_record(1, **arrays))
    assert len(open_trace(path)) == 1


@pytest.mark.parametrize(
    "change, detail",
    [
        ({"arrays": {**ARRAYS, "cosines": {"dims": ["eig"], "dtype": "f4"}}}, "arrays of operator"),
        ({"coords": {**COORDS, "node": [0.5, 1.5, 2.5, 4.0]}}, "coords of operator"),
        ({"width": WIDTH + 1}, "width of operator 'jacobian'"),
    ],
)
def test_resume_refuses_another_array_layout(tmp_path, change, detail):
    path = tmp_path / "run.h5"
    with_arrays(path, [arrays_record(0)])
    spec = {**OPERATORS["jacobian"], "arrays": ARRAYS, "coords": COORDS, **change}
    with pytest.raises(TraceError, match="another layout") as info:
        TraceWriter(
            path,
            operators={**OPERATORS, "jacobian": spec},
            players=PLAYERS,
            width=WIDTH,
            resume=True,
        )
    assert detail in str(info.value)
    tr = with_arrays(path, [arrays_record(5, cosines=[1.0])], resume=True)  # same layout: fine
    np.testing.assert_array_equal(tr.probe_steps(), [0, 5])
