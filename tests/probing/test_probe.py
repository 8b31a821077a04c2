"""sd.probe: one probe's numbers, its failures, and the state it must leave alone."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Callable

import numpy as np
import pytest
import torch
from games import assert_same, mlp, snapshot
from torch import nn
from torch.nn import functional as F

import specdiag as sd
from specdiag import toys
from specdiag.errors import ProbeWarning
from specdiag.probing import ProbeRecord, probe, spectrum_scalars

F64 = torch.float64


def small_gan(*, spectral_norm: bool = False, seed: int = 0, wrap=None):
    """A tiny GAN with every kind of state a probe could disturb.

    BatchNorm in train mode in both players (running statistics), optionally spectral
    norm on the discriminator's first layer (its ``u`` vector), noise drawn inside the
    closure (the global random stream), a pre-existing ``.grad`` on one parameter and
    ``None`` on the others, one module in eval mode. ``wrap``: a wrapper (DDP,
    ``torch.compile``) applied to both modules, which the closure and the game use.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        G = mlp([3, 6, 2], batchnorm=True).double()
        D = mlp([2, 6, 1], batchnorm=not spectral_norm).double()
    if spectral_norm:
        D[0] = nn.utils.parametrizations.spectral_norm(D[0])
    G.train(), D.train()
    D[-1].eval()
    z = torch.randn(8, 3, dtype=F64, generator=gen)
    x = torch.randn(8, 2, dtype=F64, generator=gen) + 1.0
    G[0].weight.grad = torch.randn(6, 3, dtype=F64, generator=gen)
    Gw, Dw = (G, D) if wrap is None else (wrap(G), wrap(D))

    def losses(batch):
        noise = 0.1 * torch.randn(8, 2, dtype=F64)
        real = x if batch is None else batch
        d_fake = Dw(Gw(z) + noise)
        l_d = F.softplus(-Dw(real)).mean() + F.softplus(d_fake).mean()
        return {"generator": F.softplus(-d_fake).mean(), "discriminator": l_d}

    return sd.Game({"generator": Gw, "discriminator": Dw}, losses), G, D


def quiet_probe(*args, **kwargs) -> ProbeRecord:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbeWarning)
        return probe(*args, **kwargs)


# ---------------------------------------------------------------------- state
@pytest.mark.parametrize("spectral_norm", [False, True], ids=["batchnorm", "spectral-norm"])
def test_probe_leaves_every_piece_of_state_as_it_was(spectral_norm):
    game, G, D = small_gan(spectral_norm=spectral_norm)
    D[0].bias.requires_grad_(False)  # a player frozen between training steps
    before = snapshot([G, D])
    rec = quiet_probe(game, k=3)
    assert rec.status == "ok"
    assert_same(before, snapshot([G, D]))
    if spectral_norm:  # the probe's forward passes ran the power iteration (on a copy)
        u = D[0].parametrizations.weight[0]._u
        assert before[1, "0.parametrizations.weight.0._u"].equal(u)


def test_probe_restores_grads_the_closure_accumulated_and_flags_it_flipped():
    game, G, D = small_gan()
    inner = game._losses

    def losses(batch):
        out = inner(batch)
        out["discriminator"].backward(retain_graph=True)  # writes .grad
        G.eval()
        return out

    game = sd.Game({"generator": G, "discriminator": D}, losses)
    before = snapshot([G, D])
    assert quiet_probe(game, k=2).status == "ok"
    assert_same(before, snapshot([G, D]))
    assert G[0].weight.grad is not None and D[0].weight.grad is None


def test_probe_ignores_autocast_no_grad_and_inference_mode():
    game, G, D = small_gan()
    expected = quiet_probe(game, k=3)
    for context in (
        torch.autocast("cpu", dtype=torch.bfloat16),
        torch.no_grad(),
        torch.inference_mode(),
    ):
        with context:
            rec = quiet_probe(game, k=3)
        for name in expected:
            assert np.array_equal(rec[name].eigenvalues, expected[name].eigenvalues), (
                context,
                name,
            )


def test_parameter_changed_in_place_by_the_closure_is_reported():
    game, G, D = small_gan()
    inner = game._losses

    def losses(batch):
        with torch.no_grad():
            D[0].weight.clamp_(-0.5, 0.5)  # weight clipping in the wrong place
        return inner(batch)

    game = sd.Game({"generator": G, "discriminator": D}, losses)
    with pytest.warns(
        ProbeWarning, match=r"changed parameter\(s\) in place \(discriminator\.0\.weight\)"
    ):
        rec = probe(game, k=2)
    assert "in place" in rec.message


