r"""The symmetric part :math:`S = (A + A^\top)/2` of a square operator, matrix-free.

For a game Jacobian :math:`J`, :math:`S` is the potential part of the Helmholtz split
(:mod:`specdiag.dynamics.helmholtz`): it holds the players' own Hessians on its diagonal
blocks and the symmetrised coupling off it. Its quadratic form is :math:`J`'s,
:math:`u^\top S u = u^\top J u`, so :math:`\operatorname{tr} S = \operatorname{tr} J`,
and gradient flow contracts along :math:`u` iff :math:`u^\top S u > 0`. Being symmetric,
it can be handed to :func:`~specdiag.eigsh`, :func:`~specdiag.linalg.density.spectral_density`
and :func:`~specdiag.linalg.hutchpp.trace_estimate`.
"""

from __future__ import annotations

from typing import Any

import torch

from .operator import LinearOperator, as_operator

__all__ = ["SymmetricPart"]


class SymmetricPart(LinearOperator):
    r""":math:`S = (A + A^\top)/2` of a square operator :math:`A`.

    One product :math:`S u = (A u + A^\top u)/2` costs one ``A.matvec`` and one
    ``A.rmatvec``, counted on :math:`A` (and once on this operator). If :math:`A` declares
    itself symmetric (``A.symmetric``), :math:`S = A` and a product is one ``A.matvec``.

    Parameters
    ----------
    op : operator or torch.Tensor
        Square, with ``shape``, ``dtype``, ``device``, ``matvec(v)`` and ``rmatvec(v)``
        (the transposed product), such as :class:`~specdiag.GameJacobian`; or a square
        tensor.

    Raises
    ------
    TypeError
        ``op`` has no ``rmatvec`` and does not declare itself symmetric.
    """

    symmetric = True

    def __init__(self, op: Any) -> None:
        op = as_operator(op, "SymmetricPart")
        self._base_symmetric = bool(getattr(op, "symmetric", False))
        if not self._base_symmetric and not callable(getattr(op, "rmatvec", None)):
            raise TypeError(
                f"SymmetricPart: the operator ({type(op).__name__}) has no rmatvec(v), the "
                "product with its transpose; give it one (or subclass "
                "specdiag.linalg.operator.LinearOperator and implement _rmatvec)"
            )
        super().__init__(op.shape[0], op.dtype, op.device)
        self.base = op

    def _matvec(self, u: torch.Tensor) -> torch.Tensor:
        if self._base_symmetric:
            return self.base.matvec(u)
        return (self.base.matvec(u) + self.base.rmatvec(u)) * 0.5

    def __repr__(self) -> str:
        return f"SymmetricPart({self.base!r})"
