"""Training throughput: each speed lever of ganlab's ``fit`` against a plain PyTorch DCGAN loop, one run.

The reference is the loop of pytorch/examples' dcgan/main.py (fp32, eager, NCHW, default Adam). Every
row trains the same model on the same in-memory MNIST-shaped data; the runs alternate so all rows see
the same machine state, and each row prints its images/second, its ratio to the reference, and the
GFLOP/s it achieved next to the fp32 matrix-product rate measured in the same run (the practical peak).
The logic lives in ``ganlab.bench``; chapter 6 runs it too.

    python benchmarks/throughput.py                     # about two minutes on 2 CPU cores
    python benchmarks/throughput.py --compile           # adds torch.compile (minutes of compilation)
    python benchmarks/throughput.py --device cuda --batch-size 256 --steps 100
    python benchmarks/throughput.py --base-channels 32 --residual --batch-size 32   # the CLI's MNIST model
    python benchmarks/throughput.py --json rows.json    # also writes the rows (gpu_check.py reads them)
"""
from __future__ import annotations

import argparse
import json
import platform

import torch

import ganlab as gl
from ganlab.bench import format_rows, throughput


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each row")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--z-dim", type=int, default=64)
    parser.add_argument("--base-channels", type=int, default=64)
    parser.add_argument("--extra-layers", type=int, default=3)
    parser.add_argument("--residual", action=argparse.BooleanOptionalAction, default=False,
                        help="extra layers as residual blocks (the command line's MNIST recipe)")
    parser.add_argument("--img-size", type=int, default=28)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--in-process", action="store_true",
                        help="time every row in this process (quicker, for checks; rows share process state)")
    args = parser.parse_args(argv)
    for name in ("steps", "repeats", "batch_size", "z_dim", "base_channels", "img_size"):
        if getattr(args, name) <= 0:
            parser.error(f"argument --{name.replace('_', '-')}: must be a positive integer")
    if args.extra_layers < 0:
        parser.error("argument --extra-layers: must be a non-negative integer")
    try:
        device = gl.get_device(args.device)
    except (ValueError, TypeError) as exc:
        parser.error(f"argument --device: {exc}")

    model_args = dict(z_dim=args.z_dim, img_size=args.img_size, base_channels=args.base_channels,
                      extra_layers=args.extra_layers, residual=args.residual)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"torch {torch.__version__}, device {device} ({name}), threads {torch.get_num_threads()}, "
          f"DCGAN {model_args}, batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats")
    rows = throughput(model_args=model_args, batch_size=args.batch_size, steps=args.steps,
                      repeats=args.repeats, device=device, compile=args.compile, in_process=args.in_process)
    print(format_rows(rows))
    default = next(r for r in rows if r["name"] == "ganlab defaults for this device")
    print(f"ratio ganlab / reference: {default['ratio']:.2f}   "
          f"ganlab's share of the fp32 matmul rate: {100 * default['peak_share']:.0f}%"
          if default["peak_share"] is not None else f"ratio ganlab / reference: {default['ratio']:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"device": str(device), "device_name": name, "model_args": model_args,
                       "batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats,
                       "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
