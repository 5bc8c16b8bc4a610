"""The semi-supervised VAE M2 (Kingma, Rezende, Mohamed & Welling 2014, "Semi-supervised
Learning with Deep Generative Models", NeurIPS), notebook 08.

Generative model p(y) p(z) p(x|y,z) with p(y) uniform over K classes and p(z) = N(0, I);
inference model q(z, y|x) = q(z|x,y) q(y|x) (eq. 4 of the paper).

- ``labeled_loss``: L(x, y) + α·(-log q(y|x)) for labeled pairs (eqs. 6 and 9; an exercise).
- ``unlabeled_loss``: U(x) = Σ_y q(y|x) L(x, y) - H(q(y|x)) (eq. 7; an exercise).
- ``classification_weight``: α = 0.1·N/N_labeled, the paper's α = 0.1·N for a classification
  term written as a mean over labeled examples.
- ``semi_supervised_loss_fn``: a ``train.fit`` loss mixing an unlabeled and a labeled batch.
- ``fit_classifier`` and ``accuracy``: the classifier-only baseline and its evaluation.
- M1+M2 (section 3.1 of the paper): ``fit_m1`` trains a VAE on every image without labels,
  ``LatentFeatures`` turns its posterior means into M2's input, and ``GaussianM2`` is M2 with a
  Gaussian p(x|y,z) over those features; ``stacked_classifier`` classifies pixels with both.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .cvae import CVAE, _require_labels, _require_x, conditional_elbo, one_hot
from .data import dynamic_binarize
from .train import require_finite_loss
from .vae import (
    MLP,
    VAE,
    GaussianDecoder,
    _bernoulli_ll,
    _gaussian_kl,
    _gaussian_ll,
    _require_dims,
    require_batch,
)

PAPER_ALPHA = 0.1  # Kingma et al. 2014, section 3.1.2: "α = 0.1·N in all experiments"


class M2(CVAE):
    """M2: a conditional VAE (encoder q(z|x,y), decoder p(x|y,z), Bernoulli pixels) plus a
    classifier q(y|x) that stands in for the label when it is missing."""

    def __init__(self, x_dim: int, num_classes: int = 10, z_dim: int = 16,
                 hidden_dims: Sequence[int] = (256,), activation: str = "relu",
                 classifier_hidden_dims: Sequence[int] | None = None):
        super().__init__(x_dim, num_classes, z_dim, hidden_dims, activation)
        classifier_hidden_dims = hidden_dims if classifier_hidden_dims is None else (
            classifier_hidden_dims)
        self.classifier = MLP(x_dim, classifier_hidden_dims, num_classes, activation)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(y|x): x (B, D) -> (B, K)."""
        return self.classifier(x)

    def elbo(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """-L(x,y) = E_q[log p(x|y,z)] + log p(y) - KL(q(z|x,y)||p(z)): (B, D), (B,) -> (B,)."""
        # Kingma et al. 2014, eq. 6: the conditional ELBO plus log p(y), p(y) uniform
        return conditional_elbo(self, x, y) - math.log(self.num_classes)

    def elbo_all_classes(self, x: torch.Tensor) -> torch.Tensor:
        """ELBO(x, y) for every class y in one batched pass: x (B, D) -> (B, K)."""
        _require_x(x, self.x_dim, self)
        k, b = self.num_classes, len(x)
        mu, logvar = self._encode_all_classes(x)  # (K, B, Z) each
        z = self.reparameterize(mu, logvar)
        c = torch.eye(k, dtype=x.dtype, device=x.device).unsqueeze(1).expand(k, b, k)
        # Kingma et al. 2014, eq. 6 for every y at once; log p(y) = -log K
        elbo = (self._log_px(x, self.decode(z, c)) - math.log(k)
                - _gaussian_kl(mu, logvar))  # (K, B)
        return elbo.T

    def _log_px(self, x: torch.Tensor, decoded) -> torch.Tensor:
        """log p(x|y,z) summed over D from the decoder's output: -> (..., B)."""
        return _bernoulli_ll(x, decoded)

    def _encode_all_classes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x,y) for every y: x (B, D) -> mu, logvar (K, B, Z); x's first layer computed once."""
        first = self.encoder.net[0]  # Linear(D + K, H): W [x; c] = W_x x + (column y of W_c)
        h = F.linear(x, first.weight[:, :self.x_dim], first.bias)  # (B, H)
        h = h.unsqueeze(0) + first.weight[:, self.x_dim:].T.unsqueeze(1)  # (K, B, H)
        for layer in list(self.encoder.net)[1:]:
            h = layer(h)
        return h.chunk(2, dim=-1)

    def log_weights(self, x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, y, z_i) - log q(z_i|x, y), z_i ~ q(z|x,y): (B, D), (B,) -> (k, B)."""
        _require_x(x, self.x_dim, self)
        _require_labels(y, self.num_classes, len(x))
        _require_dims(k=k)
        c = one_hot(y, self.num_classes, dtype=x.dtype)
        mu, logvar = self.encode(x, c)
        eps = torch.randn((k, *mu.shape), dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, Z)
        log_q = -0.5 * (math.log(2 * math.pi) + logvar + eps.pow(2)).sum(-1)
        log_pz = -0.5 * (math.log(2 * math.pi) + z.pow(2)).sum(-1)
        log_px = self._log_px(x, self.decode(z, c.expand(k, -1, -1)))
        return log_px + log_pz - math.log(self.num_classes) - log_q

    @torch.no_grad()
    def log_joint_estimate(self, x: torch.Tensor, y: torch.Tensor, k: int = 1000) -> torch.Tensor:
        """Importance-sampled log p(x, y) with k samples (Burda et al. 2016): -> (B,)."""
        log_w = self.log_weights(x, y, k)
        return torch.logsumexp(log_w, dim=0) - math.log(k)


class GaussianM2(M2):
    """M2 over real-valued features (the upper model of M1+M2, Kingma et al. 2014, §3.1.2):
    p(x|y,z) = N(mean(y,z), diag exp(logvar)) with one learned log-variance per feature."""

    likelihood = "gaussian"

    def __init__(self, x_dim: int, num_classes: int = 10, z_dim: int = 16,
                 hidden_dims: Sequence[int] = (256,), activation: str = "relu",
                 classifier_hidden_dims: Sequence[int] | None = None):
        super().__init__(x_dim, num_classes, z_dim, hidden_dims, activation,
                         classifier_hidden_dims)
        self.decoder = GaussianDecoder(z_dim + num_classes, hidden_dims, x_dim, activation)

    def _log_px(self, x: torch.Tensor, decoded) -> torch.Tensor:
        return _gaussian_ll(x, *decoded)

    def elbo(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """-L(x,y) with the Gaussian likelihood, one z sample: (B, D), (B,) -> (B,)."""
        _require_x(x, self.x_dim, self)
        _require_labels(y, self.num_classes, len(x))
        c = one_hot(y, self.num_classes, dtype=x.dtype)
        mu, logvar = self.encode(x, c)
        z = self.reparameterize(mu, logvar)
        return self._log_px(x, self.decode(z, c)) - math.log(self.num_classes) - _gaussian_kl(
            mu, logvar)

    def loss(self, x, y, beta: float = 1.0):
        raise NotImplementedError("GaussianM2 trains with labeled_loss and unlabeled_loss")

    def _decoded_mean(self, decoded) -> torch.Tensor:
        return decoded[0]  # the Gaussian's mean; ``sample`` returns it


# --------------------------------------------------------------------------- M1 for M1+M2


def fit_m1(x: torch.Tensor, *, z_dim: int = 50, hidden_dims: Sequence[int] = (500, 500),
           num_epochs: int = 50, batch_size: int = 100, lr: float = 1e-3,
           seed: int = 0) -> VAE:
    """M1: a Bernoulli VAE trained on x (N, D) in [0, 1], no labels, dynamically binarised,
    Adam with a cosine decay of lr to 5% over the epochs; -> the trained VAE (eval mode)."""
    _require_dims(z_dim=z_dim, num_epochs=num_epochs, batch_size=batch_size)
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"x must be a (N, D) tensor of images, got {getattr(x, 'shape', x)!r}")
    require_batch(x, x.shape[1], bernoulli=True)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    m1 = VAE(x.shape[1], z_dim, tuple(hidden_dims)).to(x.device)
    optimizer = torch.optim.Adam(m1.parameters(), lr=lr)
    for epoch in range(num_epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch / num_epochs)))
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), batch_size):
            loss = m1.loss(dynamic_binarize(x[order[start:start + batch_size]]))["loss"]
            require_finite_loss(loss, epoch, "fit_m1")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return m1.eval()


class LatentFeatures:
    """M1's posterior means as M2's input: the dimensions M1 uses (mean KL above ``min_kl``
    nats on ``x``), each standardised to mean 0 and variance 1 over ``x``."""

    def __init__(self, m1: VAE, x: torch.Tensor, min_kl: float = 0.05, batch_size: int = 2048):
        self.m1, self.batch_size = m1, batch_size
        mu, logvar = self._encode(x)
        kl_per_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(0)  # (Z,)
        self.active = kl_per_dim > min_kl
        if not bool(self.active.any()):
            raise ValueError(f"M1 uses no latent dimension (every mean KL <= {min_kl} nats): "
                             "train it longer, or lower min_kl")
        means = mu[:, self.active]
        self.mean, self.std = means.mean(0), means.std(0).clamp_min(1e-6)

    @property
    def num_features(self) -> int:
        return int(self.active.sum())

    @torch.no_grad()
    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.m1._check_x(x)
        parts = [self.m1.encode(x[s:s + self.batch_size]) for s in range(0, len(x),
                                                                          self.batch_size)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised posterior means of the active dimensions: x (B, D) -> (B, F)."""
        return (self._encode(x)[0][:, self.active] - self.mean) / self.std


