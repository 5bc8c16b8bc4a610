"""One training loop for every model of the course: ``fit``, and the ``History`` it returns.

``fit`` shuffles tensors already in memory with one ``torch.randperm`` per epoch and slices
them (no per-item DataLoader), shows a tqdm progress bar (a widget in Jupyter, text
elsewhere), records the per-epoch mean of every loss part, evaluates periodically, saves and
resumes checkpoints, and stops with a clear error when a loss becomes NaN or infinite.
"""

from __future__ import annotations

import inspect
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class History:
    """Per-epoch means of every loss part, for training and validation."""

    train: dict[str, list[float]] = field(default_factory=dict)
    valid: dict[str, list[float]] = field(default_factory=dict)
    epochs: list[int] = field(default_factory=list)  # 1-based epoch of each train entry
    valid_epochs: list[int] = field(default_factory=list)  # epochs with a validation entry
    seconds: list[float] = field(default_factory=list)  # wall time of each epoch

    def state_dict(self) -> dict:
        """Plain lists and dicts (safe for ``torch.load(weights_only=True)``)."""
        return {"train": {k: list(v) for k, v in self.train.items()},
                "valid": {k: list(v) for k, v in self.valid.items()},
                "epochs": list(self.epochs), "valid_epochs": list(self.valid_epochs),
                "seconds": list(self.seconds)}

    @classmethod
    def from_state_dict(cls, state: dict) -> History:
        """The inverse of ``state_dict``."""
        return cls(**{k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in state.items()})

    def _append(self, where: dict[str, list[float]], values: dict[str, float]) -> None:
        for name, value in values.items():
            where.setdefault(name, []).append(value)

    def plot(self, parts: Sequence[str] | None = None, axes=None):
        """Loss curves, one panel per part, train and valid; returns the matplotlib Axes."""
        from .plots import plot_history

        return plot_history(self, parts=parts, axes=axes)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.train.items() if v}
        return f"History(epochs={len(self.epochs)}, last train={last})"


# --------------------------------------------------------------------------- validation


def _as_tensors(data, name: str) -> tuple[torch.Tensor, ...]:
    tensors = (data,) if isinstance(data, torch.Tensor) else data
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise TypeError(f"{name} must be a tensor or a tuple of tensors, got {type(data).__name__}")
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must hold torch tensors, got {type(t).__name__}")
        if t.ndim == 0:
            raise ValueError(f"{name} tensors need a first (batch) dimension, got a scalar")
    n = len(tensors[0])
    if n == 0:
        raise ValueError(f"{name} is empty")
    if any(len(t) != n for t in tensors):
        raise ValueError(f"{name} tensors must share their first dimension, got "
                         f"{[tuple(t.shape) for t in tensors]}")
    return tuple(tensors)


def _require_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


# --------------------------------------------------------------------------- batches


def _batches(tensors, batch_size: int, order: torch.Tensor | None):
    """Yield tuples of slices of ``tensors`` (in ``order`` if given): the in-memory fast path."""
    n = len(tensors[0])
    for start in range(0, n, batch_size):
        if order is None:
            yield tuple(t[start:start + batch_size] for t in tensors)
        else:
            index = order[start:start + batch_size]
            yield tuple(t.index_select(0, index) for t in tensors)


def _call_loss(loss_fn, model, batch, kwargs) -> dict[str, torch.Tensor]:
    out = loss_fn(model, *batch, **kwargs)
    if isinstance(out, torch.Tensor):
        out = {"loss": out}
    if not isinstance(out, dict) or "loss" not in out:
        raise TypeError("loss_fn must return a dict with at least a 'loss' entry (or a tensor)")
    for name, value in out.items():
        if not isinstance(value, (torch.Tensor, int, float)) or torch.as_tensor(value).numel() != 1:
            got = (f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                   else type(value).__name__)
            raise ValueError(f"loss_fn's {name!r} must be one number (e.g. the batch mean, "
                             f".mean()), got {got}")
    return out


def _finite_values(out: dict, epoch: int, batch: int, phase: str) -> dict[str, float]:
    """The loss parts as floats (one device sync); FloatingPointError if any is nan or inf."""
    names = list(out)
    values = torch.stack([torch.as_tensor(out[k]).detach().reshape(()).float()
                          for k in names]).tolist()
    for name, value in zip(names, values, strict=True):
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the {phase} loss part {name!r} became {value} at epoch {epoch}, batch {batch}. "
                "Training stopped. Try a lower learning rate, check the data for nan/inf, and "
                "use numerically stable functions (logits with BCE-with-logits, logvar not var)."
            )
    return dict(zip(names, values, strict=True))


