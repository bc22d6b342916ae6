"""Command line for long runs outside notebooks: ``python -m ganlab {train,sample,evaluate} ...``.

Examples::

    python -m ganlab train dcgan --data mnist --out runs/dcgan               # the recipe's 4,000 steps
    python -m ganlab train dcgan --data mnist --steps 8000 --out runs/dcgan --resume
    python -m ganlab sample runs/dcgan --n 2000 --out samples.npy
    python -m ganlab evaluate runs/dcgan --n 2000
    python -m ganlab train cdcgan --data mnist --out runs/cdcgan             # digits on demand
    python -m ganlab sample runs/cdcgan --n 100 --label 7 --out sevens.npy

``train`` trains a recipe of :data:`ganlab.recipes.RECIPES` (``dcgan``: :data:`~ganlab.recipes.MNIST`;
``cdcgan``: :data:`~ganlab.recipes.MNIST_COND`, class-conditional) for ``--steps`` generator updates,
4,000 by default, so that a run's result does not depend on the machine's speed; ``--minutes`` is an
optional wall-clock cap that stops it earlier. It leaves ``checkpoint.pt`` and sample grids in ``--out``.
DEFAULT_STEPS_MEASURED

``sample`` writes an ``(N, H, W)`` float32 array in [0, 1] (``(N, C, H, W)`` for colour), using the EMA
weights when the checkpoint has them; MNIST images are 28 x 28. For a class-conditional run it draws every
class equally often, or only class ``--label K``, and writes the labels, int64 ``(N,)``, beside the images
(``OUT.labels.npy`` for ``OUT.npy``). Before decoding, each noise vector takes ``--refine-steps`` small
gradient steps towards a higher logit of the checkpoint's discriminator under the Gaussian prior
(:func:`ganlab.train.refine_latents`); ``--refine-steps 0`` gives plain ``G(z)``. ``evaluate`` draws the
same images ``sample`` would (same flags, same seed) and scores them against the held-out MNIST digits on
the domain classifier's features (:func:`ganlab.metrics.evaluate_run_samples`): Fréchet distance, KID,
precision, recall, confident share and label entropy, with the same scores of as many real training
digits for scale. A bad argument exits with status 2 and one line naming it.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from .recipes import MNIST as MNIST_RECIPE
from .recipes import RECIPES, SAMPLE_REFINE

# the defaults of `train` and `sample` are ganlab.recipes.MNIST and ganlab.recipes.SAMPLE_REFINE (measured
# there); every value can be overridden by a flag.


# config fields whose flag is not simply --field-name
_FLAGS = {"betas": "--beta1/--beta2", "ema_half_life": "--ema-half-life", "ema_rampup": "--ema-rampup",
          "max_minutes": "--minutes"}


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (``ganlab: error: argument --n: ...``) and exit status 2."""

    def error(self, message: str):  # noqa: D401
        sys.stderr.write(f"ganlab: error: {message}\n")
        raise SystemExit(2)


def _number_type(kind: type, description: str, accept):
    """An argparse ``type`` that converts with ``kind`` and keeps the values ``accept`` allows.

    Anything else (unparsable, NaN, infinite, out of range) is rejected with
    ``must be <description>, got '<text>'``, which argparse prefixes with the argument's name.
    """

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {description}, got {text!r}")
        return value

    return convert


_positive_int = _number_type(int, "a positive integer", lambda v: v > 0)
_nonnegative_int = _number_type(int, "a non-negative integer", lambda v: v >= 0)
_positive_float = _number_type(float, "a positive number", lambda v: v > 0)


