"""Crafted or damaged traces give one-line TraceErrors naming the file, never a
KeyError, TypeError or UnicodeDecodeError traceback."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from trace_writer_proc import OPERATORS, PLAYERS, WIDTH, probe_record

from specdiag.errors import TraceError
from specdiag.trace import TraceWriter, open_trace


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.h5"
    ops = {
        **OPERATORS,
        "jacobian": {
            **OPERATORS["jacobian"],
            "arrays": {"shares": {"dims": ["eig", "player"]}},
            "coords": {"player": list(PLAYERS)},
        },
    }
    with TraceWriter(path, operators=ops, players=PLAYERS, width=WIDTH) as w:
        for step in (0, 10, 20):
            w.write(probe_record(step))
    return path


def layout_edit(edit):
    def mutate(f):
        layout = json.loads(f.attrs["layout"])
        edit(layout)
        f.attrs["layout"] = json.dumps(layout)

    return mutate


def set_attr(name, value):
    return lambda f: f.attrs.__setitem__(name, value)


def replace(path, data):
    def mutate(f):
        del f[path]
        f[path] = data

    return mutate


MUTATIONS = {
    "layout is a JSON list": set_attr("layout", "[1, 2]"),
    "layout is not JSON": set_attr("layout", "{operators"),
    "layout is a number array": set_attr("layout", np.arange(3)),
    "no layout": lambda f: f.attrs.__delitem__("layout"),
    "operators is a list": layout_edit(lambda lay: lay.__setitem__("operators", [])),
    "no operators": layout_edit(lambda lay: lay.pop("operators")),
    "an operator is a string": layout_edit(
        lambda lay: lay["operators"].__setitem__("jacobian", "x")
    ),
    "n is a string": layout_edit(lambda lay: lay["operators"]["jacobian"].__setitem__("n", "five")),
    "no kind": layout_edit(lambda lay: lay["operators"]["jacobian"].pop("kind")),
    "scalars is a string": layout_edit(
        lambda lay: lay["operators"]["jacobian"].__setitem__("scalars", "abc")
    ),
    "a negative operator width": layout_edit(
        lambda lay: lay["operators"]["generator"].__setitem__("width", -1)
    ),
    "width NaN in JSON": set_attr(
        "layout",
        '{"operators": {"jacobian": {"kind": "jacobian", "n": 5, "width": NaN}}, "players": {}}',
    ),
    "players is a list": layout_edit(lambda lay: lay.__setitem__("players", ["generator"])),
    "a player size is a string": layout_edit(
        lambda lay: lay["players"].__setitem__("generator", "two")
    ),
    "an array without coordinates": layout_edit(
        lambda lay: lay["operators"]["jacobian"].__setitem__("coords", {})
    ),
    "arrays is a list": layout_edit(
        lambda lay: lay["operators"]["jacobian"].__setitem__("arrays", ["shares"])
    ),
    "a negative root width": set_attr("width", np.int64(-4)),
    "a string width": set_attr("width", "four"),
    "no width": lambda f: f.attrs.__delitem__("width"),
    "no schema_version": lambda f: f.attrs.__delitem__("schema_version"),
    "schema_version is not a number": set_attr("schema_version", "one"),
    "config is a JSON list": set_attr("config", "[1]"),
    "versions is a number": set_attr("versions", "3"),
    "no eig_real": lambda f: f.__delitem__("jacobian/eig_real"),
    "no array dataset": lambda f: f.__delitem__("jacobian/shares"),
    "no loss": lambda f: f.__delitem__("loss/generator"),
    "eig_real is 1-D": replace("jacobian/eig_real", np.zeros(3)),
    "an array of the wrong shape": replace("jacobian/shares", np.zeros((3, WIDTH, 5))),
    "probe_step is a group": lambda f: (f.__delitem__("probe_step"), f.create_group("probe_step")),
    "probe_flags missing in a 1.2 file": lambda f: f.__delitem__("probe_flags"),
    "status is a string dataset": replace("jacobian/status", np.array([b"ok"] * 3)),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_damaged_trace_is_a_one_line_trace_error(good, tmp_path, name):
    path = tmp_path / "damaged.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        MUTATIONS[name](f)
    with pytest.raises(TraceError) as info:
        open_trace(path)
    error = info.value
    message = str(error)
    assert str(path) in message and "\n" not in message, message
    assert type(error) is TraceError
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    with pytest.raises(TraceError) as info:  # and a writer refuses it the same way
        TraceWriter(path, operators=OPERATORS, players=PLAYERS, width=WIDTH, resume=True)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "damaged.h5.lock").exists()


def test_bad_utf8_in_a_message_is_replaced_not_fatal(good, tmp_path):
    path = tmp_path / "bytes.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        f["jacobian/message"][1] = b"bad \xff\xfe bytes"
        f["probe_message"][2] = b"\xc3"  # a character cut in half
        del f["generator/status"].attrs["flag_meanings"]  # the built-in table decodes it
    tr = open_trace(path)
    assert tr.messages("jacobian")[1] == "bad \ufffd\ufffd bytes"
    assert tr.probes()["message"][2] == "\ufffd"
    assert list(tr.status("generator")) == ["ok", "ok", "ok"]
