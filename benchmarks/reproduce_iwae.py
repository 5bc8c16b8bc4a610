"""Reproduce the VAE vs IWAE gap of Burda et al. 2016 (Table 1, one stochastic layer) on MNIST.

Network: 784-200-200-50 (tanh) encoder and the mirror decoder, Bernoulli pixels, dynamically
binarized MNIST, trained with k = 1 (the VAE) and k = 5 (the IWAE) for a budget of CPU time
each (the process's own CPU time, so a busy machine slows the run down but does not shorten
its training). Then log p(x) is estimated with k = 5000 importance samples on held-out
images, binarized once with a fixed seed. With the t10k files in DATA_DIR that is the
paper's protocol (train on all 60,000 training images, report on the 10,000 test images);
without them, train on the first 50,000 and report on the last 10,000 (it says which).

Burda et al. reach 86.76 (VAE) and 85.54 (IWAE, k = 5) nats after 3,280 epochs; here the
budget is CPU-minutes, so the learning rate decays with the spent fraction of the budget
(cosine), which makes the last minutes count.

    DATA_DIR=/path/to/mnist python benchmarks/reproduce_iwae.py --minutes 30
    python benchmarks/reproduce_iwae.py --models iwae --minutes 30 --threads 1   # one at a time

Each trained model is saved to benchmarks/_runs/iwae/<name>.pt and its numbers to
<name>.json; ``--eval-only`` re-evaluates saved models (e.g. on more images).

``--paper-schedule`` trains Burda et al.'s own schedule instead of a time budget (3^i epochs
at lr 1e-3 · 10^(-i/7) for i = 0..7, 3,280 epochs): days on a CPU, hours on a GPU:

    python benchmarks/reproduce_iwae.py --paper-schedule --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_utils.data import dynamic_binarize, load_mnist, mnist_protocol  # noqa: E402
from course_utils.device import get_device  # noqa: E402
from course_utils.iwae import active_units, estimate_log_likelihood, iwae_loss  # noqa: E402
from course_utils.vae import VAE  # noqa: E402

RUN_DIR = Path(__file__).resolve().parent / "_runs" / "iwae"
K_TRAIN = {"vae": 1, "iwae": 5}


def make_model(x_train: torch.Tensor) -> VAE:
    """784-200-200-50 with tanh (Burda et al. 2016, sec. 5.1), output bias at the pixel means."""
    model = VAE(784, z_dim=50, hidden_dims=(200, 200), activation="tanh")
    mean = x_train.mean(0).clamp(1e-3, 1 - 1e-3)
    with torch.no_grad():
        model.decoder.net[-1].bias.copy_(torch.log(mean) - torch.log1p(-mean))
    return model


def paper_schedule(num_passes: int = 8, peak_lr: float = 1e-3) -> list[tuple[int, float]]:
    """Burda et al. (2016, sec. 5.1): pass i = 0, 1, ... trains 3^i epochs at lr 1e-3 · 10^(-i/7).

    The 8 passes of the paper are 3,280 epochs in all. Returns [(epochs, lr), ...].
    """
    if isinstance(num_passes, bool) or not isinstance(num_passes, int) or num_passes < 1:
        raise ValueError(f"num_passes must be a positive int, got {num_passes!r}")
    return [(3**i, peak_lr * 10 ** (-i / 7)) for i in range(num_passes)]


def make_optimizer(model: VAE, lr: float) -> torch.optim.Adam:
    # eps as Burda et al.; the fused kernel (CPU and CUDA) makes a VAE step ~10% cheaper
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=lr, eps=1e-4, fused=fused)


def train_step(model: VAE, optimizer, x_batch: torch.Tensor, k: int) -> float:
    loss = iwae_loss(model, dynamic_binarize(x_batch), k)["loss"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_paper_schedule(model: VAE, x_train: torch.Tensor, k: int, args) -> dict:
    """Adam on -L_k through ``paper_schedule(args.passes)``: no time budget (for a GPU)."""
    optimizer = make_optimizer(model, args.lr)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    epoch, steps, log = 0, 0, []
    for num_epochs, lr in paper_schedule(args.passes, args.lr):
        for group in optimizer.param_groups:
            group["lr"] = lr
        for _ in range(num_epochs):
            epoch_loss, n = 0.0, 0
            for index in torch.randperm(len(x_train), device=x_train.device).split(
                    args.batch_size):
                epoch_loss, n = epoch_loss + train_step(model, optimizer, x_train[index], k), n + 1
            epoch, steps = epoch + 1, steps + n
            log.append({"epoch": epoch, "wall_minutes": (time.perf_counter() - start_wall) / 60,
                        "train_loss": epoch_loss / n, "lr": lr})
            if epoch % args.print_every == 0:
                print(f"  epoch {epoch:4d}  -L_{k} {epoch_loss / n:8.3f}  lr {lr:.2e}", flush=True)
    return {"epochs": epoch, "steps": steps, "schedule": "paper", "passes": args.passes,
            "train_wall_min": (time.perf_counter() - start_wall) / 60,
            "train_cpu_min": (time.process_time() - start_cpu) / 60, "log": log}


def train(model: VAE, x_train: torch.Tensor, k: int, args) -> dict:
    """Adam on -L_k with dynamic binarization until the CPU-time budget is spent."""
    optimizer = make_optimizer(model, args.lr)
    budget = 60.0 * args.minutes
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    epoch, steps, log, done = 0, 0, [], False
    while not done:
        epoch_loss, n = 0.0, 0
        for index in torch.randperm(len(x_train), device=x_train.device).split(args.batch_size):
            fraction = (time.process_time() - start_cpu) / budget
            if fraction >= 1.0:
                done = True
                break
            lr = args.lr * (args.final_lr_ratio + (1 - args.final_lr_ratio)
                            * 0.5 * (1 + math.cos(math.pi * fraction)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            epoch_loss = epoch_loss + train_step(model, optimizer, x_train[index], k)
            n, steps = n + 1, steps + 1
        if done:
            break
        epoch += 1
        elapsed = time.process_time() - start_cpu
        log.append({"epoch": epoch, "cpu_minutes": elapsed / 60, "train_loss": epoch_loss / n,
                    "lr": lr})
        if epoch % args.print_every == 0:
            print(f"  epoch {epoch:4d}  {elapsed / 60:6.2f} CPU-min  -L_{k} {epoch_loss / n:8.3f}"
                  f"  lr {lr:.2e}", flush=True)
    return {"epochs": epoch + (n / math.ceil(len(x_train) / args.batch_size)), "steps": steps,
            "train_wall_min": (time.perf_counter() - start_wall) / 60,
            "train_cpu_min": (time.process_time() - start_cpu) / 60, "log": log}


def evaluate(model: VAE, x_eval: torch.Tensor, args, name: str) -> dict:
    """log p(x) with k = args.k_eval importance samples, the ELBO and the active units.

    The per-image log p(x) also goes to <out>/<name>_log_px.pt, to compare subsets later.
    """
    start = time.perf_counter()
    torch.manual_seed(args.seed + 1)
    log_px = estimate_log_likelihood(model, x_eval, k=args.k_eval, chunk_size=args.chunk_size,
                                     batch_size=args.eval_batch_size)
    with torch.no_grad():
        device = next(model.parameters()).device
        elbo = torch.cat([model.log_weights(xb.to(device), 100).mean(0).cpu()
                          for xb in x_eval.split(500)])
    torch.save(log_px, args.out / f"{name}_log_px.pt")
    return {"nll": -log_px.mean().item(),
            "nll_stderr": log_px.std().item() / math.sqrt(len(log_px)),
            "neg_elbo": -elbo.mean().item(),
            "active_units": active_units(model, x_eval.to(next(model.parameters()).device)),
            "n_eval": len(x_eval), "k_eval": args.k_eval,
            "eval_wall_min": (time.perf_counter() - start) / 60}


def load_avg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="training budget per model in CPU-minutes (default 30)")
    parser.add_argument("--models", nargs="+", choices=sorted(K_TRAIN), default=["vae", "iwae"])
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (Adam)")
    parser.add_argument("--final-lr-ratio", type=float, default=0.02,
                        help="learning rate at the end of the budget, as a fraction of --lr")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--k-eval", type=int, default=5000)
    parser.add_argument("--n-eval", type=int, default=10000,
                        help="held-out images to evaluate (the first n of the valid split; "
                             "default all 10,000, ~14 min per model on one core)")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--eval-batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print-every", type=int, default=5)
    parser.add_argument("--eval-only", action="store_true", help="evaluate saved models")
    parser.add_argument("--out", type=Path, default=RUN_DIR)
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, mps, or auto (CUDA, then MPS, then CPU)")
    parser.add_argument("--paper-schedule", action="store_true",
                        help="train Burda et al.'s 3^i epochs at 1e-3·10^(-i/7), i < --passes "
                             "(3,280 epochs for 8 passes), instead of a CPU-time budget")
    parser.add_argument("--passes", type=int, default=8, help="passes of --paper-schedule")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.n_eval < 1:
        parser.error("--minutes and --n-eval must be positive")

    torch.set_num_threads(args.threads)
    device = get_device() if args.device == "auto" else torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    protocol = mnist_protocol()  # the official test split when the t10k files are there
    print(protocol.description, flush=True)
    x_train = load_mnist(protocol.train_split)[0].to(device)
    x_eval = load_mnist(protocol.eval_split, binarize=True)[0][: args.n_eval]
    print(f"train {tuple(x_train.shape)}, held-out {tuple(x_eval.shape)}, device {device}, threads "
          f"{torch.get_num_threads()}, load average {load_avg()}", flush=True)

    for name in args.models:
        k = K_TRAIN[name]
        torch.manual_seed(args.seed)
        model = make_model(x_train).to(device)
        path = args.out / f"{name}.pt"
        if args.eval_only:
            model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
            result = json.loads((args.out / f"{name}.json").read_text())
        else:
            how = (f"{sum(e for e, _ in paper_schedule(args.passes))} epochs (paper schedule)"
                   if args.paper_schedule else f"{args.minutes:g} CPU-min")
            print(f"training {name} (k = {k}) on {device} for {how}", flush=True)
            result = {"model": name, "k_train": k, "minutes_budget": args.minutes,
                      "lr": args.lr, "final_lr_ratio": args.final_lr_ratio,
                      "batch_size": args.batch_size, "threads": args.threads,
                      "load_before": load_avg(), "split": protocol.description,
                      "device": str(device)}
            trainer = train_paper_schedule if args.paper_schedule else train
            result.update(trainer(model, x_train, k, args))
            result["load_after_train"] = load_avg()
            torch.save({n: t.cpu() for n, t in model.state_dict().items()}, path)
        result.update(evaluate(model, x_eval, args, name))
        result.update({"torch": torch.__version__, "machine": platform.machine(),
                       "cpus": os.cpu_count()})
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
        print(f"{name}: NLL {result['nll']:.2f} ± {result['nll_stderr']:.2f} nats "
              f"(k = {args.k_eval}, {len(x_eval)} held-out images), -ELBO "
              f"{result['neg_elbo']:.2f}, active units {result['active_units']}/50, "
              f"{result['epochs']:.1f} epochs in {result['train_wall_min']:.1f} wall-min "
              f"({result['train_cpu_min']:.1f} CPU-min), eval {result['eval_wall_min']:.1f} min",
              flush=True)


if __name__ == "__main__":
    main()
