r"""What a probe checks before it trusts its products, and how it explains failures.

:func:`derivative_check` compares one product :math:`J u` of the probe's field with
central finite differences of the vector field,

.. math:: J u \approx \frac{v(x + h u) - v(x - h u)}{2h},

at step sizes :math:`h_j = h_0 / 10^j`, :math:`h_0 = \epsilon^{1/3}` times the
parameters' root-mean-square size. For a smooth field the differences converge as
:math:`O(h^2)` until rounding, :math:`O(\epsilon / h)`, takes over; a piecewise-linear
network (ReLU, LeakyReLU) makes them wrong by :math:`O(1)` until :math:`h` is small
enough to cross no kink. So the check takes the two consecutive differences that
agree best, :math:`e = \min_j \|D_{h_j} - D_{h_{j+1}}\|`, as the differences' own
error, and reports a mismatch only when the product differs from :math:`D_{h_j}` by
clearly more than :math:`e` and than a floor set by the dtype: then the autograd graph
does not carry the true second derivative (a custom ``autograd.Function`` marked
``@once_differentiable`` or with a non-differentiable backward,
``checkpoint(use_reentrant=True)``, a fused kernel), and every eigenvalue of the
probe is suspect. Where no two differences agree (float32 with many kinks), the check
is inconclusive and says nothing.

Spectral normalisation (both ``torch.nn.utils.spectral_norm`` and its
parametrization) runs a power iteration under ``no_grad`` in every training-mode
forward: its vectors depend on the weights, but autograd treats them as constants, as
training does. The check compares like with like: it freezes those power iterations
(their modules in eval mode) and builds its own field for the comparison, so the
function differentiated and the function differenced are the same.

:func:`explain` turns an exception raised while differentiating the losses into a
message that names the likely cause and what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.spectral_norm import SpectralNorm

from ..game import Game, GameField

__all__ = ["derivative_check", "explain", "FiniteDifferences", "frozen_power_iterations"]

#: Relative discrepancy below which a product passes, by dtype.
_FLOOR = {torch.float64: 1e-6, torch.float32: 3e-3, torch.float16: 3e-2, torch.bfloat16: 3e-2}
#: A mismatch must exceed the differences' own error estimate by this factor.
_MARGIN = 10.0
#: Step sizes tried, each ten times smaller than the one before.
STEPS = 4

_HINTS = (
    (
        ("backward through the graph a second time", "have already been freed"),
        "the losses' graph was freed before the probe differentiated it: the losses closure "
        "must recompute the losses from the batch it is given (no .backward(), no optimiser "
        "step, no loss tensors kept from the training step)",
    ),
    (
        ("once_differentiable", "double backward", "twice", "derivative for"),
        "an operation in the losses has no second derivative (a custom autograd.Function "
        "marked @once_differentiable, a fused kernel): use one with a differentiable "
        "backward, or an eager implementation, while probing",
    ),
    (
        ("checkpoint",),
        "torch.utils.checkpoint with use_reentrant=True cannot be differentiated with "
        "torch.autograd.grad: use checkpoint(..., use_reentrant=False)",
    ),
    (
        ("modified by an inplace operation",),
        "the losses closure (or a hook) modifies a tensor in place that the graph needs: "
        "compute the losses without in-place updates of parameters or saved activations",
    ),
)


def explain(exc: BaseException) -> str:
    """``"Type.

    Message"`` of an exception, with the likely cause and what to do when the message matches a
    known failure of differentiating the losses twice.
    """
    text = str(exc).strip()
    cause = exc.__cause__
    detail = (
        f"{type(exc).__name__}: {text}"
        if text
        else (
            f"{type(exc).__name__} (no message)"
            + (f", caused by {type(cause).__name__}: {cause}" if cause is not None else "")
        )
    )
    lowered = f"{text} {cause or ''}".lower()
    for needles, hint in _HINTS:
        if any(needle in lowered for needle in needles):
            return f"{detail}; {hint}"
    return detail


class FiniteDifferences:
    r"""Central differences of the field along ``u``: :math:`(v(x + hu) - v(x - hu))/2h`.

    The parameters are moved by swapping their storage (``p.data``) and put back as
    the very same tensors afterwards, so their values, version counters and every graph
    that saved them are untouched.
    """

    def __init__(self, game: Game, batch: Any, u: torch.Tensor, seed: Optional[int]) -> None:
        self.game, self.batch, self.u, self.seed = game, batch, u, seed
        self.pieces = game.layout.split(u)

    @contextlib.contextmanager
    def _moved(self, h: float) -> Iterator[None]:
        params = self.game.parameters()
        saved = [p.data for p in params]
        try:
            with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, always
                for p, d, piece in zip(params, saved, self.pieces):
                    p.data = d + h * piece
            yield
        finally:
            for p, d in zip(params, saved):
                p.data = d

    def __call__(self, h: float) -> torch.Tensor:
        """The central difference with step ``h``."""
        values = []
        for sign in (1.0, -1.0):
            with self._moved(sign * h):
                values.append(self.game.vector_field(self.batch, seed=self.seed))
        return (values[0] - values[1]) / (2 * h)


@contextlib.contextmanager
def frozen_power_iterations(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Spectral normalisation's power iterations switched off for the block.

    Their modules are in eval mode, so they reuse their stored vectors; the flags are
    restored after.
    """
    frozen = []
    for root in modules:
        for m in root.modules():
            hooks = m._forward_pre_hooks.values()
            if isinstance(m, _SpectralNorm) or any(isinstance(h, SpectralNorm) for h in hooks):
                frozen.append((m, m.training))
                m.training = False
    try:
        yield
    finally:
        for m, flag in frozen:
            m.training = flag


