r"""``specdiag summary``: a trace as a table of probes, with what went wrong.

One row per probe (per probe batch when there are several): the step, the probe's
status, for every operator how many eigenvalues converged and how many products the
solve took, and the scalars :mod:`specdiag.registry.scalars` marks for the summary
(the Jacobian's :math:`\min \operatorname{Re}\lambda`, :math:`\max |\operatorname{Im}
\lambda|`, :math:`\max |\operatorname{Im}\lambda / \operatorname{Re}\lambda|`,
:math:`|\lambda|_{\max}`, each Hessian's computed extremes, ...). Below the table,
warnings, one line per cause with the number of probes it concerns: solves that failed
or did not converge, facts flagged at a probe (an uncoupled game, a derivative
mismatch, a parameter changed in place, probes written late), an optimiser that moves
away, solves whose ``k`` reaches into the bulk; and what probing cost the run.

Reads the trace with :mod:`specdiag.trace` only: no torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..registry import PROBE_FLAGS, flag_names, scalar
from .reader import Trace

__all__ = [
    "probe_rows",
    "trace_warnings",
    "summary_dict",
    "format_summary",
    "overhead_line",
    "BULK_GAP",
    "BULK_LEVEL",
]

#: A solve "reaches into the bulk" when its last two wanted eigenvalues (in the order
#: of ``which``) are closer than ``BULK_GAP * tol * |λ|_max`` ...
BULK_GAP = 10.0
#: ... and both lie within ``BULK_LEVEL * |λ|_max`` of zero: the k-th eigenvalue is then
#: one of a dense cloud near zero, and which members of the cloud a solve returns is
#: arbitrary at the solver's tolerance. Clustered eigenvalues at the top of the spectrum
#: are not the bulk: each of them is computed to the tolerance.
BULK_LEVEL = 0.05
#: Steps listed in a warning at most.
_SHOWN = 8


def _kind(trace: Trace, op: str) -> str:
    return trace.meta["layout"]["operators"][op]["kind"]


def _columns(trace: Trace, op: str) -> list[tuple[str, str, int]]:
    """The table's scalar columns of an operator: ``(scalar, heading, digits)``.

    A Hessian's ``min`` is its smallest eigenvalue only when the bottom of the spectrum
    was computed (``which`` ``"SA"``, ``"BE"``); with ``"LA"`` it is the k-th largest,
    and its heading says so (likewise ``max`` under ``"SA"``).
    """
    which = trace.meta["layout"]["operators"][op].get("which", "")
    kind = _kind(trace, op)
    out = []
    for name in trace.scalars(op):
        entry = scalar(kind, name)
        if entry is None or not entry.summary:
            continue
        heading = entry.heading.format(op=op)
        if kind == "hessian" and (name, which) in (("min", "LA"), ("max", "SA")):
            heading = f"{op} λ_k ({'k-th largest' if which == 'LA' else 'k-th smallest'})"
        out.append((name, heading, entry.digits))
    return out


def probe_rows(trace: Trace) -> list[dict[str, Any]]:
    """One dict per probe row.

    Step, batch, status, seconds, and per operator ``status``, ``converged`` (count),
    ``eigenvalues`` (finite ones computed), ``n_matvec``, ``message`` and its scalars.

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
            "flags": flag_names(int(probes["flags"][i])) if "flags" in probes else [],
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
    """Gap between the last two wanted eigenvalues, relative to the largest magnitude.

    ``inf`` when it is not defined, or when they are not in the bulk near zero: fewer
    than three eigenvalues, ``which="BE"``, or either beyond :data:`BULK_LEVEL`.
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
    scale = max(float(np.abs(values).max()), np.finfo(float).tiny)
    order = np.argsort(-wanted[which], kind="stable")
    keys = wanted[which][order]
    # a conjugate pair shares its key: compare the last two distinct keys
    distinct = np.concatenate([[True], np.diff(keys) < -1e-12 * np.abs(keys[:-1])])
    last = values[order][distinct][-2:]
    if last.size < 2 or np.abs(last).max() > BULK_LEVEL * scale:
        return math.inf
    keys = keys[distinct]
    return float((keys[-2] - keys[-1]) / scale)


def _steps(steps: np.ndarray, at: np.ndarray) -> str:
    shown = ", ".join(map(str, steps[at][:_SHOWN]))
    return shown + (", ..." if at.size > _SHOWN else "")


def _failures(trace: Trace) -> list[str]:
    """One line per (operator, status) that is not ``ok``.

    How many probes, which steps, and the first message.
    """
    steps = trace.probes()["step"]
    lines = []
    for op in trace.operators:
        status, messages = trace.status(op), trace.messages(op)
        for name in dict.fromkeys(status[status != "ok"]):
            at = np.flatnonzero(status == name)
            first = messages[at[0]]
            lines.append(
                f"{op}: {name} at {at.size} of {len(trace)} probe(s) (steps "
                f"{_steps(steps, at)})" + (f": {first}" if first else "")
            )
    return lines


def _flagged(trace: Trace) -> list[str]:
    """One line per probe flag set at some probe, with what it means."""
    probes = trace.probes()
    flags = np.asarray(probes.get("flags", np.zeros(len(trace), int)), dtype=np.int64)
    lines = []
    for flag in PROBE_FLAGS:
        at = np.flatnonzero(flags & flag.bit)
        if at.size:
            lines.append(
                f"{flag.name} at {at.size} of {len(trace)} probe(s) (steps "
                f"{_steps(probes['step'], at)}): {flag.meaning}"
            )
    return lines


def _bulk(trace: Trace, tol: float) -> list[str]:
    layout = trace.meta["layout"]["operators"]
    steps = trace.probes()["step"]
    lines = []
    for op in trace.operators:
        if layout[op]["kind"] not in ("jacobian", "hessian"):
            continue  # update eigenvalues cluster at 1 by nature; no bulk to reach
        gaps = np.array([_bulk_gap(v, layout[op]["which"]) for v in trace.eigenvalues(op)])
        at = np.flatnonzero(gaps < BULK_GAP * tol)
        if at.size:
            lines.append(
                f"{op}: k reaches into the bulk at {at.size} of {len(trace)} probe(s) (steps "
                f"{_steps(steps, at)}): its last eigenvalues lie within "
                f"{BULK_LEVEL:g}·|λ|max of zero and closer together than "
                f"{BULK_GAP * tol:.0e}·|λ|max, so which of them a solve returns is arbitrary; "
                "use a smaller k"
            )
    return lines


def _diverging(trace: Trace) -> list[str]:
    steps = trace.probes()["step"]
    lines = []
    for op in (o for o in trace.operators if _kind(trace, o) == "update"):
        at = np.flatnonzero(trace.scalars(op)["spectral_radius"] > 1)
        if at.size:
            lines.append(
                f"{op}: ρ(∂T) > 1 at {at.size} of {len(trace)} probe(s) (steps "
                f"{_steps(steps, at)}): at the step size used the optimiser moves away from "
                "the point along some direction"
            )
    return lines


def trace_warnings(trace: Trace) -> list[str]:
    r"""What a reader should know about a trace's probes, one line per cause.

        * each kind of solve that did not end ``ok`` (unconverged, product budget, NaN/Inf,
          error) per operator, with how many probes and the first message;
        * each probe flag set (:data:`specdiag.registry.PROBE_FLAGS`: an uncoupled game, a
          derivative mismatch, a parameter changed in place, probes written late);
        * an update operator with :math:`
    ho(\partial T) > 1`;
        * a solve whose ``k`` reaches into the bulk (:data:`BULK_GAP`, :data:`BULK_LEVEL`).
    """
    tol = float(trace.meta.get("config", {}).get("tol", 1e-3) or 1e-3)
    return _failures(trace) + _flagged(trace) + _diverging(trace) + _bulk(trace, tol)


def overhead_line(trace: Trace) -> str:
    """What probing cost the run, from the probes' timing columns ("" without them)."""
    probes = trace.probes()
    overhead = np.asarray(probes.get("overhead", []), float)
    overhead = overhead[np.isfinite(overhead)]
    spent = float(np.nansum(probes["wall_time"]))
    if not overhead.size:
        return f"probes took {spent:.3g} s in all"
    cost = np.asarray(probes.get("cost_steps", []), float)
    cost = cost[np.isfinite(cost)]
    each = f", a probe ≈ {np.median(cost):,.0f} training steps" if cost.size else ""
    return (
        f"probes took {spent:.3g} s in all, {100 * overhead[-1]:.1f}% of the training "
        f"time (overhead){each}"
    )


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
    """The summary as a dict that strict JSON can hold (NaN as ``None``, infinities as ``"inf"``).

    File, convention, operators, config, rows (:func:`probe_rows`) and warnings
    (:func:`trace_warnings`).
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
            "cost": overhead_line(trace),
        }
    )


def _number(x: float, digits: int = 4) -> str:
    return "nan" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.{digits}g}")


def _table(trace: Trace, rows: list[dict[str, Any]]) -> list[list[str]]:
    several = any(r["batch"] > 0 for r in rows)
    columns = {op: _columns(trace, op) for op in trace.operators}
    header = ["step"] + (["batch"] if several else []) + ["status"]
    for op in trace.operators:
        header += (
            [f"{op} conv"] if _kind(trace, op) in ("jacobian", "hessian", "update") else []
        ) + [f"{op} products"]
        header += [heading for _, heading, _ in columns[op]]
    table = [header]
    for r in rows:
        line = [str(r["step"])] + ([str(r["batch"])] if several else []) + [r["status"]]
        for op in trace.operators:
            o = r["operators"][op]
            if _kind(trace, op) in ("jacobian", "hessian", "update"):
                line.append(f"{o['converged']}/{o['eigenvalues']}")
            line.append(str(o["n_matvec"]))
            line += [_number(o[name], digits) for name, _, digits in columns[op]]
        table.append(line)
    return table


def format_summary(trace: Trace) -> str:
    """The summary as a plain-text table followed by the warnings and the cost."""
    table = _table(trace, probe_rows(trace))
    widths = [max(len(row[j]) for row in table) for j in range(len(table[0]))]
    text = [
        f"{trace.path}: {len(trace)} probe(s), operators {', '.join(trace.operators)}; "
        f"eigenvalues in the {trace.meta.get('convention', 'descent')} convention "
        "(gradient flow stable where Re λ > 0)",
        "",
    ]
    text += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in table]
    warnings = trace_warnings(trace)
    text += [
        "",
        overhead_line(trace),
        "",
        f"{len(warnings)} warning(s)" + (":" if warnings else ""),
    ]
    text += [f"  {w}" for w in warnings]
    return "\n".join(text)
