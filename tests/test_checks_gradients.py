"""Every check of a differentiable output rejects an answer whose graph was cut, and says so."""

import pytest
import torch

from course_utils import check, flows, gmm, iwae, numerics, ssvae, vae, vi
from course_utils import cvae as cvae_module
from course_utils.checks import beta_vae as beta_checks
from course_utils.checks.core import assert_fails, assert_passes

CORRECT = {  # a correct answer for every exercise whose output trains something
    "logsumexp": numerics.logsumexp,
    "gaussian_log_density": gmm.gaussian_log_density,
    "gmm_log_likelihood": gmm.gmm_log_likelihood,
    "kl_mvn": vi.kl_mvn,
    "log_mean_exp": numerics.log_mean_exp,
    "reparameterize": vae.reparameterize,
    "gaussian_kl": vae.gaussian_kl,
    "bernoulli_log_likelihood": vae.bernoulli_log_likelihood,
    "gaussian_log_likelihood": vae.gaussian_log_likelihood,
    "negative_elbo": vae.negative_elbo,
    "log_importance_weights": iwae.log_importance_weights,
    "iwae_bound": iwae.iwae_bound,
    "beta_vae_loss": beta_checks._reference_beta,
    "capacity_loss": beta_checks._reference_capacity,
    "conditional_elbo": cvae_module.conditional_elbo,
    "labeled_loss": ssvae.labeled_loss,
    "unlabeled_loss": ssvae.unlabeled_loss,
    "planar_flow": flows.planar_flow,
}


def _map(value, fn):
    if isinstance(value, torch.Tensor):
        return fn(value) if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_map(v, fn) for v in value)
    return value


def detached(fn):
    return lambda *a, **k: _map(fn(*a, **k), lambda t: t.detach())


def under_no_grad(fn):
    def answer(*a, **k):
        with torch.no_grad():
            return fn(*a, **k)
    return answer


def rewrapped(fn):  # torch.tensor(loss.item()) and friends: right numbers, no graph
    return lambda *a, **k: _map(fn(*a, **k), lambda t: torch.tensor(
        t.tolist(), dtype=t.dtype, device=t.device))


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_the_correct_answer_passes(name):
    assert_passes(getattr(check, name), CORRECT[name])


@pytest.mark.parametrize("cut", [detached, under_no_grad, rewrapped],
                         ids=["detach", "no_grad", "torch.tensor"])
@pytest.mark.parametrize("name", sorted(CORRECT))
def test_an_answer_cut_from_the_graph_is_rejected_and_named(name, cut):
    message = assert_fails(getattr(check, name), cut(CORRECT[name]))
    assert any(words in message.lower() for words in (
        "no gradient", "not connected", "does not depend", "autograd", "gradient")), message


def test_a_partly_detached_loss_is_named():
    def kl_detached(x, x_logits, mu, logvar, beta=1.0):
        out = vae.negative_elbo(x, x_logits, mu, logvar, beta)
        kl = vae.gaussian_kl(mu, logvar).mean()
        return {"loss": out["rec"] + beta * kl.detach(), "rec": out["rec"], "kl": kl}
    message = assert_fails(check.negative_elbo, kl_detached, "gradient", "wrong")
    assert 'out["loss"]' in message or "mu" in message or "logvar" in message


def test_em_updates_may_detach():
    """EM's updates are not trained by gradients: detaching there is not a mistake."""
    assert_passes(check.e_step, detached(gmm.e_step))
