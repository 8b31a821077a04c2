r"""Random probe vectors for the stochastic estimators (:mod:`.density`, :mod:`.hutchpp`).

A Rademacher vector :math:`u \in \{-1, +1\}^n` has independent entries, each :math:`\pm 1`
with probability :math:`1/2`, so :math:`\mathbb E[u u^\top] = I` and
:math:`\mathbb E[u^\top M u] = \operatorname{tr} M` for every square :math:`M`; among all
such distributions it has the smallest variance of :math:`u^\top M u`
(Hutchinson, 1990): :math:`2\sum_{i \ne j} M_{ij}^2` for symmetric :math:`M`.

The signs are drawn on the host from a private :class:`torch.Generator` (one byte per
entry) and then moved to the operator's device, so a seed gives the same vectors on
every device, and the global random streams are never touched.
"""

from __future__ import annotations

import torch

__all__ = ["rademacher", "seeded_generator"]


def seeded_generator(seed: int, caller: str) -> torch.Generator:
    """A private host generator seeded with ``seed`` (an int, checked)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{caller}: seed must be an int, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def rademacher(
    shape: tuple[int, ...],
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    r"""A tensor of independent :math:`\pm 1` entries, in ``dtype`` on ``device``.

    Parameters
    ----------
    shape : tuple of int
        Its shape, e.g. ``(n,)`` or ``(k, n)`` (``k`` vectors as rows).
    generator : torch.Generator
        A host (CPU) generator: the draw is the same for every ``device``.
    dtype, device
        Of the result (the operator's).
    """
    signs = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8)
    return signs.to(device=device, dtype=dtype).mul_(2).sub_(1)