def _step(game: Game) -> float:
    r"""The step size.

    The cube root of the dtype's epsilon (central differences' optimum for :math:`O(h^2)` truncation
    against :math:`O(\epsilon/h)` rounding), times the parameters' root-mean-square size.
    """
    x = game.layout.join(game.parameters())
    scale = float(x.pow(2).mean().sqrt()) if x.numel() else 1.0
    return float(torch.finfo(game.dtype).eps) ** (1 / 3) * max(scale, 1e-3)


def derivative_check(
    game: Game, batch: Any, *, seed: Optional[int], generator_seed: int = 0
) -> Optional[str]:
    """A message when a product :math:`J u` disagrees with central differences, or None.

    See the module's documentation for the differences and the test.

    Costs one evaluation of the field with its graph, :data:`STEPS` pairs without, and
    one product :math:`J u`. The models are left exactly as they were.
    """
    gen = torch.Generator(device=game.device).manual_seed(generator_seed)
    u = torch.randint(0, 2, (game.n,), generator=gen, device=game.device).to(game.dtype) * 2 - 1
    differences = FiniteDifferences(game, batch, u, seed)
    h = _step(game)
    with frozen_power_iterations(game.modules):
        product = GameField(game, batch, seed=seed).jvp(u)
        sweep = [differences(h / 10**j) for j in range(STEPS)]
    scale = max(float(product.norm()), torch.finfo(game.dtype).tiny)
    changes = [float((a - b).norm()) / scale for a, b in zip(sweep, sweep[1:])]
    best = min(range(len(changes)), key=changes.__getitem__)
    error = changes[best]
    discrepancy = float((sweep[best] - product).norm()) / scale
    if discrepancy <= max(_FLOOR.get(game.dtype, 3e-3), _MARGIN * error):
        return None
    return (
        f"a product of J differs from central finite differences of v by {discrepancy:.2g} "
        f"(relative; the differences agree with themselves to {error:.1g}): the autograd graph "
        "does not carry the true second derivative, so these eigenvalues are not J's. Likely "
        "causes: a custom autograd.Function whose backward is not differentiable (or marked "
        "@once_differentiable), checkpoint(use_reentrant=True), a fused kernel without double "
        "backward, or a .detach() of one player's output in another's loss. Use "
        "differentiable implementations while probing."
    )
