"""Adapters from training frameworks to :class:`~specdiag.SpectrumMonitor`.

Each adapter lives in its own module and imports its framework only there, so
``import specdiag`` (and this package) never needs a training framework:

* :mod:`specdiag.integrations.lightning`:
  :class:`~specdiag.integrations.lightning.SpectrumCallback`, a Lightning 2.x callback
  (``lightning.pytorch`` or ``pytorch_lightning``);
* :mod:`specdiag.integrations.ignite`: :class:`~specdiag.integrations.ignite.SpectrumHandler`
  and :func:`~specdiag.integrations.ignite.attach_spectrum_monitor` for PyTorch-Ignite;
* :mod:`specdiag.integrations.tensorboard`: the
  :class:`~specdiag.monitor.tensorboard.TensorBoardLogger` (scalars, eigenvalue
  histograms and spectrum figures in TensorBoard), re-exported from the monitor layer.

Hugging Face ``accelerate`` needs no adapter: call the monitor from the training loop
on the main process (``docs/integrations.md`` shows how).

Step convention, the same in every adapter and in a plain loop: the ``step`` given to
:meth:`SpectrumMonitor.step` is the 0-based index of the training batch just
completed, counted over the whole run (epochs included), i.e. the number of batches
completed before it: ``step`` in ``for step, batch in enumerate(loader)``. It is not
an optimiser-step counter such as Lightning's ``trainer.global_step``, which advances
once per optimiser step (twice per batch in a GAN with two optimisers).
"""

__all__: list[str] = []
