"""Bad input gets a clear error that names the problem (the robustness issue's rows)."""

import math

import numpy as np
import pytest
import torch

from course_utils import beta_vae, cvae, priors, seed_everything, ssvae, vae
from course_utils.train import evaluate, fit


def _vae(x_dim=6):
    torch.manual_seed(0)
    return vae.VAE(x_dim, z_dim=2, hidden_dims=(8,))


def test_bernoulli_vae_refuses_pixels_outside_the_unit_interval():
    x = torch.rand(16, 6) * 16  # raw 0..16 digit pixels
    with pytest.raises(ValueError, match=r"\[0, 1\].*Bernoulli.*scale"):
        fit(_vae(), x, num_epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _vae().loss(x)


def test_gaussian_vae_accepts_any_finite_values():
    model = vae.VAE(6, z_dim=2, hidden_dims=(8,), likelihood="gaussian")
    assert math.isfinite(model.loss(torch.randn(4, 6) * 10)["loss"].item())


@pytest.mark.parametrize("bad, match", [
    (torch.full((4, 6), float("nan")), "nan or inf"),
    (torch.full((4, 6), float("inf")), "nan or inf"),
    (torch.zeros(0, 6), "empty batch"),
])
def test_model_loss_refuses_nan_inf_and_empty_batches(bad, match):
    with pytest.raises(ValueError, match=match):
        _vae().loss(bad)
    model = cvae.CVAE(6, 3, z_dim=2, hidden_dims=(8,))
    with pytest.raises(ValueError, match=match):
        model.loss(bad, torch.zeros(len(bad), dtype=torch.long))


def test_float64_batch_on_a_float32_model_is_named():
    with pytest.raises(TypeError, match=r"float64.*parameters are torch.float32"):
        _vae().loss(torch.rand(4, 6, dtype=torch.float64))


def test_labels_given_to_a_vae_are_not_taken_for_beta():
    x, y = torch.rand(8, 6), torch.randint(0, 3, (8,))
    with pytest.raises(ValueError, match=r"2 tensor\(s\) per example.*VAE.loss takes 1 \(x\)"):
        fit(_vae(), (x, y), num_epochs=1, progress=False)
    with pytest.raises(ValueError, match="takes 2"):  # a CVAE without its labels
        fit(cvae.CVAE(6, 3, z_dim=2, hidden_dims=(8,)), x, num_epochs=1, progress=False)
    with pytest.raises(ValueError, match="takes 1"):
        evaluate(_vae(), (x, y))
    fit(cvae.CVAE(6, 3, z_dim=2, hidden_dims=(8,)), (x, y), num_epochs=1, progress=False)


def test_semi_supervised_loss_needs_labels():
    with pytest.raises(ValueError, match="at least one labeled image"):
        ssvae.semi_supervised_loss_fn(torch.zeros(0, 6), torch.zeros(0, dtype=torch.long), 1.0)


def test_aggregate_posterior_kl_refuses_a_prior_of_the_wrong_shape():
    mu, logvar = torch.randn(5, 2), torch.zeros(5, 2)
    wrong = lambda z: -0.5 * z.pow(2).sum(-1, keepdim=True)  # (N, 1): would broadcast to N x N
    with pytest.raises(ValueError, match=r"one log-density per row"):
        priors.aggregate_posterior_kl(mu, logvar, wrong)


def test_seed_everything_takes_numpy_integers():
    seed_everything(np.int64(3))
    first = torch.rand(3)
    seed_everything(3)
    assert torch.equal(first, torch.rand(3))
    with pytest.raises(ValueError):
        seed_everything(True)


def test_a_per_example_loss_is_named():
    per_example = lambda model, x: {"loss": model.loss(x)["loss"] * torch.ones(len(x))}
    with pytest.raises(ValueError, match=r"'loss' must be one number.*\.mean\(\)"):
        fit(_vae(), torch.rand(8, 6), num_epochs=1, progress=False, loss_fn=per_example)


def test_a_missing_checkpoint_folder_is_created(tmp_path):
    path = tmp_path / "new" / "folder" / "vae.pt"
    fit(_vae(), torch.rand(8, 6), num_epochs=1, progress=False, checkpoint=path)
    assert path.exists()


def test_show_images_on_an_empty_batch_says_so():
    from course_utils.plots import show_images
    with pytest.raises(ValueError, match="no images to show"):
        show_images(torch.zeros(0, 64))


def test_loops_outside_fit_stop_on_a_nan_loss():
    from course_utils import flows, vi
    nan_log_p = lambda z: torch.full(z.shape[:-1], float("nan"))
    with pytest.raises(FloatingPointError, match="fit_reverse_kl: the loss became nan"):
        vi.fit_reverse_kl(nan_log_p, torch.zeros(2), num_steps=5)
    flow = flows.FlowDensity(2, num_flows=2)
    with pytest.raises(FloatingPointError, match="fit_flow_density"):
        flows.fit_flow_density(flow, "U1", num_steps=200, lr=1e4)
    classifier = torch.nn.Linear(6, 3)
    with pytest.raises(FloatingPointError, match="fit_classifier"):
        ssvae.fit_classifier(classifier, torch.full((10, 6), float("nan")),
                             torch.zeros(10, dtype=torch.long), num_steps=3)


# --------------------------------------------------------------------------- resume (row 10)


def _resume_setup(tmp_path, **kwargs):
    x = torch.rand(64, 6)
    path = tmp_path / "run.pt"
    fit(_vae(), x, num_epochs=1, checkpoint=path, progress=False, seed=0, **kwargs)
    return x, path


def test_resume_into_another_architecture_names_the_file_and_the_parameter(tmp_path):
    x, path = _resume_setup(tmp_path)
    wider = vae.VAE(6, z_dim=2, hidden_dims=(16,))
    with pytest.raises(ValueError, match=r"run\.pt was saved from a VAE of another architecture"
                                         r"(.|\n)*checkpoint \(8, 6\), model \(16, 6\)"):
        fit(wider, x, num_epochs=2, checkpoint=path, resume=True, progress=False)
    other = cvae.CVAE(6, 3, z_dim=2, hidden_dims=(8,))
    with pytest.raises(ValueError, match="holds a VAE, but the model is a CVAE"):
        fit(other, (x, torch.zeros(64, dtype=torch.long)), num_epochs=2, checkpoint=path,
            resume=True, progress=False)


def test_resume_with_another_optimiser_class_says_which_one_it_needs(tmp_path):
    x, path = _resume_setup(tmp_path)
    model = _vae()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="trained with Adam, not SGD: pass a Adam"):
        fit(model, x, num_epochs=2, optimizer=sgd, checkpoint=path, resume=True, progress=False)


