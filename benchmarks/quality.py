"""Sample quality of ganlab's command line against a plain DCGAN loop, at equal wall-clock and equal steps.

Both are trained on the same machine, one after the other (never together, so that neither slows the
other), and 2,000 samples of each are judged by an independent MNIST classifier: a deeper CNN trained here,
with its own architecture and seed, that shares nothing with ganlab's metric classifier. Printed for each:
the steps trained, the share of samples the judge classifies with confidence above 0.9, the smallest and
largest share of a predicted digit, and the Fréchet distance on its features to real digits, as a ratio to
the distance between two halves of the real digits. ganlab's samples are judged twice: as ``ganlab sample``
writes them (plain G(z), the default) and with ``--refine-steps 10`` (each z first refined by a few gradient
steps on the discriminator, ``ganlab.train.refine_latents``).

Budgets, in one run: equal wall-clock (``--minutes``, default 1, 3 and 10: ganlab trains the first budget,
then resumes up to each next one, and the plain loop's weights are copied as it passes each mark, so the
clock costs the largest budget once per side) and equal steps (``--steps``, default the command line's
4,000: ``ganlab train dcgan`` with no budget flag, and the plain loop for as many generator updates).

The plain loop follows pytorch/examples' dcgan/main.py (batch-norm D, BCE on logits, Adam(0.5, 0.999),
batch 64), with the same DCGAN networks at 28 x 28 as ganlab.

``--judge-epochs`` takes one value or several (e.g. ``4 20``): one judge is trained per value, and every
row is printed once per judge. The scores depend on the judge: judges trained longer read more samples
confidently, real digits and generated ones alike, and put the generated ones further from the real-halves
floor in Fréchet distance, so the confident share and the Fréchet ratio move in opposite directions as a
judge grows surer (measured in ``ganlab/recipes.py``, beside the recipe).

``--conditional`` adds ``ganlab train cdcgan`` at ``--steps``: for each digit K, the share of
``sample --label K`` the judge reads as K, and their spread on its features (the mean distance between two
samples) as a ratio to that of real digits K, for the EMA generator and the raw one (``--no-ema``).

    GANLAB_DATA=../shared/data python benchmarks/quality.py                # about an hour on one CPU core
    GANLAB_DATA=../shared/data python benchmarks/quality.py --minutes 0.1 0.2 --steps 20 --n 200 --judge-epochs 1 2
"""
from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import ganlab as gl


