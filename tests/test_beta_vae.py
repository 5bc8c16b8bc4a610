"""β-VAE and controlled-capacity losses, the conv VAE for sprites, latent traversals."""

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from course_utils.beta_vae import (
    BetaLoss,
    CapacityLoss,
    ConvDecoder,
    ConvEncoder,
    ConvVAE,
    beta_vae_loss,
    capacity_loss,
    capacity_schedule,
    latent_traversal,
)
from course_utils.sprites import make_sprites
from course_utils.train import fit
from course_utils.vae import negative_elbo


def _inputs(batch=6, x_dim=20, z_dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.rand(batch, x_dim, generator=g, dtype=torch.float64), generator=g)
    logits = 3 * torch.randn(batch, x_dim, generator=g, dtype=torch.float64)
    mu = torch.randn(batch, z_dim, generator=g, dtype=torch.float64)
    logvar = torch.randn(batch, z_dim, generator=g, dtype=torch.float64)
    return x, logits, mu, logvar


def _distributions(x, logits, mu, logvar):
    """rec and kl per image from torch.distributions: (B,), (B,)."""
    rec = -Bernoulli(logits=logits).log_prob(x).sum(-1)
    q = Normal(mu, (0.5 * logvar).exp())
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    return rec, kl


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 4.0, 8.0])
def test_beta_vae_loss_matches_torch_distributions(beta):
    args = _inputs()
    rec, kl = _distributions(*args)
    out = beta_vae_loss(*args, beta=beta)
    assert set(out) == {"loss", "rec", "kl"}
    torch.testing.assert_close(out["rec"], rec.mean())
    torch.testing.assert_close(out["kl"], kl.mean())
    torch.testing.assert_close(out["loss"], (rec + beta * kl).mean())


def test_beta_zero_is_the_autoencoder_loss_and_beta_one_the_vae():
    args = _inputs(seed=1)
    rec, _ = _distributions(*args)
    torch.testing.assert_close(beta_vae_loss(*args, beta=0.0)["loss"], rec.mean())
    for key, value in negative_elbo(*args).items():
        torch.testing.assert_close(beta_vae_loss(*args, beta=1.0)[key], value)


def test_beta_vae_loss_gradient_of_beta_is_the_kl():
    args = _inputs(seed=2)
    beta = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    x, logits, mu, logvar = args
    out = beta_vae_loss(x, logits, mu, logvar, beta=3.0)
    # the loss is linear in beta with slope kl
    slope = beta_vae_loss(*args, beta=4.0)["loss"] - out["loss"]
    torch.testing.assert_close(slope, out["kl"])
    assert beta.requires_grad


def test_capacity_loss_is_the_reconstruction_at_kl_equal_capacity():
    args = _inputs(seed=3)
    rec, kl = _distributions(*args)
    out = capacity_loss(*args, gamma=1000.0, capacity=float(kl.mean()))
    torch.testing.assert_close(out["loss"], rec.mean())
    torch.testing.assert_close(out["loss"] - out["rec"], torch.zeros((), dtype=torch.float64))


def test_capacity_loss_penalises_both_sides_linearly():
    args = _inputs(seed=4)
    rec, kl = (v.mean() for v in _distributions(*args))
    for delta in (-3.0, 2.5):
        out = capacity_loss(*args, gamma=10.0, capacity=float(kl) + delta)
        torch.testing.assert_close(out["loss"], rec + 10.0 * abs(delta))
        torch.testing.assert_close(out["kl"], kl)
    # with C = 0 and gamma = beta, it is the beta-VAE loss
    torch.testing.assert_close(capacity_loss(*args, gamma=4.0, capacity=0.0)["loss"],
                               beta_vae_loss(*args, beta=4.0)["loss"])


def test_capacity_loss_gradient_pushes_kl_towards_c():
    x, logits, mu, logvar = _inputs(seed=5)
    mu.requires_grad_(True)
    kl = float(_distributions(x, logits, mu, logvar)[1].mean().detach())
    for capacity, sign in ((kl + 5.0, -1.0), (0.5 * kl, 1.0)):
        mu.grad = None
        capacity_loss(x, logits, mu, logvar, gamma=1.0, capacity=capacity)["loss"].backward()
        expected = sign * mu.detach() / len(mu)  # d|kl - C|/dmu = sign(kl - C) dkl/dmu
        torch.testing.assert_close(mu.grad, expected)


