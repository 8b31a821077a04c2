"""specdiag.toys.conv: the DCGAN toy, its synthetic images, its game and its training."""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch
from games import assert_same, snapshot
from torch.nn import functional as F

import specdiag as sd
from specdiag import toys
from specdiag.toys.conv import PALETTE


def hand_count(channels: int, latent: int, image_size: int, batchnorm: bool) -> dict[str, int]:
    """Parameters layer by layer, from the architecture table (kernels 4 x 4, RGB)."""
    stages = int(math.log2(image_size)) - 2
    norm = 2 if batchnorm else 1  # BatchNorm's scale and shift, or a bias
    n_g, width = 0, latent
    for k in range(stages):
        out = channels * 2 ** (stages - 1 - k)
        n_g += 16 * width * out + norm * out
        width = out
    n_g += 16 * width * 3 + 3
    n_d = 16 * 3 * channels + channels
    for k in range(1, stages):
        n_d += 16 * channels * 2 ** (k - 1) * channels * 2**k + norm * channels * 2**k
    n_d += 16 * channels * 2 ** (stages - 1) + 1
    return {"generator": n_g, "discriminator": n_d}


@pytest.mark.parametrize(
    "channels,latent,image_size,batchnorm",
    [(24, 64, 32, True), (24, 64, 32, False), (4, 8, 16, True), (3, 5, 8, True), (8, 16, 64, True)],
)
def test_parameter_counts(channels, latent, image_size, batchnorm):
    gan = toys.conv_gan(
        channels=channels, latent=latent, image_size=image_size, batchnorm=batchnorm
    )
    expected = hand_count(channels, latent, image_size, batchnorm)
    assert gan.n_parameters == expected
    assert sum(p.numel() for p in gan.discriminator.parameters()) == expected["discriminator"]
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in gan.generator.modules())
    assert has_bn == batchnorm


def test_default_size_is_documented():
    gan = toys.conv_gan()
    assert gan.n_parameters == {"generator": 191_955, "discriminator": 95_161}
    assert sum(gan.n_parameters.values()) == 287_116
    c, a = 24, 64
    assert 64 * a * c + 160 * c**2 + 62 * c + 3 == 191_955  # the closed forms in the Notes
    assert 160 * c**2 + 125 * c + 1 == 95_161
    doc = toys.conv_gan.__doc__ or ""
    assert "287,116" in doc and "191,955" in doc and "95,161" in doc
    for row in ["538,468", "2,608"]:
        assert row in doc
    assert sum(toys.conv_gan(channels=32, latent=100).n_parameters.values()) == 538_468
    assert sum(toys.conv_gan(channels=4, latent=8, image_size=16).n_parameters.values()) == 2_608


def test_shapes_dtype_and_repr():
    gan = toys.conv_gan(channels=4, latent=8, image_size=16, dtype=torch.float64)
    batch = gan.sample(5, torch.Generator().manual_seed(0))
    assert batch["real"].shape == (5, 3, 16, 16) and batch["z"].shape == (5, 8)
    assert batch["real"].dtype == batch["z"].dtype == torch.float64 == gan.dtype
    fake = gan.generator(batch["z"])
    assert fake.shape == (5, 3, 16, 16) and fake.abs().max() <= 1
    assert gan.discriminator(batch["real"]).shape == (5,)
    assert gan.device == torch.device("cpu") and gan.latent == 8 and gan.image_size == 16
    assert gan.game.player_names == ("generator", "discriminator") and gan.optimizers == {}
    assert "ConvGAN(loss='nonsaturating', image_size=16" in repr(gan)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="image_size"):
        toys.conv_gan(image_size=24)
    with pytest.raises(ValueError, match="image_size"):
        toys.conv_gan(image_size=4)
    with pytest.raises(ValueError, match="loss"):
        toys.conv_gan(loss="hinge")
    with pytest.raises(ValueError, match="channels"):
        toys.conv_gan(channels=0)


