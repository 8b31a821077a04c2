"""The basis size a probe chooses when ncv is not given: roomy when memory allows."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import specdiag as sd
from specdiag import toys
from specdiag.linalg.options import BasisOptions, default_ncv
from specdiag.probing import memory
from specdiag.probing.options import ProbeOptions
from specdiag.probing.plan import plan_operators


def ncvs(game: sd.Game, **settings) -> dict[str, int]:
    given: dict[str, Any] = dict(operators=None, which=None, tol=1e-3, ncv=None, maxiter=None)
    given.update(max_matvecs=None, backend="krylov-schur", basis=BasisOptions())
    plans = plan_operators(game, ProbeOptions.build(**{**given, **settings}))
    return {p.name: p.solver.ncv for p in plans if p.solver is not None and p.solver.ncv}


def test_a_roomy_basis_when_it_fits_the_default_when_memory_is_short(monkeypatch):
    game = toys.mog_gan(hidden=32, depth=2).game  # every operator larger than 31
    assert set(ncvs(game, k=8).values()) == {memory.roomy_ncv(8)} == {30}
    assert set(ncvs(game, k=12).values()) == {36}
    basis = memory.basis_bytes(31, game.n, game.dtype)
    monkeypatch.setattr(memory, "available_memory", lambda device: int(basis / 0.05) - 1)
    chosen = ncvs(game, k=8)
    assert chosen["jacobian"] == default_ncv(8) == 20  # J's roomy basis just misses 5%
    assert chosen["generator"] == 30  # a smaller Hessian still fits


def test_a_given_ncv_is_kept_and_small_operators_keep_the_default():
    game = toys.mog_gan(hidden=32, depth=2).game
    assert set(ncvs(game, k=4, ncv=12).values()) == {12}
    dirac = toys.dirac_gan().game  # n = 2: solved densely
    assert set(ncvs(dirac, k=2).values()) == {default_ncv(2)}


def test_the_memory_check_counts_the_roomy_basis(monkeypatch):
    gan = toys.mog_gan(hidden=32, depth=2)
    seen = []
    real = memory.probe_memory

    def spy(*args, **kwargs):
        seen.append(kwargs["ncv"])
        return real(*args, **kwargs)

    monkeypatch.setattr("specdiag.probing.core.probe_memory", spy)
    batch = gan.sample(64, torch.Generator().manual_seed(0))
    record = sd.probe(gan.game, batch, k=8, check_derivatives=False)
    assert record.status == "ok" and seen == [30]


@pytest.mark.parametrize("k", [2, 8])
def test_the_roomy_basis_finds_the_same_eigenvalues(k):
    gan = toys.mog_gan(hidden=32, depth=2, seed=1, dtype=torch.float64)
    batch = gan.sample(128, torch.Generator().manual_seed(0))
    roomy = sd.probe(gan.game, batch, k=k, tol=1e-8, check_derivatives=False)
    plain = sd.probe(gan.game, batch, k=k, tol=1e-8, ncv=default_ncv(k), check_derivatives=False)
    for op in roomy:
        assert roomy[op].converged.all() and plain[op].converged.all()
        assert (
            abs(roomy[op].eigenvalues - plain[op].eigenvalues).max()
            <= 1e-6 * abs(plain[op].eigenvalues).max()
        )
