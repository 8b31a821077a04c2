"""The optimiser a training run uses, as probes of its update operator need it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Union

import torch

from ..game import GameJacobian
from ..registry import update_method
from ..validation import integer, positive
from .preconditioner import optimizer_preconditioner
from .updates import UpdateOperator, check_update_parameters, update_operator

__all__ = ["UpdateRule", "Optimizers"]


Optimizers = Union[
    torch.optim.Optimizer, Iterable[torch.optim.Optimizer], Mapping[str, torch.optim.Optimizer]
]


@dataclass(frozen=True)
class UpdateRule:
    r"""The optimiser a training run uses, for probes of its update operator.

    A probe with an ``UpdateRule`` (:func:`specdiag.probe`, :class:`specdiag.SpectrumMonitor`)
    builds :func:`update_operator` on the probe's Jacobian and records the top
    eigenvalues of :math:`\partial T`, its spectral radius :math:`\rho` and, where a closed
    form exists, the largest stable step size (:func:`specdiag.max_stable_lr`).

    Parameters
    ----------
    method : str
        One of :data:`specdiag.dynamics.UPDATE_METHODS`.
    lr : float or mapping of str to float
        The step size the run uses (one, or one per player).
    beta, gamma : float, optional
        Momentum (momentum methods) and consensus weight (``"consensus"``).
    order : sequence of str, optional
        Update order of the two players (alternating methods).
    optimizers : optimizer(s) or callable, optional
        Adam, AdamW or RMSprop optimizers (one, a list, ``{player: optimizer}``, or a
        callable returning them at probe time): their second moments precondition the
        step, :math:`\partial T` then uses :math:`\eta P^{-1} J`
        (:func:`optimizer_preconditioner`). Read afresh at every probe.
    k : int
        Eigenvalues of :math:`\partial T` computed per probe (at most the probe's
        ``k``). :math:`\rho` needs only the largest; the eigenvalues of
        :math:`\partial T` cluster near 1, so each one more costs many products.
    align : bool, optional
        SGA's sign rule for ``gamma`` (method ``"sga"`` only).

    Examples
    --------
    Negative momentum (Gidel et al., 2019) on the Dirac-GAN, where alternating
    gradient descent only circles the equilibrium (:math:`\rho = 1`):

    >>> game = toys.dirac_gan(loss="wgan").game
    >>> rule = UpdateRule("alternating_momentum", lr=0.1, beta=-0.5)
    >>> rec = sd.probe(game, k=2, update=rule, operators=("jacobian",))
    >>> round(rec["update"].scalars["spectral_radius"], 4)  # < 1: it converges
    0.9985

    The update Adam or RMSprop actually makes reads their state at every probe:

    >>> gan = toys.mog_gan(hidden=8, depth=1)
    >>> _ = gan.train(2, optimizer="adam")
    >>> rule = UpdateRule("gd", lr=1e-4, optimizers=lambda: gan.optimizers)
    """

    method: str
    lr: float | Mapping[str, float]
    beta: float | None = None
    gamma: float | None = None
    order: Sequence[str] | None = None
    optimizers: Optimizers | Callable[[], Optimizers] | None = None
    k: int = 3
    align: bool | None = None

    def __post_init__(self) -> None:
        check_update_parameters(
            self.method, beta=self.beta, gamma=self.gamma, align=self.align, order=self.order
        )
        integer(self.k, "k", 1)
        lrs = self.lr.values() if isinstance(self.lr, Mapping) else [self.lr]
        for value in lrs:
            positive(value, "lr")

    def operator(self, jacobian: GameJacobian) -> UpdateOperator:
        """:func:`update_operator` of this rule on ``jacobian`` (the preconditioner read now)."""
        preconditioner = None
        if self.optimizers is not None:
            optimizers = self.optimizers() if callable(self.optimizers) else self.optimizers
            preconditioner = optimizer_preconditioner(jacobian.game, optimizers)
        return update_operator(
            jacobian,
            self.method,
            self.lr,
            beta=self.beta,
            gamma=self.gamma,
            align=self.align,
            order=self.order,
            preconditioner=preconditioner,
        )

    @property
    def closed_form(self) -> str | None:
        """The method's name if its update eigenvalues have a closed form here, else ``None``.

        :mod:`specdiag.stability` then maps ``J``'s eigenvalues exactly to ``∂T``'s; there
        is no closed form for some methods, nor for per-player or preconditioned steps.
        """
        if self.optimizers is not None or isinstance(self.lr, Mapping):
            return None
        return self.method if update_method(self.method).shifts is not None else None

    @property
    def augmented(self) -> bool:
        """Whether the update operator acts on :math:`(x_t, x_{t-1})` (order :math:`2n`)."""
        return update_method(self.method).augmented

    @property
    def step_size(self) -> float:
        """The largest of the step sizes."""
        return float(max(self.lr.values())) if isinstance(self.lr, Mapping) else float(self.lr)

    def config(self) -> dict[str, Any]:
        """The rule as JSON data (optimizers by class name)."""
        optimizers = None
        if self.optimizers is not None:
            optimizers = (
                "callable"
                if callable(self.optimizers)
                else sorted(
                    {
                        type(o).__name__
                        for o in (
                            self.optimizers.values()
                            if isinstance(self.optimizers, Mapping)
                            else (
                                [self.optimizers]
                                if isinstance(self.optimizers, torch.optim.Optimizer)
                                else self.optimizers
                            )
                        )
                    }
                )
            )
        return {
            "method": self.method,
            "lr": dict(self.lr) if isinstance(self.lr, Mapping) else float(self.lr),
            "beta": self.beta,
            "gamma": self.gamma,
            "order": list(self.order) if self.order is not None else None,
            "preconditioner": optimizers,
            "align": self.align,
            "k": self.k,
        }
