"""PyTorch-Ignite: probe the game's spectrum while an ``Engine`` runs.

:class:`SpectrumHandler` connects a :class:`~specdiag.SpectrumMonitor` to an engine:
after every iteration it passes the step and the batch to the monitor, whose ``every``
decides when to probe, and when the run completes, is terminated or raises it closes
the monitor and detaches itself. :func:`attach_spectrum_monitor` builds and attaches
one in a call.

Step convention: the step is ``engine.state.iteration - 1``, the 0-based index of the
batch just completed, counted over the whole run (Ignite's ``iteration`` is 1-based
and does not restart at each epoch), the same number as ``step`` in
``for step, batch in enumerate(loader)``.

The schedule belongs to the monitor (``every=4`` probes at steps 0, 4, 8, ..., as in a
plain loop), not to an Ignite event filter: ``Events.ITERATION_COMPLETED(every=4)``
fires after iterations 4, 8, 12, which are steps 3, 7, 11. To probe on some other
event (say ``Events.EPOCH_COMPLETED``), pass it as ``event``: the handler then probes
at every firing of it, whatever the monitor's ``every``.
"""

from __future__ import annotations

from typing import Any, Callable, Union

from ignite.engine import Engine, Events
from ignite.engine.events import CallableEventWithFilter, EventsList

from ..monitor import SpectrumMonitor

__all__ = ["SpectrumHandler", "attach_spectrum_monitor"]

EventSpec = Union[CallableEventWithFilter, EventsList]


class SpectrumHandler:
    """Run a :class:`~specdiag.SpectrumMonitor` from an Ignite ``Engine``.

    Parameters
    ----------
    monitor : SpectrumMonitor
        The monitor to drive. When the run ends the handler closes it and detaches
        itself; to continue training with another ``engine.run(...)``, attach a new
        monitor on the same path with ``resume=True`` (it appends to the trace).
    batch_fn : callable, optional
        ``batch_fn(batch) -> game batch``: turns ``engine.state.batch`` into the batch
        the game's loss closure takes. Called only when a probe is due. Default: the
        engine's batch as it is.
    event : ignite event, optional
        When to consider probing. Default (``None``): after every iteration, probing
        when ``monitor.due(step)`` (the monitor's ``every`` is the schedule). Any other
        event, e.g. ``Events.EPOCH_COMPLETED`` or ``Events.ITERATION_COMPLETED(every=100)``:
        probe at each firing (``force=True``), the step still being the index of the
        last completed batch.

    Examples
    --------
    >>> from ignite.engine import Engine
    >>> gan = toys.mog_gan(hidden=8, depth=1)
    >>> trainer = Engine(lambda engine, batch: None)  # your training step
    >>> monitor = sd.SpectrumMonitor(
    ...     gan.game, "run.h5", every=2, k=2, operators=("jacobian",),
    ...     probe_batch=gan.sample(64, torch.Generator().manual_seed(0)))
    >>> handler = SpectrumHandler(monitor).attach(trainer)
    >>> _ = trainer.run(range(5), max_epochs=1)
    >>> sd.open_trace("run.h5").probe_steps()
    array([0, 2, 4])
    """

    def __init__(
        self,
        monitor: SpectrumMonitor,
        *,
        batch_fn: Callable[[Any], Any] | None = None,
        event: EventSpec | None = None,
    ) -> None:
        if not all(callable(getattr(monitor, name, None)) for name in ("due", "step", "close")):
            raise TypeError(
                f"monitor must be a specdiag.SpectrumMonitor, got {type(monitor).__name__}"
            )
        if batch_fn is not None and not callable(batch_fn):
            raise TypeError(f"batch_fn must be callable or None, got {type(batch_fn).__name__}")
        self.monitor = monitor
        self.batch_fn = batch_fn
        self.event = event
        self._engine: Engine | None = None
        self._registered: list[tuple[Any, Callable[..., None]]] = []

    def __call__(self, engine: Engine) -> None:
        """Pass the batch just completed to the monitor (probes when due or forced)."""
        step = engine.state.iteration - 1
        force = self.event is not None
        if force or self.monitor.due(step):
            batch = engine.state.batch
            self.monitor.step(
                step, batch if self.batch_fn is None else self.batch_fn(batch), force=force
            )

    def attach(self, engine: Engine) -> SpectrumHandler:
        """Register on ``engine`` for one run.

        Probe on the event; when the run completes, is terminated or raises, close the monitor and
        detach. Returns the handler itself.

        Ignite re-raises an exception from the run only when no handler is registered
        for ``Events.EXCEPTION_RAISED``; registering one to close the monitor would
        swallow it. So the closing handler re-raises the exception unless a handler
        other than specdiag's is registered for ``EXCEPTION_RAISED`` (which then
        decides, as it would without specdiag).
        """
        if self._engine is not None:
            raise RuntimeError(
                "this SpectrumHandler is already attached to an engine; detach it first"
            )
        self._engine = engine
        self._registered = [
            *(
                (event, self)
                for event in _events(
                    Events.ITERATION_COMPLETED if self.event is None else self.event
                )
            ),
            (Events.COMPLETED, self._finish),
            (Events.TERMINATE, self._finish),
            (Events.EXCEPTION_RAISED, self._finish_and_reraise),
        ]
        for event, handler in self._registered:
            engine.add_event_handler(event, handler)
        return self

    def detach(self) -> None:
        """Remove this handler's event handlers from the engine (the monitor stays as it is)."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        for event, handler in self._registered:
            if engine.has_event_handler(handler, event):
                engine.remove_event_handler(handler, event)
        self._registered = []
        # Ignite re-raises when the key is absent, not when its list is empty: an empty
        # list left behind would swallow every later exception of the run.
        handlers = engine._event_handlers
        if Events.EXCEPTION_RAISED in handlers and not handlers[Events.EXCEPTION_RAISED]:
            del handlers[Events.EXCEPTION_RAISED]

    def _finish(self, engine: Engine) -> None:
        self.monitor.close()
        self.detach()

    def _finish_and_reraise(self, engine: Engine, exception: BaseException) -> None:
        registered = [
            handler for handler, *_ in engine._event_handlers.get(Events.EXCEPTION_RAISED, ())
        ]
        ours = [
            h.__self__
            for h in registered
            if isinstance(getattr(h, "__self__", None), SpectrumHandler)
        ]
        for spectrum_handler in ours:  # the first to run finishes every SpectrumHandler here
            spectrum_handler._finish(engine)
        if len(ours) == len(registered):
            raise exception


def _events(spec: EventSpec) -> list[CallableEventWithFilter]:
    return list(spec) if isinstance(spec, EventsList) else [spec]


def attach_spectrum_monitor(
    engine: Engine,
    monitor: SpectrumMonitor,
    *,
    batch_fn: Callable[[Any], Any] | None = None,
    event: EventSpec | None = None,
) -> SpectrumHandler:
    """Attach ``monitor`` to ``engine`` (see :class:`SpectrumHandler`) and return the handler.

    The monitor's ``every`` counts iterations (batches): ``every=4`` probes after the
    batches with 0-based indices 0, 4, 8, ... of the whole run. When the run
    completes, is terminated or raises, the monitor is closed and the handler detached.
    """
    return SpectrumHandler(monitor, batch_fn=batch_fn, event=event).attach(engine)
