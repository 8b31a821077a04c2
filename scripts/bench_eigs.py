#!/usr/bin/env python
"""specdiag's eigensolvers against scipy ARPACK, side by side, on the same operators.

For every case both solvers get the same operator, k, ncv, tol, maxiter and start
vector. Printed per case: products used by each, wall time, time spent outside the
products per product (wall time beyond the products, each costed at its mean time
inside the specdiag solve, as a fraction of that cost), how much slower a product
runs inside the ARPACK solve (scipy's BLAS threads compete with torch's for the
cores), and the largest
difference between the two sets of eigenvalues relative to |λ_max|. Then the cost of
one Jᵀu, one J u and one H u divided by one evaluation of the vector field v.

Cases: (a) synthetic matrix-free operators with outliers over a bulk, n = 5,000 to
1,000,000 (non-symmetric: 2x2 rotation blocks with a non-normal coupling, under a
Householder similarity; symmetric: a diagonal under a Householder similarity, one
with a clustered top), (b) the game Jacobian and both player Hessians of a
mixture-of-Gaussians MLP GAN of about 200k parameters after a few hundred training
steps, (c) the same at about 2M parameters.

Usage::

    python scripts/bench_eigs.py                       # the full suite (~15 min, 2 cores)
    python scripts/bench_eigs.py --smoke               # tiny sizes: checks the script runs
    python scripts/bench_eigs.py --markdown docs/benchmarks.md   # also write the tables there
    python scripts/bench_eigs.py --section update-operators --smoke   # one section, tiny sizes

Sections (``--section``): ``solvers`` (all of the above); ``update-operators``:
the spectral radius ρ(∂T) of every optimiser update operator of
:mod:`specdiag.dynamics` on the 200k-parameter GAN, by specdiag's ``eigs`` and by
ARPACK on the same operator (which="LM"), with products and time of each;
``warm-start``: a training run of the 200k GAN (``gan.train(steps)`` between probes,
one fixed probe batch) where J (eigs LM, on Jᵀ) and both player Hessians (eigsh LA)
are solved cold and warm (``v0`` = the previous warm solve's ``basis``) at every
probe: total products, the largest eigenvalue difference, convergence, and how far the
wanted subspace turned between probes; ``overhead``: the time a solve spends outside
its products, on a 300k-parameter player Hessian and on the 2M GAN's J and Hessians:
wall time ÷ (products × one bare product), the bare product being
``torch.autograd.grad`` on the same cached graph without any checks; one Gram–Schmidt
step over a full basis against the bare product (the memory traffic a product pays);
and a profile of the same solve (cProfile: the shares in the products, Gram–Schmidt,
restarts and the rest). Both new sections
run "all" only when named (they are not in "all").
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import math
import platform
import pstats
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy
import torch

import specdiag as sd
from specdiag import toys
from specdiag.dynamics import update_operator
from specdiag.linalg.options import default_ncv

START, END = "<!-- bench_eigs:start -->", "<!-- bench_eigs:end -->"
UPDATE_START, UPDATE_END = (
    "<!-- bench_eigs:update-operators:start -->",
    "<!-- bench_eigs:update-operators:end -->",
)
WARM_START, WARM_END = "<!-- bench_eigs:warm-start:start -->", "<!-- bench_eigs:warm-start:end -->"
OVERHEAD_START, OVERHEAD_END = (
    "<!-- bench_eigs:overhead:start -->",
    "<!-- bench_eigs:overhead:end -->",
)
SECTIONS = ("all", "solvers", "update-operators", "warm-start", "overhead")


class Timed:
    """Wrap an operator and accumulate the wall time spent inside its products."""

    def __init__(self, op: Any) -> None:
        self.op = op
        self.shape, self.dtype, self.device = tuple(op.shape), op.dtype, op.device
        self.seconds = 0.0
        self.calls = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.op.matvec(v)
        if out.is_cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


class Householder:
    """Q = I - 2 u uᵀ, applied in O(n)."""

    def __init__(self, n: int, gen: torch.Generator, dtype: torch.dtype) -> None:
        u = torch.randn(n, generator=gen, dtype=dtype)
        self.u = u / torch.linalg.vector_norm(u)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x - 2.0 * self.u * torch.dot(self.u, x)


class RotationBlocks:
    """Non-symmetric: Q M Q, M block upper bidiagonal with 2x2 diagonal blocks.

    Diagonal block i is [[a, b], [-b, a]] (eigenvalues a ± ib) or, for real pairs,
    [[a, c], [0, d]]. Bulk: a in [-0.2, 1], |b| <= 0.5; outliers: magnitudes 2 to 10.
    The coupling 0.3 x_{i+1} added to block i makes M non-normal without changing
    its eigenvalues (block triangular).
    """

    def __init__(self, n: int, seed: int, dtype: torch.dtype = torch.float64) -> None:
        gen = torch.Generator().manual_seed(seed)
        m = n // 2
        self.shape, self.dtype, self.device = (2 * m, 2 * m), dtype, torch.device("cpu")
        a = torch.rand(m, generator=gen, dtype=dtype) * 1.2 - 0.2
        b = torch.rand(m, generator=gen, dtype=dtype) - 0.5
        real = torch.rand(m, generator=gen, dtype=dtype) < 0.3
        c = torch.where(real, torch.zeros_like(b), b)
        d = torch.where(real, torch.rand(m, generator=gen, dtype=dtype) * 1.2 - 0.2, a)
        low = torch.where(real, torch.zeros_like(b), -b)
        out_a = torch.tensor([9.0, 6.0, 4.0, 2.5, -3.0, 1.0, 0.5, 2.0], dtype=dtype)
        out_b = torch.tensor([3.0, 0.0, 5.0, 2.0, 0.0, 7.0, 4.0, 0.0], dtype=dtype)
        k = len(out_a)
        a[:k], c[:k], low[:k], d[:k] = out_a, out_b, -out_b, out_a
        d[1], d[4], d[7] = 5.0, -2.5, 1.8  # real outlier pairs: distinct eigenvalues
        self.blocks = torch.stack([torch.stack([a, c], -1), torch.stack([low, d], -1)], -2)
        self.Q = Householder(2 * m, gen, dtype)

    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvals(self.blocks.numpy()).reshape(-1)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        y = self.Q(x).view(-1, 2)
        z = torch.einsum("mij,mj->mi", self.blocks, y)
        z[:-1] += 0.3 * y[1:]
        return self.Q(z.reshape(-1))


class DiagonalUnderReflection:
    """Symmetric: Q diag(d) Q with outliers over a bulk, or a clustered top."""

    def __init__(
        self, n: int, seed: int, clustered: bool, dtype: torch.dtype = torch.float64
    ) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.shape, self.dtype, self.device = (n, n), dtype, torch.device("cpu")
        d = torch.rand(n, generator=gen, dtype=dtype)
        if clustered:  # like a generator Hessian: a dense cluster at the top of the bulk
            d = d * 0.9
            d[:40] = 1.0 + 0.01 * torch.rand(40, generator=gen, dtype=dtype)
        else:
            d[:10] = torch.linspace(2.0, 10.0, 10, dtype=dtype)
        self.d = d
        self.Q = Householder(n, gen, dtype)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        return self.Q(self.d * self.Q(x))


@dataclass
class Row:
    case: str
    n: int
    solver: str
    ours: sd.EigResult
    ref: sd.EigResult
    product_s: float  # one product, mean inside the specdiag solve (nothing competes there)
    ref_product_s: float  # one product, mean inside the ARPACK solve

    @property
    def product_ratio(self) -> float:
        return self.ours.n_matvec / self.ref.n_matvec

    def outside(self, result: sd.EigResult) -> float:
        """Wall time beyond ``n_matvec`` products at their clean cost, per product.

        As a fraction of one product.
        """
        return (result.wall_time / result.n_matvec - self.product_s) / self.product_s

    @property
    def eig_diff(self) -> float:
        ours = self.ours.eigenvalues.numpy()[: self.ours.k_requested]
        ref = self.ref.eigenvalues.numpy()
        ref = ref[np.isfinite(ref)]
        scale = np.abs(ours).max()
        return float(max(np.min(np.abs(ref - v)) for v in ours) / scale)


def run_case(case: str, op: Any, symmetric: bool, args: argparse.Namespace, which: str) -> Row:
    solve = sd.eigsh if symmetric else sd.eigs
    timed = Timed(op)
    ours = solve(timed, k=args.k, which=which, tol=args.tol, maxiter=args.maxiter)
    product_s = timed.seconds / timed.calls
    timed = Timed(op)
    ref = solve(timed, k=args.k, which=which, tol=args.tol, backend="arpack", maxiter=args.maxiter)
    row = Row(
        case,
        op.shape[0],
        f"{'eigsh' if symmetric else 'eigs'} {which}",
        ours,
        ref,
        product_s,
        timed.seconds / timed.calls,
    )
    print(
        f"  {case:34s} n={row.n:>9,d} {row.solver:9s} "
        f"products {ours.n_matvec:5d} vs {ref.n_matvec:5d} "
        f"({row.product_ratio:.2f}x)  wall {ours.wall_time:7.2f}s vs {ref.wall_time:7.2f}s  "
        f"outside/product {row.outside(ours):.3f} vs {row.outside(ref):.3f}  "
        f"product in ARPACK / in specdiag {row.ref_product_s / product_s:.2f}  "
        f"Δλ/|λmax| {row.eig_diff:.1e}  "
        f"converged {ours.n_converged}/{ours.k} vs {ref.n_converged}/{ref.k}",
        flush=True,
    )
    return row


def product_costs(gan: toys.MoGGAN, batch: dict, repeats: int) -> dict[str, float]:
    """Mean seconds of v, Jᵀu, J u and H u (each player) on the same batch."""
    game = gan.game

    def mean_time(fn: Callable[[], Any]) -> float:
        fn()  # warm-up (and one-off graph builds)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / repeats

    field = sd.GameField(game, batch, seed=0)
    J = sd.GameJacobian.from_field(field)
    u = torch.randn(game.n, generator=torch.Generator().manual_seed(0), dtype=game.dtype)
    out = {
        "v": mean_time(lambda: game.vector_field(batch, seed=0)),
        "JTu": mean_time(lambda: J.rmatvec(u)),
        "Ju": mean_time(lambda: J.matvec(u)),
    }
    for player in game.player_names:
        H = sd.PlayerHessian.from_field(field, player)
        w = u[game.player_slice(player)].clone()
        out[f"Hu[{player}]"] = mean_time(lambda H=H, w=w: H.matvec(w))  # type: ignore[misc]
    return out


def trained_gan(label: str, hidden: int, depth: int, steps: int) -> tuple[toys.MoGGAN, dict, int]:
    """The MoG GAN after ``steps`` Adam steps, a probe batch of 256, its parameter count."""
    gan = toys.mog_gan(hidden=hidden, depth=depth, seed=0)
    n = sum(gan.n_parameters.values())
    t0 = time.perf_counter()
    gan.train(steps, lr=1e-4, optimizer="adam", seed=0)
    print(
        f"{label}: {n:,d} parameters, trained {steps} steps in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    return gan, gan.sample(256, generator=torch.Generator().manual_seed(1)), n


def gan_cases(
    label: str, hidden: int, depth: int, steps: int, args: argparse.Namespace
) -> tuple[list[Row], dict]:
    gan, batch, n = trained_gan(label, hidden, depth, steps)
    costs = product_costs(gan, batch, args.repeats)
    print(
        "  cost / v: "
        + ", ".join(f"{k} {v / costs['v']:.2f}" for k, v in costs.items() if k != "v"),
        flush=True,
    )
    field = sd.GameField(gan.game, batch, seed=0)
    rows = [
        run_case(f"{label} J (via Jᵀu)", sd.GameJacobian.from_field(field).T, False, args, "LM")
    ]
    for player in gan.game.player_names:
        rows.append(
            run_case(
                f"{label} H[{player}]", sd.PlayerHessian.from_field(field, player), True, args, "LA"
            )
        )
    return rows, {"label": label, "n": n, **costs}


# ---------------------------------------------------------------------- update operators
#: (method, options) of every update operator benchmarked; momentum -0.3 as in Gidel et al.
UPDATE_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("gd", {}),
    ("alternating_gd", {}),
    ("extragradient", {}),
    ("optimistic", {}),
    ("momentum", {"beta": -0.3}),
    ("alternating_momentum", {"beta": -0.3}),
    ("consensus", {}),
)


@dataclass
class UpdateRow:
    method: str
    n: int
    ours: sd.EigResult
    ref: sd.EigResult
    jacobian_products: tuple[int, int]  # products of J behind each solve (specdiag, ARPACK)

    @staticmethod
    def radius(result: sd.EigResult) -> float:
        return float(result.eigenvalues.abs().max())


def update_cases(
    label: str, hidden: int, depth: int, steps: int, args: argparse.Namespace
) -> tuple[list[UpdateRow], float]:
    """ρ(∂T) of every method at η = 1 / |λ_max(J)| (consensus: γ = η), both solvers."""
    gan, batch, _ = trained_gan(label, hidden, depth, steps)
    J = sd.GameJacobian.from_field(sd.GameField(gan.game, batch, seed=0))
    lr = 1.0 / float(sd.eigs(J, k=1, which="LM", tol=args.tol).eigenvalues.abs().max())
    rows = []
    for method, options in UPDATE_CASES:
        options = {"gamma": lr} if method == "consensus" else options
        T = update_operator(J, method, lr, **options)
        solves, products = [], []
        for backend in ("krylov-schur", "arpack"):
            before = J.n_products
            solves.append(
                sd.eigs(
                    T, k=args.k, which="LM", tol=args.tol, maxiter=args.maxiter, backend=backend
                )
            )
            products.append(J.n_products - before)
        row = UpdateRow(method, T.shape[0], solves[0], solves[1], (products[0], products[1]))
        print(
            f"  {method:21s} n={row.n:>9,d} "
            f"ρ {row.radius(row.ours):.6f} vs {row.radius(row.ref):.6f}  "
            f"products {row.ours.n_matvec:5d} vs {row.ref.n_matvec:5d} "
            f"({row.ours.n_matvec / row.ref.n_matvec:.2f}x)  "
            f"wall {row.ours.wall_time:7.2f}s vs {row.ref.wall_time:7.2f}s "
            f"({row.ours.wall_time / row.ref.wall_time:.2f}x)  "
            f"converged {row.ours.n_converged}/{row.ours.k} "
            f"vs {row.ref.n_converged}/{row.ref.k}",
            flush=True,
        )
        rows.append(row)
    return rows, lr


def update_markdown(
    label: str, rows: list[UpdateRow], lr: float, args: argparse.Namespace, command: str
) -> str:
    lines = [
        UPDATE_START,
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads; "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"scipy {scipy.__version__}; {datetime.date.today().isoformat()}.  ",
        f"{label}; η = 1/|λ_max(J)| = {lr:.4g}, momentum β = -0.3, consensus γ = η; "
        f"eigs which = LM, k = {args.k}, tol = {args.tol}, maxiter = {args.maxiter}, "
        "same start vector for both.",
        "",
        "| method | n | ρ(∂T) specdiag / ARPACK | products ∂T (specdiag / ARPACK) | ratio "
        "| products J | wall s (specdiag / ARPACK) | ratio | converged |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.n:,d} | {r.radius(r.ours):.6f} / {r.radius(r.ref):.6f} "
            f"| {r.ours.n_matvec} / {r.ref.n_matvec} | {r.ours.n_matvec / r.ref.n_matvec:.2f} "
            f"| {r.jacobian_products[0]} / {r.jacobian_products[1]} "
            f"| {r.ours.wall_time:.2f} / {r.ref.wall_time:.2f} "
            f"| {r.ours.wall_time / r.ref.wall_time:.2f} "
            f"| {r.ours.n_converged}/{r.ours.k} / {r.ref.n_converged}/{r.ref.k} |"
        )
    lines.append(UPDATE_END)
    return "\n".join(lines)


def markdown(rows: list[Row], costs: list[dict], args: argparse.Namespace, command: str) -> str:
    lines = [
        START,
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads; "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}; "
        f"{datetime.date.today().isoformat()}.  ",
        f"Settings: k = {args.k}, tol = {args.tol}, "
        f"ncv = max(2k + 1, 20) = {default_ncv(args.k)}, same start vector for both.",
        "",
        "| case | n | solver | products (specdiag / ARPACK) | ratio "
        "| wall s (specdiag / ARPACK) | outside products, per product (specdiag / ARPACK) "
        "| product inside ARPACK ÷ inside specdiag | max Δλ / \\|λ_max\\| | converged |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.case} | {r.n:,d} | {r.solver} | {r.ours.n_matvec} / {r.ref.n_matvec} "
            f"| {r.product_ratio:.2f} "
            f"| {r.ours.wall_time:.2f} / {r.ref.wall_time:.2f} "
            f"| {r.outside(r.ours):.3f} / {r.outside(r.ref):.3f} "
            f"| {r.ref_product_s / r.product_s:.2f} | {r.eig_diff:.1e} "
            f"| {r.ours.n_converged}/{r.ours.k} / {r.ref.n_converged}/{r.ref.k} |"
        )
    ratios = [r.product_ratio for r in rows]
    lines += [
        "",
        f"Products, specdiag ÷ ARPACK: geometric mean {math.exp(np.mean(np.log(ratios))):.3f}, "
        f"largest {max(ratios):.2f}.",
        "",
        "Cost of one product ÷ one evaluation of v (same batch, mean of "
        f"{args.repeats} after a warm-up):",
        "",
        "| GAN | n | v (ms) | Jᵀu | J u | "
        + " | ".join(k for k in costs[0] if k.startswith("Hu"))
        + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * sum(k.startswith("Hu") for k in costs[0]),
    ]
    for c in costs:
        hu = " | ".join(f"{c[k] / c['v']:.2f}" for k in c if k.startswith("Hu"))
        lines.append(
            f"| {c['label']} | {c['n']:,d} | {1e3 * c['v']:.1f} | {c['JTu'] / c['v']:.2f} "
            f"| {c['Ju'] / c['v']:.2f} | {hu} |"
        )
    lines.append(END)
    return "\n".join(lines)


def write_section(path: Path, text: str, start: str = START, end: str = END) -> None:
    """Replace the section between the ``start`` and ``end`` markers, or append it.

    ``text`` holds both markers.
    """
    old = path.read_text() if path.exists() else ""
    if start in old and end in old:
        new = old[: old.index(start)] + text + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip() + ("\n\n" if old else "") + text + "\n"
    path.write_text(new)


def solvers_section(args: argparse.Namespace, command: str) -> None:
    """The eigensolver comparison: synthetic operators and the GANs' J and Hessians."""
    sizes = [2000] if args.smoke else [5_000, 100_000, 1_000_000]
    rows: list[Row] = []
    print("synthetic operators", flush=True)
    for n in sizes:
        rows.append(
            run_case("synthetic non-symmetric", RotationBlocks(n, seed=0), False, args, "LM")
        )
        rows.append(
            run_case("synthetic non-symmetric", RotationBlocks(n, seed=0), False, args, "LI")
        )
        rows.append(
            run_case(
                "synthetic symmetric",
                DiagonalUnderReflection(n, 0, clustered=False),
                True,
                args,
                "LA",
            )
        )
        for seed in (0, 1, 2):  # a tight cluster makes product counts sensitive: show the spread
            op = DiagonalUnderReflection(n, seed, clustered=True)
            rows.append(
                run_case(f"synthetic symmetric, clustered top, seed {seed}", op, True, args, "LA")
            )
    costs = []
    gans = [("GAN 2k", 16, 2, 20)] if args.smoke else [("GAN 200k", 220, 3, 300)]
    if not (args.smoke or args.skip_2m):
        gans.append(("GAN 2M", 576, 4, 200))
    for label, hidden, depth, steps in gans:
        more, cost = gan_cases(label, hidden, depth, steps, args)
        rows += more
        costs.append(cost)
    text = markdown(rows, costs, args, command)
    print()
    print(text)
    if args.markdown:
        write_section(args.markdown, text)


