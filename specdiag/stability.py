r"""Where an optimiser converges: eigenvalues of the update Jacobian from those of :math:`J`.

Numpy only (no torch): works on eigenvalues read from a trace.

An optimiser is a map :math:`x_{t+1} = T(x_t)` (or, with memory, of the augmented
state :math:`(x_t, x_{t-1})`); near a stationary point it converges iff every
eigenvalue :math:`\mu` of :math:`\partial T` lies strictly inside the unit disc. For the
methods below, when every player uses the same step size :math:`\eta`, :math:`\partial T`
is a polynomial in :math:`J` (or a block matrix of such polynomials), so each
eigenvalue :math:`\lambda` of :math:`J` maps to one or two :math:`\mu` exactly, with
:math:`z = \eta\lambda` (descent convention, :math:`x \leftarrow x - \eta v`):

.. list-table::
   :header-rows: 1
   :widths: 18 42 40

   * - method
     - update
     - :math:`\mu` from :math:`\lambda`
   * - ``"gd"``
     - :math:`x_{t+1} = x_t - \eta v(x_t)`
     - :math:`\mu = 1 - z`
   * - ``"extragradient"``
     - :math:`x_{t+1} = x_t - \eta v(x_t - \eta v(x_t))`
     - :math:`\mu = 1 - z + z^2`
   * - ``"optimistic"``
     - :math:`x_{t+1} = x_t - 2\eta v(x_t) + \eta v(x_{t-1})`
     - roots of :math:`\mu^2 - (1 - 2z)\mu - z`
   * - ``"momentum"``
     - :math:`x_{t+1} = x_t - \eta v(x_t) + \beta(x_t - x_{t-1})`
     - roots of :math:`\mu^2 - (1 + \beta - z)\mu + \beta`

Derivations: extragradient's :math:`\partial T = I - \eta J(I - \eta J)`. Optimistic GD
and heavy-ball momentum act on :math:`(x_t, x_{t-1})` with

.. math::

    \partial T_{\rm OGD} = \begin{pmatrix} I - 2\eta J & \eta J \\ I & 0 \end{pmatrix},
    \qquad
    \partial T_{\beta} = \begin{pmatrix} (1 + \beta) I - \eta J & -\beta I \\ I & 0 \end{pmatrix};

for an eigenvector :math:`Jw = \lambda w`, the vector :math:`(\mu w, w)` is an
eigenvector of :math:`\partial T` iff :math:`\mu` solves the quadratic in the table
(Gidel et al., 2019, *Negative momentum for improved game dynamics*).

Alternating updates, per-player step sizes, preconditioners and consensus optimisation
do not map eigenvalue to eigenvalue; use the matrix-free operators of
:mod:`specdiag.dynamics` and :func:`specdiag.dynamics.spectral_radius` for them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .registry import CLOSED_FORM_METHODS, UPDATE_METHODS

__all__ = ["METHODS", "StepSizeBound", "update_eigenvalues", "update_radius", "max_stable_lr"]

#: Methods whose update eigenvalues are closed-form functions of :math:`\eta\lambda`.
METHODS = CLOSED_FORM_METHODS

#: Every root of the update polynomial lies outside the unit disc once :math:`|\eta\lambda|`
#: exceeds this (GD and extragradient: 2, optimistic: 1, momentum: :math:`2 + |1 + \beta| \le 4`).
_Z_MAX = 4.5
#: Log-spaced grid of :math:`|\eta\lambda|` on which stability changes are bracketed.
_GRID = np.concatenate([[0.0], np.logspace(-8, np.log10(_Z_MAX), 4000)])
_BISECTIONS = 60


def _check_method(method: str, beta: float) -> None:
    if method not in METHODS:
        raise ValueError(
            f"method must be one of {METHODS}, got {method!r}; alternating updates, per-player "
            "step sizes, preconditioners and consensus have no closed form: build their update "
            "operator with specdiag.dynamics.update_operator and use spectral_radius"
        )
    if not np.isfinite(beta):
        raise ValueError(f"beta must be a finite number, got {beta!r}")
    if beta != 0 and method != "momentum":
        raise ValueError(
            f"beta is the momentum of method='momentum'; method={method!r} takes no beta"
        )


def _check_lr(lr: float) -> float:
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    return float(lr)


def _update_shifts(z: np.ndarray, method: str, beta: float) -> np.ndarray:
    r""":math:`\nu = \mu - 1` for :math:`z = \eta\lambda` (see :mod:`specdiag.registry.methods`)."""
    shifts = UPDATE_METHODS[method].shifts
    assert shifts is not None  # _check_method admits closed forms only
    return shifts(z, beta)


def update_eigenvalues(
    eigenvalues: Any, method: str, lr: float, *, beta: float = 0.0
) -> np.ndarray:
    r"""Eigenvalues :math:`\mu` of the update Jacobian from eigenvalues :math:`\lambda` of J.

    Those of :math:`\partial T` (see the table in :mod:`specdiag.stability`).

    Parameters
    ----------
    eigenvalues : array_like of complex
        Eigenvalues of :math:`J` (descent convention), any shape; NaN gives NaN.
    method : {"gd", "extragradient", "optimistic", "momentum"}
    lr : float
        Step size :math:`\eta > 0`, the same for every player.
    beta : float
        Heavy-ball momentum :math:`\beta` (``method="momentum"`` only; negative allowed).

    Returns
    -------
    numpy.ndarray
        ``complex128``, shape ``eigenvalues.shape + (m,)`` with ``m = 1`` for ``"gd"`` and
        ``"extragradient"``, ``m = 2`` for the methods on the augmented state
        :math:`(x_t, x_{t-1})` (both roots of the quadratic, in no particular order).
    """
    _check_method(method, beta)
    z = _check_lr(lr) * np.asarray(eigenvalues, dtype=complex)
    return 1 + _update_shifts(z, method, float(beta))


def update_radius(eigenvalues: Any, method: str, lr: float, *, beta: float = 0.0) -> np.ndarray:
    r""":math:`\max |\mu|` over the update eigenvalues of each :math:`\lambda`.

    Below 1 where the optimiser contracts along that eigenvector, above 1 where it
    diverges. Vectorised: evaluate it on a grid of complex :math:`\lambda` and draw the
    contour at 1 to see a method's stability region at step size ``lr``.

    Parameters
    ----------
    eigenvalues, method, lr, beta
        As in :func:`update_eigenvalues`.

    Returns
    -------
    numpy.ndarray
        ``float64``, the shape of ``eigenvalues`` (NaN where the eigenvalue is NaN).

    Examples
    --------
    >>> update_radius([1j, -1j], "gd", 0.5)            # bilinear game: sqrt(1.25)
    array([1.11803399, 1.11803399])
    >>> update_radius([1j], "extragradient", 0.5)
    array([0.90138782])
    """
    return np.abs(update_eigenvalues(eigenvalues, method, lr, beta=beta)).max(axis=-1)


@dataclass(frozen=True)
class StepSizeBound:
    r"""The largest stable step size for a set of eigenvalues of :math:`J`.

    Attributes
    ----------
    lr : float
        :math:`\eta^*`: every step size in :math:`(0, \eta^*)` maps every eigenvalue
        strictly inside the unit disc, and some eigenvalue is on or outside it at
        :math:`\eta^*`. **0.0 when no interval** :math:`(0, \eta)` **is stable** (then
        ``exists`` is False and ``reason`` says which eigenvalue prevents it).
    method : str
    beta : float
    limiting_eigenvalue : complex or None
        The eigenvalue of :math:`J` that sets ``lr``, or that rules out every small
        step size (e.g. one with :math:`\operatorname{Re}\lambda \le 0` for GD).
    reason : str
        One sentence: what sets the bound, or why no step size is stable.
    intervals : tuple of (float, float)
        Every stable step size found, as disjoint open intervals in increasing order;
        ``((0, lr), ...)`` when ``exists``. It can be non-empty when ``lr`` is 0:
        extragradient and optimistic GD can be stable for an eigenvalue slightly left of
        the imaginary axis, but only for step sizes away from 0.
    """

    lr: float
    method: str
    beta: float
    limiting_eigenvalue: complex | None
    reason: str
    intervals: tuple[tuple[float, float], ...]

    @property
    def exists(self) -> bool:
        r"""Whether some interval :math:`(0, \eta^*)` of step sizes is stable."""
        return self.lr > 0

    def __str__(self) -> str:
        return self.reason


def _finite_eigenvalues(eigenvalues: Any) -> np.ndarray:
    """Finite eigenvalues, one of each conjugate pair (|μ| is conjugation invariant)."""
    lam = np.asarray(eigenvalues, dtype=complex).reshape(-1)
    lam = lam[np.isfinite(lam)]
    if lam.size == 0:
        raise ValueError(
            "max_stable_lr needs at least one finite eigenvalue (NaN padding is ignored)"
        )
    return np.unique(lam.real + 1j * np.abs(lam.imag))


def max_stable_lr(eigenvalues: Any, method: str = "gd", *, beta: float = 0.0) -> StepSizeBound:
    r"""The largest step size :math:`\eta^*` with every :math:`\eta \in (0, \eta^*)` stable.

    "Stable" means every given eigenvalue :math:`\lambda` of :math:`J` maps to update
    eigenvalues with :math:`|\mu| < 1` (:func:`update_radius`), so the method converges
    locally near a stationary point where these are :math:`J`'s eigenvalues. Only the
    eigenvalues given are checked: pass the ones that can bind (for GD, those with the
    smallest :math:`\operatorname{Re}\lambda / |\lambda|^2`, which are often the largest
    by magnitude or by :math:`|\operatorname{Im}\lambda|`).

    * ``"gd"``, in closed form: :math:`|1 - \eta\lambda| < 1 \iff 0 < \eta <
      2\operatorname{Re}\lambda / |\lambda|^2`, so :math:`\eta^* = \min_\lambda
      2\operatorname{Re}\lambda/|\lambda|^2`; no step size is stable if some
      :math:`\operatorname{Re}\lambda \le 0`.
    * other methods, numerically: :math:`|\mu|` depends on :math:`z = \eta\lambda` only,
      and every method is unstable for :math:`|z| > 4.5`. For each :math:`\lambda` the
      changes of stability along :math:`|z| \in (0, 4.5]` are bracketed on a grid of
      4000 log-spaced points from :math:`10^{-8}` (plus the exact behaviour as
      :math:`\eta \to 0`: stable iff :math:`\operatorname{Re}\lambda > 0`, or
      :math:`\operatorname{Re}\lambda = 0` and the first grid point is stable) and
      refined by bisection to machine precision; the stable set of all eigenvalues
      together is then read off between consecutive change points. Stable islands
      narrower than about 0.5% of their step size could be missed.

    Parameters
    ----------
    eigenvalues : array_like of complex
        Eigenvalues of :math:`J` (descent convention); NaN entries (padding in a trace)
        are ignored.
    method : {"gd", "extragradient", "optimistic", "momentum"}
    beta : float
        Heavy-ball momentum (``method="momentum"``); no step size is stable when
        :math:`|\beta| \ge 1` (the two roots multiply to :math:`\beta`).

    Returns
    -------
    StepSizeBound
        ``lr`` (:math:`\eta^*`, **0.0 when none exists**), ``exists``, the limiting
        eigenvalue, a one-sentence ``reason`` and all stable ``intervals`` found.

    Raises
    ------
    ValueError
        Unknown method, ``beta`` given for another method, or no finite eigenvalue.

    Notes
    -----
    An eigenvalue :math:`\lambda = 0` maps to :math:`\mu = 1` for every method and
    step size: nothing is stable in the strict sense (the iteration neither converges
    nor diverges along it). Eigenvalues from an iterative solver are approximate; one
    at :math:`-10^{-9}` rules out GD just as :math:`-1` does.

    Examples
    --------
    >>> max_stable_lr([1 + 1j, 1 - 1j]).lr                 # 2 Re λ / |λ|^2
    1.0
    >>> max_stable_lr([1j, -1j]).exists                    # bilinear game: GD never converges
    False
    >>> round(max_stable_lr([1j, -1j], "extragradient").lr, 12)
    1.0
    """
    _check_method(method, beta)
    lam = _finite_eigenvalues(eigenvalues)
    beta = float(beta)
    if np.any(lam == 0):
        return _none(
            method,
            beta,
            0j,
            "λ = 0 is an eigenvalue of J: it maps to μ = 1 at every step "
            "size, so no step size contracts along it",
        )
    if method == "momentum" and abs(beta) >= 1:
        return _none(
            method,
            beta,
            None,
            f"|beta| = {abs(beta):g} >= 1: the two update eigenvalues "
            "of every λ multiply to beta, so one has |μ| >= 1 at every step size",
        )
    if method == "gd":
        return _gd_bound(lam)
    return _numerical_bound(lam, method, beta)


def _none(
    method: str,
    beta: float,
    lam: complex | None,
    why: str,
    intervals: tuple[tuple[float, float], ...] = (),
) -> StepSizeBound:
    return StepSizeBound(
        0.0, method, beta, lam, f"no stable step size for {method}: {why}", intervals
    )


def _gd_bound(lam: np.ndarray) -> StepSizeBound:
    squared = lam.real**2 + lam.imag**2
    i = int(np.argmin(lam.real / squared))
    worst = complex(lam[i])
    if worst.real <= 0:
        return _none(
            "gd",
            0.0,
            worst,
            f"λ = {worst:.4g} has Re λ <= 0, and |1 - ηλ| >= 1 for every η > 0 "
            "(gradient descent needs Re λ > 0 for every eigenvalue)",
        )
    lr = float(2 * worst.real / squared[i])
    return StepSizeBound(
        lr,
        "gd",
        0.0,
        worst,
        f"gd is stable for η < {lr:.6g} = 2 Re λ / |λ|² at λ = {worst:.4g}",
        ((0.0, lr),),
    )


def _contracts(z: np.ndarray, method: str, beta: float) -> np.ndarray:
    r"""Whether every update eigenvalue of :math:`z = \eta\lambda` has :math:`|\mu| < 1`."""
    nu = _update_shifts(z, method, beta)
    return (2 * nu.real + np.abs(nu) ** 2).max(axis=-1) < 0


def _numerical_bound(lam: np.ndarray, method: str, beta: float) -> StepSizeBound:
    scale = np.abs(lam)
    direction = lam / scale  # z = direction * s with s = η|λ|
    flags = _contracts(direction[:, None] * _GRID[None, 1:], method, beta)
    near_zero = (lam.real > 0) | ((lam.real == 0) & flags[:, 0])
    flags = np.concatenate([near_zero[:, None], flags], axis=1)
    rows, cols = np.nonzero(flags[:, 1:] != flags[:, :-1])
    lo, hi, lo_flag = _GRID[cols], _GRID[cols + 1], flags[rows, cols]
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        same = _contracts(direction[rows] * mid, method, beta) == lo_flag
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    changes = (lo + hi) / 2 / scale[rows]
    edges = np.unique(np.concatenate([[0.0], changes, [_Z_MAX / scale.min()]]))
    mids = (edges[:-1] + edges[1:]) / 2
    stable = np.asarray(_contracts(lam[:, None] * mids[None, :], method, beta).all(axis=0))
    stable[0] = bool(near_zero.all())
    intervals = _merge(edges, stable)
    if not near_zero.all():
        bad = lam[~near_zero]
        worst = complex(bad[np.argmin(bad.real / np.abs(bad))])
        where = (
            "; stable only for η in " + ", ".join(f"({a:.4g}, {b:.4g})" for a, b in intervals)
            if intervals
            else ""
        )
        return _none(
            method,
            beta,
            worst,
            f"λ = {worst:.4g} has Re λ <= 0, and {method} does not "
            f"contract along it for small step sizes{where}",
            intervals,
        )
    lr = intervals[0][1]
    limiting = complex(lam[rows[np.argmin(np.abs(changes - lr))]])
    extra = f"; also stable for η in {intervals[1:]}" if len(intervals) > 1 else ""
    return StepSizeBound(
        lr,
        method,
        beta,
        limiting,
        f"{method} is stable for η < {lr:.6g}, set by λ = {limiting:.4g}{extra}",
        intervals,
    )


def _merge(edges: np.ndarray, stable: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Disjoint open intervals from consecutive segments ``(edges[j], edges[j + 1])``."""
    out: list[tuple[float, float]] = []
    for a, b, ok in zip(edges[:-1], edges[1:], stable):
        if not ok:
            continue
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], float(b))
        else:
            out.append((float(a), float(b)))
    return tuple(out)
