r"""What the figures read from a trace.

Checked operators, decimated probes, per-step tables, extra arrays (trace schema 1.2),
and the Gaussian-broadened spectral density. numpy and specdiag's trace reader only.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from ..errors import TraceError
from ..trace import Trace, open_trace

__all__ = ["TraceLike", "MAX_PROBES", "Cloud", "decimate", "cloud", "broadened_density"]

TraceLike = Union[Trace, str, "os.PathLike[str]"]

#: Probes drawn as points at most; more are decimated evenly (first and last kept).
MAX_PROBES = 2000
#: Scatter layers with more points than this are rasterized in PDF and SVG files.
RASTER_POINTS = 400


@dataclass(frozen=True)
class Cloud:
    """The finite eigenvalues of some probes of one operator, one entry per eigenvalue."""

    steps: np.ndarray  # int64 (M,): training step of the probe
    values: np.ndarray  # complex128 (M,)
    converged: np.ndarray  # bool (M,)
    note: str  # how the probes were decimated, or ""


@contextmanager
def opened(trace: TraceLike, swmr: bool = False) -> Iterator[Trace]:
    """``trace`` itself if it is a :class:`Trace`, else the file opened for the block."""
    if isinstance(trace, Trace):
        yield trace
        return
    tr = open_trace(trace, swmr=swmr)
    try:
        yield tr
    finally:
        tr.close()


def check_plottable(tr: Trace, operator: Optional[str] = None) -> None:
    """TraceError for a trace without probes, ValueError for an unknown operator."""
    if len(tr) == 0:
        raise TraceError(
            f"{tr.path} has no probes yet; plot it once the monitor has written its first probe"
        )
    if operator is not None and operator not in tr.operators:
        raise ValueError(
            f"{tr.path} has no operator {operator!r}; pass one of its "
            f"operators: {', '.join(tr.operators)}"
        )


def spec(tr: Trace, operator: str) -> dict[str, Any]:
    """The operator's entry of the trace layout (kind, which, n, scalars, ...)."""
    return tr.meta["layout"]["operators"][operator]


def kind(tr: Trace, operator: str) -> str:
    """The operator's kind: ``jacobian``, ``hessian``, ``update``, ``helmholtz``, ``density``."""
    return str(spec(tr, operator)["kind"])


def is_hessian(tr: Trace, operator: str) -> bool:
    """Whether the operator is a player's Hessian (real eigenvalues)."""
    return kind(tr, operator) == "hessian"


def of_kind(tr: Trace, *kinds: str) -> list[str]:
    """The trace's operators of the given kinds, in trace order."""
    return [op for op in tr.operators if kind(tr, op) in kinds]


def require_complex(tr: Trace, operator: str, what: str) -> None:
    """ValueError for a figure of the complex plane asked of an operator without one."""
    if kind(tr, operator) in ("hessian", "density"):
        raise ValueError(
            f"{what} draws complex eigenvalues, and operator {operator!r} is a "
            f"{kind(tr, operator)} operator (real spectrum): use spectrum_figure for a "
            "Hessian and density_figure for a density"
        )


def trace_name(tr: Trace) -> str:
    """The trace's file name, for titles."""
    return Path(tr.path).name


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ..., ``11th``, ``21st``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def decimate(n: int, limit: int, what: str = "probe") -> tuple[np.ndarray, str]:
    r"""``min(n, limit)`` of ``n`` indices, evenly spread, the first and the last kept.

    Returns the indices :math:`\operatorname{round}(i (n - 1) / (\text{limit} - 1))`,
    :math:`i = 0, \dots, \text{limit} - 1` (all of them when :math:`n \le` limit), and a
    note for the figure (``""`` when all are kept).
    """
    if limit < 2:
        raise ValueError(f"the number of {what}s to show must be at least 2, got {limit}")
    if n <= limit:
        return np.arange(n), ""
    gap = (n - 1) / (limit - 1)
    rows = np.round(np.arange(limit) * gap).astype(np.int64)
    about = "" if gap.is_integer() else "about "
    return rows, f"{about}every {ordinal(round(gap))} {what} shown ({limit:,} of {n:,})"


def cloud(tr: Trace, operator: str, max_probes: Optional[int] = None) -> Cloud:
    """The finite eigenvalues of ``operator``: every probe's, or ``max_probes`` spread evenly."""
    rows, note = (np.arange(len(tr)), "") if max_probes is None else decimate(len(tr), max_probes)
    eig = tr.eigenvalues(operator)[rows]
    finite = np.isfinite(eig)
    steps = np.broadcast_to(tr.steps(operator)[rows, None], eig.shape)
    return Cloud(steps[finite], eig[finite], tr.converged(operator)[rows][finite], note)


