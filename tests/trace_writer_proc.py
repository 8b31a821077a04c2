"""A training process that writes a trace, for the crash, lock and live-reading tests.

    python trace_writer_proc.py PATH {default,swmr} loop    # write probes until killed
    python trace_writer_proc.py PATH {default,swmr} stdin   # "write" -> one probe, "close" -> exit

It prints ``ready`` once the trace exists, then after every probe ``wrote N`` (N probes
so far) and flushes stdout. It loads ``specdiag.trace`` without running
``specdiag/__init__.py``, so it starts fast and never imports torch. :class:`Child`
runs it from a test; the record builders (``probe_record``, ``operator_record``) and
the layout (``OPERATORS``, ``PLAYERS``, ``WIDTH``) are shared by the trace tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import queue
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np

OPERATORS = {
    "jacobian": {"kind": "jacobian", "which": "LM", "n": 5},
    "generator": {"kind": "hessian", "which": "LA", "n": 2},
    "discriminator": {"kind": "hessian", "which": "LA", "n": 3},
}
PLAYERS = {"generator": 2, "discriminator": 3}
WIDTH = 4
#: Seconds a test waits for a child process's next line.
TIMEOUT_S = 30.0
HERE = Path(__file__).resolve().parent


def load_trace_module() -> types.ModuleType:
    """``specdiag.trace`` imported without executing the package's ``__init__``."""
    if "specdiag" not in sys.modules:
        spec = importlib.util.find_spec("specdiag")  # locates, does not import
        assert spec is not None and spec.submodule_search_locations is not None
        package = types.ModuleType("specdiag")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["specdiag"] = package
    return importlib.import_module("specdiag.trace")


def operator_record(
    name: str,
    kind: str,
    which: str,
    eigenvalues,
    *,
    status: str = "ok",
    message: str = "",
    n_matvec: int = 40,
    converged=None,
):
    eigenvalues = np.asarray(eigenvalues, dtype=np.complex128)
    m = eigenvalues.size
    if kind == "jacobian":
        scalars = {
            "min_real": float(np.min(eigenvalues.real, initial=np.inf)),
            "max_imag": float(np.max(np.abs(eigenvalues.imag), initial=-np.inf)),
            "max_imag_over_real": 1.5,
            "spectral_radius": float(np.max(np.abs(eigenvalues), initial=-np.inf)),
        }
    else:
        scalars = {
            "max": float(np.max(eigenvalues.real, initial=-np.inf)),
            "min": float(np.min(eigenvalues.real, initial=np.inf)),
        }
    return SimpleNamespace(
        name=name,
        kind=kind,
        which=which,
        eigenvalues=eigenvalues,
        residuals=np.linspace(1e-5, 1e-4, m),
        converged=np.ones(m, dtype=bool)
        if converged is None
        else np.asarray(converged, dtype=bool),
        n_matvec=n_matvec,
        wall_time=0.25,
        status=status,
        message=message,
        scalars=scalars,
    )


def probe_record(step: int, *, batch_index: int = 0, n_matvec: int = 40):
    """A record for OPERATORS whose numbers follow from ``step``."""
    operators = {
        "jacobian": operator_record(
            "jacobian", "jacobian", "LM", [step + 1j, step - 1j, 0.5], n_matvec=n_matvec
        ),
        "generator": operator_record(
            "generator", "hessian", "LA", [2.0 * step, 1.0], n_matvec=n_matvec
        ),
        "discriminator": operator_record(
            "discriminator", "hessian", "LA", [3.0, 2.0, -1.0], n_matvec=n_matvec
        ),
    }
    return SimpleNamespace(
        step=step,
        batch_index=batch_index,
        seed=step,
        wall_time=1.0,
        build_time=0.1,
        status="ok",
        operators=operators,
        losses={"generator": 0.7 + step, "discriminator": 0.6},
    )


