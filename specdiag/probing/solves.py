r"""The solves of one probe, each turned into an :class:`OperatorRecord`.

Every function here runs on the probe's :class:`~specdiag.GameField` and records a
failure (an exception, NaN or Inf, an unconverged solve) in the record it returns
instead of raising, unless the probe's ``on_error`` is ``"raise"``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..dynamics import helmholtz_split
from ..errors import ConvergenceWarning, NonFiniteError
from ..game import Game, GameField, GameJacobian, PlayerHessian
from ..linalg.density import spectral_density
from ..linalg.options import SolverOptions, default_ncv
from ..linalg.parts import SymmetricPart
from ..linalg.solvers import solve
from ..stability import max_stable_lr
from .analyses import SYMMETRIC, block_shares, orthonormal_span, principal_cosines, tensor_shares
from .checks import explain
from .distributed import AveragedOperator, ProbeGroup
from .options import ProbeOptions
from .plan import Plan
from .records import OperatorRecord
from .scalars import SCALARS, spectrum_scalars

__all__ = ["ProbeContext", "ProbeState", "solve_plan", "failed_record"]

#: Float32 products resolve relative residuals down to about this.
RESIDUAL_FLOOR = 1e-6


@dataclass
class ProbeState:
    """What carries over from one probe to the next of a sequence.

    See :class:`~specdiag.probing.session.ProbeSession`.

    Attributes
    ----------
    bases : dict of str to torch.Tensor
        Per operator, an orthonormal basis of the wanted Ritz vectors of its last solve:
        the next solve of that operator starts from it (a warm start). Updated in place.
    spans : dict of str to torch.Tensor
        Per operator, an orthonormal basis of its last top eigenvectors (``shares``):
        the principal angles of the next probe are measured against it.
    warm : bool
        Whether solves start from ``bases`` (warm starts); the spans are kept either
        way.
    """

    bases: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    spans: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    warm: bool = True


@dataclass
class ProbeContext:
    """What every solve of one probe shares.

    Attributes
    ----------
    options : ProbeOptions
    group : ProbeGroup or None
        The ranks probing together (``None``: one process).
    weight : float
        This rank's weight in the average over the group.
    failed_elsewhere : dict of int to str
        ``{rank: status}`` of the other ranks whose losses failed.
    state : ProbeState or None
        Warm starts in and out; ``None``: every solve starts cold.
    """

    options: ProbeOptions
    group: Optional[ProbeGroup] = None
    weight: float = 1.0
    failed_elsewhere: dict[int, str] = dataclasses.field(default_factory=dict)
    state: Optional[ProbeState] = None

    def operator(self, op: Any) -> Any:
        """``op``, averaged over the group's ranks when there is a group."""
        return op if self.group is None else AveragedOperator(op, self.group, self.weight)

    def solver_options(self, plan: Plan) -> SolverOptions:
        """The plan's solver options, with the basis sharded over the group if asked.

        Ranks of a distributed probe must run identical iterations, so an ``ncv`` that
        was chosen from each rank's free memory is replaced by the default there.
        """
        solver = plan.solver
        assert solver is not None
        if self.group is None:
            return solver
        if self.options.solver.ncv is None:
            solver = solver.replace(ncv=default_ncv(solver.k))
        if not self.options.shard_basis:
            return solver
        return solver.replace(
            basis=dataclasses.replace(solver.basis, group=self.group.group or True)
        )

    @property
    def field_seed(self) -> Optional[int]:
        """The seed of the losses closure's random streams on this rank (``seed + rank``)."""
        seed = self.options.seed
        return seed + self.group.rank if self.group is not None and seed is not None else seed

    @property
    def seed(self) -> int:
        """The seed of the solvers' start vectors and estimators (0 without one)."""
        return 0 if self.options.seed is None else int(self.options.seed)