def stacked_classifier(features: LatentFeatures, m2: GaussianM2):
    """M1+M2's q(y|x) on pixels: x (B, D) -> logits (B, K), through M1's features."""
    return lambda x: m2.classify(features(x))


# --------------------------------------------------------------------------- the two losses


def _require_model(model) -> None:
    for method in ("classify", "elbo"):
        if not callable(getattr(model, method, None)):
            raise TypeError(f"model must have a method {method}(...), like ssvae.M2; got "
                            f"{type(model).__name__}")
    for attribute in ("x_dim", "num_classes"):
        if not isinstance(getattr(model, attribute, None), int):
            raise TypeError(f"model must have an int attribute {attribute}, like ssvae.M2")


def _require_alpha(alpha, name: str = "alpha") -> float:
    if isinstance(alpha, torch.Tensor) and alpha.numel() == 1:
        alpha = float(alpha)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(alpha).__name__}")
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {alpha}")
    return float(alpha)


def labeled_loss(model: M2, x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """L(x, y) + α·(-log q(y|x)) per labeled example: x (B, D), y (B,) -> (B,)."""
    _require_model(model)
    alpha = _require_alpha(alpha)
    _require_x(x, model.x_dim, model)
    _require_labels(y, model.num_classes, len(x))
    # Kingma et al. 2014, eqs. 6 and 9: the negative bound plus the weighted classification loss
    ce = F.cross_entropy(model.classify(x), y, reduction="none")  # -log q(y|x), (B,)
    return -model.elbo(x, y) + alpha * ce


def unlabeled_loss(model: M2, x: torch.Tensor) -> torch.Tensor:
    """U(x) = Σ_y q(y|x)·L(x, y) - H(q(y|x)), y enumerated: x (B, D) -> (B,)."""
    _require_model(model)
    _require_x(x, model.x_dim, model)
    if isinstance(model, M2):
        neg_elbo = -model.elbo_all_classes(x)  # (B, K), all classes in one pass
    else:
        b = len(x)
        neg_elbo = torch.stack([-model.elbo(x, torch.full((b,), k, device=x.device))
                                for k in range(model.num_classes)], dim=1)
    log_q = F.log_softmax(model.classify(x), dim=-1)  # (B, K)
    q = log_q.exp()
    entropy = -(q * log_q).sum(-1)  # H(q(y|x)), (B,)
    # Kingma et al. 2014, eq. 7: the expectation over the discrete y is a sum over K classes
    return (q * neg_elbo).sum(-1) - entropy


def classification_weight(num_total: int, num_labeled: int, alpha: float = PAPER_ALPHA) -> float:
    """α·N/N_labeled: the weight of the mean cross-entropy of the labeled batch (paper: 0.1)."""
    _require_dims(num_total=num_total, num_labeled=num_labeled)
    if num_labeled > num_total:
        raise ValueError(f"num_labeled ({num_labeled}) cannot exceed num_total ({num_total})")
    return _require_alpha(alpha) * num_total / num_labeled


def semi_supervised_loss_fn(x_labeled: torch.Tensor, y_labeled: torch.Tensor, alpha: float,
                            labeled_batch_size: int = 100, binarize: bool = False,
                            labeled_weight: float = 1.0, labeled_loss_fn=None,
                            unlabeled_loss_fn=None, augment=None):
    """A ``fit`` loss on unlabeled batches: J = mean U(x_u) + w·mean L(x_l,y_l) + α·mean CE.

    Each step draws ``labeled_batch_size`` labeled pairs (without replacement within a step) to
    go with the unlabeled batch, so the few labels are seen at every step. ``labeled_weight`` w
    scales the labeled bound: 1 weighs a labeled and an unlabeled image alike; the paper's sums
    (eq. 9) give w = N_labeled / N_unlabeled. ``binarize`` resamples binary pixels
    P(x=1) = x for both batches at every step. ``labeled_loss_fn(model, x, y, alpha) -> (B,)``
    (L + α·CE, for w = 1 only) and ``unlabeled_loss_fn(model, x) -> (B,)`` replace the
    reference ``labeled_loss`` and ``unlabeled_loss`` (notebook 08 trains with yours).
    ``augment(x_l) -> x_l`` transforms each labeled batch before binarisation (e.g. small random
    shifts, ``data.random_shift``), so the few labels are not memorised pixel for pixel.
    """
    for hook, hook_name in ((labeled_loss_fn, "labeled_loss_fn"),
                            (unlabeled_loss_fn, "unlabeled_loss_fn"), (augment, "augment")):
        if hook is not None and not callable(hook):
            raise TypeError(f"{hook_name} must be a function, got {type(hook).__name__}")
    if labeled_loss_fn is not None and labeled_weight != 1:
        raise ValueError("labeled_loss_fn weighs the bound and the cross-entropy as one: it "
                         f"needs labeled_weight=1, got {labeled_weight!r}")
    unlabeled = unlabeled_loss_fn or unlabeled_loss
    if not isinstance(x_labeled, torch.Tensor) or len(x_labeled) == 0:
        raise ValueError("x_labeled is empty: the semi-supervised loss needs at least one "
                         "labeled image (and its label in y_labeled)")
    _require_labels(y_labeled, int(y_labeled.max()) + 1 if len(y_labeled) else 1, len(x_labeled))
    alpha = _require_alpha(alpha)
    labeled_weight = _require_alpha(labeled_weight, "labeled_weight")
    _require_dims(labeled_batch_size=labeled_batch_size)
    n = len(x_labeled)

    def loss_fn(model: M2, x: torch.Tensor) -> dict:
        index = torch.randperm(n, device=x_labeled.device)[:labeled_batch_size]
        x_l = x_labeled[index].to(x.device, x.dtype)
        y_l = y_labeled[index].to(x.device)
        if augment is not None:
            x_l = _same_shape(augment(x_l), x_l, "augment")
        if binarize:
            x, x_l = dynamic_binarize(x), dynamic_binarize(x_l)
        if labeled_loss_fn is not None:
            labeled = _per_example(labeled_loss_fn(model, x_l, y_l, alpha), len(x_l),
                                   "labeled_loss_fn").mean()  # mean L + α·mean CE
            with torch.no_grad():  # reported, not trained on: the same classifier, no noise
                ce = F.cross_entropy(model.classify(x_l), y_l)
            neg_elbo_l = labeled.detach() - alpha * ce
        else:
            neg_elbo_l = -model.elbo(x_l, y_l).mean()
            ce = F.cross_entropy(model.classify(x_l), y_l)
            labeled = labeled_weight * neg_elbo_l + alpha * ce
        u = _per_example(unlabeled(model, x), len(x), "unlabeled_loss_fn")  # (B_u,)
        # Kingma et al. 2014, eq. 9: J^α = Σ L(x, y) + Σ U(x) + α·E[-log q(y|x)], as batch means
        loss = labeled + u.mean()
        return {"loss": loss, "labeled": neg_elbo_l, "unlabeled": u.mean(), "ce": ce}

    return loss_fn


def _same_shape(out, x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} must return a batch of the shape it was given, "
                         f"{tuple(x.shape)}, got {got}")
    return out


