"""Notebook 09's measurements, averaged over seeds: flows on U1, and three VAEs on the digits.

    python benchmarks/bench_beyond.py --out benchmarks/_runs/beyond.json
    python benchmarks/bench_beyond.py --seeds 0 --epochs 2 --k 50 --flow-steps 50  # smoke run

1. A planar flow q_K (K = 0, 1, 2, 8, 32) fitted to the U1 energy of Rezende & Mohamed 2015 by
   reverse KL (Adam 1e-2, batch 256, beta annealed from 0.01 to 1 over the first half of the
   steps); KL(q_K || p) = free energy (200,000 samples) + log Z (grid quadrature).
2. On the bundled 28x28 digits binarised at 0.5 (10,000 train / all 2,000 test; the notebook
   evaluates the first 500 test digits), with the notebook's settings (2-D latent, one hidden
   layer of 256, Adam 1e-3, batch 128, 40 epochs): the plain VAE, a flow posterior (K = 8
   amortised planar flows) and a mixture-of-Gaussians prior (10 components). Reported per
   model: train and test ELBO (mean of 10 passes, one sample each), the test log p(x)
   estimated by importance sampling with k samples from the model's q (IWAE-k, default
   k = 1000, as in the notebook), the gap log p(x) - ELBO on the test digits and on the first
   2,000 training digits (k = 500, as in the notebook). For the plain VAE also the split of
   its KL term into I(x; z) and KL(q(z) || p(z)) on those 2,000 training digits.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_utils.data import load_images  # noqa: E402
from course_utils.device import get_device  # noqa: E402
from course_utils.flows import (  # noqa: E402
    FlowDensity,
    FlowVAE,
    fit_flow_density,
    log_normaliser,
    reverse_kl,
)
from course_utils.iwae import estimate_log_likelihood  # noqa: E402
from course_utils.priors import MixturePriorVAE, aggregate_posterior_kl  # noqa: E402
from course_utils.train import evaluate, fit  # noqa: E402
from course_utils.vae import VAE  # noqa: E402

X_DIM, Z_DIM, HIDDEN, LR, TRAIN_GAP_DIGITS, TRAIN_GAP_K = 784, 2, (256,), 1e-3, 2000, 500
MODELS = {
    "plain VAE": lambda: VAE(X_DIM, Z_DIM, HIDDEN),
    "flow posterior (K = 8)": lambda: FlowVAE(X_DIM, Z_DIM, HIDDEN, num_flows=8),
    "mixture prior (C = 10)": lambda: MixturePriorVAE(X_DIM, Z_DIM, HIDDEN, num_components=10),
}


def flow_kls(seed: int, num_steps: int, device: torch.device) -> dict[str, float]:
    """KL(q_K || p) on U1 for each K after num_steps of reverse-KL training."""
    log_z, out = log_normaliser("U1"), {}
    for num_flows in [0, 1, 2, 8, 32]:
        torch.manual_seed(seed)
        flow = FlowDensity(2, num_flows).to(device)
        fit_flow_density(flow, "U1", num_steps=num_steps)
        with torch.no_grad():
            out[str(num_flows)] = reverse_kl(flow, "U1", 200_000)["loss"].item() + log_z
    return out


def vae_results(seed: int, num_epochs: int, k: int,
                device: torch.device) -> dict[str, dict[str, float]]:
    """ELBOs, IWAE-k log p(x) and timings of the three VAEs trained with one seed."""
    data = load_images("mnist_subset", device=device)
    x_train, x_test = (data.x_train > 0.5).float(), (data.x_test > 0.5).float()
    x_gap = x_train[:TRAIN_GAP_DIGITS]
    out = {}
    for name, make in MODELS.items():
        torch.manual_seed(seed)
        model = make().to(device)
        tic, cpu = time.perf_counter(), time.process_time()
        fit(model, x_train, num_epochs=num_epochs, lr=LR, seed=seed, progress=False)
        row = {"train_seconds": time.perf_counter() - tic,
               "train_cpu_seconds": time.process_time() - cpu}
        torch.manual_seed(seed + 1000)
        row["train_elbo"] = -statistics.mean(evaluate(model, x_train)["loss"] for _ in range(10))
        row["test_elbo"] = -statistics.mean(evaluate(model, x_test)["loss"] for _ in range(10))
        row["test_log_px"] = estimate_log_likelihood(model, x_test, k=k).mean().item()
        row["test_gap"] = row["test_log_px"] - row["test_elbo"]
        with torch.no_grad():
            log_w = model.log_weights(x_gap, TRAIN_GAP_K)  # (k, B)
        row["train_gap"] = (torch.logsumexp(log_w, 0) - math.log(TRAIN_GAP_K)
                            - log_w.mean(0)).mean().item()
        if name == "plain VAE":
            with torch.no_grad():
                mu, logvar = model.encode(x_gap)
                kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)).mean().item()
                normal = lambda z: -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
                row["kl_term"] = kl
                row["prior_mismatch"] = aggregate_posterior_kl(mu, logvar, normal, 10).item()
        out[name] = row
        print(f"  seed {seed} {name}: " + ", ".join(f"{key} {value:.3f}"
                                                    for key, value in row.items()), flush=True)
    return out


def summary(runs: list[dict], keys) -> dict:
    """Mean and standard deviation over seeds of every number in every row."""
    table = {}
    for key in keys:
        rows = [run[key] for run in runs]
        table[key] = {field: {"mean": statistics.mean(r[field] for r in rows),
                              "std": statistics.stdev(r[field] for r in rows) if len(rows) > 1
                              else 0.0}
                      for field in rows[0]}
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--flow-steps", type=int, default=1500)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, mps, or auto (CUDA, then MPS, then CPU)")
    args = parser.parse_args(argv)
    device = get_device() if args.device == "auto" else torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    flows, vaes = [], []
    for seed in args.seeds:
        print(f"seed {seed}: flows on U1", flush=True)
        flows.append(flow_kls(seed, args.flow_steps, device))
        print(f"  KL(q_K || p): {flows[-1]}", flush=True)
        print(f"seed {seed}: VAEs on the digits", flush=True)
        vaes.append(vae_results(seed, args.epochs, args.k, device))
    flow_table = {key: {"mean": statistics.mean(run[key] for run in flows),
                        "values": [run[key] for run in flows]} for key in flows[0]}
    result = {"settings": vars(args) | {"out": str(args.out)}, "flow_kl": flow_table,
              "vae": summary(vaes, MODELS), "vae_runs": vaes}
    print(json.dumps({"flow_kl": flow_table, "vae": result["vae"]}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
