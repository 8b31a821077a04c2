r"""Gram–Schmidt against a Krylov basis, and the scale the iterations work at.

**One read of the basis per pass.** :func:`orthogonalize` makes a vector :math:`x`
orthogonal to the first ``count`` basis vectors by classical Gram–Schmidt (CGS). The
vector is built in the basis row it will occupy, so one matrix-vector product over rows
``0 .. count`` gives both the coefficients :math:`h = V^\top x` and :math:`\|x\|^2`
(:meth:`~.basis.KrylovBasis.project_norm`); one more pass subtracts :math:`V h`. Whether
the pass must be repeated is decided without another pass, by Pythagoras,

.. math:: \|x - V h\|^2 = \|x\|^2 - \|h\|^2 + h^\top (I - V^\top V) h,

whose last term is of the order of the unit roundoff :math:`u` times :math:`\|x\|^2`:
when the pass kept more than half of :math:`\|x\|^2` (the DGKS test
:math:`\|x'\| > \|x\|/\sqrt 2` of Daniel, Gragg, Kaufman and Stewart, ARPACK's choice),
:math:`x'` is orthogonal to working precision; otherwise the pass is repeated (CGS2:
"twice is enough", Giraud, Langou and Rozložník 2005), at most ``MAX_PASSES`` times.
The final norm, by which the vector is divided, is computed directly (one pass over
the vector alone, with torch's cascaded summation): the fused product accumulates
:math:`x^\top x` in the working precision over all :math:`n` terms, which in float32
at :math:`n \sim 10^5` is off by some hundred :math:`u`, and would leave the basis
vectors' norms that far from one. Each pass costs one host round trip (the
``count + 1`` numbers of the projection), the norm one more.

Why not one fused pass for two vectors (DCGS2, Świrydowicz et al. 2020, which folds
the second pass of step :math:`j` into the first of step :math:`j + 1`)? It reads the
basis exactly twice per step, against :math:`2 \times 1.45` on average here, but only
if a product with two columns costs what a product with one does. On the CPUs we
measured (MKL, one thread, 300k--2M rows) ``torch.mm`` with two columns took 1.6--2.3
times a ``torch.mv``, so the fused pass read no fewer bytes' worth of time; DGKS with
fused norms is the faster scheme there.

**Scale.** Operators whose eigenvalues are near the ends of the floating-point range
(:math:`|\lambda| \sim 10^{-24}` or :math:`10^{19}` in float32) would underflow or
overflow the squared norms. :class:`Scale` fixes, at the first non-zero product, a power
of two :math:`s` near :math:`\max_i |(A v_0)_i|` and the iterations work with
:math:`A / s`: multiplying by a power of two is exact, so the iteration on a well-scaled
operator is bitwise the same as without it, and every threshold (breakdown, DGKS,
convergence) is relative to the norms seen.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import NonFiniteError

__all__ = ["orthogonalize", "check_product", "Scale", "unit", "MAX_PASSES", "BREAKDOWN"]

#: DGKS: a pass that keeps more than this fraction of the squared norm is final.
KEEP = 0.5
#: Gram–Schmidt passes at most (the third only near an invariant subspace).
MAX_PASSES = 3
#: An expansion vector below ``BREAKDOWN * eps`` times its norm before Gram–Schmidt means
#: the basis spans an invariant subspace (up to rounding).
BREAKDOWN = 64.0


def orthogonalize(
    basis: Any, x: torch.Tensor, count: int, product: int = 0
) -> tuple[np.ndarray, float, float]:
    """Orthogonalise ``x`` in place against vectors ``0 .. count - 1`` of ``basis``.

    ``x`` should be ``basis.slot(count)`` (then each pass reads the basis once).

    Returns
    -------
    h : numpy.ndarray
        The coefficients subtracted, float64, summed over the passes.
    norm, norm0 : float
        The norm of ``x`` after and before.

    Raises
    ------
    NonFiniteError
        ``x`` or a coefficient is NaN or Inf (``product`` names the product in the
        message).
    """
    total = np.zeros(count)
    norm0 = -1.0
    for _ in range(MAX_PASSES):
        g = basis.project_norm(x, count)
        gh = g.to(torch.float64).cpu().numpy()
        h, xx = gh[:count], float(gh[count])
        if not (math.isfinite(xx) and np.isfinite(h).all()):
            raise NonFiniteError(f"the operator returned NaN or Inf at product {product}")
        if norm0 < 0.0:
            norm0 = math.sqrt(xx)
        if xx == 0.0:
            return total, 0.0, norm0
        basis.subtract(x, count, g[:count])
        total += h
        if xx - float(h @ h) > KEEP * xx:  # Pythagoras: the pass kept most of the norm
            break
    return total, basis.norm(x), norm0


def check_product(w: Any, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``w`` if it is a tensor of shape ``(n,)``, ``dtype``, on ``device``.

    Raises
    ------
    TypeError
        Not a tensor, or the wrong dtype or device.
    ValueError
        The wrong shape.
    """
    expected = f"expected a torch.Tensor of shape ({n},), dtype {dtype}, on {device}"
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"the operator's matvec returned {type(w).__name__}; {expected}")
    if tuple(w.shape) != (n,):
        raise ValueError(f"the operator's matvec returned shape {tuple(w.shape)}; {expected}")
    if w.dtype != dtype or w.device != device:
        raise TypeError(f"the operator's matvec returned dtype {w.dtype} on {w.device}; {expected}")
    return w


class Scale:
    r"""The power of two :math:`s` an iteration divides every product by.

    Fixed at the first product that is not exactly zero, :math:`s = 2^e` with
    :math:`2^{e-1} \le \max_i |w_i| < 2^e`, clamped so that :math:`1/s` is a normal
    number of ``dtype``. Until then (a zero operator, or a start vector in its null
    space) :math:`s = 1`.
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.limit = math.frexp(torch.finfo(dtype).max)[1] - 8
        self.value: float | None = None

    @property
    def s(self) -> float:
        """The scale (1 until fixed)."""
        return 1.0 if self.value is None else self.value

    def factor(self, w: torch.Tensor) -> float:
        """``1 / s``, fixing ``s`` from ``w`` if not fixed yet.

        Raises
        ------
        NonFiniteError
            ``w`` holds NaN or Inf (checked on the first product only; later ones by
            the Gram–Schmidt passes).
        """
        if self.value is None:
            top = float(torch.linalg.vector_norm(w, ord=math.inf))
            if not math.isfinite(top):
                raise NonFiniteError("the operator returned NaN or Inf at product 1")
            if top == 0.0:
                return 1.0
            exponent = min(max(math.frexp(top)[1], -self.limit), self.limit)
            self.value = math.ldexp(1.0, exponent)
        return 1.0 / self.value


def unit(v: torch.Tensor) -> torch.Tensor:
    """``v / ||v||`` without overflow or underflow in the squares.

    Raises
    ------
    ValueError
        ``v`` is zero or not finite.
    """
    top = float(torch.linalg.vector_norm(v, ord=math.inf))
    if not math.isfinite(top) or top == 0.0:
        raise ValueError("v0 must be a finite, non-zero vector")
    v = v * math.ldexp(1.0, -math.frexp(top)[1])
    return v / torch.linalg.vector_norm(v)
