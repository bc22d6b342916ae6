"""Sample quality after a fixed wall-clock budget: ganlab's command line against a plain DCGAN loop.

Both are given the same minutes on the same machine, then 2,000 samples of each are judged by an
independent MNIST classifier: a deeper CNN trained here, with its own architecture and seed, that shares
nothing with ganlab's metric classifier. Printed for each: the share of samples it classifies with
confidence above 0.9, the smallest and largest share of a predicted digit, and the Fréchet distance on its
features to held-out real digits, as a ratio to the distance between two halves of the real digits.
ganlab's samples are judged twice: as ``ganlab sample`` writes them (each z refined by a few gradient steps
on the discriminator, see ``ganlab.train.refine_latents``) and with ``--refine-steps 0`` (plain G(z)).

The plain loop follows pytorch/examples' dcgan/main.py (batch-norm D, BCE on logits, Adam(0.5, 0.999),
batch 64), with the same DCGAN networks at 28 x 28 as ganlab. Runs one after the other, never together,
so that neither slows the other.

    GANLAB_DATA=../shared/data python benchmarks/quality.py --minutes 3     # about 8 minutes in all
"""
from __future__ import annotations

import argparse
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


def plain_dcgan(data: torch.Tensor, minutes: float, seed: int = 0) -> nn.Module:
    """pytorch/examples-style loop with ganlab's DCGAN networks; stops after `minutes`."""
    torch.manual_seed(seed)
    G, D = gl.models.build_gan("dcgan", z_dim=100, img_size=28, base_channels=64)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    deadline = time.perf_counter() + 60 * minutes
    steps = 0
    while time.perf_counter() < deadline:
        perm = torch.randperm(len(data))
        for i in range(0, len(data) - 63, 64):
            if time.perf_counter() >= deadline:
                break
            gl.bench.reference_step(G, D, data[perm[i:i + 64]], torch.randn(64, 100), opt_d, opt_g)
            steps += 1
    print(f"plain DCGAN loop: {steps} steps in {minutes} min")
    return G


def report(name: str, samples01: np.ndarray, judge: Judge, ref_feats: np.ndarray, floor: float) -> None:
    feats, probs = judge_outputs(judge, torch.as_tensor(samples01).float().reshape(-1, 1, 28, 28))
    share = np.bincount(probs.argmax(1), minlength=10) / len(probs)
    distance = fd(feats, ref_feats)
    print(f"{name:<22} confident {np.mean(probs.max(1) > 0.9):6.3f}   digit shares {share.min():.3f}..{share.max():.3f}"
          f"   Fréchet {distance:8.2f} = {distance / floor:5.1f} x real halves")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--n", type=int, default=2000, help="samples judged per model")
    parser.add_argument("--judge-epochs", type=int, default=4)
    args = parser.parse_args()
    if args.minutes <= 0 or args.n <= 1 or args.judge_epochs <= 0:
        parser.error("argument --minutes/--n/--judge-epochs: must be positive (and --n > 1)")

    train, held = gl.data.MNIST(train=True), gl.data.MNIST(train=False)
    all_images = gl.data.to_unit(torch.cat([train.images, held.images]))
    all_labels = torch.cat([train.targets, held.targets])
    judge = train_judge(all_images, all_labels, args.judge_epochs)
    perm = torch.randperm(len(all_images), generator=torch.Generator().manual_seed(0))
    half = min(args.n, len(all_images) // 2)
    feats_a, _ = judge_outputs(judge, all_images[perm[:half]])
    feats_b, probs_b = judge_outputs(judge, all_images[perm[half:2 * half]])
    floor = fd(feats_a, feats_b)
    print(f"judge: real digits confident {np.mean(probs_b.max(1) > 0.9):.3f}; "
          f"Fréchet distance between two halves of {half} real digits: {floor:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        run, npy = Path(tmp) / "run", Path(tmp) / "s.npy"
        subprocess.run([sys.executable, "-m", "ganlab", "train", "dcgan", "--data", "mnist", "--minutes",
                        str(args.minutes), "--out", str(run), "--quiet"], check=True)
        sample = [sys.executable, "-m", "ganlab", "sample", str(run), "--n", str(args.n), "--out", str(npy)]
        subprocess.run(sample, check=True)
        ganlab_samples = np.load(npy)
        subprocess.run(sample + ["--refine-steps", "0"], check=True)
        ganlab_plain = np.load(npy)
    G = plain_dcgan(train.images, args.minutes)
    plain_samples = gl.data.to_unit(gl.sample(G, args.n, seed=0))[:, 0].numpy()
    print()
    report("real digits", all_images[perm[2 * half:3 * half]].numpy(), judge, feats_b, floor)
    report("ganlab CLI", ganlab_samples, judge, feats_b, floor)
    report("  without refinement", ganlab_plain, judge, feats_b, floor)
    report("plain DCGAN loop", plain_samples, judge, feats_b, floor)


if __name__ == "__main__":
    main()
