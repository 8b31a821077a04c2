"""The settings of a probe, declared and checked in one place.

:class:`ProbeOptions` gathers what :func:`~specdiag.probe` and
:class:`~specdiag.SpectrumMonitor` take beyond the game and the batch: the operators and
their ``which``, the solver settings (a :class:`~specdiag.linalg.options.SolverOptions`,
``k`` included), the seed, what to do on a failure, the distributed settings, and the
update rule and Helmholtz samples. Both build it from their keywords; it is validated
once, when built, and passed down unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from ..dynamics import UpdateRule
from ..linalg.density import DEFAULT_STEPS as DENSITY_STEPS
from ..linalg.density import DEFAULT_VECTORS as DENSITY_VECTORS
from ..linalg.options import SolverOptions
from ..validation import integer, optional_integer
from .distributed import check_share

__all__ = ["ProbeOptions", "DensityRequest", "ON_ERROR", "DEFAULT_K", "SHARES"]

#: What a probe does on a failure: warn and record, record silently, or raise.
ON_ERROR = ("warn", "ignore", "raise")
#: Eigenvalues per operator of a probe unless told otherwise.
DEFAULT_K = 10
#: Which eigenvectors of J a probe's shares use: left (products Jᵀu) or right (J u).
SHARES = ("left", "right")


@dataclass(frozen=True)
class DensityRequest:
    r"""Spectral densities a probe computes (stochastic Lanczos quadrature).

    Attributes
    ----------
    operators : tuple of str or None
        Player names (their Hessians) and/or ``"symmetric"`` (:math:`S = (J + J^\top)/2`);
        ``None``: every player's Hessian.
    n_vectors, n_steps : int
        As for :func:`~specdiag.spectral_density` (the same defaults); each density costs
        ``n_vectors * n_steps`` products per probe.
    """

    operators: Optional[tuple[str, ...]] = None
    n_vectors: int = DENSITY_VECTORS
    n_steps: int = DENSITY_STEPS

    def __post_init__(self) -> None:
        if self.operators is not None:
            names = (self.operators,) if isinstance(self.operators, str) else self.operators
            object.__setattr__(self, "operators", tuple(names))
        integer(self.n_vectors, "density n_vectors", 1)
        integer(self.n_steps, "density n_steps", 2)

    @classmethod
    def of(cls, density: Any) -> Optional[DensityRequest]:
        """``density=`` of a probe as a request.

        ``False``/``None`` (none), ``True`` (every player's Hessian), a sequence of operator names,
        or a request.
        """
        if density is None or density is False:
            return None
        if density is True:
            return cls()
        if isinstance(density, cls):
            return density
        if isinstance(density, (str, Sequence)):
            return cls(operators=(density,) if isinstance(density, str) else tuple(density))
        raise TypeError(
            "density must be True, a sequence of operator names (players, 'symmetric') or a "
            f"DensityRequest, got {type(density).__name__}"
        )


Which = Union[str, Mapping[str, str], None]


@dataclass(frozen=True)
class ProbeOptions:
    r"""What a probe computes and how (see :func:`~specdiag.probe` for each setting).

    Attributes
    ----------
    solver : SolverOptions
        ``k``, ``tol``, ``ncv``, ``maxiter``, ``max_matvecs``, ``backend`` and the basis
        placement, shared by every operator's solve (``k`` capped at each operator's
        order; ``which`` comes from :attr:`which`).
    operators : tuple of str or None
        ``"jacobian"`` and player names (their Hessians); ``None``: all.
    which : str, mapping or None
        A string for the Jacobian, or ``{operator: which}``.
    seed : int or None
        Seed of the closure's random streams and of the start vectors.
    on_error : {"warn", "ignore", "raise"}
    distributed : None, bool or ProcessGroup
    shard_weight : float or None
    shard_basis : bool
    update : UpdateRule or None
    helmholtz : int or None
        Hutchinson samples of the Helmholtz split (``>= 2``).
    check_derivatives : bool
        Compare one product with finite differences of the field before the solves
        (:func:`~specdiag.probing.checks.derivative_check`; a monitor checks at its first
        probe only).
    shares : str or None
        ``"left"`` or ``"right"``: record where each top eigenvector lives (per parameter
        tensor and per player) and how far the top subspace turned since the previous
        probe (:mod:`~specdiag.probing.analyses`); left eigenvectors of :math:`J` use the
        cheap product :math:`J^\top u`, right ones :math:`J u`. ``None``: not recorded.
    density : DensityRequest or None
        Spectral densities to record at every probe.

    Raises
    ------
    TypeError, ValueError
        A setting of the wrong type or out of range; the message names it.
    """

    solver: SolverOptions = field(default_factory=lambda: SolverOptions(k=DEFAULT_K))
    operators: Optional[tuple[str, ...]] = None
    which: Which = None
    seed: Optional[int] = 0
    on_error: str = "warn"
    distributed: Any = None
    shard_weight: Optional[float] = None
    shard_basis: bool = False
    update: Optional[UpdateRule] = None
    helmholtz: Optional[int] = None
    check_derivatives: bool = True
    shares: Optional[str] = None
    density: Optional[DensityRequest] = None

    def __post_init__(self) -> None:
        if not isinstance(self.solver, SolverOptions):
            raise TypeError(f"solver must be a SolverOptions, got {type(self.solver).__name__}")
        if self.solver.which is not None:
            raise ValueError("give which through ProbeOptions.which, not the solver options")
        if self.operators is not None:
            names = (self.operators,) if isinstance(self.operators, str) else self.operators
            object.__setattr__(self, "operators", tuple(names))
        if self.which is not None and not isinstance(self.which, (str, Mapping)):
            raise TypeError(
                "which must be a string (for the Jacobian) or a mapping {operator: which}, "
                f"got {type(self.which).__name__}"
            )
        optional_integer(self.seed, "seed", 0)
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")
        check_share(self.shard_weight)
        if self.update is not None and not isinstance(self.update, UpdateRule):
            raise TypeError(
                f"update must be a specdiag.UpdateRule, got {type(self.update).__name__}"
            )
        if self.helmholtz is not None:
            integer(self.helmholtz, "helmholtz (a number of samples)", 2)
        if self.shares is True:
            object.__setattr__(self, "shares", "left")
        if self.shares is False:
            object.__setattr__(self, "shares", None)
        if self.shares is not None and self.shares not in SHARES:
            raise ValueError(f"shares must be True, False, 'left' or 'right', got {self.shares!r}")
        object.__setattr__(self, "density", DensityRequest.of(self.density))

    @classmethod
    def build(
        cls,
        *,
        k: int,
        operators: Optional[Sequence[str]],
        which: Which,
        tol: float,
        ncv: Optional[int],
        maxiter: Optional[int],
        max_matvecs: Optional[int],
        backend: str,
        basis: Any,
        **settings: Any,
    ) -> ProbeOptions:
        """The options from the keywords of :func:`~specdiag.probe`.

        ``basis`` is a :class:`~specdiag.linalg.options.BasisOptions`; ``settings`` are the other
        fields of this class.
        """
        solver = SolverOptions(
            k=k,
            tol=tol,
            ncv=ncv,
            maxiter=maxiter,
            max_matvecs=max_matvecs,
            backend=backend,
            basis=basis,
        )
        return cls(
            solver=solver,
            operators=None if operators is None else tuple(operators),
            which=which,
            **settings,
        )

    @property
    def k(self) -> int:
        """Eigenvalues per operator."""
        return self.solver.k

    def config(self) -> dict[str, Any]:
        """The settings as JSON data, as a trace's configuration stores them."""
        s = self.solver
        return {
            "k": s.k,
            "operators": None if self.operators is None else list(self.operators),
            "which": self.which if not isinstance(self.which, Mapping) else dict(self.which),
            "tol": s.tol,
            "ncv": s.ncv,
            "maxiter": s.maxiter,
            "max_matvecs": s.max_matvecs,
            "seed": self.seed,
            "on_error": self.on_error,
            "backend": s.backend,
            "basis": {
                **s.basis.config(),
                "sharded": bool(self.shard_basis and self.distributed not in (None, False)),
            },
            "update": None if self.update is None else self.update.config(),
            "helmholtz": self.helmholtz,
            "shares": self.shares,
            "density": None
            if self.density is None
            else {
                "operators": None
                if self.density.operators is None
                else list(self.density.operators),
                "n_vectors": self.density.n_vectors,
                "n_steps": self.density.n_steps,
            },
        }
