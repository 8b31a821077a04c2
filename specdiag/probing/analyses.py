r"""Analyses a probe adds to its eigenvalues when asked.

Where eigenvectors live, how fast the leading directions turn, and the spectral density of a
Hessian.

**Shares.** For an eigenvector :math:`x` (unit, complex for a pair of :math:`J`) and a
block of coordinates :math:`B` (one parameter tensor, or one player),
:math:`s_B = \sum_{i \in B} |x_i|^2 / \sum_i |x_i|^2`: the share of the direction
carried by that block; the shares of one eigenvector sum to 1. For :math:`J` the
eigenvectors are left ones (of :math:`J^\top`, computed with the cheaper product
:math:`J^\top u`) unless right ones are asked for (``shares="right"``, products
:math:`J u`); for a symmetric Hessian there is no difference.

**Subspace turn.** Between consecutive probes, the principal angles
:math:`\theta_j` between the subspaces spanned by the top eigenvectors (real and
imaginary parts of complex ones) have cosines the singular values of
:math:`Q_{t-1}^\top Q_t` (orthonormal bases :math:`Q`). ``subspace_overlap`` is their
mean square, 1 when the leading directions did not move and near 0 when they turned
away.

**Spectral density.** Stochastic Lanczos quadrature
(:func:`~specdiag.spectral_density`) of a player's Hessian or of the symmetric part
:math:`S = (J + J^\top)/2`; a probe keeps its quadrature nodes and weights, from which
the density on any grid follows (``specdiag.plot`` draws it on one grid over training).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..game.flat import ParameterLayout

__all__ = [
    "tensor_shares",
    "block_shares",
    "orthonormal_span",
    "principal_cosines",
    "DENSITY_PREFIX",
    "SYMMETRIC",
]

#: Operators of kind "density" are named ``density.<target>``.
DENSITY_PREFIX = "density."
#: The target name of :math:`S = (J + J^\top)/2`.
SYMMETRIC = "symmetric"


def tensor_shares(vectors: torch.Tensor, layout: ParameterLayout) -> np.ndarray:
    r"""``(m, T)``.

    The share of each of the layout's ``T`` tensors in each of the ``m`` eigenvectors (columns of
    ``vectors``, real or complex, shape ``(n, m)``).
    """
    weight = vectors.abs().pow(2).to(torch.float64)
    pieces = torch.split(weight, list(layout.numels), dim=0)
    parts = torch.stack([w.sum(dim=0) for w in pieces], dim=1)
    total = parts.sum(dim=1, keepdim=True)
    return (parts / torch.where(total > 0, total, torch.ones_like(total))).cpu().numpy()


def block_shares(shares: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Per-tensor shares ``(m, T)`` summed over consecutive blocks of ``sizes`` tensors."""
    bounds = np.cumsum([0, *sizes])
    return np.stack([shares[:, a:b].sum(axis=1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)


def orthonormal_span(vectors: torch.Tensor) -> torch.Tensor:
    r"""An orthonormal real basis of the span of ``vectors``, float64, on their device.

    Complex columns contribute their real and imaginary parts. The ``m`` eigenvectors of
    a set of eigenvalues closed under conjugation span a real space of dimension ``m``:
    a pair's two columns give the same parts (up to sign), and a real eigenvalue's
    vector has an imaginary part that is rounding noise. The basis is therefore the
    left singular vectors of the stacked parts for the largest singular values, at most
    ``m`` of them, and none below :math:`\sqrt{\epsilon}` of the largest in the vectors'
    precision (a QR without pivoting would keep columns outside the span).
    """
    parts = [vectors.real, vectors.imag] if vectors.is_complex() else [vectors]
    stacked = torch.cat(parts, dim=1).to(torch.float64)
    u, s, _ = torch.linalg.svd(stacked, full_matrices=False)
    if s.numel() == 0:
        return u
    floor = math.sqrt(torch.finfo(vectors.real.dtype).eps) * float(s[0])
    rank = min(int((s > floor).sum()), vectors.shape[1])
    return u[:, :rank]


def principal_cosines(previous: Optional[torch.Tensor], current: torch.Tensor) -> np.ndarray:
    """Cosines of the principal angles between two orthonormal bases, largest first.

    Empty when there is no previous basis or the shapes differ (a smaller operator).
    """
    if previous is None or previous.shape[0] != current.shape[0]:
        return np.empty(0)
    overlap = previous.to(current.device).T @ current
    return torch.linalg.svdvals(overlap).clamp(max=1.0).cpu().numpy()
