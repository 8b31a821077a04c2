"""Which batch a probe evaluates the losses on, and the run's metadata as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, Optional

__all__ = ["ProbeBatches", "check_metadata"]


class ProbeBatches:
    """The probe batches of a monitor: ``batches(step, current) -> [batch, ...]``.

    Parameters
    ----------
    probe_batch : object, "current", callable or None
        A fixed batch; ``"current"`` or ``None``: the batch passed to ``step()``; a
        callable ``probe_batch(step) -> batch``.
    probe_batches : sequence, optional
        Several fixed batches, each probed at every probe (instead of ``probe_batch``).

    Attributes
    ----------
    mode : str
        A description for the trace's configuration (``"fixed"``, ``"current"``, ...).

    Raises
    ------
    ValueError, TypeError
        Both arguments given, an empty ``probe_batches``, or a string other than
        ``"current"``.
    """

    def __init__(self, probe_batch: Any = None, probe_batches: Optional[Sequence[Any]] = None):
        self._fixed: Optional[list[Any]] = None
        self._source: Optional[Callable[[int], Any]] = None
        if probe_batches is not None:
            if probe_batch is not None:
                raise ValueError("pass probe_batch or probe_batches, not both")
            if isinstance(probe_batches, (str, bytes)) or not isinstance(probe_batches, Iterable):
                raise TypeError(
                    "probe_batches must be a sequence of batches, got "
                    f"{type(probe_batches).__name__}"
                )
            self._fixed = list(probe_batches)
            if not self._fixed:
                raise ValueError("probe_batches is empty; give at least one batch")
            self.mode = f"{len(self._fixed)} fixed batches"
        elif isinstance(probe_batch, str) or probe_batch is None:
            if probe_batch not in (None, "current"):
                raise ValueError(
                    f"probe_batch={probe_batch!r}: the only string accepted is 'current' (the "
                    "batch passed to step()); pass a batch, a callable probe_batch(step) or None"
                )
            self.mode = "current"
        elif callable(probe_batch):
            self._source = probe_batch
            self.mode = f"callable {getattr(probe_batch, '__name__', repr(probe_batch))}"
        else:
            self._fixed = [probe_batch]
            self.mode = "fixed"

    def __call__(self, step: int, current: Any) -> list[Any]:
        """The batches to probe at ``step``, given the current training batch."""
        if self._fixed is not None:
            return self._fixed
        if self._source is not None:
            return [self._source(step)]
        return [current]


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metadata`` as a plain dict that JSON can store, or a TypeError saying why not."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
    try:
        return json.loads(json.dumps(dict(metadata), allow_nan=True))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"metadata must hold JSON values (str, numbers, bools, None, lists, dicts): {error}"
        ) from None
