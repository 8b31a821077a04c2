"""The path-angle (Berard et al., 2020) against closed forms on linear fields.

Ground truth: for a linear field v(θ) = J(θ − θ*) the path θ(α) = αθ₂ + (1 − α)θ₁ gives
θ(α) − θ* = e + (1 − α)d with e = θ₂ − θ*, d = θ₁ − θ₂, so
⟨v, d⟩ = ⟨Je, d⟩ + (1 − α)dᵀJd and ‖v‖² = ‖Je + (1 − α)Jd‖², in closed form.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch
from games import assert_same, mlp, snapshot
from torch.nn import functional as F

import specdiag as sd
from specdiag import toys
from specdiag.dynamics.path_angle import PathAngle, path_angle

F64 = torch.float64


def quadratic_game(seed: int = 0, noisy: bool = False) -> tuple[sd.Game, list[torch.Tensor], Any]:
    """Two players (3 and 2 parameters) both minimising f(z) = ½(z − m)ᵀQ(z − m), Q ≻ 0.

    With ``noisy`` the minimum m is drawn inside the losses closure (global stream).
    """
    gen = torch.Generator().manual_seed(seed)
    B = torch.randn(5, 5, generator=gen, dtype=F64)
    Q = B @ B.T + 0.5 * torch.eye(5, dtype=F64)
    m = torch.randn(5, generator=gen, dtype=F64)
    x = torch.randn(3, generator=gen, dtype=F64).requires_grad_()
    y = torch.randn(2, generator=gen, dtype=F64).requires_grad_()

    def losses(_batch: object) -> dict[str, torch.Tensor]:
        centre = torch.randn(5, dtype=F64) if noisy else m
        r = torch.cat([x, y]) - centre
        f = 0.5 * r @ Q @ r
        return {"x": f, "y": f}

    return sd.Game({"x": [x], "y": [y]}, losses), [x, y], (Q, m)


def state(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.detach().clone() for t in tensors]


# ------------------------------------------------------------------ (a) a minimum
def test_quadratic_minimum_switches_from_positive_to_negative_at_one():
    game, (x, y), (Q, m) = quadratic_game()
    start = {"x": state(x), "y": state(y)}
    end = {"x": [m[:3].clone()], "y": [m[3:].clone()]}
    pa = path_angle(game, start, end)
    assert isinstance(pa, PathAngle) and pa.n_evaluations == 100 == len(pa.alpha)
    assert pa.alpha[0] == pytest.approx(-0.1) and pa.alpha[-1] == pytest.approx(1.1)
    before, after = pa.alpha < 1, pa.alpha > 1
    assert np.all(pa.cosine[before] > 0) and np.all(pa.cosine[after] < 0)
    d = torch.cat([x.detach(), y.detach()]) - m
    Qd = Q @ d
    c0 = float(d @ Qd / (Qd.norm() * d.norm()))
    np.testing.assert_allclose(pa.cosine, np.sign(1 - pa.alpha) * c0, rtol=1e-12)
    np.testing.assert_allclose(pa.norm2, (1 - pa.alpha) ** 2 * float(Qd @ Qd), rtol=1e-10)
    # a jump: the crossing is interpolated between the two grid points around α = 1
    (crossing,) = pa.sign_changes()
    assert pa.alpha[before].max() < crossing < pa.alpha[after].min()


def test_same_seed_everywhere_makes_the_noise_the_same_along_the_path():
    game, (x, y), (Q, _) = quadratic_game(noisy=True)
    centre = torch.randn(5, generator=torch.Generator().manual_seed(7), dtype=F64)
    pa = path_angle(
        game, {"x": state(x), "y": state(y)}, {"x": [centre[:3]], "y": [centre[3:]]}, seed=7
    )
    d = torch.cat([x.detach(), y.detach()]) - centre
    c0 = float(d @ Q @ d / ((Q @ d).norm() * d.norm()))
    np.testing.assert_allclose(pa.cosine, np.sign(1 - pa.alpha) * c0, rtol=1e-12)


# ------------------------------------------------------------------ (b) a pure rotation
def test_bilinear_game_is_orthogonal_to_the_path_into_its_equilibrium():
    toy = toys.bilinear_game(n=4, m=3, seed=1)
    x1, y1 = toy.x.detach().clone(), toy.y.detach().clone()
    pa = path_angle(
        toy.game, {"x": [x1], "y": [y1]}, {"x": [torch.zeros(4, dtype=F64)], "y": [torch.zeros(3)]}
    )
    away = np.abs(pa.alpha - 1) > 0.02
    assert np.abs(pa.cosine[away]).max() <= 1e-13
    A = toy.A
    Ay, ATx = A @ y1, A.T @ x1
    np.testing.assert_allclose(
        pa.norm2, (1 - pa.alpha) ** 2 * float(Ay @ Ay + ATx @ ATx), rtol=1e-10
    )
    # per player the field is not orthogonal: v_x = (1 − α)Ay₁, v_y = −(1 − α)Aᵀx₁
    xAy, s = float(x1 @ A @ y1), np.sign(1 - pa.alpha)
    cx, nx = pa.players["x"]
    cy, ny = pa.players["y"]
    np.testing.assert_allclose(cx, s * xAy / float(Ay.norm() * x1.norm()), rtol=1e-12)
    np.testing.assert_allclose(cy, -s * xAy / float(ATx.norm() * y1.norm()), rtol=1e-12)
    np.testing.assert_allclose(nx + ny, pa.norm2, rtol=1e-13)


# ------------------------------------------------------------------ (c) J = [[a, −b], [b, a]]
def rotation_game(a: float, b: float, point: tuple[float, float]) -> tuple[sd.Game, list]:
    """v = Jθ with J = [[a, −b], [b, a]]: L_x = a x²/2 − b x y, L_y = a y²/2 + b x y."""
    x = torch.tensor(point[0], dtype=F64, requires_grad=True)
    y = torch.tensor(point[1], dtype=F64, requires_grad=True)

    def losses(_batch: object) -> dict[str, torch.Tensor]:
        return {"x": a * x**2 / 2 - b * x * y, "y": a * y**2 / 2 + b * x * y}

    return sd.Game({"x": [x], "y": [y]}, losses), [x, y]


def as_state(theta: np.ndarray) -> dict[str, list[torch.Tensor]]:
    return {"x": [torch.tensor(theta[0], dtype=F64)], "y": [torch.tensor(theta[1], dtype=F64)]}


@pytest.mark.parametrize("a,b", [(0.3, 1.0), (-0.5, 2.0), (1.0, 0.0), (0.0, 1.5)])
def test_linear_game_into_its_equilibrium(a, b):
    theta1 = np.array([0.8, -1.3])
    game, _ = rotation_game(a, b, (0.2, 0.4))
    pa = path_angle(game, as_state(theta1), as_state(np.zeros(2)))
    # θ(α) = (1 − α)θ₁, d = θ₁: c = sign(1 − α)⟨Jθ₁, θ₁⟩/(‖Jθ₁‖‖θ₁‖) = sign(1 − α) a/√(a² + b²)
    s = np.sign(1 - pa.alpha)
    np.testing.assert_allclose(pa.cosine, s * a / math.hypot(a, b), rtol=1e-12, atol=1e-15)
    norm2 = (a * a + b * b) * (1 - pa.alpha) ** 2 * float(theta1 @ theta1)
    np.testing.assert_allclose(pa.norm2, norm2, rtol=1e-12)
    x1, y1 = theta1
    cx, _ = pa.players["x"]
    np.testing.assert_allclose(cx, s * np.sign(x1 * (a * x1 - b * y1)), rtol=1e-12)


def linear_closed_form(a: float, b: float, theta1: np.ndarray, theta2: np.ndarray, alpha):
    r"""c(α) and ‖v‖² for v = Jθ, J = [[a, −b], [b, a]] = aI + bR (R: rotation by 90°).

    θ(α) = θ₁ − αd; ⟨Jθ, d⟩ = a⟨θ, d⟩ + b·(θ × d) with θ × d = θ_x d_y − θ_y d_x, and
    θ(α) × d = θ₁ × d; ‖Jθ‖ = √(a² + b²)‖θ‖.
    """
    d = theta1 - theta2
    theta = theta1[None, :] - alpha[:, None] * d[None, :]
    cross = theta1[0] * d[1] - theta1[1] * d[0]
    r = math.hypot(a, b)
    norms = np.linalg.norm(theta, axis=1)
    cosine = (a * theta @ d + b * cross) / (r * norms * np.linalg.norm(d))
    return cosine, (r * norms) ** 2


def test_linear_game_with_end_off_the_equilibrium():
    a, b = 0.5, 1.0
    theta1, theta2 = np.array([1.0, -0.5]), np.array([0.1, 0.2])
    game, _ = rotation_game(a, b, (0.0, 0.0))
    pa = path_angle(game, as_state(theta1), as_state(theta2))
    cosine, norm2 = linear_closed_form(a, b, theta1, theta2, pa.alpha)
    np.testing.assert_allclose(pa.cosine, cosine, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pa.norm2, norm2, rtol=1e-12)
    # the one zero of the numerator: α₀ = 1 + ⟨Jθ₂, d⟩/(a‖d‖²) = 0.5769...
    d = theta1 - theta2
    J = np.array([[a, -b], [b, a]])
    alpha0 = 1 + (J @ theta2) @ d / (a * d @ d)
    assert 0.5 < alpha0 < 0.6
    np.testing.assert_allclose(pa.sign_changes(), [alpha0], atol=2e-4)
    assert norm2.min() > 0.01  # ‖v‖² does not vanish: the end is not stationary


def test_pure_rotation_off_the_equilibrium_has_a_bump_of_one_sign():
    theta1, theta2 = np.array([1.0, -0.5]), np.array([0.05, 0.02])
    game, _ = rotation_game(0.0, 1.0, (0.0, 0.0))
    pa = path_angle(game, as_state(theta1), as_state(theta2), alphas=np.linspace(-0.1, 1.1, 241))
    cosine, norm2 = linear_closed_form(0.0, 1.0, theta1, theta2, pa.alpha)
    np.testing.assert_allclose(pa.cosine, cosine, rtol=1e-12)
    # ⟨v, d⟩ = ⟨Jθ₂, d⟩ on the whole line (dᵀJd = 0): one sign, largest where ‖v‖ is least
    assert pa.sign_changes().size == 0 and len(set(np.sign(pa.cosine))) == 1
    peak = pa.alpha[np.argmax(np.abs(pa.cosine))]
    assert abs(peak - 1) < 0.05 and np.abs(pa.cosine).max() > 10 * abs(pa.cosine[0])
    assert pa.norm2.min() > 0 and abs(pa.alpha[np.argmin(pa.norm2)] - 1) < 0.05


# ------------------------------------------------------------------ modules, buffers, isolation
def bn_gan(seed: int = 0) -> tuple[sd.Game, dict[str, torch.nn.Sequential], Any]:
    """A small GAN whose generator has BatchNorm (running statistics in eval mode)."""
    torch.manual_seed(seed)
    G = mlp([3, 6, 2], batchnorm=True).to(F64)
    D = mlp([2, 5, 1]).to(F64)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(16, 3, generator=gen, dtype=F64)
    real = torch.randn(16, 2, generator=gen, dtype=F64) + 1

    def losses_of(G: torch.nn.Module, D: torch.nn.Module):
        def losses(_batch: object) -> dict[str, torch.Tensor]:
            d_fake, d_real = D(G(z)), D(real)
            l_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            return {"generator": F.softplus(-d_fake).mean(), "discriminator": l_d}

        return losses

    modules: dict[str, torch.nn.Sequential] = {"generator": G, "discriminator": D}
    return sd.Game(modules, losses_of(G, D)), modules, losses_of


def perturbed(module: torch.nn.Module, scale: float, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for k, t in module.state_dict().items():
        if t.is_floating_point():
            noise = torch.randn(t.shape, generator=gen, dtype=t.dtype)
            t = (t + scale * noise).abs() if "running_var" in k else t + scale * noise
        else:
            t = t + 5
        out[k] = t.clone()
    return out


def test_state_dicts_interpolate_parameters_and_buffers_and_leave_models_untouched():
    game, mods, losses_of = bn_gan()
    G, D = mods["generator"], mods["discriminator"]
    G.eval()  # BatchNorm reads its running statistics: the buffers are part of the path
    for q in D.parameters():
        q.grad = torch.ones_like(q)
    start = {p: perturbed(m, 0.3, 1) for p, m in mods.items()}
    end = {p: perturbed(m, 0.3, 2) for p, m in mods.items()}
    before = snapshot([G, D])
    alphas = [-0.1, 0.0, 0.37, 1.0, 1.1]
    pa = path_angle(game, start, end, alphas=alphas)
    assert_same(before, snapshot([G, D]))
    assert all(q.grad is None for q in G.parameters())
    assert all(q.grad is not None and bool(q.grad.eq(1).all()) for q in D.parameters())
    assert not G.training and D.training
    # reference: load θ(α) (integer buffers from end) into copies of the models
    d = torch.cat(
        [(start[p][k] - end[p][k]).reshape(-1) for p in mods for k, _ in mods[p].named_parameters()]
    )
    for i, a in enumerate(alphas):
        copies = {p: copy.deepcopy(m) for p, m in mods.items()}
        for p, m in copies.items():
            m.load_state_dict(
                {
                    k: a * end[p][k] + (1 - a) * start[p][k] if t.is_floating_point() else end[p][k]
                    for k, t in start[p].items()
                }
            )
        ref = sd.Game(copies, losses_of(copies["generator"], copies["discriminator"]))
        v = ref.vector_field(None, seed=0)
        assert pa.norm2[i] == pytest.approx(float(v @ v), rel=1e-12)
        assert pa.cosine[i] == pytest.approx(float(v @ d / (v.norm() * d.norm())), rel=1e-10)
    total = sum(n2 for _, n2 in pa.players.values())
    np.testing.assert_allclose(total, pa.norm2, rtol=1e-12)


def test_models_are_restored_when_the_closure_raises():
    _, mods, losses_of = bn_gan()
    G, D = mods["generator"], mods["discriminator"]
    plain = losses_of(G, D)

    def losses(batch: object) -> dict[str, torch.Tensor]:
        if float(G.get_parameter("0.weight").detach().abs().max()) > 50:
            raise RuntimeError("diverged")
        return plain(batch)

    game = sd.Game(mods, losses)
    start = {p: perturbed(m, 0.1, 1) for p, m in mods.items()}
    end = {p: perturbed(m, 0.1, 2) for p, m in mods.items()}
    end["generator"]["0.weight"][0, 0] = 100.0  # the closure raises from α ≈ 0.5 on
    before = snapshot(list(mods.values()))
    with pytest.raises(sd.LossClosureError, match="diverged"):
        path_angle(game, start, end, alphas=[0.0, 0.25, 1.0])
    assert_same(before, snapshot(list(mods.values())))
    assert G.training


def test_state_dicts_of_tied_and_reordered_parameters_give_the_sequence_result():
    torch.manual_seed(0)
    tied = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh())
    tied.add_module("again", tied[0])  # one Parameter under two state-dict keys
    G = torch.nn.Linear(2, 3).to(F64)
    tied.to(F64)
    x = torch.ones(4, 2, dtype=F64)

    def losses(_batch: object) -> dict[str, torch.Tensor]:
        h = tied(x)
        out = G(h)
        return {"t": (out**2).mean() + (h**4).mean(), "g": (out - 1).pow(2).mean() + out.mean()}

    # player "g" lists the module's tensors in reverse order; its module comes via modules
    game = sd.Game({"t": tied, "g": [G.bias, G.weight]}, losses, modules=[G])
    assert len(tied.state_dict()) == 4 and game.sizes["t"] == 6
    start = {"t": perturbed(tied, 0.2, 1), "g": perturbed(G, 0.2, 2)}
    end = {"t": perturbed(tied, 0.2, 3), "g": perturbed(G, 0.2, 4)}
    as_sequences = {
        "t": lambda sd_: [sd_["0.weight"], sd_["0.bias"]],
        "g": lambda sd_: [sd_["bias"], sd_["weight"]],
    }
    seq_start = {p: as_sequences[p](start[p]) for p in start}
    seq_end = {p: as_sequences[p](end[p]) for p in end}
    a = path_angle(game, start, end, alphas=[0.0, 0.5, 1.2])
    b = path_angle(game, seq_start, seq_end, alphas=[0.0, 0.5, 1.2])
    np.testing.assert_array_equal(a.cosine, b.cosine)
    np.testing.assert_array_equal(a.norm2, b.norm2)
    for p in ("t", "g"):
        np.testing.assert_array_equal(a.players[p][0], b.players[p][0])


# ------------------------------------------------------------------ errors
def test_bad_input_errors():
    game, (x, y), _ = quadratic_game()
    good = {"x": state(x), "y": state(y)}
    other = {"x": [x.detach() + 1], "y": [y.detach() - 1]}
    with pytest.raises(ValueError, match="no state for player 'y'"):
        path_angle(game, {"x": state(x)}, other)
    with pytest.raises(ValueError, match="unknown player"):
        path_angle(game, {**good, "z": [x]}, other)
    with pytest.raises(ValueError, match=r"shape \(4,\); expected \(3,\)"):
        path_angle(game, good, {**other, "x": [torch.zeros(4, dtype=F64)]})
    with pytest.raises(ValueError, match="NaN or Inf"):
        path_angle(game, good, {**other, "y": [torch.tensor([1.0, math.nan], dtype=F64)]})
    with pytest.raises(ValueError, match="has 2 tensors"):
        path_angle(game, good, {**other, "x": [x.detach(), x.detach()]})
    with pytest.raises(ValueError, match="same point"):
        path_angle(game, good, good)
    with pytest.raises(ValueError, match="alphas"):
        path_angle(game, good, other, alphas=[])
    with pytest.raises(TypeError, match="no module"):
        path_angle(game, {**good, "x": {"w": x}}, {**other, "x": {"w": x}})
    with pytest.raises(TypeError, match="mapping"):
        path_angle(game, [x, y], other)  # type: ignore[arg-type]
    gan, mods, _ = bn_gan()
    sd_g = mods["generator"].state_dict()
    bad = {k: v for k, v in sd_g.items() if "running_mean" not in k}
    full = {p: m.state_dict() for p, m in mods.items()}
    with pytest.raises(ValueError, match="missing keys"):
        path_angle(gan, full, {**full, "generator": bad})