def test_construction_is_seeded_and_leaves_the_global_stream():
    state = torch.get_rng_state()
    a, b, c = toys.conv_gan(seed=1), toys.conv_gan(seed=1), toys.conv_gan(seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.game.parameters(), b.game.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.game.parameters(), c.game.parameters()))
    weights = [m.weight for m in a.discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(abs(float(w.detach().std()) - 0.02) < 0.004 for w in weights)  # DCGAN's N(0, 0.02^2)


# ---------------------------------------------------------------------- synthetic data
def test_synthetic_images_range_shape_and_seeding():
    rng = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    x = toys.synthetic_images(400, generator=rng(0))
    assert x.shape == (400, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert x.min() == -1 and x.max() > 0.99
    assert torch.equal(x, toys.synthetic_images(400, generator=rng(0)))
    assert not torch.equal(x, toys.synthetic_images(400, generator=rng(1)))
    small = toys.synthetic_images(3, 8, generator=rng(0), dtype=torch.float64)
    assert small.shape == (3, 3, 8, 8) and small.dtype == torch.float64
    torch.manual_seed(5)
    a = toys.synthetic_images(4)
    torch.manual_seed(5)
    assert torch.equal(a, toys.synthetic_images(4))


def test_synthetic_images_are_one_palette_colour_times_a_blob_or_stripes():
    x = toys.synthetic_images(400, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    unit = (x + 1) / 2  # documented: intensity * colour, intensity in [0, 1]
    palette = torch.tensor(PALETTE, dtype=torch.float64)
    colours, intensities = [], []
    for img in unit:
        fits = []
        for i, c in enumerate(palette):
            intensity = img[0] / c[0]
            if torch.allclose(img, intensity * c[:, None, None], rtol=0, atol=1e-12):
                fits.append((i, intensity))
        assert len(fits) == 1  # rank one, and exactly one palette colour
        colours.append(fits[0][0])
        intensities.append(fits[0][1])
    intensity = torch.stack(intensities)
    assert intensity.min() >= 0 and intensity.max() <= 1
    assert set(colours) == set(range(len(PALETTE)))
    # a blob lights about 4% of the pixels above half intensity, stripes half of them
    bright = (intensity > 0.5).double().mean(dim=(1, 2))
    blobs, stripes = int((bright < 0.1).sum()), int(((bright > 0.4) & (bright < 0.6)).sum())
    assert blobs + stripes == 400 and 140 < blobs < 260


# ---------------------------------------------------------------------- losses and game
@pytest.mark.parametrize("loss", ["nonsaturating", "minimax", "wgan"])
def test_losses_are_the_game_losses(loss):
    gan = toys.conv_gan(channels=4, latent=8, image_size=16, loss=loss)
    batch = gan.sample(16, torch.Generator().manual_seed(0))
    out = gan.losses(batch)
    with torch.no_grad():
        d_real = gan.discriminator(batch["real"])
        d_fake = gan.discriminator(gan.generator(batch["z"]))
    if loss == "wgan":
        l_d = d_fake.mean() - d_real.mean()
    else:
        l_d = -(F.logsigmoid(d_real).mean() + torch.log1p(-torch.sigmoid(d_fake)).mean())
    l_g = F.softplus(-d_fake).mean() if loss == "nonsaturating" else -l_d
    torch.testing.assert_close(out["discriminator"].detach(), l_d, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["generator"].detach(), l_g, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(
        out["discriminator"], list(gan.generator.parameters()), allow_unused=True
    )
    assert any(g is not None and g.abs().sum() > 0 for g in grads)  # nothing detached


def set_flat(game: sd.Game, x: torch.Tensor) -> None:
    with torch.no_grad():
        for p, piece in zip(game.parameters(), game.layout.split(x)):
            p.copy_(piece)


def flat(game: sd.Game) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in game.parameters()])


@pytest.mark.parametrize(
    "loss,batchnorm", [("nonsaturating", True), ("wgan", True), ("minimax", False)]
)
def test_jacobian_products_match_central_differences_of_the_field(loss, batchnorm):
    """J u against (v(x + h u) - v(x - h u)) / 2h, with BatchNorm in train mode.

    A young generator's samples are nearly constant images, so the discriminator's
    first-layer pre-activations on them cluster within ~1e-6 of the LeakyReLU kink (and
    its BatchNorm sees a batch variance below eps on them): a step h = 1e-5 along a
    unit-variance u crosses kinks and the difference quotient is off by O(1). At
    h = 1e-7 (rounding error ~ 1e-16 |v| / h ~ 1e-9 relative) it agrees to ~1e-10.
    """
    gan = toys.conv_gan(
        channels=3, latent=4, image_size=16, batchnorm=batchnorm, loss=loss, dtype=torch.float64
    )
    gan.train(3, lr=1e-2, batch_size=8, seed=1)  # away from the initialisation
    game = gan.game
    batch = gan.sample(6, torch.Generator().manual_seed(2))
    J = sd.GameJacobian(game, batch)
    x0, h = flat(game), 1e-7
    rng = torch.Generator().manual_seed(3)
    us = [torch.randn(game.n, generator=rng, dtype=torch.float64) for _ in range(3)]
    ws = [torch.randn(game.n, generator=rng, dtype=torch.float64) for _ in range(3)]
    products = [(J.matvec(u), J.rmatvec(w)) for u, w in zip(us, ws)]
    torch.testing.assert_close(J.field.value, game.vector_field(batch), rtol=0, atol=1e-13)
    del J  # its graph saved the parameters: perturbing them in place invalidates it
    for u, w, (ju, jtw) in zip(us, ws, products):
        set_flat(game, x0 + h * u)
        plus = game.vector_field(batch)
        set_flat(game, x0 - h * u)
        minus = game.vector_field(batch)
        set_flat(game, x0)
        fd = (plus - minus) / (2 * h)
        assert ju.norm() > 1e-3
        assert (ju - fd).norm() <= 1e-6 * ju.norm(), float((ju - fd).norm() / ju.norm())
        # the transposed product is the adjoint of J: <w, J u> = <J^T w, u>
        assert abs(float(w @ ju - jtw @ u)) <= 1e-10 * float(w.norm() * ju.norm())


def test_sgd_step_is_x_minus_lr_v_with_batchnorm():
    gan = toys.conv_gan(channels=3, latent=4, image_size=16, dtype=torch.float64, seed=4)
    batch = gan.sample(8, torch.Generator().manual_seed(6))
    v, x0, lr = gan.game.vector_field(batch), flat(gan.game), 0.05
    gan.train(1, lr=lr, batch_size=8, optimizer="sgd", seed=6)
    torch.testing.assert_close(flat(gan.game), x0 - lr * v, rtol=0, atol=1e-13)


def test_eigs_converges_on_the_default_configuration():
    gan = toys.conv_gan()
    batch = gan.sample(32, torch.Generator().manual_seed(0))
    J = sd.GameJacobian(gan.game, batch)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = sd.eigs(J, k=4, tol=1e-3)
    seconds = time.perf_counter() - start
    print(f"eigs(J, k=4, tol=1e-3), n={J.shape[0]}: {r.n_matvec} products, {seconds:.2f} s")
    assert r.all_converged and r.transposed
    # Independent check: left eigenvectors of J, residuals recomputed here.
    rv = sd.eigs(J.T, k=4, tol=1e-3, return_eigenvectors=True)
    assert rv.eigenvectors is not None
    scale = float(r.eigenvalues.abs().max())
    assert (r.eigenvalues - rv.eigenvalues).abs().max() <= 1e-3 * scale
    for lam, x in zip(rv.eigenvalues, rv.eigenvectors.T):
        jt_x = torch.complex(J.rmatvec(x.real.contiguous()), J.rmatvec(x.imag.contiguous()))
        residual = (jt_x.to(torch.complex128) - lam * x.to(torch.complex128)).norm()
        assert float(residual) <= 2e-3 * max(abs(complex(lam)), 1e-3 * scale)


def test_probe_leaves_batchnorm_statistics_and_parameters_unchanged():
    gan = toys.conv_gan(channels=6, latent=8, image_size=16)
    gan.train(3, lr=1e-3, batch_size=16, seed=0)  # running statistics away from 0 and 1
    bn = [m for m in gan.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn
    for m in bn:
        assert m.num_batches_tracked is not None and m.running_mean is not None
        assert int(m.num_batches_tracked) == 3 and m.running_mean.abs().max() > 0
    batch = gan.sample(16, torch.Generator().manual_seed(1))
    before = snapshot([gan.generator, gan.discriminator])
    rec = sd.probe(gan.game, batch, k=4)
    assert rec.status == "ok", rec.message
    assert set(rec) == {"jacobian", "generator", "discriminator"}
    assert_same(before, snapshot([gan.generator, gan.discriminator]))


def test_training_is_finite_and_reproducible():
    def run(seed: int) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        gan = toys.conv_gan(seed=7)
        history = gan.train(20, batch_size=16, seed=seed)
        assert all(p.grad is None for p in gan.game.parameters())
        modules = (gan.generator, gan.discriminator)
        return history, [t.detach().clone() for m in modules for t in m.state_dict().values()]

    rng_state = torch.get_rng_state()
    (h1, s1), (h2, s2), (_, s3) = run(0), run(0), run(1)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert all(torch.isfinite(h).all() and h.shape == (20,) for h in h1.values())
    assert all(torch.equal(h1[k], h2[k]) for k in h1)
    assert all(torch.equal(a, b) for a, b in zip(s1, s2))
    assert not all(torch.equal(a, b) for a, b in zip(s1, s3))
    start = toys.conv_gan(seed=7)
    initial = [t for m in (start.generator, start.discriminator) for t in m.state_dict().values()]
    assert all(not torch.equal(a, b) for a, b in zip(s1, initial) if a.is_floating_point())
    # the non-saturating losses of a GAN that learns: L_D starts near 2 log 2
    assert abs(float(h1["discriminator"][0]) - 2 * math.log(2)) < 0.2
