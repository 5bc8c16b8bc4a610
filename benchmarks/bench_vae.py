"""VAE training through ``course_utils.train.fit`` against a plain tutorial loop, side by side.

    DATA_DIR=/path/to/mnist python benchmarks/bench_vae.py            # MNIST, 10 epochs
    python benchmarks/bench_vae.py                                      # digits if no MNIST
    python benchmarks/bench_vae.py --threads 1 --epochs 10 --out benchmarks/_runs/vae.json

Both train the 784-400-20 VAE of pytorch/examples ``vae/main.py`` (Bernoulli decoder on the
grey-level pixels, Adam 1e-3, batch 128, same initial weights):

- plain: the tutorial loop, a ``DataLoader`` over a ``TensorDataset`` (one ``__getitem__``
  per image, then collation), the tutorial's model class and summed loss, ``loss.item()`` per
  batch, a test pass after every epoch.
- fit: ``course_utils.vae.VAE`` trained by ``course_utils.train.fit`` (in-memory batches,
  a NaN check per batch, a history of every loss part, validation after every epoch).

The two are interleaved epoch by epoch (fit resumes from its own checkpoint, which it
writes every epoch anyway), so a change in the machine's load hits both alike. Wall-clock and
CPU seconds are reported per epoch (CPU time is robust to other processes on a shared
machine), and the validation loss (-ELBO in nats per image, one posterior sample) after each
epoch. MNIST: train on the first 50,000 training images, validate on the last 10,000.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_utils import data  # noqa: E402
from course_utils.train import evaluate, fit  # noqa: E402
from course_utils.vae import VAE  # noqa: E402


class TutorialVAE(nn.Module):
    """The model of pytorch/examples vae/main.py, with the input size as a parameter."""

    def __init__(self, x_dim=784, hidden=400, z_dim=20):
        super().__init__()
        self.x_dim = x_dim
        self.fc1 = nn.Linear(x_dim, hidden)
        self.fc21 = nn.Linear(hidden, z_dim)
        self.fc22 = nn.Linear(hidden, z_dim)
        self.fc3 = nn.Linear(z_dim, hidden)
        self.fc4 = nn.Linear(hidden, x_dim)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.x_dim))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def tutorial_loss(recon_x, x, mu, logvar):
    """The tutorial's loss, summed over the batch: BCE on probabilities + KL (appendix B)."""
    bce = F.binary_cross_entropy(recon_x, x.view(-1, recon_x.shape[-1]), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def copy_weights(tutorial: TutorialVAE, model: VAE) -> None:
    """Give the course VAE exactly the tutorial model's initial weights."""
    enc, dec = model.encoder.net, model.decoder.net
    with torch.no_grad():
        enc[0].weight.copy_(tutorial.fc1.weight)
        enc[0].bias.copy_(tutorial.fc1.bias)
        enc[2].weight.copy_(torch.cat([tutorial.fc21.weight, tutorial.fc22.weight]))
        enc[2].bias.copy_(torch.cat([tutorial.fc21.bias, tutorial.fc22.bias]))
        dec[0].weight.copy_(tutorial.fc3.weight)
        dec[0].bias.copy_(tutorial.fc3.bias)
        dec[2].weight.copy_(tutorial.fc4.weight)
        dec[2].bias.copy_(tutorial.fc4.bias)


def plain_epoch(model, optimizer, train_loader, valid_loader, device) -> tuple[float, float]:
    """One tutorial epoch (train, then test); returns (train, valid) loss per image."""
    model.train()
    train_loss = 0.0
    for (x,) in train_loader:
        x = x.to(device)
        optimizer.zero_grad()
        recon, mu, logvar = model(x)
        loss = tutorial_loss(recon, x, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    return train_loss / len(train_loader.dataset), plain_valid(model, valid_loader, device)


def plain_valid(model, valid_loader, device) -> float:
    """The tutorial's test pass: loss per image."""
    model.eval()
    valid_loss = 0.0
    with torch.no_grad():
        for (x,) in valid_loader:
            x = x.to(device)
            recon, mu, logvar = model(x)
            valid_loss += tutorial_loss(recon, x, mu, logvar).item()
    return valid_loss / len(valid_loader.dataset)


def load_data(data_dir: str | None):
    """(x_train, x_valid, name): MNIST from data_dir if its files are there, else the digits."""
    if data_dir:
        try:
            protocol = data.mnist_protocol(data_dir)
            x_train, _ = data.load_mnist(protocol.train_split, data_dir=data_dir)
            x_valid, _ = data.load_mnist(protocol.eval_split, data_dir=data_dir)
            print(protocol.description, flush=True)
            return x_train, x_valid, "mnist"
        except Exception as err:  # noqa: BLE001 - fall back, but say why
            print(f"MNIST not loaded from {data_dir} ({err}); using the digits", flush=True)
    x_train, _ = data.load_digits("train")
    x_valid, _ = data.load_digits("test")
    return x_train, x_valid, "digits"


def summary(seconds: list[float]) -> dict:
    return {"median": statistics.median(seconds), "mean": statistics.fmean(seconds),
            "min": min(seconds), "all": [round(s, 3) for s in seconds]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--z-dim", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: cpu)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or "cpu")
    x_train, x_valid, name = load_data(os.environ.get("DATA_DIR"))
    x_dim = x_train.shape[1]
    print(f"{name}: train {tuple(x_train.shape)}, valid {tuple(x_valid.shape)}; "
          f"{x_dim}-{args.hidden}-{args.z_dim}, batch {args.batch_size}, Adam {args.lr}, "
          f"{args.epochs} epochs, threads {torch.get_num_threads()}, device {device}",
          flush=True)

    torch.manual_seed(args.seed)
    tutorial = TutorialVAE(x_dim, args.hidden, args.z_dim).to(device)
    model = VAE(x_dim, z_dim=args.z_dim, hidden_dims=(args.hidden,)).to(device)
    copy_weights(tutorial, model)
    tutorial_opt = torch.optim.Adam(tutorial.parameters(), lr=args.lr)
    train_loader = DataLoader(TensorDataset(x_train), batch_size=args.batch_size, shuffle=True)
    valid_loader = DataLoader(TensorDataset(x_valid), batch_size=args.batch_size)

    results = {"dataset": name, "settings": vars(args) | {"threads": torch.get_num_threads()},
               "load_avg_start": os.getloadavg()}
    plain = {"wall": [], "cpu": [], "train": [], "valid": []}
    course = {"wall": [], "cpu": [], "train": [], "valid": []}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "fit.pt"
        plain_rng = torch.Generator().manual_seed(args.seed + 1).get_state()
        for epoch in range(args.epochs):
            torch.set_rng_state(plain_rng)  # the tutorial has its own random stream
            wall, cpu = time.perf_counter(), time.process_time()
            train_loss, valid_loss = plain_epoch(tutorial, tutorial_opt, train_loader,
                                                 valid_loader, device)
            plain_rng = torch.get_rng_state()
            plain["wall"].append(time.perf_counter() - wall)
            plain["cpu"].append(time.process_time() - cpu)
            plain["train"].append(train_loss)
            plain["valid"].append(valid_loss)

            wall, cpu = time.perf_counter(), time.process_time()
            history = fit(model, x_train, num_epochs=epoch + 1, batch_size=args.batch_size,
                          lr=args.lr, x_valid=x_valid, eval_batch_size=args.batch_size,
                          checkpoint=ckpt, resume=True, progress=False, seed=args.seed)
            course["wall"].append(time.perf_counter() - wall)
            course["cpu"].append(time.process_time() - cpu)
            course["train"].append(history.train["loss"][-1])
            course["valid"].append(history.valid["loss"][-1])
            print(f"epoch {epoch + 1}: plain {plain['wall'][-1]:.2f}s wall "
                  f"{plain['cpu'][-1]:.2f}s cpu, valid {valid_loss:.2f} | fit "
                  f"{course['wall'][-1]:.2f}s wall {course['cpu'][-1]:.2f}s cpu, valid "
                  f"{course['valid'][-1]:.2f} | load {os.getloadavg()[0]:.1f}", flush=True)
    # the final validation losses again with many posterior samples, to remove their noise
    torch.manual_seed(0)
    course_final = statistics.fmean(
        evaluate(model, x_valid, batch_size=1000)["loss"] for _ in range(5))
    plain_final = statistics.fmean(
        plain_valid(tutorial, valid_loader, device) for _ in range(5))
    results |= {"plain": plain, "fit": course, "load_avg_end": os.getloadavg(),
                "plain_seconds": summary(plain["wall"]), "fit_seconds": summary(course["wall"]),
                "plain_cpu_seconds": summary(plain["cpu"]),
                "fit_cpu_seconds": summary(course["cpu"]),
                "plain_valid_final_5_samples": plain_final,
                "fit_valid_final_5_samples": course_final}
    print(json.dumps({k: v for k, v in results.items() if k not in ("plain", "fit")}, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