class Judge(nn.Module):
    """A VGG-style CNN (4 convolutions with batch norm, dropout): unlike ganlab's LeNet-style classifier."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(*block(1, 32), *block(32, 32), nn.MaxPool2d(2),     # (B, 32, 14, 14)
                                  *block(32, 64), *block(64, 64), nn.MaxPool2d(2),    # (B, 64, 7, 7)
                                  nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(256, 10))

    def forward(self, x):
        return self.head(self.body(x))


def train_judge(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int = 1234) -> Judge:
    """Train on images in [0, 1] with random shifts of up to 2 pixels."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    judge = Judge()
    opt = torch.optim.Adam(judge.parameters(), lr=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=g)
        for i in range(0, len(images), 128):
            idx = perm[i:i + 128]
            dy, dx = torch.randint(-2, 3, (2,), generator=g).tolist()
            x = torch.roll(images[idx], shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(judge(x), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return judge.eval()


@torch.no_grad()
def judge_outputs(judge: Judge, images: torch.Tensor):
    feats = torch.cat([judge.body(images[i:i + 500]) for i in range(0, len(images), 500)])
    probs = F.softmax(judge.head(feats), dim=1)
    return feats.double().numpy(), probs.numpy()


def fd(f1: np.ndarray, f2: np.ndarray) -> float:
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    return gl.metrics.frechet_distance(mu1, s1, mu2, s2)


def spread(features: np.ndarray) -> float:
    """The mean Euclidean distance between two of the feature vectors (0 for a generator ignoring z)."""
    return float(torch.pdist(torch.as_tensor(features)).mean())


class Scorers(list):
    """Several :class:`Scorer` (one per judge): :meth:`row` prints a row for each."""

    def row(self, name: str, samples01: np.ndarray | torch.Tensor, steps: str = "") -> None:
        for scorer in self:
            scorer.row(name, samples01, steps)


class Scorer:
    """The judge, and the real digits it compares samples with; ``tag`` names the judge in each row."""

    def __init__(self, judge: Judge, real01: torch.Tensor, labels: torch.Tensor, n: int, tag: str = "") -> None:
        self.judge, self.real, self.labels, self.tag = judge, real01, labels, tag
        perm = torch.randperm(len(real01), generator=torch.Generator().manual_seed(0))
        self.half = min(n, len(real01) // 2)
        feats_a, _ = judge_outputs(judge, real01[perm[:self.half]])
        self.ref, probs_b = judge_outputs(judge, real01[perm[self.half:2 * self.half]])
        self.floor = fd(feats_a, self.ref)
        self.real_confident = float(np.mean(probs_b.max(1) > 0.9))
        self.heldout = real01[perm[2 * self.half:3 * self.half]]

    def row(self, name: str, samples01: np.ndarray | torch.Tensor, steps: str = "") -> None:
        feats, probs = judge_outputs(self.judge, torch.as_tensor(samples01).float().reshape(-1, 1, 28, 28))
        share = np.bincount(probs.argmax(1), minlength=10) / len(probs)
        distance = fd(feats, self.ref)
        print(f"  {name:<28}{steps:>7}{self.tag}   confident {np.mean(probs.max(1) > 0.9):6.3f}   digit shares "
              f"{share.min():.3f}..{share.max():.3f}   Fréchet {distance:8.2f} = {distance / self.floor:5.2f} x "
              f"real halves", flush=True)


def cli(*argv: str) -> None:
    """``python -m ganlab ARGV`` in a fresh process (what a user runs)."""
    subprocess.run([sys.executable, "-m", "ganlab", *argv], check=True, stdout=subprocess.DEVNULL)


def run_steps(run: Path) -> str:
    return str(gl.load_checkpoint(run / "checkpoint.pt")["step"])


def ganlab_rows(scorers: Scorers, run: Path, n: int, label: str, npy: Path) -> None:
    """Score ``ganlab sample`` of a run: plain G(z) (the default) and refined by 10 steps."""
    sample = ["sample", str(run), "--n", str(n), "--out", str(npy)]
    cli(*sample)
    scorers.row(f"ganlab CLI ({label})", np.load(npy), run_steps(run))
    cli(*sample, "--refine-steps", "10")
    scorers.row("  refined z", np.load(npy), run_steps(run))


def plain_dcgan(data: torch.Tensor, minutes: list[float], steps: int, seed: int = 0):
    """pytorch/examples-style loop with ganlab's DCGAN networks, trained until the last minute mark and
    ``steps`` generator updates have both passed. Returns ``{mark: (G weights, steps done)}`` for each
    minute mark and for ``"steps"``."""
    torch.manual_seed(seed)
    G, D = gl.models.build_gan("dcgan", z_dim=100, img_size=28, base_channels=64)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    marks, snapshots, done = sorted(minutes), {}, 0
    start = time.perf_counter()
    while len(snapshots) < len(marks) + 1:
        perm = torch.randperm(len(data))
        for i in range(0, len(data) - 63, 64):
            gl.bench.reference_step(G, D, data[perm[i:i + 64]], torch.randn(64, 100), opt_d, opt_g)
            done += 1
            elapsed = (time.perf_counter() - start) / 60
            for m in marks:  # the weights as the clock passes each mark (copying is not timed work)
                if m not in snapshots and elapsed >= m:
                    snapshots[m] = (copy.deepcopy(G.state_dict()), done)
            if done == steps:
                snapshots["steps"] = (copy.deepcopy(G.state_dict()), done)
            if len(snapshots) == len(marks) + 1:
                break
    return G, snapshots


def conditional_rows(scorers: Scorers, run: Path, n_per: int, npy: Path) -> None:
    """Per digit K: the share of ``sample --label K`` read as K, and the spread ratio to real digits K."""
    # each judge's spread of the real digits K, shared by the EMA G's rows and the raw G's
    real_spreads = [[spread(judge_outputs(scorer.judge, scorer.real[scorer.labels == k][:n_per])[0])
                     for k in range(10)] for scorer in scorers]
    for ema, name in ((True, "EMA G"), (False, "raw G (--no-ema)")):
        samples = []
        for k in range(10):
            cli("sample", str(run), "--n", str(n_per), "--label", str(k), "--out", str(npy),
                *([] if ema else ["--no-ema"]))
            samples.append(torch.as_tensor(np.load(npy)).float()[:, None])
        for scorer, real_spread in zip(scorers, real_spreads):
            accuracy, ratio = [], []
            for k, images in enumerate(samples):
                feats, probs = judge_outputs(scorer.judge, images)
                accuracy.append(float(np.mean(probs.argmax(1) == k)))
                ratio.append(spread(feats) / real_spread[k])
            print(f"  cdcgan, {name:<17}{scorer.tag} read as asked: mean {np.mean(accuracy):.3f}, worst "
                  f"{min(accuracy):.3f} (digit {int(np.argmin(accuracy))}); spread / real digits': mean "
                  f"{np.mean(ratio):.2f}, worst {min(ratio):.2f} (digit {int(np.argmin(ratio))})", flush=True)
            print("    per digit 0-9: read as asked " + " ".join(f"{a:.2f}" for a in accuracy)
                  + "; spread ratio " + " ".join(f"{r:.2f}" for r in ratio), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0, 10.0],
                        help="equal wall-clock budgets (default: 1 3 10)")
    parser.add_argument("--steps", type=int, default=gl.recipes.MNIST.config.steps,
                        help="equal step budget (default: the command line's, %(default)s)")
    parser.add_argument("--n", type=int, default=2000, help="samples judged per model")
    parser.add_argument("--judge-epochs", type=int, nargs="+", default=[4],
                        help="one judge per value, trained for that many epochs (default: 4)")
    parser.add_argument("--conditional", action="store_true", help="also judge `train cdcgan` at --steps")
    args = parser.parse_args()
    if min(args.minutes) <= 0 or args.steps <= 0 or args.n <= 1 or min(args.judge_epochs) <= 0:
        parser.error("argument --minutes/--steps/--n/--judge-epochs: must be positive (and --n > 1)")
    minutes = sorted(set(args.minutes))

    train, held = gl.data.MNIST(train=True), gl.data.MNIST(train=False)
    all_images = gl.data.to_unit(torch.cat([train.images, held.images]))
    all_labels = torch.cat([train.targets, held.targets])
    epochs = sorted(set(args.judge_epochs))
    scorers = Scorers(Scorer(train_judge(all_images, all_labels, e), all_images, all_labels, args.n,
                             f" [judge {e} ep]" if len(epochs) > 1 else "") for e in epochs)
    for e, one in zip(epochs, scorers):
        print(f"judge trained {e} epoch{'s' if e != 1 else ''}: real digits confident {one.real_confident:.3f}; "
              f"Fréchet distance between two halves of {one.half} real digits: {one.floor:.2f}", flush=True)
    scorers.row("real digits", scorers[0].heldout)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        npy, timed, stepped = tmp / "s.npy", tmp / "timed", tmp / "stepped"
        quiet = ["--quiet", "--sample-every", "0"]
        _, plain = plain_dcgan(train.images, minutes, args.steps)
        G = gl.models.build_gan("dcgan", z_dim=100, img_size=28, base_channels=64)[0]

        def plain_row(key):
            weights, done = plain[key]
            G.load_state_dict(weights)
            scorers.row("plain DCGAN loop", gl.data.to_unit(gl.sample(G, args.n, seed=0))[:, 0].numpy(), str(done))

        before = 0.0
        for m in minutes:  # each budget continues the previous one's run (exact resume) for the difference
            print(f"\n{m:g} minute(s) of training each:", flush=True)
            cli("train", "dcgan", "--data", "mnist", "--minutes", str(m - before), "--steps", str(10**9),
                "--out", str(timed), *quiet, *(["--resume"] if before else []))
            before = m
            ganlab_rows(scorers, timed, args.n, f"{m:g} min", npy)
            plain_row(m)
        print(f"\n{args.steps} steps each:", flush=True)
        start = time.perf_counter()
        cli("train", "dcgan", "--data", "mnist", "--steps", str(args.steps), "--out", str(stepped), *quiet)
        print(f"  (ganlab: {time.perf_counter() - start:.0f} s with start-up)", flush=True)
        ganlab_rows(scorers, stepped, args.n, f"{args.steps} steps", npy)
        plain_row("steps")
        if args.conditional:
            print(f"\nclass-conditional, {args.steps} steps:", flush=True)
            cond = tmp / "cdcgan"
            cli("train", "cdcgan", "--data", "mnist", "--steps", str(args.steps), "--out", str(cond), *quiet)
            conditional_rows(scorers, cond, max(2, args.n // 10), npy)


if __name__ == "__main__":
    main()
