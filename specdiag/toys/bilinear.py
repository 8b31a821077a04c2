"""The bilinear zero-sum game: eigenvalues of J known in closed form at every point."""

from __future__ import annotations

from typing import Any

import torch

from ..game import Game

__all__ = ["BilinearGame", "bilinear_game"]


class BilinearGame:
    r"""The bilinear zero-sum game :math:`\min_x \max_y\, x^\top A y`.

    Players ``"x"`` (:math:`n` parameters) and ``"y"`` (:math:`m`) with
    :math:`L_x = x^\top A y` and :math:`L_y = -x^\top A y`, so

    .. math::

        v = \begin{pmatrix} A y \\ -A^\top x \end{pmatrix}, \qquad
        J = \begin{pmatrix} 0 & A \\ -A^\top & 0 \end{pmatrix}.

    :math:`J` is skew-symmetric and does not depend on the point: its eigenvalues are
    :math:`\pm i\sigma_k(A)` for the :math:`\min(n, m)` singular values of :math:`A`,
    plus :math:`|n - m|` zeros. Gradient flow circles the equilibrium forever.

    Parameters
    ----------
    A : torch.Tensor
        Shape ``(n, m)``.
    x, y : torch.Tensor
        The players' parameters, shapes ``(n,)`` and ``(m,)``, ``requires_grad=True``,
        same dtype and device as ``A``.

    Attributes
    ----------
    A, x, y : torch.Tensor
    game : Game
        Players ``"x"`` and ``"y"``; its loss closure ignores the batch (pass ``None``).
    """

    def __init__(self, A: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        if A.ndim != 2 or x.shape != (A.shape[0],) or y.shape != (A.shape[1],):
            raise ValueError(
                f"A must have shape (n, m) with x of shape (n,) and y of shape (m,); got A "
                f"{tuple(A.shape)}, x {tuple(x.shape)}, y {tuple(y.shape)}"
            )
        self.A, self.x, self.y = A, x, y
        self.game = Game({"x": [x], "y": [y]}, self.losses)

    def losses(self, batch: Any = None) -> dict[str, torch.Tensor]:
        r""":math:`L_x = x^\top A y`, :math:`L_y = -x^\top A y` (``batch`` is ignored)."""
        value = self.x @ self.A @ self.y
        return {"x": value, "y": -value}

    def eigenvalues(self) -> torch.Tensor:
        r"""All :math:`n + m` eigenvalues of :math:`J`, exactly (from the SVD of :math:`A`).

        Returns
        -------
        torch.Tensor
            ``complex128``, shape ``(n + m,)``, on the CPU: :math:`+i\sigma_1,
            -i\sigma_1, +i\sigma_2, \dots` by decreasing singular value, then the
            :math:`|n - m|` zeros.
        """
        sigma = torch.linalg.svdvals(self.A.detach().to("cpu", torch.float64))
        pairs = torch.stack([1j * sigma, -1j * sigma], dim=1).reshape(-1)
        zeros = torch.zeros(abs(self.A.shape[0] - self.A.shape[1]), dtype=torch.complex128)
        return torch.cat([pairs.to(torch.complex128), zeros])

    def __repr__(self) -> str:
        n, m = self.A.shape
        return f"BilinearGame(n={n}, m={m}, dtype={self.A.dtype})"


def bilinear_game(
    A: torch.Tensor | None = None,
    *,
    n: int = 10,
    m: int = 10,
    init: str = "random",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> BilinearGame:
    r"""The bilinear game :math:`\min_x \max_y\, x^\top A y` (see :class:`BilinearGame`).

    Parameters
    ----------
    A : torch.Tensor, optional
        The coupling matrix, shape ``(n, m)`` (it sets ``n`` and ``m``; it is cast to
        ``dtype`` and ``device``). Default: standard normal entries drawn from ``seed``.
    n, m : int
        Sizes of the players when ``A`` is not given.
    init : {"random", "zero"}
        Start point: standard normal :math:`x, y` drawn from ``seed``, or the
        equilibrium :math:`x = y = 0`. :math:`J` is the same at every point.
    seed : int
        Seed of a private random generator (the global random streams are not used).
    dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    BilinearGame
        ``.game`` is the :class:`~specdiag.Game`; ``.A`` the matrix used;
        ``.eigenvalues()`` the exact spectrum of :math:`J`.

    Examples
    --------
    >>> import torch, specdiag as sd
    >>> from specdiag import toys
    >>> toy = toys.bilinear_game(n=30, m=20)
    >>> r = sd.eigs(sd.GameJacobian(toy.game), k=4, tol=1e-8)
    >>> bool(torch.allclose(r.eigenvalues, toy.eigenvalues()[:4], atol=1e-6))
    True
    """
    if init not in ("random", "zero"):
        raise ValueError(f"init must be 'random' or 'zero', got {init!r}")
    rng = torch.Generator().manual_seed(seed)
    if A is None:
        if n < 1 or m < 1:
            raise ValueError(f"n and m must be positive, got n={n}, m={m}")
        A = torch.randn(n, m, generator=rng, dtype=torch.float64)
    elif not isinstance(A, torch.Tensor) or A.ndim != 2:
        raise ValueError("A must be a 2-D torch.Tensor of shape (n, m)")
    A = A.detach().to(device=device, dtype=dtype)
    n, m = A.shape
    if init == "random":
        x = torch.randn(n, generator=rng, dtype=torch.float64)
        y = torch.randn(m, generator=rng, dtype=torch.float64)
    else:
        x, y = torch.zeros(n), torch.zeros(m)
    x = x.to(device=device, dtype=dtype).requires_grad_()
    y = y.to(device=device, dtype=dtype).requires_grad_()
    return BilinearGame(A, x, y)
