"""A trace as xarray Datasets and a pandas DataFrame (the ``xarray`` extra).

xarray and pandas are imported when these functions run, never with
:mod:`specdiag.trace`: reading a trace needs numpy and h5py only. Install them with
``pip install "specdiag[xarray]"`` (xarray, h5netcdf, pandas).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .schema import EIG_DIM, OPERATOR_COLUMNS, PROBE_COLUMNS, STEP_DIM

__all__ = ["to_xarray", "scalars_frame"]

#: Root columns that are the index (``step``, ``batch_index``) rather than data.
_INDEX_COLUMNS = ("probe_step", "probe_batch_index")


def _require(module: str) -> Any:
    """Import ``module``, or an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f'this needs {module}, which is not installed: pip install "specdiag[xarray]" '
            f"(xarray, h5netcdf and pandas)"
        ) from None


def _operator_variables(trace: Any, op: str) -> dict[str, Any]:
    """The operator's own datasets as ``{name: (dims, values, attrs)}``."""
    spec = trace.meta["layout"]["operators"][op]
    wide = (STEP_DIM, EIG_DIM)
    columns = {
        "eig_real": (wide, trace.eigenvalues(op).real),
        "eig_imag": (wide, trace.eigenvalues(op).imag),
        "residual": (wide, trace.residuals(op)),
        "converged": (wide, trace.converged(op)),
        "n_matvec": ((STEP_DIM,), trace.n_matvec(op)),
        "wall_time": ((STEP_DIM,), trace.wall_time(op)),
        "status": ((STEP_DIM,), trace.status(op)),
        "message": ((STEP_DIM,), trace.messages(op)),
    }
    variables = {
        name: (dims, values, {"description": OPERATOR_COLUMNS[name].description})
        for name, (dims, values) in columns.items()
    }
    for name, values in trace.scalars(op).items():
        variables[name] = ((STEP_DIM,), values, {"description": f"summary scalar {name}"})
    dims = trace.array_dims(op)
    for name, values in trace.arrays(op).items():
        description = spec["arrays"][name]["description"]
        variables[name] = (dims[name], values, {"description": description})
    return variables


def to_xarray(trace: Any, op: str) -> Any:
    """Operator ``op`` of ``trace`` as an ``xarray.Dataset`` (see :meth:`Trace.to_xarray`).

    Dimensions ``step`` (one entry per probe row, in file order; an index, so
    ``.sel(step=s)`` picks the rows of step ``s``), ``eig`` (``0 .. width - 1``) and
    the operator's coordinates. ``batch_index`` is a coordinate along ``step``. The
    operator's datasets keep their names (``status`` and ``message`` as str); the root
    columns are ``probe_seed``, ``probe_status``, ... and the losses ``loss_<player>``
    (a root or loss name an operator dataset already has is left out).
    """
    xr = _require("xarray")
    spec = trace.meta["layout"]["operators"][op]
    coords: dict[str, Any] = {
        STEP_DIM: (STEP_DIM, trace.steps(op)),
        EIG_DIM: (EIG_DIM, np.arange(spec["width"], dtype=np.int32)),
        "batch_index": (STEP_DIM, trace.batch_index(op)),
    }
    coords.update({dim: (dim, values) for dim, values in trace.coords(op).items()})
    variables = _operator_variables(trace, op)
    for name, values in trace.probes().items():
        column = f"probe_{name}"
        if column not in _INDEX_COLUMNS and column not in coords:
            description = PROBE_COLUMNS[column].description
            variables.setdefault(column, ((STEP_DIM,), values, {"description": description}))
    for player, values in trace.losses().items():
        description = f"loss of {player} on the probe batch"
        variables.setdefault(f"loss_{player}", ((STEP_DIM,), values, {"description": description}))
    attrs = {
        "operator": op,
        "kind": spec["kind"],
        "which": spec["which"],
        "n": spec["n"],
        "width": spec["width"],
        "convention": trace.meta.get("convention", ""),
        "schema_version": trace.meta.get("schema_version", ""),
        "source": trace.path,
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def scalars_frame(trace: Any) -> Any:
    """Every per-probe number of ``trace`` as a ``pandas.DataFrame``.

    One row per probe row, indexed by ``(step, batch_index)``. Columns, named like
    the datasets: ``<operator>/<scalar>`` for every summary scalar of every operator,
    then ``<operator>/n_matvec``, ``<operator>/wall_time`` and ``<operator>/status``
    (str); ``loss/<player>``; and the root columns ``probe_seed``,
    ``probe_wall_time``, ``probe_build_time``, ``probe_status`` (str),
    ``probe_flags``, ``probe_message`` (str), ``probe_train_time``,
    ``probe_overhead`` and ``probe_cost_steps``.
    """
    pd = _require("pandas")
    probes = trace.probes()
    index = pd.MultiIndex.from_arrays(
        [probes["step"], probes["batch_index"]], names=["step", "batch_index"]
    )
    columns: dict[str, np.ndarray] = {}
    for op in trace.operators:
        columns.update({f"{op}/{name}": v for name, v in trace.scalars(op).items()})
        columns[f"{op}/n_matvec"] = trace.n_matvec(op)
        columns[f"{op}/wall_time"] = trace.wall_time(op)
        columns[f"{op}/status"] = trace.status(op)
    columns.update({f"loss/{player}": v for player, v in trace.losses().items()})
    for name, values in probes.items():
        if f"probe_{name}" not in _INDEX_COLUMNS:
            columns[f"probe_{name}"] = values
    return pd.DataFrame(columns, index=index)
