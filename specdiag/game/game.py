r"""Differentiable games: players, their parameters, their losses.

A game has players :math:`i = 1, \dots, P`. Player :math:`i` owns parameters
:math:`x_i` and minimises its own loss :math:`L_i(x_1, \dots, x_P)`. The game's vector
field (descent convention) is

.. math:: v(x) = \left(\nabla_{x_1} L_1, \dots, \nabla_{x_P} L_P\right),

and simultaneous gradient descent is :math:`x \leftarrow x - \eta\, v(x)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from ..errors import GameDefinitionError, LossClosureError, NonFiniteError
from .flat import ParameterLayout
from .state import (
    autograd_on,
    hooks_bypassed,
    isolated_rng,
    preserved_module_state,
    requires_grad_enabled,
)
from .wrappers import module_wrappers, unwrap_module

__all__ = ["Game", "RESERVED_NAMES"]

LossClosure = Callable[[Any], Mapping[str, torch.Tensor]]

#: Names a player may not take: they name the operators that are not a player's own Hessian.
RESERVED_NAMES = frozenset({"jacobian"})


def _checked_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"player names must be non-empty strings, got {name!r}")
    if name in RESERVED_NAMES:
        raise GameDefinitionError(
            f"{name!r} is reserved (it names the game Jacobian); rename the player"
        )
    return name


def _check_ownership(params: Mapping[str, tuple[torch.Tensor, ...]]) -> None:
    """GameDefinitionError when two players share a parameter."""
    owners: dict[int, str] = {}
    for name, ps in params.items():
        for p in ps:
            if id(p) in owners:
                raise GameDefinitionError(
                    f"players {owners[id(p)]!r} and {name!r} share a parameter of shape "
                    f"{tuple(p.shape)}; each parameter must belong to exactly one player"
                )
            owners[id(p)] = name


def _check_one_dtype_and_device(params: Mapping[str, tuple[torch.Tensor, ...]]) -> None:
    """GameDefinitionError unless every parameter has one dtype and one device."""
    kinds = {name: sorted({f"{p.dtype} on {p.device}" for p in ps}) for name, ps in params.items()}
    if len({k for ks in kinds.values() for k in ks}) > 1:
        found = "; ".join(f"{name!r}: {', '.join(ks)}" for name, ks in kinds.items())
        raise GameDefinitionError(
            f"all players' parameters must share one dtype and one device, found {found}; "
            "move every player to the same device and dtype (e.g. model.to(device, dtype))"
        )


def _parameter_names(
    player: str, module: Optional[nn.Module], params: tuple[torch.Tensor, ...]
) -> tuple[str, ...]:
    """The name of each parameter: ``"player.qualified.name"``, or ``"player[i]"``.

    A module player's parameters are named as in ``named_parameters``; tensors given
    directly by their position.
    """
    qualified = {} if module is None else {id(p): n for n, p in module.named_parameters()}
    return tuple(
        f"{player}.{qualified[id(p)]}" if id(p) in qualified else f"{player}[{i}]"
        for i, p in enumerate(params)
    )


class Game:
    r"""A differentiable game: named players and one loss per player.

    Parameters
    ----------
    players : mapping of str to nn.Module or iterable of tensors
        Each player's parameters. For a module, its parameters with
        ``requires_grad=True`` (at construction) are the player's; for an iterable, the
        tensors in it with ``requires_grad=True``. Models wrapped by
        ``DistributedDataParallel`` or ``torch.compile`` are read through their
        underlying module. Players must not share a parameter. Any number of players
        :math:`P \ge 1`.
    losses : callable
        ``losses(batch) -> {player name: scalar loss tensor}``, one loss per player,
        computed from the players' current parameters. Do **not** ``detach()`` one
        player's output inside another player's loss (as a GAN training step does for
        the discriminator): each loss is differentiated only with respect to its own
        player's parameters anyway, and a detach would cut the coupling blocks
        :math:`\partial v_i / \partial x_j` out of the game Jacobian.
    modules : iterable of nn.Module, optional
        Further modules whose buffers and ``training`` flags specdiag must preserve,
        for players given as tensors rather than modules.

    Raises
    ------
    TypeError
        ``players`` is not a mapping of names to modules or tensors, or ``losses`` is
        not callable.
    GameDefinitionError
        A player has no trainable parameters, two players share a parameter, a name
        is reserved, or the parameters do not share one dtype and device.

    Examples
    --------
    >>> import torch, specdiag as sd
    >>> x = torch.ones(2, requires_grad=True); y = torch.ones(2, requires_grad=True)
    >>> game = sd.Game({"x": [x], "y": [y]},
    ...                lambda batch: {"x": x @ y, "y": -(x @ y)})
    >>> game.n, game.player_names
    (4, ('x', 'y'))
    """

    def __init__(
        self,
        players: Mapping[str, nn.Module | Iterable[torch.Tensor] | torch.Tensor],
        losses: LossClosure,
        *,
        modules: Iterable[nn.Module] = (),
    ) -> None:
        if not isinstance(players, Mapping):
            raise TypeError(
                "players must be a mapping {name: nn.Module or iterable of tensors}, "
                f"got {type(players).__name__}"
            )
        if not players:
            raise GameDefinitionError("a game needs at least one player; players is empty")
        if not callable(losses):
            raise TypeError(
                "losses must be a callable losses(batch) -> {player name: scalar loss}, "
                f"got {type(losses).__name__}"
            )
        self._losses = losses
        self._params: dict[str, tuple[torch.Tensor, ...]] = {}
        self._names: dict[str, tuple[str, ...]] = {}
        tracked: list[nn.Module] = []
        wrappers: list[nn.Module] = []
        for name, spec in players.items():
            params, module = self._collect(_checked_name(name), spec)
            if module is not None:
                tracked.append(module)
            if isinstance(spec, nn.Module):
                wrappers.extend(module_wrappers(spec))
            self._params[name] = params
            self._names[name] = _parameter_names(name, module, params)
        _check_ownership(self._params)
        for m in modules:
            if not isinstance(m, nn.Module):
                raise TypeError(f"modules must hold nn.Module objects, got {type(m).__name__}")
            tracked.append(unwrap_module(m))
            wrappers.extend(module_wrappers(m))
        self._modules = tuple(tracked)
        self._wrappers = tuple(wrappers)
        _check_one_dtype_and_device(self._params)
        self._index()

    def _index(self) -> None:
        """The flat layouts of all players and of each, and where each player sits."""
        self.layout = ParameterLayout.of([p for ps in self._params.values() for p in ps])
        self._layouts = {name: ParameterLayout.of(ps) for name, ps in self._params.items()}
        self._slices: dict[str, slice] = {}
        self._ranges: dict[str, range] = {}
        start = index = 0
        for name, ps in self._params.items():
            self._slices[name] = slice(start, start + self._layouts[name].size)
            self._ranges[name] = range(index, index + len(ps))
            start, index = self._slices[name].stop, index + len(ps)

    @staticmethod
    def _collect(
        name: str, spec: nn.Module | Iterable[torch.Tensor] | torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], nn.Module | None]:
        module = None
        if isinstance(spec, nn.Module):
            module = unwrap_module(spec)
            candidates: list[Any] = list(module.parameters())
        elif isinstance(spec, torch.Tensor):
            candidates = [spec]
        elif isinstance(spec, Iterable) and not isinstance(spec, (str, bytes)):
            candidates = list(spec)
        else:
            raise TypeError(
                f"player {name!r} must be an nn.Module or an iterable of tensors, "
                f"got {type(spec).__name__}"
            )
        for c in candidates:
            if not isinstance(c, torch.Tensor):
                raise TypeError(f"player {name!r}: expected tensors, got {type(c).__name__}")
        unique = {id(c): c for c in candidates if c.requires_grad}
        params = tuple(unique.values())
        if not params:
            raise GameDefinitionError(
                f"player {name!r} has no trainable parameters (none with requires_grad=True); "
                "unfreeze its parameters before building the Game"
            )
        bad = [p for p in params if not p.is_floating_point()]
        if bad:
            raise GameDefinitionError(
                f"player {name!r} has a trainable parameter of non-floating dtype {bad[0].dtype}"
            )
        return params, module

    # ------------------------------------------------------------------ structure
    @property
    def player_names(self) -> tuple[str, ...]:
        """The players' names, in the order of the flat parameter vector."""
        return tuple(self._params)

    def parameters(self, player: str | None = None) -> tuple[torch.Tensor, ...]:
        """One player's trainable parameters, or all players' in flat-vector order."""
        if player is None:
            return tuple(p for ps in self._params.values() for p in ps)
        return self._params[self._check_player(player)]

    def parameter_names(self, player: str | None = None) -> tuple[str, ...]:
        """Names of :meth:`parameters`, in the same order.

        ``"generator.0.weight"`` for a module player's parameters (``named_parameters``), ``"x[0]"``
        for tensors.
        """
        if player is None:
            return tuple(n for ns in self._names.values() for n in ns)
        return self._names[self._check_player(player)]

    def player_slice(self, player: str) -> slice:
        """Where ``player``'s parameters sit in the flat vector."""
        return self._slices[self._check_player(player)]

    def player_layout(self, player: str | None = None) -> ParameterLayout:
        """Flat-vector layout of one player's parameters, or of all (``None``)."""
        return self.layout if player is None else self._layouts[self._check_player(player)]

    def player_tensors(self, player: str | None = None) -> range:
        """Positions of ``player``'s tensors in :meth:`parameters` (all for ``None``)."""
        if player is None:
            return range(len(self.layout.shapes))
        return self._ranges[self._check_player(player)]

    @property
    def sizes(self) -> dict[str, int]:
        """Number of trainable parameters of each player."""
        return {name: s.stop - s.start for name, s in self._slices.items()}

    @property
    def n(self) -> int:
        """Total number of trainable parameters: the order of the game Jacobian."""
        return self.layout.size

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype shared by every trainable parameter."""
        return self.layout.dtype

    @property
    def device(self) -> torch.device:
        """Device that holds every trainable parameter."""
        return self.layout.device

    @property
    def modules(self) -> tuple[nn.Module, ...]:
        """Modules whose buffers and ``training`` flags operators preserve."""
        return self._modules

    @property
    def wrappers(self) -> tuple[nn.Module, ...]:
        """The DDP, DataParallel and ``torch.compile`` wrappers around the modules.

        Those of the players' modules (and ``modules``), outermost first; a probe runs the
        losses closure through their underlying modules (see :func:`specdiag.probe`).
        """
        return self._wrappers

    def _check_player(self, player: str) -> str:
        if player not in self._params:
            raise KeyError(
                f"unknown player {player!r}; the game's players are {list(self._params)}"
            )
        return player

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"Game({sizes}; n={self.n}, dtype={self.dtype}, device={self.device})"

    # ------------------------------------------------------------------ evaluation
    def losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """Call the loss closure on ``batch`` and check what it returned.

        Returns
        -------
        dict
            ``{player: 0-dim loss tensor}``, in player order, graphs attached.

        Raises
        ------
        LossClosureError
            The closure raised (the original exception is chained).
        TypeError, GameDefinitionError
            The result is not a mapping with one floating scalar per player.
        NonFiniteError
            A loss is NaN or Inf.
        """
        try:
            out = self._losses(batch)
        except Exception as exc:
            raise LossClosureError(
                f"the game's losses closure raised {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(out, Mapping):
            raise TypeError(
                "losses(batch) must return a dict {player name: scalar loss tensor}, "
                f"got {type(out).__name__}"
            )
        missing = [p for p in self._params if p not in out]
        extra = [k for k in out if k not in self._params]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no loss for player(s) {missing}")
            if extra:
                parts.append(f"losses for unknown player(s) {extra}")
            raise GameDefinitionError(
                f"losses(batch) returned {' and '.join(parts)}; return exactly one loss per "
                f"player, keyed by {list(self._params)}"
            )
        checked: dict[str, torch.Tensor] = {}
        for name in self._params:
            loss = out[name]
            if not isinstance(loss, torch.Tensor):
                raise TypeError(
                    f"the loss of player {name!r} must be a tensor, got {type(loss).__name__}"
                )
            if not loss.is_floating_point():
                raise TypeError(
                    f"the loss of player {name!r} has dtype {loss.dtype}; it must be floating point"
                )
            if loss.numel() != 1:
                raise GameDefinitionError(
                    f"the loss of player {name!r} has shape {tuple(loss.shape)}; it must be a "
                    "scalar (reduce it, e.g. with .mean())"
                )
            loss = loss.reshape(())
            if not torch.isfinite(loss):
                raise NonFiniteError(f"the loss of player {name!r} is {loss.item()}", player=name)
            checked[name] = loss
        return checked

    def player_gradients(
        self, losses: Mapping[str, torch.Tensor], *, create_graph: bool
    ) -> list[torch.Tensor]:
        r"""Each player's gradient of its own loss, :math:`\nabla_{x_i} L_i`, per tensor.

        Parameters not reached by their player's loss get zero gradients.

        Raises
        ------
        GameDefinitionError
            A player's loss does not depend on any of its own parameters.
        NonFiniteError
            A gradient contains NaN or Inf.
        """
        grads: list[torch.Tensor] = []
        for name, params in self._params.items():
            loss = losses[name]
            parts = None
            if loss.requires_grad:
                parts = torch.autograd.grad(
                    loss, params, create_graph=create_graph, retain_graph=True, allow_unused=True
                )
            if parts is None or all(g is None for g in parts):
                raise GameDefinitionError(
                    f"the loss of player {name!r} does not depend on its own parameters; check "
                    "that it is computed from them, not under torch.no_grad() or from detached "
                    "outputs"
                )
            for p, g in zip(params, parts):
                if g is not None and not bool(torch.isfinite(g).all()):
                    raise NonFiniteError(
                        f"the gradient of player {name!r} contains NaN or Inf", player=name
                    )
                grads.append(torch.zeros_like(p) if g is None else g)
        return grads

    def vector_field(self, batch: Any, *, seed: int | None = None) -> torch.Tensor:
        r"""The game's vector field :math:`v(x)` on ``batch`` as one flat vector.

        Models are left as they were (buffers, ``training`` and ``requires_grad``
        flags, the global random streams); see :meth:`evaluation` for ``seed``.
        """
        with self.evaluation(seed=seed):
            grads = self.player_gradients(self.losses(batch), create_graph=False)
        return self.layout.join(grads)

    @contextlib.contextmanager
    def evaluation(self, *, seed: int | None = None) -> Iterator[None]:
        """Context in which the game is evaluated without side effects.

        Gradient mode on, autocast off, ``requires_grad`` on for every player parameter,
        forward passes on copies of the buffers, ``training`` flags restored, gradient
        and backward hooks set aside (:func:`~specdiag.game.state.hooks_bypassed`), and
        the global random streams of torch, numpy and Python forked (``seed``: reseed the
        forks, so noise drawn inside the losses closure is the same on every evaluation;
        ``None``: draw what the training run would draw next, without consuming it).
        """
        with (
            autograd_on(self.device),
            requires_grad_enabled(self.parameters()),
            preserved_module_state(self.modules),
            hooks_bypassed(self.parameters(), self.modules),
            isolated_rng(self.device, seed),
        ):
            yield
