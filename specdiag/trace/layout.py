"""Building a new trace's groups, datasets and dimension scales (schema 1.2).

Every per-probe dataset is chunked and resizable along its rows. Dimension scales give
the axes names that netCDF tools (h5netcdf, xarray) read: in every operator group the
``step`` dataset is the scale of axis 0 of every per-probe dataset, ``eig`` (int32,
``0 .. width - 1``) of the eigenvalue axis, and each coordinate of the operator's
``coords`` of the axes of its name; at the root, ``probe_step`` is the scale of axis 0
of the root per-probe datasets and of ``loss/<player>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from .files import strict_json
from .schema import (
    ARRAY_FILL,
    CONVENTION,
    EIG_DIM,
    FLAG_ATTRS,
    LOSS_GROUP,
    MESSAGE_COLUMNS,
    OPERATOR_COLUMNS,
    PROBE_COLUMNS,
    ROOT_STEP,
    SCHEMA,
    SCHEMA_VERSION,
    STATUS_COLUMNS,
    STATUSES,
    STEP_DIM,
    array_shape,
    chunk_rows,
)

__all__ = ["build_layout", "chunk_bytes"]


def _row_bytes(dtype: Any, shape: tuple[int, ...]) -> int:
    return int(np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64)))


def chunk_bytes(specs: Mapping[str, tuple[Any, tuple[int, ...], Any]]) -> int:
    """Bytes of one chunk of each per-probe dataset, summed: what one write can add."""
    total = 0
    for dtype, shape, _ in specs.values():
        row = _row_bytes(dtype, shape)
        total += chunk_rows(row) * row
    return total


def _dataset(
    group: h5py.Group, name: str, dtype: Any, shape: tuple[int, ...], description: str, fill: Any
) -> h5py.Dataset:
    """An empty per-probe dataset of rows of ``shape``, chunked and resizable."""
    rows = chunk_rows(_row_bytes(dtype, shape))
    if fill is None and np.dtype(dtype).kind == "f":
        fill = np.nan
    ds = group.create_dataset(
        name,
        shape=(0, *shape),
        maxshape=(None, *shape),
        chunks=(rows, *shape),
        dtype=dtype,
        fillvalue=fill,
    )
    ds.attrs["description"] = description
    if name in STATUS_COLUMNS:
        ds.attrs["flag_values"] = np.arange(len(STATUSES), dtype=np.int8)
        ds.attrs["flag_meanings"] = " ".join(STATUSES)
    elif name in MESSAGE_COLUMNS:
        ds.attrs["_Encoding"] = "utf-8"  # xarray decodes the bytes to str
    elif name == "probe_flags":
        ds.attrs.update(FLAG_ATTRS)
    return ds


def _coordinate(group: h5py.Group, dim: str, values: list[Any]) -> h5py.Dataset:
    """The dimension scale ``dim``: strings as fixed-length UTF-8, numbers as i8 or f8."""
    if all(isinstance(v, str) for v in values):
        data = [v.encode("utf-8") for v in values]
        dtype = h5py.string_dtype("utf-8", length=max(1, *(len(d) for d in data)))
        ds = group.create_dataset(dim, data=np.array(data, dtype=dtype))
        ds.attrs["_Encoding"] = "utf-8"
    else:
        kind = "i8" if all(isinstance(v, int) for v in values) else "f8"
        ds = group.create_dataset(dim, data=np.asarray(values, dtype=kind))
    ds.make_scale(dim)
    ds.attrs["description"] = f"coordinate {dim!r} of the extra arrays"
    return ds


def _operator_group(f: h5py.File, name: str, spec: Mapping[str, Any]) -> None:
    group = f.create_group(name)
    group.attrs.update(
        {
            "kind": spec["kind"],
            "which": spec["which"],
            "n": np.int64(spec["n"]),
            "scalars": strict_json(spec["scalars"]),
            "width": np.int64(spec["width"]),
        }
    )
    eig = group.create_dataset(EIG_DIM, data=np.arange(spec["width"], dtype=np.int32))
    eig.make_scale(EIG_DIM)
    eig.attrs["description"] = "index of the eigenvalue, most wanted first"
    scales = {EIG_DIM: eig}
    scales.update({dim: _coordinate(group, dim, v) for dim, v in spec["coords"].items()})
    columns: dict[str, tuple[Any, tuple[int, ...], str, Any, list[str]]] = {}
    for column, col in OPERATOR_COLUMNS.items():
        shape: tuple[int, ...] = (spec["width"],) if col.wide else ()
        dims = [EIG_DIM] if col.wide else []
        columns[column] = (col.dtype, shape, col.description, None, dims)
    for scalar in spec["scalars"]:
        columns[scalar] = ("f8", (), f"summary scalar {scalar}", None, [])
    for array, a in spec["arrays"].items():
        fill = ARRAY_FILL[np.dtype(a["dtype"]).kind]
        description = a["description"] or f"array {array}"
        columns[array] = (a["dtype"], array_shape(spec, a), description, fill, a["dims"])
    step = _dataset(group, STEP_DIM, *columns.pop(STEP_DIM)[:4])
    step.make_scale(STEP_DIM)
    for column, (dtype, shape, description, fill, dims) in columns.items():
        ds = _dataset(group, column, dtype, shape, description, fill)
        ds.dims[0].attach_scale(step)
        for axis, dim in enumerate(dims, start=1):
            ds.dims[axis].attach_scale(scales[dim])


def build_layout(
    f: h5py.File, layout: Mapping[str, Any], width: int, attrs: Mapping[str, Any]
) -> None:
    """Create every group, dataset, scale and attribute of a new trace in ``f``.

    ``attrs`` are further root attributes (``specdiag_version``, ``versions``,
    ``config``, ``created``).
    """
    f.attrs.update(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "convention": CONVENTION,
            "layout": strict_json(layout),
            "width": np.int64(width),
            **attrs,
        }
    )
    for name, spec in layout["operators"].items():
        _operator_group(f, name, spec)
    root = _dataset(f, ROOT_STEP, "i8", (), PROBE_COLUMNS[ROOT_STEP].description, None)
    root.make_scale(ROOT_STEP)
    losses = f.create_group(LOSS_GROUP)
    for player in layout["players"]:
        ds = _dataset(losses, player, "f8", (), f"loss of {player} on the probe batch", None)
        ds.dims[0].attach_scale(root)
    for column, col in PROBE_COLUMNS.items():
        if column != ROOT_STEP:
            _dataset(f, column, col.dtype, (), col.description, None).dims[0].attach_scale(root)
