r"""``specdiag summary``: a trace as a table of probes, with what went wrong.

One row per probe (per probe batch when there are several): the step, the probe's
status, for every operator how many eigenvalues converged and how many products the
solve took, the game Jacobian's scalars (:math:`\min \operatorname{Re}\lambda`,
:math:`\max |\operatorname{Im}\lambda|`, :math:`\max |\operatorname{Im}\lambda /
\operatorname{Re}\lambda|`, :math:`|\lambda|_{\max}`) and each player's Hessian's
largest and smallest computed eigenvalue. Below the table, warnings: probes that failed
or did not converge, and probes whose ``k`` reaches into the bulk of the spectrum.

Reads the trace with :mod:`specdiag.trace` only: no torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .reader import Trace

__all__ = ["probe_rows", "trace_warnings", "summary_dict", "format_summary", "BULK_GAP"]

#: A solve "reaches into the bulk" when its last two eigenvalues (in the order of
#: ``which``) are closer than ``BULK_GAP * tol * |λ|_max``: at the solver's tolerance
#: the k-th eigenvalue is then not told apart from its unseen neighbours.
BULK_GAP = 10.0

#: The table's scalar columns per operator kind: (scalar, heading; {op} is the operator).
_COLUMNS = {
    "jacobian": (
        ("min_real", "min Re λ"),
        ("max_imag", "max |Im λ|"),
        ("max_imag_over_real", "max |Im/Re|"),
        ("spectral_radius", "|λ|max"),
    ),
    "hessian": (("max", "{op} λmax"), ("min", "{op} λmin")),
    "update": (("spectral_radius", "ρ(∂T)"), ("max_stable_lr", "largest stable lr")),
    "helmholtz": (("rotation_fraction", "rotation"), ("zero_sum_defect", "zero-sum defect")),
}


def _kind(trace: Trace, op: str) -> str:
    return trace.meta["layout"]["operators"][op]["kind"]


def probe_rows(trace: Trace) -> list[dict[str, Any]]:
    """One dict per probe row: step, batch, status, seconds, and per operator
    ``status``, ``converged`` (count), ``eigenvalues`` (finite ones computed),
    ``n_matvec``, ``message`` and its scalars.

    Parameters
    ----------
    trace : Trace
        An open trace (:func:`specdiag.open_trace`).

    Returns
    -------
    list of dict
        JSON-serialisable (NaN for missing numbers).
    """
    probes = trace.probes()
    columns = {
        op: {
            "status": trace.status(op),
            "converged": trace.converged(op).sum(axis=1),
            "eigenvalues": np.isfinite(trace.eigenvalues(op)).sum(axis=1),
            "n_matvec": trace.n_matvec(op),
            "message": trace.messages(op),
            "scalars": trace.scalars(op),
        }
        for op in trace.operators
    }
    rows = []
    for i in range(len(trace)):
        row: dict[str, Any] = {
            "step": int(probes["step"][i]),
            "batch": int(probes["batch_index"][i]),
            "status": str(probes["status"][i]),
            "seconds": float(probes["wall_time"][i]),
            "operators": {},
        }
        for op, c in columns.items():
            row["operators"][op] = {
                "status": str(c["status"][i]),
                "converged": int(c["converged"][i]),
                "eigenvalues": int(c["eigenvalues"][i]),
                "n_matvec": int(c["n_matvec"][i]),
                "message": str(c["message"][i]),
                **{name: float(values[i]) for name, values in c["scalars"].items()},
            }
        rows.append(row)
    return rows


def _bulk_gap(values: np.ndarray, which: str) -> float:
    """Gap between the last two wanted eigenvalues, relative to the largest magnitude
    (``inf`` when it is not defined: fewer than three eigenvalues, or ``which="BE"``).
    """
    values = values[np.isfinite(values)]
    wanted = {
        "LM": np.abs(values),
        "SM": -np.abs(values),
        "LR": values.real,
        "SR": -values.real,
        "LA": values.real,
        "SA": -values.real,
        "LI": np.abs(values.imag),
        "SI": -np.abs(values.imag),
    }
    if values.size < 3 or which not in wanted:
        return math.inf
    keys = np.sort(wanted[which])[::-1]
    # a conjugate pair shares its key: compare the last two distinct keys
    keys = keys[np.concatenate([[True], np.diff(keys) < -1e-12 * np.abs(keys[:-1])])]
    if keys.size < 2:
        return math.inf
    return float((keys[-2] - keys[-1]) / max(np.abs(values).max(), np.finfo(float).tiny))


def trace_warnings(trace: Trace) -> list[str]:
    """What a reader should know about a trace's probes, one line each.

    * a solve that did not end ``ok`` (unconverged, product budget, NaN/Inf, error),
      with its message;
    * an update operator with :math:`\\rho(\\partial T) > 1` (the optimiser, at its step
      size, moves away locally);
    * a solve whose ``k`` reaches into the bulk: its last two wanted eigenvalues are
      closer than :data:`BULK_GAP` times the solver tolerance (relative to
      :math:`|\\lambda|_{\\max}`), so the last eigenvalues are unreliable: use a
      smaller ``k`` or a smaller ``tol``.
    """
    config = trace.meta.get("config", {})
    tol = float(config.get("tol", 1e-3) or 1e-3)
    layout = trace.meta["layout"]["operators"]
    probes = trace.probes()
    steps, batches = probes["step"], probes["batch_index"]
    several = bool(np.any(batches > 0))
    lines = []
    bulk: dict[str, list[int]] = {}
    for op in trace.operators:
        status, messages = trace.status(op), trace.messages(op)
        for i in np.flatnonzero(status != "ok"):
            where = f"step {steps[i]}" + (f" batch {batches[i]}" if several else "")
            lines.append(
                f"{where}: {op}: {status[i]}" + (f" ({messages[i]})" if messages[i] else "")
            )
        if layout[op]["kind"] not in ("jacobian", "hessian"):
            continue  # update eigenvalues cluster at 1 by nature; no bulk to reach
        for i, values in enumerate(trace.eigenvalues(op)):
            if _bulk_gap(values, layout[op]["which"]) < BULK_GAP * tol:
                bulk.setdefault(op, []).append(int(steps[i]))
    for op in (o for o in trace.operators if layout[o]["kind"] == "update"):
        rho = trace.scalars(op)["spectral_radius"]
        above = np.flatnonzero(rho > 1)
        if above.size:
            shown = ", ".join(map(str, steps[above][:8])) + (", ..." if above.size > 8 else "")
            lines.append(
                f"{op}: ρ(∂T) > 1 at {above.size} probe(s) (steps {shown}): at the "
                "step size used the optimiser moves away from the point along some "
                "direction"
            )
    for op, at in bulk.items():
        shown = ", ".join(map(str, at[:8])) + (", ..." if len(at) > 8 else "")
        lines.append(
            f"{op}: k reaches into the bulk at {len(at)} probe(s) (steps {shown}): "
            f"the last eigenvalues are closer than {BULK_GAP * tol:.0e}·|λ|max; "
            "use a smaller k or a smaller tol"
        )
    return lines


def _strict_json(value: Any) -> Any:
    """``value`` with NaN as ``None`` and infinities as ``"inf"``/``"-inf"`` (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def summary_dict(trace: Trace) -> dict[str, Any]:
    """The summary as a dict that strict JSON can hold (NaN as ``None``, infinities as
    ``"inf"``): file, convention, operators, config, rows (:func:`probe_rows`) and
    warnings (:func:`trace_warnings`).
    """
    return _strict_json(
        {
            "path": trace.path,
            "convention": trace.meta.get("convention"),
            "operators": list(trace.operators),
            "players": list(trace.players),
            "n_probes": len(trace),
            "config": trace.meta.get("config", {}),
            "probes": probe_rows(trace),
            "warnings": trace_warnings(trace),
        }
    )


def _number(x: float, digits: int = 4) -> str:
    return "nan" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.{digits}g}")


