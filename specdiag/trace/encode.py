"""A probe record as one value per dataset of the trace, checked before the file is touched.

Any object with the attributes of a :class:`~specdiag.ProbeRecord` (and operator
records with those of an :class:`~specdiag.OperatorRecord`) can be written; the
attributes added since schema 1.0 are read with ``getattr`` and their defaults
(``flags`` 0, ``message`` "", times NaN, no ``arrays``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..registry import status_code
from .schema import (
    ARRAY_FILL,
    EIG_DIM,
    LOSS_GROUP,
    MESSAGE_BYTES,
    array_shape,
)

__all__ = ["encode_record", "fit_message"]


def fit_message(message: Any) -> bytes:
    """``message`` as UTF-8 of at most MESSAGE_BYTES bytes, cut at a character boundary."""
    data = str(message or "").encode("utf-8")
    if len(data) <= MESSAGE_BYTES:
        return data
    return data[: MESSAGE_BYTES - 3].decode("utf-8", errors="ignore").encode("utf-8") + b"..."


def _padded(values: Any, width: int, fill: Any, dtype: Any, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=dtype).reshape(-1)
    if array.size > width:
        raise ValueError(f"{what}: {array.size} values do not fit the trace's width {width}")
    row = np.full(width, fill, dtype=dtype)
    row[: array.size] = array
    return row


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _array_row(spec: Mapping[str, Any], name: str, value: Any, what: str) -> np.ndarray:
    """One row of the extra array ``name``: fill where missing, padded along eig."""
    array = spec["arrays"][name]
    dtype = np.dtype(array["dtype"])
    shape = array_shape(spec, array)
    row = np.full(shape, ARRAY_FILL[dtype.kind], dtype=dtype)
    if value is None:
        return row
    data = np.asarray(value, dtype=dtype)
    if data.ndim != len(shape):
        raise ValueError(
            f"{what}: array {name!r} has {data.ndim} dimensions, the trace stores "
            f"{len(shape)} ({', '.join(array['dims']) or 'none'})"
        )
    for axis, (dim, size, got) in enumerate(zip(array["dims"], shape, data.shape)):
        if got > size or (got != size and dim != EIG_DIM):
            raise ValueError(
                f"{what}: array {name!r} has {got} entries along {dim!r} (axis {axis}), "
                f"the trace stores {size}" + (" at most" if dim == EIG_DIM else "")
            )
    row[tuple(slice(0, n) for n in data.shape)] = data
    return row


def _operator_row(name: str, spec: Mapping[str, Any], op: Any) -> dict[str, Any]:
    """The datasets of one operator group, but ``step`` and ``batch_index``."""
    what = f"operator {name!r}"
    for key in ("kind", "which"):
        if spec[key] and getattr(op, key, spec[key]) != spec[key]:
            raise ValueError(
                f"{what}: record has {key} {getattr(op, key)!r}, the trace {spec[key]!r}"
            )
    scalars = dict(getattr(op, "scalars", {}) or {})
    unknown = set(scalars) - set(spec["scalars"])
    if unknown:
        raise ValueError(
            f"{what}: scalars {sorted(unknown)} are not in the trace (it stores {spec['scalars']})"
        )
    arrays = dict(getattr(op, "arrays", {}) or {})
    unknown = set(arrays) - set(spec["arrays"])
    if unknown:
        raise ValueError(
            f"{what}: arrays {sorted(unknown)} are not in the trace "
            f"(it stores {sorted(spec['arrays'])}; declare them in the operator's 'arrays')"
        )
    width = spec["width"]
    eig = np.asarray(op.eigenvalues, dtype=np.complex128).reshape(-1)
    row: dict[str, Any] = {
        "eig_real": _padded(eig.real, width, np.nan, np.float64, what),
        "eig_imag": _padded(eig.imag, width, np.nan, np.float64, what),
        "residual": _padded(op.residuals, width, np.nan, np.float64, f"{what} residuals"),
        "converged": _padded(op.converged, width, False, np.bool_, f"{what} converged"),
        "n_matvec": int(op.n_matvec),
        "wall_time": float(op.wall_time),
        "status": status_code(op.status, what),
        "message": fit_message(getattr(op, "message", "")),
    }
    row.update({s: _float(scalars.get(s)) for s in spec["scalars"]})
    row.update({a: _array_row(spec, a, arrays.get(a), what) for a in spec["arrays"]})
    return row


def encode_record(record: Any, layout: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The record as ``{dataset path: value}``, in writing order (``probe_step`` last).

    Raises
    ------
    ValueError
        The record does not fit the layout (other operators, scalars, arrays or
        players, too many eigenvalues, an unknown status, no step).
    """
    if getattr(record, "step", None) is None:
        raise ValueError("a record written to a trace needs a step (record.step is None)")
    step, batch_index = int(record.step), int(record.batch_index)
    ops, names = record.operators, list(layout["operators"])
    if sorted(ops) != sorted(names):
        raise ValueError(f"the record has operators {sorted(ops)}, the trace {path} has {names}")
    row: dict[str, Any] = {}
    for name, spec in layout["operators"].items():
        row[f"{name}/step"], row[f"{name}/batch_index"] = step, batch_index
        row.update({f"{name}/{k}": v for k, v in _operator_row(name, spec, ops[name]).items()})
    losses = dict(record.losses)
    unknown = set(losses) - set(layout["players"])
    if unknown:
        raise ValueError(
            f"the record has losses of {sorted(unknown)}, which are not players of the trace {path}"
        )
    for player in layout["players"]:
        row[f"{LOSS_GROUP}/{player}"] = _float(losses.get(player))
    seed = getattr(record, "seed", None)
    flags = int(getattr(record, "flags", 0) or 0)
    if not 0 <= flags < 2**31:
        raise ValueError(f"record.flags {flags} is not a bit mask of PROBE_FLAGS (int32)")
    row.update(
        {
            "probe_batch_index": batch_index,
            "probe_seed": -1 if seed is None else int(seed),
            "probe_wall_time": float(record.wall_time),
            "probe_build_time": float(record.build_time),
            "probe_status": status_code(record.status, "probe"),
            "probe_flags": flags,
            "probe_message": fit_message(getattr(record, "message", "")),
            "probe_train_time": _float(getattr(record, "train_time", math.nan)),
            "probe_overhead": _float(getattr(record, "overhead", math.nan)),
            "probe_cost_steps": _float(getattr(record, "cost_steps", math.nan)),
            "probe_step": step,
        }
    )
    return row
