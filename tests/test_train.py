"""course_utils.train.fit: learning, history, checkpoints, resume, errors."""

import math

import matplotlib
import pytest
import torch

from course_utils.data import load_digits
from course_utils.train import History, evaluate, fit, load_checkpoint
from course_utils.vae import VAE, kl_warmup

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train")
    return x[:512], y[:512]


def _model(seed=0, x_dim=64):
    torch.manual_seed(seed)
    return VAE(x_dim, z_dim=2, hidden_dims=(32,))


def test_fit_lowers_the_loss_on_digits(digits):
    x, _ = digits
    model = _model()
    before = evaluate(model, x)["loss"]
    history = fit(model, x, num_epochs=6, batch_size=64, lr=3e-3, progress=False, seed=0)
    after = evaluate(model, x)["loss"]
    assert after < before - 5
    assert history.train["loss"][-1] < history.train["loss"][0]
    assert set(history.train) == {"loss", "rec", "kl"}
    assert history.epochs == [1, 2, 3, 4, 5, 6] and len(history.seconds) == 6


def test_history_means_weight_the_last_partial_batch():
    x = torch.arange(10.0).unsqueeze(1)
    loss_fn = lambda model, xb: {"loss": (model.w * 0).sum() + xb.mean()}
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(1))
    history = fit(model, x, num_epochs=1, batch_size=4, loss_fn=loss_fn, progress=False)
    assert history.train["loss"] == [pytest.approx(4.5)]  # the mean of 0..9, not of batch means


def test_validation_every_k_epochs_and_at_the_end(digits):
    x, _ = digits
    history = fit(_model(), x[:256], num_epochs=5, x_valid=x[256:], eval_every=2,
                  progress=False, seed=0)
    assert history.valid_epochs == [2, 4, 5]
    assert len(history.valid["loss"]) == 3 and len(history.train["loss"]) == 5


def test_tuple_data_schedule_and_transform(digits):
    x, y = digits
    seen = {"betas": set(), "labels": 0, "transformed": True}

    def loss_fn(model, xb, yb, beta):
        seen["betas"].add(beta)
        seen["labels"] += len(yb)
        seen["transformed"] &= bool(((xb == 0) | (xb == 1)).all())
        return model.loss(xb, beta=beta)

    def binarize(batch):
        xb, yb = batch
        return torch.bernoulli(xb), yb

    fit(_model(), (x, y), num_epochs=3, loss_fn=loss_fn, transform=binarize, progress=False,
        schedule=lambda epoch: {"beta": kl_warmup(epoch, 2)})
    assert seen["betas"] == {0.0, 0.5, 1.0}
    assert seen["labels"] == 3 * len(y)
    assert seen["transformed"]


def test_checkpoint_round_trip_and_resume_equals_uninterrupted(digits, tmp_path):
    x, _ = digits
    kwargs = dict(batch_size=64, x_valid=x[:100], progress=False, seed=3)
    full_model = _model(1)
    full = fit(full_model, x, num_epochs=4, **kwargs)

    path = tmp_path / "vae.pt"
    first = _model(1)
    fit(first, x, num_epochs=2, checkpoint=path, **kwargs)
    restored = _model(99)  # different weights: everything must come from the checkpoint
    history, epoch = load_checkpoint(path, restored)
    assert epoch == 2 and len(history.train["loss"]) == 2
    for a, b in zip(first.parameters(), restored.parameters(), strict=True):
        torch.testing.assert_close(a, b)

    torch.manual_seed(12345)  # the resumed run must not depend on the global RNG state
    resumed_model = _model(99)
    resumed = fit(resumed_model, x, num_epochs=4, checkpoint=path, resume=True, **kwargs)
    assert resumed.epochs == [1, 2, 3, 4]
    assert resumed.train == full.train and resumed.valid == full.valid
    for a, b in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    _, epoch = load_checkpoint(path, resumed_model)
    assert epoch == 4


def test_resume_without_a_checkpoint_file_starts_fresh(digits, tmp_path):
    x, _ = digits
    history = fit(_model(), x[:128], num_epochs=1, checkpoint=tmp_path / "new.pt", resume=True,
                  progress=False)
    assert history.epochs == [1] and (tmp_path / "new.pt").exists()


def test_history_state_dict_round_trip():
    history = History(train={"loss": [3.0, 2.0]}, valid={"loss": [2.5]}, epochs=[1, 2],
                      valid_epochs=[2], seconds=[0.1, 0.2])
    assert History.from_state_dict(history.state_dict()) == history
    assert "epochs=2" in repr(history)


