"""TensorBoard for real: a monitor writes to a real SummaryWriter, TensorBoard's own
reader reads the event file back, and what it finds must be the trace's numbers."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped]
    EventAccumulator,
)
from torch.utils.tensorboard import SummaryWriter

from specdiag import toys
from specdiag.integrations.tensorboard import TensorBoardLogger, eigenvalue_figure
from specdiag.monitor import SpectrumMonitor
from specdiag.probing import probe
from specdiag.trace import open_trace

STEPS, EVERY, K = 12, 4, 4
ALL = {"scalars": 0, "histograms": 0, "images": 0, "tensors": 0}  # 0: keep every event
TAB_BLUE = np.array([31, 119, 180])  # matplotlib's "tab:blue", the markers' colour


def train(tmp_path: Path, writer, **monitor) -> Path:
    """A tiny MoG GAN trained STEPS steps with a monitor that probes every EVERY."""
    gan = toys.mog_gan(hidden=8, depth=1, latent=4, seed=0)
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    data = torch.Generator().manual_seed(1)
    path = tmp_path / "run.h5"
    monitor.setdefault("probe_batch", gan.sample(128, torch.Generator().manual_seed(0)))
    with SpectrumMonitor(gan.game, path, every=EVERY, k=K, summary_writer=writer, **monitor) as m:
        for step in range(STEPS):
            batch = gan.sample(64, data)
            for player, opt in (("discriminator", opt_d), ("generator", opt_g)):
                opt.zero_grad()
                gan.losses(batch)[player].backward()
                opt.step()
            m.step(step, batch)
    return path


def events(logdir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(logdir), size_guidance=ALL)
    accumulator.Reload()
    return accumulator


def same_float32(a: Any, b: Any) -> bool:
    """TensorBoard stores a scalar as float32: equal there, NaN equal to NaN."""
    return bool(np.array_equal(np.float32(a), np.float32(b), equal_nan=True))


def test_tensorboard_reads_back_the_traces_scalars_histograms_and_figure(tmp_path):
    logdir = tmp_path / "runs"
    writer = SummaryWriter(str(logdir))
    trace_path = train(tmp_path, writer)
    writer.close()
    acc = events(logdir)
    with open_trace(trace_path) as trace:
        assert list(trace.steps("jacobian")) == [0, 4, 8]
        assert set(trace.operators) == {"jacobian", "generator", "discriminator"}
        scalar_tags = {f"specdiag/{op}/{s}" for op in trace.operators for s in trace.scalars(op)}
        assert set(acc.Tags()["scalars"]) == scalar_tags
        for op in trace.operators:
            for name, values in trace.scalars(op).items():
                got = acc.Scalars(f"specdiag/{op}/{name}")
                assert [e.step for e in got] == list(trace.steps(op))
                assert same_float32([e.value for e in got], values), (op, name)
        histogram_tags = {f"specdiag/{op}/eig_real" for op in trace.operators}
        histogram_tags.add("specdiag/jacobian/eig_imag")  # Hessians: real eigenvalues only
        assert set(acc.Tags()["histograms"]) == histogram_tags
        for op in trace.operators:
            eigenvalues = trace.eigenvalues(op)
            for part in ("real", "imag") if op == "jacobian" else ("real",):
                got = acc.Histograms(f"specdiag/{op}/eig_{part}")
                assert [e.step for e in got] == list(trace.steps(op))
                for row, event in zip(eigenvalues, got):
                    finite = getattr(row[np.isfinite(row)], part)
                    h = event.histogram_value
                    assert h.num == finite.size > 0
                    assert (h.min, h.max) == (finite.min(), finite.max())
                    assert h.sum == pytest.approx(finite.sum(), rel=1e-9, abs=1e-12)
        assert acc.Tags()["images"] == ["specdiag/jacobian/eigenvalues"]
        images = acc.Images("specdiag/jacobian/eigenvalues")
        assert [e.step for e in images] == [0, 4, 8]
        for image in images:
            pixels = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
            assert pixels.shape[0] == image.height > 200 and pixels.shape[1] == image.width > 200
            markers = np.all(np.abs(pixels.astype(int) - TAB_BLUE) < 30, axis=-1).sum()
            assert markers > 50, "no eigenvalue markers drawn"


def test_several_probe_batches_are_tagged_per_batch(tmp_path):
    gan = toys.mog_gan(hidden=8, depth=1, latent=4, seed=0)
    batches = [gan.sample(64, torch.Generator().manual_seed(i)) for i in (0, 1)]
    logdir = tmp_path / "runs"
    writer = SummaryWriter(str(logdir))
    with SpectrumMonitor(
        gan.game,
        tmp_path / "run.h5",
        every=1,
        k=3,
        operators=("jacobian",),
        probe_batches=batches,
        summary_writer=writer,
    ) as monitor:
        records = monitor.step(0)
    writer.close()
    acc = events(logdir)
    for record in records:
        suffix = f"/batch{record.batch_index}"
        for name, value in record["jacobian"].scalars.items():
            (event,) = acc.Scalars(f"specdiag/jacobian/{name}{suffix}")
            assert same_float32(event.value, value)
        assert f"specdiag/jacobian/eig_imag{suffix}" in acc.Tags()["histograms"]
        assert f"specdiag/jacobian/eigenvalues{suffix}" in acc.Tags()["images"]
    assert not any(tag.endswith("min_real") for tag in acc.Tags()["scalars"])


def test_the_logger_as_on_probe_writes_what_it_is_asked_for(tmp_path):
    gan = toys.mog_gan(hidden=8, depth=1, latent=4, seed=0)
    batch = gan.sample(64, torch.Generator().manual_seed(0))
    record = probe(gan.game, batch, k=3, operators=("jacobian", "discriminator"))
    writer = SummaryWriter(str(tmp_path / "runs"))
    TensorBoardLogger(writer, figures=False, histograms=False)(record)
    writer.close()
    acc = events(tmp_path / "runs")
    assert acc.Tags()["histograms"] == [] and acc.Tags()["images"] == []
    assert len(acc.Tags()["scalars"]) == len(record["jacobian"].scalars) + len(
        record["discriminator"].scalars
    )

    class ScalarsOnly:
        def add_scalar(self, tag, value, global_step):
            pass

    with pytest.raises(TypeError, match="add_histogram, add_figure"):
        TensorBoardLogger(ScalarsOnly())
    TensorBoardLogger(ScalarsOnly(), figures=False, histograms=False)(record)  # accepted


def test_the_figure_of_a_failed_solve_says_so():
    gan = toys.mog_gan(hidden=8, depth=1, latent=4, seed=0)
    record = probe(gan.game, gan.sample(64, torch.Generator().manual_seed(0)), k=3)
    figure = eigenvalue_figure(record["jacobian"], 7)
    (ax,) = figure.axes
    assert ax.get_title().startswith("jacobian at step 7: ")
    assert "Re λ > 0" in figure.texts[0].get_text()  # the convention, stated
    assert [line.get_xdata()[0] for line in ax.lines] == [0.0]  # the line Re λ = 0
    failed = dataclasses.replace(
        record["jacobian"],
        eigenvalues=np.full(3, np.nan + 0j),
        converged=np.zeros(3, bool),
        status="nonfinite",
    )
    figure = eigenvalue_figure(failed)
    assert figure.axes[0].get_title() == "jacobian: 0 eigenvalues, nonfinite"
    figure.canvas.draw()