def failed_record(
    plan: Plan, status: str, message: str, n_matvec: int = 0, wall_time: float = 0.0
) -> OperatorRecord:
    """The record of a solve that failed or never ran: ``k`` NaN eigenvalues."""
    return OperatorRecord(
        name=plan.name,
        kind=plan.kind,
        which=plan.which,
        eigenvalues=np.full(plan.k, complex("nan+nanj"), dtype=np.complex128),
        residuals=np.full(plan.k, np.nan),
        converged=np.zeros(plan.k, dtype=bool),
        n_matvec=int(n_matvec),
        wall_time=wall_time,
        status=status,
        message=message,
        scalars=spectrum_scalars(plan.kind, np.empty(0, dtype=np.complex128)),
    )


def solve_plan(
    field: GameField, plan: Plan, ctx: ProbeContext, jacobian: Optional[OperatorRecord] = None
) -> OperatorRecord:
    """The record of one planned operator on the probe's field.

    ``jacobian`` is the record of the Jacobian of the same probe, which the update
    operator's tolerance and step-size bound use.
    """
    if plan.kind == "helmholtz":
        return _helmholtz_record(field, plan, ctx)
    if plan.kind == "density":
        return _density_record(field, plan, ctx)
    if plan.kind == "update":
        return _update_record(field, plan, ctx, jacobian)
    op = (
        GameJacobian.from_field(field)
        if plan.kind == "jacobian"
        else PlayerHessian.from_field(field, plan.name)
    )
    return _eigen_record(op, plan, ctx)


def _eigen_record(
    op: Any, plan: Plan, ctx: ProbeContext, tol: Optional[float] = None
) -> OperatorRecord:
    """The eigenvalues of ``op`` (averaged over the group) as the plan's record."""
    op = ctx.operator(op)
    if plan.kind == "jacobian" and "shares" in plan.extras and ctx.options.shares == "left":
        op = op.T  # left eigenvectors of J are right eigenvectors of Jᵀ (products Jᵀu)
    options = ctx.solver_options(plan)
    if tol is not None:
        options = options.replace(tol=tol)
    generator = torch.Generator(device=op.device).manual_seed(ctx.seed)
    warm: dict[str, Any] = {}
    if ctx.state is not None and ctx.state.warm:
        warm = {"v0": ctx.state.bases.get(plan.name), "return_basis": True}
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = solve(
                op,
                options,
                symmetric=plan.symmetric,
                generator=generator,
                **warm,
                **_vectors(plan, ctx),
            )
    except Exception as exc:  # recorded, not raised: a probe must not stop training
        if ctx.options.on_error == "raise":
            raise
        status = "nonfinite" if isinstance(exc, NonFiniteError) else "error"
        return failed_record(plan, status, explain(exc), op.n_products, time.perf_counter() - start)
    if ctx.state is not None and ctx.state.warm and result.basis is not None:
        ctx.state.bases[plan.name] = result.basis
    eigenvalues = result.eigenvalues.numpy().astype(np.complex128)
    converged = result.converged.numpy().astype(bool)
    notes = list(result.notes)
    status = "ok"
    if not converged.all():
        budget = options.max_matvecs is not None and result.n_matvec >= options.max_matvecs
        status = "budget" if budget else "unconverged"
        notes.insert(0, f"{int(converged.sum())} of {len(converged)} eigenvalues converged")
    scalars = spectrum_scalars(plan.kind, eigenvalues)
    arrays: dict[str, np.ndarray] = {}
    if "shares" in plan.extras and result.eigenvectors is not None:
        arrays, scalars["subspace_overlap"] = _shares(
            result.eigenvectors, field_game(op), plan, ctx
        )
    return OperatorRecord(
        name=plan.name,
        kind=plan.kind,
        which=plan.which,
        eigenvalues=eigenvalues,
        residuals=result.residuals.numpy().astype(np.float64),
        converged=converged,
        n_matvec=int(result.n_matvec),
        wall_time=time.perf_counter() - start,
        status=status,
        message="; ".join(notes),
        scalars=scalars,
        arrays=arrays,
        **_names(field_game(op), plan) if arrays else {},
    )


