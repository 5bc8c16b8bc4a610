"""Planar flows: the log-determinant against autograd, invertibility, densities, the flow VAE."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from course_utils.data import load_digits
from course_utils.flows import (
    FlowDensity,
    FlowVAE,
    constrain_u,
    fit_flow_density,
    log_normaliser,
    planar_flow,
    potential,
    reverse_kl,
)
from course_utils.train import fit
from course_utils.vae import VAE


def _inputs(seed, batch=7, dim=3, amortised=False, w_dot_u=None):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, dim) if amortised else (dim,)
    z = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    u = 2 * torch.randn(*shape, generator=g, dtype=torch.float64)
    if w_dot_u is not None:
        u = u + (w_dot_u - (w * u).sum(-1, keepdim=True)) * w / w.pow(2).sum(-1, keepdim=True)
    b = torch.randn((batch,) if amortised else (), generator=g, dtype=torch.float64)
    return z, w, u, b


def _autograd_log_det(fn, z):
    """log |det J| of fn at each row of z, J from torch.autograd.functional.jacobian."""
    out = []
    for row in z:
        jac = torch.autograd.functional.jacobian(fn, row)
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


# --------------------------------------------------------------------------- planar_flow


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("w_dot_u", [None, -5.0, -1.0, 0.0, 3.0])
def test_log_det_matches_autograd_jacobian_shared(seed, w_dot_u):
    z, w, u, b = _inputs(seed, w_dot_u=w_dot_u)
    _, log_det = planar_flow(z, w, u, b)
    expected = _autograd_log_det(lambda x: planar_flow(x[None], w, u, b)[0][0], z)
    torch.testing.assert_close(log_det, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_log_det_matches_autograd_jacobian_amortised(seed):
    z, w, u, b = _inputs(seed, batch=5, dim=4, amortised=True, w_dot_u=-3.0)
    _, log_det = planar_flow(z, w, u, b)
    expected = torch.stack([
        _autograd_log_det(lambda x, i=i: planar_flow(x[None], w[i], u[i], b[i])[0][0],
                          z[i:i + 1])[0]
        for i in range(len(z))
    ])
    torch.testing.assert_close(log_det, expected, rtol=1e-10, atol=1e-10)


def test_output_is_the_planar_map_with_the_constrained_u():
    z, w, u, b = _inputs(0, w_dot_u=-4.0)
    z_new, _ = planar_flow(z, w, u, b)
    u_hat = constrain_u(w, u)
    expected = z + u_hat * torch.tanh(z @ w + b)[:, None]
    torch.testing.assert_close(z_new, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("w_dot_u", [-100.0, -3.0, -1.0, -0.5, 0.0, 2.0, 50.0])
def test_constraint_gives_w_dot_u_hat_above_minus_one(w_dot_u):
    _, w, u, _ = _inputs(1, w_dot_u=w_dot_u)
    u_hat = constrain_u(w, u)
    wu_hat = (w * u_hat).sum()
    # Rezende & Mohamed 2015, appendix A.1: wᵀû = m(wᵀu) = -1 + softplus(wᵀu) > -1
    assert wu_hat.item() == pytest.approx(-1 + math.log1p(math.exp(w_dot_u)), abs=1e-9)
    assert wu_hat.item() >= -1 - 1e-12  # = -1 up to rounding only when softplus underflows
    if w_dot_u > -30:
        assert wu_hat.item() > -1
    # û differs from u only along w
    residual = (u_hat - u) - ((u_hat - u) @ w) * w / (w @ w)
    assert residual.abs().max().item() < 1e-12


@pytest.mark.parametrize("w_dot_u", [-50.0, -3.0, -1.0])
def test_constrained_flow_is_invertible_but_the_raw_one_is_not(w_dot_u):
    z, w, u, b = _inputs(2, batch=1, dim=2, w_dot_u=w_dot_u)
    t = torch.linspace(-6, 6, 2001, dtype=torch.float64)[:, None]
    line = z + t * w / w.norm()  # points along w: f moves them along û only
    z_new, log_det = planar_flow(line, w, u, b)
    projected = z_new @ w  # wᵀf(z) must increase strictly with wᵀz for an invertible f
    assert (projected.diff() > 0).all()
    assert torch.isfinite(log_det).all()
    raw = line + u * torch.tanh(line @ w + b)[:, None]  # the flow with the raw u (wᵀu <= -1)
    if w_dot_u < -1:
        assert (raw @ w).diff().min() < 0  # folds back: two inputs share one output


def test_planar_flow_follows_dtype_and_keeps_gradients():
    z, w, u, b = (t.float() for t in _inputs(3))
    w.requires_grad_(True)
    z_new, log_det = planar_flow(z, w, u, b)
    assert z_new.dtype == log_det.dtype == torch.float32 and log_det.shape == (7,)
    log_det.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_planar_flow_validates_its_inputs():
    z, w, u, b = _inputs(0)
    with pytest.raises(ValueError, match="z must have shape"):
        planar_flow(z[0], w, u, b)
    with pytest.raises(ValueError, match="w must have shape"):
        planar_flow(z, w[:2], u, b)
    with pytest.raises(ValueError, match="u must have shape"):
        planar_flow(z, w, u.expand(3, 3), b)
    with pytest.raises(ValueError, match="b must be a scalar"):
        planar_flow(z, w, u, b.expand(2))
    with pytest.raises(TypeError, match="floating-point"):
        planar_flow(z.long(), w, u, b)
    with pytest.raises(TypeError, match="torch.Tensor"):
        planar_flow(z, w.numpy(), u, b)
    with pytest.raises(ValueError, match="nan or inf"):
        planar_flow(z, w, u * float("nan"), b)
    with pytest.raises(ValueError, match="same shape"):
        constrain_u(w, u[:2])


# --------------------------------------------------------------------------- 2-D targets


def _u1_numpy(z1, z2):
    ring = 0.5 * ((np.hypot(z1, z2) - 2) / 0.4) ** 2
    lobes = np.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + np.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)
    return ring - np.log(lobes)


def test_potentials_match_the_paper_formulas():
    z = torch.tensor([[2.0, 0.0], [0.3, -1.2], [-1.0, 2.5]], dtype=torch.float64)
    expected_u1 = _u1_numpy(z[:, 0].numpy(), z[:, 1].numpy())
    np.testing.assert_allclose(potential(z, "U1").numpy(), expected_u1, rtol=1e-12, atol=1e-12)
    z1, z2 = z[:, 0].numpy(), z[:, 1].numpy()
    w1 = np.sin(2 * np.pi * z1 / 4)
    wall = 0.5 * (z1 / 4) ** 8
    np.testing.assert_allclose(potential(z, "U2").numpy(),
                               0.5 * ((z2 - w1) / 0.4) ** 2 + wall, rtol=1e-12)
    w3 = 3 / (1 + np.exp(-(z1 - 1) / 0.3))
    u4 = -np.log(np.exp(-0.5 * ((z2 - w1) / 0.4) ** 2)
                 + np.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2))
    np.testing.assert_allclose(potential(z, "U4").numpy(), u4 + wall, rtol=1e-12)
    with pytest.raises(ValueError, match="must be one of"):
        potential(z, "U9")
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        potential(z[:, :1], "U1")


def test_log_normaliser_matches_scipy_quadrature():
    value, _ = integrate.dblquad(lambda y, x: np.exp(-_u1_numpy(x, y)), -6, 6, -6, 6,
                                 epsabs=1e-10)
    assert log_normaliser("U1") == pytest.approx(math.log(value), abs=1e-4)


# --------------------------------------------------------------------------- flow densities


def test_flow_density_log_q_matches_change_of_variables():
    torch.manual_seed(0)
    flow = FlowDensity(dim=2, num_flows=5, init_std=1.0).double()
    z0 = torch.randn(6, 2, dtype=torch.float64)
    _, sum_log_det = flow.transform(z0)
    expected = _autograd_log_det(lambda x: flow.transform(x[None])[0][0], z0)
    torch.testing.assert_close(sum_log_det, expected, rtol=1e-9, atol=1e-9)


def test_flow_density_is_normalised():
    """E_q[p(z) / q_K(z)] = ∫ p = 1 for any normalised p: a wrong log q_K breaks it."""
    torch.manual_seed(1)
    flow = FlowDensity(dim=2, num_flows=6, init_std=0.8).double()
    with torch.no_grad():
        z, log_q = flow(400_000)
    log_p = torch.distributions.Normal(0.0, 2.0).log_prob(z).sum(-1)
    ratio = torch.exp(log_p - log_q)
    stderr = ratio.std() / math.sqrt(len(ratio))
    assert abs(ratio.mean().item() - 1) < 4 * stderr.item() + 1e-3


def test_fitting_a_flow_to_u1_lowers_the_reverse_kl():
    torch.manual_seed(0)
    flow = FlowDensity(dim=2, num_flows=4)
    log_z = log_normaliser("U1")
    with torch.no_grad():
        before = reverse_kl(flow, "U1", 20_000)["loss"].item() + log_z
    losses = fit_flow_density(flow, "U1", num_steps=300)
    with torch.no_grad():
        after = reverse_kl(flow, "U1", 20_000)["loss"].item() + log_z
    assert len(losses) == 300
    assert after > -0.02  # a KL: non-negative up to Monte Carlo noise
    assert after < 1.0 < before


def test_flow_density_validates():
    with pytest.raises(ValueError, match="num_flows"):
        FlowDensity(2, -1)
    with pytest.raises(ValueError, match="beta"):
        reverse_kl(FlowDensity(2, 1), "U1", 8, beta=-1.0)
    assert FlowDensity(2, 0)(5)[0].shape == (5, 2)  # K = 0: the Gaussian alone


# --------------------------------------------------------------------------- the flow VAE


def _digits(n=64):
    x, _ = load_digits("train")
    return (x[:n] > 0.5).float()


def test_flow_vae_log_q_matches_change_of_variables():
    torch.manual_seed(0)
    model = FlowVAE(64, z_dim=3, hidden_dims=(16,), num_flows=3).double()
    x = _digits(1).double()
    mu, logvar, w, u, b = model.encoder(x)
    torch.manual_seed(5)
    z, log_q = model.posterior_sample(x, k=4)
    torch.manual_seed(5)
    eps = torch.randn(4, 1, 3, dtype=torch.float64)
    z0 = (mu + torch.exp(0.5 * logvar) * eps)[:, 0]  # (4, Z)
    log_q0 = torch.distributions.Normal(mu[0], torch.exp(0.5 * logvar[0])).log_prob(z0).sum(-1)

    def transform(v):
        for j in range(3):
            v = planar_flow(v[None], w[0, j], u[0, j], b[0, j])[0][0]
        return v

    torch.testing.assert_close(z[:, 0], torch.stack([transform(v) for v in z0]))
    torch.testing.assert_close(log_q[:, 0], log_q0 - _autograd_log_det(transform, z0))


def test_flow_vae_loss_is_minus_the_one_sample_log_weight():
    torch.manual_seed(0)
    model = FlowVAE(64, z_dim=2, hidden_dims=(32,), num_flows=4)
    x = _digits(10)
    torch.manual_seed(3)
    parts = model.loss(x)
    torch.manual_seed(3)
    log_w = model.log_weights(x, 1)
    assert log_w.shape == (1, 10)
    torch.testing.assert_close(parts["loss"], -log_w.mean())
    torch.testing.assert_close(parts["loss"], parts["rec"] + parts["kl"])
    assert model.encode(x)[0].shape == (10, 2)
    assert model.sample(5).shape == (5, 64)


def test_flow_vae_kl_estimate_is_unbiased_with_identity_flows():
    """Zero flow parameters make every flow the identity (w = u = b = 0, log|det| = 0): the
    Monte Carlo KL must then average to the closed-form Gaussian KL of a plain VAE."""
    torch.manual_seed(0)
    model = FlowVAE(64, z_dim=2, hidden_dims=(32,), num_flows=2).double()
    last = model.encoder.net[-1]
    with torch.no_grad():
        last.weight[4:] = 0.0
        last.bias[4:] = 0.0
    x = _digits(1).double()
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z, log_q = model.posterior_sample(x, k=50_000)  # (k, 1, Z), (k, 1)
        q0 = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        torch.testing.assert_close(log_q, q0.log_prob(z).sum(-1))
        kl = log_q - torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        torch.manual_seed(1)
        parts = model.loss(x.expand(5_000, 64))
    exact = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum()
    spread = kl.std()
    assert spread > 0.01  # a real Monte Carlo estimate, not the closed form
    assert abs(kl.mean() - exact) < 4 * spread / math.sqrt(50_000)
    assert abs(parts["kl"] - exact) < 4 * spread / math.sqrt(5_000)


def test_flow_vae_trains_and_gradients_reach_the_flow_head():
    torch.manual_seed(0)
    x = _digits(256)
    model = FlowVAE(64, z_dim=2, hidden_dims=(64,), num_flows=4)
    model.loss(x)["loss"].backward()
    last = model.encoder.net[-1]
    flow_rows = last.weight.grad[4:]  # rows producing (w, u, b)
    assert flow_rows.abs().sum() > 0
    model.zero_grad()
    history = fit(model, x, num_epochs=8, lr=3e-3, progress=False, seed=0)
    assert history.train["loss"][-1] < history.train["loss"][0] - 5


def test_flow_vae_validates():
    with pytest.raises(ValueError, match="num_flows"):
        FlowVAE(64, 2, (8,), num_flows=0)
    model = FlowVAE(64, 2, (8,), num_flows=1)
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        model.loss(torch.zeros(3, 10))
    with pytest.raises(ValueError, match="k must be"):
        model.log_weights(torch.zeros(3, 64), 0)
    assert isinstance(model, VAE)


# --------------------------------------------------------------------------- the 2-D plots


def test_density_grid_is_normalised_and_oriented():
    import matplotlib

    matplotlib.use("Agg")
    from course_utils.plots import density_grid, plot_density_2d, plot_samples_2d

    peak = torch.tensor([2.0, -1.0], dtype=torch.float64)
    density = density_grid(lambda z: -0.5 * ((z - peak) / 0.3).pow(2).sum(-1), n=81)
    assert density.shape == (81, 81) and density.sum() == pytest.approx(1.0)
    row, col = np.unravel_index(density.argmax(), density.shape)
    axis = np.linspace(-4, 4, 81)
    assert (axis[col], axis[row]) == pytest.approx((2.0, -1.0))  # columns: z1, rows: z2
    ax = plot_density_2d(density, log_scale=True, title="t")
    shown = ax.images[0].get_array()
    assert shown.max() - shown.min() == pytest.approx(6.0)
    samples = peak + 0.3 * torch.randn(5000, 2, dtype=torch.float64)
    counts = plot_samples_2d(samples, bins=80).images[0].get_array()
    row, col = np.unravel_index(np.argmax(counts), counts.shape)
    assert abs(-4 + (col + 0.5) * 0.1 - 2.0) < 0.3 and abs(-4 + (row + 0.5) * 0.1 + 1.0) < 0.3
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot_samples_2d(samples[:, :1])
    with pytest.raises(ValueError, match="n must be"):
        density_grid(lambda z: z.sum(-1), n=1)
