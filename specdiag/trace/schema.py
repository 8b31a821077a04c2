"""The trace format: its version, its datasets, and the layout of operators and players.

One place defines what a trace holds (``docs/trace-format.md`` describes it field by
field): the per-probe datasets of each operator group and of the root, the statuses and
scalars they store, and the ``layout`` attribute that names the operators, their widths,
their extra arrays and coordinates, and the players. The writer, the reader and the
summary build on these tables. numpy and h5py only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import h5py
import numpy as np

from ..registry import PROBE_FLAGS, SCALARS, STATUS_NAMES, scalar_names

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "DEFAULT_SCALARS",
    "MESSAGE_BYTES",
    "CONVENTION",
]
#: Value of the root attribute ``schema`` that marks a specdiag trace.
SCHEMA = "specdiag-trace"
#: ``"MAJOR.MINOR"``: a minor step only adds; a reader refuses a newer major version.
SCHEMA_VERSION = "1.2"
#: Status names (:mod:`specdiag.registry.statuses`); a status dataset stores the index
#: into this tuple (int8).
STATUSES = STATUS_NAMES
#: Summary scalars stored per operator kind unless the operator names its own
#: (:mod:`specdiag.registry.scalars`; update and helmholtz since schema 1.1).
DEFAULT_SCALARS = {kind: scalar_names(kind) for kind in dict.fromkeys(s.kind for s in SCALARS)}
#: Size in bytes of the fixed-length UTF-8 ``message`` fields; longer messages are cut.
MESSAGE_BYTES = 256

CONVENTION = "descent"
SCHEMA_MAJOR = int(SCHEMA_VERSION.split(".")[0])
#: Rows per chunk of every per-probe dataset, fewer when a row is large (see chunk_rows).
CHUNK_ROWS = 64
#: Largest chunk in bytes: a dataset whose rows are wider has fewer rows per chunk.
CHUNK_BYTES = 1 << 20
MESSAGE_DTYPE = h5py.string_dtype("utf-8", length=MESSAGE_BYTES)
#: Names of the dimension scales: the step of each row, the eigenvalue index.
STEP_DIM, EIG_DIM, ROOT_STEP = "step", "eig", "probe_step"
#: dtypes an extra array may have: numpy kind -> fill value of missing entries.
ARRAY_FILL = {"f": math.nan, "i": -1, "u": 0, "b": False}


@dataclass(frozen=True)
class Column:
    """One per-probe dataset.

    Its dtype, whether it has a width axis, what it holds, the schema version that
    added it and the value files of older versions read as.
    """

    dtype: Any
    description: str
    wide: bool = False
    since: tuple[int, int] = (1, 0)
    default: Any = None


#: Per-probe datasets of an operator group, in writing order.
OPERATOR_COLUMNS: dict[str, Column] = {
    "step": Column("i8", "training step of the probe (dimension scale 'step')"),
    "batch_index": Column("i4", "index of the probe batch within the probe"),
    "eig_real": Column(
        "f8", "real parts of the eigenvalues (descent convention), NaN-padded", wide=True
    ),
    "eig_imag": Column("f8", "imaginary parts of the eigenvalues, NaN-padded", wide=True),
    "residual": Column("f8", "relative residual of each eigenpair, NaN-padded", wide=True),
    "converged": Column(np.bool_, "whether each eigenpair converged, False-padded", wide=True),
    "n_matvec": Column("i8", "matrix-vector products spent by the solver"),
    "wall_time": Column("f8", "seconds spent by the solver"),
    "status": Column("i1", "outcome of the solve, see flag_meanings"),
    "message": Column(MESSAGE_DTYPE, "what went wrong, or empty (UTF-8, cut to fit)"),
}
#: Per-probe datasets at the root, in writing order. ``probe_step`` is written last,
#: after a flush, so a row it shows is complete in every other dataset.
PROBE_COLUMNS: dict[str, Column] = {
    "probe_batch_index": Column("i4", "index of the probe batch within the probe"),
    "probe_seed": Column("i8", "random seed of the probe (-1: none)"),
    "probe_wall_time": Column("f8", "seconds for the whole probe, building the graph included"),
    "probe_build_time": Column("f8", "seconds for building the vector field's graph"),
    "probe_status": Column("i1", "ok if every operator is ok, else the first other status"),
    "probe_flags": Column(
        "i4", "facts about the probe, a bit mask (flag_masks)", since=(1, 2), default=0
    ),
    "probe_message": Column(
        MESSAGE_DTYPE, "warnings about the probe as a whole, or empty", since=(1, 2), default=""
    ),
    "probe_train_time": Column(
        "f8", "training seconds since the previous probe", since=(1, 2), default=math.nan
    ),
    "probe_overhead": Column(
        "f8", "seconds probing over seconds training, so far", since=(1, 2), default=math.nan
    ),
    "probe_cost_steps": Column(
        "f8", "seconds of this probe in mean training steps", since=(1, 2), default=math.nan
    ),
    "probe_step": Column("i8", "training step of the probe (dimension scale 'probe_step')"),
}
#: Status datasets: int8 codes with CF ``flag_values`` and ``flag_meanings``.
STATUS_COLUMNS = frozenset({"status", "probe_status"})
#: Messages: fixed-length UTF-8 with ``_Encoding`` so xarray decodes them to str.
MESSAGE_COLUMNS = frozenset({"message", "probe_message"})
#: CF attributes of the bit mask ``probe_flags``.
FLAG_ATTRS = {
    "flag_masks": np.array([f.bit for f in PROBE_FLAGS], dtype=np.int32),
    "flag_meanings": " ".join(f.name for f in PROBE_FLAGS),
}
LOSS_GROUP = "loss"
RESERVED = frozenset({LOSS_GROUP, *PROBE_COLUMNS})
#: Names an operator's scalars, arrays and coordinates may not take.
GROUP_RESERVED = frozenset({*OPERATOR_COLUMNS, EIG_DIM})


def parse_version(version: str) -> tuple[int, int]:
    """``"1.2"`` as ``(1, 2)``; ValueError for anything else."""
    major, _, minor = str(version).partition(".")
    return int(major), int(minor or 0)


def chunk_rows(row_bytes: int) -> int:
    """Rows per chunk: :data:`CHUNK_ROWS`, fewer so a chunk stays within CHUNK_BYTES."""
    return max(1, min(CHUNK_ROWS, CHUNK_BYTES // max(1, int(row_bytes))))


def check_name(what: str, name: Any) -> str:
    """``name`` if it can name a dataset or group; ValueError otherwise."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{what} name {name!r} must be a non-empty string without '/'")
    return name


