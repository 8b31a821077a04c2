r"""The Helmholtz split of the game Jacobian: how much of :math:`J` is rotation.

Balduzzi et al. (2018, *The Mechanics of n-Player Differentiable Games*) split

.. math::

    J = S + A, \qquad S = \tfrac12(J + J^\top) \;\text{(potential part)}, \qquad
    A = \tfrac12(J - J^\top) \;\text{(rotational part)}.

The two parts are orthogonal in the Frobenius inner product, so
:math:`\|J\|_F^2 = \|S\|_F^2 + \|A\|_F^2`, and the **rotation fraction**

.. math:: r = \frac{\|A\|_F^2}{\|S\|_F^2 + \|A\|_F^2} = \frac{\|A\|_F^2}{\|J\|_F^2} \in [0, 1]

is 0 for a potential game (every player minimises one shared function, :math:`J` is
a Hessian, :math:`A = 0`) and 1 for a purely rotational one (the bilinear game,
:math:`S = 0`). Gradient descent struggles as :math:`r \to 1`.

For two players the **zero-sum defect**

.. math:: d = \frac{\|J_{12} + J_{21}^\top\|_F}{\|J_{12}\|_F + \|J_{21}\|_F} \in [0, 1]

is 0 for a zero-sum game (:math:`L_2 = -L_1` gives :math:`J_{12} = -J_{21}^\top` by the
symmetry of mixed second derivatives) and measures how far a GAN's losses (e.g. the
non-saturating generator loss) are from one.

All norms are estimated matrix-free (Hutchinson): for a Rademacher vector :math:`u`,
:math:`\mathbb E\|Mu\|^2 = \|M\|_F^2`, with :math:`Su = (Ju + J^\top u)/2` and
:math:`Au = (Ju - J^\top u)/2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..game import Game, GameJacobian

__all__ = ["HelmholtzEstimate", "helmholtz_split"]


@dataclass(frozen=True)
class HelmholtzEstimate:
    r"""Hutchinson estimates of the Helmholtz split, each with its standard error.

    Attributes
    ----------
    symmetric_sq, symmetric_sq_se : float
        :math:`\|S\|_F^2` and its standard error.
    antisymmetric_sq, antisymmetric_sq_se : float
        :math:`\|A\|_F^2` and its standard error.
    rotation_fraction, rotation_fraction_se : float
        :math:`\|A\|_F^2 / (\|S\|_F^2 + \|A\|_F^2)` (ratio of the two means; standard
        error by the delta method).
    zero_sum_defect, zero_sum_defect_se : float or None
        :math:`\|J_{12} + J_{21}^\top\|_F / (\|J_{12}\|_F + \|J_{21}\|_F)` and its
        standard error (delta method); ``None`` unless the game has two players, NaN
        when both coupling blocks vanish.
    n_samples : int
        Rademacher probes drawn.
    n_matvec : int
        Products :math:`J u` and :math:`J^\top u` used (2 per probe, 4 for two players).
    """

    symmetric_sq: float
    symmetric_sq_se: float
    antisymmetric_sq: float
    antisymmetric_sq_se: float
    rotation_fraction: float
    rotation_fraction_se: float
    zero_sum_defect: float | None
    zero_sum_defect_se: float | None
    n_samples: int
    n_matvec: int


def helmholtz_split(
    jacobian: GameJacobian, n_samples: int = 32, *, seed: int = 0
) -> HelmholtzEstimate:
    r"""Estimate :math:`\|S\|_F^2`, :math:`\|A\|_F^2`, the rotation fraction and, for two
    players, the zero-sum defect of :math:`J` (see :mod:`specdiag.dynamics.helmholtz`).

    Each probe is a Rademacher vector :math:`u`. With one player or more than two, it
    costs :math:`J u` and :math:`J^\top u`. With two players it is split into its
    blocks :math:`u = (u_1, 0) + (0, u_2)` and costs four products, :math:`J` and
    :math:`J^\top` on each block; their sums give :math:`Ju` and :math:`J^\top u`, and
    the blocks give the coupling terms:

    .. math::

        [J(0, u_2)]_1 = J_{12}u_2, \quad [J^\top(0, u_2)]_1 = J_{21}^\top u_2, \quad
        [J(u_1, 0)]_2 = J_{21}u_1, \quad [J^\top(u_1, 0)]_2 = J_{12}^\top u_1,

    so each probe holds two estimates of :math:`\|J_{12} + J_{21}^\top\|_F^2`,
    :math:`\|J_{12}\|_F^2` and :math:`\|J_{21}\|_F^2` (from :math:`u_2` and from
    :math:`u_1`), which are averaged.

    Parameters
    ----------
    jacobian : GameJacobian
        The game Jacobian (its cached graph serves every product).
    n_samples : int
        Number of probes, at least 2 (standard errors need two).
    seed : int
        Seed of the probes' private random generator; the same seed gives the same
        estimate.

    Returns
    -------
    HelmholtzEstimate

    Examples
    --------
    >>> h = helmholtz_split(sd.GameJacobian(toys.bilinear_game().game))  # doctest: +SKIP
    >>> h.rotation_fraction, h.zero_sum_defect                            # doctest: +SKIP
    (1.0, 0.0)
    """
    if not isinstance(getattr(jacobian, "game", None), Game):
        raise TypeError(
            f"helmholtz_split needs a GameJacobian (an operator with the game's "
            f"players), got {type(jacobian).__name__}"
        )
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    game = jacobian.game
    blocks = (
        [game.player_slice(p) for p in game.player_names] if len(game.player_names) == 2 else None
    )
    gen = torch.Generator(device=jacobian.device).manual_seed(seed)
    rows = []
    for _ in range(n_samples):
        u = (
            torch.randint(0, 2, (game.n,), generator=gen, device=jacobian.device).to(jacobian.dtype)
            * 2
            - 1
        )
        rows.append(_probe(jacobian, u, blocks))
    samples = np.array(rows, dtype=np.float64)
    sym, anti = samples[:, 0], samples[:, 1]
    rotation, rotation_se = _ratio(anti, sym + anti)
    defect = defect_se = None
    if blocks is not None:
        defect, defect_se = _defect(samples[:, 2], samples[:, 3], samples[:, 4])
    return HelmholtzEstimate(
        symmetric_sq=float(sym.mean()),
        symmetric_sq_se=_se(sym),
        antisymmetric_sq=float(anti.mean()),
        antisymmetric_sq_se=_se(anti),
        rotation_fraction=rotation,
        rotation_fraction_se=rotation_se,
        zero_sum_defect=defect,
        zero_sum_defect_se=defect_se,
        n_samples=n_samples,
        n_matvec=n_samples * (4 if blocks else 2),
    )


def _probe(jacobian: GameJacobian, u: torch.Tensor, blocks: list[slice] | None) -> list[float]:
    r"""One probe: :math:`\|Su\|^2, \|Au\|^2` and, for two players, the block terms."""
    if blocks is None:
        Ju, JTu = jacobian.matvec(u), jacobian.rmatvec(u)
        return _split_norms(Ju, JTu)
    first, second = blocks
    parts = []
    for block in blocks:
        piece = torch.zeros_like(u)
        piece[block] = u[block]
        parts.append((jacobian.matvec(piece), jacobian.rmatvec(piece)))
    (J1, JT1), (J2, JT2) = parts  # J and Jᵀ of (u_1, 0) and of (0, u_2)
    sq = lambda t: float(t.pow(2).sum())  # noqa: E731
    defect = (sq(J2[first] + JT2[first]) + sq(J1[second] + JT1[second])) / 2
    coupling_12 = (sq(J2[first]) + sq(JT1[second])) / 2
    coupling_21 = (sq(JT2[first]) + sq(J1[second])) / 2
    return _split_norms(J1 + J2, JT1 + JT2) + [defect, coupling_12, coupling_21]


def _split_norms(Ju: torch.Tensor, JTu: torch.Tensor) -> list[float]:
    return [float(((Ju + JTu) / 2).pow(2).sum()), float(((Ju - JTu) / 2).pow(2).sum())]


def _se(x: np.ndarray) -> float:
    """Standard error of the mean of ``x``."""
    return float(x.std(ddof=1) / math.sqrt(len(x)))


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio of means and its delta-method standard error (NaN for a zero denominator)."""
    if den.mean() == 0:
        return math.nan, math.nan
    r = num.mean() / den.mean()
    return float(r), _se((num - r * den) / den.mean())


def _defect(m: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    r""":math:`\sqrt{\bar m} / (\sqrt{\bar a} + \sqrt{\bar b})` and its delta-method standard error."""
    ra, rb, rm = math.sqrt(a.mean()), math.sqrt(b.mean()), math.sqrt(m.mean())
    if ra + rb == 0:
        return math.nan, math.nan
    d = rm / (ra + rb)
    influence = -(d / (ra + rb)) * (
        (a - a.mean()) / (2 * ra if ra else math.inf)
        + (b - b.mean()) / (2 * rb if rb else math.inf)
    )
    if rm > 0:
        influence = influence + (m - m.mean()) / (2 * rm * (ra + rb))
    return float(d), _se(influence)
