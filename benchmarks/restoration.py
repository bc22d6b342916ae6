"""The command line's photo restorers against the classical methods, on whole held-out photographs.

For each task (denoise, sr4, inpaint, colorize) this trains ``python -m ganlab train restore --task TASK`` at
its default steps (or ``--steps``), then, for every held-out photograph (scikit-image's ``chelsea``, never
trained on, and the three that matplotlib and scikit-learn ship: ``grace_hopper``, ``china``, ``flower``),
writes the degraded photograph as an 8-bit PNG, restores it with ``python -m ganlab restore`` (the same
command a user runs) and scores the result, and every classical method on the same PNG, with PSNR and
SSIM against the clean photograph:

========== ===================================================== =====================================
task       the degraded PNG                                      classical methods
========== ===================================================== =====================================
denoise    Gaussian noise, sigma 25/255, clipped and rounded     BM3D (CBM3D), non-local means, TV
sr4        anti-aliased bicubic shrinking to a quarter           bicubic, Lanczos
inpaint    three boxes of 40 x 40 pixels; PSNR on their pixels   biharmonic
colorize   the photograph (the restorer uses its luminance)      the grey image
========== ===================================================== =====================================

Each row prints the difference to the best classical method, and a summary gives the means over the three
photographs that do not come from scikit-image. Colourisation also gets colourfulness and the CIELAB
chroma error (``ganlab.metrics``). The training time of each task is printed with the number of steps.

    python benchmarks/restoration.py --out runs/bench       # the four default runs (see below)
    python benchmarks/restoration.py --out runs/bench --reuse   # score runs trained before
    python benchmarks/restoration.py --out /tmp/b --steps 20 --tasks denoise sr4   # a quick check of the wiring

Measured (``--tasks denoise sr4``, one CPU thread on a shared 2-core machine, seed 0): denoise trained
1,200 steps in 14 CPU minutes, sr4 2,500 steps in 11.5 minutes; scoring both took about 7 minutes.
Means over grace_hopper, china, flower: denoise 30.79 dB against BM3D 30.38, non-local means 28.85, total
variation 27.58; sr4 26.52 dB against bicubic 25.21 and Lanczos 25.25. inpaint and colorize are not yet
measured at their defaults.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ganlab as gl
from ganlab import classical
from ganlab.restore import TASKS, read_image, write_image

PHOTOS = gl.data.RESTORE_TEST_PHOTOS + gl.data.OTHER_PHOTOS
SIGMA = 25 / 255


def run(args: list[str]) -> float:
    """``python -m ganlab ARGS`` in a fresh process; its seconds. A failure stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ganlab", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"python -m ganlab {' '.join(args)} failed:\n{proc.stderr}")
    return time.perf_counter() - start


def boxes(shape: tuple[int, int], seed: int) -> torch.Tensor:
    """Three 40 x 40 boxes at seeded positions: ``(1, H, W)`` bool, true where a pixel is missing."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(1, *shape, dtype=torch.bool)
    for _ in range(3):
        top = int(torch.randint(shape[0] - 40, (1,), generator=g))
        left = int(torch.randint(shape[1] - 40, (1,), generator=g))
        mask[:, top:top + 40, left:left + 40] = True
    return mask


def degraded(task: str, clean: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The PNG content a user would hand to `ganlab restore` for ``clean`` ``(3, H, W)``, and the mask."""
    if task == "denoise":
        return TASKS["denoise"].degradation(clean[None], seed=seed)[0], None
    if task == "sr4":
        return TASKS["sr4"].degradation(clean[None])[0], None
    if task == "inpaint":
        mask = boxes(clean.shape[1:], seed)
        return clean.masked_fill(mask, 0.0), mask
    return clean, None                                            # colorize: the restorer takes the luminance


