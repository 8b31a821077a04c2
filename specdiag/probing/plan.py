"""Which solves a probe runs: one :class:`Plan` per operator, checked before training."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..game import Game
from ..linalg.options import SolverOptions
from ..registry import scalar_names
from .analyses import DENSITY_PREFIX, SYMMETRIC
from .memory import choose_ncv
from .options import DEFAULT_K, ProbeOptions

__all__ = ["Plan", "plan_operators", "layout_spec", "DEFAULT_WHICH", "SPECTRA"]

#: ``which`` of each operator kind unless told otherwise. A player's Hessian is probed
#: at both ends: its top eigenvalues (stiffness) and its bottom ones, where negative
#: curvature shows (Berard et al. 2020 found GANs converging to points where the
#: generator's loss curves downwards).
DEFAULT_WHICH = {"jacobian": "LM", "hessian": "BE"}
#: Operator kinds whose eigenvalues a probe computes (the others are estimates on J).
SPECTRA = ("jacobian", "hessian")


@dataclass(frozen=True)
class Plan:
    """One operator to probe.

    Attributes
    ----------
    name : str
        ``"jacobian"``, a player's name (its Hessian), ``"update"`` or ``"helmholtz"``.
    kind : str
        ``"jacobian"``, ``"hessian"``, ``"update"`` or ``"helmholtz"``.
    n : int
        The operator's order.
    solver : SolverOptions or None
        The solve's settings (``k <= n`` and ``which`` resolved); ``None`` for the
        Helmholtz split and the densities, which compute no eigenvalues.
    target : str or None
        For a density: the operator it describes (a player, or ``"symmetric"``).
    extras : frozenset of str
        The analyses this solve also records (``"shares"``).
    """

    name: str
    kind: str
    n: int
    solver: Optional[SolverOptions]
    target: Optional[str] = None
    extras: frozenset[str] = frozenset()

    @property
    def k(self) -> int:
        """Eigenvalues wanted (0 for the Helmholtz split)."""
        return 0 if self.solver is None else self.solver.k

    @property
    def which(self) -> str:
        """The solve's ``which`` (``""`` for the Helmholtz split)."""
        return "" if self.solver is None or self.solver.which is None else self.solver.which

    @property
    def symmetric(self) -> bool:
        """Whether the operator is symmetric (a player's Hessian)."""
        return self.kind == "hessian"


def _names(game: Game, options: ProbeOptions) -> tuple[str, ...]:
    """The operator names probed, checked against the game."""
    valid = ("jacobian", *game.player_names)
    names = valid if options.operators is None else options.operators
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(
            f"unknown operator(s) {unknown}; choose among {list(valid)} ('jacobian' for the "
            "game Jacobian, a player's name for that player's Hessian)"
        )
    if not names:
        raise ValueError(f"operators is empty; choose among {list(valid)}")
    if len(set(names)) != len(names):
        raise ValueError(f"operators lists a name twice: {list(names)}")
    return tuple(names)


def _chosen_which(options: ProbeOptions, names: tuple[str, ...]) -> dict[str, str]:
    """``{operator: which}`` as given (a string applies to the Jacobian)."""
    which = options.which
    if isinstance(which, Mapping):
        extra = [n for n in which if n not in names]
        if extra:
            raise ValueError(
                f"which names operator(s) {extra} that are not probed; probed: {list(names)}"
            )
        return dict(which)
    return {} if which is None else {"jacobian": which}


def plan_operators(game: Game, options: ProbeOptions) -> list[Plan]:
    """Check the operator names, ``which`` and the solver settings against the game.

    Return the solves a probe will run.

    Used by :func:`~specdiag.probe` and by the monitor (which describes the trace's
    layout with it, before training). The update operator and the Helmholtz split come
    last, after the Jacobian whose eigenvalues they use.

    Raises
    ------
    ValueError, TypeError
        An unknown or repeated operator, a ``which`` for an operator not probed or not
        in the operator's vocabulary, or solver settings the operator cannot take.
    """
    names = _names(game, options)
    chosen = _chosen_which(options, names)
    _check_k(game, options, names)
    extras = frozenset({"shares"} if options.shares else ())
    plans = []
    for name in names:
        kind = "jacobian" if name == "jacobian" else "hessian"
        size = game.n if kind == "jacobian" else game.sizes[name]
        solver = options.solver.replace(
            k=min(options.k, size), which=chosen.get(name, DEFAULT_WHICH[kind])
        )
        plans.append(_checked(Plan(name, kind, size, solver, extras=extras), game, options))
    if options.update is not None:
        size = game.n * (2 if options.update.augmented else 1)
        solver = options.solver.replace(k=min(options.k, options.update.k, size), which="LM")
        plans.append(_checked(Plan("update", "update", size, solver), game, options))
    if options.helmholtz is not None:
        plans.append(Plan("helmholtz", "helmholtz", game.n, None))
    return plans + _density_plans(game, options)