def test_capacity_schedule():
    assert capacity_schedule(0, 100, 25.0) == 0.0
    assert capacity_schedule(50, 100, 25.0) == pytest.approx(12.5)
    assert capacity_schedule(100, 100, 25.0) == 25.0
    assert capacity_schedule(1000, 100, 25.0) == 25.0
    assert capacity_schedule(3, 0, 5.0) == 5.0
    values = [capacity_schedule(s, 10, 1.0) for s in range(15)]
    assert values == sorted(values)


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda: beta_vae_loss(*_inputs(), beta=-1.0), ValueError, "beta"),
        (lambda: beta_vae_loss(*_inputs(), beta=float("nan")), ValueError, "beta"),
        (lambda: beta_vae_loss(*_inputs(), beta="4"), TypeError, "beta"),
        (lambda: beta_vae_loss(*_inputs()[:3], torch.zeros(6, 3)), ValueError, "mu and logvar"),
        (lambda: beta_vae_loss(torch.zeros(6, 5), *_inputs()[1:]), ValueError, "x and x_logits"),
        (lambda: beta_vae_loss(_inputs()[0].numpy(), *_inputs()[1:]), TypeError, "x must be"),
        (lambda: beta_vae_loss(2 + _inputs()[0], *_inputs()[1:]), ValueError, r"\[0, 1\]"),
        (lambda: capacity_loss(*_inputs(), gamma=-1.0, capacity=1.0), ValueError, "gamma"),
        (lambda: capacity_loss(*_inputs(), gamma=1.0, capacity=-1.0), ValueError, "capacity"),
        (lambda: capacity_schedule(-1, 10, 1.0), ValueError, "step"),
        (lambda: capacity_schedule(1, 10.5, 1.0), ValueError, "num_steps"),
        (lambda: capacity_schedule(1, 10, float("inf")), ValueError, "c_max"),
        (lambda: CapacityLoss(c_max=-1.0, num_steps=10), ValueError, "c_max"),
    ],
)
def test_loss_validation(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize("size", [32, 64])
def test_conv_networks_shapes(size):
    torch.manual_seed(0)
    x = torch.rand(3, size * size)
    encoder, decoder = ConvEncoder(5, size), ConvDecoder(5, size)
    mu, logvar = encoder(x)
    assert mu.shape == logvar.shape == (3, 5)
    assert decoder(mu).shape == (3, size * size)
    assert decoder(torch.randn(4, 3, 5)).shape == (4, 3, size * size)  # leading sample dims


def test_conv_vae_works_with_the_vae_api():
    torch.manual_seed(0)
    model = ConvVAE(z_dim=4, image_size=32, channels=(8, 8, 16), hidden_dim=32)
    x, _, _ = make_sprites(5, seed=1)
    x_logits, mu, logvar = model(x)
    assert x_logits.shape == (5, 1024) and mu.shape == (5, 4)
    out = model.loss(x, beta=4.0)
    torch.manual_seed(1)
    again = model.loss(x, beta=4.0)
    assert set(out) == {"loss", "rec", "kl"} and out["loss"] > 0
    out["loss"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.log_weights(x, 3).shape == (3, 5)
    samples = model.sample(7)
    assert samples.shape == (7, 1024) and 0 <= samples.min() and samples.max() <= 1
    assert model.image_shape == (32, 32) and model.x_dim == 1024 and model.z_dim == 4
    assert again["kl"].item() == pytest.approx(out["kl"].item())  # the KL uses no noise


def test_conv_vae_trains_with_fit_and_capacity_loss():
    torch.manual_seed(0)
    x, _, _ = make_sprites(256, seed=2)
    model = ConvVAE(z_dim=4, channels=(8, 8, 16), hidden_dim=32)
    before = model.loss(x)["rec"].item()
    capacity = CapacityLoss(c_max=10.0, num_steps=16, gamma=5.0)
    history = fit(model, x, x_valid=x[:64], num_epochs=2, batch_size=32, lr=3e-3,
                  loss_fn=capacity, progress=False, seed=0)
    assert capacity.step == 16  # 8 batches per epoch; validation does not advance C
    assert capacity.capacity == 10.0
    assert history.train["C"][0] < history.train["C"][1]
    assert history.train["rec"][-1] < before


def test_capacity_loss_fn_steps_only_in_training():
    model = ConvVAE(z_dim=2, channels=(4,), hidden_dim=8)
    x, _, _ = make_sprites(4)
    capacity = CapacityLoss(c_max=1.0, num_steps=4, gamma=1.0)
    out = capacity(model, x)
    assert capacity.step == 1 and out["C"].item() == 0.0
    model.eval()
    capacity(model, x)
    assert capacity.step == 1
    model.train()
    with torch.no_grad():
        capacity(model, x)
    assert capacity.step == 1


def test_beta_loss_fn_warms_beta_up_linearly():
    torch.manual_seed(0)
    model = ConvVAE(z_dim=2, channels=(4,), hidden_dim=8)
    x, _, _ = make_sprites(4)
    plain = BetaLoss(4.0)
    torch.manual_seed(1)
    out = plain(model, x)
    torch.manual_seed(1)
    expected = model.loss(x, beta=4.0)
    torch.testing.assert_close(out["loss"], expected["loss"])
    warm = BetaLoss(8.0, warmup_steps=4)
    betas = [warm(model, x)["beta"].item() for _ in range(6)]
    assert betas == [0.0, 2.0, 4.0, 6.0, 8.0, 8.0]
    model.eval()
    warm(model, x)
    assert warm.step == 6 and warm.beta == 8.0
    with pytest.raises(ValueError, match="warmup_steps"):
        BetaLoss(1.0, warmup_steps=-1)
    with pytest.raises(ValueError, match="beta"):
        BetaLoss(-1.0)


def test_conv_validation():
    with pytest.raises(ValueError, match="image_size"):
        ConvVAE(image_size=28)
    with pytest.raises(ValueError, match="channels"):
        ConvEncoder(channels=(8, 0))
    with pytest.raises(ValueError, match="channels"):
        ConvDecoder(channels=())


# --------------------------------------------------------------------------- traversals


def test_latent_traversal_changes_one_dimension_per_row():
    torch.manual_seed(0)
    model = ConvVAE(z_dim=3, channels=(4,), hidden_dim=8)
    z = torch.tensor([0.5, -1.0, 2.0])
    values = torch.linspace(-2, 2, 5)
    images = latent_traversal(model, z, values, dims=[2, 0])
    assert images.shape == (2, 5, 1024)
    assert 0 <= images.min() and images.max() <= 1
    codes = z.repeat(5, 1)
    codes[:, 2] = values
    with torch.no_grad():
        torch.testing.assert_close(images[0], torch.sigmoid(model.decode(codes)))
    assert latent_traversal(model, z, values).shape == (3, 5, 1024)
    with pytest.raises(ValueError, match="dims"):
        latent_traversal(model, z, values, dims=[3])
    with pytest.raises(ValueError, match="1-D"):
        latent_traversal(model, z.view(1, 3), values)
    with pytest.raises(ValueError, match="values"):
        latent_traversal(model, z, torch.tensor([]))


def test_plot_traversal_draws_one_row_per_dimension():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_utils.plots import plot_traversal

    images = torch.rand(3, 5, 1024)
    values = torch.linspace(-2, 2, 5)
    ax = plot_traversal(images, (32, 32), values, row_labels=["a", "b", "c"])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.images[0].get_array().shape == (3 * 33 - 1, 5 * 33 - 1)
    assert ax.get_xticklabels()[0].get_text() == "-2.0"
    with pytest.raises(ValueError, match="rows"):
        plot_traversal(images, (32, 32), torch.linspace(-2, 2, 4))
    with pytest.raises(ValueError, match="row_labels"):
        plot_traversal(images, (32, 32), values, row_labels=["a"])
    plt.close("all")


def test_init_output_bias_starts_at_the_mean_brightness():
    torch.manual_seed(0)
    model = ConvVAE(z_dim=2, channels=(4,), hidden_dim=8)
    x, _, _ = make_sprites(200, seed=4)
    assert model.init_output_bias(x) is model
    bias = model.decoder.deconv[-1].bias
    assert torch.sigmoid(bias).item() == pytest.approx(x.mean().item(), rel=1e-4)
    with torch.no_grad():  # a decoder with zero weights would now predict the mean pixel
        for p in model.decoder.deconv[-1].parameters():
            if p is not bias:
                p.zero_()
        probs = model.decode_mean(torch.zeros(1, 2))
    torch.testing.assert_close(probs.mean(), x.mean(), rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="shape"):
        model.init_output_bias(torch.rand(3, 10))


def test_capacity_loss_fn_warms_gamma_up():
    capacity = CapacityLoss(c_max=8.0, num_steps=8, gamma=10.0, warmup_steps=4)
    model = ConvVAE(z_dim=2, channels=(4,), hidden_dim=8)
    x, _, _ = make_sprites(4)
    seen = []
    for _ in range(6):
        seen.append((capacity.capacity, capacity.gamma))
        capacity(model, x)
    assert seen == [(0.0, 0.0), (1.0, 2.5), (2.0, 5.0), (3.0, 7.5), (4.0, 10.0), (5.0, 10.0)]
    with pytest.raises(ValueError, match="warmup_steps"):
        CapacityLoss(c_max=1.0, num_steps=2, warmup_steps=-2)
