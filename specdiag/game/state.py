"""Leave the models exactly as they were.

Evaluating a loss closure to build an operator runs the user's forward passes, which
may update BatchNorm running statistics, advance spectral-norm power iterations, draw
noise from the global random streams (torch's, numpy's, Python's), flip ``training``
flags, or fire the gradient hooks training code registered. The context managers
here undo all of that, so that building and using an operator is invisible to the
training run around it.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as module_hooks

__all__ = [
    "preserved_module_state",
    "requires_grad_enabled",
    "isolated_rng",
    "autograd_on",
    "hooks_bypassed",
]


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
def isolated_rng(device: torch.device, seed: Optional[int]) -> Iterator[None]:
    """Run the block on a fork of every global random stream.

    Torch's (CPU and ``device``), numpy's global ``np.random`` and Python's ``random``.

    The global streams are left exactly as they were. With ``seed`` the forks are
    reseeded (torch with ``seed``, numpy with ``seed mod 2**32``, ``random`` with
    ``seed``), so the block draws the same numbers every time; without it the block
    draws what the training run would have drawn next, without consuming it.
    """
    devices = [device] if device.type == "cuda" else []
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        with torch.random.fork_rng(devices=devices, enabled=True):
            if seed is not None:
                torch.manual_seed(seed)
                np.random.seed(seed % 2**32)  # noqa: NPY002 (the global stream, on purpose)
                random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)


@contextlib.contextmanager
def hooks_bypassed(params: Sequence[torch.Tensor], modules: Iterable[nn.Module]) -> Iterator[None]:
    """Set aside gradient and backward hooks for the block; put them back on exit.

    The gradient hooks of ``params`` (``register_hook``) and the backward hooks of every
    module (``register_full_backward_hook``, ``register_backward_hook``, their pre-hooks,
    and the global ones of ``torch.nn.modules.module``).

    Training code uses such hooks to log, clip or rescale gradients. A probe
    differentiates the losses as written, so a hook that halves a player's gradients
    must not halve the Jacobian's blocks, and a logging hook must not fire once per
    product. Forward hooks stay: they are part of the model's computation
    (``torch.nn.utils.spectral_norm`` is one).
    """
    saved: list[tuple[Any, dict[Any, Any]]] = []
    holders: list[Any] = [p._backward_hooks for p in params if p._backward_hooks]
    for m in {id(m): m for root in modules for m in root.modules()}.values():
        holders += [m._backward_hooks, m._backward_pre_hooks]
    holders += [module_hooks._global_backward_hooks, module_hooks._global_backward_pre_hooks]
    for hooks in holders:
        if hooks:
            saved.append((hooks, dict(hooks)))
            hooks.clear()
    try:
        yield
    finally:
        for hooks, entries in saved:
            hooks.update(entries)


@contextlib.contextmanager
def autograd_on(device: torch.device) -> Iterator[None]:
    """Gradient mode on, inference mode and autocast off, whatever the caller had."""
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.autocast(device_type=device.type, enabled=False),
    ):
        yield