def _names(game: Game, plan: Plan) -> dict[str, tuple[str, ...]]:
    """The names along the share arrays' last axis."""
    player = None if plan.kind == "jacobian" else plan.name
    return {"tensor_names": game.parameter_names(player), "player_names": game.player_names}


def field_game(op: Any) -> Game:
    """The game of a (possibly rank-averaged or transposed) game operator."""
    while getattr(op, "game", None) is None:
        op = getattr(op, "local", None) or op.base
    return op.game


def _vectors(plan: Plan, ctx: ProbeContext) -> dict[str, Any]:
    """Solver keywords for the eigenvectors that ``shares`` needs.

    The Jacobian's left ones are those of the transposed operator, its right ones J's own.
    """
    if "shares" not in plan.extras:
        return {}
    return {"return_eigenvectors": True}


def _shares(
    vectors: torch.Tensor, game: Game, plan: Plan, ctx: ProbeContext
) -> tuple[dict[str, np.ndarray], float]:
    """The eigenvectors' shares, and how far the top subspace turned since the last probe.

    Shares per tensor (and per player for J), the principal cosines to the previous
    probe's top subspace, and their mean square (NaN at the first probe).
    """
    player = None if plan.kind == "jacobian" else plan.name
    shares = tensor_shares(vectors, game.player_layout(player))
    arrays = {"shares": shares}
    if plan.kind == "jacobian":
        sizes = [len(game.player_tensors(p)) for p in game.player_names]
        arrays["player_shares"] = block_shares(shares, sizes)
    span = orthonormal_span(vectors)
    previous = None if ctx.state is None else ctx.state.spans.get(plan.name)
    cosines = principal_cosines(previous, span)
    if ctx.state is not None:
        ctx.state.spans[plan.name] = span
    arrays["principal_cosines"] = cosines
    overlap = float(np.mean(cosines**2)) if cosines.size else float("nan")
    return arrays, overlap


def _density_record(field: GameField, plan: Plan, ctx: ProbeContext) -> OperatorRecord:
    """The spectral density of a player's Hessian or of S = (J + Jᵀ)/2, as a record.

    By stochastic Lanczos quadrature: its nodes and weights, and what they say.
    """
    request = ctx.options.density
    assert request is not None and plan.target is not None
    base = (
        SymmetricPart(GameJacobian.from_field(field))
        if plan.target == SYMMETRIC
        else PlayerHessian.from_field(field, plan.target)
    )
    op = ctx.operator(base)
    start = time.perf_counter()
    try:
        estimate = spectral_density(
            op, n_vectors=request.n_vectors, n_steps=request.n_steps, seed=ctx.seed
        )
    except Exception as exc:  # recorded, not raised: a probe must not stop training
        if ctx.options.on_error == "raise":
            raise
        status = "nonfinite" if isinstance(exc, NonFiniteError) else "error"
        return failed_record(plan, status, explain(exc), op.n_products, time.perf_counter() - start)
    shape = (request.n_vectors, request.n_steps)
    nodes, weights = np.full(shape, np.nan), np.full(shape, np.nan)
    rows, cols = estimate.nodes.shape
    nodes[:rows, :cols], weights[:rows, :cols] = estimate.nodes, estimate.weights
    return OperatorRecord(
        name=plan.name,
        kind=plan.kind,
        which="",
        eigenvalues=np.empty(0, np.complex128),
        residuals=np.empty(0),
        converged=np.empty(0, bool),
        n_matvec=estimate.n_matvec,
        wall_time=time.perf_counter() - start,
        status="ok",
        message="",
        scalars=_density_scalars(estimate.nodes, estimate.weights, plan.n),
        arrays={"nodes": nodes, "weights": weights},
    )


