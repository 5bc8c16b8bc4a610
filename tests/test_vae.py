"""course_utils.vae against torch.distributions, closed forms and its own properties."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from course_utils import vae
from course_utils.vae import (
    VAE,
    BernoulliDecoder,
    GaussianDecoder,
    GaussianEncoder,
    bernoulli_log_likelihood,
    gaussian_kl,
    gaussian_log_likelihood,
    kl_warmup,
    negative_elbo,
    reparameterize,
)


def _params(b=5, z=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randn(b, z, generator=g, dtype=dtype),
            torch.randn(b, z, generator=g, dtype=dtype))


# --------------------------------------------------------------------------- gaussian_kl


@pytest.mark.parametrize("seed", range(3))
def test_gaussian_kl_matches_torch_distributions(seed):
    mu, logvar = _params(seed=seed)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)


def test_gaussian_kl_is_nonnegative_and_zero_only_at_the_prior():
    mu, logvar = _params(b=200, z=4)
    assert (gaussian_kl(mu, logvar) > 0).all()
    zero = torch.zeros(2, 4, dtype=torch.float64)
    torch.testing.assert_close(gaussian_kl(zero, zero), torch.zeros(2, dtype=torch.float64))


def test_gaussian_kl_closed_form_one_dimension():
    # KL(N(1, e^2) || N(0, 1)) = 1/2 (1 + e^2 - 1 - 2)
    out = gaussian_kl(torch.tensor([[1.0]]), torch.tensor([[2.0]]))
    assert out.item() == pytest.approx(0.5 * (1 + math.exp(2) - 1 - 2), rel=1e-6)


# --------------------------------------------------------------------------- log-likelihoods


def test_bernoulli_log_likelihood_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(4, 10, generator=g, dtype=torch.float64)
    x = torch.bernoulli(torch.full((4, 10), 0.5, dtype=torch.float64), generator=g)
    expected = Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(bernoulli_log_likelihood(x, logits), expected)


def test_bernoulli_log_likelihood_grey_values_and_huge_logits():
    x = torch.tensor([[0.25, 1.0, 0.0]], dtype=torch.float64)
    logits = torch.tensor([[0.3, 200.0, -200.0]], dtype=torch.float64)
    p = torch.sigmoid(logits[0, 0])
    expected = 0.25 * torch.log(p) + 0.75 * torch.log(1 - p)  # the other two terms are ~0
    out = bernoulli_log_likelihood(x, logits)
    assert torch.isfinite(out).all()
    assert out.item() == pytest.approx(expected.item(), abs=1e-9)


def test_gaussian_log_likelihood_matches_torch_distributions():
    g = torch.Generator().manual_seed(2)
    x, mean, logvar = (torch.randn(3, 7, generator=g, dtype=torch.float64) for _ in range(3))
    expected = Normal(mean, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
    torch.testing.assert_close(gaussian_log_likelihood(x, mean, logvar), expected)
    # a per-pixel logvar (D,) and a float both broadcast
    torch.testing.assert_close(
        gaussian_log_likelihood(x, mean, logvar[0]),
        Normal(mean, torch.exp(0.5 * logvar[0])).log_prob(x).sum(-1))
    torch.testing.assert_close(
        gaussian_log_likelihood(x, mean, -1.5),
        Normal(mean, math.exp(-0.75)).log_prob(x).sum(-1))


def test_log_likelihoods_broadcast_over_samples():
    x = torch.rand(3, 5)
    logits = torch.randn(4, 3, 5)
    assert bernoulli_log_likelihood(x, logits).shape == (4, 3)
    assert gaussian_log_likelihood(x, logits, 0.0).shape == (4, 3)


# --------------------------------------------------------------------------- reparameterize


def test_reparameterize_moments():
    mu = torch.tensor([[1.0, -2.0, 0.0]]).expand(200_000, 3)
    logvar = torch.tensor([[0.0, 2.0, -4.0]]).expand(200_000, 3)
    torch.manual_seed(0)
    z = reparameterize(mu, logvar)
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), logvar[0].exp(), atol=0, rtol=0.02)


def test_reparameterize_uses_torch_rng_and_has_analytic_gradients():
    mu, logvar = _params()
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    torch.manual_seed(3)
    z = reparameterize(mu, logvar)
    torch.manual_seed(3)
    eps = torch.randn_like(mu)
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)


def test_reparameterized_gradient_of_expectation_matches_analytic():
    # E[z^2] = mu^2 + e^logvar, so d/dmu = 2 mu and d/dlogvar = e^logvar
    mu = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    logvar = torch.tensor([-0.4], dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    z = reparameterize(mu.expand(400_000, 1), logvar.expand(400_000, 1))
    z.pow(2).mean().backward()
    assert mu.grad.item() == pytest.approx(2 * 0.7, rel=0.01)
    assert logvar.grad.item() == pytest.approx(math.exp(-0.4), rel=0.01)


# --------------------------------------------------------------------------- negative_elbo


def test_negative_elbo_parts():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(6, 8, generator=g)
    logits, (mu, logvar) = torch.randn(6, 8, generator=g), _params(6, 2, dtype=torch.float32)
    out = negative_elbo(x, logits, mu, logvar, beta=0.5)
    rec = -Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(-1)  # grey x
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(out["rec"], rec.mean())
    torch.testing.assert_close(out["kl"], kl.mean())
    torch.testing.assert_close(out["loss"], (rec + 0.5 * kl).mean())
    assert set(out) == {"loss", "rec", "kl"}


def test_kl_warmup():
    assert [kl_warmup(e, 4) for e in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert kl_warmup(0, 0) == 1.0
    with pytest.raises(ValueError, match="warmup_epochs"):
        kl_warmup(1, -1)
    with pytest.raises(ValueError, match="epoch"):
        kl_warmup(1.5, 3)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, "same shape"),
    (lambda: gaussian_kl(torch.zeros(2, 3), torch.full((2, 3), math.nan)), ValueError, "nan"),
    (lambda: gaussian_kl(torch.zeros(2, 3).numpy(), torch.zeros(2, 3)), TypeError, "torch"),
    (lambda: gaussian_kl(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3)), TypeError,
     "floating"),
    (lambda: reparameterize(torch.zeros(2, 3), torch.zeros(3, 2)), ValueError, "same shape"),
    (lambda: reparameterize([0.0], torch.zeros(1)), TypeError, "torch.Tensor"),
    (lambda: bernoulli_log_likelihood(torch.full((2, 3), 2.0), torch.zeros(2, 3)), ValueError,
     "[0, 1]"),
    (lambda: bernoulli_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError,
     "broadcast"),
    (lambda: bernoulli_log_likelihood(torch.zeros(2, 3), torch.full((2, 3), math.nan)),
     ValueError, "nan"),
    (lambda: gaussian_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 3), "1"), TypeError,
     "logvar"),
    (lambda: gaussian_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 3), math.inf),
     ValueError, "finite"),
    (lambda: gaussian_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(4)),
     ValueError, "broadcast"),
    (lambda: negative_elbo(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 1),
                           torch.zeros(2, 1), beta=-1.0), ValueError, "beta"),
    (lambda: negative_elbo(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 1),
                           torch.zeros(3, 1)), ValueError, "batch size"),
    (lambda: VAE(64, z_dim=0), ValueError, "z_dim"),
    (lambda: VAE(64, likelihood="poisson"), ValueError, "likelihood"),
    (lambda: VAE(64, activation="gelu"), ValueError, "activation"),
    (lambda: VAE(64).loss(torch.zeros(2, 10)), ValueError, "(B, 64)"),
    (lambda: VAE(64).log_weights(torch.zeros(2, 64), 0), ValueError, "k"),
])
def test_inputs_are_validated(call, error, fragment):
    with pytest.raises(error, match=None) as info:
        call()
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- the model


def test_vae_shapes_and_loss_parts():
    torch.manual_seed(0)
    model = VAE(64, z_dim=3, hidden_dims=(32, 16))
    x = torch.rand(5, 64)
    x_logits, mu, logvar = model(x)
    assert x_logits.shape == (5, 64) and mu.shape == logvar.shape == (5, 3)
    assert model.x_dim == 64 and model.z_dim == 3
    out = model.loss(x, beta=2.0)
    assert set(out) == {"loss", "rec", "kl"}
    torch.testing.assert_close(out["loss"], out["rec"] + 2.0 * out["kl"])
    assert all(v.ndim == 0 for v in out.values())
    samples = model.sample(7)
    assert samples.shape == (7, 64) and 0 <= samples.min() and samples.max() <= 1


def test_vae_loss_equals_negative_elbo_with_the_same_noise():
    torch.manual_seed(0)
    model = VAE(20, z_dim=2, hidden_dims=(8,))
    x = torch.rand(4, 20)
    torch.manual_seed(1)
    out = model.loss(x, beta=0.3)
    torch.manual_seed(1)
    x_logits, mu, logvar = model(x)
    expected = negative_elbo(x, x_logits, mu, logvar, beta=0.3)
    for key in out:
        torch.testing.assert_close(out[key], expected[key])


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_weights_match_torch_distributions(likelihood):
    torch.manual_seed(0)
    model = VAE(10, z_dim=2, hidden_dims=(8,), likelihood=likelihood).double()
    x = torch.rand(3, 10, dtype=torch.float64)
    torch.manual_seed(5)
    log_w = model.log_weights(x, 4)
    assert log_w.shape == (4, 3)
    mu, logvar = model.encode(x)
    torch.manual_seed(5)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(4, 3, 2, dtype=torch.float64)
    if likelihood == "bernoulli":
        log_px = Bernoulli(logits=model.decoder(z), validate_args=False).log_prob(x).sum(-1)
    else:
        mean, dec_logvar = model.decoder(z)
        log_px = Normal(mean, torch.exp(0.5 * dec_logvar)).log_prob(x).sum(-1)
    expected = (log_px + Normal(0.0, 1.0).log_prob(z).sum(-1)
                - Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1))
    torch.testing.assert_close(log_w, expected)


def test_mean_log_weight_is_the_elbo():
    torch.manual_seed(0)
    model = VAE(10, z_dim=2, hidden_dims=(8,)).double()
    x = torch.rand(3, 10, dtype=torch.float64)
    elbo = model.log_weights(x, 50_000).mean(0)
    torch.manual_seed(1)
    mu, logvar = model.encode(x)
    rec = torch.stack([-model.log_likelihood(x, model.reparameterize(mu, logvar))
                       for _ in range(2000)]).mean(0)
    torch.testing.assert_close(elbo, -(rec + gaussian_kl(mu, logvar)), atol=0.05, rtol=0)


def test_gaussian_decoder_learned_and_fixed_logvar():
    learned = GaussianDecoder(2, (4,), 6)
    assert isinstance(learned.logvar, torch.nn.Parameter)
    fixed = GaussianDecoder(2, (4,), 6, logvar=-2.0)
    assert "logvar" in dict(fixed.named_buffers())
    mean, logvar = fixed(torch.zeros(3, 2))
    assert mean.shape == logvar.shape == (3, 6) and (logvar == -2.0).all()
    model = VAE(6, z_dim=2, hidden_dims=(4,), likelihood="gaussian", decoder_logvar=0.0)
    assert model.decode(torch.zeros(3, 2)).shape == (3, 6)
    assert model.sample(2).shape == (2, 6)


def test_gaussian_decoder_shared_logvar_is_one_parameter_at_the_mse_optimum():
    decoder = GaussianDecoder(2, (4,), 6, logvar="shared")
    assert decoder.logvar.shape == (1,) and isinstance(decoder.logvar, torch.nn.Parameter)
    mean, logvar = decoder(torch.zeros(3, 2))
    assert logvar.shape == (3, 6)
    # For fixed means, Σ_d log N(x_d | m_d, σ²) is largest at σ² = mean squared residual:
    # d/dv [-1/2 (v + r² e^{-v})] = -1/2 (1 - r² e^{-v}) = 0 at e^v = mean r².
    torch.manual_seed(0)
    x, m = torch.rand(50, 6, dtype=torch.float64), torch.rand(50, 6, dtype=torch.float64)
    v = (x - m).pow(2).mean().log().clone().requires_grad_(True)
    gaussian_log_likelihood(x, m, v.expand(6)).sum().backward()
    assert abs(v.grad.item()) < 1e-9
    best = v.item()
    for off in (-0.1, 0.1):  # and it is a maximum
        assert (gaussian_log_likelihood(x, m, best + off).sum()
                < gaussian_log_likelihood(x, m, best).sum())


@pytest.mark.parametrize("bad", ["per-pixel", True])
def test_gaussian_decoder_rejects_an_unknown_logvar_option(bad):
    with pytest.raises(ValueError, match="'shared'"):
        GaussianDecoder(2, (4,), 6, logvar=bad)


def test_networks_of_any_width_and_activation():
    enc = GaussianEncoder(12, (7, 5, 3), 2, activation="tanh")
    assert sum(isinstance(m, torch.nn.Tanh) for m in enc.modules()) == 3
    mu, logvar = enc(torch.rand(4, 12))
    assert mu.shape == logvar.shape == (4, 2)
    assert BernoulliDecoder(2, (), 12)(mu).shape == (4, 12)  # no hidden layer: linear


def test_subclass_can_replace_encoder_and_decoder():
    class Tiny(VAE):
        def __init__(self):
            super().__init__(6, z_dim=2)
            self.encoder = GaussianEncoder(6, (3,), 2)
            self.decoder = BernoulliDecoder(2, (3,), 6)

    model = Tiny()
    assert model.loss(torch.rand(2, 6))["loss"].isfinite()
    assert sum(p.numel() for p in model.parameters()) < 100


def test_model_follows_dtype_and_device():
    model = VAE(8, z_dim=2, hidden_dims=(4,)).double()
    out = model.loss(torch.rand(3, 8, dtype=torch.float64))
    assert out["loss"].dtype == torch.float64
    assert model.sample(2).dtype == torch.float64
    assert model.log_weights(torch.rand(3, 8, dtype=torch.float64), 2).dtype == torch.float64


def test_module_exports_the_contract():
    for name in ("reparameterize", "gaussian_kl", "bernoulli_log_likelihood",
                 "gaussian_log_likelihood", "negative_elbo", "kl_warmup", "MLP",
                 "GaussianEncoder", "BernoulliDecoder", "GaussianDecoder", "VAE"):
        assert hasattr(vae, name)


# --------------------------------------------------------------------------- gradient estimators


def _square(z):
    return z.pow(2).sum(-1)


@pytest.mark.parametrize("estimator", [vae.score_function_gradient,
                                       vae.reparameterization_gradient])
def test_gradient_estimators_are_unbiased(estimator):
    # E[Σ z²] = Σ mu² + e^logvar: d/dmu = 2 mu, d/dlogvar = e^logvar
    mu = torch.tensor([1.0, -0.5], dtype=torch.float64)
    logvar = torch.tensor([math.log(4.0), math.log(0.25)], dtype=torch.float64)
    torch.manual_seed(0)
    grad_mu, grad_logvar = estimator(_square, mu, logvar, 400_000)
    assert grad_mu.shape == grad_logvar.shape == (400_000, 2)
    for grads, exact in ((grad_mu, 2 * mu), (grad_logvar, logvar.exp())):
        se = grads.std(0) / 400_000 ** 0.5
        assert ((grads.mean(0) - exact).abs() < 5 * se).all()


def test_score_function_handles_a_step_and_has_larger_variance():
    mu, logvar = torch.tensor([0.5], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)
    step = lambda z: (z[:, 0] > 0).to(z.dtype)
    torch.manual_seed(0)
    grad_mu, _ = vae.score_function_gradient(step, mu, logvar, 400_000)
    exact = math.exp(-0.125) / math.sqrt(2 * math.pi)  # d/dmu Φ(mu) = φ(mu)
    assert grad_mu.mean().item() == pytest.approx(exact, abs=5 * grad_mu.std().item() / 632)
    sf, _ = vae.score_function_gradient(_square, mu, logvar, 100_000)
    rp, _ = vae.reparameterization_gradient(_square, mu, logvar, 100_000)
    assert sf.var() > 3 * rp.var()


def test_gradient_estimators_validate_inputs():
    with pytest.raises(TypeError, match="f must be"):
        vae.score_function_gradient(None, torch.zeros(2), torch.zeros(2), 3)
    with pytest.raises(ValueError, match=r"shape \(Z,\)"):
        vae.reparameterization_gradient(_square, torch.zeros(1, 2), torch.zeros(1, 2), 3)
    with pytest.raises(ValueError, match="num_samples"):
        vae.score_function_gradient(_square, torch.zeros(2), torch.zeros(2), 0)


def test_decode_mean():
    model = VAE(6, z_dim=2, hidden_dims=(4,))
    z = torch.randn(3, 2)
    torch.testing.assert_close(model.decode_mean(z), torch.sigmoid(model.decode(z)))


# --------------------------------------------------------------------------- plots


def test_latent_plots():
    import matplotlib

    matplotlib.use("Agg")
    from course_utils import plots

    z = plots.latent_grid(5)
    assert z.shape == (25, 2)
    assert z[0, 0] < z[1, 0] and z[0, 1] > z[5, 1]  # z1 grows to the right, z2 upwards
    torch.testing.assert_close(z[:5, 0], -z[:5, 0].flip(0))  # symmetric quantiles
    model = VAE(64, z_dim=2, hidden_dims=(8,))
    ax = plots.plot_latent_map(model, (8, 8), n=5)
    assert ax.images[0].get_array().shape == (5 * 9 - 1, 5 * 9 - 1)
    ax = plots.plot_latent_scatter(torch.randn(30, 2), torch.arange(30) % 3)
    assert len(ax.collections) == 3 and ax.get_legend() is not None
    ax = plots.plot_interpolation(model, torch.zeros(64), torch.ones(64), (8, 8), steps=4)
    assert ax.images[0].get_array().shape == (8, 6 * 9 - 1)
    with pytest.raises(ValueError, match="shape"):
        plots.plot_latent_scatter(torch.randn(30, 2), torch.arange(29))
    with pytest.raises(ValueError, match="n must be"):
        plots.latent_grid(1)


def test_fast_mode_vae_of_notebook_04_is_not_collapsed():
    """04's fast settings (2,000 bundled 28×28 digits, 10 epochs) give codes a slider can move."""
    from course_utils import seed_everything
    from course_utils.data import load_images
    from course_utils.train import fit

    data = load_images("mnist_subset").head(2000, 500)
    seed_everything(0)
    model = VAE(784, z_dim=2, hidden_dims=(512, 256))
    history = fit(model, data.x_train, num_epochs=10, batch_size=128, lr=1e-3,
                  x_valid=data.x_test, eval_every=10, seed=0, progress=False)
    assert history.valid["kl"][-1] > 1.0, "the fast-mode VAE collapsed: its slider would not move"


