"""Which eigenvalues are wanted: the ``which`` vocabulary of scipy.sparse.linalg."""

from __future__ import annotations

import numpy as np

__all__ = ["GENERAL_WHICH", "SYMMETRIC_WHICH", "check_which", "wanted_order"]

#: ``which`` for non-symmetric problems (:func:`~specdiag.eigs`).
GENERAL_WHICH = {
    "LM": "largest magnitude |λ|",
    "SM": "smallest magnitude |λ|",
    "LR": "largest real part",
    "SR": "smallest real part",
    "LI": "largest |imaginary part| (the fastest rotation)",
    "SI": "smallest |imaginary part|",
}
#: ``which`` for symmetric problems (:func:`~specdiag.eigsh`).
SYMMETRIC_WHICH = {
    "LA": "largest (algebraic)",
    "SA": "smallest (algebraic)",
    "LM": "largest magnitude",
    "SM": "smallest magnitude",
    "BE": "both ends: half from the top, half from the bottom (one more from the top if k is odd)",
}


def check_which(which: str, symmetric: bool) -> str:
    """Validate ``which`` and return it upper-cased."""
    table = SYMMETRIC_WHICH if symmetric else GENERAL_WHICH
    name = "eigsh" if symmetric else "eigs"
    if not isinstance(which, str) or which.upper() not in table:
        options = ", ".join(f"{k!r} ({v})" for k, v in table.items())
        raise ValueError(f"{name}: which={which!r} is not supported; choose one of {options}")
    return which.upper()


def wanted_order(values: np.ndarray, which: str) -> np.ndarray:
    """Indices of ``values`` from most to least wanted.

    Every key is invariant under complex conjugation, so the two members of a
    conjugate pair tie. Other ties (all real eigenvalues under ``"SI"``) go to the
    larger magnitude, which a Krylov space resolves first; remaining ties by position
    (stable sort), which keeps a pair adjacent when it is listed adjacent. For ``"BE"``
    the order alternates largest, smallest, second largest, ... so that the first ``k``
    hold ``ceil(k/2)`` from the top and ``floor(k/2)`` from the bottom.
    """
    v = np.asarray(values)
    if which == "BE":
        up = np.argsort(-v.real, kind="stable")
        out = np.empty_like(up)
        n_top = (len(v) + 1) // 2
        out[0::2] = up[:n_top]
        out[1::2] = up[::-1][: len(v) - n_top]
        return out
    keys = {
        "LM": -np.abs(v),
        "SM": np.abs(v),
        "LR": -v.real,
        "LA": -v.real,
        "SR": v.real,
        "SA": v.real,
        "LI": -np.abs(v.imag),
        "SI": np.abs(v.imag),
    }[which]
    return np.lexsort((-np.abs(v), keys))
