"""The trace format: its version, its datasets, and the layout of operators and players.

One place defines what a trace holds (``docs/trace-format.md`` describes it field by
field): the per-probe datasets of each operator group and of the root, the statuses and
scalars they store, and the ``layout`` attribute that names the operators and players.
The writer, the reader and the summary build on these tables. numpy and h5py only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import h5py
import numpy as np

from ..registry import SCALARS, STATUS_NAMES, scalar_names

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
SCHEMA_VERSION = "1.1"
#: Status names (:mod:`specdiag.registry.statuses`); a status dataset stores the index
#: into this tuple (int8).
STATUSES = STATUS_NAMES
#: Summary scalars stored per operator kind unless the operator names its own
#: (:mod:`specdiag.registry.scalars`; update and helmholtz since schema 1.1).
DEFAULT_SCALARS = {kind: scalar_names(kind) for kind in dict.fromkeys(s.kind for s in SCALARS)}
#: Size in bytes of the fixed-length UTF-8 ``message`` field; longer messages are cut.
MESSAGE_BYTES = 256

CONVENTION = "descent"
SCHEMA_MAJOR = int(SCHEMA_VERSION.split(".")[0])
#: Rows per chunk of every dataset.
CHUNK_ROWS = 64
MESSAGE_DTYPE = h5py.string_dtype("utf-8", length=MESSAGE_BYTES)

#: Per-probe datasets of an operator group: name -> (dtype, has a width axis, description).
OPERATOR_COLUMNS: dict[str, tuple[Any, bool, str]] = {
    "step": ("i8", False, "training step of the probe"),
    "batch_index": ("i4", False, "index of the probe batch within the probe"),
    "eig_real": ("f8", True, "real parts of the eigenvalues (descent convention), NaN-padded"),
    "eig_imag": ("f8", True, "imaginary parts of the eigenvalues, NaN-padded"),
    "residual": ("f8", True, "relative residual of each eigenpair, NaN-padded"),
    "converged": (np.bool_, True, "whether each eigenpair converged, False-padded"),
    "n_matvec": ("i8", False, "matrix-vector products spent by the solver"),
    "wall_time": ("f8", False, "seconds spent by the solver"),
    "status": ("i1", False, "outcome of the solve, see flag_meanings"),
    "message": (MESSAGE_DTYPE, False, "what went wrong, or empty (UTF-8, cut to fit)"),
}
#: Per-probe datasets at the root: name -> (dtype, description). ``probe_step`` is
#: written last, after a flush, so a row it shows is complete in every other dataset.
PROBE_COLUMNS: dict[str, tuple[str, str]] = {
    "probe_batch_index": ("i4", "index of the probe batch within the probe"),
    "probe_seed": ("i8", "random seed of the probe (-1: none)"),
    "probe_wall_time": ("f8", "seconds for the whole probe, building the graph included"),
    "probe_build_time": ("f8", "seconds for building the vector field's graph"),
    "probe_status": ("i1", "ok if every operator is ok, else the first other status"),
    "probe_step": ("i8", "training step of the probe"),
}
LOSS_GROUP = "loss"
RESERVED = frozenset({LOSS_GROUP, *PROBE_COLUMNS})


def check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{what} name {name!r} must be a non-empty string without '/'")
    return name


def normalise_layout(
    operators: Mapping[str, Mapping[str, Any]], players: Mapping[str, int]
) -> dict[str, Any]:
    """The ``layout`` attribute: operators (kind, which, n, scalars) and player sizes."""
    if not operators:
        raise ValueError("a trace needs at least one operator")
    ops: dict[str, dict[str, Any]] = {}
    for name, spec in operators.items():
        check_name("operator", name)
        if name in RESERVED:
            raise ValueError(
                f"operator name {name!r} is reserved in a trace "
                f"(reserved: {', '.join(sorted(RESERVED))})"
            )
        missing = {"kind", "n"} - set(spec)
        if missing:
            raise ValueError(
                f"operator {name!r} needs keys 'kind' and 'n' "
                f"(missing: {', '.join(sorted(missing))})"
            )
        kind = str(spec["kind"])
        scalars = tuple(spec.get("scalars", DEFAULT_SCALARS.get(kind, ())))
        for scalar in scalars:
            check_name(f"scalar of operator {name!r}", scalar)
            if scalar in OPERATOR_COLUMNS:
                raise ValueError(
                    f"scalar name {scalar!r} of operator {name!r} clashes "
                    f"with a dataset of the same name"
                )
        ops[name] = {
            "kind": kind,
            "which": str(spec.get("which", "")),
            "n": int(spec["n"]),
            "scalars": list(scalars),
        }
    return {
        "operators": ops,
        "players": {check_name("player", p): int(n) for p, n in players.items()},
    }


def dataset_paths(layout: Mapping[str, Any]) -> list[str]:
    """Every per-probe dataset of a trace with this layout, ``probe_step`` last."""
    paths = [
        f"{op}/{col}"
        for op, spec in layout["operators"].items()
        for col in (*OPERATOR_COLUMNS, *spec["scalars"])
    ]
    paths += [f"{LOSS_GROUP}/{p}" for p in layout["players"]]
    return paths + list(PROBE_COLUMNS)


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
        for key in ("kind", "which", "n", "scalars"):
            if old_ops[name].get(key) != spec[key]:
                return (
                    f"{key} of operator {name!r}: {old_ops[name].get(key)!r} in the "
                    f"file, {spec[key]!r} now"
                )
    return None
