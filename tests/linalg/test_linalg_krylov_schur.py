"""The Krylov–Schur iteration itself: locking, breakdown, restarts, and the
orthogonality of its basis on hard cases (clustered spectra, near-breakdown, float32).

Moved here from tests/test_eigs.py and tests/test_eigsh.py (solver-only tests).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import specdiag as sd
from specdiag.linalg import paths
from specdiag.linalg.krylov_schur import KrylovSchur


def test_locking_with_complex_pairs():
    """Separated pairs converge and lock (whole 2x2 blocks) while a slow one does not."""
    gen = torch.Generator().manual_seed(4)
    m = 1500
    a = torch.rand(m, dtype=torch.float64, generator=gen)
    b = torch.rand(m, dtype=torch.float64, generator=gen) * 0.3
    a[:3], b[:3] = (
        torch.tensor([8.0, 5.0, 1.2], dtype=torch.float64),
        torch.tensor([4.0, 3.0, 0.1], dtype=torch.float64),
    )

    def matvec(v):
        x, y = v[0::2], v[1::2]
        out = torch.empty_like(v)
        out[0::2], out[1::2] = a * x + b * y, -b * x + a * y
        return out

    solver = KrylovSchur(
        matvec,
        2 * m,
        torch.float64,
        torch.device("cpu"),
        k=6,
        which="LM",
        tol=1e-9,
        ncv=16,
        maxiter=500,
        max_matvecs=10**6,
        v0=torch.randn(2 * m, dtype=torch.float64, generator=gen),
        generator=gen,
        symmetric=False,
    )
    ritz, stop = solver.run()
    assert stop == "converged"
    assert solver.l >= 2 and solver.l % 2 == 0, "pairs are locked whole"
    got = sorted(
        (
            complex(ritz.lam[s])
            for b_ in ritz.wanted
            for s in range(ritz.blocks[b_][0], sum(ritz.blocks[b_]))
        ),
        key=lambda z: (-abs(z), -z.imag),
    )
    expected = sorted(
        [complex(x, sgn * y) for x, y in [(8, 4), (5, 3), (1.2, 0.1)] for sgn in (1, -1)],
        key=lambda z: (-abs(z), -z.imag),
    )
    np.testing.assert_allclose(got, expected, atol=1e-8)


def test_locking_keeps_converged_vectors_and_the_answer():
    """Well-separated top eigenvalues converge (and lock) long before a slow one."""
    gen = torch.Generator().manual_seed(2)
    n = 3000
    d = torch.rand(n, dtype=torch.float64, generator=gen)
    d[:4] = torch.tensor(
        [20.0, 15.0, 10.0, 1.0005], dtype=torch.float64
    )  # the 4th barely separated
    solver = KrylovSchur(
        lambda v: d * v,
        n,
        torch.float64,
        torch.device("cpu"),
        k=4,
        which="LA",
        tol=1e-9,
        ncv=12,
        maxiter=500,
        max_matvecs=10**6,
        v0=torch.randn(n, dtype=torch.float64, generator=gen),
        generator=gen,
        symmetric=True,
    )
    ritz, stop = solver.run()
    assert stop == "converged"
    assert solver.l >= 3, "the three separated eigenvalues should be locked"
    got = np.sort(ritz.lam[[s for b in ritz.wanted for s in [ritz.blocks[b][0]]]].real)[::-1]
    np.testing.assert_allclose(got, [20.0, 15.0, 10.0, 1.0005], atol=1e-8)
    # locked vectors stay orthonormal with the rest of the basis
    V = solver.V[: solver.j]
    torch.testing.assert_close(
        V @ V.T, torch.eye(solver.j, dtype=torch.float64), atol=1e-10, rtol=0
    )


def test_clustered_top_of_spectrum():
    """Many nearly equal top eigenvalues over a bulk, as in GAN generator Hessians."""
    gen = torch.Generator().manual_seed(0)
    n = 2000
    d = torch.rand(n, dtype=torch.float64, generator=gen) * 0.1
    d[:30] = 1.0 + 0.01 * torch.rand(30, dtype=torch.float64, generator=gen)
    Q, _ = torch.linalg.qr(torch.randn(n, 40, dtype=torch.float64, generator=gen))

    # A = diag(d) rotated in a 40-dimensional subspace: matrix-free, not sparse-diagonal
    def matvec(v):
        return d * v

    class Op:
        shape, dtype, device = (n, n), torch.float64, torch.device("cpu")

        def matvec(self, v):
            w = v - 2 * Q @ (Q.T @ v)
            w = d * w
            return w - 2 * Q @ (Q.T @ w)

    r = sd.eigsh(Op(), k=10, which="LA", tol=1e-8)
    assert r.all_converged
    np.testing.assert_allclose(r.eigenvalues.numpy(), np.sort(d.numpy())[::-1][:10], atol=1e-7)
    ref = sd.eigsh(Op(), k=10, which="LA", tol=1e-8, backend="arpack")
    np.testing.assert_allclose(ref.eigenvalues.numpy(), r.eigenvalues.numpy(), atol=1e-7)


def test_invariant_subspace_breakdown():
    """A rank-3 operator: the Krylov space is invariant after 4 vectors."""
    gen = torch.Generator().manual_seed(1)
    U, _ = torch.linalg.qr(torch.randn(500, 3, dtype=torch.float64, generator=gen))
    A = U @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ U.T
    r = sd.eigsh(A, k=3, which="LA", tol=1e-10)
    assert r.all_converged
    np.testing.assert_allclose(r.eigenvalues.numpy(), [3.0, 2.0, 1.0], atol=1e-10)


def test_maxiter_reports_non_convergence_without_raising():
    """(Moved from tests/test_eigs.py: on a GAN of 163 parameters ``which="SM"`` is now
    solved exactly, so the Krylov path is checked on a plain matrix.)"""
    gen = torch.Generator().manual_seed(0)
    n = paths.DENSE_MAX_N + 100
    A = torch.randn(n, n, dtype=torch.float64, generator=gen) / n**0.5
    with pytest.warns(sd.ConvergenceWarning, match="converged") as caught:
        r = sd.eigs(A, k=6, which="SM", tol=1e-10, maxiter=2)
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert not r.all_converged
    assert r.n_restarts == 2
    assert any("maxiter" in note for note in r.notes)


def run_solver(
    matvec, n, dtype, *, symmetric, which="LA", k=6, tol=1e-8, ncv=20, v0=None, maxiter=300, seed=0
):
    gen = torch.Generator().manual_seed(seed)
    solver = KrylovSchur(
        matvec,
        n,
        dtype,
        torch.device("cpu"),
        k=k,
        which=which,
        tol=tol,
        ncv=ncv,
        maxiter=maxiter,
        max_matvecs=10**6,
        v0=torch.randn(n, dtype=dtype, generator=gen) if v0 is None else v0,
        generator=gen,
        symmetric=symmetric,
    )
    worst = [0.0]
    original = solver.analyse

    def checked():
        V = solver.V[: solver.j + 1].double()
        gram = V @ V.T - torch.eye(solver.j + 1, dtype=torch.float64)
        worst[0] = max(worst[0], float(gram.abs().max()))
        return original()

    solver.analyse = checked  # type: ignore[method-assign]
    ritz, stop = solver.run()
    return solver, ritz, stop, worst[0]


def working_precision(eps: float, m: int) -> float:
    """The largest entry of ``VᵀV - I`` an orthonormal basis of ``m`` vectors may show.

    A small multiple of ``m u``: each restart's rotation ``V Q`` adds rounding of about
    ``u √m``, so the level grows a little with the number of restarts (seen: up to
    150 u in float64 on a clustered spectrum with m = 21, depending on the CPU's BLAS).
    A Gram–Schmidt that lost orthogonality is off by ``√u`` or worse.
    """
    return 30 * eps * m


def clustered(n, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    d = torch.rand(n, dtype=torch.float64, generator=gen) * 0.9
    d[:40] = 1.0 + 1e-3 * torch.rand(40, dtype=torch.float64, generator=gen)
    u = torch.randn(n, dtype=torch.float64, generator=gen)
    u /= torch.linalg.vector_norm(u)
    d, u = d.to(dtype), u.to(dtype)

    def matvec(v):
        w = v - 2 * u * torch.dot(u, v)
        w = d * w
        return w - 2 * u * torch.dot(u, w)

    return matvec, d


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("symmetric", [True, False])
def test_orthogonality_to_working_precision_on_a_clustered_spectrum(dtype, symmetric):
    """40 eigenvalues within 0.1% at the top: many restarts, every one checked."""
    n = 4000
    matvec, d = clustered(n, dtype)
    solver, ritz, stop, worst = run_solver(
        matvec,
        n,
        dtype,
        symmetric=symmetric,
        which="LM" if not symmetric else "LA",
        k=10,
        tol=1e-4 if dtype == torch.float32 else 1e-9,
        ncv=21,
    )
    eps = torch.finfo(dtype).eps
    assert solver.n_restarts >= 3
    assert worst <= working_precision(eps, solver.m), worst / eps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_orthogonality_near_breakdown(dtype):
    """A rank-8 operator plus a tiny perturbation: every expansion vector loses almost all
    of its norm to Gram–Schmidt (|w'|/|w| ~ 1e-5), where one CGS pass is not enough."""
    n = 3000
    gen = torch.Generator().manual_seed(5)
    U, _ = torch.linalg.qr(torch.randn(n, 8, dtype=torch.float64, generator=gen))
    vals = torch.linspace(1.0, 8.0, 8, dtype=torch.float64)
    small = 1e-5 * torch.rand(n, dtype=torch.float64, generator=gen)
    U, vals, small = U.to(dtype), vals.to(dtype), small.to(dtype)

    def matvec(v):
        return U @ (vals * (U.T @ v)) + small * v

    solver, ritz, stop, worst = run_solver(
        matvec,
        n,
        dtype,
        symmetric=False,
        which="LM",
        k=4,
        tol=1e-6 if dtype == torch.float64 else 1e-4,
    )
    eps = torch.finfo(dtype).eps
    assert stop == "converged"
    assert worst <= working_precision(eps, solver.m), worst / eps
    got = np.sort(np.abs(ritz.lam[[ritz.blocks[b][0] for b in ritz.wanted]]))[::-1]
    np.testing.assert_allclose(got, [8, 7, 6, 5], rtol=1e-4)


def test_exact_breakdown_continues_with_a_random_orthogonal_vector():
    n = 500
    gen = torch.Generator().manual_seed(1)
    U, _ = torch.linalg.qr(torch.randn(n, 3, dtype=torch.float64, generator=gen))
    A = U @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ U.T
    solver, ritz, stop, worst = run_solver(
        lambda v: A @ v, n, torch.float64, symmetric=True, k=3, tol=1e-10, ncv=12
    )
    assert stop == "converged" and worst < 1e-13
    assert (solver.B[1 : solver.j + 1].diagonal(offset=0)[:3] != 0).all()


def test_three_term_step_matches_full_gram_schmidt():
    """The symmetric iteration takes out beta v_{j-1} + alpha v_j before Gram–Schmidt;
    the Ritz values are those of the plain iteration (symmetric=False on the same
    symmetric matrix, which has no such step)."""
    n = 2000
    gen = torch.Generator().manual_seed(3)
    d = torch.rand(n, dtype=torch.float64, generator=gen)
    d[:6] = torch.tensor([5.0, 4.5, 4.0, 3.5, 3.0, 2.5], dtype=torch.float64)
    v0 = torch.randn(n, dtype=torch.float64, generator=gen)
    a = run_solver(lambda v: d * v, n, torch.float64, symmetric=True, which="LM", v0=v0)
    b = run_solver(lambda v: d * v, n, torch.float64, symmetric=False, which="LM", v0=v0)
    lam = [np.sort(r[1].lam[[r[1].blocks[i][0] for i in r[1].wanted]].real) for r in (a, b)]
    np.testing.assert_allclose(lam[0], lam[1], atol=1e-9)
    assert a[3] < 1e-13 and a[0].n_matvec == b[0].n_matvec


def test_gram_schmidt_reads_the_basis_once_per_pass(monkeypatch):
    """One fused product per pass (projection and norm together), and the symmetric
    step's three-term recurrence leaves one pass per step."""
    from specdiag.linalg import basis as basis_module

    calls = {"mv": 0}
    original = basis_module.KrylovBasis.project_norm

    def counting(self, x, count):
        calls["mv"] += 1
        return original(self, x, count)

    monkeypatch.setattr(basis_module.KrylovBasis, "project_norm", counting)
    n = 3000
    d = torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    solver, ritz, stop, worst = run_solver(
        lambda v: d * v, n, torch.float64, symmetric=True, k=6, tol=1e-6
    )
    assert calls["mv"] <= 1.15 * solver.n_matvec  # two passes only just after a restart


def test_a_zero_operator_gives_zero_converged():
    n = paths.DENSE_MAX_N + 10

    class Zero:
        shape, dtype, device = (n, n), torch.float64, torch.device("cpu")

        def matvec(self, v):
            return torch.zeros_like(v)

    for solve in (sd.eigs, sd.eigsh):
        r = solve(Zero(), k=3)
        assert r.all_converged and (r.eigenvalues == 0).all()
        assert any("zero" in note for note in r.notes)
