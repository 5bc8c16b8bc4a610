"""Checks for notebook 07 (conditional VAE and inpainting): one_hot, conditional_elbo,
random_mask, inpaint."""

from __future__ import annotations

import contextlib
import io

import torch

from .. import cvae
from ..vae import _bernoulli_ll, _gaussian_kl
from .core import (
    Case,
    Mistake,
    call_student,
    check_tensor_like,
    check_type,
    compare,
    exercise,
    fail,
    passed,
    private_generator,
)

NOTEBOOK = "07_conditional_vae"


# --------------------------------------------------------------------------- one_hot


def _one_hot_columns(y, num_classes):
    out = torch.zeros(len(y), num_classes)
    out[:, y] = 1.0  # sets whole columns: every row gets a 1 at every label in the batch
    return out


_ONE_HOT_MISTAKES = [
    Mistake("each row should be the one-hot vector of one label, so the result is "
            "(B, num_classes), not (num_classes, B).",
            lambda y, num_classes: cvae.one_hot(y, num_classes).T),
    Mistake("the width must be `num_classes`, not the largest label in y plus one: a batch "
            "does not always contain every class.",
            lambda y, num_classes: cvae.one_hot(y, int(y.max()) + 1)),
    Mistake("each row must hold a single 1, at column y[i]. Indexing with out[:, y] sets "
            "those columns in every row; index the row and the column together.",
            _one_hot_columns),
    Mistake("the 1 of row i belongs at column y[i], counting from 0 (label 0 -> column 0).",
            lambda y, num_classes: torch.roll(cvae.one_hot(y, num_classes), 1, dims=1)),
]


def _one_hot_cases() -> list[Case]:
    g = private_generator("one_hot")
    return [
        Case((torch.randint(0, 10, (6,), generator=g), 10)),
        Case((torch.tensor([3, 0, 2, 1]), 4)),
        Case((torch.tensor([1, 1, 0]), 5)),  # the largest label is below num_classes - 1
        Case((torch.tensor([7]), 10)),
        Case((torch.randint(0, 3, (8,), generator=g, dtype=torch.int32), 3)),
    ]


@exercise(NOTEBOOK, hints=(
    "Start from a (B, num_classes) tensor of zeros and put a single 1 in each row, at the column "
    "its label names.",
    "Index with two index tensors, rows torch.arange(B) and columns y; keep y's device, and return"
    " float32.",
))
def one_hot(student_fn):
    """Check ``one_hot(y, num_classes) -> (B, num_classes)`` float rows with a single 1."""
    cases = _one_hot_cases()
    for i, case in enumerate(cases):
        out = call_student("one_hot", student_fn, case, ("y", "num_classes"))
        if isinstance(out, torch.Tensor) and not out.is_floating_point():
            fail("one_hot", f"your output has dtype {out.dtype} on input {i + 1}/{len(cases)} "
                 f"({case.describe(('y', 'num_classes'))}).\nThe networks take float inputs: "
                 "return a float32 tensor (F.one_hot gives int64; convert it).")
    compare("one_hot", student_fn, cvae.one_hot, cases, arg_names=("y", "num_classes"),
            mistakes=_ONE_HOT_MISTAKES)


# --------------------------------------------------------------------------- conditional_elbo

_ELBO_ARGS = ("model", "x", "y")


def _elbo_parts(model, x, y, *, label_to_encoder=True, label_to_decoder=True, z_mean=False):
    c = cvae.one_hot(y, model.num_classes, dtype=x.dtype)
    none = torch.zeros_like(c)
    mu, logvar = model.encode(x, c if label_to_encoder else none)
    z = mu if z_mean else model.reparameterize(mu, logvar)
    logits = model.decode(z, c if label_to_decoder else none)
    return logits, mu, logvar


def _elbo_variant(rec_sign=1.0, kl_sign=-1.0, sigmoid=False, **kwargs):
    def fn(model, x, y):
        logits, mu, logvar = _elbo_parts(model, x, y, **kwargs)
        logits = torch.sigmoid(logits) if sigmoid else logits
        return rec_sign * _bernoulli_ll(x, logits) + kl_sign * _gaussian_kl(mu, logvar)
    return fn


