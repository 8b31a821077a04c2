"""``specdiag summary``: the probe table and warnings of a trace.

The implementation lives in :mod:`specdiag.trace.summary` (the trace layer, torch-free);
this module keeps the documented import path ``specdiag.summary``.
"""

from .trace.summary import (
    BULK_GAP,
    BULK_LEVEL,
    format_summary,
    overhead_line,
    probe_rows,
    summary_dict,
    trace_warnings,
)

__all__ = [
    "probe_rows",
    "trace_warnings",
    "summary_dict",
    "format_summary",
    "overhead_line",
    "BULK_GAP",
    "BULK_LEVEL",
]