def _check_int(what: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def array_dtype(what: str, dtype: Any) -> str:
    """The canonical dtype string (``"f8"``, ``"i4"``, ``"b1"``, ...) of an extra array."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{what}: dtype {dtype!r} is not a numpy dtype") from None
    if dt.kind not in ARRAY_FILL:
        raise ValueError(
            f"{what}: dtype {dtype!r} is not a number or bool (use f8, f4, i8, i4, u1, b1, ...)"
        )
    return f"{dt.kind}{dt.itemsize}"


def _coord_values(what: str, values: Any) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray)):
        raise ValueError(f"{what} must be a list of strings or numbers, got {values!r}")
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    strings = all(isinstance(v, str) for v in values)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not values or not (strings or numbers):
        raise ValueError(f"{what} must be a non-empty list of all strings or all numbers")
    if numbers and not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} holds NaN or infinity; coordinate labels must be finite")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} has repeated values; coordinate labels must be unique")
    return values


def _normalise_coords(op: str, coords: Any, taken: set[str]) -> dict[str, list[Any]]:
    if not isinstance(coords, Mapping):
        raise ValueError(f"operator {op!r}: 'coords' must be a mapping {{dim: [values]}}")
    out = {}
    for dim, values in coords.items():
        check_name(f"coordinate of operator {op!r}", dim)
        if dim in taken or dim in (STEP_DIM, EIG_DIM):
            raise ValueError(
                f"coordinate {dim!r} of operator {op!r} clashes with a dataset, "
                f"a scalar or a reserved name ({', '.join(sorted(taken | {EIG_DIM}))})"
            )
        out[dim] = _coord_values(f"coordinate {dim!r} of operator {op!r}", values)
        taken.add(dim)
    return out


def _normalise_arrays(
    op: str, arrays: Any, coords: Mapping[str, list[Any]], taken: set[str]
) -> dict[str, dict[str, Any]]:
    if not isinstance(arrays, Mapping):
        raise ValueError(f"operator {op!r}: 'arrays' must be a mapping {{name: spec}}")
    out = {}
    for name, spec in arrays.items():
        what = f"array {name!r} of operator {op!r}"
        check_name(f"array of operator {op!r}", name)
        if name in taken:
            raise ValueError(f"{what} clashes with a dataset, scalar or coordinate of that name")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("dims"), (list, tuple)):
            raise ValueError(f"{what} needs 'dims', a list of dimension names")
        dims = [str(d) for d in spec["dims"]]
        unknown = [d for d in dims if d != EIG_DIM and d not in coords]
        if unknown:
            raise ValueError(
                f"{what}: dimensions {unknown} have no coordinates; give them in the "
                f"operator's 'coords' ({{dim: [values]}}), or use 'eig'"
            )
        if len(set(dims)) != len(dims):
            raise ValueError(f"{what}: dimension names {dims} repeat")
        out[name] = {
            "dims": dims,
            "dtype": array_dtype(what, spec.get("dtype", "f8")),
            "description": str(spec.get("description", "")),
        }
        taken.add(name)
    return out


def _normalise_operator(name: str, spec: Any, width: int) -> dict[str, Any]:
    check_name("operator", name)
    if name in RESERVED:
        raise ValueError(
            f"operator name {name!r} is reserved in a trace "
            f"(reserved: {', '.join(sorted(RESERVED))})"
        )
    if not isinstance(spec, Mapping):
        raise ValueError(f"operator {name!r}: the specification must be a mapping")
    missing = {"kind", "n"} - set(spec)
    if missing:
        raise ValueError(
            f"operator {name!r} needs keys 'kind' and 'n' (missing: {', '.join(sorted(missing))})"
        )
    kind = str(spec["kind"])
    scalars = spec.get("scalars", DEFAULT_SCALARS.get(kind, ()))
    if isinstance(scalars, (str, bytes)) or not isinstance(scalars, (list, tuple)):
        raise ValueError(f"operator {name!r}: 'scalars' must be a list of names")
    taken = set(GROUP_RESERVED)
    for scalar in scalars:
        check_name(f"scalar of operator {name!r}", scalar)
        if scalar in taken:
            raise ValueError(
                f"scalar name {scalar!r} of operator {name!r} clashes "
                f"with a dataset of the same name"
            )
        taken.add(scalar)
    coords = _normalise_coords(name, spec.get("coords", {}), taken)
    return {
        "kind": kind,
        "which": str(spec.get("which", "")),
        "n": _check_int(f"n of operator {name!r}", spec["n"], 0),
        "scalars": list(scalars),
        "width": _check_int(f"width of operator {name!r}", spec.get("width", width), 1),
        "arrays": _normalise_arrays(name, spec.get("arrays", {}), coords, taken),
        "coords": coords,
    }


def normalise_layout(
    operators: Mapping[str, Mapping[str, Any]], players: Mapping[str, int], width: int
) -> dict[str, Any]:
    """The ``layout`` attribute: operators and player sizes, checked and completed.

    Every operator gets ``kind``, ``which``, ``n``, ``scalars``, ``width`` (default:
    ``width``), ``arrays`` and ``coords``; ValueError names what is malformed.
    """
    if not isinstance(operators, Mapping) or not operators:
        raise ValueError("a trace needs at least one operator")
    if not isinstance(players, Mapping):
        raise ValueError("players must be a mapping {player: number of parameters}")
    width = _check_int("width", width, 1)
    return {
        "operators": {
            name: _normalise_operator(name, spec, width) for name, spec in operators.items()
        },
        "players": {
            check_name("player", p): _check_int(f"size of player {p!r}", n, 0)
            for p, n in players.items()
        },
    }


def array_shape(spec: Mapping[str, Any], array: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape of one row of an extra array: ``width`` along eig, else its coordinate's."""
    return tuple(spec["width"] if d == EIG_DIM else len(spec["coords"][d]) for d in array["dims"])


def dataset_specs(layout: Mapping[str, Any]) -> dict[str, tuple[Any, tuple[int, ...], Any]]:
    """Every per-probe dataset: path -> (dtype, row shape, fill), ``probe_step`` last."""
    specs: dict[str, tuple[Any, tuple[int, ...], Any]] = {}
    for op, spec in layout["operators"].items():
        for name, col in OPERATOR_COLUMNS.items():
            specs[f"{op}/{name}"] = (col.dtype, (spec["width"],) if col.wide else (), None)
        for scalar in spec["scalars"]:
            specs[f"{op}/{scalar}"] = ("f8", (), None)
        for name, array in spec["arrays"].items():
            fill = ARRAY_FILL[np.dtype(array["dtype"]).kind]
            specs[f"{op}/{name}"] = (array["dtype"], array_shape(spec, array), fill)
    for player in layout["players"]:
        specs[f"{LOSS_GROUP}/{player}"] = ("f8", (), None)
    for name, col in PROBE_COLUMNS.items():
        specs[name] = (col.dtype, (), None)
    return specs


def dataset_paths(layout: Mapping[str, Any]) -> list[str]:
    """Every per-probe dataset of a trace with this layout, ``probe_step`` last."""
    return list(dataset_specs(layout))


def since(path: str, layout: Mapping[str, Any]) -> tuple[int, int]:
    """The schema version that added the per-probe dataset ``path``."""
    if path in PROBE_COLUMNS:
        return PROBE_COLUMNS[path].since
    op, _, name = path.partition("/")
    if name in layout["operators"].get(op, {}).get("arrays", {}):
        return (1, 2)
    return (1, 0)


def layout_difference(
    old: Mapping[str, Any], old_width: int, new: Mapping[str, Any], new_width: int
) -> Optional[str]:
    """What differs between the file's layout and the writer's, or None."""
    old_ops, new_ops = old["operators"], new["operators"]
    if list(old_ops) != list(new_ops):
        return f"operators {list(old_ops)} in the file, {list(new_ops)} now"
    if dict(old["players"]) != dict(new["players"]):
        return (
            f"players and parameter counts {dict(old['players'])} in the file, "
            f"{dict(new['players'])} now"
        )
    if old_width != new_width:
        return f"width {old_width} in the file, {new_width} now"
    for name, spec in new_ops.items():
        for key in ("kind", "which", "n", "scalars", "width", "coords", "arrays"):
            if old_ops[name].get(key) != spec[key]:
                return (
                    f"{key} of operator {name!r}: {old_ops[name].get(key)!r} in the "
                    f"file, {spec[key]!r} now"
                )
    return None
