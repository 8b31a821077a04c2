r"""How much memory a probe takes, told before it runs.

A probe holds, besides the model and its optimiser:

* the **graph of** :math:`v` (``create_graph=True``): about the activations of one
  training step's forward and backward pass, kept for the probe's lifetime, plus the
  backward's own intermediates (typically 2--3x a training step's activations). It
  depends on the model and the batch, so it is not estimated here: the check in
  :func:`~specdiag.probe` runs *after* the graph is built and sees what is left;
* the **Krylov basis**: :math:`(\mathrm{ncv} + 1)\, \lceil n/W \rceil\, b_s` bytes
  (:math:`b_s` bytes per stored number, :math:`W` ranks when sharded), for the
  largest operator probed (they are solved one after the other);
* a **restart's** truncation :math:`V \leftarrow Z^\top V`, which writes a temporary
  of up to :math:`\mathrm{ncv}\, \lceil n/W \rceil\, b` bytes (when the basis is
  stored in a lower precision, a slab at a time: at most two slabs of
  ``SLAB_ELEMENTS`` numbers, 128 MiB in float32);
* **working vectors** of length :math:`n` in the operator's precision (:math:`b`
  bytes): the product's input and output, the per-tensor gradients it is joined from
  and the vector being orthogonalised, :math:`4n b`; one more :math:`n b` for the
  all-reduce buffer of a distributed probe and one for the all-gathered input of a
  sharded basis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch

from ..game import Game
from ..linalg.basis import SLAB_ELEMENTS, basis_bytes
from ..linalg.options import default_ncv
from ..registry import update_method
from .analyses import DENSITY_PREFIX, SYMMETRIC

__all__ = ["ProbeMemory", "probe_memory", "available_memory", "roomy_ncv", "choose_ncv"]

#: Working vectors of length n a product and one orthogonalisation step hold at once.
WORKING_VECTORS = 4
#: A roomy basis is used when it takes at most this share of the free memory.
ROOMY_SHARE = 0.05


def roomy_ncv(k: int) -> int:
    r"""The basis a probe takes when memory allows: ``max(3k, 30)`` vectors.

    A larger basis restarts less often and keeps more of the unwanted spectrum
    deflated, so a solve needs fewer products: on the 69k-parameter MoG GAN at
    :math:`k = 10`, 258 products for the Jacobian and both Hessians against 301 with
    :func:`~specdiag.linalg.options.default_ncv`'s 21 (at :math:`k = 8`, 201 against
    208). Each step's Gram--Schmidt pass reads the basis once, which costs far less
    than a product of :math:`J` while :math:`\mathrm{ncv} \ll n`.
    """
    return max(3 * k, 30)


def choose_ncv(k: int, n: int, dtype: torch.dtype, device: torch.device) -> int:
    """The basis size of a solve whose ``ncv`` was not given.

    :func:`roomy_ncv` when its basis takes at most :data:`ROOMY_SHARE` of the memory
    free on ``device`` now, else :func:`~specdiag.linalg.options.default_ncv`.
    """
    roomy = roomy_ncv(k)
    if n <= roomy + 1:
        return default_ncv(k)
    if basis_bytes(roomy + 1, n, dtype) <= ROOMY_SHARE * available_memory(device):
        return roomy
    return default_ncv(k)


@dataclass(frozen=True)
class ProbeMemory:
    """The memory a probe needs beyond the model and the graph of ``v``, in bytes.

    Attributes
    ----------
    n : int
        Order of the largest operator probed.
    ncv : int
        Krylov basis size used for it.
    world_size : int
        Ranks the basis is sharded over (1: not sharded).
    basis, restart : int
        The basis, and a restart's temporary, on ``basis_device``.
    vectors : int
        Working vectors on ``device`` (the game's).
    device, basis_device : torch.device
    """

    n: int
    ncv: int
    world_size: int
    basis: int
    restart: int
    vectors: int
    device: torch.device
    basis_device: torch.device

    @property
    def total(self) -> int:
        """Vectors held at once: basis, restart workspace and the extra vectors."""
        return self.basis + self.restart + self.vectors

    def needed(self) -> dict[torch.device, int]:
        """Bytes needed on each device."""
        out = {self.device: self.vectors}
        out[self.basis_device] = out.get(self.basis_device, 0) + self.basis + self.restart
        return out

    def shortfall(self) -> str | None:
        """Why the probe would not fit in the memory available now, or ``None``.

        The message names the options that would make it fit.
        """
        for device, needed in self.needed().items():
            free = available_memory(device)
            if needed > free:
                hints = []
                if self.basis_device.type != "cpu":
                    hints.append("basis_device='cpu' (keep the basis in host memory)")
                hints.append("basis_dtype=torch.float16 (half the bytes)")
                if self.world_size == 1:
                    hints.append("shard_basis=True (under torch.distributed, 1/W per rank)")
                hints.append("a smaller ncv or k")
                return (
                    f"a probe needs {_gib(needed)} on {device} (basis {_gib(self.basis)}, restart "
                    f"{_gib(self.restart)}, vectors {_gib(self.vectors)} for n = {self.n:,}, ncv = "
                    f"{self.ncv}) but only {_gib(free)} are free; pass " + ", or ".join(hints)
                )
        return None

    def __str__(self) -> str:
        return (
            f"ProbeMemory(n={self.n:,}, ncv={self.ncv}, world_size={self.world_size}: basis "
            f"{_gib(self.basis)} + restart {_gib(self.restart)} on {self.basis_device}, vectors "
            f"{_gib(self.vectors)} on {self.device}; total {_gib(self.total)})"
        )


def probe_memory(
    game: Game,
    *,
    k: int = 10,
    ncv: int | None = None,
    operators: Sequence[str] | None = None,
    basis_device: torch.device | str | None = None,
    basis_dtype: torch.dtype | None = None,
    world_size: int = 1,
    shard_basis: bool = False,
    update: str | None = None,
) -> ProbeMemory:
    r"""The memory a probe with these settings takes, beyond the model and the graph.

    Parameters
    ----------
    game : Game
    k, ncv, operators, basis_device, basis_dtype, shard_basis
        As for :func:`~specdiag.probe`.
    world_size : int
        Ranks of a distributed probe (the all-reduce buffer; the basis shards when
        ``shard_basis``).
    update : str, optional
        The method of the update operator probed as operator ``"update"``: methods
        with memory (optimistic, momentum) act on :math:`2n` numbers.

    Returns
    -------
    ProbeMemory
        The breakdown; ``str()`` of it is one readable line, ``shortfall()`` says
        whether it fits in the memory free now.

    Examples
    --------
    >>> from specdiag import toys
    >>> m = probe_memory(toys.mog_gan(hidden=576, depth=4).game, k=10)
    >>> m.basis                        # 22 float32 vectors of 2,007,363 numbers
    176647944
    """
    names = ("jacobian", *game.player_names) if operators is None else tuple(operators)
    n = max(_order(game, name, update) for name in names)
    ncv = min(default_ncv(k) if ncv is None else ncv, n)
    shards = world_size if shard_basis else 1
    work = torch.empty((), dtype=game.dtype).element_size()
    storage = game.dtype if basis_dtype is None else basis_dtype
    device = game.device
    where = device if basis_device is None else torch.device(basis_device)
    if n <= ncv:  # solved densely: the assembled matrix and LAPACK's float64 copies
        basis, restart = n * n * (work + 16), 0
    else:
        basis = basis_bytes(ncv + 1, n, storage, shards)
        converted = storage != game.dtype
        restart = (
            2 * min(SLAB_ELEMENTS, ncv * -(-n // shards)) * work
            if converted
            else basis_bytes(ncv, n, game.dtype, shards)
        )
    extra = (world_size > 1) + (shards > 1)
    return ProbeMemory(
        n=n,
        ncv=ncv,
        world_size=shards,
        basis=basis,
        restart=restart,
        vectors=(WORKING_VECTORS + extra) * n * work,
        device=device,
        basis_device=where,
    )


def _order(game: Game, name: str, update: str | None) -> int:
    """The order of a probed operator.

    The Jacobian's, a player's Hessian's, the update operator's (``2n`` on the augmented state), the
    Helmholtz split's (``J``'s).
    """
    if name == "update":
        return game.n * (2 if update is not None and update_method(update).augmented else 1)
    if name.startswith(DENSITY_PREFIX):  # a density's Lanczos basis, on its target
        target = name[len(DENSITY_PREFIX) :]
        return game.n if target == SYMMETRIC else game.sizes[target]
    return game.n if name in ("jacobian", "helmholtz") else game.sizes[name]


def available_memory(device: torch.device | str) -> int:
    """Bytes that can be allocated on ``device`` now.

    CUDA: free device memory plus what PyTorch's allocator holds unused. CPU:
    ``MemAvailable`` of ``/proc/meminfo`` (the kernel's estimate, page cache
    included), else the free physical pages.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _gib(nbytes: int) -> str:
    """``nbytes`` in the largest binary unit that keeps it at least 1."""
    size, unit = float(nbytes), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{nbytes} B" if unit == "B" else f"{size:.3g} {unit}"