# ---------------------------------------------------------------------- warm starts
WARM_OPERATORS = ("jacobian", "generator", "discriminator")


@dataclass
class WarmTally:
    """Per operator, over the run: products cold and warm, worst difference, flags."""

    cold: int = 0
    warm: int = 0
    diff: float = 0.0
    converged: bool = True
    handovers: int = 0
    solves: int = 0
    cosines: list = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.cosines = []


def warm_probe(
    name: str, op: Any, previous: Any, k: int, tol: float, tally: WarmTally
) -> torch.Tensor:
    """Solve ``op`` cold and warm (from ``previous``); update the tally; the new basis."""
    solve = sd.eigs if name == "jacobian" else sd.eigsh
    which = "LM" if name == "jacobian" else "LA"
    cold = solve(op, k=k, which=which, tol=tol)
    warm = solve(op, k=k, which=which, tol=tol, v0=previous, return_basis=True)
    tally.cold += cold.n_matvec
    tally.warm += warm.n_matvec
    tally.solves += 1
    tally.handovers += any("then Krylov" in note for note in warm.notes)
    tally.converged &= cold.all_converged and warm.all_converged
    c, w = cold.eigenvalues.numpy(), warm.eigenvalues.numpy()
    diff = max(np.min(np.abs(c - v)) for v in w[:k]) / np.abs(c).max()
    tally.diff = max(tally.diff, float(diff))
    assert warm.basis is not None
    if previous is not None:
        size = min(k, previous.shape[1], warm.basis.shape[1])
        cos = torch.linalg.svdvals(previous[:, :size].T @ warm.basis[:, :size])
        tally.cosines.append(float(cos.mean()))
    return warm.basis


