r"""Probes under ``torch.distributed``: every rank probes its own shard of the batch.

In a job where ``torch.distributed`` is initialised, each rank evaluates the losses on
its own shard :math:`B_r` of the probe batch and builds its operators there
(:math:`J_r`, :math:`H_{i,r}`). Every product is then averaged across the ranks with
one all-reduce,

.. math:: A u = \sum_r w_r\, A_r u, \qquad w_r = \frac{s_r}{\sum_q s_q},

so the solver sees the operator of the global batch :math:`B = \bigcup_r B_r`. This is
exact when each loss is a *mean* over its batch and :math:`s_r = |B_r|` (the default,
equal :math:`s_r = 1`, assumes equal shards, as ``DistributedSampler`` makes them):
then :math:`L_B = \sum_r w_r L_{B_r}`, and differentiation is linear.

The Krylov iteration runs identically on every rank: the same start vector (same
seed), the same products (an all-reduce leaves the same bits on every rank), the same
small projected problems. So all ranks take the same decisions (convergence, restarts,
breakdowns) without exchanging them. Only a failure needs a message: after the losses
and the field are built, one all-reduce of a status vector (:func:`agree`) tells every
rank whether any rank failed, and which, before any product runs; a product that
raises on one rank is flagged inside the product's own all-reduce. No rank is left
waiting in a collective the others never join.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import distributed as dist

from ..linalg.operator import LinearOperator
from ..registry import STATUS_NAMES, status_code

__all__ = [
    "ProbeGroup",
    "resolve_group",
    "AveragedOperator",
    "Agreement",
    "agree",
    "all_agree",
]


@dataclass(frozen=True)
class ProbeGroup:
    """The ranks that probe together.

    Attributes
    ----------
    group : ProcessGroup or None
        The process group (``None``: the default group).
    rank, world_size : int
        This process's rank in ``group`` and the group's size (at least 2).
    """

    group: Any
    rank: int
    world_size: int

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the group, in place; returns it."""
        dist.all_reduce(tensor, group=self.group)
        return tensor


def resolve_group(distributed: bool | Any | None) -> ProbeGroup | None:
    """The group a probe works in, or ``None`` for a single-process probe.

    Parameters
    ----------
    distributed : None, bool or ProcessGroup
        ``None`` (automatic): the default group when ``torch.distributed`` is
        initialised and has more than one rank. ``False``: probe alone (each rank on
        its own data, no collective; e.g. a probe on rank 0 only). ``True``: the
        default group, which must be initialised. A ``ProcessGroup``: that group.

    A group of one rank is a single-process probe.
    """
    if distributed is False:
        return None
    available = dist.is_available() and dist.is_initialized()
    if distributed is None and not available:
        return None
    if not available:
        raise ValueError(
            "distributed probes need torch.distributed to be initialised "
            "(torch.distributed.init_process_group); pass distributed=None or False otherwise"
        )
    group = None if distributed in (None, True) else distributed
    if group is not None and not isinstance(group, dist.ProcessGroup):
        raise TypeError(
            "distributed must be None, True, False or a torch.distributed.ProcessGroup, "
            f"got {type(distributed).__name__}"
        )
    world_size = dist.get_world_size(group)
    if world_size == 1:
        return None
    return ProbeGroup(group, dist.get_rank(group), world_size)


def check_device(group: ProbeGroup, device: torch.device) -> None:
    """Raise if NCCL would be given tensors off the current CUDA device."""
    if device.type == "cuda" and torch.cuda.current_device() != device.index:
        raise ValueError(
            f"the game is on {device} but the current CUDA device is "
            f"cuda:{torch.cuda.current_device()}; NCCL collectives need the tensors on the "
            "current device: call torch.cuda.set_device(local_rank) before training"
        )