# --------------------------------------------------------------------------- free bits


def test_free_bits_kl_floors_each_units_batch_mean():
    kl_units = torch.tensor([[0.0, 1.0, 3.0], [0.2, 3.0, 1.0]])  # unit means 0.1, 2.0, 2.0
    assert vae.free_bits_kl(kl_units, 0.5).item() == pytest.approx(0.5 + 2.0 + 2.0)
    assert vae.free_bits_kl(kl_units, 0.0).item() == pytest.approx(kl_units.sum(-1).mean().item())
    assert vae.free_bits_kl(kl_units, 2.5).item() == pytest.approx(3 * 2.5)


def test_free_bits_kl_has_no_gradient_below_the_floor():
    kl_units = torch.tensor([[0.0, 1.0], [0.2, 3.0]], requires_grad=True)
    vae.free_bits_kl(kl_units, 0.5).backward()
    torch.testing.assert_close(kl_units.grad, torch.tensor([[0.0, 0.5], [0.0, 0.5]]))


def test_free_bits_loss_reports_the_true_kl_and_floors_the_objective():
    torch.manual_seed(0)
    model = vae.VAE(12, 3, (8,))
    x = (torch.rand(16, 12) > 0.5).float()
    torch.manual_seed(1)
    plain = model.loss(x)
    torch.manual_seed(1)
    floored = vae.free_bits_loss(model, x, free_bits=0.0)
    torch.testing.assert_close(floored["loss"], plain["loss"])  # λ = 0: the ELBO itself
    torch.manual_seed(1)
    high = vae.free_bits_loss(model, x, free_bits=10.0)
    torch.testing.assert_close(high["kl"], plain["kl"])
    torch.testing.assert_close(high["loss"], plain["rec"] + 3 * 10.0)


def test_free_bits_names_bad_input():
    with pytest.raises(ValueError, match="free_bits must be"):
        vae.free_bits_kl(torch.zeros(2, 3), -1.0)
    with pytest.raises(ValueError, match=r"shape \(B, Z\)"):
        vae.free_bits_kl(torch.zeros(2, 3, 4), 0.1)
    with pytest.raises(TypeError, match="floating-point"):
        vae.free_bits_kl(torch.zeros(2, 3, dtype=torch.long), 0.1)