def warm_start_section(args: argparse.Namespace, command: str) -> str:
    """The training run of the warm-start benchmark, and its Markdown table."""
    hidden, depth = (16, 2) if args.smoke else (220, 3)
    probes = 3 if args.smoke else args.probes
    gan = toys.mog_gan(hidden=hidden, depth=depth, seed=0)
    batch = gan.sample(256, generator=torch.Generator().manual_seed(1))
    tallies = {name: WarmTally() for name in WARM_OPERATORS}
    previous: dict[str, Any] = {name: None for name in WARM_OPERATORS}
    n = sum(gan.n_parameters.values())
    print(f"warm start: GAN {n:,d} parameters, {probes} probes, {args.steps} steps apart")
    for probe in range(probes):
        field = sd.GameField(gan.game, batch, seed=0)
        ops: dict[str, Any] = {"jacobian": sd.GameJacobian.from_field(field)}
        ops.update({p: sd.PlayerHessian.from_field(field, p) for p in gan.game.player_names})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sd.ConvergenceWarning)
            for name, op in ops.items():
                previous[name] = warm_probe(
                    name, op, previous[name], args.k, args.tol, tallies[name]
                )
        print(
            f"  probe {probe:2d}: "
            + "  ".join(f"{m} {t.cold}/{t.warm}" for m, t in tallies.items()),
            flush=True,
        )
        gan.train(args.steps, seed=probe)
    return warm_markdown(tallies, n, probes, args, command)


