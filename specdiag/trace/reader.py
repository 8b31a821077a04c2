"""Reading a trace into memory, without torch.

A reader of schema 1.2 reads traces of 1.0, 1.1 and 1.2 (and of later minor
versions, ignoring what it does not know); the root columns added in 1.2 read as
their defaults in older files (flags 0, message "", times NaN). A damaged or crafted
file gives a one-line :class:`~specdiag.errors.TraceError` naming the file.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import h5py
import numpy as np

from ..errors import TraceError
from .files import attr_str, one_line, open_h5, read_meta, unreadable
from .schema import (
    LOSS_GROUP,
    MESSAGE_COLUMNS,
    PROBE_COLUMNS,
    STATUS_COLUMNS,
    STATUSES,
    dataset_specs,
    parse_version,
    since,
)

__all__ = ["Trace", "open_trace"]

PathLike = Union[str, "os.PathLike[str]"]
#: What a damaged file may make numpy or h5py raise while it is decoded.
DAMAGE = (KeyError, TypeError, ValueError, IndexError, AttributeError, UnicodeError)


def _column_kind(path: str, operators: Any) -> str:
    """``"status"``, ``"message"`` or ``"data"``: how a per-probe dataset is decoded."""
    group, _, name = path.rpartition("/")
    if (group == "" or group in operators) and name in STATUS_COLUMNS:
        return "status"
    if (group == "" or group in operators) and name in MESSAGE_COLUMNS:
        return "message"
    return "data"


def _decode_text(values: np.ndarray) -> np.ndarray:
    """Strings as str, bad UTF-8 replaced by U+FFFD (a damaged byte costs one character)."""
    text = [
        v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
        for v in values.tolist()
    ]
    return np.array(text, dtype=str) if text else np.zeros(0, dtype="<U1")


def _decode_status(ds: h5py.Dataset, n: int) -> np.ndarray:
    """Status codes as names, using the file's own ``flag_values``/``flag_meanings``."""
    try:
        values = np.asarray(ds.attrs["flag_values"]).reshape(-1).tolist()
        meanings = attr_str(ds.attrs["flag_meanings"]).split()
    except (KeyError, TypeError, ValueError):
        values, meanings = list(range(len(STATUSES))), list(STATUSES)
    names = dict(zip(values, meanings))
    codes, index = np.unique(ds[:n], return_inverse=True)
    decoded = np.array([names.get(c, f"code {c}") for c in codes.tolist()], dtype=str)
    return decoded[index.reshape(-1)] if n else np.zeros(0, dtype="<U1")


