"""Reproduce the VAE vs IWAE gap of Burda et al. 2016 (Table 1, one stochastic layer) on MNIST.

Network: 784-200-200-50 (tanh) encoder and the mirror decoder, Bernoulli pixels, dynamically
binarized MNIST (the first 50,000 training images), trained with k = 1 (the VAE) and k = 5
(the IWAE) for a budget of CPU time each (the process's own CPU time, so a busy machine
slows the run down but does not shorten its training). Then log p(x) is estimated with
k = 5000 importance samples on held-out images (the last 10,000 training images, binarized
once with a fixed seed).

Burda et al. reach 86.76 (VAE) and 85.54 (IWAE, k = 5) nats after 3,280 epochs; here the
budget is CPU-minutes, so the learning rate decays with the spent fraction of the budget
(cosine), which makes the last minutes count.

    DATA_DIR=/path/to/mnist python benchmarks/reproduce_iwae.py --minutes 30
    python benchmarks/reproduce_iwae.py --models iwae --minutes 30 --threads 1   # one at a time

Each trained model is saved to benchmarks/_runs/iwae/<name>.pt and its numbers to
<name>.json; ``--eval-only`` re-evaluates saved models (e.g. on more images).
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

from course_utils.data import dynamic_binarize, load_mnist  # noqa: E402
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


def train(model: VAE, x_train: torch.Tensor, k: int, args) -> dict:
    """Adam on -L_k with dynamic binarization until the CPU-time budget is spent."""
    # eps as Burda et al.; the fused CPU kernel makes a VAE step ~10% cheaper
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-4, fused=True)
    budget = 60.0 * args.minutes
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    epoch, steps, log, done = 0, 0, [], False
    while not done:
        epoch_loss, n = 0.0, 0
        for index in torch.randperm(len(x_train)).split(args.batch_size):
            fraction = (time.process_time() - start_cpu) / budget
            if fraction >= 1.0:
                done = True
                break
            lr = args.lr * (args.final_lr_ratio + (1 - args.final_lr_ratio)
                            * 0.5 * (1 + math.cos(math.pi * fraction)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = iwae_loss(model, dynamic_binarize(x_train[index]), k)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss, n, steps = epoch_loss + loss.item(), n + 1, steps + 1
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
        elbo = torch.cat([model.log_weights(xb, 100).mean(0) for xb in x_eval.split(500)])
    torch.save(log_px, args.out / f"{name}_log_px.pt")
    return {"nll": -log_px.mean().item(),
            "nll_stderr": log_px.std().item() / math.sqrt(len(log_px)),
            "neg_elbo": -elbo.mean().item(), "active_units": active_units(model, x_eval),
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
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.n_eval < 1:
        parser.error("--minutes and --n-eval must be positive")

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    x_train, _ = load_mnist("train")
    x_eval = load_mnist("valid", binarize=True)[0][: args.n_eval]
    print(f"train {tuple(x_train.shape)}, held-out {tuple(x_eval.shape)}, threads "
          f"{torch.get_num_threads()}, load average {load_avg()}", flush=True)

    for name in args.models:
        k = K_TRAIN[name]
        torch.manual_seed(args.seed)
        model = make_model(x_train)
        path = args.out / f"{name}.pt"
        if args.eval_only:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            result = json.loads((args.out / f"{name}.json").read_text())
        else:
            print(f"training {name} (k = {k}) for {args.minutes:g} CPU-min", flush=True)
            result = {"model": name, "k_train": k, "minutes_budget": args.minutes,
                      "lr": args.lr, "final_lr_ratio": args.final_lr_ratio,
                      "batch_size": args.batch_size, "threads": args.threads,
                      "load_before": load_avg()}
            result.update(train(model, x_train, k, args))
            result["load_after_train"] = load_avg()
            torch.save(model.state_dict(), path)
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