# ---------------------------------------------------------------------- numbers
def test_same_seed_same_numbers_and_the_training_stream_is_untouched():
    game, G, D = small_gan()
    torch.manual_seed(123)
    first = quiet_probe(game, k=4, seed=7)
    second = quiet_probe(game, k=4, seed=7)
    drawn = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(drawn, torch.rand(3))  # the probes drew nothing from the global stream
    for name in first:
        assert np.array_equal(first[name].eigenvalues, second[name].eigenvalues)
        assert first[name].n_matvec == second[name].n_matvec
    assert first.losses == second.losses
    other = quiet_probe(game, k=4, seed=8)  # other noise inside the closure
    assert other.losses["generator"] != first.losses["generator"]


def test_eigenvalues_are_those_of_the_solvers_on_the_same_operators():
    game, G, D = small_gan()
    which = {"jacobian": "LR", "discriminator": "SA"}
    rec = quiet_probe(game, k=4, seed=3, which=which, ncv=20)
    field = sd.GameField(game, None, seed=3)
    gen = torch.Generator().manual_seed(3)
    direct = sd.eigs(sd.GameJacobian.from_field(field), k=4, which="LR", ncv=20, generator=gen)
    assert np.allclose(rec["jacobian"].eigenvalues, direct.eigenvalues.numpy(), rtol=1e-12, atol=0)
    assert np.array_equal(rec["jacobian"].converged, direct.converged.numpy())
    assert rec["jacobian"].which == "LR" and rec["jacobian"].kind == "jacobian"
    for player, end in (("generator", "BE"), ("discriminator", "SA")):
        gen = torch.Generator().manual_seed(3)
        direct = sd.eigsh(
            sd.PlayerHessian.from_field(field, player), k=4, which=end, ncv=20, generator=gen
        )
        got = rec[player]
        assert got.kind == "hessian" and got.which == end
        assert got.eigenvalues.dtype == np.complex128 and not got.eigenvalues.imag.any()
        assert np.allclose(got.eigenvalues.real, direct.eigenvalues.numpy(), rtol=1e-12, atol=0)
        assert got.scalars == {"max": got.eigenvalues.real.max(), "min": got.eigenvalues.real.min()}
    assert rec.losses == pytest.approx(field.losses, rel=1e-14)


def test_dirac_gan_with_r1_gives_its_known_scalars():
    toy = toys.dirac_gan(loss="standard", r1=0.3)
    rec = quiet_probe(toy.game, k=10)  # k is cut to each operator's order
    lam = toys.dirac_gan_eigenvalues("standard", r1=0.3)
    jac = rec["jacobian"]
    assert len(jac.eigenvalues) == 2 and jac.converged.all()
    assert np.allclose(
        sorted(jac.eigenvalues, key=lambda v: v.imag), sorted(lam, key=lambda v: v.imag), atol=1e-12
    )
    s = jac.scalars
    assert s["min_real"] == pytest.approx(0.15, abs=1e-12)
    assert s["max_imag"] == pytest.approx(math.sqrt(0.25 - 0.0225), abs=1e-12)
    assert s["max_imag_over_real"] == pytest.approx(math.sqrt(0.25 - 0.0225) / 0.15, rel=1e-10)
    assert s["spectral_radius"] == pytest.approx(0.5, abs=1e-12)  # |λ|² = det J = f'(0)²
    # the players' own Hessians at the equilibrium: 0 for the generator, r1 for the discriminator
    assert rec["discriminator"].scalars == pytest.approx({"max": 0.3, "min": 0.3}, abs=1e-12)
    assert rec["generator"].scalars == pytest.approx({"max": 0.0, "min": 0.0}, abs=1e-12)


def test_bilinear_game_rotation_is_pure():
    toy = toys.bilinear_game(n=30, m=30, seed=1)
    rec = quiet_probe(toy.game, k=4, operators=["jacobian"], tol=1e-8)
    sigma = float(torch.linalg.svdvals(toy.A)[0])
    s = rec["jacobian"].scalars
    assert s["max_imag"] == pytest.approx(sigma, rel=1e-6)
    assert s["spectral_radius"] == pytest.approx(sigma, rel=1e-6)
    assert abs(s["min_real"]) < 1e-6 * sigma
    assert s["max_imag_over_real"] > 1e5  # rotation without contraction
    assert list(rec) == ["jacobian"]


