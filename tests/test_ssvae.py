"""M2 (Kingma et al. 2014): the two losses against explicit formulas, the bound, and training."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn.metrics import accuracy_score
from torch.distributions import Bernoulli, Categorical, Normal, kl_divergence

from course_utils import data, ssvae
from course_utils.vae import MLP

K, X_DIM = 4, 12


def _model(sharp: bool = True, seed: int = 0) -> ssvae.M2:
    torch.manual_seed(seed)
    model = ssvae.M2(X_DIM, num_classes=K, z_dim=3, hidden_dims=(16,)).double()
    if sharp:  # logvar ~ -30: q(z|x,y) is nearly a point, every ELBO is (almost) exact
        with torch.no_grad():
            model.encoder.net[-1].bias[model.z_dim:] -= 30.0
    return model


def _x(b: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, X_DIM, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64).round()


def _per_class_elbo(model, x) -> torch.Tensor:
    return torch.stack([model.elbo(x, torch.full((len(x),), k)) for k in range(K)], dim=1)


# --------------------------------------------------------------------------- the bound


def test_elbo_against_torch_distributions():
    model, x, y = _model(sharp=False), _x(), torch.tensor([0, 1, 2, 3, 0, 1])
    torch.manual_seed(5)
    elbo = model.elbo(x, y)
    c = F.one_hot(y, K).double()
    mu, logvar = model.encode(x, c)
    torch.manual_seed(5)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    log_px = Bernoulli(logits=model.decode(z, c)).log_prob(x).sum(-1)
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(elbo, log_px - math.log(K) - kl)  # log p(y) = -log K


def test_all_classes_in_one_pass_equal_one_class_at_a_time():
    model, x = _model(), _x()
    torch.testing.assert_close(model.elbo_all_classes(x), _per_class_elbo(model, x),
                               rtol=0, atol=1e-4)


def test_log_weights_average_to_the_elbo():
    """E_q[log w] = ELBO (analytic KL) up to Monte Carlo error."""
    model, x, y = _model(sharp=False), _x(3), torch.tensor([0, 2, 3])
    torch.manual_seed(0)
    with torch.no_grad():
        log_w = model.log_weights(x, y, 20000)  # (k, B)
        elbos = model.elbo(x.repeat(2000, 1), y.repeat(2000)).view(2000, 3)
    se = (log_w.var(0) / 20000 + elbos.var(0) / 2000).sqrt()
    assert bool(((log_w.mean(0) - elbos.mean(0)).abs() < 4 * se).all())


def test_labeled_elbo_is_below_the_log_likelihood_estimate(one_thread):
    """ELBO(x, y) <= log p(x, y), estimated with 2000 importance samples, on a trained model."""
    x, y = data.load_digits("train")
    torch.manual_seed(0)
    model = ssvae.M2(64, num_classes=10, z_dim=4, hidden_dims=(64,))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(300):  # a supervised CVAE fit is enough to make the bound meaningful
        index = torch.randint(0, len(x), (64,))
        loss = -model.elbo(x[index], y[index]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x_test, y_test = data.load_digits("test")
    x_test, y_test = x_test[:50], y_test[:50]
    with torch.no_grad():
        elbo = model.elbo(x_test.repeat(200, 1), y_test.repeat(200)).view(200, 50).mean(0)
        log_pxy = model.log_joint_estimate(x_test, y_test, k=2000)
    log_px_given_y = log_pxy + math.log(10)
    assert bool((elbo - math.log(10.0) <= log_px_given_y).all())  # bound on log p(x|y)
    gap = float((log_pxy - elbo).mean())
    assert 0.0 < gap < 10.0, gap  # a positive gap of a few nats


# --------------------------------------------------------------------------- the losses


def test_unlabeled_loss_equals_the_explicit_sum_over_classes():
    model, x = _model(), _x()
    logits = model.classify(x)
    q = torch.softmax(logits, dim=1)
    neg_elbo = -_per_class_elbo(model, x)
    entropy = torch.tensor(stats.entropy(q.detach().numpy(), axis=1))  # scipy's H(q)
    explicit = sum(q[:, k] * neg_elbo[:, k] for k in range(K)) - entropy
    torch.testing.assert_close(ssvae.unlabeled_loss(model, x), explicit, rtol=0, atol=1e-4)


def test_unlabeled_loss_is_a_kl_to_the_uniform_prior():
    """Σ_y q (-ELBO) - H(q) = Σ_y q (rec + KL_z) + KL(q(y|x) || uniform): log p(y) = -log K."""
    model, x = _model(), _x()
    q = Categorical(logits=model.classify(x))
    uniform = Categorical(probs=torch.full((len(x), K), 1.0 / K, dtype=torch.float64))
    neg_elbo_without_py = -_per_class_elbo(model, x) - math.log(K)
    expected = (q.probs * neg_elbo_without_py).sum(1) + kl_divergence(q, uniform)
    torch.testing.assert_close(ssvae.unlabeled_loss(model, x), expected, rtol=0, atol=1e-4)


def test_unlabeled_loss_is_stable_for_a_confident_classifier():
    model, x = _model(), _x()
    with torch.no_grad():
        model.classifier[-1].weight.mul_(1e4)
    out = ssvae.unlabeled_loss(model, x)
    assert bool(torch.isfinite(out).all())
    best = model.classify(x).argmax(1)  # q is one-hot: U = -ELBO(x, argmax)
    torch.testing.assert_close(out, -model.elbo(x, best), rtol=0, atol=1e-4)


def test_unlabeled_loss_bounds_log_px():
    """-U(x) <= log p(x) = log Σ_y p(x, y), each log p(x, y) estimated by importance sampling."""
    model, x = _model(sharp=False), _x(4)
    torch.manual_seed(0)
    with torch.no_grad():
        u = ssvae.unlabeled_loss(model, x.repeat(200, 1)).view(200, 4).mean(0)
        log_pxy = torch.stack([model.log_joint_estimate(x, torch.full((4,), k), k=2000)
                               for k in range(K)], dim=1)
    assert bool((-u <= torch.logsumexp(log_pxy, dim=1)).all())


def test_labeled_loss_against_categorical():
    model, x, y = _model(), _x(), torch.tensor([3, 1, 0, 2, 2, 1])
    q = Categorical(logits=model.classify(x))
    expected = -model.elbo(x, y) - 7.5 * q.log_prob(y)
    torch.testing.assert_close(ssvae.labeled_loss(model, x, y, 7.5), expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(ssvae.labeled_loss(model, x, y, 0), -model.elbo(x, y),
                               rtol=0, atol=1e-4)


def test_semi_supervised_loss_combines_the_two():
    model, x_l, y_l, x_u = _model(), _x(5, 1), torch.tensor([0, 1, 2, 3, 0]), _x(7, 2)
    loss_fn = ssvae.semi_supervised_loss_fn(x_l, y_l, alpha=3.0, labeled_batch_size=10)
    out = loss_fn(model, x_u)  # every labeled example (in some order) and the unlabeled batch
    expected = ssvae.labeled_loss(model, x_l, y_l, 3.0).mean() + \
        ssvae.unlabeled_loss(model, x_u).mean()
    torch.testing.assert_close(out["loss"], expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(out["labeled"] + 3.0 * out["ce"] + out["unlabeled"], out["loss"])


def test_augment_transforms_the_labeled_batch_only():
    model, x_l, y_l, x_u = _model(), _x(5, 1), torch.tensor([0, 1, 2, 3, 0]), _x(7, 2)
    seen = []

    def flip(x):
        seen.append(x.shape)
        return x.flip(1)

    loss_fn = ssvae.semi_supervised_loss_fn(x_l, y_l, alpha=3.0, labeled_batch_size=10,
                                            augment=flip)
    torch.manual_seed(0)
    out = loss_fn(model, x_u)
    assert seen == [x_l.shape]
    torch.manual_seed(0)
    order = torch.randperm(5)  # the labeled batch the loss drew
    torch.manual_seed(0)
    torch.randperm(5)
    expected = ssvae.labeled_loss(model, x_l[order].flip(1), y_l[order], 3.0).mean() + \
        ssvae.unlabeled_loss(model, x_u).mean()
    torch.testing.assert_close(out["loss"], expected, rtol=0, atol=1e-4)
    bad = ssvae.semi_supervised_loss_fn(x_l, y_l, alpha=3.0, augment=lambda x: x[:, :2])
    with pytest.raises(ValueError, match="augment must return a batch of the shape"):
        bad(model, x_u)
    with pytest.raises(TypeError, match="augment must be a function"):
        ssvae.semi_supervised_loss_fn(x_l, y_l, alpha=3.0, augment="shift")


def test_fit_classifier_trains_on_augmented_batches():
    x, y = _x(6, 1).float(), torch.tensor([0, 1, 2, 3, 0, 1])
    seen = []
    classifier = MLP(X_DIM, (8,), K)
    ssvae.fit_classifier(classifier, x, y, num_steps=3, batch_size=4,
                         augment=lambda xb: seen.append(len(xb)) or torch.zeros_like(xb))
    assert seen == [4, 4, 4]
    with pytest.raises(ValueError, match="augment must return"):
        ssvae.fit_classifier(classifier, x, y, num_steps=1, augment=lambda xb: xb[:1])
    with pytest.raises(TypeError, match="augment must be a function"):
        ssvae.fit_classifier(classifier, x, y, num_steps=1, augment=3)


def test_gradients_reach_the_classifier_through_the_unlabeled_loss():
    model, x = _model(), _x()
    ssvae.unlabeled_loss(model, x).sum().backward()
    assert model.classifier[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x: ssvae.labeled_loss(m, x, torch.zeros(6, dtype=torch.long), -1.0),
     ValueError, "alpha"),
    (lambda m, x: ssvae.labeled_loss(m, x, torch.zeros(6, dtype=torch.long), float("nan")),
     ValueError, "alpha"),
    (lambda m, x: ssvae.labeled_loss(m, x, torch.zeros(6, dtype=torch.long), "1"),
     TypeError, "alpha"),
    (lambda m, x: ssvae.labeled_loss(m, x, torch.zeros(5, dtype=torch.long), 1.0),
     ValueError, "same batch size"),
    (lambda m, x: ssvae.unlabeled_loss("model", x), TypeError, "classify"),
    (lambda m, x: ssvae.unlabeled_loss(m, x[:, :3]), ValueError, "shape"),
    (lambda m, x: m.elbo(x, torch.full((6,), 4)), ValueError, "0..3"),
    (lambda m, x: m.elbo(x[:, :5], torch.zeros(6, dtype=torch.long)), ValueError, "shape"),
    (lambda m, x: m.elbo(x, torch.zeros(6)), TypeError, "integer"),
    (lambda m, x: ssvae.classification_weight(10, 20), ValueError, "cannot exceed"),
    (lambda m, x: ssvae.classification_weight(10, 0), ValueError, "num_labeled"),
    (lambda m, x: ssvae.labeled_subset(torch.tensor([0, 0, 1]), 2), ValueError, "class 1"),
    (lambda m, x: ssvae.semi_supervised_loss_fn(x, torch.zeros(6).long(), -1.0), ValueError,
     "alpha"),
    (lambda m, x: ssvae.semi_supervised_loss_fn(x, torch.zeros(6).long(), 1.0,
                                                labeled_weight=float("inf")), ValueError,
     "labeled_weight must be a finite"),
    (lambda m, x: ssvae.fit_classifier(m.classifier, x, torch.zeros(6).long(), num_steps=0),
     ValueError, "num_steps"),
    (lambda m, x: m.log_joint_estimate(x, torch.zeros(6).long(), k=0), ValueError, "k must"),
])
def test_validation(call, error, match):
    with pytest.raises(error, match=match):
        call(_model(), _x())


# --------------------------------------------------------------------------- helpers


def test_classification_weight_is_the_papers_alpha():
    assert ssvae.classification_weight(50_000, 100) == pytest.approx(50.0)  # 0.1 * N / N_l
    assert ssvae.classification_weight(1000, 1000, alpha=2.0) == pytest.approx(2.0)


def test_labeled_subset_is_balanced_and_seeded():
    y = torch.arange(10).repeat(30)
    index = ssvae.labeled_subset(y, 5, torch.Generator().manual_seed(0))
    assert len(index) == 50 and len(set(index.tolist())) == 50
    assert torch.equal(torch.bincount(y[index]), torch.full((10,), 5))
    again = ssvae.labeled_subset(y, 5, torch.Generator().manual_seed(0))
    assert torch.equal(index, again)


def test_accuracy_matches_scikit_learn():
    logits = torch.randn(257, 10, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (257,), generator=torch.Generator().manual_seed(1))
    expected = accuracy_score(y.numpy(), logits.argmax(1).numpy())
    assert ssvae.accuracy(lambda x: x, logits, y, batch_size=50) == pytest.approx(expected)
    with pytest.raises(ValueError, match="empty"):
        ssvae.accuracy(lambda x: x, logits[:0], y[:0])


def test_sample_follows_the_label():
    model = _model()
    z = torch.randn(4, 3, dtype=torch.float64)
    a, b = model.sample(torch.zeros(4, dtype=torch.long), z), model.sample(torch.ones(4).long(), z)
    assert a.shape == (4, X_DIM) and bool(((a >= 0) & (a <= 1)).all())
    assert (a - b).abs().max() > 1e-4


# --------------------------------------------------------------------------- training


def test_m2_beats_the_classifier_trained_on_the_labels_alone(one_thread):
    """50 labels of the digits: M2 uses the 1,388 unlabeled images and is more accurate."""
    x, y = data.load_digits("train")
    x_test, y_test = data.load_digits("test")
    index = ssvae.labeled_subset(y, 5, torch.Generator().manual_seed(0))
    unlabeled = torch.ones(len(y), dtype=torch.bool)
    unlabeled[index] = False
    torch.manual_seed(0)
    baseline = MLP(64, (128,), 10)
    ssvae.fit_classifier(baseline, x[index], y[index], num_steps=500, batch_size=50)
    torch.manual_seed(0)
    model = ssvae.M2(64, num_classes=10, z_dim=4, hidden_dims=(128,))
    loss_fn = ssvae.semi_supervised_loss_fn(
        x[index], y[index], ssvae.classification_weight(len(y), 50), labeled_batch_size=50)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_u = x[unlabeled]
    for _ in range(600):
        loss = loss_fn(model, x_u[torch.randint(0, len(x_u), (50,))])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    base_acc = ssvae.accuracy(baseline, x_test, y_test)
    m2_acc = ssvae.accuracy(model.classify, x_test, y_test)
    assert m2_acc > base_acc + 0.02, (m2_acc, base_acc)
    assert np.isfinite(m2_acc) and m2_acc > 0.85


# --------------------------------------------------------------------------- the benchmark


def test_bench_ssvae_runs_every_mode_end_to_end(tmp_path, fake_mnist, load_benchmark, one_thread,
                                                capsys):
    import json

    bench = load_benchmark("bench_ssvae")
    small = ["--hidden", "8", "--classifier-hidden", "8", "--baseline-steps", "2"]
    bench.main(["digits", "--draws", "2", "--epochs", "1", *small, "--out",
                str(tmp_path / "digits.json")])
    digits = json.loads((tmp_path / "digits.json").read_text())
    assert len(digits["rows"]) == 2
    assert all(0 <= r["m2_acc"] <= 1 and 0 <= r["baseline_acc"] <= 1 for r in digits["rows"])

    fake_mnist(240)  # 200 training images (1 label per class below) and 40 validation images
    bench.main(["mnist", "--labels-per-class", "1", "--budget-cpu-min", "0.002",
                "--eval-every", "2", "--device", "cpu", "--draws", "2", "--seed", "3",
                "--shift", "1", *small, "--out", str(tmp_path / "mnist.json"),
                "--record", str(tmp_path / "recorded.json")])
    mnist = json.loads((tmp_path / "mnist.json").read_text())
    assert [r["draw"] for r in mnist["rows"]] == [3, 4]
    for row in mnist["rows"]:
        assert row["records"] and 0 <= row["m2_acc"] <= row["best_valid_acc"] <= 1
        assert 0 <= row["baseline_acc"] <= 1 and 0 <= row["baseline_unshifted_acc"] <= 1
        assert row["steps"] == row["records"][-1]["step"] >= 1
    assert mnist["split"].startswith("validation split") and mnist["config"]["device"] == "cpu"
    assert set(mnist["summary"]) == {"baseline_acc", "m2_acc"}

    bench.CEILING_EVAL_IMAGES = 30  # fewer than the 40 validation images: both get cut
    bench.main(["mnist", "--all-labels", "--epochs", "2", "--batch-size", "50", *small,
                "--out", str(tmp_path / "ceiling.json")])
    ceiling = json.loads((tmp_path / "ceiling.json").read_text())
    assert [r["epoch"] for r in ceiling["records"]] == [1, 2]
    assert all(0 <= r["valid_acc_argmax_elbo"] <= 1 and r["n_valid"] == 30
               for r in ceiling["records"])
    with pytest.raises(SystemExit):
        bench.main(["digits", "--all-labels"])
    assert "--all-labels and --stacked need the mnist dataset" in capsys.readouterr().err

    bench.main(["mnist", "--stacked", "--labels-per-class", "1", "--draws", "2",
                "--m1-epochs", "1", "--m1-z-dim", "4", "--m1-hidden", "8", "--m2-steps", "3",
                "--z-dim", "2", *small, "--out", str(tmp_path / "stacked.json"),
                "--record", str(tmp_path / "recorded.json")])
    stacked = json.loads((tmp_path / "stacked.json").read_text())
    assert [r["draw"] for r in stacked["rows"]] == [0, 1]
    assert all(0 <= r["m1m2_acc"] <= 1 and r["records"][-1]["step"] == 3
               and r["total_cpu_min"] >= r["m1_cpu_min"] for r in stacked["rows"])
    assert 1 <= stacked["m1_active_dims"] <= 4
    assert stacked["split"].startswith("validation split")

    recorded = ssvae.mnist_results(tmp_path / "recorded.json")  # both runs, one file
    assert set(recorded) == {"M2", "M1+M2"}
    assert [d["draw"] for d in recorded["M2"]["draws"]] == [3, 4]
    assert [d["accuracy"] for d in recorded["M2"]["draws"]] == [r["m2_acc"] for r in mnist["rows"]]
    assert [d["accuracy"] for d in recorded["M1+M2"]["draws"]] == [
        r["m1m2_acc"] for r in stacked["rows"]]
    assert recorded["M2"]["settings"]["shift"] == 1
    assert "m1_epochs" not in recorded["M2"]["settings"]
    assert recorded["M1+M2"]["settings"]["m2_steps"] == 3
    assert "--stacked" in recorded["M1+M2"]["commands"][-1]
    m1 = recorded["M1+M2"]["m1_cpu_min"]
    for d in recorded["M1+M2"]["draws"]:  # M1+M2's curves start after M1's CPU time
        assert d["curve"][0][0] >= m1 and d["cpu_min"] >= m1
    assert "baseline_unshifted_acc" in recorded["M2"]["draws"][0]
    assert all(0 <= d["generative_acc_1k"] <= 1 for entry in recorded.values()
               for d in entry["draws"])
    # another process's draw of the same model and settings adds to the recorded draws
    bench.main(["mnist", "--labels-per-class", "1", "--budget-cpu-min", "0.002",
                "--eval-every", "2", "--device", "cpu", "--draws", "1", "--seed", "7",
                "--shift", "1", *small, "--record", str(tmp_path / "recorded.json")])
    merged = ssvae.mnist_results(tmp_path / "recorded.json")["M2"]
    assert [d["draw"] for d in merged["draws"]] == [3, 4, 7] and len(merged["commands"]) == 2
    bench.main(["mnist", "--labels-per-class", "1", "--budget-cpu-min", "0.002",  # new settings
                "--eval-every", "2", "--draws", "1", "--seed", "7", *small,
                "--record", str(tmp_path / "recorded.json")])
    replaced = ssvae.mnist_results(tmp_path / "recorded.json")["M2"]
    assert [d["draw"] for d in replaced["draws"]] == [7] and replaced["settings"]["shift"] == 0
    with pytest.raises(SystemExit):
        bench.main(["digits", "--record", str(tmp_path / "no.json")])
    assert "--record stores mnist runs" in capsys.readouterr().err


def test_mnist_results_reads_the_recorded_file_and_explains_a_bad_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="--record"):
        ssvae.mnist_results(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ssvae.mnist_results(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text('{"M2": {"draws": []}}')
    with pytest.raises(ValueError, match="per-model draws"):
        ssvae.mnist_results(tmp_path / "empty.json")


# --------------------------------------------------------------------------- M1+M2


def _gaussian_m2(seed: int = 0) -> ssvae.GaussianM2:
    torch.manual_seed(seed)
    return ssvae.GaussianM2(X_DIM, num_classes=K, z_dim=3, hidden_dims=(16,)).double()


def _features(b: int = 6, seed: int = 1) -> torch.Tensor:
    return 3 * torch.randn(b, X_DIM, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64)


def test_gaussian_m2_elbo_against_torch_distributions():
    model, x, y = _gaussian_m2(), _features(), torch.tensor([0, 1, 2, 3, 0, 1])
    with torch.no_grad():
        model.decoder.logvar.copy_(torch.linspace(-1, 1, X_DIM))
    torch.manual_seed(5)
    elbo = model.elbo(x, y)
    c = F.one_hot(y, K).double()
    mu, logvar = model.encode(x, c)
    torch.manual_seed(5)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    mean, x_logvar = model.decode(z, c)
    log_px = Normal(mean, (0.5 * x_logvar).exp()).log_prob(x).sum(-1)
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(elbo, log_px - math.log(K) - kl)


def test_gaussian_m2_all_classes_equal_one_class_at_a_time():
    model, x = _gaussian_m2(), _features()
    with torch.no_grad():  # a near-point q(z|x,y): one sample is the whole expectation
        model.encoder.net[-1].bias[model.z_dim:] -= 30.0
    torch.testing.assert_close(model.elbo_all_classes(x), _per_class_elbo(model, x),
                               rtol=0, atol=1e-4)


def test_gaussian_m2_takes_real_features_where_m2_takes_pixels():
    x, y = _features(), torch.tensor([0, 1, 2, 3, 0, 1])
    loss = ssvae.unlabeled_loss(_gaussian_m2(), x)
    assert loss.shape == (6,) and bool(loss.isfinite().all())
    assert ssvae.labeled_loss(_gaussian_m2(), x, y, alpha=1.0).shape == (6,)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        ssvae.unlabeled_loss(_model(), x)
    with pytest.raises(ValueError, match="must be finite|non-finite|nan|inf"):
        ssvae.unlabeled_loss(_gaussian_m2(), x.masked_fill(x > 2, float("nan")))
    assert _gaussian_m2().sample(torch.tensor([0, 3])).shape == (2, X_DIM)


def _m1() -> "ssvae.VAE":
    """A VAE with 5 latents of which 0 and 3 are unused (mean 0, variance 1 for every x)."""
    torch.manual_seed(0)
    m1 = ssvae.VAE(X_DIM, 5, (16,)).double()
    with torch.no_grad():
        w, b = m1.encoder.net[-1].weight, m1.encoder.net[-1].bias
        w[:5] *= 20  # the used means vary with x: a mean KL of several nats
        for j in (0, 3):
            w[j].zero_(), b[j].zero_(), w[5 + j].zero_(), b[5 + j].zero_()
    return m1


def test_latent_features_keep_the_used_dimensions_standardised():
    m1, x = _m1(), _x(200)
    features = ssvae.LatentFeatures(m1, x)
    assert features.active.tolist() == [False, True, True, False, True]
    f = features(x)
    assert f.shape == (200, 3) == (200, features.num_features)
    torch.testing.assert_close(f.mean(0), torch.zeros(3, dtype=f.dtype), atol=1e-10, rtol=0)
    torch.testing.assert_close(f.std(0), torch.ones(3, dtype=f.dtype))
    mu, _ = m1.encode(x[:4])
    torch.testing.assert_close(f[:4], (mu[:, [1, 2, 4]] - features.mean) / features.std)
    with pytest.raises(ValueError, match=r"shape \(B, 12\)"):
        features(torch.rand(3, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="no latent dimension"):
        ssvae.LatentFeatures(m1, x, min_kl=1e9)


def test_stacked_classifier_goes_through_the_features():
    m1, x = _m1(), _x(50)
    features = ssvae.LatentFeatures(m1, x)
    m2 = ssvae.GaussianM2(features.num_features, K, 2, (8,)).double()
    logits = ssvae.stacked_classifier(features, m2)(x[:7])
    torch.testing.assert_close(logits, m2.classify(features(x[:7])))


def test_fit_m1_learns_and_checks_its_input():
    x = torch.rand(300, X_DIM, generator=torch.Generator().manual_seed(0)).round()
    x[:150, :6], x[150:, 6:] = 1.0, 0.0  # two kinds of image
    torch.manual_seed(0)
    untrained = ssvae.VAE(X_DIM, 2, (16,))
    with torch.no_grad():
        before = float(untrained.loss(x)["loss"])
    m1 = ssvae.fit_m1(x, z_dim=2, hidden_dims=(16,), num_epochs=30, batch_size=50, lr=1e-2)
    assert not m1.training
    with torch.no_grad():
        assert float(m1.loss(x)["loss"]) < before - 1.0
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        ssvae.fit_m1(2 * x, num_epochs=1)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        ssvae.fit_m1(x[0], num_epochs=1)


def test_recorded_mnist_results_are_the_ones_results_md_reports():
    """Notebook 08 plots the bundled file; RESULTS.md's table must quote the same figures."""
    from pathlib import Path

    results = ssvae.mnist_results()
    assert set(results) == {"M2", "M1+M2"}
    table = Path(__file__).resolve().parents[1].joinpath("benchmarks", "RESULTS.md").read_text()
    rows = {"M2": "| **M2 on pixels**", "M1+M2": "| **M1+M2**, final"}
    for name, start in rows.items():
        line = next(line for line in table.splitlines() if line.startswith(start))
        draws = results[name]["draws"]
        assert [d["draw"] for d in draws] == [0, 1, 2]
        for d in draws:
            assert f"**{d['accuracy']:.3f}**" in line, (name, d["draw"], line)
        mean = sum(d["accuracy"] for d in draws) / len(draws)
        assert f"**{mean:.3f} ±" in line, (name, mean, line)
    baseline = next(line for line in table.splitlines()
                    if line.startswith("| classifier only, labeled images shifted"))
    assert all(f"{d['baseline_acc']:.3f}" in baseline for d in results["M2"]["draws"])