_ELBO_MISTAKES = [
    Mistake("the decoder must see the label too: p(x|y,z) takes z and the one-hot y.",
            _elbo_variant(label_to_decoder=False)),
    Mistake("the encoder must see the label too: q(z|x,y) takes x and the one-hot y.",
            _elbo_variant(label_to_encoder=False)),
    Mistake("this is the negative ELBO (the loss). The exercise asks for the ELBO itself: "
            "log-likelihood minus KL.", _elbo_variant(rec_sign=-1.0, kl_sign=1.0)),
    Mistake("the KL term is subtracted from the log-likelihood, not added.",
            _elbo_variant(kl_sign=1.0)),
    Mistake("the KL(q(z|x,y) || p(z)) term is missing.", _elbo_variant(kl_sign=0.0)),
    Mistake("model.decode returns logits; pass them to the Bernoulli log-likelihood as they "
            "are (no sigmoid).", _elbo_variant(sigmoid=True)),
    Mistake("return one ELBO per example, shape (B,): do not average over the batch.",
            lambda model, x, y: cvae.conditional_elbo(model, x, y).mean()),
]


def _check_cvae(seed: int, num_classes: int = 4, sharp: bool = True) -> cvae.CVAE:
    """A small float64 CVAE; sharp=True makes q(z|x,y) nearly a point (std ~ e^-15)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cvae.CVAE(x_dim=12, num_classes=num_classes, z_dim=3, hidden_dims=(16,)).double()
    if sharp:
        with torch.no_grad():
            model.encoder.net[-1].bias[model.z_dim:] -= 30.0  # logvar ~ -30: z ≈ mu
    return model


def _elbo_cases() -> list[Case]:
    g = private_generator("conditional_elbo")
    cases = []
    for seed, b, k in ((0, 5, 4), (1, 1, 4), (2, 8, 6)):
        model = _check_cvae(seed, k)
        x = torch.rand(b, 12, generator=g, dtype=torch.float64)
        if seed == 2:
            x = x.round()  # binary pixels
        y = torch.randint(0, k, (b,), generator=g)
        label = f"a CVAE with {k} classes; x: ({b}, 12) in [0, 1]; y: {y.tolist()}"
        cases.append(Case((model, x, y), label=label))
    return cases


@exercise(NOTEBOOK, hints=(
    "The VAE's ELBO with the label given to both the encoder and the decoder: encode (x, y), "
    "sample z, decode (z, y).",
    "The model wants the label as a one-hot row (your one_hot); the ELBO per example is "
    "bernoulli_log_likelihood(x, logits) - gaussian_kl(mu, logvar).",
))
def conditional_elbo(student_fn):
    """Check ``conditional_elbo(model, x, y) -> (B,)`` on near-deterministic CVAEs, then that z is
    sampled."""
    cases = _elbo_cases()
    with contextlib.redirect_stdout(io.StringIO()):  # one pass line at the end, not two
        compare("conditional_elbo", student_fn, cvae.conditional_elbo, cases,
                arg_names=_ELBO_ARGS, mistakes=_ELBO_MISTAKES, rtol=1e-5, atol=1e-4)
    noisy = _check_cvae(3, sharp=False)
    x = torch.rand(6, 12, generator=private_generator("conditional_elbo", 1), dtype=torch.float64)
    case = Case((noisy, x, torch.arange(6) % 4), label="a CVAE whose q(z|x,y) is wide")
    first = call_student("conditional_elbo", student_fn, case, _ELBO_ARGS, seed=0)
    second = call_student("conditional_elbo", student_fn, case, _ELBO_ARGS, seed=1)
    if torch.allclose(first.detach(), second.detach()):
        fail("conditional_elbo", "your ELBO does not change with the noise: it seems to use the "
             "mean of q(z|x,y) as z.\nSample z with model.reparameterize(mu, logvar) (one "
             "sample per example).")
    passed("conditional_elbo", len(cases) + 1)


# --------------------------------------------------------------------------- random_mask

_MASK_ARGS = ("batch_size", "image_shape", "size")


def _mask_case(batch_size, shape, size) -> Case:
    return Case((batch_size, shape, size),
                label=f"batch_size={batch_size}, image_shape={shape}, size={size}")


def _square_corners(name: str, mask: torch.Tensor, shape, size: int, on: str) -> torch.Tensor:
    """Top-left corner (row, col) of each hidden square; fails unless each mask is one square."""
    h, w = shape
    hidden = mask.reshape(len(mask), h, w) == 0
    counts = hidden.sum((1, 2))
    if bool((counts == h * w - size * size).all()) and size * size != h * w - size * size:
        fail(name, f"each of your masks has {h * w - size * size} zeros and {size * size} ones "
             f"{on}: the mask is inverted.\nUse 1 for the pixels the encoder sees and 0 for the "
             "hidden square.")
    if not bool((counts == size * size).all()):
        bad = int((counts != size * size).nonzero()[0])
        fail(name, f"mask {bad} hides {int(counts[bad])} pixels {on}; each mask should hide "
             f"exactly size x size = {size * size} pixels (one square, inside the image).")
    rows, cols = hidden.any(2).float(), hidden.any(1).float()  # (B, H), (B, W)
    top, left = rows.argmax(1), cols.argmax(1)
    bottom, right = h - 1 - rows.flip(1).argmax(1), w - 1 - cols.flip(1).argmax(1)
    if not (bool((bottom - top + 1 == size).all()) and bool((right - left + 1 == size).all())):
        fail(name, f"the hidden pixels of some masks do not form one {size}x{size} square {on}.\n"
             "Hide the rows top..top+size-1 and the columns left..left+size-1 (no wrap-around).")
    return torch.stack([top, left], 1)


@exercise(NOTEBOOK, hints=(
    "For each image, choose the square's top-left corner uniformly among the positions where the "
    "whole square fits, and mark its pixels 0, the rest 1.",
    "Corners range over 0 .. H - size (inclusive); compare row and column index grids "
    "(torch.arange) with each corner by broadcasting, then flatten to (B, H*W).",
))
def random_mask(student_fn):
    """Check ``random_mask(batch_size, image_shape, size) -> (B, H*W)``: one uniform square each."""
    name = "random_mask"
    cases = [_mask_case(3000, (8, 8), 3), _mask_case(2000, (6, 10), 4), _mask_case(1, (8, 8), 2)]
    for i, case in enumerate(cases):
        on = f"on input {i + 1}/{len(cases)} ({case.describe()})"
        out = call_student(name, student_fn, case, _MASK_ARGS)
        batch_size, (h, w), size = case.args
        expected = torch.ones(batch_size, h * w)
        check_type(name, out, expected, "your output")
        if out.shape == (batch_size, h, w):
            fail(name, f"your output has shape {tuple(out.shape)} {on}; flatten each mask to "
                 f"one row of H*W = {h * w} pixels, like the images.")
        if out.dtype != torch.float32:
            fail(name, f"your masks have dtype {out.dtype} {on}; return float32 (1.0 for "
                 "visible, 0.0 for hidden pixels) so a mask can multiply an image.")
        check_tensor_like(name, out, expected, "your output", on)
        if not bool(((out == 0) | (out == 1)).all()):
            fail(name, f"your masks hold values other than 0 and 1 {on}.")
        corners = _square_corners(name, out, (h, w), size, on)
        again = call_student(name, student_fn, case, _MASK_ARGS)
        if not torch.equal(out, again):
            fail(name, f"two calls after the same torch.manual_seed gave different masks {on}.\n"
                 "Draw the positions with torch's random functions (e.g. torch.randint), not "
                 "NumPy's or Python's, so seed_everything makes runs repeatable.")
        if batch_size == 1:
            continue
        if bool((corners == corners[0]).all()):
            fail(name, f"every mask of the batch hides the same square {on}; draw a new "
                 "position for each image.")
        for axis, (extent, word, edge) in enumerate(((h, "row", "bottom"),
                                                     (w, "column", "right"))):
            seen = torch.bincount(corners[:, axis], minlength=extent)
            last = extent - size
            if seen[last] == 0 and seen[:last].all():
                fail(name, f"no square ever touches the {edge} edge {on}: the first hidden "
                     f"{word} can be 0..{last}, and torch.randint(low, high) excludes `high`.")
            if seen[last + 1:].any() or not seen[:last + 1].all():
                fail(name, f"the first hidden {word} should be uniform over 0..{last} {on}; "
                     f"yours took the values {seen.nonzero().squeeze(1).tolist()}.")
            expected_count = batch_size / (last + 1)
            if (seen[:last + 1].float() - expected_count).abs().max() > 0.3 * expected_count:
                fail(name, f"the square positions are far from uniform {on} (counts per first "
                     f"{word}: {seen[:last + 1].tolist()}). Draw each position with "
                     "torch.randint.")
    passed(name, len(cases), "mask batches are valid")


# --------------------------------------------------------------------------- inpaint

_INPAINT_ARGS = ("model", "x", "mask")


def _decoded(model, x, mask, *, sample=False, sees_all=False):
    mu, logvar = model.encode(x, torch.ones_like(mask) if sees_all else mask)
    z = model.reparameterize(mu, logvar) if sample else mu
    return model.decode(z)


_INPAINT_MISTAKES = [
    Mistake("keep the observed pixels of x and fill in only the hidden ones "
            "(where mask == 0) with the decoder's probabilities.",
            lambda model, x, mask: torch.sigmoid(_decoded(model, x, mask))),
    Mistake("model.decode returns logits; turn them into pixel probabilities with torch.sigmoid "
            "before filling the hidden pixels.",
            lambda model, x, mask: mask * x + (1 - mask) * _decoded(model, x, mask)),
    Mistake("the mask is 1 where x is observed: keep x where mask == 1 and use the decoder "
            "where mask == 0 (you swapped the two).",
            lambda model, x, mask: (1 - mask) * x + mask * torch.sigmoid(_decoded(model, x, mask))),
    Mistake("the encoder must get the real mask: with a mask of ones it sees the hidden pixels, "
            "which is cheating.",
            lambda model, x, mask: mask * x + (1 - mask) * torch.sigmoid(
                _decoded(model, x, mask, sees_all=True))),
    Mistake("use the mean of q(z|x ⊙ m) as z (no sampling), so the fill-in is deterministic.",
            lambda model, x, mask: mask * x + (1 - mask) * torch.sigmoid(
                _decoded(model, x, mask, sample=True))),
]


def _inpaint_cases() -> list[Case]:
    g = private_generator("inpaint")
    cases = []
    for seed, b in ((0, 4), (1, 1), (2, 6)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cvae.MaskedVAE(x_dim=16, z_dim=3, hidden_dims=(16,)).double()
            mask = cvae.random_mask(b, (4, 4), 2).double()
        x = torch.rand(b, 16, generator=g, dtype=torch.float64)
        label = f"a MaskedVAE on 4x4 images; x: ({b}, 16) in [0, 1]; mask hides a 2x2 square"
        cases.append(Case((model, x, mask), label=label))
    return cases


@exercise(NOTEBOOK, hints=(
    "Encode the masked image with the mask, decode the mean code, and keep the visible pixels of "
    "x: only the hidden ones come from the model.",
    "Use z = μ (no sampling) and the decoder's probabilities, sigmoid(logits); combine as mask · x"
    " + (1 - mask) · probabilities.",
))
def inpaint(student_fn):
    """Check ``inpaint(model, x, mask) -> (B, D)`` against the reference fill-in."""
    compare("inpaint", student_fn, cvae.inpaint, _inpaint_cases(), arg_names=_INPAINT_ARGS,
            mistakes=_INPAINT_MISTAKES, gradients=False)

