r"""Update operators: the Jacobian :math:`\partial T` of one optimiser step, matrix-free.

An optimiser is a map :math:`x_{t+1} = T(x_t)`, or :math:`(x_{t+1}, x_t) = T(x_t,
x_{t-1})` for methods with memory (then :math:`\partial T` acts on the augmented state,
a flat vector of length :math:`2n`: the current parameters first, the previous ones
after). Near a stationary point :math:`x^*` (:math:`v(x^*) = 0`) the iterates converge
iff the spectral radius :math:`\rho(\partial T) < 1`, and the distance
:math:`1 - \rho` is the contraction per step. Descent convention throughout:
:math:`v = (\nabla_{x_1} L_1, \dots, \nabla_{x_P} L_P)`, :math:`J = \partial v/\partial x`.

Every operator here is built on one :class:`~specdiag.game.operators.GameJacobian` (one
graph, built once per probe) and applies its products :math:`J u` and
:math:`J^\top u`; nothing is re-evaluated. The step is a diagonal matrix
:math:`H = \operatorname{diag}(\eta_i)\,P^{-1}`: per-player step sizes :math:`\eta_i`
(a float, or one per player) and an optional diagonal preconditioner :math:`P`
(:func:`optimizer_preconditioner` reads Adam's or RMSprop's from their state), so
every update below reads :math:`x \leftarrow x - H v` in place of
:math:`x \leftarrow x - \eta v`:

.. list-table::
   :header-rows: 1
   :widths: 35 65

   * - operator
     - :math:`\partial T`
   * - :class:`GradientDescentUpdate`
     - :math:`I - HJ`
   * - same, ``alternating=True``
     - :math:`(I - E_2 H J)(I - E_1 H J)`, see the class
   * - :class:`ExtragradientUpdate`
     - :math:`I - HJ(I - HJ)`
   * - :class:`OptimisticUpdate`
     - :math:`\begin{pmatrix} I - 2HJ & HJ \\ I & 0\end{pmatrix}`
   * - :class:`MomentumUpdate`
     - :math:`\begin{pmatrix} (1+\beta)I - HJ & -\beta I \\ I & 0\end{pmatrix}`
   * - :class:`ConsensusUpdate`
     - :math:`I - H(J + \gamma J^\top J)`

What is linearised. Each operator uses the one :math:`J = J(x_t)` it was built with
wherever the method evaluates :math:`v`. That is the exact Jacobian of the step at a
stationary point, where every intermediate point coincides with :math:`x_t`. Away from
one: simultaneous GD and simultaneous momentum are still exact (they evaluate
:math:`v` at :math:`x_t` only); extragradient's second evaluation is at
:math:`x_t - Hv(x_t)`, alternating updates evaluate the second player's field after
the first player moved, optimistic GD reuses :math:`v(x_{t-1})`, and consensus
optimisation drops the term :math:`\gamma\,(\partial J^\top)[v]` that vanishes with
:math:`v`; all of these use :math:`J(x_t)` instead. The preconditioner is frozen (its
own dependence on the gradients is ignored) and Adam's first moment is replaced by
the current gradient (momentum :math:`\beta_1` ignored; at a stationary point with
constant gradients the two agree). Weight decay is not part of :math:`\partial T`:
put it in the players' losses if it matters.

With one step size and no preconditioner, GD, extragradient, optimistic GD and
simultaneous momentum map each eigenvalue :math:`\lambda` of :math:`J` to update
eigenvalues in closed form (:mod:`specdiag.stability`); the operators here cover
every method, alternating updates, per-player step sizes and preconditioners.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..game import Game, GameJacobian
from ..linalg import eigs
from ..linalg.operator import LinearOperator
from ..registry import UPDATE_METHODS as METHOD_REGISTRY
from ..registry import UpdateMethod, update_method
from ..validation import positive, real

__all__ = [
    "UPDATE_METHODS",
    "UpdateOperator",
    "GradientDescentUpdate",
    "ExtragradientUpdate",
    "OptimisticUpdate",
    "MomentumUpdate",
    "ConsensusUpdate",
    "update_operator",
    "spectral_radius",
]


class UpdateOperator(LinearOperator):
    r"""Base class: :math:`\partial T` of one step of an optimiser on a game.

    Parameters
    ----------
    jacobian : GameJacobian
        The game Jacobian at the current point; its cached graph serves every product.
    lr : float or mapping of str to float
        Step size :math:`\eta > 0`, or one per player ``{player: lr}`` (every player).
    preconditioner : torch.Tensor, optional
        Diagonal :math:`P` of a preconditioner, shape ``(n,)``, positive, in the game's
        flat parameter order (e.g. from :func:`optimizer_preconditioner`): the step is
        :math:`H = \operatorname{diag}(\eta_i) P^{-1}`.

    Attributes
    ----------
    jacobian : GameJacobian
    game : Game
    step_sizes : torch.Tensor
        The diagonal of :math:`H`, shape ``(n,)``.
    method : str
        The method's name in :data:`UPDATE_METHODS`.
    augmented : bool
        Whether the operator acts on :math:`(x_t, x_{t-1})` (shape :math:`2n`).

    Notes
    -----
    ``prefer_transpose`` is the Jacobian's: :func:`~specdiag.eigs` then works on
    :math:`\partial T^\top`, whose products need only :math:`J^\top u` (except for
    consensus optimisation, which needs both).
    """

    method: str = ""
    augmented: bool = False

    def __init__(
        self,
        jacobian: GameJacobian,
        lr: float | Mapping[str, float],
        *,
        preconditioner: torch.Tensor | None = None,
    ) -> None:
        if not isinstance(jacobian, GameJacobian):
            raise TypeError(
                f"{type(self).__name__} needs a specdiag GameJacobian (it reads the game's players "
                f"from it), got {type(jacobian).__name__}; build one with GameJacobian(game, batch)"
            )
        game = jacobian.game
        super().__init__(game.n * (2 if self.augmented else 1), jacobian.dtype, jacobian.device)
        self.jacobian = jacobian
        self.game = game
        self.step_sizes = _step_sizes(game, lr, preconditioner)
        self.prefer_transpose = jacobian.prefer_transpose

    def _Jstep(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`H J u`."""
        return self.step_sizes * self.jacobian.matvec(u)

    def _JTstep(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`J^\top H u = (HJ)^\top u`."""
        return self.jacobian.rmatvec(self.step_sizes * u)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, game={self.game!r})"


class GradientDescentUpdate(UpdateOperator):
    r"""Gradient descent, simultaneous or alternating: :math:`\partial T = I - HJ`.

    Simultaneous: :math:`x_{t+1} = x_t - H v(x_t)`, so :math:`\partial T = I - HJ`.

    Alternating (two players, ``order = (p, q)``): player :math:`p` steps first,
    :math:`x_p' = x_p - H_p v_p(x_p, x_q)`, then :math:`q` steps at the new point,
    :math:`x_q' = x_q - H_q v_q(x_p', x_q)`. With :math:`E_i` the projection on player
    :math:`i`'s coordinates, :math:`\partial T = (I - E_q HJ)(I - E_p HJ)`, i.e.

    .. math::

        \partial T = \begin{pmatrix}
            I - H_p J_{pp} & -H_p J_{pq} \\
            -H_q J_{qp}(I - H_p J_{pp}) & I - H_q J_{qq} + H_q J_{qp} H_p J_{pq}
        \end{pmatrix}

    in the order :math:`(p, q)`. Products: one :math:`J` product per sweep (1
    simultaneous, 2 alternating).

    Parameters
    ----------
    jacobian, lr, preconditioner
        See :class:`UpdateOperator`.
    alternating : bool
        Alternating (Gauss–Seidel) instead of simultaneous updates; two-player games only.
    order : sequence of str, optional
        The two players in update order (alternating only); default the game's order.

    Examples
    --------
    On the Dirac-GAN, simultaneous steps spiral out (:math:`\rho > 1`) and alternating
    steps circle (:math:`\rho = 1`):

    >>> J = GameJacobian(toys.dirac_gan(loss="wgan").game)
    >>> round(spectral_radius(GradientDescentUpdate(J, lr=0.5)), 6)
    1.118034
    >>> round(spectral_radius(GradientDescentUpdate(J, lr=0.5, alternating=True)), 6)
    1.0
    """

    def __init__(
        self,
        jacobian: GameJacobian,
        lr: float | Mapping[str, float],
        *,
        alternating: bool = False,
        order: Sequence[str] | None = None,
        preconditioner: torch.Tensor | None = None,
    ) -> None:
        super().__init__(jacobian, lr, preconditioner=preconditioner)
        self.sweeps = _sweeps(self.game, alternating, order)
        self.method = "alternating_gd" if alternating else "gd"

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        w = u.clone()
        for s in self.sweeps:
            w[s] -= self._Jstep(w)[s]
        return w

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        w = u.clone()
        for s in reversed(self.sweeps):
            w -= self._JTstep(_restrict(w, s))
        return w


class ExtragradientUpdate(UpdateOperator):
    r"""Extragradient: :math:`\partial T = I - HJ(I - HJ)`.

    :math:`x_{t+1/2} = x_t - H v(x_t)`, :math:`x_{t+1} = x_t - H v(x_{t+1/2})`; with
    :math:`J` at :math:`x_t` for both evaluations (exact at a stationary point). With one
    step size its eigenvalues are :math:`1 - \eta\lambda + \eta^2\lambda^2`. Two
    :math:`J` products per product.
    """

    method = "extragradient"

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        return u - self._Jstep(u - self._Jstep(u))

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        g = self._JTstep(u)
        return u - g + self._JTstep(g)


class OptimisticUpdate(UpdateOperator):
    r"""Optimistic gradient descent on the augmented state :math:`(x_t, x_{t-1})`.

    :math:`x_{t+1} = x_t - 2H v(x_t) + H v(x_{t-1})`, so

    .. math::

        \partial T = \begin{pmatrix} I - 2HJ & HJ \\ I & 0 \end{pmatrix},

    with :math:`J` at :math:`x_t` for :math:`v(x_{t-1})` too (exact at a stationary
    point). With one step size an eigenvalue :math:`\lambda` of :math:`J` gives the two
    roots of :math:`\mu^2 - (1 - 2\eta\lambda)\mu - \eta\lambda`. One :math:`J` product
    per product (:math:`HJ(2a - b)` by linearity).
    """

    method = "optimistic"
    augmented = True

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        a, b = u.chunk(2)
        return torch.cat([a - self._Jstep(2 * a - b), a])

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        a, b = u.chunk(2)
        g = self._JTstep(a)
        return torch.cat([a - 2 * g + b, g])


class MomentumUpdate(UpdateOperator):
    r"""Heavy-ball momentum :math:`\beta` on :math:`(x_t, x_{t-1})`, simultaneous or alternating.

    Simultaneous: :math:`x_{t+1} = x_t - H v(x_t) + \beta(x_t - x_{t-1})`, so

    .. math::

        \partial T = \begin{pmatrix} (1 + \beta) I - HJ & -\beta I \\ I & 0 \end{pmatrix},

    exact at any point; with one step size an eigenvalue :math:`\lambda` of :math:`J`
    gives the roots of :math:`\mu^2 - (1 + \beta - \eta\lambda)\mu + \beta`.

    Alternating (two players, ``order = (p, q)``), as in Gidel et al. (2019, *Negative
    momentum for improved game dynamics*): player :math:`p` takes its momentum step,
    then :math:`q` takes its own with :math:`v_q` evaluated at :math:`(x_p^{t+1},
    x_q^t)`. Each player's step is the map :math:`M_i` that replaces
    :math:`(x_i^t, x_i^{t-1})` by :math:`((1 + \beta)x_i^t - \beta x_i^{t-1} - H_i v_i,\;
    x_i^t)` and leaves the rest alone; :math:`\partial T = \partial M_q\,\partial M_p`.
    Negative :math:`\beta` with alternation makes the bilinear game converge, where
    positive :math:`\beta` and simultaneous updates cannot.

    Parameters
    ----------
    jacobian, lr, preconditioner
        See :class:`UpdateOperator`.
    beta : float
        Momentum, :math:`|\beta| < 1` for a stable method (negative allowed).
    alternating, order
        See :class:`GradientDescentUpdate`.
    """

    augmented = True

    def __init__(
        self,
        jacobian: GameJacobian,
        lr: float | Mapping[str, float],
        beta: float,
        *,
        alternating: bool = False,
        order: Sequence[str] | None = None,
        preconditioner: torch.Tensor | None = None,
    ) -> None:
        super().__init__(jacobian, lr, preconditioner=preconditioner)
        self.beta = real(beta, "beta")
        self.sweeps = _sweeps(self.game, alternating, order)
        self.method = "alternating_momentum" if alternating else "momentum"

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        a, b = u.clone().chunk(2)
        for s in self.sweeps:
            new = (1 + self.beta) * a[s] - self.beta * b[s] - self._Jstep(a)[s]
            b[s] = a[s]
            a[s] = new
        return torch.cat([a, b])

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        a, b = u.clone().chunk(2)
        for s in reversed(self.sweeps):
            a_s, b_s = a[s].clone(), b[s].clone()
            a -= self._JTstep(_restrict(a, s))
            a[s] += self.beta * a_s + b_s
            b[s] = -self.beta * a_s
        return torch.cat([a, b])


class ConsensusUpdate(UpdateOperator):
    r"""Consensus optimisation (Mescheder et al., 2017): :math:`I - H(J + \gamma J^\top J)`.

    The update :math:`x_{t+1} = x_t - H(v + \gamma J^\top v)` follows the gradient of
    :math:`L_i + \frac{\gamma}{2}\|v\|^2`; its Jacobian at a stationary point is
    :math:`J + \gamma J^\top J` (the term :math:`\gamma(\partial J^\top)[v]` vanishes
    there). Two :math:`J` products per product (one :math:`J u`, one :math:`J^\top u`).

    Use this with the Jacobian of the game *without* the consensus term. A game whose
    losses already include it (``toys.mog_gan(consensus=...)``) has
    :math:`J + \gamma J^\top J` as its Jacobian: use :class:`GradientDescentUpdate`.

    Parameters
    ----------
    jacobian, lr, preconditioner
        See :class:`UpdateOperator`.
    gamma : float
        Consensus weight :math:`\gamma \ge 0`.
    """

    method = "consensus"

    def __init__(
        self,
        jacobian: GameJacobian,
        lr: float | Mapping[str, float],
        gamma: float,
        *,
        preconditioner: torch.Tensor | None = None,
    ) -> None:
        super().__init__(jacobian, lr, preconditioner=preconditioner)
        self.gamma = real(gamma, "gamma")
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}")

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        Ju = self.jacobian.matvec(u)
        return u - self.step_sizes * (Ju + self.gamma * self.jacobian.rmatvec(Ju))

    def _rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        w = self.step_sizes * u
        return u - self.jacobian.rmatvec(w + self.gamma * self.jacobian.matvec(w))


#: ``method`` names of :func:`update_operator` (the registry :mod:`specdiag.registry.methods`).
UPDATE_METHODS = tuple(METHOD_REGISTRY)


def check_update_parameters(
    method: str,
    *,
    beta: float | None = None,
    gamma: float | None = None,
    align: bool | None = None,
    order: Sequence[str] | None = None,
) -> UpdateMethod:
    """The registry entry of ``method``, after checking that it gets the parameters it takes.

    Raises
    ------
    ValueError
        ``method`` is unknown, misses a parameter it needs (``beta`` for momentum,
        ``gamma`` for consensus and SGA) or gets one it does not take.
    """
    entry = update_method(method)
    given = {"beta": beta, "gamma": gamma, "align": align}
    for name, value in given.items():
        if name in entry.parameters and value is None:
            raise ValueError(
                f"method {method!r} needs {name}: pass {name}=... (see specdiag.UpdateRule)"
            )
        if name not in entry.parameters + entry.optional and value is not None:
            raise ValueError(f"method {method!r} takes no {name}; leave it out")
    if order is not None and not entry.alternating:
        raise ValueError(
            f"order is for alternating methods; method {method!r} updates all players at once"
        )
    return entry


def update_operator(
    jacobian: GameJacobian,
    method: str,
    lr: float | Mapping[str, float],
    *,
    beta: float | None = None,
    gamma: float | None = None,
    align: bool | None = None,
    order: Sequence[str] | None = None,
    preconditioner: torch.Tensor | None = None,
) -> UpdateOperator:
    r"""The update operator :math:`\partial T` of ``method`` on ``jacobian``, by name.

    Parameters
    ----------
    jacobian : GameJacobian
    method : str
        A name of :data:`UPDATE_METHODS` (see :mod:`specdiag.registry.methods`).
    lr : float or mapping of str to float
        One step size, or one per player.
    beta : float, optional
        Momentum; required by the momentum methods, refused by the others.
    gamma : float, optional
        The weight of consensus optimisation and of SGA; required by ``"consensus"`` and
        ``"sga"``, refused by the others.
    align : bool, optional
        SGA's sign rule for ``gamma`` (see :class:`~specdiag.dynamics.sga.SGAUpdate`);
        ``"sga"`` only.
    order : sequence of str, optional
        Update order of the two players (alternating methods only).
    preconditioner : torch.Tensor, optional
        Diagonal :math:`P`, shape ``(n,)`` (see :func:`optimizer_preconditioner`).

    Returns
    -------
    UpdateOperator
    """
    entry = check_update_parameters(method, beta=beta, gamma=gamma, align=align, order=order)
    given = {"beta": beta, "gamma": gamma, "align": align}
    module, name = entry.operator.split(":")
    cls = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    keywords: dict[str, Any] = {p: given[p] for p in entry.parameters}
    keywords.update({p: given[p] for p in entry.optional if given[p] is not None})
    if entry.alternating:
        keywords["order"] = order
    return cls(jacobian, lr, preconditioner=preconditioner, **keywords, **entry.options)


def spectral_radius(operator: Any, **eigs_kwargs: Any) -> float:
    r"""Spectral radius :math:`\rho = \max |\mu|` of ``operator``, by :func:`~specdiag.eigs`.

    The eigenvalues come from ``which="LM"``.

    For an update operator, :math:`\rho < 1` means the optimiser converges near a
    stationary point at this step size and :math:`1 - \rho` is its contraction per
    step; :math:`\rho > 1` means it moves away along some direction.

    Parameters
    ----------
    operator : LinearOperator
        Typically an :class:`UpdateOperator`.
    **eigs_kwargs
        Passed to :func:`~specdiag.eigs` (``k`` defaults to 1, ``tol``, ``ncv``,
        ``maxiter``, ``max_matvecs``, ``backend``, ...); ``which`` is fixed to ``"LM"``.

    Returns
    -------
    float

    Notes
    -----
    At small step sizes the eigenvalues of :math:`\partial T = I - \eta J` cluster at 1
    and :math:`\rho - 1` is of order :math:`\eta|\lambda|`: it is resolved only with
    ``tol`` well below :math:`|\rho - 1|`, and Krylov convergence slows down. There, for
    the methods with a closed form, compute :math:`J`'s eigenvalues instead and map
    them with :func:`specdiag.stability.update_radius`.
    """
    if "which" in eigs_kwargs:
        raise TypeError("spectral_radius always uses which='LM'; do not pass which")
    eigs_kwargs.setdefault("k", 1)
    result = eigs(operator, which="LM", **eigs_kwargs)
    return float(result.eigenvalues.abs().max())


def _step_sizes(
    game: Game, lr: float | Mapping[str, float], preconditioner: torch.Tensor | None
) -> torch.Tensor:
    r"""The diagonal of :math:`H = \operatorname{diag}(\eta_i) P^{-1}` as a flat vector."""
    if isinstance(lr, Mapping):
        missing = [p for p in game.player_names if p not in lr]
        unknown = [p for p in lr if p not in game.player_names]
        if missing or unknown:
            raise ValueError(
                f"lr must give one step size per player {list(game.player_names)}; "
                f"missing {missing}, unknown {unknown}"
            )
        rates = {p: positive(lr[p], f"lr[{p!r}]") for p in game.player_names}
    else:
        rates = dict.fromkeys(game.player_names, positive(lr, "lr"))
    step = torch.empty(game.n, dtype=game.dtype, device=game.device)
    for player, rate in rates.items():
        step[game.player_slice(player)] = rate
    if preconditioner is None:
        return step
    if not isinstance(preconditioner, torch.Tensor) or preconditioner.shape != (game.n,):
        raise ValueError(
            f"preconditioner must be a tensor of shape ({game.n},) (the diagonal of P in the "
            "game's "
            "flat parameter order; see optimizer_preconditioner)"
        )
    p = preconditioner.detach().to(game.device, game.dtype)
    if not bool(torch.isfinite(p).all()) or not bool((p > 0).all()):
        raise ValueError("preconditioner entries must be finite and > 0")
    return step / p


def _sweeps(game: Game, alternating: bool, order: Sequence[str] | None) -> list[slice]:
    """The coordinate blocks updated one after another: all at once, or player by player."""
    if not alternating:
        if order is not None:
            raise ValueError("order is for alternating updates; pass alternating=True")
        return [slice(0, game.n)]
    players = list(game.player_names)
    if len(players) != 2:
        raise ValueError(
            f"alternating updates are defined for two-player games; this game has {len(players)} "
            f"players {players}: use simultaneous updates (alternating=False)"
        )
    order = players if order is None else list(order)
    if sorted(order) != sorted(players):
        raise ValueError(f"order must list the game's two players {players} once each, got {order}")
    return [game.player_slice(p) for p in order]


def _restrict(u: torch.Tensor, s: slice) -> torch.Tensor:
    """``u`` on the coordinates ``s``, zero elsewhere."""
    out = torch.zeros_like(u)
    out[s] = u[s]
    return out
