"""Variational inference (notebook 03): KL between Gaussians, mean-field, CAVI, the ELBO gap.

- ``kl_mvn``: KL between two multivariate Gaussians in closed form, batched, via Cholesky.
- ``mean_field_update`` / ``mean_field_gaussian``: coordinate ascent for a factorised q on a
  correlated 2-D Gaussian (Bishop, PRML Sec. 10.1.2).
- ``cavi_step`` / ``cavi_elbo`` / ``cavi``: CAVI for the Bayesian mixture of unit-variance
  Gaussians of Blei, Kucukelbir & McAuliffe (2017), Sec. 3 and Algorithm 2, in any dimension.
- ``mixture`` / ``fit_forward_kl`` / ``fit_reverse_kl``: one Gaussian fitted to a multimodal
  target by moment matching (forward KL) or by reparameterized gradients (reverse KL).
- ``LinearGaussian`` and ``importance_log_marginal``: a model with an exact marginal and
  posterior, to see log p(x) = ELBO + KL(q || p(z|x)) and importance sampling at work.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import distributions as D

from .numerics import log_mean_exp
from .train import require_finite_loss

__all__ = [
    "LinearGaussian",
    "cavi",
    "cavi_elbo",
    "cavi_step",
    "fit_forward_kl",
    "fit_reverse_kl",
    "importance_log_marginal",
    "kl_mvn",
    "mean_field_gaussian",
    "mean_field_update",
    "mixture",
    "sample_bayesian_mixture",
]

_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- validation


def _require_tensor(x, name: str, ndim: int | None = None, min_ndim: int = 0) -> None:
    """TypeError unless x is a finite floating-point tensor with the expected number of dims."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(x.shape)}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got {x.ndim}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains nan or inf")


def _require_positive(value, name: str) -> float:
    """A positive finite Python float from a number (or one-element tensor)."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return float(value)


def _require_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _randn(*shape: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise with the dtype and device of ``like``, from ``generator`` if given."""
    device = generator.device if generator is not None else like.device
    noise = torch.randn(*shape, generator=generator, dtype=like.dtype, device=device)
    return noise.to(like.device)


def _cholesky(cov: torch.Tensor, name: str) -> torch.Tensor:
    """Lower Cholesky factor (..., D, D), or a ValueError if cov is not positive definite."""
    factor, info = torch.linalg.cholesky_ex(cov)
    if (info != 0).any():
        raise ValueError(f"{name} must be symmetric positive definite (Cholesky failed)")
    return factor


def _require_gaussian(mu: torch.Tensor, cov: torch.Tensor, which: str) -> None:
    _require_tensor(mu, f"mu{which}", min_ndim=1)
    _require_tensor(cov, f"cov{which}", min_ndim=2)
    d = mu.shape[-1]
    if cov.shape[-2:] != (d, d):
        raise ValueError(
            f"cov{which} must have shape (..., {d}, {d}) to match mu{which} (..., {d}), "
            f"got {tuple(cov.shape)}"
        )


# --------------------------------------------------------------------------- KL


