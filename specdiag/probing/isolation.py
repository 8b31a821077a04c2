"""Leave training as it was: ``.grad`` fields, random streams, wrapped models."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ..game import Game, unwrap_module
from ..game.state import hooks_bypassed, isolated_rng

__all__ = ["untouched", "eager"]


@contextlib.contextmanager
def untouched(game: Game) -> Iterator[list[str]]:
    """Isolate training from a probe for the block; put everything back on exit.

    The ``.grad`` fields are set aside, every random stream (torch, numpy, Python's
    ``random``) is forked, gradient and backward hooks are set aside, and wrapped models
    run through their underlying modules.

    Yields a list that, on exit, holds the names of parameters whose version counter
    moved (changed in place during the block).
    """
    params = game.parameters()
    versions = [p._version for p in params]
    grads = [(p, p.grad) for p in params if p.is_leaf]
    for p, _ in grads:
        p.grad = None
    moved: list[str] = []
    try:
        with (
            isolated_rng(game.device, None),
            hooks_bypassed(params, game.modules),
            eager(game.wrappers),
        ):
            yield moved
    finally:
        for p, g in grads:
            p.grad = g
        names = game.parameter_names()
        moved.extend(names[i] for i, (p, v) in enumerate(zip(params, versions)) if p._version != v)


@contextlib.contextmanager
def eager(wrappers: Sequence[nn.Module]) -> Iterator[None]:
    """Run wrapped models through their underlying modules, eagerly, for the block.

    DDP, DataParallel and ``torch.compile`` wrappers call their underlying module
    directly, and compiled functions run eagerly.

    A DDP forward would synchronise buffers and prepare gradient reduction (collectives
    that only the probing rank would join); a compiled module cannot be differentiated
    twice. The probe needs neither.
    """
    missing = object()
    saved = [(w, w.__dict__.get("forward", missing)) for w in wrappers]
    for w, _ in saved:
        w.__dict__["forward"] = unwrap_module(w)
    # Nothing is compiled unless torch.compile imported dynamo (importing it takes a second).
    compiled = "torch._dynamo" in sys.modules and hasattr(torch.compiler, "set_stance")
    try:
        with torch.compiler.set_stance("force_eager") if compiled else contextlib.nullcontext():
            yield
    finally:
        for w, forward in reversed(saved):
            if forward is missing:
                del w.__dict__["forward"]
            else:
                w.__dict__["forward"] = forward
