#!/usr/bin/env python
"""How long plotting a trace takes: every figure of ``specdiag plot`` and the GIF.

Synthetic traces of 10^2, 10^3 and 10^4 probes with k = 10 (11 eigenvalue columns: five
drifting complex-conjugate pairs and one real eigenvalue per probe), the Jacobian's
shares over 12 parameter tensors and a generator density of 10 x 30 quadrature nodes,
are written to a temporary directory, then each is read and plotted as PNG. Printed:
seconds to read the trace, to draw and save each figure, and in all. No torch is
imported.

Usage::

    python scripts/bench_plot.py             # about 20 s on 2 cores
    python scripts/bench_plot.py --probes 100 1000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specdiag import plot  # noqa: E402
from specdiag.trace import TraceWriter, open_trace  # noqa: E402

K = 10
WIDTH = K + 1
TENSORS = [
    f"{p}.{i}.{w}"
    for p in ("generator", "discriminator")
    for i in range(3)
    for w in ("weight", "bias")
]
VECTORS, NODES = 10, 30


def synthetic_eigenvalues(n: int, seed: int = 0) -> np.ndarray:
    """``(n, WIDTH)`` eigenvalues: five conjugate pairs and one real eigenvalue.

    The pairs' real parts shrink and their imaginary parts grow over training (a GAN
    drifting into rotation).
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)[:, None]
    j = np.arange(5)[None, :]
    re = 0.05 + 0.4 * j * (1 - t) + 0.02 * rng.standard_normal((n, 5))
    im = (j + 1) * (0.5 + t) + 0.05 * rng.standard_normal((n, 5))
    pairs = np.stack([re + 1j * im, re - 1j * im], axis=2).reshape(n, 10)
    real = 3.0 - 2.0 * t + 0.05 * rng.standard_normal((n, 1))
    return np.concatenate([pairs, real + 0j], axis=1)


def operators() -> dict[str, dict[str, Any]]:
    """A Jacobian with shares, two player Hessians and the generator's density."""
    shares = {"dims": ["eig", "tensor"], "dtype": "f8"}
    quadrature = {"dims": ["vector", "node"], "dtype": "f8"}
    return {
        "jacobian": {
            "kind": "jacobian",
            "which": "LM",
            "n": 10_000,
            "arrays": {"shares": shares},
            "coords": {"tensor": TENSORS},
        },
        "generator": {"kind": "hessian", "which": "BE", "n": 5_000},
        "discriminator": {"kind": "hessian", "which": "BE", "n": 5_000},
        "density.generator": {
            "kind": "density",
            "which": "",
            "n": 5_000,
            "width": 1,
            "arrays": {"nodes": quadrature, "weights": quadrature},
            "coords": {"vector": list(range(VECTORS)), "node": list(range(NODES))},
        },
    }


