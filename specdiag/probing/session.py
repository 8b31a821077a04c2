"""A sequence of probes of one game.

What the monitor runs in the loop, and what :func:`~specdiag.probe_snapshots` runs afterwards.

Consecutive probes of a training run measure nearby operators. A
:class:`ProbeSession` carries from one probe to the next what makes the next one
cheaper or safer: each operator's last Ritz subspace, recycled into the first Krylov
basis of its next solve (a warm start; :func:`~specdiag.eigs` ``v0`` as a block), and
whether the products have passed their derivative check (run at the first probe only).
A session probed in the same order with the same settings gives the same numbers
wherever it runs: in the training loop, or later from snapshots of the same steps.
"""

from __future__ import annotations

from typing import Any, Optional

from ..game import Game
from .core import run_probe
from .options import ProbeOptions
from .plan import Plan, plan_operators
from .records import ProbeRecord
from .solves import ProbeState

__all__ = ["ProbeSession"]


class ProbeSession:
    """Probes of one game with one set of options, in order.

    Parameters
    ----------
    game : Game
    options : ProbeOptions
    warm_start : bool
        Start each operator's solve from its previous solve's Ritz subspace (per probe
        batch index). ``False``: every solve starts cold, from a random vector seeded
        with the probe's seed.

    Attributes
    ----------
    plans : list of Plan
        The solves every probe runs.
    n_probes : int
        Probes run so far.
    """

    def __init__(self, game: Game, options: ProbeOptions, *, warm_start: bool = False) -> None:
        self.game = game
        self.options = options
        self.plans: list[Plan] = plan_operators(game, options)
        self.warm_start = bool(warm_start) and not options.shard_basis
        self._states: dict[int, ProbeState] = {}
        self._checked = not options.check_derivatives
        self.n_probes = 0

    def probe(self, batch: Any, *, step: Optional[int] = None, batch_index: int = 0) -> ProbeRecord:
        """One probe of the game at its current parameters (see :func:`~specdiag.probe`)."""
        state = self._states.setdefault(batch_index, ProbeState(warm=self.warm_start))
        record = run_probe(
            self.game,
            batch,
            self.options,
            step=step,
            batch_index=batch_index,
            plans=self.plans,
            state=state,
            check=not self._checked,
        )
        self._checked = True
        self.n_probes += 1
        return record

    def reset(self) -> None:
        """Forget the previous probes (warm starts and top subspaces)."""
        self._states.clear()

    def __repr__(self) -> str:
        return (
            f"ProbeSession({self.game!r}, {len(self.plans)} operators, "
            f"warm_start={self.warm_start}, {self.n_probes} probes)"
        )
