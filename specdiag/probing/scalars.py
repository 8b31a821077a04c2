"""The per-probe summary scalars of a set of computed eigenvalues (numpy only)."""

from __future__ import annotations

import numpy as np

from ..trace import DEFAULT_SCALARS

__all__ = ["spectrum_scalars", "SCALARS"]

#: The per-probe scalars of each kind of operator (see :func:`spectrum_scalars`), as
#: the trace format defines them.
SCALARS = DEFAULT_SCALARS


def spectrum_scalars(kind: str, eigenvalues: np.ndarray) -> dict[str, float]:
    r"""Summary numbers of a set of computed eigenvalues.

    Over the finite eigenvalues given (converged or not: the record's ``converged``
    flags say which met the tolerance), NaN where there are none:

    * ``"jacobian"``: ``min_real`` (:math:`\min \operatorname{Re}\lambda`, the least
      contraction; negative means a locally unstable direction of gradient flow in the
      descent convention), ``max_imag`` (:math:`\max |\operatorname{Im}\lambda|`, the
      fastest rotation), ``max_imag_over_real`` (:math:`\max |\operatorname{Im}\lambda /
      \operatorname{Re}\lambda|` over eigenvalues with :math:`\lambda \ne 0`; ``inf``
      for a non-zero purely imaginary one: rotation without contraction) and
      ``spectral_radius`` (:math:`\max |\lambda|`).
    * ``"hessian"``: ``max`` and ``min`` of the (real) eigenvalues.

    The solvers compute only the ``k`` most wanted eigenvalues (by ``which``), so these
    are extremes of that set: ``min_real`` of the ``k`` largest-magnitude eigenvalues
    is not the smallest real part of the whole spectrum (ask ``which="SR"`` for that).
    """
    values = np.asarray(eigenvalues, dtype=np.complex128)
    values = values[np.isfinite(values)]
    nan = float("nan")
    if kind == "hessian":
        real = values.real
        return {
            "max": float(real.max()) if real.size else nan,
            "min": float(real.min()) if real.size else nan,
        }
    if kind in ("update", "helmholtz"):  # filled in by the probe, which knows the rule
        return dict.fromkeys(SCALARS[kind], nan)
    if kind != "jacobian":
        raise ValueError(f"kind must be one of {sorted(SCALARS)}, got {kind!r}")
    if not values.size:
        return dict.fromkeys(SCALARS["jacobian"], nan)
    nonzero = values[values != 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.abs(nonzero.imag / nonzero.real)
    return {
        "min_real": float(values.real.min()),
        "max_imag": float(np.abs(values.imag).max()),
        "max_imag_over_real": float(ratios.max()) if ratios.size else nan,
        "spectral_radius": float(np.abs(values).max()),
    }
