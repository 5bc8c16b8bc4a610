"""Tests of course_utils.gmm against scipy and scikit-learn, plus EM's properties."""

import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp as np_logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture as SklearnMixture

from course_utils import gmm
from course_utils.data import gaussian_blobs

F64 = torch.float64


def random_mixture(k, d, seed=0, spread=3.0, dtype=F64):
    """Random weights (K,), means (K, D) and well-conditioned full covs (K, D, D)."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(k, generator=g, dtype=dtype) + 0.2
    means = spread * torch.randn(k, d, generator=g, dtype=dtype)
    a = torch.randn(k, d, d, generator=g, dtype=dtype)
    covs = a @ a.mT / d + 0.2 * torch.eye(d, dtype=dtype)
    return weights / weights.sum(), means, covs


def mixture_data(n, k, d, seed=0):
    """n points drawn from a random mixture, and that mixture."""
    params = random_mixture(k, d, seed)
    torch.manual_seed(seed)
    x, _ = gmm.gmm_sample(n, *params)
    return x, params


def scipy_log_joint(x, weights, means, covs):
    """log π_k + log N(x_n | μ_k, Σ_k) by scipy: (N, K) numpy."""
    x = x.numpy()
    covs = covs.numpy() if covs.ndim == 3 else np.stack([np.diag(c) for c in covs.numpy()])
    return np.stack(
        [np.log(w) + multivariate_normal(m, c).logpdf(x).reshape(-1)
         for w, m, c in zip(weights.numpy(), means.numpy(), covs, strict=True)], axis=1)


def fit_sklearn(x, params, covariance_type="full", **kwargs):
    weights, means, covs = (p.numpy() for p in params)
    if covariance_type == "full":
        precisions = np.linalg.inv(covs)
        precisions = 0.5 * (precisions + precisions.transpose(0, 2, 1))  # sklearn checks it
    else:
        precisions = 1.0 / covs
    model = SklearnMixture(
        len(weights), covariance_type=covariance_type, weights_init=weights, means_init=means,
        precisions_init=precisions, **kwargs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x.numpy())


# --------------------------------------------------------------------------- densities


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_gaussian_log_density_matches_scipy(d, scale):
    _, means, covs = random_mixture(1, d, seed=d)
    x = scale * torch.randn(7, d, dtype=F64) + 1e3 * scale
    mean, cov = 1e3 * scale + scale * means[0], scale**2 * covs[0]
    expected = multivariate_normal(mean.numpy(), cov.numpy()).logpdf(x.numpy()).reshape(-1)
    np.testing.assert_allclose(gmm.gaussian_log_density(x, mean, cov).numpy(), expected,
                               rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_component_log_densities_match_scipy_across_row_blocks(covariance_type, monkeypatch):
    monkeypatch.setattr(gmm, "_CHUNK_ELEMENTS", 64)  # many small row blocks
    weights, means, covs = random_mixture(4, 3, seed=1)
    if covariance_type == "diag":
        covs = covs.diagonal(dim1=-2, dim2=-1).clone()
    x = 3 * torch.randn(101, 3, dtype=F64)
    got = gmm.log_joint(x, weights, means, covs).numpy()
    np.testing.assert_allclose(got, scipy_log_joint(x, weights, means, covs), rtol=1e-10)


def test_gmm_log_likelihood_is_the_sum_of_log_marginals():
    weights, means, covs = random_mixture(3, 2, seed=2)
    x = 10 * torch.randn(40, 2, dtype=F64)  # far points: densities underflow, logs do not
    expected = np_logsumexp(scipy_log_joint(x, weights, means, covs), axis=1).sum()
    got = gmm.gmm_log_likelihood(x, weights, means, covs)
    assert got.shape == () and got.dtype == F64
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_e_step_is_the_posterior():
    weights, means, covs = random_mixture(3, 2, seed=3)
    x = 2 * torch.randn(30, 2, dtype=F64)
    joint = scipy_log_joint(x, weights, means, covs)
    expected = np.exp(joint - np_logsumexp(joint, axis=1, keepdims=True))
    resp = gmm.e_step(x, weights, means, covs)
    np.testing.assert_allclose(resp.numpy(), expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(resp.sum(1).numpy(), 1.0, rtol=1e-12)


# --------------------------------------------------------------------------- M-step and ELBO


def test_m_step_matches_the_weighted_formulas(monkeypatch):
    monkeypatch.setattr(gmm, "_CHUNK_ELEMENTS", 32)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(50, 3, generator=g, dtype=F64)
    resp = torch.softmax(torch.randn(50, 4, generator=g, dtype=F64), 1)
    weights, means, covs = gmm.m_step(x, resp)
    xn, rn = x.numpy(), resp.numpy()
    nk = rn.sum(0)
    np.testing.assert_allclose(weights.numpy(), nk / 50, rtol=1e-12)
    for k in range(4):
        mu = (rn[:, k:k + 1] * xn).sum(0) / nk[k]
        cov = np.cov(xn.T, aweights=rn[:, k], bias=True)
        np.testing.assert_allclose(means[k].numpy(), mu, rtol=1e-10)
        np.testing.assert_allclose(covs[k].numpy(), cov, rtol=1e-10, atol=1e-13)
    _, _, diag = gmm.m_step(x, resp, reg_covar=0.5, covariance_type="diag")
    np.testing.assert_allclose(diag.numpy(), covs.diagonal(dim1=-2, dim2=-1).numpy() + 0.5,
                               rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fast_scatter_agrees_with_the_centred_formula(covariance_type, monkeypatch):
    monkeypatch.setattr(gmm, "_CHUNK_ELEMENTS", 64)
    g = torch.Generator().manual_seed(10)
    x = torch.randn(60, 3, generator=g, dtype=F64)
    x[:3] = 1e4 + 1e-4 * torch.randn(3, 3, generator=g, dtype=F64)  # tight and far away
    resp = torch.softmax(torch.randn(60, 3, generator=g, dtype=F64), 1)
    resp[:3], resp[3:, 2] = torch.tensor([0.0, 0.0, 1.0], dtype=F64), 0.0
    resp = resp / resp.sum(1, keepdim=True)
    means = resp.T @ x / resp.sum(0).unsqueeze(1)
    fast = gmm._scatter_by_moments(x, resp, means, covariance_type)
    exact = gmm._scatter_centred(x, resp, means, covariance_type)
    np.testing.assert_allclose(fast.numpy(), exact.numpy(), rtol=1e-9, atol=1e-12)
    assert fast[2].abs().max() < 1e-6  # the far component was redone centred, not cancelled


def test_m_step_in_float32_is_centred_and_accurate():
    g = torch.Generator().manual_seed(11)
    x = 100 + 0.01 * torch.randn(200, 2, generator=g, dtype=F64)
    resp = torch.softmax(torch.randn(200, 2, generator=g, dtype=F64), 1)
    expected = gmm.m_step(x, resp)[2]
    got = gmm.m_step(x.float(), resp.float())[2]
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), expected.numpy(), rtol=1e-3, atol=2e-7)


def test_m_step_maximises_the_elbo_over_parameters():
    x, params = mixture_data(200, 3, 2, seed=5)
    resp = gmm.e_step(x, *params)
    best = gmm.m_step(x, resp)
    top = gmm.gmm_elbo(x, resp, *best)
    for seed in range(5):  # any other parameters give a lower ELBO for this q
        other = random_mixture(3, 2, seed=100 + seed)
        nudged = (best[0], best[1] + 0.05 * other[1], best[2] + 0.05 * other[2])
        assert gmm.gmm_elbo(x, resp, *other) < top
        assert gmm.gmm_elbo(x, resp, *nudged) < top


def test_elbo_equals_log_likelihood_at_the_posterior_and_is_below_elsewhere():
    x, params = mixture_data(300, 3, 2, seed=6)
    log_lik = gmm.gmm_log_likelihood(x, *params)
    posterior = gmm.e_step(x, *params)
    assert gmm.gmm_elbo(x, posterior, *params).item() == pytest.approx(log_lik.item(), rel=1e-12)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        q = torch.softmax(3 * torch.randn(300, 3, generator=g, dtype=F64), 1)
        gap = (q * (q.log() - posterior.log())).sum()  # Σ_n KL(q_n || p(z_n | x_n))
        elbo = gmm.gmm_elbo(x, q, *params)
        assert elbo < log_lik
        assert (log_lik - elbo).item() == pytest.approx(gap.item(), rel=1e-9)


def test_elbo_handles_hard_assignments():
    x, params = mixture_data(20, 3, 2, seed=7)
    hard = torch.nn.functional.one_hot(torch.arange(20) % 3, 3).to(F64)
    elbo = gmm.gmm_elbo(x, hard, *params)
    expected = gmm.log_joint(x, *params)[torch.arange(20), torch.arange(20) % 3].sum()
    assert torch.isfinite(elbo) and elbo.item() == pytest.approx(expected.item(), rel=1e-12)


# --------------------------------------------------------------------------- sampling


def test_gmm_sample_statistics_and_reproducibility():
    weights, means, covs = random_mixture(3, 2, seed=8)
    torch.manual_seed(0)
    x, z = gmm.gmm_sample(60_000, weights, means, covs)
    assert x.shape == (60_000, 2) and x.dtype == F64 and z.dtype == torch.int64
    freq = torch.bincount(z, minlength=3).to(F64) / 60_000
    np.testing.assert_allclose(freq.numpy(), weights.numpy(), atol=0.01)
    for k in range(3):
        xk = x[z == k].numpy()
        np.testing.assert_allclose(xk.mean(0), means[k].numpy(), atol=0.05)
        np.testing.assert_allclose(np.cov(xk.T), covs[k].numpy(), atol=0.06)
    torch.manual_seed(0)
    again, z_again = gmm.gmm_sample(60_000, weights, means, covs)
    assert torch.equal(x, again) and torch.equal(z, z_again)


def test_gmm_sample_diagonal():
    weights, means, covs = random_mixture(2, 3, seed=9)
    variances = covs.diagonal(dim1=-2, dim2=-1).clone()
    x, z = gmm.gmm_sample(40_000, weights, means, variances)
    for k in range(2):
        np.testing.assert_allclose(x[z == k].var(0).numpy(), variances[k].numpy(), rtol=0.05)


# --------------------------------------------------------------------------- EM vs scikit-learn


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("seed", [0, 1])
def test_em_matches_sklearn_from_the_same_start(covariance_type, seed):
    x, _ = mixture_data(500, 4, 3, seed=seed)
    start = gmm.GaussianMixture(4, covariance_type, max_iter=0, seed=seed, init="random").fit(x)
    params = (start.weights, start.means, start.covariances)
    ours = gmm.GaussianMixture(4, covariance_type, max_iter=30, tol=0.0, weights_init=params[0],
                               means_init=params[1], covariances_init=params[2]).fit(x)
    theirs = fit_sklearn(x, params, covariance_type, max_iter=30, tol=0.0)
    assert ours.n_iter == theirs.n_iter_ == 30
    np.testing.assert_allclose(ours.weights.numpy(), theirs.weights_, atol=1e-6)
    np.testing.assert_allclose(ours.means.numpy(), theirs.means_, atol=1e-6)
    np.testing.assert_allclose(ours.covariances.numpy(), theirs.covariances_, atol=1e-6)
    assert abs(ours.score(x) - theirs.score(x.numpy())) < 1e-6
    assert ours.history["log_likelihood"][-2] == pytest.approx(theirs.lower_bound_, abs=1e-6)
    np.testing.assert_allclose(ours.log_prob(x).numpy(), theirs.score_samples(x.numpy()),
                               atol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(x).numpy(), theirs.predict_proba(x.numpy()),
                               atol=1e-6)


def test_em_stops_where_sklearn_stops():
    x, _ = gaussian_blobs(600, seed=3)
    start = gmm.GaussianMixture(3, max_iter=0, init="random", seed=0).fit(x)
    params = (start.weights, start.means, start.covariances)
    ours = gmm.GaussianMixture(3, weights_init=params[0], means_init=params[1],
                               covariances_init=params[2], tol=1e-4).fit(x)
    theirs = fit_sklearn(x, params, tol=1e-4)
    assert ours.converged and theirs.converged_
    assert ours.n_iter == theirs.n_iter_ > 5
    assert abs(ours.score(x) - theirs.score(x.numpy())) < 1e-8


# --------------------------------------------------------------------------- EM's properties


@pytest.mark.parametrize("seed", range(12))
def test_log_likelihood_never_decreases_and_elbo_interleaves(seed):
    g = torch.Generator().manual_seed(seed)
    k, d = int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(1, 5, (1,), generator=g))
    x, _ = mixture_data(int(torch.randint(60 * k, 400, (1,), generator=g)), k, d, seed=seed)
    model = gmm.GaussianMixture(  # reg_covar=0: exact EM, where the guarantee holds
        k, covariance_type=("full", "diag")[seed % 3 == 0], reg_covar=0.0,
        max_iter=40, tol=0.0, init=("kmeans++", "random")[seed % 2], seed=seed,
    ).fit(x)
    ll, elbo = np.array(model.history["log_likelihood"]), np.array(model.history["elbo"])
    assert len(ll) == 41 and len(elbo) == 40
    slack = 1e-10 * np.abs(ll).max()
    assert np.all(np.diff(ll) >= -slack), np.diff(ll).min()
    assert np.all(elbo >= ll[:-1] - slack)  # the M-step raises the ELBO from ll(θ_t)
    assert np.all(ll[1:] >= elbo - slack)  # the new log-likelihood bounds the ELBO (Jensen)


def test_history_elbo_is_the_elbo_of_the_last_posterior_and_parameters():
    x, _ = gaussian_blobs(300, seed=1)
    first = gmm.GaussianMixture(3, max_iter=1, tol=0.0, seed=0).fit(x)
    start = gmm.GaussianMixture(3, max_iter=0, seed=0).fit(x)
    resp = gmm.e_step(x, start.weights, start.means, start.covariances)
    expected = gmm.gmm_elbo(x, resp, first.weights, first.means, first.covariances) / 300
    assert first.history["elbo"][0] == pytest.approx(expected.item(), rel=1e-12)
    assert first.history["log_likelihood"][0] == pytest.approx(start.score(x), rel=1e-12)


def test_restarts_can_reach_different_optima_and_blobs_are_recovered():
    x, z = gaussian_blobs(600, seed=0)
    scores = {round(gmm.GaussianMixture(3, seed=s, init="random").fit(x).score(x), 4)
              for s in range(6)}
    best = gmm.GaussianMixture(3, seed=0).fit(x)
    assert max(scores) >= best.score(x) - 1e-3
    assert adjusted_rand_score(z.numpy(), best.predict(x).numpy()) > 0.8
    sampled, labels = best.sample(5)
    assert sampled.shape == (5, 2) and labels.shape == (5,)


def test_empty_component_keeps_its_parameters_and_stays_finite():
    x, _ = gaussian_blobs(300, seed=2)
    weights = torch.tensor([0.4, 0.4, 0.2], dtype=F64)
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [1e4, 1e4]], dtype=F64)  # nobody near #3
    covs = torch.eye(2, dtype=F64).repeat(3, 1, 1)
    model = gmm.GaussianMixture(3, weights_init=weights, means_init=means,
                                covariances_init=covs, max_iter=20, tol=0.0).fit(x)
    assert torch.isfinite(model.means).all() and torch.isfinite(model.covariances).all()
    assert model.weights[2] < 1e-12 and torch.equal(model.means[2], means[2])
    assert np.all(np.isfinite(model.history["log_likelihood"]))
    assert np.all(np.diff(model.history["log_likelihood"]) >= -1e-9)


def test_collapse_onto_one_point_is_caught_by_reg_covar_or_reported():
    x, _ = gaussian_blobs(200, seed=3)
    x = torch.cat([x, torch.tensor([[50.0, 50.0]], dtype=F64)])  # an isolated outlier
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [50.0, 50.0]], dtype=F64)
    kwargs = dict(means_init=means, max_iter=10, tol=0.0)
    model = gmm.GaussianMixture(3, reg_covar=1e-6, **kwargs).fit(x)
    np.testing.assert_allclose(model.covariances[2].numpy(), 1e-6 * np.eye(2), atol=1e-12)
    assert np.isfinite(model.score(x))
    with pytest.raises(ValueError, match="EM failed after 0 iterations.*increase reg_covar"):
        gmm.GaussianMixture(3, reg_covar=0.0, **kwargs).fit(x)


# --------------------------------------------------------------------------- dtype, devices


def test_float32_model_and_inputs_follow_dtype():
    x, _ = gaussian_blobs(300, seed=4, dtype=torch.float32)
    model = gmm.GaussianMixture(3, seed=0, dtype=torch.float32).fit(x)
    assert model.means.dtype == torch.float32 and model.log_prob(x).dtype == torch.float32
    default = gmm.GaussianMixture(3, seed=0).fit(x)  # float64 by default
    assert default.means.dtype == F64
    assert abs(model.score(x) - default.score(x)) < 1e-3


def _devices():
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append("mps")
    return out


@pytest.mark.parametrize("device", _devices())
def test_parameters_live_on_the_data_device(device):
    dtype = torch.float32 if device == "mps" else F64
    x = gaussian_blobs(200, seed=5, dtype=dtype)[0].to(device)
    model = gmm.GaussianMixture(3, seed=0, dtype=dtype).fit(x)
    assert model.means.device.type == device and model.predict(x).device.type == device
    assert model.sample(4)[0].device.type == device


def test_kmeans_plusplus_is_seeded_and_picks_distinct_points():
    x, _ = gaussian_blobs(200, seed=6)
    a = gmm.kmeans_plusplus(x, 5, torch.Generator().manual_seed(1))
    b = gmm.kmeans_plusplus(x, 5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and len(torch.unique(a, dim=0)) == 5
    assert all((x == c).all(1).any() for c in a)
    same = gmm.kmeans_plusplus(torch.ones(4, 2, dtype=F64), 3)  # no spread at all: no crash
    assert same.shape == (3, 2)


# --------------------------------------------------------------------------- errors


def test_more_components_than_points():
    with pytest.raises(ValueError, match="more components"):
        gmm.GaussianMixture(5).fit(torch.randn(4, 2, dtype=F64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_data(bad):
    x = torch.randn(10, 2, dtype=F64)
    x[3, 1] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        gmm.GaussianMixture(2).fit(x)
    with pytest.raises(ValueError, match="NaN or inf"):
        gmm.gmm_log_likelihood(x, *random_mixture(2, 2))


def test_non_positive_definite_covariances():
    weights, means, covs = random_mixture(3, 2)
    covs[1] = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64)  # eigenvalues 3 and -1
    x = torch.randn(5, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"component\(s\) \[1\] is not positive definite"):
        gmm.gmm_log_likelihood(x, weights, means, covs)
    with pytest.raises(ValueError, match="not positive definite"):
        gmm.gaussian_log_density(x, means[0], -covs[0])
    with pytest.raises(ValueError, match="bad initial parameters.*positive definite"):
        gmm.GaussianMixture(3, covariances_init=covs, means_init=means,
                            weights_init=weights).fit(x)
    with pytest.raises(ValueError, match="symmetric"):
        gmm.gmm_log_likelihood(x, weights, means, covs + torch.tensor([[0, 1.0], [0, 0]]))
    with pytest.raises(ValueError, match="variance <= 0"):
        gmm.e_step(x, weights, means, torch.tensor([[1.0, 1], [1, 0], [1, 1]], dtype=F64))


def test_mismatched_shapes():
    weights, means, covs = random_mixture(3, 2)
    x = torch.randn(5, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"means must have shape \(K, D\) with D = 3"):
        gmm.e_step(torch.randn(5, 3, dtype=F64), weights, means, covs)
    with pytest.raises(ValueError, match="weights must have shape"):
        gmm.e_step(x, weights[:2] / weights[:2].sum(), means, covs)
    with pytest.raises(ValueError, match="covs must have shape"):
        gmm.e_step(x, weights, means, covs[:2])
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\)"):
        gmm.gmm_log_likelihood(x[0], weights, means, covs)
    with pytest.raises(ValueError, match="mean must be"):
        gmm.gaussian_log_density(x, means[0, :1], covs[0])
    with pytest.raises(ValueError, match="resp must have shape"):
        gmm.m_step(x, torch.full((4, 3), 1 / 3, dtype=F64))
    with pytest.raises(ValueError, match="resp has 2 columns"):
        gmm.gmm_elbo(x, torch.full((5, 2), 0.5, dtype=F64), weights, means, covs)
    model = gmm.GaussianMixture(2, seed=0).fit(torch.randn(20, 2, dtype=F64))
    with pytest.raises(ValueError, match="fitted on 2"):
        model.predict(torch.randn(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="one entry per component"):
        gmm.GaussianMixture(2, means_init=means).fit(x)
    with pytest.raises(ValueError, match="does not match covariance_type"):
        gmm.GaussianMixture(3, "diag", weights_init=weights, means_init=means,
                            covariances_init=covs).fit(x)


def test_density_helpers_validate_their_input():
    weights, means, covs = random_mixture(2, 2)
    x = torch.randn(4, 2, dtype=F64)
    with pytest.raises(ValueError, match="means must have shape"):
        gmm.component_log_densities(x, means[:, :1], covs)
    with pytest.raises(TypeError, match="torch.Tensor"):
        gmm.component_log_densities(x.numpy(), means, covs)
    with pytest.raises(ValueError, match="sum to 1"):
        gmm.log_joint(x, weights * 3, means, covs)
    with pytest.raises(ValueError, match="square"):
        gmm.cholesky(torch.ones(2, 3, dtype=F64))
    with pytest.raises(TypeError, match="floating-point"):
        gmm.cholesky(torch.eye(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="num_centers"):
        gmm.kmeans_plusplus(x, 5)


def test_bad_types_and_values():
    weights, means, covs = random_mixture(2, 2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        gmm.e_step(np.zeros((3, 2)), weights, means, covs)
    with pytest.raises(TypeError, match="floating-point"):
        gmm.GaussianMixture(2).fit(torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="same dtype and device"):
        gmm.e_step(torch.zeros(3, 2), weights, means, covs)  # float32 data, float64 parameters
    with pytest.raises(ValueError, match="sum to 1"):
        gmm.e_step(torch.zeros(3, 2, dtype=F64), 2 * weights, means, covs)
    with pytest.raises(ValueError, match="each row must sum to 1"):
        gmm.m_step(torch.zeros(3, 2, dtype=F64), torch.ones(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="num_samples"):
        gmm.gmm_sample(0, weights, means, covs)
    with pytest.raises(TypeError, match="means must be a torch.Tensor"):
        gmm.gmm_sample(3, weights, means.numpy(), covs)
    for kwargs, match in [({"num_components": 0}, "num_components"),
                          ({"covariance_type": "tied"}, "covariance_type"),
                          ({"reg_covar": -1.0}, "reg_covar"), ({"tol": float("nan")}, "tol"),
                          ({"max_iter": 1.5}, "max_iter"), ({"init": "kmeans"}, "init")]:
        with pytest.raises(ValueError, match=match):
            gmm.GaussianMixture(**{"num_components": 2, **kwargs})
    with pytest.raises(TypeError, match="dtype"):
        gmm.GaussianMixture(2, dtype=torch.int32)
    with pytest.raises(RuntimeError, match="not fitted"):
        gmm.GaussianMixture(2).predict(torch.zeros(3, 2, dtype=F64))


# --------------------------------------------------------------------------- plots


def test_mixture_plot_helpers():
    import matplotlib.pyplot as plt

    from course_utils.plots import mixture_colors, plot_mixture_2d

    resp = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=F64)
    colors = mixture_colors(resp=resp)
    palette = np.array(plt.get_cmap("tab10").colors)
    np.testing.assert_allclose(colors, [palette[0], (palette[0] + palette[1]) / 2])
    np.testing.assert_allclose(mixture_colors(labels=torch.tensor([1, 0])), palette[[1, 0]])
    assert mixture_colors(n=3).shape == (3, 3)
    x, _ = gaussian_blobs(50)
    weights, means, covs = random_mixture(3, 2)
    ax = plot_mixture_2d(x, means, covs, resp=gmm.e_step(x, weights, means, covs),
                         weights=weights, title="t")
    assert len(ax.lines) == 3 * 3  # two ellipses and a mean marker per component
    assert len(ax.collections) == 1 and ax.get_title() == "t"
    with pytest.raises(ValueError, match=r"covs must have shape \(3, 2, 2\)"):
        plot_mixture_2d(x, means, covs[:2])
    with pytest.raises(ValueError, match="shape"):
        plot_mixture_2d(x[:, :1], means, covs)
    with pytest.raises(ValueError, match="K <= 10"):
        mixture_colors(resp=torch.ones(2, 11))
    plt.close("all")
