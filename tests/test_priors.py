"""The mixture-of-Gaussians prior: densities against torch.distributions, an unbiased KL."""

import math

import pytest
import torch
from torch import distributions as D

from course_utils.data import load_digits
from course_utils.priors import (
    MixturePrior,
    MixturePriorVAE,
    aggregate_posterior_kl,
    diagonal_gaussian_log_density,
    mixture_log_density,
    monte_carlo_kl,
)
from course_utils.train import fit
from course_utils.vae import VAE


def _mixture(seed, k=3, z_dim=2):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(k, generator=g, dtype=torch.float64)
    means = 2 * torch.randn(k, z_dim, generator=g, dtype=torch.float64)
    logvars = 0.5 * torch.randn(k, z_dim, generator=g, dtype=torch.float64)
    return logits, means, logvars


def _torch_mixture(logits, means, logvars):
    components = D.Independent(D.Normal(means, torch.exp(0.5 * logvars)), 1)
    return D.MixtureSameFamily(D.Categorical(logits=logits), components)


@pytest.mark.parametrize("seed", range(3))
def test_mixture_log_density_matches_torch_distributions(seed):
    logits, means, logvars = _mixture(seed, k=4, z_dim=3)
    z = 3 * torch.randn(50, 3, dtype=torch.float64)
    expected = _torch_mixture(logits, means, logvars).log_prob(z)
    torch.testing.assert_close(mixture_log_density(z, logits, means, logvars), expected)


def test_mixture_log_density_is_stable_far_away():
    logits, means, logvars = _mixture(0)
    z = torch.tensor([[300.0, -300.0]], dtype=torch.float64)
    out = mixture_log_density(z, logits, means, logvars)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, _torch_mixture(logits, means, logvars).log_prob(z))


def test_diagonal_gaussian_log_density_matches_torch_distributions():
    mu, logvar, z = (torch.randn(6, 4, dtype=torch.float64) for _ in range(3))
    expected = D.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    torch.testing.assert_close(diagonal_gaussian_log_density(z, mu, logvar), expected)


