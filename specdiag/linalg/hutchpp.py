r"""The trace of a matrix-free operator by Hutch++ (Meyer, Musco, Musco and Woodruff, 2021).

**Hutchinson.** For a Rademacher vector :math:`g \in \{\pm 1\}^n`,
:math:`\mathbb E[g^\top A g] = \operatorname{tr} A`, with variance
:math:`2\sum_{i \ne j} A_{ij}^2 \le 2\|A\|_F^2` for symmetric :math:`A`. The mean of
:math:`\ell` samples has error :math:`O(\|A\|_F / \sqrt\ell)`: poor when a few large
eigenvalues dominate :math:`\|A\|_F`, as they do in a network's Hessian.

**Hutch++.** With a budget of :math:`m` products, take :math:`k = \lfloor m/3 \rfloor`
and :math:`\ell = m - 2k`. Sketch the range of :math:`A` with a Rademacher
:math:`S \in \{\pm 1\}^{n \times k}` (:math:`k` products), orthonormalise
:math:`Q = \operatorname{orth}(AS)`, and split, with :math:`P = I - QQ^\top`,

.. math:: \operatorname{tr} A = \operatorname{tr}(Q^\top A Q) + \operatorname{tr}(P A P).

The first term is computed exactly (:math:`k` products :math:`AQ`); the second by
Hutchinson on the deflated operator, whose Frobenius norm has lost the top of the
spectrum (:math:`\ell` products :math:`A(Pg_i)`):

.. math:: t = \operatorname{tr}(Q^\top A Q) + \frac1\ell \sum_{i=1}^\ell
   (P g_i)^\top A\, (P g_i).

For symmetric positive semi-definite :math:`A`, Meyer et al. prove
:math:`|t - \operatorname{tr} A| \le \varepsilon \operatorname{tr} A` with high
probability from :math:`m = O(1/\varepsilon)` products, against
:math:`O(1/\varepsilon^2)` for Hutchinson; their argument bounds the deflated
Frobenius norm by singular values only, so for a symmetric indefinite :math:`A`
(a Hessian at a saddle, the symmetric part :math:`S = (J + J^\top)/2` of a game
Jacobian) it gives the same with the nuclear norm :math:`\|A\|_* = \sum_i |\lambda_i|`
in place of :math:`\operatorname{tr} A`.

**Standard error.** Given :math:`Q`, the first term is exact and the second is the
mean of :math:`\ell` independent samples; ``stderr`` is their sample standard
deviation over :math:`\sqrt\ell`, the standard error of :math:`t` under the
Rademacher draws :math:`g_i`. Since :math:`\mathbb E[t \mid Q] = \operatorname{tr} A`
for every :math:`Q`, its square is also an unbiased estimate of the variance of
:math:`t` over all the draws, :math:`S` included.

A non-symmetric :math:`A` still gets an unbiased estimate of :math:`\operatorname{tr} A`
(the split holds for any square matrix), but the error bound above is proven only for
symmetric matrices.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .operator import as_operator
from .sampling import rademacher, seeded_generator

__all__ = ["TraceEstimate", "trace_estimate"]

_NAME = "trace_estimate"


@dataclass(frozen=True)
class TraceEstimate:
    r"""A trace estimated by :func:`trace_estimate`.

    Attributes
    ----------
    value : float
        The estimate :math:`t` of :math:`\operatorname{tr} A`.
    stderr : float
        Its standard error under the Rademacher draws (see :mod:`specdiag.linalg.hutchpp`);
        0 when the trace was computed exactly, NaN when only one Hutchinson sample was
        drawn (``n_matvec`` of 3 to 5).
    n_matvec : int
        Operator products used.
    wall_time : float
        Seconds spent, products included.
    """

    value: float
    stderr: float
    n_matvec: int
    wall_time: float


def trace_estimate(op: Any, n_matvec: int = 100, *, seed: int = 0) -> TraceEstimate:
    r"""The trace of a symmetric matrix-free operator, by Hutch++.

    See :mod:`specdiag.linalg.hutchpp` for the method and its error. Meant for
    symmetric operators (player Hessians, :class:`~specdiag.linalg.parts.SymmetricPart`
    of a game Jacobian); a non-symmetric one gets an unbiased estimate without the
    guarantee.

    Parameters
    ----------
    op : operator or torch.Tensor
        Anything with ``shape`` ``(n, n)``, a float32/float64 ``dtype``, ``device`` and
        ``matvec(v)``; or a square tensor. Only ``matvec`` is called.
    n_matvec : int
        Product budget :math:`m \ge 3`: :math:`\lfloor m/3 \rfloor` for the sketch,
        as many for the exact low-rank part, the rest for Hutchinson. When
        :math:`n \le m` the trace is computed exactly instead, as
        :math:`\sum_i e_i^\top A e_i` (``n`` products, ``stderr = 0``).
    seed : int
        Seeds the private generator of the Rademacher vectors (the same on every
        device).

    Returns
    -------
    TraceEstimate
        ``value``, ``stderr``, ``n_matvec`` and ``wall_time``.

    Raises
    ------
    ValueError
        ``n_matvec`` is not an integer, or is below 3.
    """
    op = as_operator(op, _NAME)
    if isinstance(n_matvec, bool) or not isinstance(n_matvec, (int, np.integer)) or n_matvec < 3:
        raise ValueError(
            f"{_NAME}: n_matvec must be an integer >= 3 (a third each for the sketch, the "
            f"low-rank part and Hutchinson), got {n_matvec!r}"
        )
    generator = seeded_generator(seed, _NAME)
    start = time.perf_counter()
    n = op.shape[0]
    if n <= n_matvec:
        eye = torch.eye(n, dtype=op.dtype, device=op.device)
        value = sum(_dot(e, op.matvec(e)) for e in eye)
        return TraceEstimate(float(value), 0.0, n, time.perf_counter() - start)
    k = int(n_matvec) // 3
    Qt = _range_basis(op, rademacher((k, n), generator, op.dtype, op.device))
    low_rank = sum(_dot(q, op.matvec(q)) for q in Qt)
    samples = _deflated_hutchinson(op, Qt, int(n_matvec) - 2 * k, generator)
    stderr = float(samples.std(ddof=1)) / math.sqrt(len(samples)) if len(samples) > 1 else math.nan
    return TraceEstimate(
        value=float(low_rank + samples.mean()),
        stderr=stderr,
        n_matvec=int(n_matvec),
        wall_time=time.perf_counter() - start,
    )


def _range_basis(op: Any, sketch: torch.Tensor) -> torch.Tensor:
    r""":math:`Q^\top`, rows an orthonormal basis of the range of :math:`AS` (Householder QR).

    ``sketch`` holds the columns of :math:`S` as rows, shape ``(k, n)``; so does the result.
    """
    Y = torch.stack([op.matvec(s) for s in sketch], dim=1)
    Q, _ = torch.linalg.qr(Y)
    return Q.T.contiguous()


def _deflated_hutchinson(
    op: Any, Qt: torch.Tensor, count: int, generator: torch.Generator
) -> np.ndarray:
    r"""``count`` samples :math:`(Pg)^\top A (Pg)`, :math:`P = I - QQ^\top`, float64."""
    samples = np.empty(count)
    for i in range(count):
        g = rademacher((Qt.shape[1],), generator, op.dtype, op.device)
        g.addmv_(Qt.T, Qt @ g, alpha=-1.0)
        samples[i] = _dot(g, op.matvec(g))
    return samples


def _dot(x: torch.Tensor, y: torch.Tensor) -> float:
    r""":math:`x^\top y` accumulated in float64."""
    return torch.dot(x.double(), y.double()).item()