def op(kind: str, values: np.ndarray, which: str, **arrays: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(
        kind=kind,
        which=which,
        eigenvalues=values,
        residuals=np.full(values.size, 1e-4),
        converged=np.ones(values.size, bool),
        n_matvec=60,
        wall_time=0.5,
        status="ok",
        message="",
        scalars={},
        arrays=arrays,
    )


def first_probe(eig: np.ndarray) -> SimpleNamespace:
    """The probe that goes through :class:`TraceWriter` (layout, attributes)."""
    rng = np.random.default_rng(1)
    nodes = np.sort(rng.normal(0.5, 1.0, (VECTORS, NODES)), axis=1)
    ops = {
        "jacobian": op(
            "jacobian", eig, "LM", shares=rng.dirichlet(np.ones(len(TENSORS)), size=WIDTH)
        ),
        "generator": op("hessian", np.linspace(2.0, -0.1, K), "BE"),
        "discriminator": op("hessian", np.linspace(4.0, 0.1, K), "BE"),
        "density.generator": op(
            "density",
            np.empty(0, complex),
            "",
            nodes=nodes,
            weights=rng.dirichlet(np.ones(NODES), size=VECTORS),
        ),
    }
    losses = {"generator": 0.7, "discriminator": 0.6}
    return SimpleNamespace(
        step=0,
        batch_index=0,
        seed=0,
        wall_time=1.0,
        build_time=0.1,
        status="ok",
        losses=losses,
        operators=ops,
    )


def write_trace(path: Path, n: int) -> Path:
    """A trace of ``n`` probes: one written by :class:`TraceWriter`, the others in bulk.

    The others are filled with h5py: writing 10^4 probes one by one takes minutes.
    """
    eig = synthetic_eigenvalues(n)
    with TraceWriter(
        path,
        operators=operators(),
        players={"generator": 5_000, "discriminator": 5_000},
        width=WIDTH,
        overwrite=True,
        config={"metadata": {"lr": 0.05, "optimizer": "sgd"}},
    ) as w:
        w.write(first_probe(eig[0]))
    with h5py.File(path, "r+") as f:
        f.visititems(lambda name, obj: _extend(obj, n))
        _fill(f, n, eig)
    return path


def _extend(obj: Any, n: int) -> None:
    """A per-probe dataset grown to ``n`` rows, each a copy of the first."""
    if isinstance(obj, h5py.Dataset) and obj.maxshape[0] is None:
        first_row = obj[:1]
        obj.resize(n, axis=0)
        obj[...] = np.repeat(first_row, n, axis=0)


def _fill(f: h5py.File, n: int, eig: np.ndarray) -> None:
    """Steps, eigenvalues, scalars, and densities that drift down over training."""
    steps = np.arange(n, dtype=np.int64) * 100
    for name in operators():
        f[f"{name}/step"][...] = steps
    f["probe_step"][...] = steps
    f["jacobian/eig_real"][...] = eig.real
    f["jacobian/eig_imag"][...] = eig.imag
    f["jacobian/min_real"][...] = eig.real.min(axis=1)
    f["jacobian/max_imag"][...] = np.abs(eig.imag).max(axis=1)
    f["jacobian/max_imag_over_real"][...] = (np.abs(eig.imag) / np.abs(eig.real)).max(axis=1)
    f["jacobian/spectral_radius"][...] = np.abs(eig).max(axis=1)
    for name in ("generator", "discriminator"):
        f[f"{name}/max"][...] = f[f"{name}/eig_real"][:, 0]
        f[f"{name}/min"][...] = f[f"{name}/eig_real"][:, K - 1]
    shift = np.linspace(0.0, -1.5, n)[:, None, None]
    f["density.generator/nodes"][...] = f["density.generator/nodes"][...] + shift


def bench(n: int, tmp: Path) -> dict[str, float]:
    """Seconds to read a trace of ``n`` probes and to draw and save each figure."""
    path = write_trace(tmp / f"trace_{n}.h5", n)
    out = tmp / f"plots_{n}"
    out.mkdir()
    times: dict[str, float] = {}
    start = time.perf_counter()
    tr = open_trace(path)
    times["read"] = time.perf_counter() - start
    figures = {
        "spectrum": lambda: plot.spectrum_figure(tr, lr=0.05),
        "evolution": lambda: plot.evolution_figure(tr),
        "scalars": lambda: plot.scalars_figure(tr),
        "density": lambda: plot.density_figure(tr),
        "shares": lambda: plot.shares_figure(tr),
    }
    for name, make in figures.items():
        start = time.perf_counter()
        make().savefig(out / f"{name}.png", dpi=120)
        times[name] = time.perf_counter() - start
    start = time.perf_counter()
    plot.animate_spectrum(tr, out / "spectrum.gif")
    times["gif"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--probes",
        type=int,
        nargs="+",
        default=[100, 1_000, 10_000],
        help="trace sizes in probes (default: %(default)s)",
    )
    args = parser.parse_args()
    columns = ("read", "spectrum", "evolution", "scalars", "density", "shares", "gif", "total")
    print(
        f"k = {K}, PNG at 120 dpi, GIF of at most {plot.MAX_FRAMES} frames; "
        f"decimation above {plot.MAX_PROBES} probes; seconds"
    )
    print(f"{'probes':>8} " + " ".join(f"{c:>9}" for c in columns))
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.probes:
            times = bench(n, Path(tmp))
            print(f"{n:>8,} " + " ".join(f"{times[c]:>9.2f}" for c in columns), flush=True)


if __name__ == "__main__":
    main()
