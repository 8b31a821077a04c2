"""Operators with known spectra for the solver tests, in every form the solvers accept.

``known_operator`` builds :math:`A = Q D Q` with :math:`D` block diagonal (1x1 blocks for
real eigenvalues, 2x2 blocks ``[[a, b], [-b, a]]`` for pairs :math:`a \\pm ib`) and
:math:`Q = I - 2uu^\\top` a Householder reflector, so :math:`A` is normal with exactly the
eigenvalues chosen, and it is not diagonal in any basis the solvers could exploit. The
same matrix comes as a ``MatrixOperator``, a bare tensor, a duck-typed object with
``matvec`` only (applied in O(n)) or the transpose of a ``LinearOperator`` (whose
``rmatvec`` is the product), so every kind is checked against the same truth.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

import specdiag as sd

KINDS = ("matrix", "tensor", "duck", "transposed")

#: Non-symmetric spectrum: a bulk of pairs (Re in [1, 3], |Im| in [0.3, 1]) and, for
#: every ``which`` with k = 4, four outliers at the edge of the spectrum that ``which``
#: targets (so Krylov methods find them: no interior targets).
OUTLIER_REAL = [9.0, 7.5, -2.5, -2.0, 0.05, 0.12]
OUTLIER_PAIRS = [(8.0, 3.0), (2.0, 6.0), (2.2, 5.0), (-1.5, 1.0), (0.1, 0.1)]
#: Symmetric spectra: indefinite, and positive (for "SM": smallest at the edge).
SYMMETRIC_OUTLIERS = [9.0, 8.0, 7.0, -6.0, -5.0, -4.5]
POSITIVE_OUTLIERS = [9.0, 8.0, 7.0, 0.01, 0.02, 0.03]


def general_spectrum(n: int, seed: int = 0) -> tuple[list[float], list[tuple[float, float]]]:
    """Real eigenvalues and pairs (a, b) of the non-symmetric test spectrum, order n."""
    rng = np.random.default_rng(seed)
    pairs = list(OUTLIER_PAIRS)
    bulk = (n - len(OUTLIER_REAL) - 2 * len(pairs)) // 2
    pairs += [(a, b) for a, b in zip(rng.uniform(1, 3, bulk), rng.uniform(0.3, 1.0, bulk))]
    real = list(OUTLIER_REAL) + list(rng.uniform(1.2, 2.8, n - len(OUTLIER_REAL) - 2 * len(pairs)))
    return real, pairs


def eigenvalues_of(real: list[float], pairs: list[tuple[float, float]]) -> np.ndarray:
    out = [complex(r) for r in real]
    for a, b in pairs:
        out += [complex(a, b), complex(a, -b)]
    return np.array(out)


def block_diagonal(real: list[float], pairs: list[tuple[float, float]]) -> torch.Tensor:
    n = len(real) + 2 * len(pairs)
    D = torch.zeros(n, n, dtype=torch.float64)
    i = 0
    for r in real:
        D[i, i] = r
        i += 1
    for a, b in pairs:
        D[i : i + 2, i : i + 2] = torch.tensor([[a, b], [-b, a]], dtype=torch.float64)
        i += 2
    return D


def symmetric_spectrum(n: int, positive: bool, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = POSITIVE_OUTLIERS if positive else SYMMETRIC_OUTLIERS
    return np.concatenate([out, rng.uniform(1.0, 2.0, n - len(out))])


class Reflected(sd.LinearOperator):
    """:math:`Q D Q` applied in O(nnz(D)); ``rmatvec`` applies the transpose."""

    def __init__(self, D: torch.Tensor, u: torch.Tensor, dtype: torch.dtype) -> None:
        super().__init__(D.shape[0], dtype, "cpu")
        self.D = D.to_sparse().to(dtype)
        self.u = u.to(dtype)

    def _q(self, x: torch.Tensor) -> torch.Tensor:
        return x - 2.0 * self.u * torch.dot(self.u, x)

    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        return self._q(torch.mv(self.D, self._q(x)))

    def _rmatvec(self, x: torch.Tensor) -> torch.Tensor:
        return self._q(torch.mv(self.D.t(), self._q(x)))


class Duck:
    """Only ``shape``, ``dtype``, ``device`` and ``matvec``; counts its products."""

    def __init__(self, op: Reflected) -> None:
        self.op = op
        self.shape, self.dtype, self.device = op.shape, op.dtype, op.device
        self.calls = 0

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.op._matvec(x)


def dense(D: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    Q = torch.eye(D.shape[0], dtype=torch.float64) - 2.0 * torch.outer(u, u)
    return Q @ D @ Q


def reflector(n: int, seed: int) -> torch.Tensor:
    u = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return u / torch.linalg.vector_norm(u)


def as_kind(kind: str, D: torch.Tensor, u: torch.Tensor, dtype: torch.dtype) -> Any:
    """The operator :math:`Q D Q` as ``kind`` (one of ``KINDS``)."""
    if kind == "matrix":
        return sd.MatrixOperator(dense(D, u).to(dtype))
    if kind == "tensor":
        return dense(D, u).to(dtype)
    if kind == "duck":
        return Duck(Reflected(D, u, dtype))
    return Reflected(D.t().contiguous(), u, dtype).T  # (Q D^T Q)^T = Q D Q


def products(op: Any) -> int:
    """Products the operator counted (any kind but a bare tensor)."""
    if isinstance(op, Duck):
        return op.calls
    return int(op.n_matvec)


def sorted_by(values: np.ndarray, which: str) -> np.ndarray:
    from specdiag.linalg.which import wanted_order

    return values[wanted_order(values, which)]


#: The quantity each ``which`` orders eigenvalues by ("BE" alternates top and bottom,
#: so its values are compared one by one).
WHICH_KEYS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "LM": np.abs,
    "SM": np.abs,
    "LR": np.real,
    "SR": np.real,
    "LI": lambda v: np.abs(np.imag(v)),
    "SI": lambda v: np.abs(np.imag(v)),
    "LA": np.real,
    "SA": np.real,
    "BE": np.real,
}


def assert_top_eigenvalues(result: Any, truth: np.ndarray, which: str, atol: float) -> None:
    """Every returned eigenvalue is one of ``truth``, and the set is the top by ``which``."""
    got = result.eigenvalues.numpy()
    for g in got:
        off = np.min(np.abs(truth - g))
        assert off <= atol, f"{g} is not an eigenvalue (nearest off by {off:.2e})"
    expected = sorted_by(truth.astype(complex), which)[: len(got)]
    key = WHICH_KEYS[which]
    np.testing.assert_allclose(key(got), key(expected), atol=atol, rtol=0)