def format_summary(trace: Trace) -> str:
    """The summary as a plain-text table followed by the warnings."""
    rows = probe_rows(trace)
    several = any(r["batch"] > 0 for r in rows)
    ops = trace.operators
    header = ["step"] + (["batch"] if several else []) + ["status"]
    for op in ops:
        kind = _kind(trace, op)
        header += ([] if kind == "helmholtz" else [f"{op} conv"]) + [f"{op} products"]
        header += [title.format(op=op) for _, title in _COLUMNS.get(kind, ())]
    table = [header]
    for r in rows:
        line = [str(r["step"])] + ([str(r["batch"])] if several else []) + [r["status"]]
        for op in ops:
            o, kind = r["operators"][op], _kind(trace, op)
            if kind != "helmholtz":
                line.append(f"{o['converged']}/{o['eigenvalues']}")
            line.append(str(o["n_matvec"]))
            line += [
                _number(o[name], 7 if kind == "update" else 4) for name, _ in _COLUMNS.get(kind, ())
            ]
        table.append(line)
    widths = [max(len(row[j]) for row in table) for j in range(len(header))]
    text = [
        f"{trace.path}: {len(rows)} probe(s), operators {', '.join(ops)}; "
        f"eigenvalues in the {trace.meta.get('convention', 'descent')} convention "
        "(gradient flow stable where Re λ > 0)",
        "",
    ]
    text += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in table]
    warnings = trace_warnings(trace)
    text += ["", f"{len(warnings)} warning(s)" + (":" if warnings else "")]
    text += [f"  {w}" for w in warnings]
    return "\n".join(text)