def _check_k(game: Game, options: ProbeOptions, names: tuple[str, ...]) -> None:
    """Refuse a ``k`` above every operator's order (beyond the default).

    The probe could not return more than the order, and the trace would be sized for nothing.
    """
    largest = max(game.n if n == "jacobian" else game.sizes[n] for n in names)
    if options.k > largest and options.k > DEFAULT_K:
        raise ValueError(
            f"k = {options.k} exceeds the order of every operator probed (largest n = "
            f"{largest:,}); ask for at most k = {largest} (k = n solves exactly)"
        )


def _density_plans(game: Game, options: ProbeOptions) -> list[Plan]:
    """One plan per spectral density asked for (``density.<target>``)."""
    request = options.density
    if request is None:
        return []
    targets = game.player_names if request.operators is None else request.operators
    valid = (*game.player_names, SYMMETRIC)
    unknown = [t for t in targets if t not in valid]
    if unknown or len(set(targets)) != len(targets):
        raise ValueError(
            f"density operators {list(targets)}: choose each at most once among {list(valid)} "
            "(a player's name for its Hessian, 'symmetric' for S = (J + Jᵀ)/2)"
        )
    return [
        Plan(
            DENSITY_PREFIX + t,
            "density",
            game.n if t == SYMMETRIC else game.sizes[t],
            None,
            target=t,
        )
        for t in targets
    ]


def layout_spec(plan: Plan, game: Game, options: ProbeOptions) -> dict[str, Any]:
    """What a trace stores for ``plan``.

    Kind, which, order, width, scalars, and the arrays and coordinates of its analyses (see
    :class:`~specdiag.trace.TraceWriter`).
    """
    width = max(1, min(plan.k + 1, plan.n))
    spec: dict[str, Any] = {
        "kind": plan.kind,
        "which": plan.which,
        "n": plan.n,
        "width": width,
        "scalars": list(scalar_names(plan.kind, plan.extras)),
    }
    arrays: dict[str, Any] = {}
    coords: dict[str, list[Any]] = {}
    if "shares" in plan.extras:
        player = None if plan.kind == "jacobian" else plan.name
        coords["tensor"] = list(game.parameter_names(player))
        arrays["shares"] = _array(
            ["eig", "tensor"], "share of each parameter tensor in each eigenvector"
        )
        arrays["principal_cosines"] = _array(
            ["eig"], "cosines of the principal angles to the previous probe's top subspace"
        )
        if plan.kind == "jacobian":
            coords["player"] = list(game.player_names)
            arrays["player_shares"] = _array(
                ["eig", "player"], "share of each player in each eigenvector"
            )
    if plan.kind == "density":
        assert options.density is not None
        coords["vector"] = list(range(options.density.n_vectors))
        coords["node"] = list(range(options.density.n_steps))
        arrays["nodes"] = _array(["vector", "node"], "quadrature nodes (Ritz values), NaN-padded")
        arrays["weights"] = _array(["vector", "node"], "quadrature weights, each row sums to 1")
    if arrays:
        spec.update(arrays=arrays, coords=coords)
    return spec


def _array(dims: list[str], description: str) -> dict[str, Any]:
    return {"dims": dims, "dtype": "f8", "description": description}


def _checked(plan: Plan, game: Game, options: ProbeOptions) -> Plan:
    """``plan`` with ``which`` upper-cased and ``ncv`` chosen, after checking its settings.

    An ``ncv`` not given is chosen from the memory free where the basis will live
    (:func:`~specdiag.probing.memory.choose_ncv`).
    """
    solver = plan.solver
    assert solver is not None
    if solver.ncv is None:
        basis = options.solver.basis
        device = game.device if basis.device is None else torch.device(basis.device)
        dtype = game.dtype if basis.dtype is None else basis.dtype
        solver = solver.replace(ncv=choose_ncv(solver.k, plan.n, dtype, device))
    settings = solver.resolve(plan.n, game.dtype, symmetric=plan.symmetric)
    return dataclasses.replace(plan, solver=solver.replace(which=settings.which))
