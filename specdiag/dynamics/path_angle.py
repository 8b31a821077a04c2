r"""The path-angle of Berard et al. (ICLR 2020): the vector field along a straight line.

Berard, Gidel, Almahairi, Vincent and Lacoste-Julien, *A Closer Look at the
Optimization Landscapes of Generative Adversarial Networks* (ICLR 2020), look at the
game's vector field :math:`v` (descent convention, :math:`v = (\nabla_{x_1} L_1,
\dots, \nabla_{x_P} L_P)`) on the line through two points, typically the start and the
end of training:

.. math::

    \theta(\alpha) = \alpha\,\theta_2 + (1 - \alpha)\,\theta_1, \qquad
    d = \theta_1 - \theta_2, \qquad
    c(\alpha) = \frac{\langle v(\theta(\alpha)), d\rangle}
                     {\|v(\theta(\alpha))\|\,\|d\|},

with :math:`\theta_1` = ``start`` (:math:`\alpha = 0`) and :math:`\theta_2` = ``end``
(:math:`\alpha = 1`), on a grid of :math:`\alpha` over :math:`[-0.1, 1.1]`, together
with :math:`\|v(\theta(\alpha))\|^2`. Gradient descent moves along :math:`-v`, so
:math:`c > 0` means the field pushes from :math:`\theta_1` towards :math:`\theta_2`.

How to read it. Near a stationary point :math:`\theta^*` the field is
:math:`v(\theta) \approx J(\theta - \theta^*)`, :math:`J = S + A` with
:math:`S = (J + J^\top)/2`, :math:`A = (J - J^\top)/2`. With :math:`e = \theta_2 -
\theta^*` we have :math:`\theta(\alpha) - \theta^* = e + (1 - \alpha) d` and, since
:math:`d^\top A d = 0`,

.. math::

    \langle v, d\rangle \approx \langle J e, d\rangle + (1 - \alpha)\, d^\top S d,
    \qquad \|v\|^2 \approx \|J e + (1 - \alpha) J d\|^2 .

* End at the stationary point (:math:`e = 0`):
  :math:`c(\alpha) = \operatorname{sign}(1 - \alpha)\, d^\top S d / (\|Jd\|\,\|d\|)`,
  constant on each side of :math:`\alpha = 1` and flipping sign there, and
  :math:`\|v\|^2 = (1 - \alpha)^2 \|Jd\|^2` vanishes at :math:`\alpha = 1`.
  A **minimum** (:math:`S \succ 0` along :math:`d`, little rotation) shows
  :math:`c > 0` before :math:`\alpha = 1` and :math:`c < 0` after it, with
  :math:`|c|` near 1 (exactly 1 when :math:`d` is an eigenvector of a symmetric
  :math:`J`). A **pure rotation** (:math:`d^\top S d = 0`, e.g. the bilinear game)
  shows :math:`c \equiv 0`: the field is orthogonal to the line everywhere, although
  :math:`\|v\|^2` still vanishes at the equilibrium. The height of the jump,
  :math:`2|d^\top S d| / (\|Jd\|\,\|d\|)`, says how much of the field along
  :math:`d` is potential rather than rotational.
* End near, not at, the stationary point (:math:`e \ne 0`, the practical case):
  :math:`\|v\|^2` has a positive minimum near :math:`\alpha = 1` (a "bump" that does not
  reach zero), and the numerator of :math:`c` is linear in :math:`\alpha` with its one
  zero at :math:`\alpha_0 = 1 + \langle Je, d\rangle / d^\top S d`. With dominant
  potential part :math:`c` still switches from positive to negative, near
  :math:`\alpha = 1`. With dominant rotation (:math:`d^\top S d \approx 0`) the
  numerator is nearly the constant :math:`\langle Je, d\rangle`: :math:`c` is close to
  0 away from :math:`\alpha = 1` and has a bump of one sign where :math:`\|v\|` is
  smallest, near :math:`\alpha = 1`, without changing sign. Berard et al. read a
  small :math:`|c|` with a bump around :math:`\alpha = 1` as the signature of
  rotation, and a clean positive-to-negative switch as that of a minimum.

The same is reported per player, :math:`c_i(\alpha) = \langle v_i, d_i\rangle /
(\|v_i\|\,\|d_i\|)` and :math:`\|v_i\|^2` (so :math:`\sum_i \|v_i\|^2 = \|v\|^2`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..game import Game

__all__ = ["PathAngle", "path_angle"]

#: Default grid: 100 points on [-0.1, 1.1], as in Berard et al. (2020).
DEFAULT_ALPHAS = np.linspace(-0.1, 1.1, 100)


@dataclass(frozen=True)
class PathAngle:
    r"""The path-angle :math:`c(\alpha)` and the field's norm along a line (see the module).

    Attributes
    ----------
    alpha : numpy.ndarray
        The grid, float64, shape ``(m,)``; :math:`\alpha = 0` is ``start``, 1 is ``end``.
    cosine : numpy.ndarray
        :math:`c(\alpha) = \langle v, d\rangle / (\|v\|\,\|d\|)`, float64; NaN where
        :math:`v = 0`.
    norm2 : numpy.ndarray
        :math:`\|v(\theta(\alpha))\|^2`, float64.
    players : dict of str to (numpy.ndarray, numpy.ndarray)
        ``{player: (cosine_i, norm2_i)}``: :math:`\langle v_i, d_i\rangle /
        (\|v_i\|\,\|d_i\|)` (NaN where :math:`v_i = 0` or :math:`d_i = 0`) and
        :math:`\|v_i\|^2`.
    n_evaluations : int
        Evaluations of the vector field (one per grid point).
    wall_time : float
        Seconds spent.
    """

    alpha: np.ndarray
    cosine: np.ndarray
    norm2: np.ndarray
    players: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    n_evaluations: int = 0
    wall_time: float = 0.0

    def sign_changes(self) -> np.ndarray:
        r"""The :math:`\alpha` where :math:`c` changes sign, by linear interpolation.

        Grid points where :math:`c` is NaN or exactly 0 are skipped; between two
        consecutive remaining points of opposite sign the zero of the line through them
        is returned.

        Returns
        -------
        numpy.ndarray
            float64, in the order of the grid.
        """
        keep = np.isfinite(self.cosine) & (self.cosine != 0)
        a, c = self.alpha[keep], self.cosine[keep]
        k = np.nonzero(np.sign(c[:-1]) != np.sign(c[1:]))[0]
        return a[k] - c[k] * (a[k + 1] - a[k]) / (c[k + 1] - c[k])


_Param = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
_Buffer = tuple[nn.Module, str, torch.Tensor, torch.Tensor]


@dataclass
class _Tensors:
    """What the path sets, with both end points (float64 for floating tensors).

    ``params``: ``(parameter, start, end)``, the parameter's storage is swapped;
    ``buffers``: ``(module, name, start, end)``, the buffer object is swapped.
    """

    params: list[_Param]
    buffers: list[_Buffer]


def path_angle(
    game: Game,
    start: Mapping[str, Any],
    end: Mapping[str, Any],
    batch: Any = None,
    alphas: Any = None,
    *,
    seed: int | None = 0,
) -> PathAngle:
    r"""The path-angle of Berard et al. (2020) on the line from ``start`` to ``end``.

    At each :math:`\alpha` the players' parameters are set to :math:`\theta(\alpha) =
    \alpha\,\theta_2 + (1 - \alpha)\theta_1` and the field is evaluated with
    :meth:`Game.vector_field` ``(batch, seed=seed)``: the same batch and the same seed
    everywhere, so noise drawn inside the losses closure is the same along the path.

    Parameters
    ----------
    game : Game
    start, end : mapping
        :math:`\theta_1` and :math:`\theta_2`, ``{player: state}`` for every player.
        A player's state is either its module's ``state_dict()`` (players given as
        modules, or as tensors of a module passed in ``modules``) or a sequence of
        tensors in :meth:`Game.parameters` ``(player)`` order. From a state dict the
        player's trainable parameters and floating-point buffers (BatchNorm running
        statistics, ...) are interpolated the same way; integer buffers
        (``num_batches_tracked``) are taken from ``end``; frozen parameters are left
        as they are (the line runs in the game's parameter space). From a sequence
        only the parameters are set.
    batch : object
        Passed to the losses closure at every point.
    alphas : array_like of float, optional
        The grid of :math:`\alpha`; default 100 points on :math:`[-0.1, 1.1]`.
    seed : int or None
        Seed of the random numbers drawn inside the closure (see :meth:`Game.evaluation`).

    Returns
    -------
    PathAngle

    Raises
    ------
    ValueError
        A player is missing from or unknown to ``start``/``end``, a tensor has the
        wrong shape or is not finite, a state dict lacks or adds keys, ``start`` equals
        ``end``, or ``alphas`` is empty or not finite.
    TypeError
        A state is neither a state dict nor a sequence of tensors.

    Notes
    -----
    The models are left exactly as they were: parameters (values, storage, version
    counters), ``.grad``, buffers, ``requires_grad`` and ``training`` flags and the
    global random streams. Each parameter's storage is swapped for the point's values
    under ``torch.no_grad()`` (``p.data = ...``), each buffer object is replaced by a
    new tensor, and the originals, never written to, are put back in a ``finally``
    block. Cost: one evaluation of :math:`v` per grid point.

    Examples
    --------
    A potential game, :math:`L = \frac12\|x\|^2` for one player, on the line from
    :math:`x = 1` through the minimum to :math:`x = -1`: the field points along the line
    before the minimum and against it after.

    >>> x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    >>> game = sd.Game({"x": [x]}, lambda batch: {"x": 0.5 * (x @ x)})
    >>> start, end = {"x": [torch.ones(2)]}, {"x": [-torch.ones(2)]}
    >>> pa = path_angle(game, start, end, alphas=np.linspace(0, 1, 11))
    >>> pa.cosine[[0, -1]]
    array([ 1., -1.])
    >>> pa.sign_changes()
    array([0.5])
    """
    grid = _grid(alphas)
    for name, state in (("start", start), ("end", end)):
        if not isinstance(state, Mapping):
            raise TypeError(
                f"{name} must be a mapping {{player: state}}, got {type(state).__name__}"
            )
    points = _Tensors([], [])
    for player in game.player_names:
        params, buffers = _player_points(game, player, start, end)
        points.params.extend(params)
        points.buffers.extend(buffers)
    unknown = sorted({str(k) for k in (*start, *end)} - set(game.player_names))
    if unknown:
        raise ValueError(
            f"start/end name unknown player(s) {unknown}; the players are {list(game.player_names)}"
        )
    d = torch.cat([(s - e).reshape(-1) for _, s, e in points.params])
    if float(d.norm()) == 0:
        raise ValueError("start and end are the same point: the path-angle needs two points")
    t0 = time.perf_counter()
    fields = []
    for a in grid:
        with _at(points, float(a)):
            fields.append(game.vector_field(batch, seed=seed).detach().to(torch.float64).cpu())
    return _result(game, grid, torch.stack(fields), d.cpu(), time.perf_counter() - t0)


def _grid(alphas: Any) -> np.ndarray:
    grid = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError(f"alphas must be a non-empty sequence of finite numbers, got {alphas!r}")
    return grid.copy()


def _result(
    game: Game, grid: np.ndarray, fields: torch.Tensor, d: torch.Tensor, wall: float
) -> PathAngle:
    """Cosines and squared norms, overall and per player, from the fields along the path."""

    def cosine_and_norm2(v: torch.Tensor, dd: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        norm2 = v.pow(2).sum(dim=1)
        den = norm2.sqrt() * dd.norm()
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where(den.numpy() > 0, (v @ dd).numpy() / den.numpy(), math.nan)
        return cos.astype(np.float64), norm2.numpy().astype(np.float64)

    cosine, norm2 = cosine_and_norm2(fields, d)
    players = {}
    for p in game.player_names:
        s = game.player_slice(p)
        players[p] = cosine_and_norm2(fields[:, s], d[s])
    return PathAngle(grid, cosine, norm2, players, len(grid), wall)


@contextlib.contextmanager
def _at(points: _Tensors, alpha: float) -> Iterator[None]:
    r"""Put the parameters and buffers at :math:`\theta(\alpha)`; restore the originals."""
    saved_params = [(p, p.data) for p, _, _ in points.params]
    saved_buffers = [(m, name, m._buffers[name]) for m, name, _, _ in points.buffers]
    try:
        with torch.no_grad():
            for p, s, e in points.params:
                p.data = _between(s, e, alpha).to(p.dtype, copy=True)
            for (m, name, s, e), (_, _, old) in zip(points.buffers, saved_buffers):
                new = _between(s, e, alpha) if s.is_floating_point() else e
                m._buffers[name] = new.to(s.dtype if old is None else old.dtype, copy=True)
        yield
    finally:
        for p, data in saved_params:
            p.data = data
        for m, name, old in saved_buffers:
            m._buffers[name] = old


def _between(s: torch.Tensor, e: torch.Tensor, alpha: float) -> torch.Tensor:
    r""":math:`\alpha e + (1 - \alpha) s` in float64."""
    return alpha * e + (1 - alpha) * s


def _player_points(
    game: Game, player: str, start: Mapping[str, Any], end: Mapping[str, Any]
) -> tuple[list[_Param], list[_Buffer]]:
    """Validated endpoints of one player's parameters and buffers."""
    states = []
    for name, state in (("start", start), ("end", end)):
        if player not in state:
            raise ValueError(
                f"{name} has no state for player {player!r}; give every player "
                f"{list(game.player_names)}"
            )
        states.append(state[player])
    s, e = states
    if isinstance(s, Mapping) != isinstance(e, Mapping):
        raise TypeError(
            f"player {player!r}: give start and end in the same form (both "
            "state dicts or both sequences of tensors)"
        )
    if isinstance(s, Mapping):
        return _from_state_dicts(game, player, s, e)
    params = game.parameters(player)
    pairs = zip(_as_sequence(player, "start", s, params), _as_sequence(player, "end", e, params))
    return [(p, a, b) for p, (a, b) in zip(params, pairs)], []


def _as_sequence(
    player: str, name: str, state: Any, params: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor) or not isinstance(state, Sequence):
        raise TypeError(
            f"{name}[{player!r}] must be the module's state_dict() or a list of "
            f"tensors in game.parameters({player!r}) order, got {type(state).__name__}"
        )
    if len(state) != len(params):
        raise ValueError(
            f"{name}[{player!r}] has {len(state)} tensors; player {player!r} has "
            f"{len(params)} parameters (in game.parameters({player!r}) order)"
        )
    return [
        _checked(f"{name}[{player!r}][{i}]", t, p) for i, (t, p) in enumerate(zip(state, params))
    ]


def _checked(where: str, value: Any, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a float64 tensor (integer buffers keep their dtype) on ``like``'s device."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where} must be a tensor, got {type(value).__name__}")
    if value.shape != like.shape:
        raise ValueError(f"{where} has shape {tuple(value.shape)}; expected {tuple(like.shape)}")
    if value.is_floating_point() != like.is_floating_point():
        raise ValueError(f"{where} has dtype {value.dtype}; expected one like {like.dtype}")
    value = value.detach().to(like.device)
    if value.is_floating_point():
        value = value.to(torch.float64)
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{where} contains NaN or Inf; the path needs finite end points")
    return value


def _from_state_dicts(
    game: Game, player: str, s: Mapping[str, Any], e: Mapping[str, Any]
) -> tuple[list[_Param], list[_Buffer]]:
    """Parameters and persistent buffers of the player's module, from two state dicts."""
    module = _player_module(game, player)
    expected = set(module.state_dict().keys())
    for name, state in (("start", s), ("end", e)):
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or extra:
            raise ValueError(
                f"{name}[{player!r}] is not a state dict of the player's module "
                f"({type(module).__name__}): missing keys {missing}, unexpected "
                f"keys {extra}"
            )
    own = {id(p) for p in game.parameters(player)}
    found: dict[int, _Param] = {}
    buffers: list[_Buffer] = []
    for key, tensor in module.state_dict(keep_vars=True).items():
        if not isinstance(tensor, torch.Tensor) or id(tensor) in found:
            continue  # extra state, or a tied parameter seen under another name
        where = f"[{player!r}][{key!r}]"
        a, b = _checked("start" + where, s[key], tensor), _checked("end" + where, e[key], tensor)
        if id(tensor) in own:
            found[id(tensor)] = (tensor, a, b)
        elif not isinstance(tensor, nn.Parameter):
            owner, _, local = key.rpartition(".")
            buffers.append((module.get_submodule(owner), local, a, b))
    return [found[id(p)] for p in game.parameters(player)], buffers


def _player_module(game: Game, player: str) -> nn.Module:
    """The smallest of the game's modules that holds all of ``player``'s parameters."""
    own = {id(p) for p in game.parameters(player)}
    holders = [m for m in game.modules if own <= {id(p) for p in m.parameters()}]
    if not holders:
        raise TypeError(
            f"player {player!r} has no module in the game; give its start and end "
            f"as lists of tensors in game.parameters({player!r}) order"
        )
    return min(holders, key=lambda m: sum(1 for _ in m.parameters()))
