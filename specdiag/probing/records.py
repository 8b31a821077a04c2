"""What a probe returns: one record per operator, one record per probe."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["OperatorRecord", "ProbeRecord"]


@dataclass(frozen=True, eq=False)
class OperatorRecord:
    r"""The eigenvalues of one operator at one probe.

    Attributes
    ----------
    name : str
        ``"jacobian"`` or a player's name (that player's Hessian).
    kind : str
        ``"jacobian"`` or ``"hessian"``.
    which : str
        The solver's ``which``.
    eigenvalues : numpy.ndarray
        ``complex128``, shape ``(m,)``, most wanted first: ``m = k``, or ``k + 1`` when
        the k-th eigenvalue of the Jacobian is one of a complex-conjugate pair (pairs
        are kept whole), or fewer when a product budget stopped the solve very early.
        Hessian eigenvalues are real (zero imaginary parts). ``k`` NaNs on failure.
    residuals : numpy.ndarray
        ``float64``, shape ``(m,)``: residual norm of each eigenpair.
    converged : numpy.ndarray
        ``bool``, shape ``(m,)``: whether each eigenvalue met the tolerance.
    n_matvec : int
        Operator products used by the solve.
    wall_time : float
        Seconds for this operator's solve.
    status : str
        ``"ok"`` (all converged), ``"unconverged"`` (iteration limit reached),
        ``"budget"`` (``max_matvecs`` reached before all converged), ``"nonfinite"``
        (NaN or Inf in a loss, a gradient or a product), ``"error"`` (an exception in
        the losses closure or the solver).
    message : str
        What went wrong (the exception's text) and the solver's notes; ``""`` if
        nothing to say.
    scalars : dict of str to float
        Summary numbers of all the finite computed eigenvalues, converged or not
        (``converged`` says which met the tolerance); see :func:`spectrum_scalars`.
    arrays : dict of str to numpy.ndarray
        Further per-probe arrays the trace stores for this operator (empty unless an
        analysis asked for them), keyed by their dataset name.
    tensor_names, player_names : tuple of str
        The names along the last axis of ``arrays["shares"]`` and
        ``arrays["player_shares"]`` (see :attr:`shares`).
    """

    name: str
    kind: str
    which: str
    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    n_matvec: int
    wall_time: float
    status: str
    message: str
    scalars: dict[str, float]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    tensor_names: tuple[str, ...] = ()
    player_names: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the solve ended ``"ok"``."""
        return self.status == "ok"

    @property
    def shares(self) -> Optional[dict[str, np.ndarray]]:
        """Each parameter tensor's share of each eigenvector, when asked for ``shares``.

        ``{parameter name: array over the eigenvalues}``; the shares of one eigenvector
        sum to 1. ``None`` when the probe was not asked for ``shares``.
        """
        return self._named("shares", self.tensor_names)

    @property
    def player_shares(self) -> Optional[dict[str, np.ndarray]]:
        """``{player: share of it in each eigenvector}`` for the Jacobian (``shares``)."""
        return self._named("player_shares", self.player_names)

    def _named(self, array: str, names: tuple[str, ...]) -> Optional[dict[str, np.ndarray]]:
        values = self.arrays.get(array)
        if values is None:
            return None
        return {name: values[:, i] for i, name in enumerate(names)}

    def __repr__(self) -> str:
        vals = ", ".join(f"{v.real:.4g}{v.imag:+.4g}j" for v in self.eigenvalues[:4])
        more = ", ..." if len(self.eigenvalues) > 4 else ""
        return (
            f"OperatorRecord({self.name!r}, status={self.status!r}, "
            f"converged={int(self.converged.sum())}/{len(self.converged)}, "
            f"n_matvec={self.n_matvec}, eigenvalues=[{vals}{more}])"
        )


@dataclass(frozen=True, eq=False)
class ProbeRecord(Mapping):
    """Everything one probe measured.

    A read-only mapping from operator names to :class:`OperatorRecord`.

    Attributes
    ----------
    step : int or None
        The training step of the probe.
    batch_index : int
        Which probe batch (0 when one per probe).
    seed : int or None
        Seed of the random stream the losses closure drew from.
    losses : dict of str to float
        Each player's loss on the probe batch (NaN when the losses failed).
    wall_time : float
        Seconds for the whole probe, building the graph included.
    build_time : float
        Seconds to evaluate the losses and build the field's graph.
    status : str
        ``"ok"`` if every operator is ``"ok"``, else the first other status.
    operators : dict of str to OperatorRecord
        In the order they were probed.
    message : str
        Warnings that concern the probe as a whole (a parameter changed in place by
        the losses closure); ``""`` otherwise.
    flags : int
        Bit mask of :data:`specdiag.registry.PROBE_FLAGS`: facts about the probe as a
        whole (the players are uncoupled, a product failed its derivative check, ...).
    train_time : float
        Training seconds since the previous probe, measured by the monitor between
        its ``step()`` calls (NaN outside a monitor).
    overhead : float
        Seconds spent probing divided by seconds spent training, over the run so far
        (NaN outside a monitor).
    cost_steps : float
        This probe's seconds in mean training steps (NaN when unknown).

    Examples
    --------
    >>> toy = toys.dirac_gan(loss="standard", r1=0.6)  # J = [[0, 0.5], [-0.5, 0.6]]
    >>> rec = sd.probe(toy.game, k=2)
    >>> rec.status, list(rec)
    ('ok', ['jacobian', 'generator', 'discriminator'])
    >>> rec["jacobian"].eigenvalues
    array([0.3+0.4j, 0.3-0.4j])
    >>> round(rec["jacobian"].scalars["min_real"], 12)
    0.3
    """

    step: int | None
    batch_index: int
    seed: int | None
    losses: dict[str, float]
    wall_time: float
    build_time: float
    status: str
    operators: dict[str, OperatorRecord]
    message: str = ""
    flags: int = 0
    train_time: float = float("nan")
    overhead: float = float("nan")
    cost_steps: float = float("nan")

    def __getitem__(self, name: str) -> OperatorRecord:
        try:
            return self.operators[name]
        except KeyError:
            raise KeyError(
                f"no operator {name!r} in this probe; it holds {list(self.operators)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.operators)

    def __len__(self) -> int:
        return len(self.operators)

    @property
    def ok(self) -> bool:
        """Whether every operator of the probe converged."""
        return self.status == "ok"

    def __repr__(self) -> str:
        ops = ", ".join(f"{n}: {r.status}" for n, r in self.operators.items())
        return (
            f"ProbeRecord(step={self.step}, batch_index={self.batch_index}, "
            f"status={self.status!r}, "
            f"{ops}, wall_time={self.wall_time:.3g}s)"
        )