def test_spectrum_scalars():
    lam = np.array([1 + 2j, 1 - 2j, -3, 0.5j, -0.5j, 0, complex("nan+nanj")])
    assert spectrum_scalars("jacobian", lam) == {
        "min_real": -3.0,
        "max_imag": 2.0,
        "max_imag_over_real": math.inf,
        "spectral_radius": 3.0,
    }
    assert spectrum_scalars("jacobian", lam[[0, 1, 2, 5]])["max_imag_over_real"] == 2.0
    assert math.isnan(spectrum_scalars("jacobian", np.zeros(2, complex))["max_imag_over_real"])
    assert all(math.isnan(v) for v in spectrum_scalars("jacobian", lam[-1:]).values())
    assert spectrum_scalars("hessian", np.array([3.0, -1.0, 2.0])) == {"max": 3.0, "min": -1.0}
    assert all(math.isnan(v) for v in spectrum_scalars("hessian", np.array([])).values())


def test_record_is_a_mapping_over_operators():
    game, G, D = small_gan()
    rec = quiet_probe(
        game, k=2, operators=("discriminator", "jacobian"), step=40, batch_index=2, seed=5
    )
    assert list(rec) == ["discriminator", "jacobian"] and len(rec) == 2
    assert rec.step == 40 and rec.batch_index == 2 and rec.seed == 5
    assert rec["jacobian"] is rec.operators["jacobian"]
    assert set(rec.losses) == {"generator", "discriminator"}
    assert 0 < rec.build_time < rec.wall_time
    with pytest.raises(KeyError, match="holds"):
        rec["generator"]
    assert "status='ok'" in repr(rec) and "jacobian" in repr(rec["jacobian"])


# ---------------------------------------------------------------------- budgets
def test_budget_cuts_every_solve_short_and_says_so():
    game, G, D = small_gan()
    with pytest.warns(ProbeWarning, match="budget"):
        rec = probe(game, k=3, max_matvecs=5)
    assert rec.status == "budget"
    for r in rec.values():
        assert r.status == "budget" and r.n_matvec <= 5 and "max_matvecs = 5" in r.message
        assert not r.converged.all()


def test_iteration_limit_is_unconverged():
    game, G, D = small_gan()
    with pytest.warns(ProbeWarning, match="unconverged"):
        rec = probe(game, k=2, operators=["jacobian"], which="SM", ncv=4, maxiter=1, tol=1e-12)
    assert rec.status == "unconverged" and rec["jacobian"].status == "unconverged"
    assert "converged" in rec["jacobian"].message


# ---------------------------------------------------------------------- failures
def failing_game(kind: str):
    game, G, D = small_gan()
    inner = game._losses

    def losses(batch):
        out = inner(batch)
        if kind == "raise":
            raise RuntimeError("data loader exploded")
        if kind == "nan-loss":
            out["discriminator"] = out["discriminator"] * float("nan")
        if kind == "nan-gradient":  # finite loss, NaN gradient: sqrt at 0
            w = G[0].weight
            out["generator"] = out["generator"] + torch.sqrt((w - w.detach()).pow(2).sum())
        return out

    return sd.Game({"generator": G, "discriminator": D}, losses), G, D


