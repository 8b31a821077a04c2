"""Update operators and the Helmholtz split inside probes, the monitor, the trace and the plots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from games import gan_game

import specdiag as sd
from specdiag.plot import dynamics_figure, plot_trace, spectrum_figure
from specdiag.stability import update_radius
from specdiag.summary import format_summary, trace_warnings
from specdiag.trace import SCHEMA_VERSION

LR = 0.05


@pytest.fixture(scope="module")
def small():
    g = gan_game(hidden=8, seed=3)
    return g, g.dense_jacobian().numpy()


def dense_rho(T: np.ndarray) -> float:
    return float(np.abs(np.linalg.eigvals(T)).max())


@pytest.mark.parametrize("method, beta", [("gd", None), ("momentum", -0.3)])
def test_probe_records_the_update_operator_against_dense(small, method, beta):
    g, J = small
    n = J.shape[0]
    rule = sd.UpdateRule(method, lr=LR, beta=beta)
    rec = sd.probe(g.game, k=4, operators=("jacobian",), update=rule, tol=1e-8)
    u = rec["update"]
    assert u.kind == "update" and u.status == "ok"
    assert u.eigenvalues.size in (rule.k, rule.k + 1)  # k = 3 by default, a pair kept whole
    if method == "gd":
        T = np.eye(n) - LR * J
    else:
        T = np.block(
            [[(1 + beta) * np.eye(n) - LR * J, -beta * np.eye(n)], [np.eye(n), np.zeros((n, n))]]
        )
    assert u.scalars["spectral_radius"] == pytest.approx(dense_rho(T), rel=1e-6)
    assert u.scalars["lr"] == LR
    computed = rec["jacobian"].eigenvalues
    expected = sd.max_stable_lr(computed, method, beta=beta or 0.0).lr
    assert u.scalars["max_stable_lr"] == pytest.approx(expected, rel=1e-12, abs=0)


def test_preconditioned_rule_reads_the_optimizers_at_each_probe():
    g = gan_game(hidden=8, seed=3)
    opts = {p: torch.optim.RMSprop(m.parameters(), lr=LR) for p, m in g.modules.items()}
    rule = sd.UpdateRule("gd", lr=LR, optimizers=lambda: opts)
    assert rule.closed_form is None
    rec = sd.probe(g.game, k=3, operators=("jacobian",), update=rule, on_error="ignore")
    assert rec["update"].status == "error" and "no RMSprop state" in rec["update"].message
    losses = g.game.losses(None)
    for p, opt in opts.items():  # one step to create the state, without moving far
        grads = torch.autograd.grad(losses[p], list(g.modules[p].parameters()), retain_graph=True)
        for t, gr in zip(g.modules[p].parameters(), grads):
            t.grad = gr
        opt.step()
        opt.zero_grad(set_to_none=True)
    P = sd.optimizer_preconditioner(g.game, opts).numpy()
    J = g.dense_jacobian().numpy()  # at the point after the step
    rec = sd.probe(g.game, k=3, operators=("jacobian",), update=rule, tol=1e-8)
    T = np.eye(J.shape[0]) - LR * J / P[:, None]
    assert rec["update"].scalars["spectral_radius"] == pytest.approx(dense_rho(T), rel=1e-6)
    # no closed form on J: the bound comes from ν = (1 - μ)/η of the computed μ, and
    # agrees with the dense preconditioned operator's where those eigenvalues bind
    mu = rec["update"].eigenvalues
    expected = sd.max_stable_lr((1 - mu) / LR, "gd").lr
    assert rec["update"].scalars["max_stable_lr"] == pytest.approx(expected, rel=1e-12)


def test_largest_stable_step_of_per_player_step_sizes():
    """Dirac-GAN with R1 at its equilibrium: J = [[0, 1/2], [-1/2, γ]], eigenvalues with
    Re λ > 0. With step sizes (η_G, η_D) = (0.5η, η) the step is I - η diag(0.5, 1) J,
    stable for η below max_stable_lr of the eigenvalues of diag(0.5, 1) J."""
    from specdiag import toys

    toy = toys.dirac_gan(loss="standard", r1=0.6)
    rule = sd.UpdateRule("gd", lr={"generator": 0.25, "discriminator": 0.5})
    rec = sd.probe(toy.game, k=2, update=rule, operators=("jacobian",))
    J = np.array([[0.0, 0.5], [-0.5, 0.6]])
    nu = np.linalg.eigvals(np.diag([0.5, 1.0]) @ J)
    bound = sd.max_stable_lr(nu, "gd")
    assert bound.exists
    assert rec["update"].scalars["max_stable_lr"] == pytest.approx(bound.lr, rel=1e-10)
    rho = lambda eta: np.abs(np.linalg.eigvals(np.eye(2) - eta * np.diag([0.5, 1.0]) @ J)).max()  # noqa: E731
    assert rho(0.99 * bound.lr) < 1 < rho(1.01 * bound.lr)


def test_probe_records_the_helmholtz_split(small):
    g, J = small
    rec = sd.probe(g.game, k=2, operators=("jacobian",), helmholtz=8, seed=4)
    h = rec["helmholtz"]
    assert h.kind == "helmholtz" and h.status == "ok" and h.eigenvalues.size == 0
    direct = sd.helmholtz_split(sd.GameJacobian(g.game), 8, seed=4)
    assert h.scalars["rotation_fraction"] == pytest.approx(direct.rotation_fraction, rel=1e-10)
    assert h.scalars["zero_sum_defect"] == pytest.approx(direct.zero_sum_defect, rel=1e-10)
    assert h.n_matvec == direct.n_matvec == 32


def test_bad_dynamics_settings_are_refused(small):
    g, _ = small
    with pytest.raises(TypeError, match="UpdateRule"):
        sd.probe(g.game, update={"method": "gd", "lr": 0.1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="helmholtz"):
        sd.probe(g.game, helmholtz=1)
    with pytest.raises(ValueError, match="unknown update method"):
        sd.UpdateRule("adam", lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        sd.UpdateRule("gd", lr=-1.0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        sd.UpdateRule("gd", lr=0.1, k=0)


def test_monitor_trace_summary_and_plots(tmp_path):
    from specdiag import toys

    gan = toys.mog_gan(hidden=8, depth=2, seed=0)
    batch = gan.sample(128, torch.Generator().manual_seed(1))
    rule = sd.UpdateRule("momentum", lr=0.02, beta=0.5)
    path = tmp_path / "run.h5"
    with sd.SpectrumMonitor(
        gan.game,
        path,
        every=10,
        k=4,
        probe_batch=batch,
        update=rule,
        helmholtz=4,
        operators=("jacobian",),
    ) as mon:
        gan.train(21, lr=0.02, optimizer="sgd", momentum=0.5, callback=mon.step)
    tr = sd.open_trace(path)
    assert tr.meta["schema_version"] == SCHEMA_VERSION
    assert tr.operators == ("jacobian", "update", "helmholtz")
    assert tr.meta["config"]["update"] == rule.config()
    assert tr.meta["layout"]["operators"]["update"]["n"] == 2 * gan.game.n
    rho = tr.scalars("update")["spectral_radius"]
    assert rho.shape == (3,) and np.isfinite(rho).all()
    assert np.isfinite(tr.scalars("helmholtz")["rotation_fraction"]).all()
    text = format_summary(tr)
    assert "ρ(∂T)" in text and "rotation" in text
    assert any(w.startswith("update: ρ(∂T) > 1") for w in trace_warnings(tr)) == bool(
        (rho > 1).any()
    )
    written = {p.name for p in plot_trace(tr, tmp_path / "plots", gif=False)}
    assert "dynamics.png" in written
    fig = dynamics_figure(tr)
    assert len(fig.axes) == 3
    assert fig.axes[0].get_title().startswith("ρ(∂T), momentum")
    # the spectrum's stability region is momentum's at β = 0.5, read from the trace
    ax = spectrum_figure(tr, lr=0.02).axes[0]
    contours = [c for c in ax.collections if c.get_gid() == "stability-region"]
    assert contours
    vertices = np.concatenate([p.vertices for p in contours[0].get_paths()])
    lam = vertices[:, 0] + 1j * vertices[:, 1]
    np.testing.assert_allclose(update_radius(lam, "momentum", 0.02, beta=0.5), 1.0, atol=0.02)
