r"""The words on the figures: the convention note and the labels of the scalars.

Labels come from the scalar registry (:data:`specdiag.registry.SCALARS`), so a scalar
is named the same in every figure, in ``specdiag summary`` and in the docs. The two
scalars of a player's Hessian, ``max`` and ``min``, summarise the :math:`k` computed
eigenvalues only, and which end of the spectrum those are depends on the solve's
``which``:

=========  ==========================================  ==========================================
which      ``max``                                     ``min``
=========  ==========================================  ==========================================
``LA``     :math:`\lambda_{\max}` of the spectrum      the :math:`k`-th largest eigenvalue
``SA``     the :math:`k`-th smallest eigenvalue        :math:`\lambda_{\min}` of the spectrum
``BE``     :math:`\lambda_{\max}`                      :math:`\lambda_{\min}`
``LM``     the largest of the :math:`k` of largest     the smallest of them (:math:`\lambda_{\min}`
           magnitude (:math:`\lambda_{\max}` if > 0)   if < 0)
=========  ==========================================  ==========================================
"""

from __future__ import annotations

from ..registry import scalar
from ..trace import Trace
from .data import computed_count, kind, ordinal, spec

__all__ = ["CONVENTION_NOTE", "HESSIAN_NOTE", "scalar_label"]

#: The sign convention, as every figure of the complex plane states it.
CONVENTION_NOTE = "descent convention: gradient flow stable where Re λ > 0"
#: What the real eigenvalues of a player's Hessian say.
HESSIAN_NOTE = "Hessian: real eigenvalues; λ < 0: the player's loss curves downwards"


def _hessian_label(name: str, which: str, k: int) -> str:
    """The label of a Hessian's ``max`` or ``min`` for ``which`` and ``k`` eigenvalues."""
    kth = ordinal(k) if k > 1 else "k-th"
    labels = {
        ("LA", "max"): "λ max",
        ("LA", "min"): f"{kth} largest λ (not λ min)",
        ("SA", "min"): "λ min",
        ("SA", "max"): f"{kth} smallest λ (not λ max)",
        ("BE", "max"): "λ max",
        ("BE", "min"): "λ min",
        ("LM", "max"): f"max of the top-{k} |λ| (λ max if > 0)",
        ("LM", "min"): f"min of the top-{k} |λ| (λ min if < 0)",
    }
    return labels.get((which.upper(), name), "")


def scalar_label(tr: Trace, operator: str, name: str) -> str:
    """The figure label of scalar ``name`` of ``operator`` in trace ``tr``.

    The registry's label; for a Hessian's ``max`` and ``min`` one that says which end
    of the spectrum the computed eigenvalues are (see the module). A scalar the
    registry does not know is labelled by its name.
    """
    op_kind = kind(tr, operator)
    if op_kind == "hessian" and name in ("max", "min"):
        which = str(spec(tr, operator).get("which", ""))
        label = _hessian_label(name, which, computed_count(tr, operator))
        if label:
            return label
    entry = scalar(op_kind, name)
    return entry.label if entry is not None else name
