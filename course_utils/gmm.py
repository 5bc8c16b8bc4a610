"""Gaussian mixture models in PyTorch: densities, sampling, EM (notebooks 01 and 02).

The model (Bishop, PRML §9.2): z ~ Categorical(π), x | z=k ~ N(μ_k, Σ_k), so that
log p(x) = log Σ_k π_k N(x | μ_k, Σ_k). Covariances are either full, ``covs (K, D, D)``, or
diagonal, ``covs (K, D)`` holding the variances; functions tell the two apart by shape.

- Exercise references: ``gaussian_log_density``, ``gmm_sample``, ``gmm_log_likelihood``,
  ``e_step``, ``m_step``, ``gmm_elbo`` (sums over the data, not means).
- ``GaussianMixture``: EM with k-means++ or given starting parameters, recording the
  log-likelihood and the ELBO per iteration; ``sample``, ``log_prob``, ``score``,
  ``predict_proba``, ``predict``. Same updates as scikit-learn's ``GaussianMixture``.

Everything is vectorised over components (batched Cholesky factors, ``logsumexp``) and works
in chunks of data points so memory stays small; new tensors follow the input's dtype/device.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)
_CHUNK_ELEMENTS = 2**18  # (rows, K, D) blocks of 2 MB in float64: cache-sized, few enough ops
COVARIANCE_TYPES = ("full", "diag")


# --------------------------------------------------------------------------- validation


def _check_data(x: torch.Tensor, name: str = "x") -> None:
    """x must be a finite floating-point tensor of shape (N, D) with N, D >= 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N, D >= 1, got {tuple(x.shape)}")
    bad = ~torch.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or inf values; clean the data")


def _check_like(x: torch.Tensor, **tensors: torch.Tensor) -> None:
    """Every tensor must be a torch tensor with x's dtype and device, and finite."""
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != x.dtype or t.device != x.device:
            raise TypeError(
                f"{name} is {t.dtype} on {t.device} but x is {x.dtype} on {x.device}; "
                "convert them to the same dtype and device"
            )
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf values")


def _check_covs(covs: torch.Tensor, num_components: int, dim: int) -> None:
    """covs (K, D, D) symmetric, or (K, D) positive variances."""
    if covs.shape == (num_components, dim, dim):
        asym = (covs - covs.mT).abs().amax()
        if asym > 1e-6 * covs.abs().amax().clamp_min(1e-30):
            raise ValueError(f"covs must be symmetric; max |Σ - Σᵀ| = {asym.item():.3g}")
    elif covs.shape == (num_components, dim):
        if (covs <= 0).any():
            k = int((covs <= 0).any(1).nonzero()[0])
            raise ValueError(f"diagonal covariance of component {k} has a variance <= 0")
    else:
        raise ValueError(
            f"covs must have shape (K, D, D) = {(num_components, dim, dim)} (full) or "
            f"(K, D) = {(num_components, dim)} (diagonal), got {tuple(covs.shape)}"
        )


def _check_mixture(
    x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor
) -> None:
    """Validate data x (N, D) and parameters weights (K,), means (K, D), covs (K, D[, D])."""
    _check_data(x)
    _check_like(x, weights=weights, means=means, covs=covs)
    if means.ndim != 2 or means.shape[1] != x.shape[1]:
        raise ValueError(
            f"means must have shape (K, D) with D = {x.shape[1]} (the data's dimension), "
            f"got {tuple(means.shape)}"
        )
    k = means.shape[0]
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape (K,) = ({k},), got {tuple(weights.shape)}")
    if (weights < 0).any() or abs(weights.sum().item() - 1) > 1e-4:
        raise ValueError("weights must be non-negative and sum to 1")
    _check_covs(covs, k, x.shape[1])


def _check_resp(x: torch.Tensor, resp: torch.Tensor) -> None:
    """resp (N, K): non-negative rows that sum to 1."""
    _check_like(x, resp=resp)
    if resp.ndim != 2 or resp.shape[0] != x.shape[0]:
        raise ValueError(
            f"resp must have shape (N, K) with N = {x.shape[0]} (one row per point), "
            f"got {tuple(resp.shape)}"
        )
    if (resp < 0).any() or not torch.allclose(resp.sum(1), torch.ones_like(resp[:, 0]), atol=1e-4):
        raise ValueError("resp must be non-negative and each row must sum to 1")