def kl_mvn(
    mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu1, cov1) || N(mu2, cov2)): mu (..., D), cov (..., D, D) -> (...), batch broadcast."""
    _require_gaussian(mu1, cov1, "1")
    _require_gaussian(mu2, cov2, "2")
    if mu1.shape[-1] != mu2.shape[-1]:
        raise ValueError(f"dimensions differ: mu1 has {mu1.shape[-1]}, mu2 has {mu2.shape[-1]}")
    d = mu1.shape[-1]
    l1, l2 = _cholesky(cov1, "cov1"), _cholesky(cov2, "cov2")
    batch = torch.broadcast_shapes(mu1.shape[:-1], mu2.shape[:-1], l1.shape[:-2], l2.shape[:-2])
    l1, l2 = l1.expand(*batch, d, d), l2.expand(*batch, d, d)
    diff = (mu2 - mu1).expand(*batch, d).unsqueeze(-1)  # (..., D, 1)
    # KL = 1/2 [tr(S2^-1 S1) + (mu2-mu1)^T S2^-1 (mu2-mu1) - D + log det S2 / det S1], with
    # tr(S2^-1 S1) = ||L2^-1 L1||_F^2 and the quadratic form = ||L2^-1 (mu2 - mu1)||^2.
    trace = torch.linalg.solve_triangular(l2, l1, upper=False).pow(2).sum((-2, -1))
    mahalanobis = torch.linalg.solve_triangular(l2, diff, upper=False).pow(2).sum((-2, -1))
    log_det = 2 * (l2.diagonal(dim1=-2, dim2=-1).log() - l1.diagonal(dim1=-2, dim2=-1).log())
    return 0.5 * (trace + mahalanobis - d + log_det.sum(-1))


# --------------------------------------------------------------------------- mean field


def _require_2d_gaussian(mu: torch.Tensor, precision: torch.Tensor) -> None:
    _require_tensor(mu, "mu", ndim=1)
    _require_tensor(precision, "precision", ndim=2)
    if mu.shape != (2,) or precision.shape != (2, 2):
        raise ValueError(
            f"expected mu (2,) and precision (2, 2), got {tuple(mu.shape)} and "
            f"{tuple(precision.shape)}"
        )
    if (precision.diagonal() <= 0).any():
        raise ValueError("the diagonal of precision must be positive")
    if not torch.allclose(precision, precision.T):
        raise ValueError("precision must be symmetric: precision[0, 1] must equal precision[1, 0]")
    if torch.linalg.det(precision) <= 0:
        raise ValueError(
            "precision must be positive definite (det > 0, i.e. precision[0, 1]**2 < "
            "precision[0, 0] * precision[1, 1]): an indefinite one is no Gaussian, and "
            "coordinate ascent on it diverges"
        )


def mean_field_update(
    m_other: torch.Tensor, mu: torch.Tensor, precision: torch.Tensor, i: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal q_i(z_i) = N(mean_i, var_i) given E[z_j] = m_other (j = 1 - i): () -> (), ()."""
    _require_2d_gaussian(mu, precision)
    _require_tensor(m_other, "m_other")
    if i not in (0, 1) or isinstance(i, bool):
        raise ValueError(f"i must be 0 or 1 (the coordinate to update), got {i!r}")
    j = 1 - i
    # Bishop, PRML Eqs. (10.12)-(10.15): m_i = mu_i - Lambda_ii^-1 Lambda_ij (m_j - mu_j)
    mean_i = mu[i] - precision[i, j] / precision[i, i] * (m_other - mu[j])
    var_i = 1 / precision[i, i]
    return mean_i, var_i


