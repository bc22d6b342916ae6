"""Training throughput of ganlab against a minimal hand-written PyTorch DCGAN loop, in one run.

Both train the same DCGAN (same widths, batch size, Adam settings, in-memory MNIST-shaped data) for the
same number of steps; the runs alternate (ganlab, reference, ganlab, ...) so that both see the same
machine state, and the median images/second of each is reported with their ratio.

The reference is the loop of pytorch/examples' dcgan/main.py with logits in place of Sigmoid + BCELoss:
zero_grad, D on real, D on G(z).detach(), D step, then D(G(z)) for G's step. ganlab's loop differs in
what it does not compute: D's weight gradients during G's step are skipped.

    python benchmarks/throughput.py            # about a minute on 2 CPU cores
    python benchmarks/throughput.py --steps 200 --repeats 5 --device cuda
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import ganlab as gl


def reference_loop(G, D, data: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int) -> float:
    """pytorch/examples-style DCGAN loop; returns seconds for `steps` iterations."""
    device = next(G.parameters()).device
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(seed)
    n = len(data)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(n, (batch_size,), generator=g)
        real = data[idx].to(device)
        ones = torch.ones(batch_size, device=device)
        zeros = torch.zeros(batch_size, device=device)
        # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
        D.zero_grad()
        err_real = F.binary_cross_entropy_with_logits(D(real), ones)
        err_real.backward()
        noise = torch.randn(batch_size, G.z_dim, generator=g).to(device)
        fake = G(noise)
        err_fake = F.binary_cross_entropy_with_logits(D(fake.detach()), zeros)
        err_fake.backward()
        opt_d.step()
        # (2) update G: maximize log(D(G(z)))
        G.zero_grad()
        err_g = F.binary_cross_entropy_with_logits(D(fake), ones)
        err_g.backward()
        opt_g.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def ganlab_loop(G, D, data: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int,
                device: str, ema: float | None) -> float:
    config = gl.TrainConfig(steps=steps, batch_size=batch_size, lr_g=lr, lr_d=lr, seed=seed, device=device,
                            progress=False, ema_half_life=ema, n_samples=1)
    start = time.perf_counter()
    gl.fit(G, D, data, config)
    if gl.device_of(G).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each loop")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--z-dim", type=int, default=64)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--img-size", type=int, default=28)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ema", type=float, default=None, help="ganlab's EMA half-life in images (default off)")
    args = parser.parse_args()
    for name in ("steps", "repeats", "batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"argument --{name.replace('_', '-')}: must be a positive integer")

    device = gl.get_device(args.device)
    data = torch.rand(4096, 1, args.img_size, args.img_size) * 2 - 1   # MNIST-shaped, in [-1, 1]

    def models():
        torch.manual_seed(0)
        G, D = gl.models.build_gan("dcgan", z_dim=args.z_dim, img_size=args.img_size,
                                   base_channels=args.base_channels)
        return G.to(device), D.to(device)

    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats")
    # warm-up: allocator, kernels, lazy initialisation
    reference_loop(*models(), data, 10, args.batch_size, 2e-4, 0)
    ganlab_loop(*models(), data, 10, args.batch_size, 2e-4, 0, str(device), args.ema)

    ref_times, lab_times = [], []
    for r in range(args.repeats):
        ref_times.append(reference_loop(*models(), data, args.steps, args.batch_size, 2e-4, r))
        lab_times.append(ganlab_loop(*models(), data, args.steps, args.batch_size, 2e-4, r, str(device), args.ema))
    images = args.steps * args.batch_size
    ref_ips = images / statistics.median(ref_times)
    lab_ips = images / statistics.median(lab_times)
    print(f"reference loop (pytorch/examples style): {ref_ips:8.1f} images/s")
    print(f"ganlab fit()                           : {lab_ips:8.1f} images/s")
    print(f"ratio ganlab / reference               : {lab_ips / ref_ips:8.2f}")


if __name__ == "__main__":
    main()