def build_parser() -> argparse.ArgumentParser:
    from .losses import list_losses
    from .train import PRECISIONS

    parser = _Parser(prog="ganlab", description="Train GANs and sample from them (the GAN Lab book's CLI).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a GAN; stops after --steps (or --minutes, whichever first)")
    t.add_argument("model", choices=sorted(RECIPES), help="a recipe of ganlab.recipes.RECIPES: dcgan "
                                                          "(MNIST digits), cdcgan (digits by label)")
    t.add_argument("--data", choices=["mnist"], default="mnist", help="dataset (default: mnist)")
    t.add_argument("--out", type=Path, required=True, help="output folder for checkpoint.pt and sample grids")
    t.add_argument("--steps", type=_positive_int, default=MNIST_RECIPE.config.steps,
                   help="generator updates (default: %(default)s; see `python -m pydoc ganlab.__main__` for "
                        "what they cost and give)")
    t.add_argument("--minutes", type=_positive_float, default=None,
                   help="optional wall-clock cap in minutes (stops earlier if --steps are not done)")
    t.add_argument("--data-root", type=Path, default=None, help="data folder (default: $GANLAB_DATA, "
                                                                "else the user cache)")
    t.add_argument("--download", action="store_true", help="download MNIST with torchvision if missing")
    arch, cfg = MNIST_RECIPE.model_args, MNIST_RECIPE.config  # ganlab.recipes.MNIST
    t.add_argument("--batch-size", type=_positive_int, default=cfg.batch_size)
    t.add_argument("--z-dim", type=_positive_int, default=arch["z_dim"])
    t.add_argument("--base-channels", type=_positive_int, default=arch["base_channels"])
    t.add_argument("--extra-layers", type=_nonnegative_int, default=arch["extra_layers"],
                   help="3x3 convolution layers (or residual blocks) added at 7x7 in each network")
    t.add_argument("--residual", action=argparse.BooleanOptionalAction, default=arch["residual"],
                   help="make each extra layer a residual block of two convolutions")
    t.add_argument("--lr-g", type=_positive_float, default=cfg.lr_g)
    t.add_argument("--lr-d", type=_positive_float, default=cfg.lr_d)
    t.add_argument("--beta1", type=float, default=cfg.betas[0], help="Adam beta1")
    t.add_argument("--beta2", type=float, default=cfg.betas[1], help="Adam beta2")
    t.add_argument("--loss", choices=list_losses(), default=cfg.loss)
    t.add_argument("--spectral-norm", action=argparse.BooleanOptionalAction,
                   default=arch["d_spectral_norm"], help="spectral norm in D instead of batch norm")
    t.add_argument("--ema-half-life", type=float, default=cfg.ema_half_life,
                   help="EMA half-life in images; 0 turns the EMA off")
    t.add_argument("--ema-rampup", type=float, default=cfg.ema_rampup,
                   help="EMA warm-up: half-life at most this share of the images seen; 0 turns it off")
    t.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seeds the weights, the batch order and the noise: equal seeds, equal runs (on the CPU)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    t.add_argument("--precision", choices=("auto",) + PRECISIONS, default=cfg.precision,
                   help="auto: bf16 (or fp16) on GPUs, fp32 on the CPU")
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory layout (default: on)")
    t.add_argument("--compile", action="store_true", help="torch.compile the networks (slow start-up)")
    t.add_argument("--checkpoint-every", type=_nonnegative_int, default=500,
                   help="steps between checkpoints (0: only at the end)")
    t.add_argument("--sample-every", type=_nonnegative_int, default=1000,
                   help="steps between sample grids (0: only at the end)")
    t.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt if it exists")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="write N samples as a float32 .npy array in [0, 1]")
    s.add_argument("run_dir", type=Path, help="a folder written by `ganlab train` (or a checkpoint file)")
    s.add_argument("--n", type=_positive_int, required=True, help="number of images")
    s.add_argument("--out", type=Path, required=True, help="output .npy file")
    s.add_argument("--seed", type=_nonnegative_int, default=0)
    s.add_argument("--label", type=_nonnegative_int, default=None,
                   help="class-conditional runs (cdcgan): draw only this class, 0..num_classes-1 (default: "
                        "every class equally often); the labels go to OUT.labels.npy")
    s.add_argument("--no-ema", action="store_true", help="use the raw generator even if EMA weights exist")
    s.add_argument("--refine-steps", type=_nonnegative_int, default=SAMPLE_REFINE["steps"],
                   help="gradient steps on each z towards a higher D logit (0: plain G(z))")
    s.add_argument("--refine-step-size", type=_positive_float, default=SAMPLE_REFINE["step_size"],
                   help="size of each refinement step")
    s.add_argument("--device", default="cpu")

    e = sub.add_parser("evaluate", help="score N samples of an MNIST run against held-out digits")
    e.add_argument("run_dir", type=Path, help="a folder written by `ganlab train` (or a checkpoint file)")
    e.add_argument("--n", type=_positive_int, required=True, help="number of images to draw and score")
    e.add_argument("--seed", type=_nonnegative_int, default=0, help="noise seed (and KID's subset seed)")
    e.add_argument("--no-ema", action="store_true", help="use the raw generator even if EMA weights exist")
    e.add_argument("--refine-steps", type=_nonnegative_int, default=SAMPLE_REFINE["steps"],
                   help="as for `sample` (0: plain G(z))")
    e.add_argument("--refine-step-size", type=_positive_float, default=SAMPLE_REFINE["step_size"],
                   help="as for `sample`")
    e.add_argument("--data-root", type=Path, default=None, help="data folder (default: $GANLAB_DATA, "
                                                                "else the user cache)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, auto")
    return parser


