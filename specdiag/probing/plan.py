"""Which solves a probe runs, and the checks of its settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dynamics import UpdateRule
from ..game import Game
from ..linalg.solvers import BACKENDS
from ..linalg.which import check_which

__all__ = ["Plan", "plan_operators", "check_settings", "ON_ERROR", "DEFAULT_WHICH", "AUGMENTED"]

#: What a probe does on a failure: warn and record, record silently, or raise.
ON_ERROR = ("warn", "ignore", "raise")
DEFAULT_WHICH = {"jacobian": "LM", "hessian": "LA"}
#: Update methods whose operator acts on the augmented state (x_t, x_{t-1}).
AUGMENTED = ("optimistic", "momentum", "alternating_momentum")


@dataclass(frozen=True)
class Plan:
    """One operator to probe: name, kind, ``which``, order ``n`` and ``k <= n``."""

    name: str
    kind: str
    which: str
    n: int
    k: int


def plan_operators(
    game: Game,
    operators: Sequence[str] | None,
    which: str | Mapping[str, str] | None,
    k: int,
    update: UpdateRule | None = None,
    helmholtz: int | None = None,
) -> list[Plan]:
    """Check the operator names and ``which``; the solves a probe will run.

    Used by :func:`probe` and by the monitor (to describe the trace's layout). The
    update operator (``update``) and the Helmholtz split (``helmholtz`` samples) come
    last, after the Jacobian whose eigenvalues they use.
    """
    valid = ("jacobian", *game.player_names)
    names = valid if operators is None else operators
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
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
    if isinstance(which, Mapping):
        extra = [n for n in which if n not in names]
        if extra:
            raise ValueError(
                f"which names operator(s) {extra} that are not probed; probed: {list(names)}"
            )
        chosen = dict(which)
    elif which is None:
        chosen = {}
    elif isinstance(which, str):
        chosen = {"jacobian": which}
    else:
        raise TypeError(
            f"which must be a string (for the Jacobian) or a mapping {{operator: which}}, got "
            f"{type(which).__name__}"
        )
    plans = []
    for name in names:
        kind = "jacobian" if name == "jacobian" else "hessian"
        size = game.n if kind == "jacobian" else game.sizes[name]
        w = check_which(chosen.get(name, DEFAULT_WHICH[kind]), symmetric=kind == "hessian")
        plans.append(Plan(name, kind, w, size, min(k, size)))
    if update is not None:
        if not isinstance(update, UpdateRule):
            raise TypeError(f"update must be a specdiag.UpdateRule, got {type(update).__name__}")
        size = game.n * (2 if update.method in AUGMENTED else 1)
        plans.append(Plan("update", "update", "LM", size, min(k, update.k, size)))
    if helmholtz is not None:
        if isinstance(helmholtz, bool) or not isinstance(helmholtz, int) or helmholtz < 2:
            raise ValueError(f"helmholtz must be a number of samples >= 2, got {helmholtz!r}")
        plans.append(Plan("helmholtz", "helmholtz", "", game.n, 0))
    return plans


def check_settings(
    k: int,
    tol: float,
    ncv: int | None,
    maxiter: int | None,
    max_matvecs: int | None,
    seed: int | None,
    on_error: str,
    backend: str,
) -> None:
    """Raise ``ValueError`` for settings that would fail every probe.

    Used by :func:`probe` and by the monitor (so that they fail before training).
    """

    def positive(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1

    problems = []
    if not positive(k):
        problems.append(f"k must be a positive integer, got {k!r}")
    if (
        isinstance(tol, bool)
        or not isinstance(tol, (int, float))
        or not np.isfinite(tol)
        or tol < 0
    ):
        problems.append(f"tol must be a finite number >= 0, got {tol!r}")
    if ncv is not None and positive(k) and not (positive(ncv) and ncv >= k + 2):
        problems.append(f"ncv must be an integer >= k + 2 = {k + 2}, got {ncv!r}")
    for name, value in (("maxiter", maxiter), ("max_matvecs", max_matvecs)):
        if value is not None and not positive(value):
            problems.append(f"{name} must be a positive integer or None, got {value!r}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        problems.append(f"seed must be an integer >= 0 or None, got {seed!r}")
    if on_error not in ON_ERROR:
        problems.append(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if backend not in BACKENDS:
        problems.append(f"backend must be one of {BACKENDS}, got {backend!r}")
    if problems:
        raise ValueError("; ".join(problems))
