"""Which solves a probe runs: one :class:`Plan` per operator, checked before training."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from ..game import Game
from ..linalg.options import SolverOptions
from .options import ProbeOptions

__all__ = ["Plan", "plan_operators", "DEFAULT_WHICH", "SPECTRA"]

#: ``which`` of each operator kind unless told otherwise.
DEFAULT_WHICH = {"jacobian": "LM", "hessian": "LA"}
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
        Helmholtz split, which computes no eigenvalues.
    """

    name: str
    kind: str
    n: int
    solver: Optional[SolverOptions]

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
    """Check the operator names, ``which`` and the solver settings against the game;
    return the solves a probe will run.

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
    plans = []
    for name in names:
        kind = "jacobian" if name == "jacobian" else "hessian"
        size = game.n if kind == "jacobian" else game.sizes[name]
        solver = options.solver.replace(
            k=min(options.k, size), which=chosen.get(name, DEFAULT_WHICH[kind])
        )
        plans.append(_checked(Plan(name, kind, size, solver), game))
    if options.update is not None:
        size = game.n * (2 if options.update.augmented else 1)
        solver = options.solver.replace(k=min(options.k, options.update.k, size), which="LM")
        plans.append(_checked(Plan("update", "update", size, solver), game))
    if options.helmholtz is not None:
        plans.append(Plan("helmholtz", "helmholtz", game.n, None))
    return plans


def _checked(plan: Plan, game: Game) -> Plan:
    """``plan`` with ``which`` upper-cased, after checking its settings for its operator."""
    assert plan.solver is not None
    settings = plan.solver.resolve(plan.n, game.dtype, symmetric=plan.symmetric)
    return Plan(plan.name, plan.kind, plan.n, plan.solver.replace(which=settings.which))