def _train(args, parser) -> int:
    import torch  # noqa: F401  (imported here so `--help` stays fast)

    from .data import MNIST
    from .train import fit
    from .utils import seed_everything

    if not math.isfinite(args.ema_half_life) or args.ema_half_life < 0:
        parser.error(f"argument --ema-half-life: must be >= 0, got {args.ema_half_life}")
    if not math.isfinite(args.ema_rampup) or args.ema_rampup < 0:
        parser.error(f"argument --ema-rampup: must be >= 0, got {args.ema_rampup}")
    recipe = RECIPES[args.model]  # its networks and settings; the flags override the values they name
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {args.out} exists and is not a folder")
    try:
        data = MNIST(args.data_root, train=True, img_size=28, download=args.download)
    except FileNotFoundError as exc:
        parser.error(f"argument --data: {exc}")
    try:
        seed_everything(args.seed)  # before building G and D: their initial weights come from it
        G, D = recipe.build(z_dim=args.z_dim, img_channels=1, img_size=28, base_channels=args.base_channels,
                            extra_layers=args.extra_layers, residual=args.residual,
                            d_spectral_norm=args.spectral_norm)
        config = recipe.train_config(
            steps=args.steps, batch_size=args.batch_size,
            lr_g=args.lr_g, lr_d=args.lr_d, betas=(args.beta1, args.beta2), loss=args.loss, seed=args.seed,
            device=args.device,
            precision=args.precision, channels_last=args.channels_last, compile=args.compile,
            ema_half_life=args.ema_half_life or None, ema_rampup=args.ema_rampup or None,
            checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
            max_minutes=args.minutes, progress=not args.quiet)
    except ValueError as exc:
        field = str(exc).split()[0]
        flag = _FLAGS.get(field, "--" + field.replace("_", "-"))
        parser.error(f"argument {flag}: {exc}")
    start = time.perf_counter()
    result = fit(G, D, data, config, out_dir=args.out, resume=args.resume)
    print(f"trained {result.step} steps ({result.step * config.batch_size:,} images) in "
          f"{time.perf_counter() - start:.0f} s; stopped by {result.stopped}; checkpoint: {result.checkpoint}")
    return 0


def _draw(G, D, args) -> tuple["torch.Tensor", "torch.Tensor | None"]:
    """The ``(N, C, H, W)`` images in [-1, 1] that ``sample`` writes and ``evaluate`` scores, and their labels
    (``None`` for an unconditional G): seeded noise, balanced labels for a conditional G (all ``--label``
    with that flag), then ``--refine-steps`` of refinement when ``D`` is given."""
    import torch

    from .train import balanced_labels, refine_latents, sample

    z = torch.randn(args.n, G.z_dim, generator=torch.Generator().manual_seed(args.seed))
    num_classes = getattr(G, "num_classes", None)
    labels = balanced_labels(args.n, num_classes) if num_classes is not None else None
    if getattr(args, "label", None) is not None:                  # `sample --label K` (checked by _sample)
        labels = torch.full((args.n,), args.label, dtype=torch.int64)
    if D is not None:
        z = refine_latents(G, D, z, steps=args.refine_steps, step_size=args.refine_step_size, labels=labels,
                           progress=sys.stderr.isatty())
    return sample(G, args.n, z=z, labels=labels), labels


def _save_npy(path: Path, array) -> None:
    import numpy as np

    from .utils import atomic_write

    def write(tmp):
        with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to a bare temp name
            np.save(fh, array)

    atomic_write(path, write)