def test_history_plot_draws_one_panel_per_part(digits):
    x, _ = digits
    history = fit(_model(), x[:128], num_epochs=2, x_valid=x[128:256], progress=False)
    axes = history.plot()
    assert [ax.get_title() for ax in axes] == ["loss", "rec", "kl"]
    assert len(axes[0].lines) == 2  # train and valid
    with pytest.raises(ValueError, match="unknown loss parts"):
        history.plot(parts=["elbo"])


def test_nan_loss_raises_a_clear_error(digits):
    x, _ = digits
    model = _model()
    calls = {"n": 0}

    def loss_fn(model, xb):
        out = model.loss(xb)
        calls["n"] += 1
        if calls["n"] == 3:
            out["kl"] = out["kl"] * math.nan
        return out

    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match=r"'kl' became nan at epoch 1, batch 3"):
        fit(model, x, num_epochs=2, batch_size=64, loss_fn=loss_fn, progress=False)
    # the bad batch did not update the model: two steps were taken, not three
    assert calls["n"] == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_diverging_learning_rate_is_caught(digits):
    x, _ = digits
    torch.manual_seed(0)
    model = VAE(64, z_dim=2, hidden_dims=(32,))
    with pytest.raises(FloatingPointError, match="lower learning rate"):
        fit(model, x * 1e30, num_epochs=1, progress=False,
            loss_fn=lambda m, xb: {"loss": m.decode(m.encode(xb)[0]).pow(2).sum()})


@pytest.mark.parametrize("seed", range(8))
def test_no_nan_over_many_seeds(digits, seed):
    x, _ = digits
    torch.manual_seed(seed)
    model = VAE(64, z_dim=seed % 3 + 2, hidden_dims=(64, 32), activation="tanh" if seed % 2
                else "relu", likelihood="gaussian" if seed >= 6 else "bernoulli")
    history = fit(model, x, num_epochs=2, batch_size=32, lr=3e-3, progress=False, seed=seed)
    assert all(math.isfinite(v) for values in history.train.values() for v in values)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_progress_bar_is_text_outside_jupyter(digits, capsys):
    x, _ = digits
    fit(_model(), x[:128], num_epochs=2, batch_size=64, progress=True)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "batch" in err
    fit(_model(), x[:128], num_epochs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_tqdm_disable_switches_the_bar_off(digits, capsys, monkeypatch):
    x, _ = digits
    monkeypatch.setenv("TQDM_DISABLE", "1")  # as set by `authoring execute`
    fit(_model(), x[:128], num_epochs=1, batch_size=64, progress=True)
    assert capsys.readouterr().err == ""


def test_fit_restores_the_training_mode(digits):
    x, _ = digits
    model = _model().eval()
    fit(model, x[:64], num_epochs=1, progress=False)
    assert not model.training


def test_custom_optimizer_is_used(digits):
    x, _ = digits
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    before = [p.detach().clone() for p in model.parameters()]
    fit(model, x[:64], num_epochs=1, optimizer=optimizer, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("kwargs, error, fragment", [
    (dict(num_epochs=-1), ValueError, "num_epochs"),
    (dict(num_epochs=1, batch_size=0), ValueError, "batch_size"),
    (dict(num_epochs=1, lr=-1.0), ValueError, "lr"),
    (dict(num_epochs=1, eval_every=0), ValueError, "eval_every"),
    (dict(num_epochs=1, resume=True), ValueError, "checkpoint"),
    (dict(num_epochs=1, x_valid=[1, 2]), TypeError, "x_valid"),
])
def test_fit_validates_its_arguments(digits, kwargs, error, fragment):
    x, _ = digits
    with pytest.raises(error, match=fragment):
        fit(_model(), x, progress=False, **kwargs)


def test_fit_validates_data_and_model(digits):
    x, y = digits
    with pytest.raises(ValueError, match="first dimension"):
        fit(_model(), (x, y[:10]), num_epochs=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        fit(_model(), x[:0], num_epochs=1, progress=False)
    with pytest.raises(TypeError, match="nn.Module"):
        fit(lambda x: x, x, num_epochs=1)
    with pytest.raises(TypeError, match="'loss'"):
        fit(_model(), x, num_epochs=1, progress=False, loss_fn=lambda m, xb: {"elbo": 0})
