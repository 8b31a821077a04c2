"""A training process that writes a trace, for the crash and live-reading tests.

    python trace_writer_proc.py PATH {default,swmr} loop    # write probes until killed
    python trace_writer_proc.py PATH {default,swmr} stdin   # "write" -> one probe, "close" -> exit

It prints ``ready`` once the trace exists, then after every probe ``wrote N`` (N probes so far) and flushes stdout. It loads
``specdiag.trace`` without running ``specdiag/__init__.py``, so it starts fast and never
imports torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from types import SimpleNamespace

import numpy as np

OPERATORS = {
    "jacobian": {"kind": "jacobian", "which": "LM", "n": 5},
    "generator": {"kind": "hessian", "which": "LA", "n": 2},
    "discriminator": {"kind": "hessian", "which": "LA", "n": 3},
}
PLAYERS = {"generator": 2, "discriminator": 3}
WIDTH = 4


def load_trace_module() -> types.ModuleType:
    """``specdiag.trace`` imported without executing the package's ``__init__``."""
    if "specdiag" not in sys.modules:
        spec = importlib.util.find_spec("specdiag")  # locates, does not import
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