def _density_scalars(nodes: np.ndarray, weights: np.ndarray, n: int) -> dict[str, float]:
    """The extreme nodes, the trace estimate n·mean Σ wθ and the mass below zero."""
    held = weights > 0
    return {
        "lambda_min": float(nodes[held].min()),
        "lambda_max": float(nodes[held].max()),
        "trace": float(n * np.mean((weights * nodes).sum(axis=1))),
        "negative_mass": float(np.mean((weights * (nodes < 0)).sum(axis=1))),
    }


def _update_record(
    field: GameField, plan: Plan, ctx: ProbeContext, jacobian: Optional[OperatorRecord]
) -> OperatorRecord:
    r"""The update operator's eigenvalues, :math:`\rho` and the largest stable step size."""
    rule = ctx.options.update
    assert rule is not None
    computed = np.empty(0, dtype=np.complex128)
    if jacobian is not None:
        computed = jacobian.eigenvalues[np.isfinite(jacobian.eigenvalues)]
    try:
        op = rule.operator(GameJacobian.from_field(field))  # reads the optimizers' state now
    except Exception as exc:  # e.g. an optimizer that has not stepped yet
        if ctx.options.on_error == "raise":
            raise
        return failed_record(plan, "error", explain(exc))
    # ‖HJ‖ <= max step size * |λ|max: the scale of ρ - 1, which the tolerance must resolve
    scale = float(op.step_sizes.abs().max()) * (np.abs(computed).max() if computed.size else 1.0)
    tol = max(ctx.options.solver.tol * min(1.0, scale), RESIDUAL_FLOOR)
    record = _eigen_record(op, plan, ctx, tol=tol)
    finite = record.eigenvalues[np.isfinite(record.eigenvalues)]
    bound = float("nan")
    if rule.closed_form is not None and computed.size:
        bound = max_stable_lr(computed, rule.closed_form, beta=rule.beta or 0.0).lr
    elif rule.method == "gd" and finite.size:
        # ∂T = I - η (H/η) J for preconditioned or per-player steps: ν = (1 - μ)/η are
        # eigenvalues of (H/η) J, and GD's bound on them is the largest stable η
        bound = max_stable_lr((1 - finite) / rule.step_size, "gd").lr
    scalars = {
        "spectral_radius": float(np.abs(finite).max()) if finite.size else float("nan"),
        "max_stable_lr": bound,
        "lr": rule.step_size,
    }
    return dataclasses.replace(record, scalars=scalars)


def _helmholtz_record(field: GameField, plan: Plan, ctx: ProbeContext) -> OperatorRecord:
    """The Helmholtz split of J (averaged over the group's ranks) as a record."""
    start = time.perf_counter()
    op = ctx.operator(GameJacobian.from_field(field))
    assert ctx.options.helmholtz is not None
    try:
        estimate = helmholtz_split(op, ctx.options.helmholtz, seed=ctx.seed)
    except Exception as exc:  # recorded, not raised: a probe must not stop training
        if ctx.options.on_error == "raise":
            raise
        status = "nonfinite" if isinstance(exc, NonFiniteError) else "error"
        return failed_record(plan, status, explain(exc), op.n_products, time.perf_counter() - start)
    scalars = {
        name: (float("nan") if value is None else float(value))
        for name, value in dataclasses.asdict(estimate).items()
        if name in SCALARS["helmholtz"]
    }
    nonfinite = not all(
        math.isfinite(v) for k, v in scalars.items() if not k.startswith("zero_sum")
    )
    return OperatorRecord(
        name=plan.name,
        kind=plan.kind,
        which=plan.which,
        eigenvalues=np.empty(0, dtype=np.complex128),
        residuals=np.empty(0),
        converged=np.empty(0, dtype=bool),
        n_matvec=estimate.n_matvec,
        wall_time=time.perf_counter() - start,
        status="nonfinite" if nonfinite else "ok",
        message="",
        scalars=scalars,
    )