@pytest.mark.parametrize(
    "kind, status, text",
    [
        ("raise", "error", "data loader exploded"),
        ("nan-loss", "nonfinite", "discriminator"),
        ("nan-gradient", "nonfinite", "gradient of player 'generator'"),
    ],
)
def test_failures_are_recorded_with_a_warning(kind, status, text):
    game, G, D = failing_game(kind)
    before = snapshot([G, D])
    with pytest.warns(ProbeWarning, match=text) as caught:
        rec = probe(game, k=3, step=7)
    assert "step 7" in str(caught[0].message)
    assert caught[0].filename == __file__  # the warning names the caller's line
    assert_same(before, snapshot([G, D]))
    assert rec.status == status
    for r in rec.values():
        assert r.status == status and text in r.message
        assert len(r.eigenvalues) == 3 and np.isnan(r.eigenvalues).all()
        assert not r.converged.any() and all(math.isnan(v) for v in r.scalars.values())
    assert all(math.isnan(v) for v in rec.losses.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert probe(game, k=3, on_error="ignore").status == status


@pytest.mark.parametrize(
    "kind, error", [("raise", sd.LossClosureError), ("nan-loss", sd.NonFiniteError)]
)
def test_on_error_raise_reraises_after_restoring(kind, error):
    game, G, D = failing_game(kind)
    before = snapshot([G, D])
    with pytest.raises(error):
        probe(game, k=3, on_error="raise")
    assert_same(before, snapshot([G, D]))


def test_nonfinite_product_is_recorded():
    x = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    y = torch.tensor([0.5, -1.0], dtype=F64, requires_grad=True)

    def losses(batch):  # finite losses and gradients, Inf second derivatives at x = 1
        return {"x": (x - 1).abs().pow(1.5).sum() + x @ y, "y": -(x @ y) + y.pow(2).sum()}

    game = sd.Game({"x": [x], "y": [y]}, losses)
    with pytest.warns(ProbeWarning, match="nonfinite"):
        rec = probe(game, k=2, operators=["x"])
    assert rec["x"].status == "nonfinite" and "NaN or Inf" in rec["x"].message
    assert rec.losses["x"] == pytest.approx(-0.5)  # the losses were fine


def test_definition_errors_always_raise():
    game, G, D = small_gan()
    bad = sd.Game(
        {"generator": G, "discriminator": D}, lambda b: {"generator": game._losses(b)["generator"]}
    )
    with pytest.raises(sd.GameDefinitionError, match="no loss for player"):
        probe(bad, k=2, on_error="ignore")


# ---------------------------------------------------------------------- arguments
def test_operator_names_and_which_are_checked():
    game, G, D = small_gan()
    with pytest.raises(
        ValueError, match=r"unknown operator\(s\) \['critic'\].*'generator', 'discriminator'"
    ):
        probe(game, operators=["jacobian", "critic"])
    with pytest.raises(ValueError, match="not probed"):
        probe(game, operators=["jacobian"], which={"generator": "LA"})
    with pytest.raises(ValueError, match="which='LA' is not supported"):
        probe(game, which="LA")  # a Hessian's which given to the Jacobian
    with pytest.raises(ValueError, match="on_error"):
        probe(game, on_error="skip")
    with pytest.raises(ValueError, match="max_matvecs"):
        probe(game, max_matvecs=0)
    with pytest.raises(ValueError, match="ncv"):
        probe(game, k=5, ncv=6)
    with pytest.raises(ValueError, match="k must"):
        probe(game, k=0)
    with pytest.raises(ValueError, match="seed must"):
        probe(game, seed=-1)
    with pytest.raises(ValueError, match="operators is empty"):
        probe(game, operators=[])
    rec = quiet_probe(game, k=2, which={"generator": "sa", "jacobian": "LI"})
    assert [r.which for r in rec.values()] == ["LI", "SA", "BE"]


# ---------------------------------------------------------------------- wrapped models
@pytest.fixture
def process_group(tmp_path):
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    created = not dist.is_initialized()
    if created:
        store = dist.FileStore(os.fspath(tmp_path / "store"), 1)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    if created:
        dist.destroy_process_group()


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
@pytest.mark.parametrize("wrap", ["DataParallel", "DistributedDataParallel", "compile"])
def test_wrapped_models_are_probed_through_their_underlying_modules(wrap, request, monkeypatch):
    expected = quiet_probe(small_gan()[0], k=3)
    wrapper: Callable[[nn.Module], Any]
    if wrap == "DistributedDataParallel":
        request.getfixturevalue("process_group")
        wrapper = nn.parallel.DistributedDataParallel
    else:
        # torch.compile: the graph cannot be differentiated twice, so it must not run
        wrapper = nn.DataParallel if wrap == "DataParallel" else torch.compile
    game, G, D = small_gan(wrap=wrapper)
    Gw, Dw = game.wrappers
    assert game.modules == (G, D)
    calls: list[int] = []
    if wrap != "compile":  # the wrapper's own forward (collectives, scatter) never runs
        original = type(Gw).forward

        def counted_forward(self: nn.Module, *a: Any, **kw: Any) -> Any:
            calls.append(1)
            return original(self, *a, **kw)

        monkeypatch.setattr(type(Gw), "forward", counted_forward)
    before = snapshot([G, D])
    forwards = [w.__dict__.get("forward") for w in (Gw, Dw)]
    rec = quiet_probe(game, k=3)
    assert_same(before, snapshot([G, D]))
    assert calls == []
    assert [w.__dict__.get("forward") for w in (Gw, Dw)] == forwards
    for name in expected:
        assert np.array_equal(rec[name].eigenvalues, expected[name].eigenvalues), name
