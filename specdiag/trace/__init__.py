"""The HDF5 trace: one row per probe, written while training runs, read without torch.

A trace holds, for every probe, the eigenvalues of each probed operator (the game
Jacobian and the players' Hessians), their residuals and convergence flags, the solver's
cost, a status, a few summary numbers, extra per-probe arrays, and the players' losses.
The format is specified field by field in ``docs/trace-format.md``:

* :mod:`~specdiag.trace.schema` -- the datasets, statuses and scalars a trace holds;
* :mod:`~specdiag.trace.writer` -- :class:`TraceWriter`, crash-safe appends (SWMR optional);
* :mod:`~specdiag.trace.layout` -- a new trace's groups, datasets and dimension scales;
* :mod:`~specdiag.trace.encode` -- a probe record as one value per dataset;
* :mod:`~specdiag.trace.storage` -- room on the disk: refusals, reservations, errors;
* :mod:`~specdiag.trace.lock` -- the one-writer lock file ``<trace>.lock``;
* :mod:`~specdiag.trace.reader` -- :class:`Trace` and :func:`open_trace`;
* :mod:`~specdiag.trace.frames` -- a trace as xarray Datasets and a pandas DataFrame;
* :mod:`~specdiag.trace.summary` -- the probe table and warnings of ``specdiag summary``.

This package imports numpy, h5py and specdiag's torch-free modules only, so reading
and plotting a trace works on a machine that only has the file; xarray and pandas are
imported only by :meth:`Trace.to_xarray` and :meth:`Trace.scalars_frame`.
"""

from ..errors import TraceError
from .files import TraceWriteError, strict_json
from .reader import Trace, open_trace
from .schema import DEFAULT_SCALARS, MESSAGE_BYTES, SCHEMA, SCHEMA_VERSION, STATUSES
from .writer import TraceWriter

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "DEFAULT_SCALARS",
    "MESSAGE_BYTES",
    "TraceWriter",
    "TraceError",
    "TraceWriteError",
    "Trace",
    "open_trace",
    "strict_json",
]
