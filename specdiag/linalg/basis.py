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

**One pass per projection.** A new vector is built in place, in the row it will occupy
(:meth:`KrylovBasis.slot`), so that one matrix-vector product over rows
``0 .. count`` (:meth:`KrylovBasis.project_norm`) returns both its projections
:math:`V_{:count}\, x` and its squared norm :math:`x^\top x`: the basis is read once per
Gram–Schmidt pass, and no separate pass over :math:`x` computes its norm. (On the CPUs we
measured, MKL's matrix products with two columns cost two matrix-vector products, so a
fused two-vector pass, as in DCGS2, would not read the basis fewer times; see
:mod:`~specdiag.linalg.krylov_schur`.)
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
    """Bytes of a basis of ``rows`` vectors of length ``n`` stored in ``dtype``.

    Per rank when sharded over ``world_size`` ranks.
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
        self.rows = rows
        self.slab = max(1, SLAB_ELEMENTS // rows)
        self._work: torch.Tensor | None = None

    @property
    def plain(self) -> bool:
        """One tensor in the working precision, not sharded: rows are used in place."""
        return not (self.converted or self.sharded)

    @property
    def nbytes(self) -> int:
        """Bytes the stored vectors take."""
        return self.V.numel() * self.V.element_size()

    # ------------------------------------------------------------------ whole vectors
    def local(self, x: torch.Tensor) -> torch.Tensor:
        """The part of a whole vector this rank keeps, a new tensor on the storage device."""
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
        r""":math:`V_{:j}^\top C` for ``C`` of shape ``(j, m)``.

        Whole vectors, shape ``(n, m)``, on the operator's device.
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
    def slot(self, i: int) -> torch.Tensor:
        """Where vector ``i`` is built, in the working precision.

        Row ``i`` itself for a plain basis (so :meth:`project_norm` reads it with the
        rows before it), else a working buffer that :meth:`commit` stores. One vector is
        built at a time.
        """
        if self.plain:
            return self.V[i]
        if self._work is None:
            self._work = torch.empty(self.length, dtype=self.dtype, device=self.storage_device)
        return self._work

    def load(self, x: torch.Tensor, whole: torch.Tensor, factor: float = 1.0) -> None:
        r"""``x`` :math:`\leftarrow` ``factor`` times this rank's part of ``whole``.

        ``whole`` is a whole vector on the operator's device; one pass does the copy and
        the scaling together.
        """
        if self.sharded:
            size = self.stop - self.start
            x[:size].copy_(whole[self.start : self.stop])
            x[size:].zero_()
            if factor != 1.0:
                x.mul_(factor)
        elif whole.device == x.device:
            torch.mul(whole, factor, out=x)
        else:
            x.copy_(whole, non_blocking=True)
            if factor != 1.0:
                x.mul_(factor)

    def commit(self, i: int, x: torch.Tensor, factor: float = 1.0) -> None:
        """Store ``factor * x`` as vector ``i`` (in place when ``x`` is row ``i``)."""
        if self.plain and _same(x, self.V[i]):
            if factor != 1.0:
                x.mul_(factor)
        else:
            self.set(i, x * factor if factor != 1.0 else x)

    def project_norm(self, x: torch.Tensor, count: int) -> torch.Tensor:
        r""":math:`[V_{:count}\, x;\ x^\top x]`: projections and squared norm together.

        ``count + 1`` numbers in the working precision on the storage device. For a
        plain basis and ``x`` = :meth:`slot` ``(count)`` this is one matrix-vector product
        over rows ``0 .. count``: the basis is read once. Sharded: summed over the group
        in one all-reduce.
        """
        if self.plain and _same(x, self.V[count]):
            g = torch.mv(self.V[: count + 1], x)
        else:
            g = torch.cat([self._project_local(x, count), torch.dot(x, x).reshape(1)])
        return self._sum(g) if self.sharded else g

    def set(self, i: int, x: torch.Tensor) -> None:
        """Store local vector ``x`` as vector ``i``."""
        if self.converted:
            self.V[i] = x * self.scale
        else:
            self.V[i] = x

    def norm(self, x: torch.Tensor) -> float:
        """The Euclidean norm of the whole vector whose local part is ``x``.

        Accurate to a few units of roundoff (see :func:`chunked_squares`).
        """
        squares = chunked_squares(x)
        if self.sharded:
            squares = self._sum(squares.reshape(1))
        return math.sqrt(float(squares))

    def dot_row(self, i: int, x: torch.Tensor) -> float:
        """The inner product of vector ``i`` with the whole vector whose local part is ``x``."""
        d = torch.dot(self.row(i), x).reshape(1)
        return float((self._sum(d) if self.sharded else d).item())

    def axpy_row(self, x: torch.Tensor, i: int, alpha: float) -> None:
        r"""``x`` :math:`\leftarrow x + \alpha` vector ``i``, in place."""
        x.add_(self.row(i), alpha=alpha)

    def project(self, x: torch.Tensor, count: int) -> torch.Tensor:
        r""":math:`V_{:count}\, x` (inner products with the first ``count`` vectors)."""
        h = self._project_local(x, count)
        return self._sum(h) if self.sharded else h

    def _project_local(self, x: torch.Tensor, count: int) -> torch.Tensor:
        if self.converted:
            h = torch.zeros(count, dtype=self.dtype, device=self.storage_device)
            for a, b in self._slabs():
                h += self.V[:count, a:b].to(self.dtype) @ x[a:b]
            h /= self.scale
        else:
            h = torch.mv(self.V[:count], x)
        return h

    def subtract(self, x: torch.Tensor, count: int, h: torch.Tensor) -> None:
        r"""``x`` :math:`\leftarrow x - V_{:count}^\top h`, in place."""
        if self.converted:
            for a, b in self._slabs():
                x[a:b].addmv_(self.V[:count, a:b].to(self.dtype).t(), h, alpha=-1.0 / self.scale)
        else:
            x.addmv_(self.V[:count].t(), h, alpha=-1.0)

    def rotate(self, first: int, stop: int, Zt: np.ndarray) -> None:
        r"""``V[first:first+p]`` :math:`\leftarrow Z^\top` ``V[first:stop]``.

        ``Zt`` has shape ``(p, stop - first)`` (a restart's truncation).
        """
        Z = torch.from_numpy(np.ascontiguousarray(Zt)).to(self.storage_device, self.dtype)
        p = Z.shape[0]
        if self.converted:
            for a, b in self._slabs():
                self.V[first : first + p, a:b] = Z @ self.V[first:stop, a:b].to(self.dtype)
        else:
            self.V[first : first + p] = torch.mm(Z, self.V[first:stop])

    def copy(self, dst: int, src: int) -> None:
        r"""Vector ``dst`` :math:`\leftarrow` vector ``src``."""
        self.V[dst] = self.V[src]

    def row(self, i: int) -> torch.Tensor:
        """Local vector ``i`` in the working precision (a view for a plain basis)."""
        if self.converted:
            return self.V[i].to(self.dtype).div_(self.scale)
        return self.V[i]

    def fill(
        self, x: torch.Tensor, count: int, d: np.ndarray, other: KrylovBasis, c: np.ndarray
    ) -> None:
        r"""``x`` :math:`\leftarrow W_{:count}^\top c - V_{:count}^\top d`, in place.

        ``W`` is ``other``, a second basis of the same layout: a residual
        :math:`A V y - V (\theta y)` from a stored :math:`A V`.
        """
        cc, dd = self._coefficients(c), self._coefficients(d)
        for a, b in self._slabs():
            x[a:b] = other._block(count, a, b).t() @ cc
            x[a:b].addmv_(self._block(count, a, b).t(), dd, alpha=-1.0)

    def residual_norms(
        self, count: int, D: np.ndarray, other: KrylovBasis, C: np.ndarray
    ) -> np.ndarray:
        r"""Column norms of :math:`W_{:count}^\top C - V_{:count}^\top D`.

        ``other`` is ``W``; a slab at a time, so no ``n x m`` temporary. Float64, on the
        host.
        """
        CC, DD = self._coefficients(C), self._coefficients(D)
        total = torch.zeros(CC.shape[1], dtype=torch.float64, device=self.storage_device)
        for a, b in self._slabs():
            r = other._block(count, a, b).t() @ CC
            r.addmm_(self._block(count, a, b).t(), DD, alpha=-1.0)
            total += (r * r).sum(dim=0, dtype=torch.float64)
        if self.sharded:
            total = self._sum(total)
        return np.sqrt(total.cpu().numpy())

    def cross(self, rows: slice, other: KrylovBasis, other_rows: slice) -> np.ndarray:
        r""":math:`V_{rows} W_{other\_rows}^\top`, float64 on the host.

        Inner products between two sets of stored vectors (``other`` is ``W``, of the
        same layout).
        """
        a, b = self.V[rows], other.V[other_rows]
        if self.converted:
            out = torch.zeros(a.shape[0], b.shape[0], dtype=self.dtype, device=self.storage_device)
            for lo, hi in self._slabs():
                out += self._block_rows(rows, lo, hi) @ other._block_rows(other_rows, lo, hi).t()
        else:
            out = torch.mm(a, b.t())
        if self.sharded:
            out = self._sum(out)
        return out.to(torch.float64).cpu().numpy()

    def _block_rows(self, rows: slice, a: int, b: int) -> torch.Tensor:
        block = self.V[rows, a:b]
        return block.to(self.dtype) / self.scale if self.converted else block

    def _coefficients(self, c: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(c)).to(self.storage_device, self.dtype)

    def _block(self, count: int, a: int, b: int) -> torch.Tensor:
        """Rows ``0 .. count``, columns ``a .. b``, in the working precision."""
        block = self.V[:count, a:b]
        return block.to(self.dtype) / self.scale if self.converted else block

    def _slabs(self) -> list[tuple[int, int]]:
        return [(a, min(a + self.slab, self.length)) for a in range(0, self.length, self.slab)]

    def _sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the group (on the operator's device: NCCL needs CUDA)."""
        on_device = t.to(self.device)
        dist.all_reduce(on_device, group=self.group)
        return on_device.to(t.device)


#: Length of the pieces whose norms :func:`chunked_squares` combines in float64.
NORM_CHUNK = 4096


def chunked_squares(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\|x\|^2` as a float64 0-dim tensor, accurate in any precision.

    From the norms of pieces of ``NORM_CHUNK`` entries, combined in float64.

    ``torch.linalg.vector_norm`` accumulates float32 in float32 over all :math:`n`
    terms: at :math:`n = 2 \cdot 10^6` it is off by some 200 units of roundoff. Pieces of
    4096 are accurate, and combining their squares in float64 keeps it so; one pass, as
    fast as the plain norm (measured: 0.26 ms for 2M floats on one core).
    """
    m = x.shape[0] // NORM_CHUNK
    parts = [torch.linalg.vector_norm(x[m * NORM_CHUNK :]).reshape(1)]
    if m:
        parts.append(torch.linalg.vector_norm(x[: m * NORM_CHUNK].view(m, NORM_CHUNK), dim=1))
    squares = torch.cat(parts).to(torch.float64)
    return (squares * squares).sum()


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors are the same view of the same memory."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()