def by_step(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct steps and a NaN-padded table of the values of each step's rows.

    The table is ``(n_steps, most rows at one step, ...)``, one row per probe batch;
    ``values`` may have trailing axes.
    """
    order = np.argsort(steps, kind="stable")
    uniq, first, counts = np.unique(steps[order], return_index=True, return_counts=True)
    group = np.repeat(np.arange(uniq.size), counts)
    values = np.asarray(values, dtype=float)
    table = np.full((uniq.size, counts.max(), *values.shape[1:]), np.nan)
    table[group, np.arange(steps.size) - first[group]] = values[order]
    return uniq, table


def rowwise(reduce: Callable[..., np.ndarray], table: np.ndarray) -> np.ndarray:
    """``reduce(table, axis=1)`` of a nan-aware reduction; all-NaN rows give NaN quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return reduce(table, axis=1)


def median_by_step(tr: Trace, operator: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct steps of ``operator`` and the median of ``values`` over their batches."""
    steps, table = by_step(tr.steps(operator), values)
    return steps, rowwise(np.nanmedian, table)


def has_batches(tr: Trace, operator: str) -> bool:
    """Whether some step has several probe batches."""
    return bool((tr.batch_index(operator) > 0).any())


def failed_steps(tr: Trace, operators: Sequence[str]) -> np.ndarray:
    """The steps at which a solve of one of ``operators`` failed (status ≠ ok)."""
    return np.unique(np.concatenate([tr.steps(op)[tr.status(op) != "ok"] for op in operators]))


def update_rule(tr: Trace) -> dict[str, Any]:
    """The run's update rule as stored by a monitor (``config["update"]``), or ``{}``."""
    rule = (tr.meta.get("config") or {}).get("update")
    return rule if isinstance(rule, dict) else {}


def stored_lr(tr: Trace) -> Optional[float]:
    """The learning rate the monitor stored with the run, or None.

    Its update rule's (``config["update"]["lr"]``, when one number), else
    ``config["metadata"]["lr"]``.
    """
    metadata = (tr.meta.get("config") or {}).get("metadata") or {}
    lr = update_rule(tr).get("lr")
    if not isinstance(lr, (int, float)):
        lr = metadata.get("lr") if isinstance(metadata, dict) else None
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
        return float(lr)
    return None


def check_lr(lr: Optional[float]) -> Optional[float]:
    """``lr`` as a float; ValueError unless it is None or a positive finite number."""
    if lr is not None and not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive step size, got {lr!r}")
    return None if lr is None else float(lr)


def computed_count(tr: Trace, operator: str) -> int:
    """The most finite eigenvalues one probe of ``operator`` holds (its ``k``)."""
    eig = tr.eigenvalues(operator)
    return int(np.isfinite(eig).sum(axis=1).max()) if eig.size else 0


# --------------------------------------------------------------------------- extra arrays


def arrays(tr: Trace, operator: str) -> dict[str, np.ndarray]:
    """The operator's extra arrays (shares, nodes, ...): ``{name: (N, ...)}``, maybe empty."""
    return tr.arrays(operator)


def coords(tr: Trace, operator: str) -> dict[str, np.ndarray]:
    """The operator's coordinates (``{dim: labels}``, e.g. tensor names), maybe empty."""
    return tr.coords(operator)


# --------------------------------------------------------------------------- densities


def broadened_density(
    nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float
) -> np.ndarray:
    r"""The Gaussian-broadened spectral density of one probe's quadrature on a grid.

    .. math::

        \phi(x) = \frac{1}{R} \sum_{r} \sum_j w_{rj}\,
                  \frac{1}{\sigma\sqrt{2\pi}} e^{-(x - \theta_{rj})^2 / 2\sigma^2}

    over the :math:`R` rows (start vectors of stochastic Lanczos quadrature) that hold
    nodes :math:`\theta_{rj}` with weights :math:`w_{rj}`; NaN entries are padding. Each
    row's weights sum to 1, so :math:`\phi` integrates to 1 over the real line.

    Parameters
    ----------
    nodes, weights : array, shape (R, m)
    grid : array, shape (G,)
    sigma : float
        The broadening, > 0.

    Returns
    -------
    numpy.ndarray
        ``(G,)``; all NaN when no row holds a node.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    nodes = np.atleast_2d(np.asarray(nodes, float))
    weights = np.atleast_2d(np.asarray(weights, float))
    valid = np.isfinite(nodes) & np.isfinite(weights)
    rows = int(valid.any(axis=1).sum())
    grid = np.asarray(grid, float)
    if rows == 0:
        return np.full(grid.shape, np.nan)
    z = (grid[:, None] - nodes[valid][None, :]) / sigma
    return (np.exp(-0.5 * z * z) @ weights[valid]) / (rows * sigma * math.sqrt(2 * math.pi))
