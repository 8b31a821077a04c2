r"""The settings of an eigenvalue solve, declared and checked in one place.

:class:`SolverOptions` holds what scipy.sparse.linalg calls ``k``, ``which``, ``tol``,
``ncv`` and ``maxiter``, plus a product budget, the backend and where the Krylov basis
lives (:class:`BasisOptions`). It is built by :func:`~specdiag.eigs`,
:func:`~specdiag.eigsh` and :func:`~specdiag.probe` from their keywords, validated once
when built, and passed down unchanged; what depends on the operator (``k <= n``, the
smallest ``ncv``, the ``which`` vocabulary of a symmetric or a non-symmetric problem,
``tol = 0``) is checked by :meth:`SolverOptions.resolve` into :class:`SolveSettings`.

Defaults, written once:

* ``tol = 1e-3`` relative to :math:`|\lambda|`: the top eigenvalues of a GAN's
  operators move 1--3% from one probe batch to another (batch 256), so a tighter
  tolerance buys digits that the next batch does not share;
* ``ncv = max(2k + 1, 20)`` (:func:`default_ncv`), ARPACK's usual choice;
* ``maxiter = 300`` restarts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from ..validation import integer, non_negative, optional_integer
from .which import check_which

__all__ = [
    "SolverOptions",
    "BasisOptions",
    "SolveSettings",
    "DEFAULT_TOL",
    "DEFAULT_MAXITER",
    "BACKENDS",
    "default_ncv",
]

#: Default relative tolerance of every solve.
DEFAULT_TOL = 1e-3
#: Default largest number of restarts.
DEFAULT_MAXITER = 300
#: The solver backends: specdiag's own Krylov–Schur, or scipy's ARPACK as a reference.
BACKENDS = ("krylov-schur", "arpack")


def default_ncv(k: int) -> int:
    """The default Krylov basis size for ``k`` eigenvalues, ``max(2k + 1, 20)``."""
    return max(2 * k + 1, 20)


@dataclass(frozen=True)
class BasisOptions:
    """Where and how the Krylov basis is kept (see :mod:`specdiag.linalg.basis`).

    Attributes
    ----------
    device : torch.device, str or None
        Keep the basis there instead of on the operator's device (``"cpu"``: host memory).
    dtype : torch.dtype or None
        Store it in this lower precision (``torch.float16`` or ``torch.bfloat16``).
    group : ProcessGroup, True or None
        Shard it over the ranks of this ``torch.distributed`` group (``True``: the
        default group).
    """

    device: Optional[Union[torch.device, str]] = None
    dtype: Optional[torch.dtype] = None
    group: Any = None

    def __post_init__(self) -> None:
        if self.dtype is not None and not isinstance(self.dtype, torch.dtype):
            raise TypeError(f"basis_dtype must be a torch.dtype, got {self.dtype!r}")
        if self.device is not None:
            torch.device(self.device)  # raises for a malformed device string

    @property
    def custom(self) -> bool:
        """Whether any setting departs from one tensor on the operator's device."""
        return self.device is not None or self.dtype is not None or self.group not in (None, False)

    def config(self) -> dict[str, Any]:
        """The settings as JSON data (the group as whether the basis is sharded)."""
        return {
            "device": None if self.device is None else str(self.device),
            "dtype": None if self.dtype is None else str(self.dtype),
            "sharded": self.group not in (None, False),
        }


@dataclass(frozen=True)
class SolveSettings:
    """The settings of one solve on one operator, resolved from :class:`SolverOptions`.

    Attributes
    ----------
    k : int
        Eigenvalues wanted, ``1 <= k <= n``.
    which : str
        Upper-cased and valid for the problem (symmetric or not).
    tol : float
        Relative tolerance, ``> 0`` (``0`` was replaced by the dtype's machine epsilon).
    ncv : int
        Krylov basis size, ``min(ncv, n)``.
    maxiter : int
        Largest number of restarts.
    budget : int
        Product budget (a very large number when there is none).
    max_matvecs : int or None
        The budget as given.
    """

    k: int
    which: str
    tol: float
    ncv: int
    maxiter: int
    budget: int
    max_matvecs: Optional[int]


