"""The Weights & Biases and MLflow recipes of docs/integrations.md, run exactly as the page
shows them, offline; then what each logger stored is read back and must be the trace's.

Each recipe is the page's own ```python block, run in a subprocess in an empty
directory (as a reader would paste it); it leaves ``run.h5`` and the logger's files there.
"""

from __future__ import annotations

import glob
import json
import math
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from PIL import Image
from wandb.proto import wandb_internal_pb2

from specdiag.trace import open_trace

PAGE = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
PROBED = [0, 4, 8]  # every=4 over 12 steps
IMAGE = "specdiag/jacobian/eigenvalues"


def recipe(heading: str) -> str:
    """The first ```python block of the section ``## heading`` of the page."""
    section = PAGE.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    match = re.search(r"^```python\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert match, f"docs/integrations.md, {heading}: no python block"
    return match.group(1)


def run_recipe(heading: str, cwd: Path) -> None:
    (cwd / "recipe.py").write_text(recipe(heading), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "recipe.py"], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ProbeWarning" not in out.stderr, out.stderr[-3000:]  # on_probe raised nothing


def trace_scalars(path: Path) -> dict[tuple[str, int], float]:
    """``{(tag, step): value}`` of every scalar in the trace, tagged as the recipes tag."""
    with open_trace(path) as trace:
        assert list(trace.steps("jacobian")) == PROBED
        return {
            (f"specdiag/{op}/{name}", int(step)): float(value)
            for op in trace.operators
            for name, values in trace.scalars(op).items()
            for step, value in zip(trace.steps(op), values)
        }


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# ------------------------------------------------------------------ Weights & Biases
def wandb_records(path: str) -> list[bytes]:
    """The records of a W&B transaction log (``run-*.wandb``): LevelDB's log format,
    32 KiB blocks of chunks (crc32 4 bytes, length 2, type 1: full, first, middle, last)
    after a 7-byte header."""
    raw = Path(path).read_bytes()
    assert raw[:4] == b":W&B", "not a W&B transaction log"
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(raw):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        pending += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, last: a record is complete
            records.append(pending)
            pending = b""
        elif kind == 0:  # zero padding
            pending = b""
    return records


def wandb_history(run_dir: str) -> dict[int, dict[str, Any]]:
    """``{step: {key: value}}`` from an offline run's transaction log (rows merged)."""
    (log,) = glob.glob(f"{run_dir}/run-*.wandb")
    rows: dict[int, dict[str, Any]] = {}
    for data in wandb_records(log):
        record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            row = rows.setdefault(record.history.step.num, {})
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
    return rows


def test_the_wandb_recipe_logs_the_traces_scalars_offline(tmp_path):
    run_recipe("Weights and Biases", tmp_path)
    (run_dir,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    history = wandb_history(run_dir)
    assert sorted(history) == list(range(12))  # the losses of every step
    assert all({"loss/generator", "loss/discriminator"} <= set(row) for row in history.values())
    expected = trace_scalars(tmp_path / "run.h5")
    for (tag, step), value in expected.items():
        assert same(float(history[step][tag]), value), (tag, step)
    logged = {k for row in history.values() for k in row if k.startswith("specdiag/")}
    assert {tag for tag, _ in expected} <= logged
    for step in range(12):
        has_image = any(k.startswith(IMAGE) for k in history[step])
        has_scalars = any(k.startswith("specdiag/jacobian/min_real") for k in history[step])
        assert has_image == has_scalars == (step in PROBED)
    images = glob.glob(f"{run_dir}/files/media/images/specdiag/jacobian/eigenvalues_*.png")
    steps = sorted(int(Path(p).name.split("_")[1]) for p in images)
    assert steps == PROBED


# ------------------------------------------------------------------------- MLflow
def test_the_mlflow_recipe_logs_the_traces_scalars_to_a_local_store(tmp_path, monkeypatch):
    run_recipe("MLflow", tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "specdiag-demo"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params == {"every": "4", "k": "4"}
    expected = trace_scalars(tmp_path / "run.h5")
    for tag in {tag for tag, _ in expected}:
        history = client.get_metric_history(run.info.run_id, tag)
        assert [m.step for m in history] == PROBED, tag
        for m in history:
            assert same(m.value, expected[tag, m.step]), (tag, m.step)
    losses = client.get_metric_history(run.info.run_id, "loss/generator")
    assert [m.step for m in losses] == list(range(12))
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    pngs = [p for p in images if p.endswith(".png") and "specdiag~jacobian~eigenvalues" in p]
    steps = [re.search(r"\+step\+(\d+)\+", p) for p in pngs]
    assert sorted(int(m.group(1)) for m in steps if m) == PROBED
    local = tmp_path / "mlruns" / experiment.experiment_id / run.info.run_id / "artifacts"
    pixels = np.asarray(Image.open(local / pngs[0]))
    assert pixels.shape[:2] == (400, 480)