def test_resume_keeps_the_new_learning_rate_and_says_so(tmp_path):
    x, path = _resume_setup(tmp_path)
    model = _vae()
    with pytest.warns(UserWarning, match=r"your optimiser settings.*lr 0\.001 -> 0\.0001"):
        fit(model, x, num_epochs=2, lr=1e-4, checkpoint=path, resume=True, progress=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    from course_utils.train import load_checkpoint
    with pytest.warns(UserWarning):
        load_checkpoint(path, model, optimizer)
    assert optimizer.param_groups[0]["lr"] == 5e-4
    assert optimizer.state  # the moments came from the checkpoint


def test_running_again_without_resume_never_overwrites_a_checkpoint(tmp_path):
    x, path = _resume_setup(tmp_path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="pass resume=True to continue it, or delete it"):
        fit(_vae(), x, num_epochs=1, checkpoint=path, progress=False)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated"])
def test_a_truncated_or_foreign_checkpoint_is_named(tmp_path, content):
    x, path = _resume_setup(tmp_path)
    path.write_bytes(path.read_bytes()[:200] if content == "truncated" else content)
    with pytest.raises(ValueError, match=r"run\.pt is not a readable fit checkpoint.*delete it"):
        fit(_vae(), x, num_epochs=2, checkpoint=path, resume=True, progress=False)


def test_a_checkpoint_of_something_else_is_named(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(_vae().state_dict(), path)
    with pytest.raises(ValueError, match=r"weights\.pt is not a fit checkpoint"):
        fit(_vae(), torch.rand(8, 6), num_epochs=1, checkpoint=path, resume=True, progress=False)


@pytest.mark.parametrize("make_loss", [
    lambda: beta_vae.BetaLoss(4.0, warmup_steps=5),
    lambda: beta_vae.CapacityLoss(c_max=5.0, num_steps=6, gamma=10.0, warmup_steps=2),
], ids=["BetaLoss", "CapacityLoss"])
def test_a_resumed_step_schedule_equals_an_uninterrupted_run(tmp_path, make_loss):
    x = torch.rand(64, 6)
    kwargs = dict(batch_size=16, progress=False, seed=1)
    full = fit(_vae(), x, num_epochs=4, loss_fn=make_loss(), **kwargs)
    path = tmp_path / "schedule.pt"
    fit(_vae(), x, num_epochs=2, loss_fn=make_loss(), checkpoint=path, **kwargs)
    resumed = fit(_vae(), x, num_epochs=4, loss_fn=make_loss(), checkpoint=path, resume=True,
                  **kwargs)
    assert resumed.train == full.train
    with pytest.raises(ValueError, match="trained with a .*Loss loss_fn whose schedule"):
        fit(_vae(), x, num_epochs=4, checkpoint=path, resume=True, **kwargs)


def test_resuming_a_plain_run_with_a_schedule_loss_is_refused(tmp_path):
    x, path = _resume_setup(tmp_path)
    with pytest.raises(ValueError, match="trained without a BetaLoss loss_fn"):
        fit(_vae(), x, num_epochs=2, loss_fn=beta_vae.BetaLoss(2.0), checkpoint=path,
            resume=True, progress=False)


# --------------------------------------------------------------------------- rows 5 and 9


@pytest.mark.parametrize("precision, match", [
    (torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
    (torch.tensor([[1.0, 0.5], [0.2, 1.0]]), "symmetric"),
])
def test_mean_field_gaussian_refuses_a_precision_that_is_no_gaussian(precision, match):
    from course_utils import vi
    with pytest.raises(ValueError, match=match):
        vi.mean_field_gaussian(torch.zeros(2), precision, torch.ones(2))


def test_latent_explorer_names_a_wrong_image_shape():
    pytest.importorskip("ipywidgets")
    from course_utils import widgets
    model = vae.VAE(784, z_dim=2, hidden_dims=(8,))
    with pytest.raises(ValueError, match=r"\(8, 8\) has 64 pixels but the model's images have "
                                         r"784; pass image_shape=\(28, 28\)"):
        widgets.latent_explorer(model, image_shape=(8, 8))
