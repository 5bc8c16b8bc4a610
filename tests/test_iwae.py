"""Tests of course_utils.iwae: the IWAE bound, log p(x) estimation, active units."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp as scipy_logsumexp
from scipy.stats import multivariate_normal

from course_utils import iwae
from course_utils.iwae import (
    LinearGaussian,
    active_units,
    estimate_log_likelihood,
    gaussian_log_weights,
    gradient_snr,
    iwae_bound,
    iwae_gradient_snr,
    iwae_loss,
    kl_per_dimension,
    local_gaussian_posterior,
    log_importance_weights,
    posterior_mean_variance,
)
from course_utils.vae import VAE

D = torch.distributions


def toy(q_scale=1.5, q_shift=0.3, orthogonal=True, seed=0):
    """A 2-D latent, 5-D observed linear-Gaussian model; exact q when scale 1, shift 0."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(5, 2, generator=g, dtype=torch.float64)
    if orthogonal:
        W = torch.linalg.qr(W).Q * torch.tensor([2.0, 0.7], dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    return LinearGaussian(W, b, sigma=0.5, q_scale=q_scale, q_shift=q_shift)


def toy_data(model, n=200, seed=1):
    torch.manual_seed(seed)
    return model.sample(n)


# --------------------------------------------------------------------------- iwae_bound


def test_iwae_bound_matches_scipy_logsumexp_minus_log_k():
    log_w = torch.randn(7, 4, dtype=torch.float64) * 30 - 500
    expected = scipy_logsumexp(log_w.numpy(), axis=0) - math.log(7)
    np.testing.assert_allclose(iwae_bound(log_w).numpy(), expected, rtol=1e-12)


def test_iwae_bound_with_one_sample_is_the_log_weight():
    log_w = torch.randn(1, 6)
    torch.testing.assert_close(iwae_bound(log_w), log_w[0])


def test_iwae_bound_lies_between_mean_and_max_of_log_weights():
    log_w = torch.randn(50, 8, dtype=torch.float64) * 3
    bound = iwae_bound(log_w)
    assert (bound >= log_w.mean(0) - 1e-12).all()  # Jensen: log mean exp >= mean log
    assert (bound <= log_w.amax(0)).all()


def test_iwae_bound_is_stable_for_very_negative_log_weights():
    log_w = torch.tensor([[-1000.0, -2000.0], [-1001.0, -2000.0]])
    expected = torch.tensor([-1000.0 + math.log((1 + math.exp(-1)) / 2), -2000.0])
    torch.testing.assert_close(iwae_bound(log_w), expected)


def test_iwae_bound_allows_zero_weights():
    log_w = torch.tensor([[-math.inf, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(iwae_bound(log_w), torch.tensor([-math.log(2), 0.0]))


@pytest.mark.parametrize(
    "bad, error, fragment",
    [
        (np.zeros((3, 2)), TypeError, "torch.Tensor"),
        (torch.zeros(3, 2, dtype=torch.int64), TypeError, "floating"),
        (torch.zeros(3), ValueError, "2 dimensions"),
        (torch.tensor([[0.0], [math.nan]]), ValueError, "nan"),
        (torch.tensor([[0.0], [math.inf]]), ValueError, r"\+inf"),
        (torch.zeros(0, 3), ValueError, "at least one sample"),
    ],
)
def test_iwae_bound_validates_its_input(bad, error, fragment):
    with pytest.raises(error, match=fragment):
        iwae_bound(bad)


# --------------------------------------------------------------------------- log weights


def pieces(k=4, B=3, Dx=6, Z=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.full((B, Dx), 0.4), generator=g)
    x_logits = 5 * torch.randn(k, B, Dx, generator=g)
    mu, logvar = torch.randn(B, Z, generator=g), torch.randn(B, Z, generator=g)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(k, B, Z, generator=g)
    return x, x_logits, z, mu, logvar


def test_log_importance_weights_match_torch_distributions():
    x, x_logits, z, mu, logvar = pieces()
    expected = (
        D.Bernoulli(logits=x_logits).log_prob(x.expand_as(x_logits)).sum(-1)
        + D.Normal(0.0, 1.0).log_prob(z).sum(-1)
        - D.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    )
    out = log_importance_weights(x, x_logits, z, mu, logvar)
    assert out.shape == (4, 3)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


def test_log_importance_weights_are_finite_for_saturated_logits():
    x, x_logits, z, mu, logvar = pieces()
    out = log_importance_weights(x, 1e4 * x_logits.sign(), z, mu, logvar)
    assert torch.isfinite(out).all()


def test_log_importance_weights_agree_with_the_vaes_log_weights():
    model = VAE(6, z_dim=2, hidden_dims=(8,))
    x = torch.bernoulli(torch.full((3, 6), 0.5))
    torch.manual_seed(3)
    expected = model.log_weights(x, 4)
    torch.manual_seed(3)
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(4, *mu.shape)
    out = log_importance_weights(x, model.decode(z), z, mu, logvar)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("which, value, fragment", [
    (0, torch.zeros(3, 5), "x_logits must have shape"),
    (1, torch.zeros(4, 2, 6), "x_logits must have shape"),
    (2, torch.zeros(4, 3, 3), "expected z"),
    (3, torch.zeros(3, 3), "expected z"),
    (2, torch.zeros(5, 3, 2), "expected z"),
    (1, torch.zeros(3, 6), "3 dimensions"),
])
def test_log_importance_weights_validate_shapes(which, value, fragment):
    args = list(pieces())
    args[which] = value
    with pytest.raises(ValueError, match=fragment):
        log_importance_weights(*args)


# --------------------------------------------------------------------------- the toy model


def test_linear_gaussian_log_marginal_matches_scipy():
    model = toy(orthogonal=False)
    x = toy_data(model, 10)
    cov = (model.W @ model.W.T + model.sigma**2 * torch.eye(5, dtype=torch.float64)).numpy()
    expected = multivariate_normal(model.b.numpy(), cov).logpdf(x.numpy())
    np.testing.assert_allclose(model.log_marginal(x).numpy(), expected, rtol=1e-10)


def test_linear_gaussian_exact_posterior_gives_constant_weights_equal_to_p_x():
    model = toy(q_scale=1.0, q_shift=0.0)
    x = toy_data(model, 20)
    log_w = model.log_weights(x, 30)
    torch.testing.assert_close(log_w, model.log_marginal(x).expand(30, -1), rtol=0, atol=1e-10)


def test_elbo_equals_log_p_x_minus_kl_to_the_posterior():
    model = toy(q_scale=1.3, q_shift=0.4)
    x = toy_data(model, 5)
    torch.manual_seed(0)
    elbo = model.log_weights(x, 200_000).mean(0)
    mean, cov = model.posterior(x)
    mu, logvar = model.encode(x)
    q = D.MultivariateNormal(mu, torch.diag_embed(logvar.exp()))
    kl = D.kl_divergence(q, D.MultivariateNormal(mean, cov))
    torch.testing.assert_close(elbo, model.log_marginal(x) - kl, rtol=0, atol=0.01)


def test_linear_gaussian_validates_its_parameters():
    W, b = torch.zeros(5, 2), torch.zeros(5)
    with pytest.raises(ValueError, match="sigma"):
        LinearGaussian(W, b, sigma=0.0)
    with pytest.raises(ValueError, match="q_scale"):
        LinearGaussian(W, b, sigma=1.0, q_scale=-1.0)
    with pytest.raises(ValueError, match="b must have shape"):
        LinearGaussian(W, torch.zeros(4), sigma=1.0)


# --------------------------------------------------------------------------- ordering of bounds


def bounds_for(model, x, ks, seed=0):
    torch.manual_seed(seed)
    return [iwae_bound(model.log_weights(x, k)).mean().item() for k in ks]


def test_bounds_increase_with_k_and_stay_below_log_p_x_on_the_toy_model():
    model = toy(q_scale=2.0, q_shift=0.5, orthogonal=False)
    x = toy_data(model, 2000)
    ks = (1, 5, 50, 500)
    bounds = bounds_for(model, x, ks)
    log_px = model.log_marginal(x).mean().item()
    assert all(a < b for a, b in zip(bounds, bounds[1:], strict=False)), bounds
    assert bounds[-1] < log_px
    assert log_px - bounds[0] > 0.5  # the ELBO gap is substantial for this q
    assert log_px - bounds[-1] < 0.1 * (log_px - bounds[0])


def test_bounds_increase_with_k_on_a_vae():
    torch.manual_seed(0)
    model = VAE(16, z_dim=3, hidden_dims=(32,))
    x = torch.bernoulli(torch.full((2000, 16), 0.3))
    elbo, iwae_5, iwae_50 = bounds_for(model, x, (1, 5, 50))
    assert elbo < iwae_5 < iwae_50


def test_log_likelihood_estimate_exceeds_the_elbo():
    model = toy(q_scale=1.5, q_shift=0.3, orthogonal=False)
    x = toy_data(model, 100)
    torch.manual_seed(1)
    elbo = model.log_weights(x, 1000).mean(0)  # (B,)
    log_px = estimate_log_likelihood(model, x, k=1000, chunk_size=300, batch_size=64)
    assert log_px.shape == (100,)
    assert (log_px > elbo).all()


def test_log_likelihood_estimate_exceeds_the_elbo_on_a_vae():
    torch.manual_seed(0)
    model = VAE(16, z_dim=3, hidden_dims=(32,))
    x = torch.bernoulli(torch.full((300, 16), 0.3))
    torch.manual_seed(1)
    elbo = model.log_weights(x, 1000).mean(0)  # (B,)
    log_px = estimate_log_likelihood(model, x, k=2000, chunk_size=1000, batch_size=100)
    assert log_px.mean() > elbo.mean()
    assert (log_px > elbo).float().mean() > 0.9  # per image up to Monte Carlo noise


# --------------------------------------------------------------------------- the estimator


def test_estimator_converges_to_the_true_log_marginal():
    model = toy(q_scale=1.8, q_shift=0.4, orthogonal=False)
    x = toy_data(model, 20)
    truth = model.log_marginal(x)
    torch.manual_seed(0)
    estimates = [estimate_log_likelihood(model, x, k=k, chunk_size=1000) for k in (1, 100, 20_000)]
    errors = [(truth - estimate).abs().mean() for estimate in estimates]
    assert errors[0] > 3 and errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.03  # Monte Carlo error ~ 1/sqrt(k) per image
    assert (truth - estimates[2]).mean().abs() < 0.02  # and it averages out over images


def test_chunked_estimator_is_exact_with_an_exact_posterior():
    model = toy(q_scale=1.0, q_shift=0.0)
    x = toy_data(model, 37)
    truth = model.log_marginal(x)
    for k, chunk_size, batch_size in [(5000, 5000, 1000), (70, 7, 5), (1000, 333, 1), (20, 1, 37)]:
        out = estimate_log_likelihood(model, x, k=k, chunk_size=chunk_size, batch_size=batch_size)
        torch.testing.assert_close(out, truth, rtol=0, atol=1e-9)


class PeriodicWeights(torch.nn.Module):
    """log w_i = offset(x) + c[i mod 4]: the exact log mean exp is offset + log mean exp(c)."""

    c = torch.tensor([0.0, -3.0, 1.5, -40.0], dtype=torch.float64)

    def __init__(self):
        super().__init__()
        self.max_k = 0

    def log_weights(self, x, k):
        self.max_k = max(self.max_k, k)
        rows = self.c.repeat(-(-k // 4))[:k]
        return x.sum(1) + rows[:, None]


def test_chunked_estimator_equals_unchunked_one():
    x = torch.randn(9, 3, dtype=torch.float64) * 1000  # offsets from about -3000 to 3000
    expected = x.sum(1) + torch.logsumexp(PeriodicWeights.c, 0) - math.log(4)
    unchunked = estimate_log_likelihood(PeriodicWeights(), x, k=5000, chunk_size=5000,
                                        batch_size=9)
    torch.testing.assert_close(unchunked, expected, rtol=1e-12, atol=1e-9)
    for chunk_size, batch_size in [(4, 2), (100, 1), (1000, 4), (2500, 9)]:
        model = PeriodicWeights()
        out = estimate_log_likelihood(model, x, k=5000, chunk_size=chunk_size,
                                      batch_size=batch_size)
        torch.testing.assert_close(out, unchunked, rtol=1e-12, atol=1e-9)
        assert model.max_k == chunk_size  # never more samples at once than a chunk


def test_chunked_and_unchunked_estimates_agree_on_a_vae():
    torch.manual_seed(0)
    model = VAE(16, z_dim=3, hidden_dims=(32,))
    x = torch.bernoulli(torch.full((30, 16), 0.3))
    torch.manual_seed(1)
    whole = estimate_log_likelihood(model, x, k=3000, chunk_size=3000, batch_size=30)
    torch.manual_seed(2)
    chunked = estimate_log_likelihood(model, x, k=3000, chunk_size=128, batch_size=7)
    assert whole.dtype == chunked.dtype == torch.float32
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0.1)  # Monte Carlo noise only
    assert (chunked - whole).mean().abs() < 0.01


def test_estimator_runs_k_5000_on_mnist_sized_inputs_and_restores_training_mode():
    model = VAE(784, z_dim=50, hidden_dims=(200, 200), activation="tanh")
    model.train()
    x = torch.bernoulli(torch.full((4, 784), 0.2))
    out = estimate_log_likelihood(model, x, k=5000, chunk_size=500, batch_size=2)
    assert out.shape == (4,) and torch.isfinite(out).all()
    assert model.training


def test_estimator_validates_its_arguments():
    model = toy()
    x = toy_data(model, 3)
    with pytest.raises(TypeError, match="log_weights"):
        estimate_log_likelihood(object(), x)
    with pytest.raises(ValueError, match="k must be a positive int"):
        estimate_log_likelihood(model, x, k=0)
    with pytest.raises(ValueError, match="chunk_size"):
        estimate_log_likelihood(model, x, chunk_size=2.5)
    with pytest.raises(ValueError, match="batch_size"):
        estimate_log_likelihood(model, x, batch_size=-1)
    with pytest.raises(ValueError, match="2 dimensions"):
        estimate_log_likelihood(model, x[0])
    with pytest.raises(ValueError, match="nan"):
        estimate_log_likelihood(model, torch.full_like(x, math.nan))


# --------------------------------------------------------------------------- the loss


def test_iwae_loss_is_minus_the_mean_bound_and_k1_is_the_elbo():
    torch.manual_seed(0)
    model = VAE(16, z_dim=3, hidden_dims=(32,))
    x = torch.bernoulli(torch.full((10, 16), 0.3))
    torch.manual_seed(5)
    parts = iwae_loss(model, x, k=7)
    torch.manual_seed(5)
    log_w = model.log_weights(x, 7)
    torch.testing.assert_close(parts["loss"], -iwae_bound(log_w).mean())
    torch.testing.assert_close(parts["neg_elbo"], -log_w.mean())
    assert parts["loss"] <= parts["neg_elbo"]
    torch.manual_seed(5)
    one = iwae_loss(model, x, k=1)
    torch.testing.assert_close(one["loss"], one["neg_elbo"])


def test_iwae_loss_gradient_is_the_normalized_weighted_sum_of_sample_gradients():
    # Burda et al. 2016, eq. 14: grad L_k = Σ_i w̃_i grad log w_i with w̃ = softmax(log w)
    model = toy(q_scale=1.5)
    x = toy_data(model, 1)
    W = torch.nn.Parameter(model.W.clone())
    model.W = W
    torch.manual_seed(0)
    loss = iwae_loss(model, x, k=6)["loss"]
    (grad,) = torch.autograd.grad(loss, W)
    torch.manual_seed(0)
    log_w = model.log_weights(x, 6)[:, 0]
    weights = torch.softmax(log_w.detach(), 0)
    (expected,) = torch.autograd.grad(-(weights * log_w).sum(), W)
    torch.testing.assert_close(grad, expected)


def test_iwae_loss_validates_its_arguments():
    with pytest.raises(TypeError, match="log_weights"):
        iwae_loss(torch.nn.Linear(2, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="k must be a positive int"):
        iwae_loss(toy(), torch.zeros(3, 5, dtype=torch.float64), k=0)


# --------------------------------------------------------------------------- collapse


class FixedEncoder(torch.nn.Module):
    """encode(x) = (x * scales, logvars): posterior means with known spread per unit."""

    def __init__(self, scales, logvar):
        super().__init__()
        self.scales, self.logvar = scales, logvar

    def encode(self, x):
        return x * self.scales, self.logvar.expand_as(x)


def test_active_units_count_the_posterior_means_that_vary():
    x = torch.randn(5000, 4, generator=torch.Generator().manual_seed(0))
    scales = torch.tensor([1.0, 0.3, 0.05, 0.0])  # variances about 1, 0.09, 0.0025, 0
    model = FixedEncoder(scales, torch.zeros(4))
    variance = posterior_mean_variance(model, x, batch_size=777)
    np.testing.assert_allclose(variance.numpy(), np.var((x * scales).numpy(), axis=0),
                               rtol=1e-4, atol=1e-7)
    assert active_units(model, x) == 2
    assert active_units(model, x, threshold=0.001) == 3


def test_active_units_on_a_vae_are_between_0_and_z_dim():
    model = VAE(16, z_dim=5, hidden_dims=(32,))
    x = torch.rand(100, 16)
    assert 0 <= active_units(model, x) <= 5
    assert active_units(model, x, threshold=0.0) == 5


def test_kl_per_dimension_matches_torch_distributions_and_sums_to_the_kl():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=g)
    logvar = torch.tensor([0.0, -2.0, 1.0])
    model = FixedEncoder(torch.tensor([0.0, 1.0, 2.0]), logvar)
    mu = x * model.scales
    expected = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(0.0, 1.0))
    per_dim = kl_per_dimension(model, x, batch_size=64)
    torch.testing.assert_close(per_dim, expected.mean(0))
    assert per_dim[0] == 0  # a collapsed unit: q equals the prior
    assert (per_dim >= 0).all()


def test_collapse_helpers_validate_their_arguments():
    x = torch.randn(10, 3)
    model = FixedEncoder(torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="threshold"):
        active_units(model, x, threshold=-1)
    with pytest.raises(ValueError, match="at least 2"):
        posterior_mean_variance(model, x[:1])
    with pytest.raises(TypeError, match="encode"):
        posterior_mean_variance(object(), x)
    with pytest.raises(ValueError, match="batch_size"):
        kl_per_dimension(model, x, batch_size=0)
    assert iwae.ACTIVE_THRESHOLD == 0.01


# --------------------------------------------------------------------------- plots


def test_plot_helpers_draw_what_they_are_given():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_utils.plots import plot_bounds_vs_k, plot_kl_per_dimension

    ax = plot_bounds_vs_k([1, 5, 50], torch.tensor([-20.0, -19.5, -19.3]), log_px=-19.2,
                          label="VAE")
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_ydata(), [-20.0, -19.5, -19.3])
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="same length"):
        plot_bounds_vs_k([1, 5], [0.0])
    ax = plot_kl_per_dimension({"a": torch.tensor([0.1, 2.0, 0.0]), "b": torch.ones(3)},
                               threshold=0.1)
    heights = [patch.get_height() for patch in ax.patches]
    np.testing.assert_allclose(heights, [2.0, 0.1, 0.0, 1.0, 1.0, 1.0], rtol=1e-6)  # sorted
    with pytest.raises(ValueError, match="at least one"):
        plot_kl_per_dimension({})
    plt.close("all")


# --------------------------------------------------------------------------- the benchmark


def test_reproduce_iwae_runs_end_to_end_on_a_tiny_fake_mnist(tmp_path, fake_mnist,
                                                             load_benchmark):
    import json

    bench = load_benchmark("reproduce_iwae")
    fake_mnist(60)
    threads = torch.get_num_threads()
    args = ["--minutes", "0.005", "--n-eval", "4", "--k-eval", "20", "--chunk-size", "7",
            "--out", str(tmp_path / "runs"), "--threads", str(threads)]
    bench.main(args)
    bench.main(args + ["--eval-only", "--models", "iwae"])
    for name, k in (("vae", 1), ("iwae", 5)):
        result = json.loads((tmp_path / "runs" / f"{name}.json").read_text())
        assert result["k_train"] == k and result["k_eval"] == 20 and result["n_eval"] == 4
        assert math.isfinite(result["nll"]) and result["nll"] <= result["neg_elbo"] + 1.0
        assert result["steps"] >= 1 and 0 <= result["active_units"] <= 50
        assert result["split"].startswith("validation split")  # no t10k files here
        log_px = torch.load(tmp_path / "runs" / f"{name}_log_px.pt")
        assert log_px.shape == (4,) and abs(-log_px.mean().item() - result["nll"]) < 1e-4


def test_reproduce_iwae_uses_the_official_test_split_when_its_files_are_there(
        tmp_path, fake_mnist, load_benchmark, capsys):
    import json

    from mnist_files import TEST_FILES, write_mnist

    bench = load_benchmark("reproduce_iwae")
    folder = fake_mnist(60)
    write_mnist(folder, 9, names=TEST_FILES, seed=3)
    bench.main(["--minutes", "0.002", "--n-eval", "9", "--k-eval", "5", "--models", "vae",
                "--out", str(tmp_path / "runs"), "--threads", "1"])
    result = json.loads((tmp_path / "runs" / "vae.json").read_text())
    assert result["split"].startswith("official split") and result["n_eval"] == 9
    assert "trained on all 60,000 training images" in capsys.readouterr().out


# --------------------------------------------------------------------------- amortisation gap


def test_gaussian_log_weights_of_the_exact_posterior_all_equal_log_p_x():
    model = toy(q_scale=1.0, q_shift=0.0)
    x = toy_data(model, n=20)
    mu, logvar = model.encode(x)
    log_w = gaussian_log_weights(model, x, mu, logvar, k=7)
    assert log_w.shape == (7, 20)
    torch.testing.assert_close(log_w, model.log_marginal(x).expand(7, -1))


def test_local_gaussian_posterior_finds_the_best_diagonal_gaussian():
    # For a Gaussian posterior N(m, Λ⁻¹), reverse KL's best diagonal Gaussian has mean m and
    # variances 1/Λ_jj (Bishop 2006, eq. 10.12-10.13), not the posterior's own variances.
    g = torch.Generator().manual_seed(0)
    W = torch.randn(5, 2, generator=g, dtype=torch.float64)
    W[:, 1] = 0.9 * W[:, 0] + 0.3 * W[:, 1]  # nearly parallel columns: a correlated posterior
    model = LinearGaussian(W, torch.zeros(5, dtype=torch.float64), sigma=0.5, q_scale=2.0,
                           q_shift=0.7)
    x = toy_data(model, n=30)
    mean, cov = model.posterior(x)
    best_var = 1 / torch.diagonal(torch.linalg.inv(cov))
    assert not torch.allclose(best_var, torch.diagonal(cov), rtol=0.05)  # a case that tells
    torch.manual_seed(0)
    mu, logvar = local_gaussian_posterior(model, x, num_steps=1500, num_samples=64, lr=0.02)
    torch.testing.assert_close(mu, mean, atol=0.03, rtol=0)
    torch.testing.assert_close(logvar.exp(), best_var.expand_as(mu), atol=0, rtol=0.1)


def test_local_gaussian_posterior_closes_the_amortisation_gap_without_touching_the_model():
    torch.manual_seed(0)
    vae = VAE(12, 2, (16,))
    x = (torch.rand(40, 12) > 0.5).float()
    before = [p.detach().clone() for p in vae.parameters()]
    mu, logvar = local_gaussian_posterior(vae, x, num_steps=200)
    after = list(vae.parameters())
    assert all(torch.equal(a, p) and p.grad is None for a, p in zip(before, after, strict=True))
    with torch.no_grad():
        encoder = gaussian_log_weights(vae, x, *vae.encode(x), k=2000).mean(0)
        local = gaussian_log_weights(vae, x, mu, logvar, k=2000).mean(0)
    gain = local - encoder  # ELBO(each x's own q) - ELBO(encoder's q) >= 0, up to noise
    assert gain.mean() > 0.05 and gain.min() > -0.05, gain


def test_amortisation_gap_functions_name_bad_input():
    model = toy()
    x = toy_data(model, n=4)
    mu, logvar = model.encode(x)
    with pytest.raises(ValueError, match="mu and logvar must have shape"):
        gaussian_log_weights(model, x, mu[:3], logvar[:3], k=2)
    with pytest.raises(TypeError, match="log_likelihood"):
        gaussian_log_weights(object(), x, mu, logvar, k=2)
    with pytest.raises(ValueError, match="nan or inf"):
        gaussian_log_weights(model, x, mu, logvar.fill_(float("inf")), k=2)
    with pytest.raises(ValueError, match="num_steps"):
        local_gaussian_posterior(model, x, num_steps=0)
    with pytest.raises(ValueError, match="lr"):
        local_gaussian_posterior(model, x, lr=-1.0)


# --------------------------------------------------------------------------- gradient noise


def test_gradient_snr_by_hand():
    grads = torch.tensor([[1.0, 2.0, -1.0], [3.0, 2.0, 1.0], [5.0, 2.0, 0.0]])
    snr = gradient_snr(grads)
    # column 0: mean 3, sample std 2; column 1: no spread; column 2: mean 0, std 1
    torch.testing.assert_close(snr[[0, 2]], torch.tensor([1.5, 0.0]))
    assert torch.isinf(snr[1])
    with pytest.raises(ValueError, match="at least 2 repeats"):
        gradient_snr(grads[:1])


def test_iwae_gradient_snr_falls_with_k_for_the_encoder_and_rises_for_the_decoder():
    # Rainforth et al. 2018, theorem 1: encoder SNR O(1/sqrt(k)), decoder SNR O(sqrt(k)).
    torch.manual_seed(0)
    model = VAE(20, 2, (16,))
    x = (torch.rand(8, 20) > 0.5).float()
    snr = {}
    for k in (1, 100):
        torch.manual_seed(1)
        snr[k] = [iwae_gradient_snr(model, x, k, part.parameters(), num_repeats=60).nanmedian()
                  for part in (model.encoder, model.decoder)]
    assert snr[100][0] < snr[1][0] / 2, snr
    assert snr[100][1] > snr[1][1] * 2, snr


def test_iwae_gradient_snr_names_bad_params():
    model = VAE(20, 2, (16,))
    x = torch.rand(4, 20)
    with pytest.raises(ValueError, match="params must be"):
        iwae_gradient_snr(model, x, 5, [])


def test_the_paper_schedule_is_burda_et_al_s(load_benchmark):
    bench = load_benchmark("reproduce_iwae")
    schedule = bench.paper_schedule()
    assert [epochs for epochs, _ in schedule] == [1, 3, 9, 27, 81, 243, 729, 2187]
    assert sum(epochs for epochs, _ in schedule) == 3280
    lrs = [lr for _, lr in schedule]
    assert lrs[0] == 1e-3 and math.isclose(lrs[7], 1e-4)  # 10^(-7/7) = 1/10 at the last pass
    assert all(math.isclose(b / a, 10 ** (-1 / 7)) for a, b in zip(lrs[:-1], lrs[1:], strict=True))
    with pytest.raises(ValueError, match="num_passes"):
        bench.paper_schedule(0)


def test_reproduce_iwae_runs_the_paper_schedule_on_the_chosen_device(tmp_path, fake_mnist,
                                                                     load_benchmark):
    import json

    bench = load_benchmark("reproduce_iwae")
    fake_mnist(30)
    bench.main(["--paper-schedule", "--passes", "2", "--batch-size", "10", "--models", "vae",
                "--n-eval", "3", "--k-eval", "5", "--device", "cpu", "--threads", "1",
                "--out", str(tmp_path / "runs")])
    result = json.loads((tmp_path / "runs" / "vae.json").read_text())
    assert result["schedule"] == "paper" and result["epochs"] == 4  # 1 + 3 epochs
    assert result["steps"] == 4 * 3 and result["device"] == "cpu"  # 25 images, batches of 10
    assert [entry["lr"] for entry in result["log"]] == [1e-3] + [1e-3 * 10 ** (-1 / 7)] * 3