def _per_example(loss: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.shape != (batch,):
        got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"{name} must return one loss per example, shape ({batch},), got {got}")
    return loss


# --------------------------------------------------------------------------- recorded figures

MNIST_RESULTS_FILE = Path(__file__).resolve().parent / "bundled" / "ssvae_mnist_results.json"


def mnist_results(path: str | os.PathLike | None = None) -> dict:
    """The figures ``benchmarks/bench_ssvae.py mnist --record`` stored, by model name.

    Each model's entry holds its command, split and settings and, per label draw, the
    accuracies of the model and of the classifier-only baseline, the CPU-minutes, and the
    validation accuracy during training as (CPU-minutes, accuracy) pairs ("curve")."""
    path = Path(path) if path is not None else MNIST_RESULTS_FILE
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no recorded MNIST results at {path}; run "
                                "benchmarks/bench_ssvae.py mnist --record to make them") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); rerun the benchmark with "
                         "--record") from None
    if not isinstance(results, dict) or not all(
            isinstance(entry, dict) and entry.get("draws") for entry in results.values()):
        raise ValueError(f"{path} does not hold per-model draws; rerun the benchmark with --record")
    return results


# --------------------------------------------------------------------------- classifiers


@torch.no_grad()
def accuracy(classify, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> float:
    """Fraction of argmax_y q(y|x) equal to y: classify(x) -> logits (B, K)."""
    if len(x) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = classify(x[start:start + batch_size])
        correct += int((logits.argmax(-1) == y[start:start + batch_size].to(logits.device)).sum())
    return correct / len(x)


def fit_classifier(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, *, num_steps: int,
                   batch_size: int = 100, lr: float = 1e-3, weight_decay: float = 0.0,
                   binarize: bool = False, augment=None) -> list[float]:
    """The supervised-only baseline: minimise cross-entropy on (x, y) with Adam; -> step losses.

    ``augment(x_batch) -> x_batch`` transforms each batch before binarisation, as in
    ``semi_supervised_loss_fn``."""
    _require_dims(num_steps=num_steps, batch_size=batch_size)
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be a function, got {type(augment).__name__}")
    _require_labels(y, int(y.max()) + 1, len(x))
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(num_steps):
        index = torch.randperm(len(x), device=x.device)[:batch_size]
        xb = x[index] if augment is None else _same_shape(augment(x[index]), x[index], "augment")
        xb = dynamic_binarize(xb) if binarize else xb
        loss = F.cross_entropy(classifier(xb), y[index])
        require_finite_loss(loss, len(losses), "fit_classifier")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def labeled_subset(y: torch.Tensor, per_class: int, generator: torch.Generator | None = None,
                   num_classes: int | None = None) -> torch.Tensor:
    """Indices of ``per_class`` random examples of each class: y (N,) -> (K * per_class,)."""
    _require_dims(per_class=per_class)
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    _require_labels(y, num_classes)
    picks = []
    for k in range(num_classes):
        members = (y.cpu() == k).nonzero().squeeze(1)
        if len(members) < per_class:
            raise ValueError(f"class {k} has {len(members)} examples, fewer than {per_class}")
        picks.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(picks).to(y.device)
