"""course_utils.gmm vs scikit-learn's GaussianMixture: same data, same start, same iterations.

Both models start from the same k-means++ parameters (weights, means, covariances) and run
the same number of EM iterations (tol=0), so they follow the same path; we report the final
log-likelihood per sample of each, their difference, the largest difference in the means,
and the wall-clock time of the fit (best of --repeats, the two libraries interleaved).

    python benchmarks/bench_gmm.py            # digits (64-D, K=10) and 100k x 16-D, K=16
    python benchmarks/bench_gmm.py --quick    # a smoke run (seconds)
    python benchmarks/bench_gmm.py --threads 1   # both libraries on one thread

On a busy machine, compare with --threads 1: torch's thread pool suffers more from other
processes than OpenBLAS does, which would make the comparison unfair to course_utils.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnMixture
from threadpoolctl import threadpool_limits

from course_utils.data import load_digits
from course_utils.device import get_device
from course_utils.gmm import GaussianMixture


def synthetic(n: int, dim: int, num_components: int, seed: int = 0) -> torch.Tensor:
    """n points from a random mixture with correlated, overlapping components: (n, dim)."""
    g = torch.Generator().manual_seed(seed)
    means = 4 * torch.randn(num_components, dim, generator=g, dtype=torch.float64)
    a = torch.randn(num_components, dim, dim, generator=g, dtype=torch.float64)
    factors = torch.linalg.cholesky(a @ a.mT / dim + 0.1 * torch.eye(dim, dtype=torch.float64))
    z = torch.randint(num_components, (n,), generator=g)
    eps = torch.randn(n, dim, 1, generator=g, dtype=torch.float64)
    return means[z] + (factors[z] @ eps).squeeze(-1)


def fit_ours(x, start, iters, covariance_type):
    weights, means, covs = start
    model = GaussianMixture(len(weights), covariance_type, max_iter=iters, tol=0.0,
                            weights_init=weights, means_init=means, covariances_init=covs)
    return model.fit(x)


def fit_sklearn(x_np, start, iters, covariance_type):
    weights, means, covs = (p.numpy() for p in start)
    if covariance_type == "full":
        precisions = np.linalg.inv(covs)
        precisions = 0.5 * (precisions + precisions.transpose(0, 2, 1))  # sklearn checks it
    else:
        precisions = 1.0 / covs
    model = SklearnMixture(len(weights), covariance_type=covariance_type, max_iter=iters, tol=0.0,
                           weights_init=weights, means_init=means, precisions_init=precisions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x_np)


def timed(fn):
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before reading the clock
    return time.perf_counter() - wall, time.process_time() - cpu, out


def compare(name, x, num_components, iters, repeats, covariance_type="full", device="cpu"):
    """Fit both from one k-means++ start (ours on ``device``); return the table's figures."""
    start_model = GaussianMixture(num_components, covariance_type, max_iter=0, seed=0).fit(x)
    start_cpu = (start_model.weights, start_model.means, start_model.covariances)
    x_np = x.numpy()
    x, start = x.to(device), tuple(p.to(device) for p in start_cpu)
    ours_times, sk_times = [], []
    for _ in range(repeats):  # interleaved so both see the same machine load
        *t, ours = timed(lambda: fit_ours(x, start, iters, covariance_type))
        ours_times.append(t)
        *t, theirs = timed(lambda: fit_sklearn(x_np, start_cpu, iters, covariance_type))
        sk_times.append(t)
    best_ours, best_sk = min(ours_times), min(sk_times)  # by wall time
    ll_ours, ll_sk = ours.score(x), theirs.score(x_np)
    return {
        "problem": name, "N": x.shape[0], "D": x.shape[1], "K": num_components,
        "cov": covariance_type, "iters": iters, "ll_ours": ll_ours, "ll_sklearn": ll_sk,
        "ll_diff": abs(ll_ours - ll_sk),
        "mean_diff": float(np.abs(ours.means.cpu().numpy() - theirs.means_).max()),
        "t_ours": best_ours[0], "t_sklearn": best_sk[0], "ratio": best_sk[0] / best_ours[0],
        "cpu_ours": min(t[1] for t in ours_times), "cpu_sklearn": min(t[1] for t in sk_times),
        "device": str(x.device),
    }


def markdown(rows, command):
    lines = [
        f"Command: `{command}` (float64, ours on {rows[0]['device']}; torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads, scikit-learn "
        f"{__import__('sklearn').__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores). Same k-means++ start and the same number of EM iterations "
        "(tol=0) for both; times are the best of the repeats, the two fits interleaved; CPU is "
        "the process time (all threads), a steadier measure on a shared machine.",
        "",
        "| problem | N × D, K | iterations | log-lik/sample ours | sklearn | difference "
        "| max Δ mean | wall ours | sklearn | speed-up | CPU ours | sklearn | CPU ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['problem']} ({r['cov']}) | {r['N']} × {r['D']}, {r['K']} | {r['iters']} "
            f"| {r['ll_ours']:.6f} | {r['ll_sklearn']:.6f} | {r['ll_diff']:.1e} "
            f"| {r['mean_diff']:.1e} | {r['t_ours']:.2f} s | {r['t_sklearn']:.2f} s "
            f"| {r['ratio']:.1f}× | {r['cpu_ours']:.2f} s | {r['cpu_sklearn']:.2f} s "
            f"| {r['cpu_sklearn'] / r['cpu_ours']:.1f}× |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--digits-iters", type=int, default=100)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for torch and for scikit-learn's BLAS (default: all cores)")
    parser.add_argument("--device", default="cpu",
                        help="where ours runs: cpu, cuda (float64, so not mps), or auto")
    args = parser.parse_args(argv)
    device = get_device() if args.device == "auto" else torch.device(args.device)
    if device.type == "mps":
        parser.error("the comparison is in float64, which MPS does not support; use cpu or cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    if args.quick:
        args.repeats, args.digits_iters, args.n, args.iters = 1, 10, 5_000, 5
    digits = load_digits("all")[0].double()
    rows = [compare("digits", digits, 10, args.digits_iters, args.repeats, device=device)]
    print(rows[-1], flush=True)
    x = synthetic(args.n, args.dim, args.k)
    rows.append(compare("synthetic", x, args.k, args.iters, args.repeats, device=device))
    print(rows[-1], flush=True)
    command = "python benchmarks/bench_gmm.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print()
    print(markdown(rows, command.strip()))
    worst = max(r["ll_diff"] for r in rows)
    print(f"\nlargest log-likelihood difference {worst:.2e} nats/sample "
          f"({'OK' if worst <= 1e-3 else 'ABOVE'} the 1e-3 target); speed-ups "
          + ", ".join(f"{r['ratio']:.1f}x" for r in rows))


if __name__ == "__main__":
    main()
