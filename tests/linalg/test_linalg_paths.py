"""Which path a solve takes, and the note on eigenvalues inside the spectrum."""

from __future__ import annotations

import numpy as np
import torch

import specdiag as sd
from specdiag.linalg import paths
from specdiag.linalg.options import SolverOptions

from .linalg_cases import Reflected, block_diagonal, general_spectrum, reflector


def test_choose_path():
    for n, which, symmetric, expected in [
        (15, "LM", False, "dense"),
        (500, "SR", False, "dense"),
        (500, "LM", False, "krylov-then-dense"),
        (500, "SM", True, "dense"),
        (500, "SA", True, "krylov-then-dense"),
        (paths.DENSE_MAX_N + 1, "SR", False, "krylov"),
    ]:
        s = SolverOptions(k=4, which=which).resolve(n, torch.float64, symmetric=symmetric)
        assert paths.choose_path(n, s, symmetric) == expected, (n, which)


def rotation_dominated(n: int, seed: int = 0) -> torch.Tensor:
    """S + R, R skew-symmetric and large: eigenvalues in a thin vertical ellipse, whose
    left edge (which SR wants) is flat."""
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(n, n, dtype=torch.float64, generator=gen) / n**0.5
    H = torch.randn(n, n, dtype=torch.float64, generator=gen) / n**0.5
    return 0.005 * (G + G.T) + (H - H.T)


def test_interior_targets_on_a_rotation_dominated_matrix_are_noted():
    n = paths.DENSE_MAX_N + 276  # 1300: the Krylov path
    A = rotation_dominated(n)
    r = sd.eigs(A, k=4, which="SR", tol=1e-3)
    assert r.all_converged  # every returned value is an eigenvalue to the tolerance ...
    assert any("may exist unfound" in note for note in r.notes), r.notes
    true = np.linalg.eigvals(A.numpy())
    # ... but the note is there for a reason: they are not the leftmost ones
    assert r.eigenvalues.numpy().real.min() > true.real.min() + 1e-4


def test_exposed_targets_are_not_noted():
    spectrum = general_spectrum(paths.DENSE_MAX_N + 176)
    op = Reflected(block_diagonal(*spectrum), reflector(paths.DENSE_MAX_N + 176, 1), torch.float64)
    for which in ("SR", "LI", "LM"):
        r = sd.eigs(op, k=4, which=which, tol=1e-8)
        assert not any("may exist unfound" in note for note in r.notes), which


def test_small_operators_are_never_noted():
    A = rotation_dominated(300)
    r = sd.eigs(A, k=4, which="SR")
    assert any("exactly" in note for note in r.notes)
    assert not any("may exist unfound" in note for note in r.notes)
    np.testing.assert_allclose(
        r.eigenvalues.numpy().real.min(), np.linalg.eigvals(A.numpy()).real.min(), atol=1e-10
    )
