r"""Flat vectors over a list of parameter tensors.

Krylov solvers work on vectors in :math:`\mathbb{R}^n`; games own lists of parameter
tensors. :class:`ParameterLayout` is the one place that maps between the two: the flat
vector is the concatenation of every tensor flattened in row-major order, in the order
the layout was built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import torch

__all__ = ["ParameterLayout"]


@dataclass(frozen=True)
class ParameterLayout:
    """Shapes and offsets of a list of tensors laid end to end in one flat vector.

    Parameters
    ----------
    shapes : tuple of torch.Size
        Shape of each tensor, in order.
    dtype : torch.dtype
        Floating-point dtype shared by all tensors.
    device : torch.device
        Device shared by all tensors.

    Notes
    -----
    ``split`` returns *views* into the flat vector (no copy), ``join`` copies once. The
    sizes are computed once per layout (products call ``split`` and ``join`` on every
    application of an operator).
    """

    shapes: tuple[torch.Size, ...]
    dtype: torch.dtype
    device: torch.device

    @classmethod
    def of(cls, tensors: Sequence[torch.Tensor]) -> "ParameterLayout":
        """Layout of ``tensors``, which must share one dtype and one device."""
        if not tensors:
            raise ValueError("a ParameterLayout needs at least one tensor")
        dtypes = {t.dtype for t in tensors}
        devices = {t.device for t in tensors}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValueError(
                "all parameters must share one dtype and one device, found dtypes "
                f"{sorted(map(str, dtypes))} on devices {sorted(map(str, devices))}; "
                "move every player to the same device and dtype (e.g. model.to(device, dtype))"
            )
        return cls(tuple(t.shape for t in tensors), tensors[0].dtype, tensors[0].device)

    @cached_property
    def numels(self) -> tuple[int, ...]:
        """Number of elements of each tensor."""
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @cached_property
    def size(self) -> int:
        """Length ``n`` of the flat vector."""
        return sum(self.numels)

    def split(self, vector: torch.Tensor) -> list[torch.Tensor]:
        """Views of a flat vector of length ``n`` shaped like the tensors."""
        if vector.shape != (self.size,):
            raise ValueError(
                f"expected a vector of shape ({self.size},), got {tuple(vector.shape)}"
            )
        return [
            piece.view(shape)
            for piece, shape in zip(vector.split_with_sizes(list(self.numels)), self.shapes)
        ]

    def join(self, tensors: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Concatenate tensors shaped like the layout into one flat vector.

        ``None`` entries (an unused parameter in ``torch.autograd.grad``) count as zeros.
        The result is detached from any autograd graph.
        """
        if len(tensors) != len(self.shapes):
            raise ValueError(f"expected {len(self.shapes)} tensors, got {len(tensors)}")
        present = [t for t in tensors if t is not None and t.dtype == self.dtype]
        if len(present) == len(tensors):  # one copy kernel
            return torch.cat([t.detach().reshape(-1) for t in present])
        out = torch.empty(self.size, dtype=self.dtype, device=self.device)
        for piece, t in zip(torch.split(out, list(self.numels)), tensors):
            if t is None:
                piece.zero_()
            else:
                piece.copy_(t.detach().reshape(-1))
        return out
