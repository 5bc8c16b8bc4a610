"""course_utils.vi against closed forms, torch.distributions, Monte Carlo and its own properties."""

import itertools
import math

import pytest
import torch
from torch import distributions as D

from course_utils import vi


@pytest.fixture(autouse=True)
def _float64_one_thread():
    """Double precision for tight comparisons, and one thread: these tensors are tiny, and on a
    busy 2-core machine OpenMP/MKL synchronisation made small matmuls 100x slower. Restored
    after each test."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


def _spd(*shape: int, g: torch.Generator, jitter: float = 0.1) -> torch.Tensor:
    """Random symmetric positive-definite matrices (*shape[:-1], d, d)."""
    a = torch.randn(*shape, shape[-1], generator=g)
    return a @ a.mT + jitter * torch.eye(shape[-1])


@pytest.fixture
def g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# --------------------------------------------------------------------------- kl_mvn


@pytest.mark.parametrize("d", [1, 2, 5])
def test_kl_mvn_matches_torch_distributions(g, d):
    mu1, mu2 = torch.randn(6, d, generator=g), 3 * torch.randn(6, d, generator=g)
    cov1, cov2 = _spd(6, d, g=g), _spd(6, d, g=g)
    expected = D.kl_divergence(D.MultivariateNormal(mu1, cov1), D.MultivariateNormal(mu2, cov2))
    torch.testing.assert_close(vi.kl_mvn(mu1, cov1, mu2, cov2), expected)


def test_kl_mvn_matches_monte_carlo(g):
    mu1, mu2 = torch.tensor([0.5, -1.0]), torch.tensor([1.5, 0.0])
    cov1, cov2 = torch.tensor([[1.0, 0.6], [0.6, 2.0]]), torch.tensor([[2.0, -0.3], [-0.3, 1.0]])
    p, q = D.MultivariateNormal(mu1, cov1), D.MultivariateNormal(mu2, cov2)
    z = mu1 + torch.randn(200_000, 2, generator=g) @ torch.linalg.cholesky(cov1).T
    terms = p.log_prob(z) - q.log_prob(z)
    stderr = terms.std() / math.sqrt(len(terms))
    assert abs(terms.mean() - vi.kl_mvn(mu1, cov1, mu2, cov2)) < 4 * stderr


def test_kl_mvn_is_nonnegative_and_zero_only_at_equality(g):
    d = 3
    mu1, mu2 = torch.randn(200, d, generator=g), torch.randn(200, d, generator=g)
    cov1, cov2 = _spd(200, d, g=g), _spd(200, d, g=g)
    assert (vi.kl_mvn(mu1, cov1, mu2, cov2) > 1e-6).all()
    assert vi.kl_mvn(mu1, cov1, mu1, cov1).abs().max() < 1e-10
    assert (vi.kl_mvn(mu1, cov1, mu1 + 1e-2, cov1) > 0).all()  # the mean alone differs
    assert (vi.kl_mvn(mu1, cov1, mu1, 1.01 * cov1) > 0).all()  # the covariance alone differs


def test_kl_mvn_is_asymmetric_and_closed_form_in_1d():
    mu1, var1, mu2, var2 = 0.3, 0.5, -1.0, 2.0
    expected = 0.5 * (var1 / var2 + (mu2 - mu1) ** 2 / var2 - 1 + math.log(var2 / var1))
    kl = vi.kl_mvn(torch.tensor([mu1]), torch.tensor([[var1]]), torch.tensor([mu2]),
                   torch.tensor([[var2]]))
    assert kl.item() == pytest.approx(expected, rel=1e-12)
    reverse = vi.kl_mvn(torch.tensor([mu2]), torch.tensor([[var2]]), torch.tensor([mu1]),
                        torch.tensor([[var1]]))
    assert abs(reverse.item() - kl.item()) > 0.5


def test_kl_mvn_broadcasts_batches_and_follows_dtype(g):
    mu1, cov1 = torch.randn(4, 1, 3, generator=g), _spd(4, 1, 3, g=g)
    mu2, cov2 = torch.randn(5, 3, generator=g), _spd(3, g=g)
    kl = vi.kl_mvn(mu1, cov1, mu2, cov2)
    assert kl.shape == (4, 5)
    torch.testing.assert_close(kl[2, 3], vi.kl_mvn(mu1[2, 0], cov1[2, 0], mu2[3], cov2))
    out32 = vi.kl_mvn(mu1.float(), cov1.float(), mu2.float(), cov2.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), kl, rtol=1e-4, atol=1e-5)


def test_kl_mvn_validates_inputs():
    mu, cov = torch.zeros(2), torch.eye(2)
    with pytest.raises(ValueError, match="cov1 must have shape"):
        vi.kl_mvn(mu, torch.eye(3), mu, cov)
    with pytest.raises(ValueError, match="dimensions differ"):
        vi.kl_mvn(mu, cov, torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="positive definite"):
        vi.kl_mvn(mu, cov, mu, torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="nan or inf"):
        vi.kl_mvn(torch.tensor([0.0, float("nan")]), cov, mu, cov)
    with pytest.raises(TypeError, match="floating-point"):
        vi.kl_mvn(torch.zeros(2, dtype=torch.long), cov, mu, cov)
    with pytest.raises(TypeError, match="torch.Tensor"):
        vi.kl_mvn([0.0, 0.0], cov, mu, cov)


# --------------------------------------------------------------------------- mean field


def _correlated(rho: float, mu=(1.0, -2.0), scales=(1.0, 2.0)):
    s = torch.tensor(scales)
    cov = torch.tensor([[1.0, rho], [rho, 1.0]]) * s[:, None] * s[None, :]
    return torch.tensor(mu), cov, torch.linalg.inv(cov)


@pytest.mark.parametrize("i", [0, 1])
def test_mean_field_update_is_the_conditional_of_p(i):
    # For a Gaussian, the optimal q_i given E[z_j] = m is p(z_i | z_j = m) (PRML 10.1.2)
    mu, cov, precision = _correlated(0.7)
    j, m_other = 1 - i, torch.tensor(0.4)
    mean, var = vi.mean_field_update(m_other, mu, precision, i)
    cond_mean = mu[i] + cov[i, j] / cov[j, j] * (m_other - mu[j])
    cond_var = cov[i, i] - cov[i, j] ** 2 / cov[j, j]
    torch.testing.assert_close(mean, cond_mean)
    torch.testing.assert_close(var, cond_var)
    assert mean.shape == () and var.shape == ()


def test_mean_field_fixed_point_has_mean_mu_and_variances_inverse_precision():
    mu, cov, precision = _correlated(0.9)
    path, var = vi.mean_field_gaussian(mu, precision, torch.tensor([-3.0, 4.0]), num_iters=200)
    torch.testing.assert_close(path[-1], mu)
    torch.testing.assert_close(var, 1 / precision.diagonal())
    assert (var < cov.diagonal()).all()  # mean field underestimates the marginal variances
    assert var[0].item() == pytest.approx(1 - 0.9**2)  # 0.19 vs 1.0 at rho = 0.9
    assert path.shape == (401, 2)
    # each half-step moves one coordinate only
    assert ((path[1:] != path[:-1]).sum(1) <= 1).all()


def test_mean_field_reverse_kl_decreases_and_is_minimal_at_the_fixed_point():
    mu, cov, precision = _correlated(0.8)
    path, var = vi.mean_field_gaussian(mu, precision, torch.tensor([2.0, 1.0]), num_iters=30)
    kl = vi.kl_mvn(path, torch.diag(var), mu, cov)
    assert (kl.diff() <= 1e-12).all() and kl[0] > kl[-1] + 0.1
    for scale in (0.9, 1.1):  # other diagonal variances fit worse
        assert vi.kl_mvn(mu, torch.diag(scale * var), mu, cov) > vi.kl_mvn(mu, torch.diag(var),
                                                                            mu, cov)


def test_mean_field_validates_inputs():
    mu, _, precision = _correlated(0.5)
    with pytest.raises(ValueError, match="i must be 0 or 1"):
        vi.mean_field_update(torch.tensor(0.0), mu, precision, 2)
    with pytest.raises(ValueError, match="precision"):
        vi.mean_field_update(torch.tensor(0.0), mu, torch.eye(3), 0)
    with pytest.raises(ValueError, match="diagonal of precision must be positive"):
        vi.mean_field_update(torch.tensor(0.0), mu, -precision, 0)
    with pytest.raises(TypeError, match="m_other"):
        vi.mean_field_update(0.0, mu, precision, 0)
    with pytest.raises(ValueError, match="num_iters"):
        vi.mean_field_gaussian(mu, precision, mu, num_iters=0)


# --------------------------------------------------------------------------- CAVI


def _random_state(n, k, d, g):
    x = 3 * torch.randn(n, d, generator=g)
    m = torch.randn(k, d, generator=g)
    s2 = torch.rand(k, generator=g) + 0.1
    phi = torch.softmax(torch.randn(n, k, generator=g), dim=1)
    return x, phi, m, s2


@pytest.mark.parametrize("d", [1, 3])
def test_cavi_elbo_matches_monte_carlo(g, d):
    n, k, sigma2 = 7, 3, 4.0
    x, phi, m, s2 = _random_state(n, k, d, g)
    s = 100_000
    mu = m + s2.sqrt()[:, None] * torch.randn(s, k, d, generator=g)  # (S, K, D)
    c = torch.multinomial(phi, s, replacement=True, generator=g).T  # (S, N)
    log_p = (D.Normal(0.0, math.sqrt(sigma2)).log_prob(mu).sum((1, 2)) - n * math.log(k)
             + D.Normal(torch.gather(mu, 1, c[..., None].expand(s, n, d)), 1.0)
             .log_prob(x).sum((1, 2)))
    log_q = (D.Normal(m, s2.sqrt()[:, None]).log_prob(mu).sum((1, 2))
             + phi.log().gather(1, c.T).T.sum(1))
    terms = log_p - log_q
    stderr = terms.std() / math.sqrt(s)
    assert abs(terms.mean() - vi.cavi_elbo(x, phi, m, s2, sigma2)) < 4 * stderr


def test_cavi_step_is_coordinate_ascent(g):
    x, _, m, s2 = _random_state(20, 3, 2, g)
    sigma2 = 2.0
    phi, m_new, s2_new = vi.cavi_step(x, m, s2, sigma2)
    # phi maximises the ELBO given (m, s2): its gradient is constant along each row (simplex)
    phi_var = phi.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(vi.cavi_elbo(x, phi_var, m, s2, sigma2), phi_var)
    torch.testing.assert_close(grad - grad.mean(1, keepdim=True), torch.zeros_like(grad))
    # (m, s2) maximise it given phi: zero gradient
    m_var, s2_var = m_new.clone().requires_grad_(True), s2_new.clone().requires_grad_(True)
    grads = torch.autograd.grad(vi.cavi_elbo(x, phi, m_var, s2_var, sigma2), (m_var, s2_var))
    for grad in grads:
        torch.testing.assert_close(grad, torch.zeros_like(grad))


def test_cavi_step_matches_the_papers_closed_forms_by_loops(g):
    x, _, m, s2 = _random_state(6, 2, 2, g)
    sigma2 = 3.0
    phi, m_new, s2_new = vi.cavi_step(x, m, s2, sigma2)
    for i in range(6):
        logits = torch.stack([x[i] @ m[k] - 0.5 * (m[k] @ m[k] + 2 * s2[k]) for k in range(2)])
        torch.testing.assert_close(phi[i], logits.exp() / logits.exp().sum())
    for k in range(2):
        precision = 1 / sigma2 + phi[:, k].sum()
        torch.testing.assert_close(s2_new[k], 1 / precision)
        torch.testing.assert_close(m_new[k], (phi[:, k, None] * x).sum(0) / precision)


def test_cavi_elbo_never_decreases_from_many_random_starts():
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        d, k = 1 + seed % 3, 2 + seed % 4
        x, _, _ = vi.sample_bayesian_mixture(60, k, d, sigma2=9.0, generator=g)
        m_init = 5 * torch.randn(k, d, generator=g)
        elbo = vi.cavi(x, k, 9.0, num_iters=50, tol=0.0, m_init=m_init)["elbo"]
        assert (elbo.diff() >= -1e-9 * elbo.abs()[1:]).all(), f"seed {seed}"
        assert elbo[-1] > elbo[0]


def test_cavi_recovers_well_separated_means():
    g = torch.Generator().manual_seed(3)
    true_mu = torch.tensor([[-8.0, 0.0], [8.0, 0.0], [0.0, 10.0]])
    c = torch.randint(3, (600,), generator=g)
    x = true_mu[c] + torch.randn(600, 2, generator=g)
    runs = [vi.cavi(x, 3, 100.0, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    best = max(runs, key=lambda r: r["elbo"][-1])
    error = min((best["m"][list(p)] - true_mu).norm(dim=1).max()
                for p in itertools.permutations(range(3)))
    assert error < 0.2
    assert (best["s2"] < 0.01).all()  # about 1 / (number of points in the cluster)
    assert (best["phi"].argmax(1) == best["phi"].argmax(1)[c == 0][0]).sum() >= 190


def test_sample_bayesian_mixture_follows_the_generative_story():
    g = torch.Generator().manual_seed(0)
    x, c, mu = vi.sample_bayesian_mixture(4000, 2, 3, sigma2=4.0, generator=g)
    assert x.shape == (4000, 3) and c.shape == (4000,) and mu.shape == (2, 3)
    residual = x - mu[c]
    assert residual.mean(0).abs().max() < 0.1 and (residual.var(0) - 1).abs().max() < 0.1


def test_cavi_validates_inputs(g):
    x, phi, m, s2 = _random_state(5, 2, 2, g)
    with pytest.raises(ValueError, match="m must be"):
        vi.cavi_step(x, m[:, :1], s2, 1.0)
    with pytest.raises(ValueError, match="s2 must have shape"):
        vi.cavi_step(x, m, s2[:1], 1.0)
    with pytest.raises(ValueError, match="positive"):
        vi.cavi_step(x, m, -s2, 1.0)
    with pytest.raises(ValueError, match="sigma2"):
        vi.cavi_step(x, m, s2, 0.0)
    with pytest.raises(ValueError, match="probability vector"):
        vi.cavi_elbo(x, 2 * phi, m, s2, 1.0)
    with pytest.raises(ValueError, match="phi must have shape"):
        vi.cavi_elbo(x, phi.T, m, s2, 1.0)
    with pytest.raises(ValueError, match="exceeds"):
        vi.cavi(x, 6, 1.0)
    with pytest.raises(ValueError, match="m_init must have shape"):
        vi.cavi(x, 3, 1.0, m_init=m)


# --------------------------------------------------------------------------- forward vs reverse KL


def _bimodal():
    return vi.mixture(torch.tensor([0.5, 0.5]), torch.tensor([[-3.0], [3.0]]),
                      torch.tensor([[[0.5]], [[0.5]]]))


def test_forward_kl_fit_is_moment_matching(g):
    target = vi.mixture(torch.tensor([0.2, 0.8]), torch.tensor([[0.0, 1.0], [2.0, -1.0]]),
                        _spd(2, 2, g=g))
    mean, cov = vi.fit_forward_kl(target)
    z = target.sample((200_000,))
    torch.testing.assert_close(mean, z.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(cov, torch.cov(z.T), atol=0.05, rtol=0)
    # a Monte Carlo forward KL (up to a constant) is smallest at the matched moments
    def cross_entropy(m, c):
        return -D.MultivariateNormal(m, c).log_prob(z).mean()
    best = cross_entropy(mean, cov)
    assert best < cross_entropy(mean + 0.1, cov) and best < cross_entropy(mean, 1.2 * cov)
    assert best < cross_entropy(mean, 0.8 * cov)


@pytest.mark.parametrize("diagonal", [True, False])
def test_mixture_log_prob_matches_a_sum_of_gaussian_densities(g, diagonal):
    weights, means = torch.tensor([0.2, 0.5, 0.3]), torch.randn(3, 2, generator=g)
    covs = torch.diag_embed(torch.rand(3, 2, generator=g) + 0.1) if diagonal else _spd(3, 2, g=g)
    target = vi.mixture(2 * weights, means, covs)  # weights are normalised
    z = torch.randn(10, 2, generator=g)
    densities = torch.stack([D.MultivariateNormal(means[k], covs[k]).log_prob(z).exp()
                             for k in range(3)], dim=1)
    torch.testing.assert_close(target.log_prob(z), (densities @ weights).log())
    mean, cov = vi.fit_forward_kl(target)
    torch.testing.assert_close(mean, weights @ means)
    assert cov.shape == (2, 2) and bool((cov == cov.T).all())


def test_reverse_kl_fit_recovers_a_gaussian_target(g):
    mu, cov = torch.tensor([1.0, -2.0]), torch.tensor([[1.0, 0.5], [0.5, 2.0]])
    precision, log_det = torch.linalg.inv(cov), torch.logdet(cov)

    def log_p(z):  # elementwise 2-D Gaussian log-density: no linear solves in the SGD loop
        d0, d1 = z[..., 0] - mu[0], z[..., 1] - mu[1]
        quad = precision[0, 0] * d0**2 + 2 * precision[0, 1] * d0 * d1 + precision[1, 1] * d1**2
        return -0.5 * (quad + 2 * math.log(2 * math.pi) + log_det)

    z = torch.randn(5, 2, generator=g)
    torch.testing.assert_close(log_p(z), D.MultivariateNormal(mu, cov).log_prob(z))
    fit = vi.fit_reverse_kl(log_p, torch.zeros(2), num_steps=500, generator=g)
    torch.testing.assert_close(fit["mu"], mu, atol=0.1, rtol=0)
    torch.testing.assert_close(fit["cov"], cov, atol=0.1, rtol=0)
    assert fit["loss"][-50:].mean() < 0.05 and fit["loss"][0] > 1.0  # the loss is KL(q || p)


@pytest.mark.parametrize("start, mode", [(0.5, 3.0), (-0.5, -3.0)])
def test_reverse_kl_seeks_a_mode_forward_kl_covers_both(g, start, mode):
    target = _bimodal()
    fit = vi.fit_reverse_kl(target.log_prob, torch.tensor([start]), num_steps=200, generator=g)
    assert abs(fit["mu"].item() - mode) < 0.1
    assert abs(fit["cov"].item() - 0.5) < 0.1  # the width of one mode
    mean, cov = vi.fit_forward_kl(target)
    assert abs(mean.item()) < 1e-12 and cov.item() == pytest.approx(0.5 + 9.0)


def test_mixture_and_fits_validate_inputs():
    with pytest.raises(ValueError, match="expected weights"):
        vi.mixture(torch.ones(3), torch.zeros(2, 1), torch.ones(2, 1, 1))
    with pytest.raises(ValueError, match="non-negative"):
        vi.mixture(-torch.ones(2), torch.zeros(2, 1), torch.ones(2, 1, 1))
    with pytest.raises(TypeError, match="Gaussian mixture"):
        vi.fit_forward_kl(D.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match="lr"):
        vi.fit_reverse_kl(_bimodal().log_prob, torch.zeros(1), lr=-1.0)
    with pytest.raises(ValueError, match="mu_init"):
        vi.fit_reverse_kl(_bimodal().log_prob, torch.zeros(()))


# --------------------------------------------------------------------------- exact answers


@pytest.fixture
def model(g) -> vi.LinearGaussian:
    return vi.LinearGaussian(torch.randn(5, 2, generator=g), torch.randn(5, generator=g), 0.3)


def test_linear_gaussian_marginal_and_posterior_agree_with_bayes_rule(model, g):
    x, _ = model.sample(4, generator=g)
    mean, cov = model.posterior(x)
    z = torch.randn(4, 2, generator=g)
    # log p(z | x) = log p(x, z) - log p(x) for any z
    log_post = D.MultivariateNormal(mean, cov).log_prob(z)
    torch.testing.assert_close(model.log_joint(x, z) - model.log_marginal(x), log_post)


def test_linear_gaussian_samples_have_the_marginal_covariance(model, g):
    x, z = model.sample(100_000, generator=g)
    cov = model.W @ model.W.T + model.sigma2 * torch.eye(5)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.1, rtol=0.02)
    torch.testing.assert_close(z.mean(0), torch.zeros(2), atol=0.02, rtol=0)


def test_elbo_gap_equals_kl_to_the_exact_posterior(model, g):
    x, _ = model.sample(6, generator=g)
    post_mean, post_cov = model.posterior(x)
    q_mean = post_mean + torch.randn(6, 2, generator=g)
    q_cov = _spd(6, 2, g=g)
    gap = model.log_marginal(x) - model.elbo(x, q_mean, q_cov)
    torch.testing.assert_close(gap, vi.kl_mvn(q_mean, q_cov, post_mean, post_cov))
    assert (gap > 0).all()
    torch.testing.assert_close(model.elbo(x, post_mean, post_cov), model.log_marginal(x))


def test_elbo_closed_form_matches_monte_carlo(model, g):
    x, _ = model.sample(1, generator=g)
    q_mean, q_cov = torch.tensor([[0.3, -0.2]]), torch.tensor([[0.5, 0.1], [0.1, 0.3]])
    q = D.MultivariateNormal(q_mean, q_cov)
    z = q.sample((200_000,))  # (S, 1, 2)
    terms = model.log_joint(x, z) - q.log_prob(z)
    stderr = terms.std() / math.sqrt(len(terms))
    assert abs(terms.mean() - model.elbo(x, q_mean, q_cov)) < 4 * stderr


def test_importance_sampling_is_exact_with_the_posterior_as_proposal(model, g):
    x, _ = model.sample(3, generator=g)
    mean, cov = model.posterior(x)
    estimate = vi.importance_log_marginal(model.log_joint, x, mean, cov, 5, generator=g)
    torch.testing.assert_close(estimate, model.log_marginal(x))


def test_importance_sampling_approaches_log_marginal_as_samples_grow(model, g):
    x, _ = model.sample(1, generator=g)
    exact = model.log_marginal(x)
    zero, eye = torch.zeros(2), torch.eye(2)
    errors = {}
    for s in (1, 10, 100, 10_000):  # 30 independent estimates: x repeated along the batch
        estimates = vi.importance_log_marginal(model.log_joint, x.expand(30, -1), zero, eye, s,
                                               generator=g)
        errors[s] = (estimates - exact).abs().mean().item()
        assert estimates.mean() < exact  # log of an unbiased estimate: biased low (Jensen)
    assert errors[1] > errors[10] > errors[100] > errors[10_000]
    assert errors[10_000] < 0.05


def test_importance_sampling_with_one_sample_averages_to_the_elbo(model, g):
    x, _ = model.sample(1, generator=g)
    q_mean, q_cov = model.posterior(x)[0] + 0.2, torch.eye(2) * 0.05
    estimates = vi.importance_log_marginal(model.log_joint, x.expand(50_000, 5), q_mean, q_cov, 1,
                                           generator=g)
    stderr = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - model.elbo(x, q_mean, q_cov)) < 4 * stderr


def test_linear_gaussian_and_importance_validate_inputs(model):
    with pytest.raises(ValueError, match="b must have shape"):
        vi.LinearGaussian(torch.randn(5, 2), torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="sigma2"):
        vi.LinearGaussian(torch.randn(5, 2), torch.zeros(5), -1.0)
    with pytest.raises(ValueError, match="x must have shape"):
        model.log_marginal(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="num_samples"):
        vi.importance_log_marginal(model.log_joint, torch.zeros(1, 5), torch.zeros(2),
                                   torch.eye(2), 0)
    with pytest.raises(ValueError, match="positive definite"):
        vi.importance_log_marginal(model.log_joint, torch.zeros(1, 5), torch.zeros(2),
                                   -torch.eye(2), 10)


# --------------------------------------------------------------------------- plot helper


def test_covariance_ellipse_traces_the_n_std_contour():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_utils.plots import covariance_ellipse

    mean, cov = torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 0.8], [0.8, 1.0]])
    fig, ax = plt.subplots()
    line = covariance_ellipse(mean, cov, ax=ax, n_std=1.5, color="C3")
    points = torch.tensor(line.get_xydata()) - mean
    mahalanobis = (points @ torch.linalg.inv(cov) * points).sum(1)
    torch.testing.assert_close(mahalanobis, torch.full_like(mahalanobis, 1.5**2))
    assert line.get_color() == "C3"
    with pytest.raises(ValueError, match="positive definite"):
        covariance_ellipse(mean, -cov, ax=ax)
    with pytest.raises(ValueError, match="expected mean"):
        covariance_ellipse(torch.zeros(3), cov, ax=ax)
    plt.close(fig)


def test_outputs_follow_the_inputs_dtype():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 2, generator=g, dtype=torch.float32)
    run = vi.cavi(x, 2, 4.0, num_iters=5, generator=g)
    assert all(run[key].dtype == torch.float32 for key in ("phi", "m", "s2", "elbo"))
    model = vi.LinearGaussian(torch.randn(3, 2, generator=g, dtype=torch.float32),
                              torch.zeros(3, dtype=torch.float32), 0.5)
    x_obs, z = model.sample(4, generator=g)
    assert x_obs.dtype == z.dtype == torch.float32
    mean, cov = model.posterior(x_obs)
    estimate = vi.importance_log_marginal(model.log_joint, x_obs, mean, cov, 8, generator=g)
    assert estimate.dtype == torch.float32 and estimate.shape == (4,)
    assert model.elbo(x_obs, mean, cov).dtype == torch.float32
    fit = vi.fit_reverse_kl(lambda z: -0.5 * z.pow(2).sum(-1), torch.zeros(2), num_steps=3)
    assert fit["mu"].dtype == fit["cov"].dtype == torch.float64  # mu_init's (this module's default)