class Trace:
    """A specdiag trace, read into memory (see :func:`open_trace`).

    Attributes
    ----------
    path : str
        The file.
    meta : dict
        The root attributes: ``schema``, ``schema_version``, ``convention``,
        ``specdiag_version``, ``created``, ``width`` and, decoded from JSON, ``config``,
        ``versions`` and ``layout`` (normalised: every operator has ``width``,
        ``arrays`` and ``coords``, also in files older than 1.2).
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
        except TraceError:
            self.close()
            raise
        except (OSError, RuntimeError) as error:
            self.close()
            raise unreadable(self.path, error) from None
        except DAMAGE as error:
            self.close()
            raise TraceError(
                f"{self.path}: damaged specdiag trace ({type(error).__name__}: {one_line(error)})"
            ) from None

    def _datasets(
        self, f: h5py.File, meta: dict[str, Any], refresh: bool
    ) -> tuple[dict[str, h5py.Dataset], list[str]]:
        """The per-probe datasets present (``probe_step`` first), and those missing.

        Only datasets added after the file's schema version may be missing.
        """
        layout = meta["layout"]
        version = parse_version(meta["schema_version"])
        present, absent = {}, []
        for p, (dtype, shape, _) in reversed(list(dataset_specs(layout).items())):
            ds = f.get(p)
            if not isinstance(ds, h5py.Dataset):
                if since(p, layout) > version:
                    absent.append(p)
                    continue
                raise TraceError(f"{self.path}: damaged specdiag trace (no dataset {p!r})")
            if refresh:
                ds.refresh()
            if ds.ndim != 1 + len(shape) or tuple(ds.shape[1:]) != shape:
                raise TraceError(
                    f"{self.path}: damaged specdiag trace (dataset {p!r} has shape "
                    f"{ds.shape}, the layout says (N, {', '.join(map(str, shape))}))"
                )
            if ds.dtype.kind != np.dtype(dtype).kind:
                raise TraceError(
                    f"{self.path}: damaged specdiag trace (dataset {p!r} holds {ds.dtype}, "
                    f"not {np.dtype(dtype)})"
                )
            present[p] = ds
        return present, absent

    def _load(self, f: h5py.File, *, refresh: bool) -> None:
        meta = read_meta(self.path, f)
        operators = meta["layout"]["operators"]
        present, absent = self._datasets(f, meta, refresh)
        n = min(ds.shape[0] for ds in present.values())
        data = {}
        for p, ds in present.items():
            kind = _column_kind(p, operators)
            if kind == "status":
                data[p] = _decode_status(ds, n)
            elif kind == "message":
                data[p] = _decode_text(ds[:n])
            else:
                data[p] = ds[:n]
        for p in absent:  # added after the file's schema version: its default
            column = PROBE_COLUMNS[p]
            dtype = str if p in MESSAGE_COLUMNS else column.dtype
            data[p] = np.full(n, column.default, dtype=dtype)
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
        """The writer's default width (``k + 1``); see :meth:`operator_width`."""
        return int(self.meta["width"])

    def operator_width(self, op: str) -> int:
        """Columns of the eigenvalue arrays of operator ``op``.

        Since schema 1.2 the operator's own; in older files the root ``width``.
        """
        return int(self._operator(op)["width"])

    def __len__(self) -> int:
        return self._n

    def probe_steps(self) -> np.ndarray:
        """The step of every probe, int64 ``(N,)``."""
        return self._data["probe_step"]

    def probes(self) -> dict[str, np.ndarray]:
        """Per-probe columns of the root, ``(N,)`` each.

        ``step``, ``batch_index``, ``seed`` (-1: none), ``wall_time``, ``build_time``,
        ``status`` (str) and, since 1.2 (defaults in older files), ``flags`` (int32 bit
        mask of :data:`specdiag.registry.PROBE_FLAGS`; 0), ``message`` (str; ""),
        ``train_time``, ``overhead`` and ``cost_steps`` (float64; NaN).
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

    def arrays(self, op: str) -> dict[str, np.ndarray]:
        """The operator's extra arrays (since 1.2): ``{name: (N, *sizes)}``.

        Sizes in the order of the array's ``dims`` (``eig``: the operator's width;
        another dimension: its coordinate's length); NaN (False, -1) where not given.
        """
        return {name: self._column(op, name) for name in self._operator(op)["arrays"]}

    def coords(self, op: str) -> dict[str, np.ndarray]:
        """The operator's coordinates (since 1.2): ``{dim: labels}``, str or numbers."""
        return {dim: np.asarray(v) for dim, v in self._operator(op)["coords"].items()}

    def array_dims(self, op: str) -> dict[str, tuple[str, ...]]:
        """``{array name: its dimensions}`` of the operator's extra arrays, ``step`` first."""
        arrays = self._operator(op)["arrays"]
        return {name: ("step", *a["dims"]) for name, a in arrays.items()}

    # -- other libraries

    def to_xarray(self, operator: Optional[str] = None) -> Any:
        """The trace as xarray (needs ``pip install "specdiag[xarray]"``).

        Parameters
        ----------
        operator : str, optional
            One operator: an ``xarray.Dataset`` with dimensions ``step``, ``eig`` and
            the operator's coordinates, indexed by ``step`` (with ``batch_index`` a
            coordinate along it), holding the operator's datasets, the root probe
            columns (``probe_seed``, ``probe_status``, ...) and the losses
            (``loss_<player>``). None: ``{operator: that Dataset}`` for every operator.
        """
        from .frames import to_xarray

        if operator is None:
            return {op: to_xarray(self, op) for op in self.operators}
        self._operator(operator)
        return to_xarray(self, operator)

    def scalars_frame(self) -> Any:
        """Every per-probe number as a ``pandas.DataFrame``.

        Indexed by ``(step, batch_index)``; needs ``pip install "specdiag[xarray]"``.
        The columns are listed in :func:`specdiag.trace.frames.scalars_frame`.
        """
        from .frames import scalars_frame

        return scalars_frame(self)

    # -- lifetime

    def close(self) -> None:
        """Close the file (SWMR mode); the data read stays available."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Trace({self.path!r}, {self._n} probes, operators={list(self.operators)})"


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
