"""Semi-supervised VAE (M2, Kingma et al. 2014) against a classifier trained on the labels alone.

    python benchmarks/bench_ssvae.py digits                    # 50 labels, 5 label draws
    DATA_DIR=/path/to/mnist python benchmarks/bench_ssvae.py mnist --budget-cpu-min 60

digits: scikit-learn's 8x8 digits, 5 labels per class (50), the rest of the training split
unlabeled; test accuracy of q(y|x) for M2 and of the same classifier network trained with
cross-entropy on the 50 labels only, over 5 draws of the labels.

mnist: 10 labels per class (100) from the first 50,000 training images, the other 49,900
unlabeled, accuracy on the validation split (the last 10,000 training images); with the t10k
files in DATA_DIR, all 60,000 training images and the official test split instead. For each
label draw (--draws from --seed), the classifier-only baseline, then M2 on pixels. Training
stops when the process has used --budget-cpu-min minutes of CPU time (or --max-wall-min of
wall-clock time); the learning rate decays with a cosine over whichever budget is nearer
its end. --shift K moves each labeled image by up to K pixels at every step (M2 and the
baseline; the baseline without shifts is reported too). One JSON line per evaluation goes to
the log (and the whole run to --out), with the load average and the accuracy of the
generative classifier argmax_y ELBO(x, y), so a run on a shared machine can be judged.
Defaults: z = 2, one hidden layer of 256. The settings of the recorded run (RESULTS.md):

    DATA_DIR=/path/to/mnist python benchmarks/bench_ssvae.py mnist --z-dim 2 \
        --hidden 500 500 --classifier-hidden 500 --shift 2 --budget-cpu-min 15 --threads 1 \
        --eval-every 1000 --record

--record (mnist, plain or --stacked) stores each draw's figures in the file notebook 08 reads
(course_utils/bundled/ssvae_mnist_results.json); runs of other draws with the same settings
add to it, so draws can run in separate processes (--seed 2 --draws 1).

mnist --stacked: M1+M2 (the paper's section 3.1.2). M1, a VAE (z = 50, 500-500), trains once
on every training image without labels (--m1-epochs); M2 (GaussianM2: z = 50, hidden 500)
then trains on M1's standardised posterior means of its active dimensions, --m2-steps steps per
label draw (--draws, 100 labels each). CPU-minutes are reported for M1 and for each M2; the
classifier-only baseline (on pixels) uses the same labels.

mnist --all-labels: the same generative networks trained with all 50,000 labels, to measure
how well argmax_y ELBO(x, y) can classify at best with this architecture.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_utils import data, ssvae, train  # noqa: E402
from course_utils.device import get_device  # noqa: E402
from course_utils.vae import MLP  # noqa: E402


def cpu_minutes() -> float:
    """CPU time (user + system, all threads) this process has used, in minutes."""
    return time.process_time() / 60


def device_of(args) -> torch.device:
    """--device as a torch.device; "auto" picks CUDA, then MPS, then the CPU."""
    return get_device() if args.device == "auto" else torch.device(args.device)


def make_model(x_dim: int, args) -> ssvae.M2:
    return ssvae.M2(x_dim, num_classes=10, z_dim=args.z_dim, hidden_dims=tuple(args.hidden),
                    classifier_hidden_dims=tuple(args.classifier_hidden)).to(device_of(args))


def train_m2(model, x_l, y_l, x_u, args, *, num_steps=None, budget_cpu_min=None,
             max_wall_min=None, x_valid=None, y_valid=None, log=None, binarize=False,
             augment=None):
    """Adam on J^α with one unlabeled and one labeled batch per step; returns the eval records."""
    alpha = ssvae.classification_weight(len(x_l) + len(x_u), len(x_l), args.alpha)
    weight = 1.0 if args.labeled_weight == "batch" else len(x_l) / len(x_u)
    loss_fn = ssvae.semi_supervised_loss_fn(x_l, y_l, alpha, labeled_batch_size=args.batch_size,
                                            binarize=binarize, labeled_weight=weight,
                                            augment=augment)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    cpu0, wall0 = cpu_minutes(), time.time()
    records, step, epoch, sums = [], 0, 0, {}

    def progress() -> float:
        if num_steps is not None:
            return step / num_steps
        return (cpu_minutes() - cpu0) / budget_cpu_min

    def evaluate() -> None:
        model.eval()
        record = {"step": step, "epoch": round(step * args.batch_size / len(x_u), 2),
                  "cpu_min": round(cpu_minutes() - cpu0, 2),
                  "wall_min": round((time.time() - wall0) / 60, 2),
                  "load_avg_1min": round(os.getloadavg()[0], 2),
                  "lr": optimizer.param_groups[0]["lr"]}
        n = max(1, sums.pop("steps", 0))
        record.update({k: round(v / n, 3) for k, v in sums.items()})
        if x_valid is not None:
            record["valid_acc"] = ssvae.accuracy(model.classify, x_valid, y_valid)
            # the generative classifier argmax_y ELBO(x, y), on 1000 images
            record["valid_acc_argmax_elbo_1k"] = ssvae.accuracy(
                model.elbo_all_classes, x_valid[:1000], y_valid[:1000])
            with torch.no_grad():
                q = model.classify(x_valid[:1000]).softmax(-1)
            record["valid_entropy_q"] = float(-(q * q.clamp_min(1e-30).log()).sum(1).mean())
        model.train()
        records.append(record)
        if log:
            print(json.dumps(record), file=log, flush=True)

    done = False
    while not done:
        epoch += 1
        order = torch.randperm(len(x_u), device=x_u.device)
        for start in range(0, len(x_u) - args.batch_size + 1, args.batch_size):
            frac = min(1.0, progress())
            if max_wall_min is not None:
                frac = max(frac, min(1.0, (time.time() - wall0) / 60 / max_wall_min))
            for group in optimizer.param_groups:  # cosine decay to 5% over the budget
                group["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
            out = loss_fn(model, x_u[order[start:start + args.batch_size]])
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            step += 1
            for k, v in {**out, "steps": 1}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            if step % args.eval_every == 0:
                evaluate()
                sums = {}
            wall_over = max_wall_min is not None and (time.time() - wall0) / 60 >= max_wall_min
            if progress() >= 1.0 or wall_over:
                done = True
                break
    if not records or records[-1]["step"] != step:
        evaluate()
    return records


def baseline_classifier(x_dim: int, x_l, y_l, args, binarize=False, augment=None):
    """The same classifier network as M2's q(y|x), trained on the labels alone."""
    classifier = MLP(x_dim, tuple(args.classifier_hidden), 10).to(x_l.device)
    ssvae.fit_classifier(classifier, x_l, y_l, num_steps=args.baseline_steps,
                         batch_size=min(args.batch_size, len(x_l)), lr=args.lr,
                         weight_decay=args.baseline_weight_decay, binarize=binarize,
                         augment=augment)
    return classifier.eval()


