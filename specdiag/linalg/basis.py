r"""The Krylov basis of the eigensolvers: where its vectors live and how they are stored.

The basis :math:`V` holds ``ncv + 1`` vectors of length :math:`n`, so
:math:`(\mathrm{ncv} + 1)\, n` numbers: for a 1B-parameter model and ``ncv = 20``,
84 GB in float32, more than a GPU holds next to the model. :class:`KrylovBasis` offers
three ways to shrink or move it, combinable:

* **on the host** (``storage_device="cpu"``): the vectors live in host memory
  (page-locked when the operator is on CUDA, so copies overlap); the Gram–Schmidt
  work runs there, each product's input goes to the device and its output comes back
  (:math:`2n` numbers over PCIe per product);
* **in a lower precision** (``storage_dtype=torch.float16`` or ``torch.bfloat16`` for a
  float32 operator): half the bytes. Vectors are stored as :math:`\sqrt n\, v` (unit
  vectors have entries near :math:`1/\sqrt n`, below float16's normal range for large
  :math:`n`) and read back in the working precision, a slab of columns at a time. The
  stored basis is orthonormal to about the storage precision's unit roundoff
  :math:`u_s` (float16 :math:`4.9\times 10^{-4}`, bfloat16 :math:`3.9\times 10^{-3}`),
  so Ritz values are accurate to about :math:`u_s \|A\|`: use it with
  ``tol >= 1e-3`` (float16) or when a percent is enough (bfloat16);
* **sharded over a process group** (``group``): rank :math:`r` of :math:`W` keeps
  entries :math:`[rL, (r+1)L)` of every vector, :math:`L = \lceil n/W \rceil`; inner
  products and norms are summed over the group with an all-reduce, and a product's
  input is all-gathered (the product itself must return the same vector on every
  rank, as an all-reduced average does). Memory per rank falls as :math:`1/W`.

With none of these the basis is one tensor on the operator's device in its dtype, and
the operations are exactly the plain ones (no copies, no conversions).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import distributed as dist

__all__ = ["KrylovBasis", "basis_bytes"]

#: Working-precision elements read at once from a converted basis (bounds the transient).
SLAB_ELEMENTS = 1 << 24


def basis_bytes(rows: int, n: int, dtype: torch.dtype, world_size: int = 1) -> int:
    """Bytes of a basis of ``rows`` vectors of length ``n`` stored in ``dtype``, per rank
    when sharded over ``world_size`` ranks.
    """
    length = -(-n // world_size)
    return rows * length * torch.empty((), dtype=dtype).element_size()


class KrylovBasis:
    r"""``rows`` vectors of length ``n`` for a Krylov iteration.

    Vectors handed to and returned by the methods are *local*: this rank's slice
    (padded to :math:`L`) when sharded, else the whole vector; in the working
    ``dtype``, on ``storage_device``. :meth:`local` and :meth:`full` convert from and
    to whole vectors on the operator's device.

    Parameters
    ----------
    rows, n : int
        Number of vectors and their length.
    dtype, device : torch.dtype, torch.device
        The operator's: the working precision and where products run.
    storage_dtype : torch.dtype, optional
        How the vectors are stored (default ``dtype``); at most as wide as ``dtype``.
    storage_device : torch.device or str, optional
        Where they are stored (default ``device``).
    group : ProcessGroup or bool, optional
        Shard the vectors over this ``torch.distributed`` group (``True``: the default
        group). Every rank must run the same iteration.
    """

    def __init__(
        self,
        rows: int,
        n: int,
        dtype: torch.dtype,
        device: torch.device,
        *,
        storage_dtype: torch.dtype | None = None,
        storage_device: torch.device | str | None = None,
        group: Any = None,
    ) -> None:
        storage_dtype = dtype if storage_dtype is None else storage_dtype
        if (
            not storage_dtype.is_floating_point
            or torch.finfo(storage_dtype).bits > torch.finfo(dtype).bits
        ):
            raise ValueError(
                f"basis_dtype must be a floating dtype no wider than the operator's {dtype}, got "
                f"{storage_dtype}: use torch.float16 or torch.bfloat16 to halve a float32 basis"
            )
        self.n, self.dtype, self.device = n, dtype, torch.device(device)
        self.storage_device = (
            self.device if storage_device is None else torch.device(storage_device)
        )
        self.sharded = group is not None and group is not False
        self.group, self.rank, self.world_size = None, 0, 1
        if self.sharded:
            if not (dist.is_available() and dist.is_initialized()):
                raise ValueError("a sharded basis needs torch.distributed to be initialised")
            self.group = None if group is True else group
            self.rank, self.world_size = dist.get_rank(self.group), dist.get_world_size(self.group)
        self.length = -(-n // self.world_size)
        self.start = min(n, self.rank * self.length)
        self.stop = min(n, self.start + self.length)
        self.converted = storage_dtype != dtype
        self.scale = math.sqrt(n) if self.converted else 1.0
        pin = self.storage_device.type == "cpu" and self.device.type == "cuda"
        self.V = torch.empty(
            rows, self.length, dtype=storage_dtype, device=self.storage_device, pin_memory=pin
        )
        self.slab = max(1, SLAB_ELEMENTS // rows)

    @property
    def nbytes(self) -> int:
        return self.V.numel() * self.V.element_size()

    # ------------------------------------------------------------------ whole vectors
    def local(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's part of a whole vector, a new tensor on the storage device."""
        if not self.sharded:
            return x.to(self.storage_device, copy=True)
        out = torch.zeros(self.length, dtype=self.dtype, device=self.storage_device)
        out[: self.stop - self.start] = x[self.start : self.stop]
        return out

    def full(self, i: int) -> torch.Tensor:
        """Vector ``i`` whole, in the working precision, on the operator's device."""
        row = self.V[i]
        if self.converted:
            row = row.to(self.dtype).div_(self.scale)
        row = row.to(self.device, non_blocking=True)
        if not self.sharded:
            return row
        return self._gather(row)[: self.n]

    def combine(self, coefficients: np.ndarray) -> torch.Tensor:
        r""":math:`V_{:j}^\top C` for ``C`` of shape ``(j, m)``: whole vectors, shape
        ``(n, m)``, on the operator's device.
        """
        j = coefficients.shape[0]
        C = torch.from_numpy(np.ascontiguousarray(coefficients)).to(self.storage_device, self.dtype)
        if self.converted:
            out = torch.empty(self.length, C.shape[1], dtype=self.dtype, device=self.storage_device)
            for a, b in self._slabs():
                out[a:b] = self.V[:j, a:b].to(self.dtype).t() @ C
            out /= self.scale
        else:
            out = self.V[:j].t() @ C
        out = out.to(self.device)
        return self._gather(out)[: self.n] if self.sharded else out

    def _gather(self, local: torch.Tensor) -> torch.Tensor:
        out = torch.empty(
            (self.world_size * local.shape[0], *local.shape[1:]),
            dtype=local.dtype,
            device=local.device,
        )
        dist.all_gather_single(out, local.contiguous(), group=self.group)
        return out

    # ------------------------------------------------------------------ local vectors
    def set(self, i: int, x: torch.Tensor) -> None:
        """Store local vector ``x`` as vector ``i``."""
        if self.converted:
            self.V[i] = x * self.scale
        else:
            self.V[i] = x

    def norm(self, x: torch.Tensor) -> float:
        """The Euclidean norm of the whole vector whose local part is ``x``."""
        if not self.sharded:
            return torch.linalg.vector_norm(x).item()
        return math.sqrt(self._sum(torch.dot(x, x).reshape(1)).item())

    def project(self, x: torch.Tensor, count: int) -> torch.Tensor:
        r""":math:`V_{:count}\, x` (inner products with the first ``count`` vectors)."""
        if self.converted:
            h = torch.zeros(count, dtype=self.dtype, device=self.storage_device)
            for a, b in self._slabs():
                h += self.V[:count, a:b].to(self.dtype) @ x[a:b]
            h /= self.scale
        else:
            h = torch.mv(self.V[:count], x)
        return self._sum(h) if self.sharded else h

    def subtract(self, x: torch.Tensor, count: int, h: torch.Tensor) -> None:
        r"""``x`` :math:`\leftarrow x - V_{:count}^\top h`, in place."""
        if self.converted:
            for a, b in self._slabs():
                x[a:b].addmv_(self.V[:count, a:b].to(self.dtype).t(), h, alpha=-1.0 / self.scale)
        else:
            x.addmv_(self.V[:count].t(), h, alpha=-1.0)

    def rotate(self, first: int, stop: int, Zt: np.ndarray) -> None:
        r"""``V[first:first+p]`` :math:`\leftarrow Z^\top` ``V[first:stop]`` for ``Zt`` of
        shape ``(p, stop - first)`` (a restart's truncation).
        """
        Z = torch.from_numpy(np.ascontiguousarray(Zt)).to(self.storage_device, self.dtype)
        p = Z.shape[0]
        if self.converted:
            for a, b in self._slabs():
                self.V[first : first + p, a:b] = Z @ self.V[first:stop, a:b].to(self.dtype)
        else:
            self.V[first : first + p] = torch.mm(Z, self.V[first:stop])

    def copy(self, dst: int, src: int) -> None:
        self.V[dst] = self.V[src]

    def _slabs(self) -> list[tuple[int, int]]:
        return [(a, min(a + self.slab, self.length)) for a in range(0, self.length, self.slab)]

    def _sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the group (on the operator's device: NCCL needs CUDA)."""
        on_device = t.to(self.device)
        dist.all_reduce(on_device, group=self.group)
        return on_device.to(t.device)
