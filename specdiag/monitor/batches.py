"""Which batch a probe evaluates the losses on, and the run's metadata as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, Optional

import torch

__all__ = ["ProbeBatches", "check_metadata", "to_device"]


class ProbeBatches:
    """The probe batches of a monitor: ``batches(step, current) -> [batch, ...]``.

    Parameters
    ----------
    probe_batch : object, "current", callable or None
        A fixed batch; ``"current"`` or ``None``: the batch passed to ``step()``; a
        callable ``probe_batch(step) -> batch``.
    probe_batches : sequence, optional
        Several fixed batches, each probed at every probe (instead of ``probe_batch``).

    device : torch.device, optional
        Where the batches go: the tensors of fixed batches are moved there once, those
        of the current and the callable's batches at every probe.

    Attributes
    ----------
    mode : str
        A description for the trace's configuration (``"fixed"``, ``"current"``, ...).
    fixed : bool
        Whether the batches are the same at every probe.
    count : int
        Batches per probe.

    Raises
    ------
    ValueError, TypeError
        Both arguments given, an empty ``probe_batches``, or a string other than
        ``"current"``.
    """

    def __init__(
        self,
        probe_batch: Any = None,
        probe_batches: Optional[Sequence[Any]] = None,
        *,
        device: Optional[torch.device] = None,
    ) -> None:
        self.device = device
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
        if self._fixed is not None:
            self._fixed = [to_device(b, device) for b in self._fixed]

    @property
    def fixed(self) -> bool:
        """Whether the batches are the same at every probe."""
        return self._fixed is not None

    @property
    def count(self) -> int:
        """Batches per probe."""
        return 1 if self._fixed is None else len(self._fixed)

    def __call__(self, step: int, current: Any) -> list[Any]:
        """The batches to probe at ``step``, given the current training batch."""
        if self._fixed is not None:
            return self._fixed
        if self._source is not None:
            return [to_device(self._source(step), self.device)]
        return [to_device(current, self.device)]


def to_device(batch: Any, device: Optional[torch.device]) -> Any:
    """``batch`` with every tensor in it (in dicts, lists and tuples) on ``device``."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch if batch.device == device else batch.to(device)
    if isinstance(batch, Mapping):
        return (
            type(batch)({k: to_device(v, device) for k, v in batch.items()})
            if isinstance(batch, dict)
            else {k: to_device(v, device) for k, v in batch.items()}
        )
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a named tuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


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