def warm_markdown(
    tallies: dict[str, WarmTally], n: int, probes: int, args: argparse.Namespace, command: str
) -> str:
    lines = [
        WARM_START,
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads; Python "
        f"{platform.python_version()}, torch {torch.__version__}; "
        f"{datetime.date.today().isoformat()}.  ",
        f"MoG GAN, {n:,d} parameters, from its initialisation; {probes} probes, "
        f"`gan.train({args.steps}, seed=probe)` between them, probe batch "
        "`gan.sample(256, torch.Generator().manual_seed(1))`; k = "
        f"{args.k}, tol = {args.tol}; warm = `v0` the previous warm solve's `basis` (the "
        "first probe is cold in both columns).",
        "",
        "| operator | solver | products cold / warm | ratio | warm solves handed over "
        "| mean cos of principal angles, consecutive bases | max \\|Δλ\\| / \\|λ_max\\| "
        "| all converged |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    total = [0, 0]
    for name, t in tallies.items():
        solver = "eigs LM (on Jᵀ)" if name == "jacobian" else "eigsh LA"
        cos = f"{np.mean(t.cosines):.2f}" if t.cosines else "—"
        lines.append(
            f"| {name} | {solver} | {t.cold} / {t.warm} | {t.warm / t.cold:.2f} "
            f"| {t.handovers}/{t.solves - 1} | {cos} | {t.diff:.1e} | {t.converged} |"
        )
        total[0] += t.cold
        total[1] += t.warm
    lines += [
        "",
        f"All operators: {total[0]} / {total[1]} products, ratio {total[1] / total[0]:.2f}.",
        WARM_END,
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------- time outside products
@dataclass
class OverheadRow:
    case: str
    solver: str
    n: int
    result: sd.EigResult
    bare_s: float  # median of one bare product
    sweep_s: float  # median of one Gram–Schmidt step over a full basis (two passes)
    shares: dict[str, float]  # of a second solve's time, under cProfile

    @property
    def ratio(self) -> float:
        return self.result.wall_time / (self.result.n_matvec * self.bare_s)


def bare_product(field: sd.GameField, player: Any) -> Callable[[], Any]:
    """``torch.autograd.grad`` on the field's cached graph, nothing else (Jᵀu or H u)."""
    game = field.game
    params = list(game.parameters(player))
    outputs = [field._grads[i] for i in game.player_tensors(player)]
    n = sum(p.numel() for p in params)
    u = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=game.dtype)
    pieces = [
        piece.view(p.shape) for piece, p in zip(torch.split(u, [p.numel() for p in params]), params)
    ]

    def run() -> Any:
        return torch.autograd.grad(outputs, params, grad_outputs=pieces, retain_graph=True)

    return run


def median_seconds(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def basis_sweep(n: int, ncv: int, dtype: torch.dtype) -> Callable[[], Any]:
    """One classical Gram–Schmidt step over a full basis: ``h = V w``, then ``w -= Vᵀ h``.

    Two passes over ``ncv × n`` numbers, what each product of a solve pays at least
    once its basis is full: on a large ``n`` this is memory traffic, not arithmetic.
    """
    generator = torch.Generator().manual_seed(0)
    basis = torch.randn(ncv, n, generator=generator, dtype=dtype)
    w = torch.randn(n, generator=generator, dtype=dtype)

    def run() -> Any:
        h = torch.mv(basis, w)
        return w.addmv_(basis.T, h, alpha=-1e-8)  # tiny alpha keeps w's scale over repeats

    return run


#: What a profile of a solve is split into: (file, function) whose cumulative time counts.
PROFILED = {
    "products": ("linalg/operator.py", "matvec"),
    "Gram–Schmidt": ("linalg/gram_schmidt.py", "orthogonalize"),
    "restarts": ("linalg/krylov_schur.py", "restart"),
}


def profile_shares(solve: Callable[[], Any]) -> dict[str, float]:
    """Shares of one solve's wall time (under cProfile) in ``PROFILED`` and the rest.

    A function's cumulative time counts once, at its outermost call (a transposed
    operator's ``matvec`` calls the operator's).
    """
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    solve()
    profile.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    shares = {}
    for part, (where, name) in PROFILED.items():
        times = [s[3] for (file, _, fn), s in stats.items() if fn == name and file.endswith(where)]
        shares[part] = max(times, default=0.0) / wall
    shares["the rest"] = 1.0 - sum(shares.values())
    return shares


def overhead_case(
    label: str, field: sd.GameField, player: Any, args: argparse.Namespace
) -> OverheadRow:
    """One solve and the bare product's median time (measured before and after it)."""
    if player is None:
        op: Any = sd.GameJacobian.from_field(field).T
        solve, which = sd.eigs, "LM"
    else:
        op = sd.PlayerHessian.from_field(field, player)
        solve, which = sd.eigsh, "LA"
    bare = bare_product(field, player)
    times = median_seconds(bare, args.repeats)
    result = solve(op, k=args.k, which=which, tol=args.tol, maxiter=args.maxiter)
    times += median_seconds(bare, args.repeats)
    name = "eigs LM (on Jᵀ)" if player is None else "eigsh LA"
    sweep = median_seconds(basis_sweep(op.shape[0], default_ncv(args.k), op.dtype), 20)
    shares = profile_shares(
        lambda: solve(op, k=args.k, which=which, tol=args.tol, maxiter=args.maxiter)
    )
    row = OverheadRow(
        label, name, op.shape[0], result, float(np.median(times)), float(np.median(sweep)), shares
    )
    print(
        f"  {label:28s} n={row.n:>9,d} products {result.n_matvec:4d} wall {result.wall_time:6.2f}s "
        f"bare {1e3 * row.bare_s:7.2f} ms  wall / (products x bare) {row.ratio:.3f}  "
        f"basis sweep / bare {row.sweep_s / row.bare_s:.3f}",
        flush=True,
    )
    return row


def overhead_section(args: argparse.Namespace, command: str) -> str:
    """The 300k Hessian and the 2M GAN's J and Hessians: time outside the products."""
    specs: list[tuple[str, int, int, int, list[Any]]] = (
        [("GAN 2k", 16, 2, 20, ["generator"])]
        if args.smoke
        else [
            ("GAN 590k", 380, 3, 200, ["generator"]),
            ("GAN 2M", 576, 4, 200, [None, "generator", "discriminator"]),
        ]
    )
    if args.skip_2m:
        specs = [spec for spec in specs if spec[0] != "GAN 2M"]
    rows = []
    for label, hidden, depth, steps, players in specs:
        gan, batch, _ = trained_gan(label, hidden, depth, steps)
        field = sd.GameField(gan.game, batch, seed=0)
        for player in players:
            name = "J (via Jᵀu)" if player is None else f"H[{player}]"
            rows.append(overhead_case(f"{label} {name}", field, player, args))
        del field
    return overhead_markdown(rows, args, command)


def overhead_markdown(rows: list[OverheadRow], args: argparse.Namespace, command: str) -> str:
    lines = [
        OVERHEAD_START,
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads; Python "
        f"{platform.python_version()}, torch {torch.__version__}; "
        f"{datetime.date.today().isoformat()}.  ",
        f"k = {args.k}, tol = {args.tol}, ncv = {default_ncv(args.k)}; bare product: "
        f"median of {2 * args.repeats} `torch.autograd.grad` calls on the same cached graph, "
        "half before and half after the solve. *Basis sweep*: one Gram–Schmidt step over a "
        f"full basis of {default_ncv(args.k)} vectors (`h = V w`, then `w -= Vᵀ h`, two "
        "passes over the basis, median of 20): each product of the solve pays about that "
        f"much or less (the basis holds from k + 1 to {default_ncv(args.k)} vectors). "
        "*Profile*: the same solve again under cProfile, the shares of its time in the "
        "products (the operator's `matvec`, its bookkeeping included), in Gram–Schmidt "
        "(`orthogonalize`), in the thick restarts, and the rest of the iteration.",
        "",
        "| case | n | solver | products | wall s | bare product ms "
        "| wall ÷ (products × bare) | outside the products, per product "
        "| basis sweep ÷ bare product | profile: products / Gram–Schmidt / restarts / rest |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.case} | {r.n:,d} | {r.solver} | {r.result.n_matvec} | {r.result.wall_time:.2f} "
            f"| {1e3 * r.bare_s:.2f} | {r.ratio:.3f} | {r.ratio - 1:.3f} "
            f"| {r.sweep_s / r.bare_s:.3f} | "
            + " / ".join(f"{share:.2f}" for share in r.shares.values())
            + " |"
        )
    lines.append(OVERHEAD_END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--maxiter", type=int, default=1000)
    parser.add_argument(
        "--repeats", type=int, default=10, help="repetitions when timing one product"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script runs")
    parser.add_argument("--skip-2m", action="store_true", help="leave out the 2M-parameter GAN")
    parser.add_argument("--markdown", type=Path, help="write the tables into this Markdown file")
    parser.add_argument(
        "--section",
        choices=SECTIONS,
        default="all",
        help="run one section: the solver comparison or the update operators",
    )
    parser.add_argument(
        "--probes", type=int, default=20, help="warm-start: probes of the training run"
    )
    parser.add_argument(
        "--steps", type=int, default=50, help="warm-start: training steps between probes"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    command = "python scripts/bench_eigs.py " + " ".join(sys.argv[1:] if argv is None else argv)

    if args.section == "warm-start":
        text = warm_start_section(args, command)
        print()
        print(text)
        if args.markdown:
            write_section(args.markdown, text, WARM_START, WARM_END)
    if args.section == "overhead":
        text = overhead_section(args, command)
        print()
        print(text)
        if args.markdown:
            write_section(args.markdown, text, OVERHEAD_START, OVERHEAD_END)
    if args.section in ("all", "solvers"):
        solvers_section(args, command)
    if args.section in ("all", "update-operators"):
        label, hidden, depth, steps = (
            ("GAN 2k", 16, 2, 20) if args.smoke else ("GAN 200k", 220, 3, 300)
        )
        print("update operators", flush=True)
        rows, lr = update_cases(label, hidden, depth, steps, args)
        text = update_markdown(label, rows, lr, args, command)
        print()
        print(text)
        if args.markdown:
            write_section(args.markdown, text, UPDATE_START, UPDATE_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