class Child:
    """A writer process whose stdout lines arrive through a queue (reads never hang)."""

    def __init__(self, *args: str) -> None:
        self.proc: subprocess.Popen[str] = subprocess.Popen(
            [sys.executable, str(HERE / "trace_writer_proc.py"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.stdin, self.stdout, self.stderr = self.proc.stdin, self.proc.stdout, self.proc.stderr
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.stdout:
            self.lines.put(line.strip())
        self.lines.put("<eof>")

    def expect(self, prefix: str) -> str:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"child gave no {prefix!r} within {TIMEOUT_S} s") from None
            if line == "<eof>":
                raise AssertionError(
                    f"child exited before {prefix!r}: {self.stderr.read()[-2000:]}"
                )
            if line.startswith(prefix):
                return line

    def send(self, line: str) -> None:
        self.stdin.write(line + "\n")
        self.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT_S)
        for stream in (self.stdin, self.stdout, self.stderr):
            stream.close()


# --------------------------------------------------------------------------- schema 1.0 and 1.1
# write_legacy_trace lays out a file exactly as the 1.0 and 1.1 writers did
# (specdiag/trace/writer.py before 1.2): the same root attributes, groups, dataset names,
# dtypes, chunks, fill values and attributes; no dimension scales, no per-operator width,
# no probe_flags/probe_message/probe_train_time/... columns; rows appended the same way
# (everything, a flush, then probe_step).
LEGACY_STATUSES = ("ok", "unconverged", "budget", "nonfinite", "error")
LEGACY_MESSAGE = h5py.string_dtype("utf-8", length=256)
LEGACY_OPERATOR_COLUMNS = {
    "step": ("i8", False),
    "batch_index": ("i4", False),
    "eig_real": ("f8", True),
    "eig_imag": ("f8", True),
    "residual": ("f8", True),
    "converged": (np.bool_, True),
    "n_matvec": ("i8", False),
    "wall_time": ("f8", False),
    "status": ("i1", False),
    "message": (LEGACY_MESSAGE, False),
}
#: The summary scalars of the kinds the tests use, as 1.0 and 1.1 stored them.
LEGACY_SCALARS = {
    "jacobian": ["min_real", "max_imag", "max_imag_over_real", "spectral_radius"],
    "hessian": ["max", "min"],
}
LEGACY_PROBE_COLUMNS = {
    "probe_batch_index": "i4",
    "probe_seed": "i8",
    "probe_wall_time": "f8",
    "probe_build_time": "f8",
    "probe_status": "i1",
    "probe_step": "i8",
}


def _legacy_dataset(group, name, dtype, width):
    shape, maxshape, chunks = (
        ((0,), (None,), (64,)) if width is None else ((0, width), (None, width), (64, width))
    )
    fill = np.nan if np.dtype(dtype).kind == "f" else None
    ds = group.create_dataset(
        name, shape=shape, maxshape=maxshape, chunks=chunks, dtype=dtype, fillvalue=fill
    )
    ds.attrs["description"] = f"{name} (legacy)"
    if name in ("status", "probe_status"):
        ds.attrs["flag_values"] = np.arange(len(LEGACY_STATUSES), dtype=np.int8)
        ds.attrs["flag_meanings"] = " ".join(LEGACY_STATUSES)


def _legacy_create(f, operators, players, width, version):
    layout = {
        "operators": {
            name: {
                "kind": spec["kind"],
                "which": spec.get("which", ""),
                "n": spec["n"],
                "scalars": list(spec.get("scalars", LEGACY_SCALARS[spec["kind"]])),
            }
            for name, spec in operators.items()
        },
        "players": dict(players),
    }
    f.attrs.update(
        {
            "schema": "specdiag-trace",
            "schema_version": version,
            "convention": "descent",
            "created": "2025-01-01T00:00:00+00:00",
            "layout": json.dumps(layout),
            "width": np.int64(width),
            "specdiag_version": "0.9.0",
            "versions": json.dumps({"python": "3.11", "h5py": h5py.__version__}),
            "config": json.dumps({"every": 10}),
        }
    )
    for name, spec in layout["operators"].items():
        group = f.create_group(name)
        group.attrs.update(
            {
                "kind": spec["kind"],
                "which": spec["which"],
                "n": np.int64(spec["n"]),
                "scalars": json.dumps(spec["scalars"]),
            }
        )
        for column, (dtype, wide) in LEGACY_OPERATOR_COLUMNS.items():
            _legacy_dataset(group, column, dtype, width if wide else None)
        for scalar in spec["scalars"]:
            _legacy_dataset(group, scalar, "f8", None)
    losses = f.create_group("loss")
    for player in players:
        _legacy_dataset(losses, player, "f8", None)
    for column, dtype in LEGACY_PROBE_COLUMNS.items():
        _legacy_dataset(f, column, dtype, None)
    return layout


def _legacy_row(record, layout, width):
    def padded(values, fill, dtype):
        row = np.full(width, fill, dtype=dtype)
        values = np.asarray(values, dtype=dtype).reshape(-1)
        row[: values.size] = values
        return row

    row = {}
    for name, spec in layout["operators"].items():
        op = record.operators[name]
        eig = np.asarray(op.eigenvalues, dtype=np.complex128)
        row.update(
            {
                f"{name}/step": record.step,
                f"{name}/batch_index": record.batch_index,
                f"{name}/eig_real": padded(eig.real, np.nan, np.float64),
                f"{name}/eig_imag": padded(eig.imag, np.nan, np.float64),
                f"{name}/residual": padded(op.residuals, np.nan, np.float64),
                f"{name}/converged": padded(op.converged, False, np.bool_),
                f"{name}/n_matvec": op.n_matvec,
                f"{name}/wall_time": op.wall_time,
                f"{name}/status": LEGACY_STATUSES.index(op.status),
                f"{name}/message": op.message.encode("utf-8")[:256],
            }
        )
        for scalar in spec["scalars"]:
            row[f"{name}/{scalar}"] = float(op.scalars.get(scalar, np.nan))
    for player in layout["players"]:
        row[f"loss/{player}"] = float(record.losses.get(player, np.nan))
    row.update(
        {
            "probe_batch_index": record.batch_index,
            "probe_seed": -1 if record.seed is None else record.seed,
            "probe_wall_time": record.wall_time,
            "probe_build_time": record.build_time,
            "probe_status": LEGACY_STATUSES.index(record.status),
            "probe_step": record.step,
        }
    )
    return row


def write_legacy_trace(path, records, *, operators, players, width, version="1.1"):
    """A trace of schema ``version`` ("1.0" or "1.1") holding ``records``."""
    with h5py.File(path, "w") as f:
        layout = _legacy_create(f, operators, players, width, version)
        for n, record in enumerate(records):
            for p, value in _legacy_row(record, layout, width).items():
                if p == "probe_step":
                    f.flush()
                f[p].resize(n + 1, axis=0)
                f[p][n] = value
            f.flush()
    return path


def main(path: str, mode: str, control: str) -> None:
    trace = load_trace_module()
    writer = trace.TraceWriter(
        path,
        operators=OPERATORS,
        players=PLAYERS,
        width=WIDTH,
        config={"every": 1},
        resume=False,
        swmr=(mode == "swmr"),
    )
    print("ready", flush=True)
    written = 0

    def write() -> None:
        nonlocal written
        writer.write(probe_record(written))
        written += 1
        print(f"wrote {written}", flush=True)

    if control == "loop":
        while written < 100_000:
            write()
    else:
        for line in sys.stdin:
            if line.strip() == "write":
                write()
            elif line.strip() == "close":
                break
    writer.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