def mean_field_gaussian(
    mu: torch.Tensor, precision: torch.Tensor, m_init: torch.Tensor, num_iters: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinate ascent on q(z1) q(z2) -> the means after each update (2T + 1, 2), var (2,)."""
    _require_2d_gaussian(mu, precision)
    _require_tensor(m_init, "m_init", ndim=1)
    _require_count(num_iters, "num_iters")
    if m_init.shape != (2,):
        raise ValueError(f"m_init must have shape (2,), got {tuple(m_init.shape)}")
    m = m_init.clone()
    path = [m.clone()]
    for _ in range(num_iters):
        for i in (0, 1):
            m[i], _ = mean_field_update(m[1 - i], mu, precision, i)
            path.append(m.clone())
    return torch.stack(path), 1 / precision.diagonal()


# --------------------------------------------------------------------------- CAVI


def sample_bayesian_mixture(
    n: int, num_components: int, dim: int, sigma2: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blei et al.'s generative story: mu_k ~ N(0, s2 I), c_i ~ Cat(1/K), x_i ~ N(mu_c, I).

    Returns x (n, dim), c (n,) and mu (K, dim).
    """
    n, k = _require_count(n, "n"), _require_count(num_components, "num_components")
    dim, sigma2 = _require_count(dim, "dim"), _require_positive(sigma2, "sigma2")
    mu = math.sqrt(sigma2) * torch.randn(k, dim, generator=generator)
    c = torch.randint(k, (n,), generator=generator)
    x = mu[c] + torch.randn(n, dim, generator=generator)
    return x, c, mu


def _require_cavi_state(x, m, s2, phi=None) -> None:
    _require_tensor(x, "x", ndim=2)
    _require_tensor(m, "m", ndim=2)
    _require_tensor(s2, "s2", ndim=1)
    if m.shape[1] != x.shape[1]:
        raise ValueError(f"m must be (K, {x.shape[1]}) to match x (N, {x.shape[1]}), got "
                         f"{tuple(m.shape)}")
    if s2.shape != m.shape[:1]:
        raise ValueError(f"s2 must have shape ({m.shape[0]},), one variance per component")
    if (s2 <= 0).any():
        raise ValueError("the variances s2 must be positive")
    if phi is not None:
        _require_tensor(phi, "phi", ndim=2)
        if phi.shape != (x.shape[0], m.shape[0]):
            raise ValueError(f"phi must have shape ({x.shape[0]}, {m.shape[0]}), got "
                             f"{tuple(phi.shape)}")
        ones = torch.ones_like(phi[:, 0])
        if (phi < 0).any() or not torch.allclose(phi.sum(1), ones, atol=1e-4):
            raise ValueError("each row of phi must be a probability vector (>= 0, sums to 1)")


def cavi_step(
    x: torch.Tensor, m: torch.Tensor, s2: torch.Tensor, sigma2: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One CAVI sweep: x (N, D), m (K, D), s2 (K,) -> phi (N, K), new m (K, D), new s2 (K,)."""
    _require_cavi_state(x, m, s2)
    return _cavi_step(x, m, s2, _require_positive(sigma2, "sigma2"))


def _cavi_step(x, m, s2, sigma2: float):
    d = x.shape[1]
    # Blei et al. (2017), Algorithm 2. Assignments: phi_ik ∝ exp(E[mu_k]^T x_i - E[mu_k^T mu_k] / 2)
    logits = x @ m.T - 0.5 * (m.pow(2).sum(1) + d * s2)  # (N, K)
    phi = torch.softmax(logits, dim=1)
    # Means: q(mu_k) = N(m_k, s2_k I), precision 1/sigma2 (prior) + sum_i phi_ik (data)
    s2 = 1 / (1 / sigma2 + phi.sum(0))  # (K,)
    m = s2[:, None] * (phi.T @ x)  # (K, D)
    return phi, m, s2


def cavi_elbo(
    x: torch.Tensor, phi: torch.Tensor, m: torch.Tensor, s2: torch.Tensor, sigma2: float
) -> torch.Tensor:
    """ELBO of the Bayesian mixture, constants included: x (N, D), phi (N, K), m (K, D), s2 (K,)."""
    _require_cavi_state(x, m, s2, phi)
    return _cavi_elbo(x, phi, m, s2, _require_positive(sigma2, "sigma2"))


def _cavi_elbo(x, phi, m, s2, sigma2: float):
    (n, d), k = x.shape, m.shape[0]
    e_sq = m.pow(2).sum(1) + d * s2  # E[mu_k^T mu_k] under q (K,)
    log_prior_mu = -0.5 * d * math.log(2 * math.pi * sigma2) - e_sq / (2 * sigma2)  # (K,)
    log_prior_c = -math.log(k)  # E[log p(c_i)], the same for every i
    sq_dist = x.pow(2).sum(1, keepdim=True) - 2 * x @ m.T + e_sq  # E||x_i - mu_k||^2 (N, K)
    log_lik = (phi * (-0.5 * d * _LOG_2PI - 0.5 * sq_dist)).sum()
    entropy_c = -torch.xlogy(phi, phi).sum()  # 0 log 0 = 0
    entropy_mu = 0.5 * d * (1 + _LOG_2PI + s2.log()).sum()
    return log_prior_mu.sum() + n * log_prior_c + log_lik + entropy_c + entropy_mu


def cavi(
    x: torch.Tensor,
    num_components: int,
    sigma2: float,
    num_iters: int = 100,
    tol: float = 1e-8,
    m_init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Run CAVI to convergence: x (N, D) -> {"phi", "m", "s2", "elbo" (iterations + 1,)}.

    Starts from ``m_init`` (K, D), else from K data points drawn at random, with s2 = 1.
    Stops when the ELBO rises by less than ``tol`` times |ELBO|.
    """
    _require_tensor(x, "x", ndim=2)
    k = _require_count(num_components, "num_components")
    sigma2 = _require_positive(sigma2, "sigma2")
    _require_count(num_iters, "num_iters")
    if m_init is None:
        if k > x.shape[0]:
            raise ValueError(f"num_components={k} exceeds the number of points {x.shape[0]}")
        index = torch.randperm(x.shape[0], generator=generator)[:k].to(x.device)
        m_init = x[index]
    _require_tensor(m_init, "m_init", ndim=2)
    if m_init.shape != (k, x.shape[1]):
        raise ValueError(f"m_init must have shape ({k}, {x.shape[1]}), got {tuple(m_init.shape)}")
    m, s2 = m_init.clone(), torch.ones(k, dtype=x.dtype, device=x.device)
    phi = torch.full((x.shape[0], k), 1 / k, dtype=x.dtype, device=x.device)
    _require_cavi_state(x, m, s2, phi)  # once: the loop calls the unchecked versions
    elbos = [_cavi_elbo(x, phi, m, s2, sigma2)]
    for _ in range(num_iters):
        phi, m, s2 = _cavi_step(x, m, s2, sigma2)
        elbos.append(_cavi_elbo(x, phi, m, s2, sigma2))
        if elbos[-1] - elbos[-2] < tol * elbos[-1].abs():
            break
    return {"phi": phi, "m": m, "s2": s2, "elbo": torch.stack(elbos)}


# --------------------------------------------------------------------------- forward vs reverse KL


def mixture(
    weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor
) -> D.MixtureSameFamily:
    """A Gaussian mixture distribution: weights (K,), means (K, D), covs (K, D, D)."""
    _require_tensor(weights, "weights", ndim=1)
    _require_tensor(means, "means", ndim=2)
    _require_tensor(covs, "covs", ndim=3)
    k, d = means.shape
    if weights.shape != (k,) or covs.shape != (k, d, d):
        raise ValueError(f"expected weights ({k},) and covs ({k}, {d}, {d}) for means ({k}, {d})")
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("weights must be non-negative and not all zero")
    scale_tril = _cholesky(covs, "covs")
    # Validated above, so torch's per-call checks are skipped: log_prob runs inside SGD loops.
    # Diagonal covariances use elementwise Normals (no triangular solves, much cheaper).
    if torch.equal(covs, torch.diag_embed(covs.diagonal(dim1=-2, dim2=-1))):
        stds = scale_tril.diagonal(dim1=-2, dim2=-1)
        components = D.Independent(D.Normal(means, stds, validate_args=False), 1)
    else:
        components = D.MultivariateNormal(means, scale_tril=scale_tril, validate_args=False)
    weights = D.Categorical(probs=weights / weights.sum(), validate_args=False)
    return D.MixtureSameFamily(weights, components, validate_args=False)


def _component_covariances(components: D.Distribution) -> torch.Tensor:
    """(K, D, D) covariances of the components of a mixture made by ``mixture``."""
    if isinstance(components, D.MultivariateNormal):
        return components.covariance_matrix
    return torch.diag_embed(components.variance)


def fit_forward_kl(target: D.MixtureSameFamily) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_q KL(p || q) over Gaussians q: the mixture's mean (D,) and covariance (D, D)."""
    components = getattr(target, "component_distribution", None)
    gaussian = isinstance(components, D.MultivariateNormal) or (
        isinstance(components, D.Independent) and isinstance(components.base_dist, D.Normal)
    )
    if not isinstance(target, D.MixtureSameFamily) or not gaussian:
        raise TypeError("target must be a Gaussian mixture made with course_utils.vi.mixture")
    w = target.mixture_distribution.probs  # (K,)
    means = components.mean  # (K, D)
    covs = _component_covariances(components)  # (K, D, D)
    mean = w @ means
    centred = means - mean
    # law of total covariance: E[Cov(z | k)] + Cov(E[z | k])
    cov = torch.einsum("k,kij->ij", w, covs) + torch.einsum("k,ki,kj->ij", w, centred, centred)
    return mean, cov


def fit_reverse_kl(
    log_p: Callable[[torch.Tensor], torch.Tensor],
    mu_init: torch.Tensor,
    num_steps: int = 1000,
    num_samples: int = 64,
    lr: float = 0.05,
    scale_init: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """argmin_q KL(q || p) over Gaussians q by reparameterized SGD: log_p (S, D) -> (S,).

    Returns {"mu" (D,), "cov" (D, D), "loss" (num_steps,)}; the loss estimates KL(q || p) - log Z
    (exactly KL(q || p) when log_p is normalised).
    """
    _require_tensor(mu_init, "mu_init", ndim=1)
    num_steps, num_samples = _require_count(num_steps, "num_steps"), _require_count(
        num_samples, "num_samples"
    )
    lr, scale_init = _require_positive(lr, "lr"), _require_positive(scale_init, "scale_init")
    d, like = mu_init.shape[0], {"dtype": mu_init.dtype, "device": mu_init.device}
    mu = mu_init.detach().clone().requires_grad_(True)
    raw_scale = torch.full((d,), math.log(math.expm1(scale_init)), **like, requires_grad=True)
    lower = torch.zeros(d, d, **like, requires_grad=True)
    optimizer = torch.optim.Adam([mu, raw_scale, lower], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 - t / num_steps)
    losses = []
    for _ in range(num_steps):
        scale_tril = torch.tril(lower, -1) + torch.diag(F.softplus(raw_scale))
        eps = _randn(num_samples, d, like=mu_init, generator=generator)
        z = mu + eps @ scale_tril.T  # reparameterization: z = mu + L eps
        entropy = 0.5 * d * (1 + _LOG_2PI) + scale_tril.diagonal().log().sum()
        loss = -(log_p(z).mean() + entropy)  # E_q[log q - log p] = -E_q[log p] - H(q)
        require_finite_loss(loss, len(losses), "fit_reverse_kl")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.detach())
    scale_tril = (torch.tril(lower, -1) + torch.diag(F.softplus(raw_scale))).detach()
    return {"mu": mu.detach(), "cov": scale_tril @ scale_tril.T, "loss": torch.stack(losses)}


# --------------------------------------------------------------------------- exact answers


class LinearGaussian:
    """z ~ N(0, I_L), x | z ~ N(W z + b, sigma2 I_D): probabilistic PCA, every answer exact."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma2: float):
        _require_tensor(W, "W", ndim=2)
        _require_tensor(b, "b", ndim=1)
        if b.shape[0] != W.shape[0]:
            raise ValueError(f"b must have shape ({W.shape[0]},) to match W {tuple(W.shape)}")
        self.W, self.b, self.sigma2 = W, b, _require_positive(sigma2, "sigma2")
        self.x_dim, self.z_dim = W.shape

    def _eye(self, n: int) -> torch.Tensor:
        return torch.eye(n, dtype=self.W.dtype, device=self.W.device)

    def _require_x(self, x: torch.Tensor) -> None:
        _require_tensor(x, "x", ndim=2)
        if x.shape[1] != self.x_dim:
            raise ValueError(f"x must have shape (B, {self.x_dim}), got {tuple(x.shape)}")

    def sample(self, n: int, generator: torch.Generator | None = None):
        """Draw n pairs from p(z) p(x | z): -> x (n, D), z (n, L)."""
        _require_count(n, "n")
        z = _randn(n, self.z_dim, like=self.W, generator=generator)
        noise = _randn(n, self.x_dim, like=self.W, generator=generator)
        return z @ self.W.T + self.b + math.sqrt(self.sigma2) * noise, z

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(z) + log p(x | z): x (B, D), z (..., B, L) -> (..., B)."""
        self._require_x(x)
        _require_tensor(z, "z", min_ndim=2)
        log_prior = -0.5 * (self.z_dim * _LOG_2PI + z.pow(2).sum(-1))
        residual = x - z @ self.W.T - self.b
        log_lik = -0.5 * (self.x_dim * math.log(2 * math.pi * self.sigma2)
                          + residual.pow(2).sum(-1) / self.sigma2)
        return log_prior + log_lik

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = log N(x; b, W W^T + sigma2 I): x (B, D) -> (B,)."""
        self._require_x(x)
        cov = self.W @ self.W.T + self.sigma2 * self._eye(self.x_dim)
        return D.MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact p(z | x) = N(mean, cov): x (B, D) -> mean (B, L), cov (L, L) shared by all x."""
        self._require_x(x)
        cov = torch.linalg.inv(self._eye(self.z_dim) + self.W.T @ self.W / self.sigma2)
        mean = (x - self.b) @ self.W @ cov / self.sigma2  # cov is symmetric
        return mean, cov

    def elbo(self, x: torch.Tensor, q_mean: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
        """Closed-form ELBO of q(z) = N(q_mean, q_cov): x (B, D), (B, L), (..., L, L) -> (B,)."""
        self._require_x(x)
        _require_gaussian(q_mean, q_cov, "")
        # E_q[log p(x | z)] - KL(q(z) || p(z)), with E_q||x - W z - b||^2 = ||x - W m - b||^2
        # + tr(W S W^T)
        residual = x - q_mean @ self.W.T - self.b
        trace = torch.einsum("ij,...jk,ik->...", self.W, q_cov, self.W)
        expected_sq = residual.pow(2).sum(-1) + trace
        rec = -0.5 * (self.x_dim * math.log(2 * math.pi * self.sigma2) + expected_sq / self.sigma2)
        zero = torch.zeros_like(q_mean)
        return rec - kl_mvn(q_mean, q_cov, zero, self._eye(self.z_dim))


def importance_log_marginal(
    log_joint: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    q_mean: torch.Tensor,
    q_cov: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log p(x) ≈ log (1/S) Σ_s p(x, z_s) / q(z_s), z_s ~ N(q_mean, q_cov): x (B, D) -> (B,).

    ``log_joint(x (B, D), z (S, B, L)) -> (S, B)``; q_mean (B, L) or (L,), q_cov (..., L, L).
    """
    _require_tensor(x, "x", ndim=2)
    _require_gaussian(q_mean, q_cov, "")
    _require_count(num_samples, "num_samples")
    scale_tril = _cholesky(q_cov, "q_cov")  # (..., L, L)
    latent = q_mean.shape[-1]
    batch = torch.broadcast_shapes(q_mean.shape[:-1], scale_tril.shape[:-2], x.shape[:1])
    eps = _randn(num_samples, *batch, latent, like=x, generator=generator)  # (S, B, L)
    z = q_mean + (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)  # z = m + L eps ~ q
    # log q(z) from eps directly: -||eps||^2 / 2 - log det L - L/2 log 2 pi (no solve needed)
    log_det = scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    log_q = -0.5 * (eps.pow(2).sum(-1) + latent * _LOG_2PI) - log_det
    log_w = log_joint(x, z) - log_q  # (S, B) importance log-weights
    return log_mean_exp(log_w, dim=0)