def baselines(task: str, given: torch.Tensor, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
    x = given[None]
    if task == "denoise":
        return {"BM3D": classical.bm3d(x, sigma=SIGMA), "non-local means": classical.nl_means(
            x, sigma=SIGMA, h_factor=0.6), "total variation": classical.total_variation(x, weight=0.08)}
    if task == "sr4":
        return {"bicubic": classical.bicubic(x, factor=4), "Lanczos": classical.lanczos(x, factor=4)}
    if task == "inpaint":
        return {"biharmonic": classical.biharmonic(x, mask[None])}
    return {"grey": classical.grey_as_colour(gl.restore.network_input("colorize", x))}


def score(task: str, out: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor | None) -> dict[str, float]:
    out, clean = out.reshape(1, *out.shape[-3:]), clean[None]
    m = mask[None] if mask is not None else None
    s = {"psnr": gl.metrics.psnr(out, clean, mask=m), "ssim": gl.metrics.ssim(out, clean)}
    if task == "colorize":
        s["colourfulness"] = gl.metrics.colourfulness(out)
        s["chroma error"] = gl.metrics.chroma_error(out, clean)
    return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and the restored images")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--steps", type=int, default=None, help="override every task's default steps")
    parser.add_argument("--reuse", action="store_true", help="score the runs already in --out")
    parser.add_argument("--device", default="auto", help="device of the training runs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    summary = {}
    for task in args.tasks:
        run_dir = args.out / task
        if not (args.reuse and (run_dir / "checkpoint.pt").is_file()):
            flags = ["--steps", str(args.steps)] if args.steps else []
            seconds = run(["train", "restore", "--task", task, "--out", str(run_dir), "--overwrite", "--quiet",
                           "--device", args.device, *flags])
            steps = torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"]
            print(f"\n{task}: trained {steps:,} steps in {seconds / 60:.1f} min "
                  f"({torch.get_num_threads()} CPU threads, device {args.device})")
        print(f"\n{task:<9} {'photo':<13} {'method':<18} {'PSNR':>7} {'SSIM':>7}  vs the best classical")
        rows: dict[str, dict[str, list[float]]] = {}
        for i, name in enumerate(PHOTOS):
            clean = gl.data.photo(name)
            if task == "sr4":                                     # whole small pixels
                clean = clean[:, :clean.shape[1] // 4 * 4, :clean.shape[2] // 4 * 4]
            given, mask = degraded(task, clean, seed=100 + i)
            stem = args.out / f"{task}_{name}"
            write_image(f"{stem}_in.png", given)
            given = read_image(f"{stem}_in.png")                 # exactly what the command line reads
            extra = []
            if mask is not None:
                write_image(f"{stem}_mask.png", mask.float() * 2 - 1)
                extra = ["--mask", f"{stem}_mask.png"]
            run(["restore", str(run_dir), "--in", f"{stem}_in.png", "--out", f"{stem}_out.png", *extra])
            methods = {"ganlab restore": read_image(f"{stem}_out.png"), **baselines(task, given, mask)}
            scores = {k: score(task, v, clean, mask) for k, v in methods.items()}
            best = max(v["psnr"] for k, v in scores.items() if k != "ganlab restore")
            for k, s in scores.items():
                extra_cols = "".join(f"  {c} {s[c]:.1f}" for c in ("colourfulness", "chroma error") if c in s)
                vs = f"  {s['psnr'] - best:+.2f} dB" if k == "ganlab restore" else ""
                print(f"{'':<9} {name:<13} {k:<18} {s['psnr']:7.2f} {s['ssim']:7.3f}{vs}{extra_cols}")
                if name in gl.data.OTHER_PHOTOS:
                    for c, v in s.items():
                        rows.setdefault(k, {}).setdefault(c, []).append(v)
        summary[task] = rows
        print(f"{'':<9} mean over {', '.join(gl.data.OTHER_PHOTOS)} (not scikit-image's):")
        for k, cols in rows.items():
            print(f"{'':<9} {'':<13} {k:<18} {np.mean(cols['psnr']):7.2f} {np.mean(cols['ssim']):7.3f}")

    print("\nganlab restore minus each classical method, PSNR in dB, mean over the photographs not from "
          "scikit-image:")
    for task, rows in summary.items():
        net = np.mean(rows["ganlab restore"]["psnr"])
        print(f"  {task:<9} " + ", ".join(f"{k} {net - np.mean(v['psnr']):+.2f}" for k, v in rows.items()
                                         if k != "ganlab restore"))


if __name__ == "__main__":
    main()