def summarise_draws(rows: list[dict], key: str, name: str) -> dict:
    """Mean and sd over label draws of the baseline's and the model's accuracy, printed."""
    summary = {k: (statistics.mean(r[k] for r in rows),
                   statistics.stdev(r[k] for r in rows) if len(rows) > 1 else 0.0)
               for k in ("baseline_acc", key)}
    print(f"mean ± sd over {len(rows)} draws: classifier only {summary['baseline_acc'][0]:.3f} "
          f"± {summary['baseline_acc'][1]:.3f}   {name} {summary[key][0]:.3f} "
          f"± {summary[key][1]:.3f}", flush=True)
    return summary


# --------------------------------------------------------------------------- digits


def run_digits(args) -> dict:
    x, y = data.load_digits("train")
    x_test, y_test = data.load_digits("test")
    rows = []
    tic = time.time()
    for draw in range(args.draws):
        torch.manual_seed(draw)
        index = ssvae.labeled_subset(y, args.labels_per_class,
                                     torch.Generator().manual_seed(draw))
        unlabeled = torch.ones(len(y), dtype=torch.bool)
        unlabeled[index] = False
        device = device_of(args)
        x_l, y_l, x_u = x[index].to(device), y[index].to(device), x[unlabeled].to(device)
        x_test, y_test = x_test.to(device), y_test.to(device)
        t0 = time.process_time()
        base = baseline_classifier(x.shape[1], x_l, y_l, args)
        base_acc = ssvae.accuracy(base, x_test, y_test)
        t1 = time.process_time()
        model = make_model(x.shape[1], args)
        steps = args.epochs * (len(x_u) // args.batch_size)
        train_m2(model, x_l, y_l, x_u, args, num_steps=steps)
        m2_acc = ssvae.accuracy(model.eval().classify, x_test, y_test)
        t2 = time.process_time()
        rows.append({"draw": draw, "baseline_acc": base_acc, "m2_acc": m2_acc,
                     "baseline_cpu_s": round(t1 - t0, 1), "m2_cpu_s": round(t2 - t1, 1)})
        print(f"draw {draw}: classifier only {base_acc:.3f}   M2 {m2_acc:.3f}   "
              f"(cpu {t1 - t0:.0f} s + {t2 - t1:.0f} s)", flush=True)
    summary = summarise_draws(rows, "m2_acc", "M2")
    print(f"(wall {time.time() - tic:.0f} s)")
    return {"rows": rows, "summary": summary, "wall_s": round(time.time() - tic, 1)}


# --------------------------------------------------------------------------- mnist


def labeled_augment(args):
    """--shift: the labeled batches' random shifts (None for 0), for M2 and the baseline."""
    if not args.shift:
        return None
    return lambda x: data.random_shift(x, (28, 28), args.shift)


def run_mnist(args) -> dict:
    """Per label draw: the classifier-only baseline, then M2 on pixels for --budget-cpu-min."""
    protocol = data.mnist_protocol()  # the official test split when the t10k files are there
    print(protocol.description, flush=True)
    device = device_of(args)
    x, y = (t.to(device) for t in data.load_mnist(protocol.train_split))
    x_valid, y_valid = data.load_mnist(protocol.eval_split)
    x_valid = data.dynamic_binarize(x_valid, torch.Generator().manual_seed(1)).to(device)
    y_valid = y_valid.to(device)
    log = open(args.log, "a") if args.log else sys.stdout
    augment, rows = labeled_augment(args), []
    for draw in range(args.seed, args.seed + args.draws):
        torch.manual_seed(draw)
        index = ssvae.labeled_subset(y, args.labels_per_class,
                                     torch.Generator().manual_seed(draw))
        unlabeled = torch.ones(len(y), dtype=torch.bool, device=y.device)
        unlabeled[index] = False
        x_l, y_l, x_u = x[index], y[index], x[unlabeled]
        print(json.dumps({"config": vars(args), "draw": draw, "threads": torch.get_num_threads(),
                          "n_labeled": len(x_l), "n_unlabeled": len(x_u)}), file=log, flush=True)
        base_acc = ssvae.accuracy(baseline_classifier(x.shape[1], x_l, y_l, args, binarize=True,
                                                      augment=augment), x_valid, y_valid)
        row = {"draw": draw, "baseline_acc": base_acc}
        if augment is not None:  # the same classifier without the shifts, for reference
            row["baseline_unshifted_acc"] = ssvae.accuracy(
                baseline_classifier(x.shape[1], x_l, y_l, args, binarize=True), x_valid, y_valid)
        print(json.dumps({"draw": draw, **row}), file=log, flush=True)
        torch.manual_seed(draw)  # M2's initial weights do not depend on the baselines' steps
        model = make_model(x.shape[1], args)
        records = train_m2(model, x_l, y_l, x_u, args, budget_cpu_min=args.budget_cpu_min,
                           max_wall_min=args.max_wall_min, x_valid=x_valid, y_valid=y_valid,
                           log=log, binarize=True, augment=augment)
        final = records[-1]
        row.update({"m2_acc": final["valid_acc"], "best_valid_acc": max(
            r["valid_acc"] for r in records), "cpu_min": final["cpu_min"],
            "wall_min": final["wall_min"], "steps": final["step"], "records": records})
        rows.append(row)
        print(f"draw {draw}: classifier only {base_acc:.3f}   M2 {final['valid_acc']:.3f} "
              f"(best {row['best_valid_acc']:.3f}; {final['cpu_min']:.1f} CPU-min, "
              f"{final['step']} steps)", flush=True)
    summary = summarise_draws(rows, "m2_acc", "M2")
    return {"rows": rows, "summary": summary, "split": protocol.description}


def run_mnist_stacked(args) -> dict:
    """M1 once without labels, then per label draw M2 on its features, against the baseline."""
    protocol = data.mnist_protocol()
    print(protocol.description, flush=True)
    device = device_of(args)
    x, y = (t.to(device) for t in data.load_mnist(protocol.train_split))
    x_valid, y_valid = (t.to(device) for t in data.load_mnist(protocol.eval_split))
    cpu0 = cpu_minutes()
    m1 = ssvae.fit_m1(x, z_dim=args.m1_z_dim, hidden_dims=tuple(args.m1_hidden),
                      num_epochs=args.m1_epochs, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed)
    features = ssvae.LatentFeatures(m1, x)
    m1_cpu_min = cpu_minutes() - cpu0
    f, f_valid = features(x), features(x_valid)
    print(json.dumps({"m1_cpu_min": round(m1_cpu_min, 2),
                      "m1_active_dims": features.num_features}), flush=True)
    rows = []
    for draw in range(args.draws):
        torch.manual_seed(draw)
        index = ssvae.labeled_subset(y, args.labels_per_class,
                                     torch.Generator().manual_seed(draw))
        unlabeled = torch.ones(len(y), dtype=torch.bool, device=y.device)
        unlabeled[index] = False
        base = baseline_classifier(x.shape[1], x[index], y[index], args, binarize=True)
        base_acc = ssvae.accuracy(base, data.dynamic_binarize(
            x_valid, torch.Generator(device=x_valid.device).manual_seed(1)), y_valid)
        cpu1 = cpu_minutes()
        m2 = ssvae.GaussianM2(features.num_features, 10, args.z_dim, tuple(args.hidden),
                              classifier_hidden_dims=tuple(args.classifier_hidden)).to(device)
        records = train_m2(m2, f[index], y[index], f[unlabeled], args, num_steps=args.m2_steps,
                           x_valid=f_valid, y_valid=y_valid)
        m2_cpu_min = cpu_minutes() - cpu1
        rows.append({"draw": draw, "baseline_acc": base_acc,
                     "m1m2_acc": records[-1]["valid_acc"], "m1_cpu_min": round(m1_cpu_min, 2),
                     "m2_cpu_min": round(m2_cpu_min, 2),
                     "total_cpu_min": round(m1_cpu_min + m2_cpu_min, 2), "records": records})
        print(f"draw {draw}: classifier only {base_acc:.3f}   M1+M2 {rows[-1]['m1m2_acc']:.3f}   "
              f"(cpu M1 {m1_cpu_min:.1f} + M2 {m2_cpu_min:.1f} min)", flush=True)
    summary = summarise_draws(rows, "m1m2_acc", "M1+M2")
    return {"rows": rows, "summary": summary, "split": protocol.description,
            "m1_active_dims": features.num_features}


RECORDED_SETTINGS = ("labels_per_class", "z_dim", "hidden", "classifier_hidden", "alpha",
                     "lr", "batch_size", "shift", "budget_cpu_min", "m2_steps", "m1_epochs",
                     "m1_z_dim", "m1_hidden", "threads", "device")


def record(result: dict, args, command: str, path: Path) -> None:
    """Store a run's per-draw figures under its model's name in the results file the
    notebooks read (``ssvae.mnist_results``); other models' entries are kept."""
    stacked = bool(args.stacked)
    name, key = ("M1+M2", "m1m2_acc") if stacked else ("M2", "m2_acc")
    m1_cpu_min = result["rows"][0]["m1_cpu_min"] if stacked else 0.0
    draws = []
    for row in result["rows"]:
        entry = {"draw": row["draw"], "accuracy": row[key], "baseline_acc": row["baseline_acc"],
                 "cpu_min": row["total_cpu_min"] if stacked else row["cpu_min"],
                 # the generative classifier argmax_y ELBO(x, y) at the end, 1,000 images
                 "generative_acc_1k": row["records"][-1]["valid_acc_argmax_elbo_1k"],
                 "curve": [[round(m1_cpu_min + r["cpu_min"], 2), r["valid_acc"]]
                           for r in row["records"]]}
        if "baseline_unshifted_acc" in row:
            entry["baseline_unshifted_acc"] = row["baseline_unshifted_acc"]
        draws.append(entry)
    settings = {k: getattr(args, k) for k in RECORDED_SETTINGS
                if not (stacked and k == "budget_cpu_min")
                and not (not stacked and k.startswith(("m1_", "m2_")))}
    results = json.loads(path.read_text()) if path.exists() else {}
    earlier = results.get(name, {})
    commands = [command]
    if earlier.get("settings") == settings and earlier.get("split") == result["split"]:
        # the same model and split: keep the label draws this run did not make (runs of
        # separate draws in parallel processes, e.g. --seed 2 --draws 1, add up)
        made = {d["draw"] for d in draws}
        draws = sorted([d for d in earlier["draws"] if d["draw"] not in made] + draws,
                       key=lambda d: d["draw"])
        commands = [c for c in earlier.get("commands", []) if c != command] + commands
    results[name] = {"commands": commands, "split": result["split"], "settings": settings,
                     "date": time.strftime("%Y-%m-%d"), "draws": draws,
                     **({"m1_cpu_min": m1_cpu_min, "m1_active_dims": result["m1_active_dims"]}
                        if stacked else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"recorded {name} in {path}", flush=True)


CEILING_EVAL_IMAGES = 2000


def run_mnist_all_labels(args) -> dict:
    """The ceiling of the generative classifier: M2's p(x|y,z) and q(z|x,y) trained with all
    50,000 labels (no classifier), accuracy of argmax_y ELBO(x, y) on the first 2,000
    validation images."""
    x, y = data.load_mnist("train")
    x_valid, y_valid = (v[:CEILING_EVAL_IMAGES] for v in data.load_mnist("valid"))
    x_valid = data.dynamic_binarize(x_valid, torch.Generator().manual_seed(1))
    x, y, x_valid, y_valid = (t.to(device_of(args)) for t in (x, y, x_valid, y_valid))
    torch.manual_seed(args.seed)
    model = make_model(x.shape[1], args)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    cpu0, records = cpu_minutes(), []
    for epoch in range(1, args.epochs + 1):  # one fit per epoch, to measure after each
        train.fit(model, (x, y), num_epochs=1, batch_size=args.batch_size, optimizer=optimizer,
                  loss_fn=lambda m, xb, yb: {"loss": -m.elbo(xb, yb).mean()},
                  transform=lambda batch: (data.dynamic_binarize(batch[0]), batch[1]),
                  progress=False)
        records.append({"epoch": epoch, "cpu_min": round(cpu_minutes() - cpu0, 2),
                        "n_valid": len(y_valid),
                        "valid_acc_argmax_elbo": ssvae.accuracy(
                            model.elbo_all_classes, x_valid, y_valid, batch_size=500)})
        print(json.dumps(records[-1]), flush=True)
    return {"records": records}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["digits", "mnist"])
    parser.add_argument("--labels-per-class", type=int, default=None,
                        help="5 for digits, 10 for mnist by default")
    parser.add_argument("--draws", type=int, default=None,
                        help="label draws (digits: 5, mnist: 3); plain mnist starts at draw --seed")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the unlabeled digits (default 60), or over MNIST "
                             "with --all-labels (default 10)")
    parser.add_argument("--all-labels", action="store_true",
                        help="mnist: train the generative part with every label and report "
                             "the accuracy of argmax_y ELBO(x, y), the ceiling of M2's "
                             "generative classifier")
    parser.add_argument("--stacked", action="store_true",
                        help="mnist: M1+M2 (M2 on the features of a VAE trained without labels)")
    parser.add_argument("--m1-epochs", type=int, default=50, help="--stacked: M1's epochs")
    parser.add_argument("--m1-z-dim", type=int, default=50, help="--stacked: M1's latents")
    parser.add_argument("--m1-hidden", type=int, nargs="+", default=[500, 500])
    parser.add_argument("--m2-steps", type=int, default=20000, help="--stacked: M2's steps")
    parser.add_argument("--z-dim", type=int, default=None)
    parser.add_argument("--hidden", type=int, nargs="+", default=None,
                        help="hidden layer sizes of the encoder and the decoder")
    parser.add_argument("--classifier-hidden", type=int, nargs="+", default=None)
    parser.add_argument("--alpha", type=float, default=ssvae.PAPER_ALPHA,
                        help="paper's α/N: the CE weight is alpha * N / N_labeled")
    parser.add_argument("--labeled-weight", choices=["batch", "paper"], default="batch",
                        help="weight of the labeled bound: 1 (batch means alike) or "
                             "N_labeled/N_unlabeled (the paper's sums)")
    parser.add_argument("--shift", type=int, default=0,
                        help="mnist: shift each labeled image by up to this many pixels at "
                             "every step (M2 and the baseline alike)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--baseline-steps", type=int, default=1000)
    parser.add_argument("--baseline-weight-decay", type=float, default=1e-4)
    parser.add_argument("--budget-cpu-min", type=float, default=60.0, help="mnist CPU budget")
    parser.add_argument("--max-wall-min", type=float, default=None, help="mnist wall budget")
    parser.add_argument("--eval-every", type=int, default=250, help="steps between evaluations")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=None, help="append JSON lines here (mnist)")
    parser.add_argument("--out", default=None, help="write the result JSON here")
    parser.add_argument("--record", nargs="?", const=str(ssvae.MNIST_RESULTS_FILE), default=None,
                        help="mnist (plain or --stacked): store the per-draw figures in this "
                             "file (default: the one notebook 08 reads)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, mps, or auto (CUDA, then MPS, then CPU)")
    args = parser.parse_args(argv)
    mnist = args.dataset == "mnist"
    defaults = {"labels_per_class": 10 if mnist else 5, "z_dim": 2 if mnist else 8,
                "hidden": [256] if mnist else [128], "batch_size": 100 if mnist else 50,
                "classifier_hidden": [256] if mnist else [128],
                **({"z_dim": 50, "hidden": [500], "classifier_hidden": [500]}
                   if args.stacked else {}),
                "epochs": 10 if mnist else 60, "draws": 3 if mnist else 5}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    if (args.all_labels or args.stacked) and not mnist:
        parser.error("--all-labels and --stacked need the mnist dataset")
    if args.all_labels and args.stacked:
        parser.error("choose one of --all-labels and --stacked")
    if args.record and (not mnist or args.all_labels):
        parser.error("--record stores mnist runs of M2 or M1+M2 (not digits, not --all-labels)")
    if not mnist:
        run = run_digits
    else:
        run = (run_mnist_all_labels if args.all_labels else
               run_mnist_stacked if args.stacked else run_mnist)
    result = run(args)
    result["config"] = vars(args)
    if args.record:
        command = " ".join(["python benchmarks/bench_ssvae.py",
                            *(sys.argv[1:] if argv is None else argv)])
        record(result, args, command, Path(args.record))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
