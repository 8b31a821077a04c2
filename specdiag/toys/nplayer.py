r"""Games of more than two players: a four-player rotation and a smooth market.

* :func:`four_player_game` -> :class:`FourPlayerGame`: the four-player linear game of
  Balduzzi et al. (2018, *The Mechanics of n-Player Differentiable Games*), whose field
  is a pure rotation; closed-form spectra of :math:`J` and of the symplectic gradient
  adjustment's Jacobian.
* :func:`smooth_market` -> :class:`SmoothMarket`: a smooth market (Balduzzi et al.,
  2020, *Smooth markets: A basic mechanism for organizing gradient-based learners*):
  every interaction between two players is zero-sum, so :math:`J_{ij} = -J_{ji}^\top`
  for every pair, at every point, although the game is nonlinear.

Descent convention: player :math:`i` minimises :math:`L_i`, :math:`v = (\nabla_{x_1}
L_1, \dots, \nabla_{x_P} L_P)`, :math:`J = \partial v / \partial x`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..game import Game

__all__ = ["FourPlayerGame", "four_player_game", "SmoothMarket", "smooth_market"]


class FourPlayerGame:
    r"""Four scalar players :math:`w_1, \dots, w_4` with :math:`L_i = w_i (A w)_i`.

    :math:`A` is antisymmetric with :math:`+1` above the diagonal (and :math:`-1`
    below). Since :math:`A_{ii} = 0`, :math:`\partial L_i / \partial w_i = (Aw)_i +
    w_i A_{ii} = (Aw)_i`, so the field is :math:`\xi = Aw` and :math:`J = A` at every
    point: a pure rotation around the equilibrium :math:`w = 0`.

    Spectrum of :math:`J`. For a :math:`4 \times 4` antisymmetric matrix
    :math:`\det(\lambda I - A) = \lambda^4 + (\sum_{i<j} A_{ij}^2)\lambda^2 +
    \operatorname{Pf}(A)^2` with :math:`\operatorname{Pf}(A) = A_{12}A_{34} - A_{13}A_{24}
    + A_{14}A_{23} = 1`, here :math:`\lambda^4 + 6\lambda^2 + 1`. So :math:`\lambda^2 =
    -3 \pm 2\sqrt2 = -(\sqrt2 \mp 1)^2` and

    .. math:: \operatorname{eig}(J) = \pm i(\sqrt2 + 1),\; \pm i(\sqrt2 - 1).

    Symplectic gradient adjustment. The antisymmetric part of :math:`J = A` is
    :math:`A` itself, so SGA's Jacobian is :math:`A + \lambda A^\top A = A - \lambda A^2`.
    :math:`A` is normal: for :math:`Az = i\mu z`, :math:`(A - \lambda A^2)z = (i\mu +
    \lambda\mu^2)z`. With :math:`\lambda = 1` the eigenvalues are
    :math:`(\sqrt2 \pm 1)^2 \pm i(\sqrt2 \pm 1)`, i.e. :math:`3 + 2\sqrt2 \pm
    i(\sqrt2 + 1)` and :math:`3 - 2\sqrt2 \pm i(\sqrt2 - 1)`.

    Parameters
    ----------
    w : sequence of four torch.Tensor
        0-dim tensors with ``requires_grad=True``, same dtype and device.

    Attributes
    ----------
    A : torch.Tensor
        The :math:`4 \times 4` matrix.
    w : tuple of torch.Tensor
    game : Game
        Players ``"w1"`` to ``"w4"``; its loss closure ignores the batch.
    """

    def __init__(self, w: Sequence[torch.Tensor]) -> None:
        if len(w) != 4 or any(t.numel() != 1 for t in w):
            raise ValueError("w must be four one-element tensors")
        self.w = tuple(w)
        ones = torch.ones(4, 4, dtype=w[0].dtype, device=w[0].device)
        self.A = torch.triu(ones, 1) - torch.tril(ones, -1)
        self.game = Game({f"w{i + 1}": [t] for i, t in enumerate(self.w)}, self.losses)

    def losses(self, batch: Any = None) -> dict[str, torch.Tensor]:
        r""":math:`L_i = w_i (A w)_i` (``batch`` is ignored)."""
        w = torch.stack([t.reshape(()) for t in self.w])
        xi = self.A @ w
        return {f"w{i + 1}": w[i] * xi[i] for i in range(4)}

    @staticmethod
    def eigenvalues() -> torch.Tensor:
        r"""The spectrum of :math:`J`: :math:`\pm i(\sqrt2 + 1), \pm i(\sqrt2 - 1)`, complex128."""
        mu = torch.tensor([math.sqrt(2) + 1, math.sqrt(2) - 1], dtype=torch.float64)
        return torch.stack([1j * mu, -1j * mu], dim=1).reshape(-1).to(torch.complex128)

    @staticmethod
    def sga_eigenvalues(gamma: float = 1.0) -> torch.Tensor:
        r"""The spectrum of SGA's :math:`J + \gamma A^\top J`: :math:`\gamma\mu^2 \pm i\mu`."""
        mu = torch.tensor([math.sqrt(2) + 1, math.sqrt(2) - 1], dtype=torch.float64)
        pairs = torch.stack([gamma * mu**2 + 1j * mu, gamma * mu**2 - 1j * mu], dim=1)
        return pairs.reshape(-1).to(torch.complex128)

    def __repr__(self) -> str:
        return f"FourPlayerGame(dtype={self.A.dtype})"