@dataclass(frozen=True)
class SolverOptions:
    """The settings of :func:`~specdiag.eigs` and :func:`~specdiag.eigsh`.

    Attributes
    ----------
    k : int
        Number of eigenvalues, ``>= 1``.
    which : str or None
        As in scipy.sparse.linalg (see :mod:`specdiag.linalg.which`); ``None`` means
        ``"LM"`` for a non-symmetric and ``"LA"`` for a symmetric problem.
    tol : float
        Relative tolerance ``>= 0`` (``0``: machine precision of the operator's dtype).
    ncv : int or None
        Largest Krylov basis, ``>= k + 2`` (``k + 1`` for a symmetric problem); default
        :func:`default_ncv`.
    maxiter : int or None
        Largest number of restarts, ``>= 1``; default :data:`DEFAULT_MAXITER`.
    max_matvecs : int or None
        Product budget, ``>= 1``.
    backend : {"krylov-schur", "arpack"}
    basis : BasisOptions
        Where the Krylov basis is kept (``backend="krylov-schur"`` only).

    Raises
    ------
    TypeError, ValueError
        A setting of the wrong type or out of range; the message names it.
    """

    k: int = 6
    which: Optional[str] = None
    tol: float = DEFAULT_TOL
    ncv: Optional[int] = None
    maxiter: Optional[int] = None
    max_matvecs: Optional[int] = None
    backend: str = "krylov-schur"
    basis: BasisOptions = BasisOptions()

    def __post_init__(self) -> None:
        integer(self.k, "k", 1)
        non_negative(self.tol, "tol")
        optional_integer(self.ncv, "ncv", 1)
        optional_integer(self.maxiter, "maxiter", 1)
        optional_integer(self.max_matvecs, "max_matvecs", 1)
        if self.which is not None and not isinstance(self.which, str):
            raise TypeError(f"which must be a string such as 'LM', got {self.which!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not isinstance(self.basis, BasisOptions):
            raise TypeError(f"basis must be a BasisOptions, got {type(self.basis).__name__}")
        if self.basis.custom and self.backend == "arpack":
            raise ValueError(
                "basis_device, basis_dtype and basis_group need backend='krylov-schur'"
            )

    def replace(self, **changes: Any) -> SolverOptions:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def resolve(self, n: int, dtype: torch.dtype, *, symmetric: bool) -> SolveSettings:
        """The settings for an ``n x n`` operator of ``dtype``, checked against it.

        Raises
        ------
        ValueError
            ``k > n``, ``ncv`` below ``k + 2`` (``k + 1`` if symmetric), or ``which``
            not in the problem's vocabulary.
        """
        name = "eigsh" if symmetric else "eigs"
        if self.k > n:
            raise ValueError(f"{name}: k must be an integer with 1 <= k <= n = {n}, got {self.k}")
        which = check_which(self.which or ("LA" if symmetric else "LM"), symmetric)
        min_ncv = self.k + (1 if symmetric else 2)
        if self.ncv is not None and self.ncv < min_ncv:
            raise ValueError(
                f"{name}: ncv must be an integer >= {min_ncv} (k + {min_ncv - self.k}) for "
                f"k = {self.k}, got {self.ncv!r}"
            )
        ncv = default_ncv(self.k) if self.ncv is None else self.ncv
        return SolveSettings(
            k=self.k,
            which=which,
            tol=float(self.tol) if self.tol > 0 else torch.finfo(dtype).eps,
            ncv=int(min(ncv, n)),
            maxiter=DEFAULT_MAXITER if self.maxiter is None else self.maxiter,
            budget=(1 << 62) if self.max_matvecs is None else self.max_matvecs,
            max_matvecs=self.max_matvecs,
        )

    def config(self) -> dict[str, Any]:
        """The settings as JSON data (stored in a trace's configuration)."""
        return {
            "k": self.k,
            "which": self.which,
            "tol": self.tol,
            "ncv": self.ncv,
            "maxiter": self.maxiter,
            "max_matvecs": self.max_matvecs,
            "backend": self.backend,
            "basis": self.basis.config(),
        }
