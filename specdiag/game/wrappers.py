"""Models wrapped for training: DDP, DataParallel and ``torch.compile``.

A game reads its players' parameters, buffers and flags through the underlying
modules, and a probe runs the losses closure through them (see
:func:`specdiag.probing.isolation.eager`).
"""

from __future__ import annotations

from torch import nn

__all__ = ["unwrap_module", "module_wrappers"]


def _wrapped(module: nn.Module) -> nn.Module | None:
    """The module one wrapper (DDP, DataParallel, ``torch.compile``) holds, or None."""
    if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return module.module
    inner = getattr(module, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else None


def module_wrappers(module: nn.Module) -> list[nn.Module]:
    """The wrappers around a module, outermost first (empty for a plain module)."""
    wrappers = []
    while (inner := _wrapped(module)) is not None:
        wrappers.append(module)
        module = inner
    return wrappers


def unwrap_module(module: nn.Module) -> nn.Module:
    """The module under ``DistributedDataParallel``/``DataParallel`` and ``torch.compile``."""
    while (inner := _wrapped(module)) is not None:
        module = inner
    return module
