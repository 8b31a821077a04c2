"""Leave the models exactly as they were.

Evaluating a loss closure to build an operator runs the user's forward passes, which
may update BatchNorm running statistics, advance spectral-norm power iterations, draw
noise from the global random stream, or flip ``training`` flags. The context managers
here undo all of that, so that building and using an operator is invisible to the
training run around it.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Sequence

import torch
from torch import nn

__all__ = ["preserved_module_state", "requires_grad_enabled", "isolated_rng", "autograd_on"]


@contextlib.contextmanager
def requires_grad_enabled(params: Sequence[torch.Tensor]) -> Iterator[None]:
    """Temporarily set ``requires_grad=True`` on ``params`` and restore the flags.

    Training code that freezes a player between steps (``p.requires_grad_(False)``)
    would otherwise make ``torch.autograd.grad`` fail.
    """
    frozen = [p for p in params if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)


@contextlib.contextmanager
def preserved_module_state(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Run the block on copies of the modules' buffers; restore ``training`` flags.

    Inside the block every registered buffer (BatchNorm running statistics, spectral
    norm's ``u`` and ``v``, ...) is replaced by a copy, so forward passes update the
    copies and the autograd graph saves the copies. On exit the original buffer
    objects, never written to, are put back. Writing the old values back in place
    instead would bump the version counters of tensors that a train-mode BatchNorm
    saved for backward, and break every later product through the graph.
    """
    mods = list({id(m): m for root in modules for m in root.modules()}.values())
    flags = [(m, m.training) for m in mods]
    copies: dict[int, torch.Tensor] = {}
    originals: list[tuple[nn.Module, str, torch.Tensor]] = []
    for m in mods:
        for name, b in m._buffers.items():
            if b is not None:
                originals.append((m, name, b))
                m._buffers[name] = copies.setdefault(id(b), b.detach().clone())
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag
        for m, name, b in originals:
            m._buffers[name] = b


@contextlib.contextmanager
def isolated_rng(device: torch.device, seed: int | None) -> Iterator[None]:
    """Run the block on a fork of the global random streams (CPU and ``device``).

    The global streams are left exactly as they were. With ``seed`` the fork is
    reseeded, so the block draws the same numbers every time; without it the block
    draws what the training run would have drawn next, without consuming it.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=True):
        if seed is not None:
            torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def autograd_on(device: torch.device) -> Iterator[None]:
    """Gradient mode on, inference mode and autocast off, whatever the caller had."""
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.autocast(device_type=device.type, enabled=False),
    ):
        yield