class AveragedOperator(LinearOperator):
    r"""The weighted average over the ranks of each rank's operator, :math:`\sum_r w_r A_r`.

    Every ``matvec`` and ``rmatvec`` computes this rank's product, scales it by its
    weight :math:`w_r` and sums over the group with one all-reduce, so every rank
    returns the same vector. The all-reduced buffer has one more entry, a failure
    flag: a rank whose product raises contributes zeros and the flag, and every rank
    then raises (the failing rank its own exception), instead of the others waiting.

    Parameters
    ----------
    local : LinearOperator
        This rank's operator (on its shard of the batch): anything with ``shape``,
        ``dtype``, ``device``, ``matvec`` and ``rmatvec``.
    group : ProbeGroup
    weight : float
        :math:`w_r`; the weights sum to 1 over the group.
    """

    def __init__(self, local: Any, group: ProbeGroup, weight: float) -> None:
        super().__init__(local.shape[0], local.dtype, local.device)
        self.local, self.group, self.weight = local, group, float(weight)
        self.game = getattr(local, "game", None)  # the players, for block-wise estimates
        self.symmetric = getattr(local, "symmetric", False)
        self.prefer_transpose = getattr(local, "prefer_transpose", False)

    def _reduce(
        self, product: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor
    ) -> torch.Tensor:
        n = self.shape[0]
        buf = torch.empty(n + 1, dtype=self.dtype, device=self.device)
        error: Exception | None = None
        try:
            torch.mul(product(u), self.weight, out=buf[:n])
            buf[n] = 0.0
        except Exception as exc:  # re-raised below, once every rank knows
            error = exc
            buf.zero_()
            buf[n] = 1.0
        self.group.all_reduce(buf)
        if error is not None:
            raise error
        failed = int(buf[n].item())
        if failed:
            raise RuntimeError(
                f"a product failed on {failed} other rank(s); their own records say why"
            )
        return buf[:n]

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        return self._reduce(self.local.matvec, u)

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        return self._reduce(self.local.rmatvec, u)

    def __repr__(self) -> str:
        return f"AveragedOperator({self.local!r}, world_size={self.group.world_size})"


@dataclass(frozen=True)
class Agreement:
    r"""What every rank learns from :func:`agree`.

    Attributes
    ----------
    statuses : list of str
        Each rank's status (``"ok"``, ``"nonfinite"`` or ``"error"``).
    weight : float
        This rank's normalised weight :math:`w_r = s_r / \sum_q s_q`.
    losses : list of float
        The weighted average of the ranks' losses (the global batch's losses).
    """

    statuses: list[str]
    weight: float
    losses: list[float]

    @property
    def failed(self) -> dict[int, str]:
        """``{rank: status}`` of the ranks that failed."""
        return {r: s for r, s in enumerate(self.statuses) if s != "ok"}


def agree(
    group: ProbeGroup, status: str, share: float, losses: Sequence[float], device: torch.device
) -> Agreement:
    r"""One all-reduce: every rank's status, the weights' sum and the weighted losses.

    Parameters
    ----------
    group : ProbeGroup
    status : str
        This rank's status, a name of :data:`specdiag.registry.STATUSES`.
    share : float
        This rank's share :math:`s_r > 0` of the global batch (any unit).
    losses : sequence of float
        This rank's losses (ignored unless ``status == "ok"``).
    device : torch.device
        Where the collective's tensor lives (the game's device: NCCL needs CUDA).
    """
    W = group.world_size
    buf = torch.zeros(W + 1 + len(losses), dtype=torch.float64, device=device)
    buf[group.rank] = status_code(status)
    buf[W] = share
    if status == "ok":
        buf[W + 1 :] = share * torch.tensor(list(losses), dtype=torch.float64)
    values = group.all_reduce(buf).tolist()
    total = values[W]
    return Agreement(
        statuses=[STATUS_NAMES[int(c)] for c in values[:W]],
        weight=share / total,
        losses=[v / total for v in values[W + 1 :]],
    )


def all_agree(group: ProbeGroup, ok: bool, device: torch.device | str = "cpu") -> bool:
    """Whether ``ok`` holds on every rank (one all-reduce)."""
    flag = torch.tensor([0.0 if ok else 1.0], device=device)
    return group.all_reduce(flag).item() == 0.0


def check_share(share: float | None) -> float:
    """``share`` as a positive float (default 1: equal shards), or a ValueError."""
    if share is None:
        return 1.0
    if (
        isinstance(share, bool)
        or not isinstance(share, (int, float))
        or not math.isfinite(share)
        or share <= 0
    ):
        raise ValueError(
            f"shard_weight must be a positive number (this rank's share of the global batch, "
            f"e.g. its number of examples), got {share!r}"
        )
    return float(share)