def _sample(args, parser) -> int:
    import numpy as np

    from .checkpoint import CheckpointError
    from .train import CHECKPOINT_NAME, load_discriminator, load_generator

    path = args.run_dir / CHECKPOINT_NAME if args.run_dir.is_dir() else args.run_dir
    if not path.is_file():
        parser.error(f"argument run_dir: no checkpoint at {path}")
    if args.out.suffix != ".npy":
        parser.error(f"argument --out: must end in .npy, got {args.out}")
    try:
        G = load_generator(path, ema=not args.no_ema, device=args.device)
        D = load_discriminator(path, device=args.device) if args.refine_steps else None
    except (CheckpointError, ValueError) as exc:
        parser.error(f"argument run_dir: {exc}")
    num_classes = getattr(G, "num_classes", None)
    if args.label is not None and num_classes is None:
        parser.error(f"argument --label: the run at {path} is unconditional (its generator takes no labels)")
    if args.label is not None and args.label >= num_classes:
        parser.error(f"argument --label: must be in 0..{num_classes - 1} for this run, got {args.label}")
    images, labels = _draw(G, D, args)                            # (N, C, H, W) in [-1, 1], (N,) or None
    images = ((images + 1) / 2).clamp_(0, 1)                      # -> [0, 1]
    if images.shape[1] == 1:
        images = images[:, 0]                                     # (N, H, W) for grey images
    if images.shape[-1] == 32 and G.img_channels == 1:
        images = images[..., 2:30, 2:30]                          # MNIST trained padded: back to 28 x 28
    array = images.numpy().astype(np.float32)
    _save_npy(args.out, array)
    print(f"wrote {array.shape[0]} samples of shape {tuple(array.shape[1:])} to {args.out}")
    if labels is not None:  # a conditional run: the class each image was drawn for, beside the images
        label_path = args.out.with_suffix(".labels.npy")
        _save_npy(label_path, labels.numpy().astype(np.int64))
        print(f"wrote their labels (int64) to {label_path}")
    return 0


def _evaluate(args, parser) -> int:

    from .metrics import evaluate_run_samples, get_mnist_classifier, reference_features
    from .checkpoint import CheckpointError
    from .data import MNIST
    from .train import CHECKPOINT_NAME, load_discriminator, load_generator
    from .utils import get_device

    try:
        device = get_device(args.device)
    except ValueError as exc:
        parser.error(f"argument --device: {exc}")
    if args.n < 4:  # k-NN precision / recall need more than k = 3 points in each set
        parser.error(f"argument --n: must be at least 4 to score precision and recall, got {args.n}")
    if not args.run_dir.exists():
        parser.error(f"argument run_dir: {args.run_dir} does not exist")
    path = args.run_dir / CHECKPOINT_NAME if args.run_dir.is_dir() else args.run_dir
    if not path.is_file():
        parser.error(f"argument run_dir: no checkpoint at {path}")
    try:
        G = load_generator(path, ema=not args.no_ema, device=device)
    except (CheckpointError, ValueError) as exc:
        parser.error(f"argument run_dir: {exc}")
    shape = (getattr(G, "img_channels", None), getattr(G, "img_size", None))
    if shape[0] != 1 or shape[1] not in (28, 32) or not isinstance(getattr(G, "z_dim", None), int):
        parser.error(f"argument run_dir: {path} is not an MNIST run (grey 28 x 28 or 32 x 32 images from "
                     f"noise), its generator makes (channels, size) = {shape}")
    try:
        D = load_discriminator(path, device=device) if args.refine_steps else None
    except (CheckpointError, ValueError) as exc:
        parser.error(f"argument run_dir: {exc}")
    try:
        held = MNIST(args.data_root, train=False)
        train = MNIST(args.data_root, train=True, limit=args.n)
    except FileNotFoundError as exc:
        parser.error(f"argument --data-root: {exc}")
    classifier = get_mnist_classifier(args.data_root, device=device, progress=sys.stderr.isatty())

    # the images `sample` writes, in [-1, 1] at 28 x 28
    images, _ = _draw(G, D, args)
    if images.shape[-1] == 32:
        images = images[..., 2:30, 2:30]                          # MNIST trained padded: back to 28 x 28

    reference = reference_features(held.images, classifier)
    rows = [(f"samples (n={args.n})", images), (f"real train digits (n={len(train)})", train.images)]
    print(f"{G.__class__.__name__} from {path}, scored against {reference['n']} held-out MNIST digits "
          f"on the domain classifier's features (held-out accuracy {classifier.heldout_accuracy:.3f})")
    print(f"{'':32} {'Fréchet':>8} {'KID':>18} {'precision':>9} {'recall':>7} {'confident':>9} {'entropy':>8}")
    for name, x in rows:
        s = evaluate_run_samples(x, classifier=classifier, reference=reference, seed=args.seed)
        kid = f"{s['kid']:.4g} ± {s['kid_std']:.2g}"  # its scale follows the features': 4 digits, any size
        print(f"{name:32} {s['fd']:8.3f} {kid:>18} {s['precision']:9.3f} {s['recall']:7.3f} "
              f"{s['confident']:9.3f} {s['entropy']:8.3f}")
    print("Fréchet and KID: lower is better; precision, recall, confident share: higher is better (at most 1); "
          "label entropy: log2(10) = 3.32 bits when every digit is equally common")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args, parser)
    if args.command == "evaluate":
        return _evaluate(args, parser)
    return _sample(args, parser)


if __name__ == "__main__":
    raise SystemExit(main())
