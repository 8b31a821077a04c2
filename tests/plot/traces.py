"""Synthetic traces for the plot tests (trace schema 1.2).

Records go through :class:`TraceWriter` with the operators' extra arrays and
coordinates in their specs, as a monitor with ``shares=True`` and ``density=True``
writes them.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

from specdiag.trace import TraceWriter

PLAYERS = {"generator": 4, "discriminator": 4}
TENSORS = [
    "generator.0.weight",
    "generator.0.bias",
    "discriminator.0.weight",
    "discriminator.0.bias",
]
WIDTH = 4
N_VECTORS, N_NODES = 3, 5


def _array(dims: list[str]) -> dict[str, Any]:
    return {"dims": dims, "dtype": "f8"}


def jacobian_spec(shares: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": "jacobian", "which": "LM", "n": 8}
    if shares:
        spec["scalars"] = [
            "min_real",
            "max_imag",
            "max_imag_over_real",
            "spectral_radius",
            "subspace_overlap",
        ]
        spec["arrays"] = {
            "shares": _array(["eig", "tensor"]),
            "principal_cosines": _array(["eig"]),
            "player_shares": _array(["eig", "player"]),
        }
        spec["coords"] = {"tensor": TENSORS, "player": list(PLAYERS)}
    return spec


def density_spec(n: int = 4) -> dict[str, Any]:
    return {
        "kind": "density",
        "which": "",
        "n": n,
        "width": 1,
        "arrays": {"nodes": _array(["vector", "node"]), "weights": _array(["vector", "node"])},
        "coords": {"vector": list(range(N_VECTORS)), "node": list(range(N_NODES))},
    }


def op_record(
    name: str,
    kind: str,
    eigenvalues: Any = (),
    scalars: Optional[dict[str, float]] = None,
    arrays: Optional[dict[str, np.ndarray]] = None,
    status: str = "ok",
) -> SimpleNamespace:
    eig = np.asarray(eigenvalues, dtype=np.complex128)
    return SimpleNamespace(
        name=name,
        kind=kind,
        which={"jacobian": "LM", "update": "LM", "hessian": "BE"}.get(kind, ""),
        eigenvalues=eig,
        residuals=np.full(eig.size, 1e-5),
        converged=np.ones(eig.size, dtype=bool),
        n_matvec=10,
        wall_time=0.1,
        status=status,
        message="",
        scalars=scalars or {},
        arrays=arrays or {},
    )


def jacobian_scalars(eig: np.ndarray) -> dict[str, float]:
    eig = np.asarray(eig, complex)
    with np.errstate(divide="ignore"):
        ratio = float(np.abs(eig.imag / eig.real).max())
    return {
        "min_real": float(eig.real.min()),
        "max_imag": float(np.abs(eig.imag).max()),
        "max_imag_over_real": ratio,
        "spectral_radius": float(np.abs(eig).max()),
    }


def density_scalars(nodes: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    held = np.isfinite(nodes) & (np.nan_to_num(weights) > 0)
    w = np.nan_to_num(weights)
    rows = held.any(axis=1)
    return {
        "lambda_min": float(nodes[held].min()),
        "lambda_max": float(nodes[held].max()),
        "trace": float(np.nansum(w * np.nan_to_num(nodes), axis=1)[rows].mean()),
        "negative_mass": float((w * (np.nan_to_num(nodes) < 0)).sum(axis=1)[rows].mean()),
    }


def probe(step: int, operators: dict[str, SimpleNamespace], batch_index: int = 0) -> Any:
    status = next((op.status for op in operators.values() if op.status != "ok"), "ok")
    return SimpleNamespace(
        step=step,
        batch_index=batch_index,
        seed=step,
        wall_time=0.5,
        build_time=0.1,
        status=status,
        operators=operators,
        losses={"generator": 0.7, "discriminator": 0.6},
    )


def write(
    path: Path,
    operators: dict[str, dict[str, Any]],
    records: list[Any],
    *,
    config: Optional[dict[str, Any]] = None,
) -> Path:
    """Write ``records`` into a new trace at ``path``."""
    with TraceWriter(
        path, operators=operators, players=PLAYERS, width=WIDTH, overwrite=True, config=config
    ) as w:
        for r in records:
            w.write(r)
    return Path(path)


HESSIAN = {"kind": "hessian", "which": "BE", "n": 4}
UPDATE = {"kind": "update", "which": "LM", "n": 8}
HELMHOLTZ = {"kind": "helmholtz", "which": "", "n": 8, "width": 1}
HELMHOLTZ_NAMES = ("symmetric_sq", "antisymmetric_sq", "rotation_fraction", "zero_sum_defect")


def rich_operators() -> dict[str, dict[str, Any]]:
    """Every kind of operator a monitor writes, the Jacobian with shares."""
    return {
        "jacobian": jacobian_spec(shares=True),
        "generator": HESSIAN,
        "discriminator": HESSIAN,
        "update": UPDATE,
        "helmholtz": HELMHOLTZ,
        "density.generator": density_spec(),
    }


def rich_record(step: int, rng: np.random.Generator, batch_index: int = 0) -> Any:
    """One probe of every operator of :func:`rich_operators`; values drift with the step."""
    t = step / 100
    eig = np.array([1 - t + (0.5 + t) * 1j, 1 - t - (0.5 + t) * 1j, 2.0 + t, 0.3])
    shares = rng.dirichlet(np.ones(len(TENSORS)), size=WIDTH)
    nodes = np.sort(rng.normal(1 - t, 1, size=(N_VECTORS, N_NODES)), axis=1)
    weights = rng.dirichlet(np.ones(N_NODES), size=N_VECTORS)
    jacobian = {**jacobian_scalars(eig), "subspace_overlap": 0.9 - 0.3 * t if step else np.nan}
    arrays = {"shares": shares, "principal_cosines": np.ones(WIDTH), "player_shares": shares[:, :2]}
    helm = {name: 0.3 + 0.1 * t for name in HELMHOLTZ_NAMES}
    helm.update({f"{name}_se": 0.02 for name in HELMHOLTZ_NAMES})
    mu = 1 - 0.1 * eig
    return probe(
        step,
        {
            "jacobian": op_record("jacobian", "jacobian", eig, jacobian, arrays),
            "generator": op_record(
                "generator", "hessian", [2 + t, -0.1 - t], {"max": 2 + t, "min": -0.1 - t}
            ),
            "discriminator": op_record(
                "discriminator", "hessian", [3.0, 0.2], {"max": 3.0, "min": 0.2}
            ),
            "update": op_record(
                "update",
                "update",
                mu,
                {"spectral_radius": float(np.abs(mu).max()), "max_stable_lr": 0.5 - t, "lr": 0.1},
            ),
            "helmholtz": op_record("helmholtz", "helmholtz", [], helm),
            "density.generator": op_record(
                "density.generator",
                "density",
                [],
                density_scalars(nodes, weights),
                {"nodes": nodes, "weights": weights},
            ),
        },
        batch_index,
    )


def rich_trace(path: Path, steps: Any = range(0, 120, 10), batches: int = 1) -> Path:
    """A trace of :func:`rich_operators` (seeded values), ``batches`` probes per step."""
    rng = np.random.default_rng(0)
    records = [rich_record(s, rng, b) for s in steps for b in range(batches)]
    return write(path, rich_operators(), records, config={"metadata": {"lr": 0.1}})
