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

For any number of players the **pairwise zero-sum defects**

.. math:: d_{ij} = \frac{\|J_{ij} + J_{ji}^\top\|_F}{\|J_{ij}\|_F + \|J_{ji}\|_F}, \qquad i < j,

vanish for every pair exactly when every interaction between two players is zero-sum
(:math:`L_i = c_i(x_i) + \sum_{j \ne i} g_{ij}(x_i, x_j)` with :math:`g_{ji}(x_j, x_i)
= -g_{ij}(x_i, x_j)`: a smooth market, Balduzzi et al. 2020), as far as the Jacobian
can tell; for two players :math:`d_{12}` is the zero-sum defect above.

All norms are estimated matrix-free (Hutchinson): for a Rademacher vector :math:`u`,
:math:`\mathbb E\|Mu\|^2 = \|M\|_F^2`, with :math:`Su = (Ju + J^\top u)/2` and
:math:`Au = (Ju - J^\top u)/2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

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
        Products :math:`J u` and :math:`J^\top u` used: 2 per probe, :math:`2P` per probe
        when the probes are split into the :math:`P` players' blocks (two players, or
        ``pairwise=True``).
    pairwise : dict of (str, str) to (float, float), or None
        ``{(player_i, player_j): (d_ij, standard error)}`` for every pair :math:`i < j`
        in player order (delta method; NaN when both blocks vanish); ``None`` when not
        estimated (more than two players without ``pairwise=True``). For two players
        the one entry equals ``(zero_sum_defect, zero_sum_defect_se)``.
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
    pairwise: dict[tuple[str, str], tuple[float, float]] | None = None


def helmholtz_split(
    jacobian: GameJacobian, n_samples: int = 32, *, seed: int = 0, pairwise: bool | None = None
) -> HelmholtzEstimate:
    r"""Estimate the Helmholtz split of :math:`J` (see :mod:`specdiag.dynamics.helmholtz`).

    :math:`\|S\|_F^2`, :math:`\|A\|_F^2`, the rotation fraction and, for two players
    (or every pair, with ``pairwise=True``), the zero-sum defect.

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

    With ``pairwise=True`` and :math:`P` players the probe is split into all :math:`P`
    blocks the same way, :math:`2P` products per probe, and every pair :math:`i < j`
    gets its defect :math:`d_{ij}` from :math:`[J u_j]_i = J_{ij}u_j`,
    :math:`[J^\top u_j]_i = J_{ji}^\top u_j`, :math:`[J u_i]_j = J_{ji}u_i` and
    :math:`[J^\top u_i]_j = J_{ij}^\top u_i`. For two players this is the split above:
    the pairwise defect comes at no extra cost.

    Parameters
    ----------
    jacobian : GameJacobian
        The game Jacobian (its cached graph serves every product).
    n_samples : int
        Number of probes, at least 2 (standard errors need two).
    seed : int
        Seed of the probes' private random generator; the same seed gives the same
        estimate.
    pairwise : bool, optional
        Estimate every pair's zero-sum defect (``HelmholtzEstimate.pairwise``). Default
        ``None``: only where it is free (two players); ``True``: for any number of
        players (:math:`2P` products per probe instead of 2 when :math:`P > 2`);
        ``False``: never.

    Returns
    -------
    HelmholtzEstimate

    Examples
    --------
    >>> h = helmholtz_split(sd.GameJacobian(toys.bilinear_game().game))
    >>> h.rotation_fraction, h.zero_sum_defect  # a bilinear game is all rotation
    (1.0, 0.0)
    """
    if not isinstance(getattr(jacobian, "game", None), Game):
        raise TypeError(
            f"helmholtz_split needs a GameJacobian (an operator with the game's "
            f"players), got {type(jacobian).__name__}"
        )
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if pairwise is not None and not isinstance(pairwise, bool):
        raise TypeError(f"pairwise must be True, False or None, got {pairwise!r}")
    game = jacobian.game
    players = game.player_names
    split = len(players) == 2 or (bool(pairwise) and len(players) > 1)
    blocks = [game.player_slice(p) for p in players] if split else None
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
    pairs = _pair_defects(players, samples) if blocks is not None else {}
    defect: float | None = None
    defect_se: float | None = None
    if len(players) == 2:
        defect, defect_se = pairs[players[0], players[1]]
    wanted = pairwise or (pairwise is None and len(players) <= 2)
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
        n_matvec=n_samples * (2 * len(blocks) if blocks else 2),
        pairwise=pairs if wanted else None,
    )


def _pair_defects(
    players: tuple[str, ...], samples: np.ndarray
) -> dict[tuple[str, str], tuple[float, float]]:
    """Each pair's defect and standard error from its three columns of ``samples``."""
    return {
        (players[i], players[j]): _defect(*samples[:, 2 + 3 * k : 5 + 3 * k].T)
        for k, (i, j) in enumerate(combinations(range(len(players)), 2))
    }


def _probe(jacobian: GameJacobian, u: torch.Tensor, blocks: list[slice] | None) -> list[float]:
    r"""One probe: :math:`\|Su\|^2, \|Au\|^2` and, split into blocks, three terms per pair.

    For the pair :math:`i < j`: :math:`\|J_{ij} + J_{ji}^\top\|_F^2`,
    :math:`\|J_{ij}\|_F^2` and :math:`\|J_{ji}\|_F^2`, each the mean of its two
    estimates (from :math:`u_j` and from :math:`u_i`).
    """
    if blocks is None:
        Ju, JTu = jacobian.matvec(u), jacobian.rmatvec(u)
        return _split_norms(Ju, JTu)
    parts = []
    for block in blocks:
        piece = torch.zeros_like(u)
        piece[block] = u[block]
        parts.append((jacobian.matvec(piece), jacobian.rmatvec(piece)))  # J and Jᵀ of u_block
    Ju, JTu = parts[0]
    for Jb, JTb in parts[1:]:
        Ju, JTu = Ju + Jb, JTu + JTb
    sq = lambda t: float(t.pow(2).sum())  # noqa: E731
    row = _split_norms(Ju, JTu)
    for i, j in combinations(range(len(blocks)), 2):
        (Ji, JTi), (Jj, JTj), bi, bj = parts[i], parts[j], blocks[i], blocks[j]
        row.append((sq(Jj[bi] + JTj[bi]) + sq(Ji[bj] + JTi[bj])) / 2)
        row.append((sq(Jj[bi]) + sq(JTi[bj])) / 2)  # J_ij
        row.append((sq(JTj[bi]) + sq(Ji[bj])) / 2)  # J_ji
    return row


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
    r""":math:`\sqrt{\bar m} / (\sqrt{\bar a} + \sqrt{\bar b})` and its delta-method error."""
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