def require_finite_loss(loss: torch.Tensor, step: int, where: str) -> None:
    """The guard of every training loop: stop before a step on a nan or inf loss."""
    if not torch.isfinite(loss.detach()).all():
        raise FloatingPointError(
            f"{where}: the loss became {loss.detach().reshape(-1)[0].item()} at step {step}. "
            "Training stopped. Try a lower learning rate, and check the inputs (and log-density) "
            "for nan/inf.")


def _accumulate(totals: dict[str, float], values: dict[str, float], weight: int) -> None:
    for name, value in values.items():
        totals[name] = totals.get(name, 0.0) + weight * value


# --------------------------------------------------------------------------- checkpoints


def _rng_state(generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


_CHECKPOINT_FORMAT = "course_utils.fit/2"


def _stateful(loss_fn) -> bool:
    """A loss_fn with a schedule of its own (BetaLoss, CapacityLoss) is checkpointed too."""
    return callable(getattr(loss_fn, "state_dict", None)) and callable(
        getattr(loss_fn, "load_state_dict", None))


def _save_checkpoint(path, model, optimizer, history, epoch, generator, loss_fn=None) -> None:
    state = {"format": _CHECKPOINT_FORMAT, "model_class": type(model).__name__,
             "optimizer_class": type(optimizer).__name__,
             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "history": history.state_dict(), "epoch": epoch, "rng": _rng_state(generator)}
    if _stateful(loss_fn):
        state["loss_fn"] = {"class": type(loss_fn).__name__, "state": loss_fn.state_dict()}
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint


def _read_checkpoint(path, device) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # truncated zip, a pickle of something else, a text file
        raise ValueError(
            f"{path} is not a readable fit checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}); delete it to start "
            f"over, or pass another checkpoint path") from None
    needed = {"model", "optimizer", "history", "epoch", "rng"}
    if not isinstance(state, dict) or not needed <= state.keys():
        raise ValueError(f"{path} is not a fit checkpoint (it lacks "
                         f"{sorted(needed - set(state) if isinstance(state, dict) else needed)}); "
                         f"delete it to start over, or pass another checkpoint path")
    return state


def _require_same_model(path, state: dict, model: nn.Module) -> None:
    saved_class = state.get("model_class")
    if saved_class is not None and saved_class != type(model).__name__:
        raise ValueError(f"{path} holds a {saved_class}, but the model is a "
                         f"{type(model).__name__}: build a {saved_class} to resume it, or start "
                         f"over with another checkpoint path")
    own = model.state_dict()
    saved = state["model"]
    missing, extra = sorted(own.keys() - saved.keys()), sorted(saved.keys() - own.keys())
    different = [f"{name}: checkpoint {tuple(saved[name].shape)}, model {tuple(own[name].shape)}"
                 for name in own if name in saved and saved[name].shape != own[name].shape]
    if missing or extra or different:
        lines = different[:3] + [f"{name}: only in the model" for name in missing[:2]] + [
            f"{name}: only in the checkpoint" for name in extra[:2]]
        raise ValueError(f"{path} was saved from a {type(model).__name__} of another "
                         f"architecture:\n  " + "\n  ".join(lines) + "\nbuild the model with "
                         "the checkpoint's sizes to resume it, or start over with another "
                         "checkpoint path")


def _restore_optimizer(path, state: dict, optimizer) -> None:
    """Load the optimiser's state (moments, step counts); keep the caller's settings (lr, ...)."""
    saved_class = state.get("optimizer_class")
    if saved_class is not None and saved_class != type(optimizer).__name__:
        raise ValueError(f"{path} was trained with {saved_class}, not "
                         f"{type(optimizer).__name__}: pass a {saved_class} optimiser to resume "
                         f"it (or none, for fit's Adam), or start over with another path")
    settings = [{k: v for k, v in group.items() if k != "params"}
                for group in optimizer.param_groups]
    saved_groups = state["optimizer"].get("param_groups", [])
    if len(saved_groups) != len(settings):
        raise ValueError(f"{path}'s optimiser has {len(saved_groups)} parameter groups, this one "
                         f"{len(settings)}: build the optimiser as for the checkpoint")
    pairs = zip(settings, saved_groups, strict=True)
    changed = [f"{k} {saved[k]!r} -> {v!r}" for own, saved in pairs
               for k, v in own.items() if k in saved and saved[k] != v]
    optimizer.load_state_dict(state["optimizer"])
    for group, own in zip(optimizer.param_groups, settings, strict=True):
        group.update(own)
    if changed:
        warnings.warn(f"resuming {path} with your optimiser settings, not the checkpoint's: "
                      + ", ".join(sorted(set(changed))), stacklevel=3)


def load_checkpoint(path, model: nn.Module, optimizer=None) -> tuple[History, int]:
    """Restore model (and optimiser) from a ``fit`` checkpoint; returns (history, epoch).

    The optimiser keeps its own settings (lr, betas, ...) and takes the checkpoint's state.
    """
    state = _read_checkpoint(path, _model_device(model))
    _require_same_model(path, state, model)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        _restore_optimizer(path, state, optimizer)
    return History.from_state_dict(state["history"]), int(state["epoch"])


def _restore_loss_fn(path, state: dict, loss_fn) -> None:
    saved = state.get("loss_fn")
    if not _stateful(loss_fn):
        if saved is not None:
            raise ValueError(f"{path} was trained with a {saved['class']} loss_fn whose schedule "
                             f"is saved in it: pass a {saved['class']} to resume it")
        return
    if saved is None or saved["class"] != type(loss_fn).__name__:
        raise ValueError(f"{path} was trained without a {type(loss_fn).__name__} loss_fn (its "
                         f"schedule would restart): resume with the loss_fn it was trained with")
    loss_fn.load_state_dict(saved["state"])


# --------------------------------------------------------------------------- the loop


def _default_loss(model, *batch, **kwargs):
    return model.loss(*batch, **kwargs)


def _require_loss_takes(model: nn.Module, n_tensors: int, what: str) -> None:
    """With the default loss, each example's tensors must fill model.loss's data arguments:
    not too few, and never a hyperparameter such as beta (e.g. labels given to a VAE)."""
    loss = getattr(model, "loss", None)
    if not callable(loss):
        raise TypeError(f"{type(model).__name__} has no loss(...) method; pass loss_fn=...")
    try:
        params = list(inspect.signature(loss).parameters.values())
    except (TypeError, ValueError):  # a builtin or an odd callable: nothing to check
        return
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    hyper = [p for p in positional[len(required):n_tensors]
             if isinstance(p.default, (int, float)) and not isinstance(p.default, bool)]
    if n_tensors < len(required) or n_tensors > len(positional) or hyper:
        names = ", ".join(p.name for p in required)
        want = "x alone" if len(required) == 1 else f"a tuple ({names})"
        raise ValueError(
            f"{what} gives {n_tensors} tensor(s) per example, but {type(model).__name__}.loss "
            f"takes {len(required)} ({names}); pass {want}, or your own loss_fn=...")


@torch.no_grad()
def evaluate(model: nn.Module, x, *, batch_size: int = 1024, loss_fn=None,
             loss_kwargs: dict | None = None) -> dict[str, float]:
    """Mean of every loss part over a data set (tensor or tuple of tensors), in eval mode."""
    tensors = _as_tensors(x, "x")
    _require_int(batch_size, "batch_size", 1)
    if loss_fn is None:
        _require_loss_takes(model, len(tensors), "x")
    loss_fn = loss_fn or _default_loss
    device = _model_device(model)
    tensors = tuple(t.to(device) for t in tensors)
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    try:
        for i, batch in enumerate(_batches(tensors, batch_size, None)):
            values = _finite_values(_call_loss(loss_fn, model, batch, loss_kwargs or {}),
                                    epoch=0, batch=i, phase="validation")
            _accumulate(totals, values, len(batch[0]))
    finally:
        model.train(was_training)
    n = len(tensors[0])
    return {name: total / n for name, total in totals.items()}


def fit(
    model: nn.Module,
    x_train,
    *,
    num_epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable | None = None,
    x_valid=None,
    eval_every: int = 1,
    transform: Callable | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    seed: int | None = None,
    schedule: Callable[[int], dict] | None = None,
    eval_batch_size: int = 1024,
) -> History:
    """Train ``model`` on ``x_train`` (a tensor or a tuple of tensors) and return its History.

    - ``loss_fn(model, *batch, **schedule(epoch)) -> dict`` with at least "loss" (default
      ``model.loss``). ``schedule(epoch)`` (epoch from 0) gives extra keyword arguments per
      epoch, e.g. ``lambda epoch: {"beta": kl_warmup(epoch, 10)}``.
    - ``transform(batch_tuple) -> batch_tuple`` is applied to training batches only (e.g.
      dynamic binarization); prepare ``x_valid`` yourself.
    - ``x_valid`` is evaluated every ``eval_every`` epochs and after the last one.
    - ``checkpoint`` saves model, optimiser, history, epoch and random state every epoch;
      ``resume=True`` continues from it (and reproduces an uninterrupted run exactly on CPU,
      the step schedules of ``BetaLoss`` and ``CapacityLoss`` included). The model and
      optimiser must be of the checkpoint's kind and sizes; the optimiser's settings (lr, ...)
      are yours. Without ``resume`` an existing checkpoint is never overwritten.
    - ``seed`` seeds the shuffling and torch's global RNG (for the reparameterization noise).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _require_int(num_epochs, "num_epochs", 0)
    _require_int(batch_size, "batch_size", 1)
    _require_int(eval_every, "eval_every", 1)
    _require_int(eval_batch_size, "eval_batch_size", 1)
    if optimizer is None and (not isinstance(lr, (int, float)) or not lr > 0 or lr == math.inf):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    if checkpoint is not None and not resume and os.path.exists(checkpoint):
        raise FileExistsError(f"a checkpoint already exists at {checkpoint}: pass resume=True to "
                              f"continue it, or delete it (or choose another path) to start over")
    if checkpoint is not None:  # its folder is created now, not found missing after epoch 1
        os.makedirs(os.path.dirname(os.path.abspath(checkpoint)), exist_ok=True)
    if seed is not None:
        _require_int(seed, "seed", 0)
    device = _model_device(model)
    train = tuple(t.to(device) for t in _as_tensors(x_train, "x_train"))
    valid = None if x_valid is None else tuple(
        t.to(device) for t in _as_tensors(x_valid, "x_valid"))
    if loss_fn is None:
        _require_loss_takes(model, len(train), "x_train")
    loss_fn = loss_fn or _default_loss
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)

    if seed is not None:
        torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(
        seed if seed is not None else int(torch.randint(2**62, (1,))))
    history, start = History(), 0
    if resume and os.path.exists(checkpoint):
        history, start = load_checkpoint(checkpoint, model, optimizer)
        state = _read_checkpoint(checkpoint, "cpu")
        _restore_loss_fn(checkpoint, state, loss_fn)
        _set_rng_state(state["rng"], generator)

    n = len(train[0])
    num_batches = -(-n // batch_size)
    bar = progress_bar(total=(num_epochs - start) * num_batches, disable=not progress,
                       unit="batch", leave=True)
    was_training = model.training
    try:
        for epoch in range(start, num_epochs):
            tic = time.perf_counter()
            kwargs = schedule(epoch) if schedule is not None else {}
            means = _train_epoch(model, train, optimizer, loss_fn, kwargs, transform,
                                 batch_size, generator, epoch + 1, bar, num_epochs)
            history._append(history.train, means)
            history.epochs.append(epoch + 1)
            if valid is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == num_epochs):
                valid_means = evaluate(model, valid, batch_size=eval_batch_size,
                                       loss_fn=loss_fn, loss_kwargs=kwargs)
                history._append(history.valid, valid_means)
                history.valid_epochs.append(epoch + 1)
            history.seconds.append(time.perf_counter() - tic)
            bar.set_postfix(_postfix(history), refresh=False)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, history, epoch + 1, generator,
                                 loss_fn)
    finally:
        bar.close()
        model.train(was_training)
    return history


def _train_epoch(model, train, optimizer, loss_fn, kwargs, transform, batch_size, generator,
                 epoch, bar, num_epochs) -> dict[str, float]:
    """One pass over the shuffled training tensors; returns the mean of every loss part."""
    model.train()
    order = torch.randperm(len(train[0]), generator=generator).to(train[0].device)
    totals: dict[str, float] = {}
    bar.set_description(f"epoch {epoch}/{num_epochs}", refresh=False)
    for i, batch in enumerate(_batches(train, batch_size, order)):
        if transform is not None:
            batch = transform(batch)
            batch = (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)
        out = _call_loss(loss_fn, model, batch, kwargs)
        values = _finite_values(out, epoch, i + 1, "training")  # before the step: model intact
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        _accumulate(totals, values, len(batch[0]))
        bar.update(1)
    n = len(train[0])
    return {name: total / n for name, total in totals.items()}


def _postfix(history: History) -> dict[str, str]:
    post = {"loss": f"{history.train['loss'][-1]:.4g}"}
    if history.valid.get("loss"):
        post["valid"] = f"{history.valid['loss'][-1]:.4g}"
    return post


def progress_bar(iterable=None, *, total: int | None = None, disable: bool = False, **kwargs):
    """A tqdm bar (a widget in Jupyter), off when asked or when $TQDM_DISABLE is set.

    tqdm reads $TQDM_DISABLE only for arguments not passed, so it is checked here: notebooks
    executed for their stored outputs would otherwise keep a bar's first frame ("0%").
    """
    from tqdm.auto import tqdm

    disable = disable or os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, total=total, disable=disable, **kwargs)
