"""Reading a trace into memory, without torch."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import h5py
import numpy as np

from ..errors import TraceError
from .files import attr_str, open_h5, read_meta, unreadable
from .schema import LOSS_GROUP, PROBE_COLUMNS, dataset_paths

__all__ = ["Trace", "open_trace"]

PathLike = Union[str, "os.PathLike[str]"]


class Trace:
    """A specdiag trace, read into memory (see :func:`open_trace`).

    Attributes
    ----------
    path : str
        The file.
    meta : dict
        The root attributes: ``schema``, ``schema_version``, ``convention``,
        ``specdiag_version``, ``created``, ``width`` and, decoded from JSON, ``config``,
        ``versions`` and ``layout``.
    """

    def __init__(
        self, path: PathLike, *, swmr: bool = False, locking: Optional[bool] = None
    ) -> None:
        self.path = os.fspath(path)
        self._swmr = bool(swmr)
        self._locking = locking
        self._file: Optional[h5py.File] = None
        self._data: dict[str, np.ndarray] = {}
        self._n = 0
        self.meta: dict[str, Any] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the file again: rows written since are added, purged rows go."""
        try:
            if self._swmr:
                if self._file is None:
                    self._file = open_h5(self.path, "r", locking=self._locking, swmr=True)
                self._load(self._file, refresh=True)
            else:
                with open_h5(self.path, "r", locking=self._locking) as f:
                    self._load(f, refresh=False)
        except (OSError, RuntimeError) as error:
            self.close()
            raise unreadable(self.path, error) from None
        except TraceError:
            self.close()
            raise

    def _load(self, f: h5py.File, *, refresh: bool) -> None:
        meta = read_meta(self.path, f)
        paths = dataset_paths(meta["layout"])
        datasets = {}
        for p in paths[::-1]:  # probe_step first: rows it shows are complete elsewhere
            ds = f.get(p)
            if not isinstance(ds, h5py.Dataset):
                raise TraceError(f"{self.path}: damaged specdiag trace (no dataset {p!r})")
            if refresh:
                ds.refresh()
            datasets[p] = ds
        n = min(ds.shape[0] for ds in datasets.values())
        data = {}
        for p, ds in datasets.items():
            if p.endswith("/message"):
                data[p] = np.asarray(ds.asstr()[:n], dtype=str)
            elif "flag_meanings" in ds.attrs:
                data[p] = _decode_status(ds, n)
            else:
                data[p] = ds[:n]
        self.meta, self._data, self._n = meta, data, n

    # -- probes

    @property
    def operators(self) -> tuple[str, ...]:
        """The probed operators, in the order they were declared."""
        return tuple(self.meta["layout"]["operators"])

    @property
    def players(self) -> tuple[str, ...]:
        """The players, in flat-vector order."""
        return tuple(self.meta["layout"]["players"])

    @property
    def width(self) -> int:
        """Columns of the eigenvalue arrays (``k + 1``)."""
        return int(self.meta["width"])

    def __len__(self) -> int:
        return self._n

    def probe_steps(self) -> np.ndarray:
        """The step of every probe, int64 ``(N,)``."""
        return self._data["probe_step"]

    def probes(self) -> dict[str, np.ndarray]:
        """Per-probe columns: ``step``, ``batch_index``, ``seed`` (-1: none),
        ``wall_time``, ``build_time`` and ``status`` (str).
        """
        return {p[len("probe_") :]: self._data[p] for p in PROBE_COLUMNS}

    def losses(self) -> dict[str, np.ndarray]:
        """``{player: loss on the probe batch}``, float64 ``(N,)`` each."""
        return {p: self._data[f"{LOSS_GROUP}/{p}"] for p in self.players}

    # -- per operator

    def _operator(self, op: str) -> dict[str, Any]:
        try:
            return self.meta["layout"]["operators"][op]
        except KeyError:
            raise KeyError(
                f"no operator {op!r} in {self.path}; its operators are {', '.join(self.operators)}"
            ) from None

    def _column(self, op: str, column: str) -> np.ndarray:
        self._operator(op)
        return self._data[f"{op}/{column}"]

    def steps(self, op: str) -> np.ndarray:
        """Training step of every probe, int64 ``(N,)``."""
        return self._column(op, "step")

    def batch_index(self, op: str) -> np.ndarray:
        """Probe-batch index of every probe, int32 ``(N,)``."""
        return self._column(op, "batch_index")

    def eigenvalues(self, op: str) -> np.ndarray:
        """Eigenvalues, complex128 ``(N, width)``, NaN-padded (descent convention)."""
        real, imag = self._column(op, "eig_real"), self._column(op, "eig_imag")
        values = np.empty(real.shape, dtype=np.complex128)
        values.real, values.imag = real, imag
        return values

    def residuals(self, op: str) -> np.ndarray:
        """Relative residuals, float64 ``(N, width)``, NaN-padded."""
        return self._column(op, "residual")

    def converged(self, op: str) -> np.ndarray:
        """Convergence flags, bool ``(N, width)``, False-padded."""
        return self._column(op, "converged")

    def n_matvec(self, op: str) -> np.ndarray:
        """Matrix-vector products per solve, int64 ``(N,)``."""
        return self._column(op, "n_matvec")

    def wall_time(self, op: str) -> np.ndarray:
        """Seconds per solve, float64 ``(N,)``."""
        return self._column(op, "wall_time")

    def status(self, op: str) -> np.ndarray:
        """Status of every solve (one of :data:`STATUSES`), str ``(N,)``."""
        return self._column(op, "status")

    def messages(self, op: str) -> np.ndarray:
        """What went wrong in every solve ("" when nothing), str ``(N,)``."""
        return self._column(op, "message")

    def scalars(self, op: str) -> dict[str, np.ndarray]:
        """``{scalar name: float64 (N,)}``, e.g. ``spectral_radius`` of the Jacobian."""
        return {name: self._column(op, name) for name in self._operator(op)["scalars"]}

    # -- lifetime

    def close(self) -> None:
        """Close the file (SWMR mode); the data read stays available."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Trace({self.path!r}, {self._n} probes, operators={list(self.operators)})"


def _decode_status(ds: h5py.Dataset, n: int) -> np.ndarray:
    """Status codes as names, using the file's own ``flag_values``/``flag_meanings``."""
    names = dict(
        zip(
            np.asarray(ds.attrs["flag_values"]).tolist(),
            attr_str(ds.attrs["flag_meanings"]).split(),
        )
    )
    codes, index = np.unique(ds[:n], return_inverse=True)
    return np.array([names.get(c, f"code {c}") for c in codes.tolist()], dtype=str)[index]


def open_trace(path: PathLike, *, swmr: bool = False, locking: Optional[bool] = None) -> Trace:
    """Read a specdiag trace.

    Parameters
    ----------
    path : str or os.PathLike
        The trace file. A trace still being written (default mode) can be read at any
        time; :meth:`Trace.refresh` picks up new probes.
    swmr : bool
        Follow a trace written with ``swmr=True`` live: the file stays open and
        :meth:`Trace.refresh` shows rows flushed since.
    locking : bool or None
        HDF5 file locking, as for :class:`TraceWriter`.

    Raises
    ------
    TraceError
        One line naming the file: missing, not HDF5, damaged or truncated, not a
        specdiag trace, or written by a newer specdiag (newer major schema version).
    """
    return Trace(path, swmr=swmr, locking=locking)