def four_player_game(
    *,
    init: str = "random",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> FourPlayerGame:
    r"""The four-player rotation of Balduzzi et al. (2018) (see :class:`FourPlayerGame`).

    Parameters
    ----------
    init : {"random", "zero"}
        Standard normal :math:`w` from ``seed`` (a private generator), or the
        equilibrium :math:`w = 0`. :math:`J` is the same everywhere.
    seed : int
    dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    FourPlayerGame
    """
    if init not in ("random", "zero"):
        raise ValueError(f"init must be 'random' or 'zero', got {init!r}")
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(4, generator=gen, dtype=torch.float64) if init == "random" else None
    w = [
        torch.tensor(0.0 if values is None else float(values[i]), dtype=dtype, device=device)
        for i in range(4)
    ]
    return FourPlayerGame([t.requires_grad_() for t in w])


class SmoothMarket:
    r"""A smooth market: pairwise zero-sum interactions plus convex own terms.

    Players :math:`i = 1, \dots, P`, each with a vector :math:`x_i \in \mathbb R^m`,

    .. math::

        L_i = c_i(x_i) + \sum_{j \ne i} g_{ij}(x_i, x_j), \qquad
        g_{ij}(a, b) = h_{ij}(a, b), \quad g_{ji}(b, a) = -h_{ij}(a, b) \quad (i < j),

    with :math:`h_{ij}(a, b) = a^\top M_{ij}\tanh(b) + \frac14 (a^\top N_{ij} b)^2` and
    :math:`c_i(x) = \frac{\mu_i}2\|x\|^2 + \frac14\|x\|^4` (convex). Every pair trades
    zero-sum: :math:`g_{ij}(x_i, x_j) + g_{ji}(x_j, x_i) = 0`. The coupling blocks are
    mixed second derivatives of :math:`h_{ij}` only:

    .. math::

        J_{ij} = \partial_{x_j}\nabla_{x_i} h_{ij}, \qquad
        J_{ji} = -\partial_{x_i}\nabla_{x_j} h_{ij} = -J_{ij}^\top,

    where :math:`\partial_b\nabla_a h = M\operatorname{diag}(\tanh'(b)) +
    \frac12\bigl((a^\top N b) N + N b\,(N^\top a)^\top\bigr)` depends on the point.
    So the pairwise zero-sum defect of :func:`~specdiag.dynamics.helmholtz_split`
    vanishes for every pair, at every point.

    Parameters
    ----------
    x : sequence of torch.Tensor
        One vector per player, shape ``(m,)``, ``requires_grad=True``.
    M, N : dict of (int, int) to torch.Tensor
        :math:`M_{ij}, N_{ij}` for :math:`i < j`, shape ``(m, m)``.
    mu : torch.Tensor
        :math:`\mu_i > 0`, shape ``(P,)``.

    Attributes
    ----------
    x : tuple of torch.Tensor
    M, N : dict
    mu : torch.Tensor
    game : Game
        Players ``"x1"`` to ``"xP"``; its loss closure ignores the batch.
    """

    def __init__(
        self,
        x: Sequence[torch.Tensor],
        M: dict[tuple[int, int], torch.Tensor],
        N: dict[tuple[int, int], torch.Tensor],
        mu: torch.Tensor,
    ) -> None:
        self.x, self.M, self.N, self.mu = tuple(x), M, N, mu
        self.game = Game({f"x{i + 1}": [t] for i, t in enumerate(self.x)}, self.losses)

    def losses(self, batch: Any = None) -> dict[str, torch.Tensor]:
        """Every player's loss at the current point (``batch`` is ignored)."""
        return self.losses_of(self.x)

    def losses_of(self, x: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        r"""The losses at the point ``x`` (one vector per player): a pure function."""
        out = [0.5 * self.mu[i] * t @ t + 0.25 * (t @ t) ** 2 for i, t in enumerate(x)]
        for (i, j), M in self.M.items():
            a, b = x[i], x[j]
            h = a @ M @ torch.tanh(b) + 0.25 * (a @ self.N[i, j] @ b) ** 2
            out[i] = out[i] + h
            out[j] = out[j] - h
        return {f"x{i + 1}": loss for i, loss in enumerate(out)}

    def __repr__(self) -> str:
        return f"SmoothMarket(players={len(self.x)}, dim={self.x[0].numel()})"


def smooth_market(
    n_players: int = 4,
    dim: int = 3,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> SmoothMarket:
    r"""A random smooth market (see :class:`SmoothMarket`).

    Parameters
    ----------
    n_players : int
        :math:`P \ge 2`.
    dim : int
        :math:`m \ge 1`, each player's number of parameters.
    seed : int
        Seeds a private generator for :math:`M_{ij}, N_{ij}` (standard normal over
        :math:`\sqrt m`), :math:`\mu_i` (uniform on :math:`[0.5, 1.5]`) and the point
        (standard normal); the global random streams are not used.
    dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    SmoothMarket
    """
    if isinstance(n_players, bool) or not isinstance(n_players, int) or n_players < 2:
        raise ValueError(f"n_players must be an integer >= 2, got {n_players!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    gen = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> torch.Tensor:
        t = torch.randn(*shape, generator=gen, dtype=torch.float64)
        return t.to(device=device, dtype=dtype)

    pairs = [(i, j) for i in range(n_players) for j in range(i + 1, n_players)]
    M = {p: draw(dim, dim) / math.sqrt(dim) for p in pairs}
    N = {p: draw(dim, dim) / math.sqrt(dim) for p in pairs}
    mu = 0.5 + torch.rand(n_players, generator=gen, dtype=torch.float64)
    x = [draw(dim).requires_grad_() for _ in range(n_players)]
    return SmoothMarket(x, M, N, mu.to(device=device, dtype=dtype))