@pytest.mark.parametrize("seed", range(3))
def test_monte_carlo_kl_is_unbiased_for_one_component(seed):
    """With one component the mixture is a Gaussian, whose KL has a closed form."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(1, 2, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(1, 2, generator=g, dtype=torch.float64)
    _, means, logvars = _mixture(seed, k=1)
    logits = torch.zeros(1, dtype=torch.float64)
    n = 200_000
    z = mu + torch.exp(0.5 * logvar) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    estimates = monte_carlo_kl(z, mu.expand(n, 2), logvar.expand(n, 2),
                               lambda v: mixture_log_density(v, logits, means, logvars))
    exact = D.kl_divergence(D.Normal(mu[0], torch.exp(0.5 * logvar[0])),
                            D.Normal(means[0], torch.exp(0.5 * logvars[0]))).sum()
    stderr = estimates.std() / math.sqrt(n)
    assert estimates.std() > 0.05  # single estimates do vary: it is a Monte Carlo estimate
    assert abs(estimates.mean() - exact) < 4 * stderr


def test_monte_carlo_kl_of_a_mixture_is_nonnegative_on_average():
    logits, means, logvars = _mixture(1)
    mu, logvar = torch.tensor([[0.5, -1.0]], dtype=torch.float64), torch.zeros(1, 2).double()
    z = mu + torch.randn(100_000, 2, dtype=torch.float64)
    kl = monte_carlo_kl(z, mu.expand_as(z), logvar.expand_as(z),
                        lambda v: mixture_log_density(v, logits, means, logvars))
    assert kl.mean() > 0


def test_monte_carlo_kl_validates():
    z = torch.zeros(3, 2)
    with pytest.raises(TypeError, match="log_prior"):
        monte_carlo_kl(z, z, z, "N(0, I)")
    with pytest.raises(ValueError, match="shape"):
        monte_carlo_kl(z, z, z, lambda v: v.sum())
    with pytest.raises(ValueError, match="same shape"):
        monte_carlo_kl(z, z[:2], z, lambda v: v.sum(-1))


def test_mixture_log_density_validates():
    logits, means, logvars = _mixture(0)
    z = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="means and logvars must have shape"):
        mixture_log_density(z, logits, means[:2], logvars)
    with pytest.raises(ValueError, match="2 dimensions"):
        mixture_log_density(z[0], logits, means, logvars)
    with pytest.raises(TypeError, match="floating-point"):
        mixture_log_density(z.long(), logits, means, logvars)
    with pytest.raises(ValueError, match="nan or inf"):
        mixture_log_density(z, logits, means * float("inf"), logvars)


# --------------------------------------------------------------------------- the module


def test_mixture_prior_samples_follow_its_density():
    torch.manual_seed(0)
    prior = MixturePrior(z_dim=2, num_components=2).double()
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([0.0, math.log(3.0)]))  # weights 1/4, 3/4
        prior.means.copy_(torch.tensor([[-10.0, 0.0], [10.0, 0.0]]))
        prior.logvars.zero_()
    z = prior.sample(40_000)
    assert z.shape == (40_000, 2)
    assert (z[:, 0] > 0).double().mean().item() == pytest.approx(0.75, abs=0.01)
    right = z[z[:, 0] > 0]
    assert right.mean(0).tolist() == pytest.approx([10.0, 0.0], abs=0.03)
    assert right.var(0).tolist() == pytest.approx([1.0, 1.0], abs=0.05)
    torch.testing.assert_close(prior.log_prob(z[:5]), _torch_mixture(
        prior.logits.detach(), prior.means.detach(), prior.logvars.detach()).log_prob(z[:5]))


def test_mixture_prior_validates():
    with pytest.raises(ValueError, match="num_components"):
        MixturePrior(2, 0)
    with pytest.raises(ValueError, match="init_spread"):
        MixturePrior(2, 3, init_spread=0.0)


def _digits(n):
    x, _ = load_digits("train")
    return (x[:n] > 0.5).float()


def test_mixture_vae_with_a_standard_normal_component_matches_the_plain_vae():
    """One component N(0, I): the MC KL must average to the closed-form KL of ``VAE``."""
    torch.manual_seed(0)
    plain = VAE(64, z_dim=2, hidden_dims=(32,)).double()
    mixture = MixturePriorVAE(64, z_dim=2, hidden_dims=(32,), num_components=1).double()
    mixture.load_state_dict({**plain.state_dict(), **{
        f"prior.{k}": v for k, v in mixture.prior.state_dict().items()}})
    with torch.no_grad():
        mixture.prior.means.zero_()
        mixture.prior.logvars.zero_()
        x = _digits(2).double().repeat(10_000, 1)
        mc, exact = mixture.loss(x), plain.loss(x)
    assert mc["kl"].item() == pytest.approx(exact["kl"].item(), abs=0.03)
    assert mc["rec"].item() == pytest.approx(exact["rec"].item(), rel=0.01)


def test_mixture_vae_loss_is_minus_the_one_sample_log_weight():
    torch.manual_seed(0)
    model = MixturePriorVAE(64, z_dim=2, hidden_dims=(32,), num_components=5)
    x = _digits(8)
    torch.manual_seed(4)
    parts = model.loss(x)
    torch.manual_seed(4)
    log_w = model.log_weights(x, 1)
    assert log_w.shape == (1, 8)
    torch.testing.assert_close(parts["loss"], -log_w.mean())
    torch.testing.assert_close(parts["loss"], parts["rec"] + parts["kl"])
    assert model.log_weights(x, 7).shape == (7, 8)
    samples = model.sample(6)
    assert samples.shape == (6, 64) and 0 <= samples.min() and samples.max() <= 1


def test_mixture_vae_trains_its_prior():
    torch.manual_seed(0)
    model = MixturePriorVAE(64, z_dim=2, hidden_dims=(64,), num_components=5)
    before = model.prior.means.detach().clone()
    history = fit(model, _digits(256), num_epochs=8, lr=3e-3, progress=False, seed=0)
    assert history.train["loss"][-1] < history.train["loss"][0] - 5
    assert (model.prior.means.detach() - before).abs().max() > 0.01


def test_mixture_vae_validates():
    model = MixturePriorVAE(64, 2, (8,), num_components=3)
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        model.loss(torch.zeros(3, 10))
    with pytest.raises(ValueError, match="beta"):
        model.loss(torch.zeros(3, 64), beta=-1.0)
    with pytest.raises(ValueError, match="k must be"):
        model.log_weights(torch.zeros(3, 64), 0)


# --------------------------------------------------------------------------- aggregate posterior


def _standard_normal(z):
    return D.Normal(0.0, 1.0).log_prob(z).sum(-1)


def test_aggregate_kl_of_one_point_is_the_gaussian_kl():
    mu, logvar = torch.tensor([[1.0, -0.5]]).double(), torch.tensor([[-1.0, 0.3]]).double()
    torch.manual_seed(0)
    estimate = aggregate_posterior_kl(mu, logvar, _standard_normal, num_samples=100_000)
    exact = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum()
    assert estimate.item() == pytest.approx(exact.item(), abs=0.02)


def test_aggregate_kl_of_separated_posteriors_loses_log_n():
    """Posteriors that do not overlap: log q(z) = log q(z|x_n) - log N, so the aggregate KL is
    the average KL minus log N (the mutual information I(x; z) is log N)."""
    mu = torch.tensor([[-30.0, 0.0], [30.0, 0.0], [0.0, 30.0]]).double()
    logvar = torch.full((3, 2), -2.0).double()
    wide = lambda z: D.Normal(0.0, 20.0).log_prob(z).sum(-1)
    torch.manual_seed(0)
    estimate = aggregate_posterior_kl(mu, logvar, wide, num_samples=20_000, chunk=1000)
    log_q = D.Normal(mu, torch.exp(0.5 * logvar))
    z = log_q.sample((20_000,))
    average_kl = (log_q.log_prob(z).sum(-1) - wide(z)).mean()
    assert estimate.item() == pytest.approx(average_kl.item() - math.log(3), abs=0.03)


def test_aggregate_kl_is_at_most_the_average_kl():
    torch.manual_seed(0)
    mu, logvar = torch.randn(50, 2).double(), 0.5 * torch.randn(50, 2).double() - 1
    average_kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
    estimate = aggregate_posterior_kl(mu, logvar, _standard_normal, num_samples=200)
    assert 0 <= estimate.item() < average_kl.item()


def test_aggregate_kl_validates():
    with pytest.raises(ValueError, match="same shape"):
        aggregate_posterior_kl(torch.zeros(3, 2), torch.zeros(3, 1), _standard_normal)
    with pytest.raises(ValueError, match="num_samples"):
        aggregate_posterior_kl(torch.zeros(3, 2), torch.zeros(3, 2), _standard_normal, 0)