def cholesky(covs: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factors L with Σ = L Lᵀ: covs (..., D, D) -> (..., D, D), clear errors."""
    if not isinstance(covs, torch.Tensor) or not covs.is_floating_point():
        raise TypeError(f"covs must be a floating-point torch.Tensor, got {type(covs).__name__}")
    if covs.ndim < 2 or covs.shape[-1] != covs.shape[-2]:
        raise ValueError(f"covs must be square matrices (..., D, D), got {tuple(covs.shape)}")
    factor, info = torch.linalg.cholesky_ex(covs)
    if (info != 0).any():
        bad = (info != 0).reshape(-1).nonzero().reshape(-1).tolist()
        raise ValueError(f"covariance of component(s) {bad} is not positive definite "
                         "(its Cholesky factorisation failed)")
    return factor


def _precision_cholesky(covs: torch.Tensor) -> torch.Tensor:
    """P = L⁻ᵀ (upper triangular) so that Σ⁻¹ = P Pᵀ: (K, D, D) -> (K, D, D)."""
    factor = cholesky(covs)
    eye = torch.eye(covs.shape[-1], dtype=covs.dtype, device=covs.device).expand_as(covs)
    return torch.linalg.solve_triangular(factor, eye, upper=False).mT


def _row_blocks(n: int, num_components: int, dim: int) -> list[slice]:
    """Row slices small enough for (rows, K, D) intermediates to stay a few MB."""
    step = max(1, _CHUNK_ELEMENTS // (num_components * dim))
    return [slice(s, s + step) for s in range(0, n, step)]


# --------------------------------------------------------------------------- densities


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """log N(x_n | mean, cov) by a Cholesky factor: x (N, D), mean (D,), cov (D, D) -> (N,)."""
    _check_data(x)
    _check_like(x, mean=mean, cov=cov)
    if mean.shape != x.shape[1:] or cov.shape != (x.shape[1], x.shape[1]):
        raise ValueError(
            f"with x of shape {tuple(x.shape)}, mean must be ({x.shape[1]},) and cov "
            f"({x.shape[1]}, {x.shape[1]}); got {tuple(mean.shape)} and {tuple(cov.shape)}"
        )
    factor = cholesky(cov)  # Σ = L Lᵀ
    y = torch.linalg.solve_triangular(factor, (x - mean).T, upper=False)  # L⁻¹(x - μ), (D, N)
    half_log_det = factor.diagonal().log().sum()  # ½ log|Σ| = Σ_i log L_ii
    return -0.5 * (x.shape[1] * LOG_2PI + y.square().sum(0)) - half_log_det


def component_log_densities(
    x: torch.Tensor, means: torch.Tensor, covs: torch.Tensor
) -> torch.Tensor:
    """log N(x_n | μ_k, Σ_k) for every point and component: x (N, D) -> (N, K)."""
    _check_data(x)
    k = means.shape[0] if isinstance(means, torch.Tensor) and means.ndim == 2 else 1
    _check_mixture(x, torch.full((k,), 1 / k, dtype=x.dtype, device=x.device), means, covs)
    return _component_log_densities(x, means, covs)


def _component_log_densities(x, means, covs):
    """component_log_densities without validation (the EM loop's hot path)."""
    num_components, dim = means.shape
    if covs.ndim == 2:  # diagonal: variances (K, D)
        return _diag_log_densities(x, means, covs)
    prec = _precision_cholesky(covs)  # (K, D, D), Σ_k⁻¹ = P_k P_kᵀ
    half_log_det = -prec.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # ½ log|Σ_k|, (K,)
    # ||P_kᵀ(x - μ_k)||² for all k in one matrix product: x @ [P_1 ... P_K] - [μ_1P_1 ... μ_KP_K]
    proj = prec.permute(1, 0, 2).reshape(dim, num_components * dim)  # (D, K*D)
    shift = (means.unsqueeze(1) @ prec).reshape(num_components * dim)  # (K*D,)
    maha = torch.empty(x.shape[0], num_components, dtype=x.dtype, device=x.device)
    for rows in _row_blocks(x.shape[0], num_components, dim):
        y = torch.addmm(shift, x[rows], proj, beta=-1)  # P_kᵀ(x_n - μ_k), (n, K*D)
        maha[rows] = torch.linalg.vector_norm(y.view(-1, num_components, dim), dim=-1)
    return -0.5 * (dim * LOG_2PI + maha.square()) - half_log_det  # one pass over y, not two


def _diag_log_densities(x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor):
    """Diagonal-covariance version: x (N, D), means (K, D), variances (K, D) -> (N, K)."""
    num_components, dim = means.shape
    precisions = variances.reciprocal()
    maha = torch.empty(x.shape[0], num_components, dtype=x.dtype, device=x.device)
    for rows in _row_blocks(x.shape[0], num_components, dim):
        diff = x[rows].unsqueeze(1) - means  # (n, K, D)
        maha[rows] = (diff.square() * precisions).sum(-1)
    half_log_det = 0.5 * variances.log().sum(-1)
    return -0.5 * (dim * LOG_2PI + maha) - half_log_det


def log_joint(
    x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor
) -> torch.Tensor:
    """log p(x_n, z_n=k) = log π_k + log N(x_n | μ_k, Σ_k): x (N, D) -> (N, K)."""
    _check_mixture(x, weights, means, covs)
    return _log_joint(x, weights, means, covs)


def _log_joint(x, weights, means, covs):
    """log_joint without validation (the EM loop's hot path)."""
    return weights.log() + _component_log_densities(x, means, covs)


# --------------------------------------------------------------------------- exercises


def gmm_sample(
    num_samples: int, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ancestral sampling, z ~ Cat(π) then x ~ N(μ_z, Σ_z): -> x (n, D), z (n,) int64."""
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    _check_data(means, "means")
    _check_mixture(means, weights, means, covs)
    z = torch.multinomial(weights, num_samples, replacement=True)  # (n,)
    eps = torch.randn(num_samples, means.shape[1], dtype=means.dtype, device=means.device)
    if covs.ndim == 2:
        return means[z] + covs[z].sqrt() * eps, z
    factor = cholesky(covs)  # (K, D, D)
    return means[z] + torch.einsum("nij,nj->ni", factor[z], eps), z  # μ_z + L_z ε


def gmm_log_likelihood(
    x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor
) -> torch.Tensor:
    """Σ_n log Σ_k π_k N(x_n | μ_k, Σ_k), a sum over the data: x (N, D) -> scalar."""
    _check_mixture(x, weights, means, covs)
    return torch.logsumexp(_log_joint(x, weights, means, covs), dim=1).sum()


def e_step(
    x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor
) -> torch.Tensor:
    """Responsibilities r_nk = p(z_n=k | x_n), computed in log space: x (N, D) -> (N, K)."""
    _check_mixture(x, weights, means, covs)
    return torch.softmax(_log_joint(x, weights, means, covs), dim=1)


def m_step(
    x: torch.Tensor, resp: torch.Tensor, reg_covar: float = 0.0, covariance_type: str = "full"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Maximise the ELBO over (π, μ, Σ) given resp (N, K) -> weights (K,), means (K, D), covs."""
    _check_data(x)
    _check_resp(x, resp)
    _check_options(reg_covar=reg_covar, covariance_type=covariance_type)
    return _m_step(x, resp, reg_covar, covariance_type)


def _m_step(x, resp, reg_covar, covariance_type):
    """m_step without validation (the EM loop's hot path)."""
    # responsibilities below √tiny change nothing but make denormal products (10-100x slower)
    resp = resp.masked_fill(resp < math.sqrt(torch.finfo(resp.dtype).tiny), 0.0)
    # N_k + 10 eps (as scikit-learn): an empty component gives 0/ε, not 0/0
    nk = resp.sum(0) + 10 * torch.finfo(x.dtype).eps  # (K,)
    means = resp.T @ x / nk.unsqueeze(1)  # (K, D)
    if x.dtype == torch.float64:
        covs = _scatter_by_moments(x, resp, means, covariance_type)
    else:
        covs = _scatter_centred(x, resp, means, covariance_type)
    if covariance_type == "diag":
        covs = covs / nk.unsqueeze(1)
    else:
        covs = 0.5 * (covs + covs.mT) / nk.view(-1, 1, 1)  # exactly symmetric
    if reg_covar:
        if covariance_type == "diag":
            covs = covs + reg_covar
        else:
            covs.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    return nk / nk.sum(), means, covs


def _scatter_centred(x, resp, means, covariance_type):
    """Σ_n r_nk (x_n - μ_k)(x_n - μ_k)ᵀ, or its diagonal: -> (K, D, D) or (K, D)."""
    num_components, dim = means.shape
    full = covariance_type == "full"
    shape = (num_components, dim, dim) if full else (num_components, dim)
    scatter = torch.zeros(shape, dtype=x.dtype, device=x.device)
    for rows in _row_blocks(x.shape[0], num_components, dim):
        diff = x[rows].unsqueeze(0) - means.unsqueeze(1)  # centred on the new μ_k, (K, n, D)
        weighted = diff * resp[rows].T.unsqueeze(-1)  # r_nk (x_n - μ_k)
        scatter += weighted.mT @ diff if full else (weighted * diff).sum(1)
    return scatter


def _scatter_by_moments(x, resp, means, covariance_type):
    """The same scatter as Σ_n r_nk x_n x_nᵀ - N_k μ_k μ_kᵀ, about the data mean (float64).

    One matrix product per block of rows instead of K, about twice as fast. A component whose
    subtraction cancels too many digits (tight and far from the data mean) is redone centred.
    """
    num_components, dim = means.shape
    center, mc = x.mean(0), means - x.mean(0)
    nk = resp.sum(0)
    if covariance_type == "diag":
        raw = resp.T @ (x - center).square()  # (K, D)
        scatter = raw - nk.unsqueeze(1) * mc.square()
        raw_size, size = raw.sum(1), scatter.sum(1)
    else:
        raw = torch.zeros(dim, num_components * dim, dtype=x.dtype, device=x.device)
        for rows in _row_blocks(x.shape[0], num_components, dim):
            xc = x[rows] - center  # (n, D)
            weighted = (resp[rows].unsqueeze(2) * xc.unsqueeze(1)).reshape(xc.shape[0], -1)
            raw.addmm_(xc.T, weighted)  # Σ_n x_n (r_nk x_n)ᵀ for all k at once, (D, K*D)
        raw = raw.view(dim, num_components, dim).transpose(0, 1)  # (K, D, D)
        scatter = raw - nk.view(-1, 1, 1) * mc.unsqueeze(2) * mc.unsqueeze(1)
        raw_size = raw.diagonal(dim1=-2, dim2=-1).sum(-1)
        size = scatter.diagonal(dim1=-2, dim2=-1).sum(-1)
    inexact = raw_size > 1e4 * size.clamp_min(torch.finfo(x.dtype).tiny)  # > 4 digits lost
    if inexact.any():
        k = inexact.nonzero().squeeze(1)
        scatter[k] = _scatter_centred(x, resp[:, k], means[k], covariance_type)
    return scatter


def gmm_elbo(
    x: torch.Tensor,
    resp: torch.Tensor,
    weights: torch.Tensor,
    means: torch.Tensor,
    covs: torch.Tensor,
) -> torch.Tensor:
    """Σ_n Σ_k r_nk [log π_k + log N(x_n | μ_k, Σ_k) - log r_nk], a sum: -> scalar."""
    _check_mixture(x, weights, means, covs)
    _check_resp(x, resp)
    if resp.shape[1] != means.shape[0]:
        raise ValueError(f"resp has {resp.shape[1]} columns but there are {means.shape[0]} "
                         "components")
    return _elbo(resp, _log_joint(x, weights, means, covs))


def _elbo(resp: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
    """E_q[log p(x, z)] + H(q) with 0 log 0 = 0: resp, joint (N, K) -> scalar."""
    expected = torch.where(resp > 0, resp * joint, torch.zeros_like(joint)).sum()
    return expected - torch.special.xlogy(resp, resp).sum()


# --------------------------------------------------------------------------- initialisation


def kmeans_plusplus(
    x: torch.Tensor, num_centers: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): x (N, D) -> centers (K, D)."""
    _check_data(x)
    n = x.shape[0]
    if not isinstance(num_centers, int) or num_centers < 1 or num_centers > n:
        raise ValueError(f"num_centers must be an int in [1, N={n}], got {num_centers!r}")
    index = torch.randint(n, (1,), generator=generator).item()
    centers = [x[index]]
    dist2 = (x - x[index]).square().sum(1)  # squared distance to the nearest centre, (N,)
    for _ in range(1, num_centers):
        prob = dist2.cpu() if dist2.sum() > 0 else torch.ones(n, dtype=x.dtype)
        index = torch.multinomial(prob, 1, generator=generator).item()  # ∝ D(x)²
        centers.append(x[index])
        dist2 = torch.minimum(dist2, (x - x[index]).square().sum(1))
    return torch.stack(centers)


def _nearest(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """One-hot assignment of each point to its nearest centre: (N, D), (K, D) -> (N, K)."""
    labels = torch.cdist(x, centers).argmin(1)
    return torch.nn.functional.one_hot(labels, centers.shape[0]).to(x.dtype)


# --------------------------------------------------------------------------- the model


def _check_options(**options) -> None:
    """Validate the hyper-parameters of a mixture (only those given)."""
    if "num_components" in options:
        k = options["num_components"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"num_components must be a positive int, got {k!r}")
    if "covariance_type" in options and options["covariance_type"] not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got "
            f"{options['covariance_type']!r}"
        )
    for name in ("reg_covar", "tol"):
        value = options.get(name, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if "max_iter" in options:
        m = options["max_iter"]
        if not isinstance(m, int) or isinstance(m, bool) or m < 0:
            raise ValueError(f"max_iter must be an int >= 0, got {m!r}")
    if options.get("init", "kmeans++") not in ("kmeans++", "random"):
        raise ValueError(f"init must be 'kmeans++' or 'random', got {options['init']!r}")


class GaussianMixture:
    """A mixture of K Gaussians fitted by EM; parameters live on the data's device.

    ``init`` chooses the start: "kmeans++" (centres by k-means++, then one M-step on the
    nearest-centre assignment) or "random" (random responsibilities); ``weights_init``,
    ``means_init`` and ``covariances_init`` override any of the three. ``history`` records,
    per iteration and per data point, the log-likelihood before each M-step (plus the final
    one) and the ELBO right after each M-step: ll[0] <= elbo[0] <= ll[1] <= elbo[1] <= ...
    Computes in ``dtype`` (float64 by default; Apple MPS needs float32).
    """

    def __init__(
        self,
        num_components: int,
        covariance_type: str = "full",
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        tol: float = 1e-3,
        init: str = "kmeans++",
        weights_init: torch.Tensor | None = None,
        means_init: torch.Tensor | None = None,
        covariances_init: torch.Tensor | None = None,
        seed: int | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        _check_options(num_components=num_components, covariance_type=covariance_type,
                       reg_covar=reg_covar, tol=tol, max_iter=max_iter, init=init)
        if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise TypeError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
        self.num_components, self.covariance_type = num_components, covariance_type
        self.reg_covar, self.max_iter, self.tol, self.init = reg_covar, max_iter, tol, init
        self.weights_init, self.means_init = weights_init, means_init
        self.covariances_init, self.seed, self.dtype = covariances_init, seed, dtype
        self.weights = self.means = self.covariances = None
        self.history: dict[str, list[float]] = {"log_likelihood": [], "elbo": []}
        self.n_iter, self.converged = 0, False

    def __repr__(self) -> str:
        return (f"GaussianMixture(num_components={self.num_components}, "
                f"covariance_type={self.covariance_type!r}, reg_covar={self.reg_covar})")

    # ---- fitting

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            x = x.to(self.dtype)
        _check_data(x)
        return x

    def _initial_parameters(self, x: torch.Tensor):
        """Starting (weights, means, covs): given ones, else from k-means++ or random resp."""
        n, k = x.shape[0], self.num_components
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)
        given = [self.weights_init, self.means_init, self.covariances_init]
        given = [None if g is None else torch.as_tensor(g).to(x) for g in given]
        if any(g is not None for g in given):
            self._check_given(x, given)
        if all(g is not None for g in given):
            return tuple(given)
        if given[1] is not None:
            resp = _nearest(x, given[1])
        elif self.init == "kmeans++":
            resp = _nearest(x, kmeans_plusplus(x, k, generator))
        else:
            resp = torch.rand(n, k, generator=generator, dtype=x.dtype).to(x.device)
            resp = resp / resp.sum(1, keepdim=True)
        params = _m_step(x, resp, self.reg_covar, self.covariance_type)
        return tuple(p if g is None else g for p, g in zip(params, given, strict=True))

    def _check_given(self, x: torch.Tensor, given: list) -> None:
        """Validate the user's starting parameters (any of them may be None)."""
        k, d = self.num_components, x.shape[1]
        full = self.covariance_type == "full"
        weights = given[0] if given[0] is not None else torch.full((k,), 1 / k).to(x)
        means = given[1] if given[1] is not None else torch.zeros(k, d).to(x)
        covs = given[2] if given[2] is not None else torch.eye(d).expand(k, d, d).to(x)
        for name, value in zip(("weights", "means", "covariances"), given, strict=True):
            if value is not None and (value.ndim == 0 or value.shape[0] != k):
                raise ValueError(f"{name}_init must have one entry per component (K={k}), "
                                 f"got shape {tuple(value.shape)}")
        try:
            _check_mixture(x, weights, means, covs)
            if covs.ndim == 3:
                cholesky(covs)
        except ValueError as err:
            raise ValueError(f"bad initial parameters: {err}") from None
        if (covs.ndim == 3) != full:
            raise ValueError(f"covariances_init has shape {tuple(covs.shape)}, which does "
                             f"not match covariance_type={self.covariance_type!r}")

    def fit(self, x: torch.Tensor) -> GaussianMixture:
        """Run EM on x (N, D) from the initial parameters; returns self."""
        x = self._prepare(x)
        if x.shape[0] < self.num_components:
            raise ValueError(f"more components ({self.num_components}) than data points "
                             f"({x.shape[0]}); use num_components <= N")
        weights, means, covs = self._initial_parameters(x)
        n, log_likelihood, elbo = x.shape[0], [], []
        self.converged, resp = False, None
        for iteration in range(self.max_iter + 1):
            try:
                joint = _log_joint(x, weights, means, covs)  # (N, K)
            except ValueError as err:
                raise ValueError(
                    f"EM failed after {iteration} iterations: {err}. A component collapsed onto "
                    "too few points: increase reg_covar, use fewer components, or rescale x."
                ) from None
            log_px = torch.logsumexp(joint, dim=1, keepdim=True)  # (N, 1)
            log_likelihood.append(log_px.sum().item() / n)
            if resp is not None:  # ELBO(q from the last E-step, θ from the last M-step)
                elbo.append(_elbo(resp, joint).item() / n)
            if iteration == self.max_iter or self.converged:
                break
            resp = (joint - log_px).exp()  # E-step: q(z_n) = p(z_n | x_n, θ)
            new = _m_step(x, resp, self.reg_covar, self.covariance_type)
            weights, means, covs = self._keep_empty(resp, new, means, covs)
            # stop as scikit-learn does: after the M-step, once the gain is below tol
            self.converged = iteration > 0 and (
                abs(log_likelihood[-1] - log_likelihood[-2]) < self.tol
            )
        self.weights, self.means, self.covariances = weights, means, covs
        self.history = {"log_likelihood": log_likelihood, "elbo": elbo}
        self.n_iter = len(elbo)
        return self

    @staticmethod
    def _keep_empty(resp, new, means, covs):
        """A component that lost all its points keeps its previous μ and Σ (weight ~ 0)."""
        new_weights, new_means, new_covs = new
        empty = resp.sum(0) < 10 * torch.finfo(resp.dtype).eps  # (K,)
        if empty.any():
            new_means = torch.where(empty.unsqueeze(1), means, new_means)
            new_covs = torch.where(empty.view(-1, *[1] * (covs.ndim - 1)), covs, new_covs)
        return new_weights, new_means, new_covs

    # ---- using a fitted model

    def _fitted(self) -> None:
        if self.means is None:
            raise RuntimeError("this GaussianMixture is not fitted yet; call fit(x) first")

    def _data(self, x: torch.Tensor) -> torch.Tensor:
        self._fitted()
        x = self._prepare(x)
        if x.shape[1] != self.means.shape[1]:
            raise ValueError(f"x has {x.shape[1]} features but the model was fitted on "
                             f"{self.means.shape[1]}")
        return x.to(self.means.device)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_n) under the fitted mixture: x (N, D) -> (N,)."""
        x = self._data(x)
        return torch.logsumexp(_log_joint(x, self.weights, self.means, self.covariances), 1)

    def score(self, x: torch.Tensor) -> float:
        """Mean log-likelihood per data point (as scikit-learn's ``score``): x (N, D) -> float."""
        return self.log_prob(x).mean().item()

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior p(z_n=k | x_n): x (N, D) -> (N, K)."""
        x = self._data(x)
        return torch.softmax(_log_joint(x, self.weights, self.means, self.covariances), 1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Most probable component of each point: x (N, D) -> (N,) int64."""
        return self.predict_proba(x).argmax(1)

    def sample(self, num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw from the fitted mixture with torch's RNG: -> x (n, D), z (n,)."""
        self._fitted()
        return gmm_sample(num_samples, self.weights, self.means, self.covariances)
