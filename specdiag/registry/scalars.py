r"""The per-probe summary scalars: what each is, how it is computed, where it is shown.

Every operator kind stores a few numbers per probe next to its eigenvalues (one
dataset each in a trace). Each :class:`Scalar` says what the number is, its label in
figures and its heading in ``specdiag summary``, and how it is computed: from the
finite computed eigenvalues (``compute``), or by the probe itself (``compute`` is
``None``: the update operator's step-size bound, the Helmholtz estimates).

The eigenvalue scalars summarise the ``k`` computed eigenvalues only: ``min_real`` of
the ``k`` eigenvalues of largest magnitude is not the smallest real part of the whole
spectrum (ask ``which="SR"`` for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

__all__ = ["Scalar", "SCALARS", "scalar", "scalar_names"]

Compute = Callable[[np.ndarray], float]


def _nan_if_empty(reduce: Compute) -> Compute:
    def compute(values: np.ndarray) -> float:
        return float(reduce(values)) if values.size else float("nan")

    compute.__doc__ = reduce.__doc__
    return compute


def _max_imag_over_real(values: np.ndarray) -> float:
    r"""The largest ratio :math:`|\operatorname{Im}\lambda / \operatorname{Re}\lambda|`.

    Over :math:`\lambda \ne 0`; ``inf`` for a non-zero purely imaginary one.
    """
    nonzero = values[values != 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.abs(nonzero.imag / nonzero.real)
    return float(ratios.max()) if ratios.size else float("nan")


@dataclass(frozen=True)
class Scalar:
    """One per-probe summary scalar of one operator kind.

    Attributes
    ----------
    name : str
        Its dataset name in a trace (unique within its kind).
    kind : str
        The operator kind it belongs to: ``"jacobian"``, ``"hessian"``, ``"update"``,
        ``"helmholtz"``.
    label : str
        Its label in figures.
    heading : str
        Its column heading in ``specdiag summary`` (``{op}`` is the operator's name).
    description : str
        What it is, in one sentence (docs and the dataset's attribute).
    compute : callable or None
        ``compute(finite eigenvalues) -> float``; ``None``: computed by the probe.
    summary : bool
        Whether ``specdiag summary`` shows it as a column.
    digits : int
        Significant digits in the summary table.
    requires : str or None
        The probe option that computes it (``"shares"``); ``None``: always stored.
    """

    name: str
    kind: str
    label: str
    heading: str
    description: str
    compute: Optional[Compute] = None
    summary: bool = True
    digits: int = 4
    requires: Optional[str] = None


def _helmholtz(name: str, label: str, description: str, summary: bool) -> tuple[Scalar, Scalar]:
    """A Helmholtz estimate and its standard error."""
    return (
        Scalar(name, "helmholtz", label, label, description, summary=summary),
        Scalar(
            f"{name}_se",
            "helmholtz",
            f"{label} (s.e.)",
            f"{label} s.e.",
            f"standard error of {name}",
            summary=False,
        ),
    )


#: Every scalar, grouped by kind, in trace order.
SCALARS: tuple[Scalar, ...] = (
    Scalar(
        "min_real",
        "jacobian",
        "min Re λ",
        "min Re λ",
        "smallest real part of the computed eigenvalues; < 0: a direction gradient flow "
        "does not contract (descent convention)",
        _nan_if_empty(lambda v: v.real.min()),
    ),
    Scalar(
        "max_imag",
        "jacobian",
        "max |Im λ|",
        "max |Im λ|",
        "largest |imaginary part| of the computed eigenvalues: the fastest rotation",
        _nan_if_empty(lambda v: np.abs(v.imag).max()),
    ),
    Scalar(
        "max_imag_over_real",
        "jacobian",
        "max |Im λ / Re λ|",
        "max |Im/Re|",
        "largest |Im λ / Re λ| over the computed non-zero eigenvalues (inf: rotation "
        "without contraction)",
        _max_imag_over_real,
    ),
    Scalar(
        "spectral_radius",
        "jacobian",
        "|λ|max",
        "|λ|max",
        "largest |λ| of the computed eigenvalues",
        _nan_if_empty(lambda v: np.abs(v).max()),
    ),
    Scalar(
        "max",
        "hessian",
        "λ max",
        "{op} λmax",
        "largest computed eigenvalue of the player's Hessian",
        _nan_if_empty(lambda v: v.real.max()),
    ),
    Scalar(
        "min",
        "hessian",
        "λ min",
        "{op} λmin",
        "smallest computed eigenvalue of the player's Hessian",
        _nan_if_empty(lambda v: v.real.min()),
    ),
    *(
        Scalar(
            "subspace_overlap",
            kind,
            "subspace overlap",
            "{op} overlap",
            "mean squared cosine of the principal angles between this probe's and the previous "
            "probe's top eigenvectors (1: the leading directions did not turn)",
            requires="shares",
            summary=False,
        )
        for kind in ("jacobian", "hessian")
    ),
    Scalar(
        "spectral_radius",
        "update",
        "ρ(∂T)",
        "ρ(∂T)",
        "largest |μ| of the computed eigenvalues of the update operator",
        digits=7,
    ),
    Scalar(
        "max_stable_lr",
        "update",
        "largest stable η",
        "largest stable lr",
        "largest step size at which every computed eigenvalue is stable (0: none)",
        digits=7,
    ),
    Scalar("lr", "update", "η used", "lr", "the step size the run uses", summary=False),
    *_helmholtz("symmetric_sq", "‖S‖²", "squared Frobenius norm of S = (J + Jᵀ)/2", False),
    *_helmholtz("antisymmetric_sq", "‖A‖²", "squared Frobenius norm of A = (J − Jᵀ)/2", False),
    *_helmholtz("rotation_fraction", "rotation", "‖A‖² / (‖S‖² + ‖A‖²)", True),
    Scalar(
        "lambda_min",
        "density",
        "λ min (SLQ)",
        "{op} λmin",
        "smallest quadrature node: an estimate of the smallest eigenvalue",
    ),
    Scalar(
        "lambda_max",
        "density",
        "λ max (SLQ)",
        "{op} λmax",
        "largest quadrature node: an estimate of the largest eigenvalue",
    ),
    Scalar(
        "trace",
        "density",
        "trace (SLQ)",
        "{op} trace",
        "n Σ w θ: the quadrature's estimate of the trace",
        summary=False,
    ),
    Scalar(
        "negative_mass",
        "density",
        "mass below 0",
        "{op} mass<0",
        "fraction of the spectrum below zero: how much of the player's loss curves down",
    ),
    *_helmholtz(
        "zero_sum_defect",
        "zero-sum defect",
        "‖J₁₂ + J₂₁ᵀ‖ / (‖J₁₂‖ + ‖J₂₁‖), two players only",
        True,
    ),
)


def scalar_names(kind: str, enabled: Iterable[str] = ()) -> tuple[str, ...]:
    """The names of the scalars of an operator kind, in trace order (empty if none).

    Those always stored, and those of the analyses ``enabled`` (``"shares"``).
    """
    on = set(enabled)
    return tuple(
        s.name for s in SCALARS if s.kind == kind and (s.requires is None or s.requires in on)
    )


def scalar(kind: str, name: str) -> Optional[Scalar]:
    """The registry entry of scalar ``name`` of ``kind``, or ``None`` if there is none."""
    return next((s for s in SCALARS if s.kind == kind and s.name == name), None)
