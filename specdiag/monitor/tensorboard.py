r"""TensorBoard: every probe's scalars, eigenvalue histograms and eigenvalue cloud.

:class:`TensorBoardLogger` writes one :class:`~specdiag.ProbeRecord` to a
``torch.utils.tensorboard.SummaryWriter`` (or anything with the same methods). The
monitor does this itself for ``SpectrumMonitor(..., summary_writer=writer)``; the
logger is also an ``on_probe`` callable. The tags, for every probed operator ``<op>``
(``jacobian``, a player's name for its Hessian, ``update``, ...), with ``/batch<i>``
appended when several probe batches are probed:

=============================  ============  ============================================
tag                            TensorBoard   what
=============================  ============  ============================================
``specdiag/<op>/<scalar>``     Scalars       every per-probe scalar (``min_real``,
                                             ``max_imag``, ``spectral_radius``, ``max``,
                                             ``min``, ...), as in the trace
``specdiag/<op>/eig_real``     Histograms    :math:`\operatorname{Re}\lambda` of the
                                             finite computed eigenvalues
``specdiag/<op>/eig_imag``     Histograms    :math:`\operatorname{Im}\lambda` (not for
                                             Hessians, whose eigenvalues are real)
``specdiag/<op>/eigenvalues``  Images        the Jacobian's eigenvalues in the complex
                                             plane, with the line
                                             :math:`\operatorname{Re}\lambda = 0`
=============================  ============  ============================================

Eigenvalues are in the descent convention: gradient flow is locally stable where every
eigenvalue of the Jacobian has :math:`\operatorname{Re}\lambda > 0` (left of the line
in the figure: unstable directions).

:func:`eigenvalue_figure` and :func:`eigenvalue_image` draw the same picture for other
loggers (``wandb.Image(eigenvalue_image(record["jacobian"], step))``,
``mlflow.log_image``). This module imports neither torch nor TensorBoard: it only calls
the writer it is given; matplotlib is imported when the first figure is drawn.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..probing.records import OperatorRecord, ProbeRecord

__all__ = ["TensorBoardLogger", "eigenvalue_figure", "eigenvalue_image"]

#: Operator kinds whose eigenvalues are real: no histogram of imaginary parts.
REAL_KINDS = frozenset({"hessian", "density"})
#: The operator whose eigenvalue cloud is drawn.
FIGURE_OPERATOR = "jacobian"


class TensorBoardLogger:
    r"""Write probe records to a TensorBoard ``SummaryWriter``.

    Parameters
    ----------
    writer : object
        A ``torch.utils.tensorboard.SummaryWriter``, or anything with
        ``add_scalar(tag, value, global_step)`` and, where asked for,
        ``add_histogram(tag, values, global_step)`` and
        ``add_figure(tag, figure, global_step, close=False)``. The writer stays the
        caller's: flush and close it yourself.
    figures : bool
        Also draw the Jacobian's eigenvalues in the complex plane at every probe
        (:func:`eigenvalue_figure`, tag ``specdiag/jacobian/eigenvalues``).
    histograms : bool
        Also write histograms of the real and imaginary parts of every operator's
        finite computed eigenvalues (``specdiag/<op>/eig_real`` and ``eig_imag``).

    Raises
    ------
    TypeError
        The writer lacks a method that the settings need.

    Examples
    --------
    >>> from torch.utils.tensorboard import SummaryWriter
    >>> writer = SummaryWriter("runs/gan")
    >>> game = toys.dirac_gan(loss="standard", r1=0.6).game
    >>> with sd.SpectrumMonitor(game, "run.h5", every=1, k=2, summary_writer=writer) as mon:
    ...     _ = mon.step(0)  # the monitor logs through a TensorBoardLogger
    >>> TensorBoardLogger(writer)(sd.probe(game, k=2, step=1))  # a probe of your own
    >>> writer.close()
    """

    def __init__(self, writer: Any, *, figures: bool = True, histograms: bool = True) -> None:
        needed = ["add_scalar"] + ["add_histogram"] * histograms + ["add_figure"] * figures
        missing = [name for name in needed if not callable(getattr(writer, name, None))]
        if missing:
            raise TypeError(
                f"writer has no {', '.join(missing)} method: pass a "
                "torch.utils.tensorboard.SummaryWriter, or figures=False / "
                f"histograms=False for a writer without them (got {type(writer).__name__})"
            )
        self.writer, self.figures, self.histograms = writer, bool(figures), bool(histograms)

    def __call__(self, record: ProbeRecord, *, several: bool = False) -> None:
        """Write one record at its step.

        Parameters
        ----------
        record : ProbeRecord
            One probe (of one probe batch).
        several : bool
            Whether the run probes several probe batches: the tags then end in
            ``/batch<i>`` (``i = record.batch_index``), so that the batches' values at
            one step do not overwrite each other.
        """
        suffix = f"/batch{record.batch_index}" if several else ""
        step = record.step
        for name, op in record.items():
            for scalar, value in op.scalars.items():
                self.writer.add_scalar(f"specdiag/{name}/{scalar}{suffix}", value, step)
            if self.histograms:
                self._histograms(op, suffix, step)
        if self.figures and FIGURE_OPERATOR in record:
            figure = eigenvalue_figure(record[FIGURE_OPERATOR], step)
            self.writer.add_figure(
                f"specdiag/{FIGURE_OPERATOR}/eigenvalues{suffix}", figure, step, close=False
            )

    def _histograms(self, op: OperatorRecord, suffix: str, step: Optional[int]) -> None:
        """Histograms of the real (and imaginary) parts of the finite eigenvalues."""
        values = np.asarray(op.eigenvalues, dtype=np.complex128)
        values = values[np.isfinite(values)]
        if values.size == 0:  # a failed solve, or an operator without eigenvalues
            return
        self.writer.add_histogram(f"specdiag/{op.name}/eig_real{suffix}", values.real, step)
        if op.kind not in REAL_KINDS:
            self.writer.add_histogram(f"specdiag/{op.name}/eig_imag{suffix}", values.imag, step)


def eigenvalue_figure(op: OperatorRecord, step: Optional[int] = None) -> Any:
    r"""One probe's eigenvalues of an operator in the complex plane.

    Converged eigenvalues are filled markers, unconverged ones hollow; the vertical
    line is :math:`\operatorname{Re}\lambda = 0`, and the figure states the descent
    convention (gradient flow locally stable where every eigenvalue of the Jacobian has
    :math:`\operatorname{Re}\lambda > 0`).

    Parameters
    ----------
    op : OperatorRecord
        Usually ``record["jacobian"]``.
    step : int, optional
        The training step, for the title.

    Returns
    -------
    matplotlib.figure.Figure
        On its own Agg canvas (pyplot's state is not touched): render it, save it with
        ``figure.savefig``, or hand it to ``SummaryWriter.add_figure`` or
        ``wandb.Image``.
    """
    from matplotlib.colors import to_rgba

    from ..plot.axes import scatter_eigenvalues, set_plane_limits, zero_line
    from ..plot.labels import CONVENTION_NOTE
    from ..plot.styles import drawing, new_figure, resolve

    values = np.asarray(op.eigenvalues, dtype=np.complex128)
    finite = np.isfinite(values)
    values, converged = values[finite], np.asarray(op.converged, dtype=bool)[finite]
    st, width = resolve(None, None, 4.8, "column")
    with drawing(st):
        figure = new_figure(st, width, 4.0, dpi=100)
        ax = figure.add_subplot()
        colors = np.tile(to_rgba("tab:blue"), (values.size, 1))
        scatter_eigenvalues(ax, st, values.real, values.imag, colors, converged, size=28.0)
        zero_line(ax, st, vertical=True, label="Re λ = 0")
        set_plane_limits(ax, values)
        ax.set_xlabel("Re λ")
        ax.set_ylabel("Im λ")
        at = "" if step is None else f" at step {step}"
        ax.set_title(f"{op.name}{at}: {values.size} eigenvalues, {op.status}", fontsize=9)
        ax.legend(loc="best", fontsize=7)
        figure.suptitle(CONVENTION_NOTE, fontsize=8, color="0.35")
    return figure


def eigenvalue_image(op: OperatorRecord, step: Optional[int] = None) -> np.ndarray:
    """:func:`eigenvalue_figure` rendered: an RGB image for any logger.

    Parameters
    ----------
    op : OperatorRecord
        Usually ``record["jacobian"]``.
    step : int, optional
        The training step, for the title.

    Returns
    -------
    numpy.ndarray
        ``uint8``, shape ``(height, width, 3)`` (480 × 400 pixels), as
        ``wandb.Image`` and ``mlflow.log_image`` take it.
    """
    figure = eigenvalue_figure(op, step)
    figure.canvas.draw()
    return np.array(figure.canvas.buffer_rgba())[..., :3]
