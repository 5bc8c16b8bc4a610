"""Planar normalizing flows (Rezende & Mohamed 2015, "Variational Inference with Normalizing
Flows", ICML).

- ``constrain_u``, ``planar_flow``: one planar map f(z) = z + û h(wᵀz + b) and its log-determinant
  (the exercise of notebook 09), with the reparameterisation û that keeps wᵀû ≥ -1 (invertible).
- ``potential``: the four unnormalised 2-D targets exp(-U(z)) of the paper's Table 1 / Fig. 3.
- ``FlowDensity``, ``reverse_kl``, ``fit_flow_density``: a flow q_K fitted to such a target by
  minimising the reverse KL (the paper's section 6.1).
- ``FlowVAE``: a VAE whose posterior q_K(z|x) is a diagonal Gaussian pushed through K planar
  flows whose parameters (w, u, b) the encoder outputs for each x (amortised, as in the paper).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .train import progress_bar, require_finite_loss
from .vae import LOG_2PI, MLP, VAE, _require_beta, _require_dims

# --------------------------------------------------------------------------- one planar flow


def _require_float(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _require_finite(x: torch.Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains nan or inf values")


def _check_flow_inputs(z, w, u, b) -> None:
    for value, name in ((z, "z"), (w, "w"), (u, "u"), (b, "b")):
        _require_float(value, name)
        _require_finite(value, name)
    if z.ndim != 2:
        raise ValueError(f"z must have shape (B, D), got {tuple(z.shape)}")
    batch, dim = z.shape
    for value, name in ((w, "w"), (u, "u")):
        if value.shape not in ((dim,), (batch, dim)):
            raise ValueError(f"{name} must have shape ({dim},) or ({batch}, {dim}) to match z "
                             f"{tuple(z.shape)}, got {tuple(value.shape)}")
    if b.shape not in ((), (batch,)):
        raise ValueError(f"b must be a scalar tensor or have shape ({batch},), "
                         f"got {tuple(b.shape)}")


def _constrain_u(w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    # Rezende & Mohamed 2015, appendix A.1: û = u + (m(wᵀu) - wᵀu) w / ||w||²,
    # m(a) = -1 + softplus(a), so that wᵀû = m(wᵀu) > -1 (the clamp only guards w = 0)
    wu = (w * u).sum(-1, keepdim=True)
    w_norm2 = w.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)
    return u + (F.softplus(wu) - 1.0 - wu) * w / w_norm2


def _planar_flow(z, w, u, b) -> tuple[torch.Tensor, torch.Tensor]:
    u_hat = _constrain_u(w, u)  # (D,) or (B, D)
    a = (z * w).sum(-1) + b  # (B,)  wᵀz + b
    z_new = z + u_hat * torch.tanh(a).unsqueeze(-1)  # eq. 10: f(z) = z + û h(wᵀz + b)
    psi_u = (1.0 - torch.tanh(a).pow(2)) * (w * u_hat).sum(-1)  # ûᵀψ(z), ψ(z) = h'(wᵀz + b) w
    log_det = torch.log(torch.abs(1.0 + psi_u))  # eq. 12: log |det ∂f/∂z| = log |1 + ûᵀψ(z)|
    return z_new, log_det


def constrain_u(w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """û = u + (m(wᵀu) - wᵀu) w/||w||², m(a) = -1 + softplus(a), so wᵀû > -1: (.., D) -> (.., D)."""
    for value, name in ((w, "w"), (u, "u")):
        _require_float(value, name)
        _require_finite(value, name)
    if w.shape != u.shape or w.ndim not in (1, 2):
        raise ValueError(f"w and u must have the same shape (D,) or (B, D), got {tuple(w.shape)} "
                         f"and {tuple(u.shape)}")
    return _constrain_u(w, u)


def planar_flow(
    z: torch.Tensor, w: torch.Tensor, u: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """f(z) = z + û tanh(wᵀz + b) and log|det ∂f/∂z|: z (B, D); w, u (D,) or (B, D); b () or (B,)
    -> (B, D), (B,). The raw u is first mapped to û (``constrain_u``) so f is invertible."""
    _check_flow_inputs(z, w, u, b)
    return _planar_flow(z, w, u, b)


# --------------------------------------------------------------------------- 2-D targets


def _w1(z):
    return torch.sin(2 * math.pi * z[:, 0] / 4)


def _gauss_bump(x, scale):
    return -0.5 * (x / scale).pow(2)


def _u1(z):
    ring = 0.5 * ((z.norm(dim=-1) - 2) / 0.4).pow(2)
    lobes = torch.logaddexp(_gauss_bump(z[:, 0] - 2, 0.6), _gauss_bump(z[:, 0] + 2, 0.6))
    return ring - lobes


def _u2(z):
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4).pow(2)


def _u3(z):
    w2 = 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6).pow(2))
    return -torch.logaddexp(_gauss_bump(z[:, 1] - _w1(z), 0.35),
                            _gauss_bump(z[:, 1] - _w1(z) + w2, 0.35))


def _u4(z):
    w3 = 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)
    return -torch.logaddexp(_gauss_bump(z[:, 1] - _w1(z), 0.4),
                            _gauss_bump(z[:, 1] - _w1(z) + w3, 0.35))


_POTENTIALS = {"U1": _u1, "U2": _u2, "U3": _u3, "U4": _u4}
BOX = 4.0  # the paper draws the targets on [-4, 4]²; U2-U4 need a wall there to be normalisable


def potential(z: torch.Tensor, name: str = "U1") -> torch.Tensor:
    """U(z) of Rezende & Mohamed 2015, Table 1 (target density ∝ exp(-U)): z (B, 2) -> (B,).

    U2-U4 barely depend on z1 far from the origin, so exp(-U) would have infinite mass; they get
    a steep wall (z1 / 4)^8 / 2 that keeps their mass inside the [-4, 4]² box where the paper
    draws them. U1 is exactly as in the paper."""
    if name not in _POTENTIALS:
        raise ValueError(f"name must be one of {list(_POTENTIALS)}, got {name!r}")
    _require_float(z, "z")
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"z must have shape (B, 2), got {tuple(z.shape)}")
    energy = _POTENTIALS[name](z)
    if name != "U1":
        energy = energy + 0.5 * (z[:, 0] / BOX).pow(8)
    return energy


def log_normaliser(name: str = "U1", n: int = 600, box: float = 6.0) -> float:
    """log Z = log ∫ exp(-U(z)) dz by the midpoint rule on an n x n grid over [-box, box]²."""
    _require_dims(n=n)
    step = 2 * box / n
    centres = -box + step * (torch.arange(n, dtype=torch.float64) + 0.5)
    grid = torch.cartesian_prod(centres, centres)  # (n², 2)
    log_terms = -potential(grid, name) + 2 * math.log(step)
    return float(torch.logsumexp(log_terms, 0))


# --------------------------------------------------------------------------- a flow density


class FlowDensity(nn.Module):
    """q_K: a learnable diagonal Gaussian q_0 pushed through K planar flows with shared parameters.

    ``forward(n)`` draws n samples and returns (z_K (n, D), log q_K(z_K) (n,)), using
    log q_K(z_K) = log q_0(z_0) - Σ_k log |det ∂f_k/∂z_{k-1}|  (Rezende & Mohamed 2015, eq. 13).
    """

    def __init__(self, dim: int = 2, num_flows: int = 8, init_std: float = 0.1):
        super().__init__()
        if isinstance(num_flows, bool) or not isinstance(num_flows, int) or num_flows < 0:
            raise ValueError(f"num_flows must be an int >= 0, got {num_flows!r}")
        _require_dims(dim=dim)
        self.mu = nn.Parameter(torch.zeros(dim))
        self.logvar = nn.Parameter(torch.zeros(dim))
        self.w = nn.Parameter(init_std * torch.randn(num_flows, dim))
        self.u = nn.Parameter(init_std * torch.randn(num_flows, dim))
        self.b = nn.Parameter(torch.zeros(num_flows))

    @property
    def num_flows(self) -> int:
        return self.b.shape[0]

    def transform(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Push z_0 (n, D) through the K flows: -> z_K (n, D), Σ_k log|det| (n,)."""
        u_hat = _constrain_u(self.w, self.u)  # (K, D): all K flows made invertible at once
        wu_hat = (self.w * u_hat).sum(-1)  # (K,)
        sum_log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for k in range(self.num_flows):  # the same maths as _planar_flow, with û precomputed
            h = torch.tanh(z @ self.w[k] + self.b[k])  # (n,)
            z = z + u_hat[k] * h.unsqueeze(-1)
            sum_log_det = sum_log_det + torch.log(torch.abs(1.0 + (1.0 - h.pow(2)) * wu_hat[k]))
        return z, sum_log_det

    def forward(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n samples z_K ~ q_K and their log-density log q_K(z_K): -> (n, D), (n,)."""
        _require_dims(n=n)
        eps = torch.randn(n, self.mu.shape[0], dtype=self.mu.dtype, device=self.mu.device)
        z0 = self.mu + torch.exp(0.5 * self.logvar) * eps
        log_q0 = -0.5 * (LOG_2PI + self.logvar + eps.pow(2)).sum(-1)
        z, sum_log_det = self.transform(z0)
        return z, log_q0 - sum_log_det

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n samples of q_K: (n, D)."""
        return self(n)[0]


def reverse_kl(flow: FlowDensity, name: str = "U1", n: int = 256, beta: float = 1.0) -> dict:
    """Monte Carlo free energy E_q[log q_K(z) + beta U(z)] = KL(q_K || p) - log Z at beta = 1.

    Returns batch means {"loss", "log_q", "energy"}; Rezende & Mohamed 2015, eq. 15 with the
    annealed beta of section 6.1 (beta < 1 flattens the target early in training)."""
    beta = _require_beta(beta)
    z, log_q = flow(n)
    energy = potential(z, name)
    return {"loss": (log_q + beta * energy).mean(), "log_q": log_q.mean(), "energy": energy.mean()}


def fit_flow_density(
    flow: FlowDensity, name: str = "U1", *, num_steps: int = 2000, batch_size: int = 256,
    lr: float = 1e-2, anneal_steps: int | None = None, progress: bool = False,
) -> list[float]:
    """Fit ``flow`` to exp(-U) by Adam on the reverse KL with beta annealed from 0.01 to 1 over
    ``anneal_steps`` (default: half the steps); returns the free energy (beta = 1) per step."""
    _require_dims(num_steps=num_steps, batch_size=batch_size)
    anneal_steps = num_steps // 2 if anneal_steps is None else anneal_steps
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    losses = []
    for step in progress_bar(range(num_steps), disable=not progress, desc=f"K={flow.num_flows}"):
        beta = min(1.0, 0.01 + step / anneal_steps) if anneal_steps > 0 else 1.0
        parts = reverse_kl(flow, name, batch_size, beta)
        require_finite_loss(parts["loss"], step, "fit_flow_density")
        optimizer.zero_grad()
        parts["loss"].backward()
        optimizer.step()
        losses.append(float(parts["log_q"].detach() + parts["energy"].detach()))
    return losses


# --------------------------------------------------------------------------- the flow VAE


class FlowEncoder(nn.Module):
    """x (B, D) -> mu, logvar (B, Z) of q_0(z|x) and flow parameters w, u (B, K, Z), b (B, K)."""

    def __init__(self, x_dim: int, hidden_dims: Sequence[int], z_dim: int, num_flows: int,
                 activation: str = "relu"):
        super().__init__()
        self.z_dim, self.num_flows = z_dim, num_flows
        self.net = MLP(x_dim, hidden_dims, 2 * z_dim + num_flows * (2 * z_dim + 1), activation)

    def forward(self, x: torch.Tensor):
        z_dim, k = self.z_dim, self.num_flows
        out = self.net(x)
        mu, logvar, flow = out.split([z_dim, z_dim, k * (2 * z_dim + 1)], dim=-1)
        w, u, b = flow.split([k * z_dim, k * z_dim, k], dim=-1)
        shape = (*x.shape[:-1], k, z_dim)
        return mu, logvar, w.reshape(shape), u.reshape(shape), b


class FlowVAE(VAE):
    """A VAE with q_K(z|x): N(mu(x), diag e^logvar(x)) pushed through K amortised planar flows.

    The encoder outputs (mu, logvar) and, for every x, the K flows' (w, u, b) (Rezende & Mohamed
    2015, section 4.2). ``encode`` returns only (mu, logvar) of q_0; ``posterior_sample`` draws
    z_K with log q_K(z_K|x). Prior N(0, I) and decoder as in ``VAE``. ``flow_fn`` (default
    the reference planar flow) maps (z, w, u, b) to (z_new, log_det).
    """

    def __init__(self, x_dim: int, z_dim: int = 2, hidden_dims: Sequence[int] = (256,),
                 num_flows: int = 4, likelihood: str = "bernoulli", activation: str = "relu",
                 flow_fn=None, **kwargs):
        super().__init__(x_dim, z_dim, hidden_dims, likelihood, activation, **kwargs)
        _require_dims(num_flows=num_flows)
        if flow_fn is not None and not callable(flow_fn):
            raise TypeError(f"flow_fn must be a function like planar_flow, got "
                            f"{type(flow_fn).__name__}")
        self.num_flows = num_flows
        self.flow_fn = flow_fn or _planar_flow  # (z, w, u, b) -> (z_new, log_det)
        self.encoder = FlowEncoder(x_dim, hidden_dims, z_dim, num_flows, activation)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_0(z|x), the Gaussian before the flows: x (B, D) -> mu (B, Z), logvar (B, Z)."""
        return self.encoder(x)[:2]

    def posterior_sample(self, x: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """k draws z_K ~ q_K(z|x) and log q_K(z_K|x): x (B, D) -> (k, B, Z), (k, B)."""
        mu, logvar, w, u, b = self.encoder(x)
        eps = torch.randn((k, *mu.shape), dtype=mu.dtype, device=mu.device)
        z = (mu + torch.exp(0.5 * logvar) * eps).flatten(0, 1)  # (k*B, Z)
        log_q = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1).flatten(0, 1)  # log q_0(z_0|x)
        for j in range(self.num_flows):  # the same flow parameters for each of the k draws
            params = (t[:, j].repeat(k, *([1] * (t.ndim - 2))) for t in (w, u, b))
            z, log_det = self.flow_fn(z, *params)
            log_q = log_q - log_det  # eq. 13: log q_K = log q_0 - Σ_k log |det ∂f_k/∂z|
        return z.unflatten(0, (k, -1)), log_q.unflatten(0, (k, -1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, D) -> x_logits (B, D), z_K (B, Z), log q_K(z_K|x) (B,)."""
        z, log_q = self.posterior_sample(x)
        return self.decode(z[0]), z[0], log_q[0]

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """Negative ELBO with one z_K ~ q_K(z|x), batch means: {"loss", "rec", "kl"} (scalars)."""
        beta = _require_beta(beta)
        self._check_x(x)
        z, log_q = self.posterior_sample(x)
        # Rezende & Mohamed 2015, eq. 20: F = E_q0[log q_0(z_0) - Σ log|det| - log p(x, z_K)]
        rec = -self.log_likelihood(x, z[0])  # (B,)
        kl = log_q[0] + 0.5 * (LOG_2PI + z[0].pow(2)).sum(-1)  # one-sample estimate of KL(q_K || p)
        return {"loss": (rec + beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean()}

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z_i) - log q_K(z_i|x) for z_i ~ q_K(z|x), i = 1..k: x (B, D) -> (k, B)."""
        self._check_x(x)
        _require_dims(k=k)
        z, log_q = self.posterior_sample(x, k)  # (k, B, Z), (k, B)
        log_prior = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
        return self.log_likelihood(x, z) + log_prior - log_q
