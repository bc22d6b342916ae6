"""Command line for long runs outside notebooks: ``python -m ganlab {train,sample,evaluate,translate} ...``.

Examples::

    python -m ganlab train dcgan --data mnist --out runs/dcgan               # the recipe's 4,000 steps
    python -m ganlab train dcgan --data mnist --steps 8000 --out runs/dcgan --resume
    python -m ganlab sample runs/dcgan --n 2000 --out samples.npy
    python -m ganlab evaluate runs/dcgan --n 2000
    python -m ganlab train cdcgan --data mnist --out runs/cdcgan             # digits on demand
    python -m ganlab sample runs/cdcgan --n 100 --label 7 --out sevens.npy
    python -m ganlab train cyclegan --data mnist:mnistm --out runs/cycle      # unpaired MNIST <-> MNIST-M
    python -m ganlab translate runs/cycle --direction b2a --in mnistm.npy --out digits.npy
    torchrun --standalone --nproc_per_node=4 -m ganlab train dcgan --batch-size 256 --out runs/ddp  # 4 GPUs

Under ``torchrun`` ``train`` trains with DistributedDataParallel (``ganlab.train.distributed``):
``--batch-size`` is the global batch, rank 0 alone checks and writes ``--out`` and prints, and the
checkpoint is the one a single process writes (README, "Scaling out").

``train`` trains a recipe of :data:`ganlab.recipes.RECIPES` (``dcgan``: :data:`~ganlab.recipes.MNIST`;
``cdcgan``: :data:`~ganlab.recipes.MNIST_COND`, class-conditional) for ``--steps`` generator updates,
4,000 by default, so that a run's result does not depend on the machine's speed; ``--minutes`` is an
optional wall-clock cap that stops it earlier. It leaves ``checkpoint.pt`` and sample grids in ``--out``.

``sample`` writes an ``(N, H, W)`` float32 array in [0, 1] (``(N, C, H, W)`` for colour), using the EMA
weights when the checkpoint has them; MNIST images are 28 x 28. For a class-conditional run it draws every
class equally often, or only class ``--label K``, and writes the labels, int64 ``(N,)``, beside the images
(``OUT.labels.npy`` for ``OUT.npy``). It writes plain ``G(z)`` by default; with ``--refine-steps K`` each
noise vector first takes K small gradient steps towards a higher logit of the checkpoint's discriminator
under the Gaussian prior (:func:`ganlab.train.refine_latents`; ``--refine-steps 10`` is the setting
chapter 4 measures, which buys a larger confident share at a worse Fréchet distance). ``evaluate`` draws the
same images ``sample`` would (same flags, same seed) and scores them against the held-out MNIST digits on
the domain classifier's features (:func:`ganlab.metrics.evaluate_run_samples`): Fréchet distance, KID,
precision, recall, confident share and label entropy, with the same scores of as many real training
digits for scale.

``train cyclegan`` trains :data:`ganlab.recipes.MNIST_MNISTM`, CycleGAN between MNIST digits (domain A)
and MNIST-M digits (domain B, :class:`ganlab.data.MNISTM`), each domain from its own half of the training
digits, for ``--steps`` updates (:data:`~ganlab.recipes.MNIST_MNISTM`'s by default). ``translate`` reads an
``.npy`` array of images in [0, 1], ``(N, H, W)`` grey or ``(N, C, H, W)`` with 1 or 3 channels (the layout
``sample`` writes), 28 x 28 or 32 x 32 (resized to the run's size), and writes the translations in the
same layout: ``--direction a2b`` gives colour MNIST-M-like images ``(N, 3, H, W)``, ``b2a`` grey digits
``(N, H, W)``. A colour input to the grey side is taken as its luminance; a grey input to the colour side
as a grey photograph.

Nothing is lost, nothing is silent. ``train`` into a folder that already holds ``checkpoint.pt`` refuses
unless told ``--resume`` (continue it; the flags must match the checkpoint's) or ``--overwrite`` (replace
it); ``--resume`` without a checkpoint is an error too. A run that diverges (a NaN loss, or one beyond 1e6
for five steps) stops and keeps its last good checkpoint. Every user error (a bad flag, a missing or
damaged file, a device this machine lacks, sizes that do not fit in memory, a full or read-only disk, a
diverged run) exits with status 2 and one line, ``ganlab: error: ...``, that names the argument or the
file and says what was expected; a traceback means a bug in ganlab.
"""
from __future__ import annotations

import argparse
import errno
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .errors import UsageError, one_line
from .recipes import MNIST as MNIST_RECIPE
from .recipes import MNIST_MNISTM, RECIPES, SAMPLE_REFINE, TRANSLATION_RECIPES

# the defaults of `train` are ganlab.recipes.MNIST (measured there); `sample` writes plain G(z) unless given
# --refine-steps, whose step size defaults to ganlab.recipes.SAMPLE_REFINE's. Every value has a flag.


# config fields and builder arguments whose flag is not simply --field-name
_FLAGS = {"betas": "--beta1/--beta2", "ema_half_life": "--ema-half-life", "ema_rampup": "--ema-rampup",
          "max_minutes": "--minutes",
          "d_spectral_norm": "--spectral-norm", "img_size": "--data", "img_channels": "--data"}


def _flag(field: str) -> str:
    """The flag that sets a config field or a builder argument."""
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def _is_main_process() -> bool:
    """Not a process other than rank 0 under torchrun (read from its environment: no torch import)."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (``ganlab: error: argument --n: ...``) and exit status 2; the
    defaults of ``train`` that depend on the model (``--data``, ``--steps``, ``--batch-size``, ``--lr-g``,
    ``--lr-d``) are its recipe's, filled in after parsing.

    Under torchrun every process meets the same error and exits with 2; rank 0 alone prints it.
    """

    def error(self, message: str):  # noqa: D401
        if _is_main_process():
            sys.stderr.write(f"ganlab: error: {one_line(message)}\n")
        raise SystemExit(2)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if getattr(parsed, "command", None) == "train" and parsed.model != "restore":  # restore: its own
            translation = parsed.model in TRANSLATION_RECIPES
            recipe = TRANSLATION_RECIPES[parsed.model] if translation else RECIPES[parsed.model]
            for key, value in (("data", "mnist:mnistm" if translation else "mnist"),
                               ("steps", recipe.config.steps), ("batch_size", recipe.config.batch_size),
                               ("lr_g", recipe.config.lr_g), ("lr_d", recipe.config.lr_d)):
                if getattr(parsed, key) is None:
                    setattr(parsed, key, value)
        return parsed


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
_nonnegative_float = _number_type(float, "a number >= 0", lambda v: v >= 0)
_seed = _number_type(int, "an integer in [0, 2**64)", lambda v: 0 <= v < 2**64)  # torch.manual_seed's range
_layers = _number_type(int, "an integer from 0 to 64", lambda v: 0 <= v <= 64)
_components = _number_type(int, "an integer from 0 to 100000", lambda v: 0 <= v <= 100_000)
# refine_latents scales z by 1 - step / 2 each step: from 2 on, z flips and grows instead of being pulled in
_refine_step = _number_type(float, "a number in (0, 2)", lambda v: 0 < v < 2)


def _path(text: str) -> Path:
    """An argparse ``type`` for paths: an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a non-empty path, got {text!r}")
    return Path(text)


def _add_gan_train_flags(t: argparse.ArgumentParser) -> None:
    """The flags of ``train dcgan`` and ``train cdcgan``; their defaults are ganlab.recipes.MNIST's."""
    from .losses import list_losses
    from .train import PRECISIONS

    t.add_argument("--data", choices=["mnist", "mnist:mnistm"], default=None,
                   help="dataset (default: mnist; for cyclegan the two domains, mnist:mnistm)")
    t.add_argument("--out", type=_path, required=True,
                   help="output folder for checkpoint.pt and sample grids")
    t.add_argument("--steps", type=_positive_int, default=None,
                   help=f"generator updates (default: {MNIST_RECIPE.config.steps}, the recipe's; cyclegan: "
                        f"{MNIST_MNISTM.config.steps}; whatever the machine's speed)")
    t.add_argument("--minutes", type=_positive_float, default=None,
                   help="optional wall-clock cap in minutes (stops earlier if --steps are not done)")
    t.add_argument("--data-root", type=_path, default=None, help="data folder (default: $GANLAB_DATA, "
                                                                 "else the user cache)")
    t.add_argument("--download", action="store_true", help="download MNIST with torchvision if missing")
    arch, cfg = MNIST_RECIPE.model_args, MNIST_RECIPE.config  # ganlab.recipes.MNIST
    t.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"images per step (default: {cfg.batch_size}; cyclegan: {MNIST_MNISTM.config.batch_size} "
                        f"of each domain); under torchrun the global batch, split among the processes")
    t.add_argument("--z-dim", type=_positive_int, default=arch["z_dim"])
    t.add_argument("--base-channels", type=_positive_int, default=arch["base_channels"])
    t.add_argument("--extra-layers", type=_layers, default=arch["extra_layers"],
                   help="3x3 convolution layers (or residual blocks) added at 7x7 in each network")
    t.add_argument("--residual", action=argparse.BooleanOptionalAction, default=arch["residual"],
                   help="make each extra layer a residual block of two convolutions")
    t.add_argument("--latent-components", type=_components, default=arch["latent_components"],
                   help="G first maps z to a mixture of this many Gaussians with learned centres; 0: z as it is")
    t.add_argument("--lr-g", type=_positive_float, default=None, help="Adam learning rate of G (default: the "
                                                                      "recipe's)")
    t.add_argument("--lr-d", type=_positive_float, default=None, help="Adam learning rate of D (default: the "
                                                                      "recipe's)")
    t.add_argument("--beta1", type=float, default=cfg.betas[0], help="Adam beta1")
    t.add_argument("--beta2", type=float, default=cfg.betas[1], help="Adam beta2")
    t.add_argument("--loss", choices=list_losses(), default=cfg.loss)
    t.add_argument("--spectral-norm", action=argparse.BooleanOptionalAction,
                   default=arch["d_spectral_norm"], help="spectral norm in D instead of batch norm")
    t.add_argument("--ema-half-life", type=float, default=cfg.ema_half_life,
                   help="EMA half-life in images; 0 turns the EMA off")
    t.add_argument("--ema-rampup", type=float, default=cfg.ema_rampup,
                   help="EMA warm-up: half-life at most this share of the images seen; 0 turns it off")
    t.add_argument("--seed", type=_seed, default=0,
                   help="seeds the weights, the batch order, the noise and the augmentation: equal seeds, "
                        "byte-identical checkpoints (on the CPU)")
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
    again = t.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out (its checkpoint.pt must exist; the flags must "
                            "match it)")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out (without it, a folder holding checkpoint.pt "
                            "is refused)")
    t.add_argument("--quiet", action="store_true", help="no progress bar (there is one only on a terminal)")


def _add_restore_train_flags(t: argparse.ArgumentParser) -> None:
    """The flags of ``train restore``; their defaults are the task's recipe in ganlab.recipes.RESTORE."""
    from .recipes import RESTORE
    from .restore import TASKS
    from .train import PRECISIONS

    t.add_argument("--task", choices=sorted(TASKS), required=True,
                   help="denoise (sigma 25/255), sr4 (4x super-resolution), inpaint (fill a masked region), "
                        "colorize (colour from luminance)")
    t.add_argument("--out", type=_path, required=True, help="output folder for checkpoint.pt")
    steps = ", ".join(f"{k} {r.config.steps:,}" for k, r in RESTORE.items())
    t.add_argument("--steps", type=_positive_int, default=None,
                   help=f"updates of the restorer (default: the task's recipe: {steps})")
    t.add_argument("--minutes", type=_positive_float, default=None,
                   help="optional wall-clock cap in minutes (stops earlier if --steps are not done)")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="crops per step (default: the "
                                                                           "recipe's)")
    t.add_argument("--base-channels", type=_positive_int, default=None,
                   help="feature maps at full resolution (default: the recipe's)")
    t.add_argument("--lr", type=_positive_float, default=None, help="Adam learning rate of the restorer, "
                                                                    "cosine-decayed to 0 (default: the recipe's)")
    t.add_argument("--adv-weight", type=_nonnegative_float, default=None,
                   help="weight of the PatchGAN's adversarial loss next to L1's 1; 0: L1 only (default: the "
                        "recipe's)")
    t.add_argument("--seed", type=_seed, default=0,
                   help="seeds the weights, the crops and the degradations: equal seeds, byte-identical "
                        "checkpoints (on the CPU)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    t.add_argument("--precision", choices=("auto",) + PRECISIONS, default="auto",
                   help="auto: bf16 (or fp16) on GPUs, fp32 on the CPU")
    t.add_argument("--checkpoint-every", type=_nonnegative_int, default=500,
                   help="steps between checkpoints (0: only at the end)")
    again = t.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out (its checkpoint.pt must exist; the flags must match it)")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out (without it, a folder holding checkpoint.pt is refused)")
    t.add_argument("--quiet", action="store_true", help="no progress bar (there is one only on a terminal)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ganlab", description="Train GANs and sample from them (the GAN Lab book's CLI).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a GAN or a restorer; stops after --steps (or --minutes, "
                                         "whichever first)")
    models = train.add_subparsers(dest="model", required=True, parser_class=_Parser,
                                  title="models", description="dcgan (MNIST digits), cdcgan (digits by label), "
                                                              "cyclegan (unpaired translation MNIST <-> "
                                                              "MNIST-M), restore (a restorer of photographs)")
    helps = {"dcgan": "MNIST digits", "cdcgan": "MNIST digits by label",
             "cyclegan": "unpaired translation MNIST <-> MNIST-M (--data mnist:mnistm)"}
    for name in sorted(RECIPES) + sorted(TRANSLATION_RECIPES):
        _add_gan_train_flags(models.add_parser(
            name, help=helps.get(name, name),
            description="Train a recipe of ganlab.recipes (RECIPES, TRANSLATION_RECIPES); stops after --steps "
                        "(or --minutes, whichever first)."))
    _add_restore_train_flags(models.add_parser(
        "restore", help="a restorer of photographs: denoise, sr4, inpaint, colorize",
        description="Train a restorer (ganlab.recipes.RESTORE) on crops of scikit-image's photographs; stops "
                    "after --steps (or --minutes, whichever first)."))

    s = sub.add_parser("sample", help="write N samples as a float32 .npy array in [0, 1]")
    s.add_argument("run_dir", type=_path, help="a folder written by `ganlab train` (or a checkpoint file)")
    s.add_argument("--n", type=_positive_int, required=True, help="number of images")
    s.add_argument("--out", type=_path, required=True, help="output .npy file")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--label", type=_nonnegative_int, default=None,
                   help="class-conditional runs (cdcgan): draw only this class, 0..num_classes-1 (default: "
                        "every class equally often); the labels go to OUT.labels.npy")
    s.add_argument("--no-ema", action="store_true", help="use the raw generator even if EMA weights exist")
    s.add_argument("--refine-steps", type=_nonnegative_int, default=0,
                   help="gradient steps on each z towards a higher D logit (default 0: plain G(z); "
                        f"{SAMPLE_REFINE['steps']} is the setting chapter 4 measures)")
    s.add_argument("--refine-step-size", type=_refine_step, default=SAMPLE_REFINE["step_size"],
                   help="size of each refinement step, in (0, 2)")
    s.add_argument("--device", default="cpu")

    e = sub.add_parser("evaluate", help="score N samples of an MNIST run against held-out digits")
    e.add_argument("run_dir", type=_path, help="a folder written by `ganlab train` (or a checkpoint file)")
    e.add_argument("--n", type=_positive_int, required=True, help="number of images to draw and score")
    e.add_argument("--seed", type=_seed, default=0, help="noise seed (and KID's subset seed)")
    e.add_argument("--no-ema", action="store_true", help="use the raw generator even if EMA weights exist")
    e.add_argument("--refine-steps", type=_nonnegative_int, default=0,
                   help="as for `sample` (0: plain G(z))")
    e.add_argument("--refine-step-size", type=_refine_step, default=SAMPLE_REFINE["step_size"],
                   help="as for `sample`")
    e.add_argument("--data-root", type=_path, default=None, help="data folder (default: $GANLAB_DATA, "
                                                                 "else the user cache)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, auto")

    r = sub.add_parser("translate", help="translate images with a `train cyclegan` run (.npy in [0, 1])")
    r.add_argument("run_dir", type=_path, help="a folder written by `ganlab train cyclegan` (or its checkpoint)")
    r.add_argument("--direction", choices=("a2b", "b2a"), required=True,
                   help="a2b: domain A to B (MNIST to MNIST-M), b2a: back")
    r.add_argument("--in", dest="input", type=_path, required=True,
                   help="a .npy array in [0, 1]: (N, H, W) or (N, C, H, W), C 1 or 3, H = W = 28 or 32")
    r.add_argument("--out", type=_path, required=True, help="output .npy file")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, auto")

    r = sub.add_parser("restore", help="apply a restorer trained by `train restore` to an image file",
                       description="Apply the task of a `train restore` run to an 8-bit image of any size "
                                   "(tile by tile): denoise takes the noisy image, sr4 writes an image 4x "
                                   "larger, inpaint fills the pixels --mask marks white, colorize colours the "
                                   "luminance of any image.")
    r.add_argument("run_dir", type=_path, help="a folder written by `ganlab train restore` (or its checkpoint)")
    r.add_argument("--in", dest="input", type=_path, required=True, metavar="IN",
                   help="the image to restore (8-bit PNG, JPEG, ...)")
    r.add_argument("--out", type=_path, required=True, help="the restored image, written as a PNG")
    r.add_argument("--mask", type=_path, default=None,
                   help="inpaint only: an image of IN's size, white (>= 128) where pixels are missing")
    r.add_argument("--tile", type=_positive_int, default=256,
                   help="side of the tiles the image is restored in (memory grows with its square)")
    r.add_argument("--no-ensemble", action="store_true",
                   help="restore the image once, not in its eight flips and rotations averaged (8x faster)")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, auto")
    return parser

# ---- checks shared by the commands: each ends in one line naming the flag (parser.error) or returns

def _device(args, parser) -> "torch.device":
    """``--device`` resolved, or one line naming it (``gpu``, or ``cuda`` on a machine without CUDA)."""
    from .utils import get_device

    try:
        return get_device(args.device)
    except (UsageError, TypeError) as exc:
        parser.error(f"argument --device: {exc}")


def _memory_bytes(device=None) -> int | None:
    """The memory of ``device`` (a GPU's, else this machine's RAM) in bytes; ``None`` when unknown."""
    import torch

    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return None


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.3g} {unit}" if unit != "bytes" else f"{nbytes:.0f} bytes"
        nbytes /= 1000
    return f"{nbytes:.3g} PB"  # pragma: no cover


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text
                                               or "not enough memory" in text)


def _run_checkpoint(args, parser) -> Path:
    """The checkpoint file of ``run_dir`` (a folder written by ``train``, or the file itself)."""
    from .train import CHECKPOINT_NAME

    if not args.run_dir.exists():
        parser.error(f"argument run_dir: {args.run_dir} does not exist")
    path = args.run_dir / CHECKPOINT_NAME if args.run_dir.is_dir() else args.run_dir
    if not path.is_file():
        parser.error(f"argument run_dir: no checkpoint at {path}")
    return path


def _load_run(path: Path, args, parser, device):
    """G (EMA weights unless ``--no-ema``) and, when refining, D of the checkpoint; one line if it is bad."""
    from .checkpoint import CheckpointError
    from .train import load_discriminator, load_generator

    try:
        G = load_generator(path, ema=not args.no_ema, device=device)
        D = load_discriminator(path, device=device) if args.refine_steps else None
    except (CheckpointError, FileNotFoundError) as exc:
        parser.error(f"argument run_dir: {one_line(exc)}")
    return G, D


def _check_draw_memory(args, G, parser) -> None:
    # the noise, the images and their float32 copy live in this machine's memory at once
    per_image = 4 * (G.z_dim + 3 * G.img_channels * G.img_size ** 2)
    memory = _memory_bytes()
    if memory is not None and args.n * per_image > memory:
        parser.error(f"argument --n: {args.n:,} images of {G.img_channels} x {G.img_size} x {G.img_size} "
                     f"need about {_size(args.n * per_image)} of memory, more than this machine's "
                     f"{_size(memory)}")


def _draw_checked(G, D, args, parser, path: Path) -> tuple["torch.Tensor", "torch.Tensor | None"]:
    """:func:`_draw`, with a refinement that blows up, or a generator that makes NaN, as one line."""
    import torch

    try:
        images, labels = _draw(G, D, args)
    except UsageError as exc:  # refine_latents: the gradient steps overflowed
        parser.error(f"argument --refine-step-size: {exc}")
    except Exception as exc:
        if _is_out_of_memory(exc):
            parser.error(f"argument --n: out of memory drawing {args.n:,} images ({one_line(exc)[:120]})")
        raise
    if not bool(torch.isfinite(images).all()):
        parser.error(f"argument run_dir: the generator in {path} made NaN or infinite pixels; its weights "
                     f"are damaged or diverged")
    return images, labels


def _join_processes(args, parser, batch_size: int | None = None) -> "torch.device":
    """``--device``; under torchrun (``WORLD_SIZE`` > 1) the process group joined (NCCL on CUDA, gloo on the
    CPU) and this process's own device, with the global batch (``batch_size``, else ``--batch-size``)
    checked to split evenly among the processes."""
    from .train import distributed

    batch_size = args.batch_size if batch_size is None else batch_size

    device = _device(args, parser)
    if not distributed.launched():
        return device
    try:
        device = distributed.init(args.device)
    except UsageError as exc:
        parser.error(f"argument --device: {one_line(exc)}")
    world = distributed.world_size()
    if batch_size % world:
        parser.error(f"argument --batch-size: the global batch ({batch_size}) must split evenly among "
                     f"the {world} processes torchrun started: pass a multiple of {world}")
    return device


def _check_train_out(args, parser) -> Path:
    """``--out`` against ``--resume`` and ``--overwrite`` (never replace a run unasked); its checkpoint."""
    from .train import CHECKPOINT_NAME

    out = args.out
    if out.exists() and not out.is_dir():
        parser.error(f"argument --out: {out} exists and is not a folder")
    checkpoint = out / CHECKPOINT_NAME
    if args.resume and not checkpoint.is_file():
        parser.error(f"argument --resume: there is no checkpoint to resume at {checkpoint}; leave out "
                     f"--resume to start a new run there")
    if checkpoint.exists() and not (args.resume or args.overwrite):
        parser.error(f"argument --out: {out} already holds a run ({checkpoint}); pass --resume to continue "
                     f"it or --overwrite to replace it, or choose another --out")
    return checkpoint


def _model_args(args) -> dict:
    """The builder's arguments: the recipe's (conditioning included), with the flags' sizes."""
    return dict(RECIPES[args.model].model_args, z_dim=args.z_dim, img_channels=1, img_size=28,
                base_channels=args.base_channels, extra_layers=args.extra_layers, residual=args.residual,
                d_spectral_norm=args.spectral_norm, latent_components=args.latent_components)


def _training_bytes(args) -> tuple[int, float]:
    """``(parameters, bytes)`` a training run of these networks needs, estimated on the meta device.

    Weights, gradients, Adam's two moments and the EMA of G (five copies), plus the activations of one
    batch kept for the backward pass and their gradients (G's, and D's on the real and the fake batch).
    """
    import torch

    from .models import build_gan

    with torch.device("meta"):  # shapes only: nothing is allocated, however large
        # spectral norm adds two vectors per layer, but its power iteration is slow on meta tensors
        G, D = build_gan(RECIPES[args.model].model, **{**_model_args(args), "d_spectral_norm": False})
        acts = [0]

        def count(module, inputs, output):
            if isinstance(output, torch.Tensor):
                acts[0] += output.numel()

        hooks = [m.register_forward_hook(count) for net in (G, D) for m in net.modules()
                 if not list(m.children())]
        y = torch.zeros(1, dtype=torch.int64) if G.num_classes is not None else None  # a conditional pair
        x = G(torch.empty(1, G.z_dim), y)
        per_g = acts[0]
        D(x, y)
        per_d = acts[0] - per_g
        for h in hooks:
            h.remove()
    params = sum(p.numel() for net in (G, D) for p in net.parameters())
    return params, 4.0 * (5 * params + 2 * args.batch_size * (per_g + 2 * per_d))


def _check_training_size(args, parser, device) -> int:
    """Refuse networks or batches that cannot fit in memory before any is allocated; the parameter count."""
    defaults = RECIPES[args.model].model_args
    try:
        params, need = _training_bytes(args)
    except (RuntimeError, ValueError, OverflowError) as exc:  # sizes beyond int64, or that cannot be built
        parser.error(f"argument --z-dim/--base-channels/--extra-layers: these sizes do not build a network "
                     f"({one_line(exc)[:120]})")
    memory = _memory_bytes(device)
    if memory is not None and need > memory:
        grown = [f for f, k in (("--z-dim", "z_dim"), ("--base-channels", "base_channels"),
                                ("--extra-layers", "extra_layers")) if getattr(args, k) > defaults[k]]
        weights = 4.0 * 5 * params
        flags = "--batch-size" if weights < memory / 2 else ("/".join(grown) or "--z-dim/--base-channels")
        parser.error(f"argument {flags}: training {params:,} parameters on batches of {args.batch_size} "
                     f"needs about {_size(need)} of memory, more than the {_size(memory)} of "
                     f"{'this machine' if device.type == 'cpu' else device}")
    return params


def _check_resume(checkpoint: Path, nets: dict, config, args, parser, *, model: str, config_cls) -> None:
    """The checkpoint to resume: readable, the same model, builder arguments and settings as these flags.

    ``nets`` maps the checkpoint's builder-argument entries (``g_args``, ``d_args``) to the networks built
    from the flags; ``model`` is the ``model`` entry expected, ``config_cls`` the config class it holds.
    """
    from .checkpoint import CheckpointError, load_checkpoint
    from .train.checkpoints import arg_differences, config_differences

    try:
        saved = load_checkpoint(checkpoint)
    except CheckpointError as exc:
        parser.error(f"argument --resume: {one_line(exc)}")
    done = saved.get("step")
    if isinstance(done, int) and args.steps is not None and done >= args.steps:
        parser.error(f"argument --steps: {checkpoint} is already at step {done:,}; pass more than that to "
                     f"continue it")
    if saved.get("model") != model:
        parser.error(f"argument --resume: {checkpoint} holds a {saved.get('model')!r} run, not "
                     f"{model!r} ({args.model})")
    differ: dict[str, str] = {}

    def shown(value):  # a builder argument left at its default is not recorded (older checkpoints match)
        return "its default" if value is None else repr(value)

    for key, net in nets.items():
        old = saved.get(key)
        if not isinstance(old, dict):
            parser.error(f"argument --resume: {checkpoint} has no {key!r} entry: it was not written by "
                         f"`train`")
        for name, (was, now) in arg_differences(old, net.model_args).items():
            differ.setdefault(_flag(name), f"{_flag(name)}={shown(was)} (not {shown(now)})")
    try:
        old_config = config_cls.from_dict(saved.get("config") or {}).to_dict()
    except (ValueError, TypeError) as exc:
        parser.error(f"argument --resume: {checkpoint} holds no valid training config "
                     f"({one_line(exc)[:120]})")
    for name, (was, now) in config_differences(old_config, config).items():
        differ.setdefault(_flag(name), f"{_flag(name)}={was!r} (not {now!r})")
    if differ:
        parser.error(f"argument --resume: {checkpoint} was trained with {', '.join(differ.values())}; pass "
                     f"the same flags to resume it, or --overwrite to start again")


def _prepare_out(args, parser, params: int) -> None:
    """Make ``--out`` and check it takes a checkpoint (writable, space free); ``--overwrite`` clears it."""
    from .train import CHECKPOINT_NAME

    try:
        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.out):  # fails now, not after an hour, on a read-only folder
            pass
        free = shutil.disk_usage(args.out).free
    except OSError as exc:
        parser.error(f"argument --out: cannot write to {args.out}: {exc.strerror or exc}")
    need = 2 * 4 * 5 * params  # the checkpoint (weights, Adam's moments, EMA) and its temporary twin
    if need > free:
        parser.error(f"argument --out: a checkpoint of these networks needs about {_size(need)} on disk, but "
                     f"only {_size(free)} is free at {args.out}")
    if args.overwrite:
        for old in [args.out / CHECKPOINT_NAME, *args.out.glob("samples_*.png")]:
            old.unlink(missing_ok=True)


def _config_flag_error(exc: Exception, parser) -> None:
    field = str(exc).split()[0].rstrip(":")
    parser.error(f"argument {_flag(field)}: {exc}")



def _fit_or_exit(fit_call, args, parser, device, batch_size: int):
    """``fit_call()``; a divergence, a checkpoint that does not fit on resume, or no memory: one line."""
    try:
        return fit_call()
    except FloatingPointError as exc:  # divergence: the message names the last good checkpoint, kept
        parser.error(one_line(exc))
    except UsageError as exc:  # a checkpoint that fails the loop's own checks on resume
        parser.error(f"argument --resume: {one_line(exc)}" if args.resume else one_line(exc))
    except Exception as exc:
        if _is_out_of_memory(exc):
            parser.error(f"argument --batch-size: out of memory on {device} at batches of {batch_size} "
                         f"({one_line(exc)[:120]}); the last checkpoint in {args.out} was kept")
        raise


def _train(args, parser) -> int:
    import torch  # noqa: F401  (imported here so `--help` stays fast)

    from .data import MNIST
    from .models import build_gan
    from .train import TrainConfig, distributed, fit, speed_settings
    from .utils import seed_everything

    if args.model in TRANSLATION_RECIPES:
        return _train_cyclegan(args, parser)
    # ---- every check before anything is built, loaded or written
    if args.data != "mnist":
        parser.error(f"argument --data: {args.model} trains on one dataset, mnist; got {args.data!r}")
    if not math.isfinite(args.ema_half_life) or args.ema_half_life < 0:
        parser.error(f"argument --ema-half-life: must be >= 0, got {args.ema_half_life}")
    if not math.isfinite(args.ema_rampup) or args.ema_rampup < 0:
        parser.error(f"argument --ema-rampup: must be >= 0, got {args.ema_rampup}")
    recipe = RECIPES[args.model]  # its networks and settings; the flags override the values they name
    device = _join_processes(args, parser)  # under torchrun: the process group joined, this process's device
    # rank 0 alone looks at and writes --out (another node may not see it); every process gets the verdict
    checkpoint = distributed.from_main(lambda: _check_train_out(args, parser))
    try:
        config = recipe.train_config(
            steps=args.steps, batch_size=args.batch_size,
            lr_g=args.lr_g, lr_d=args.lr_d, betas=(args.beta1, args.beta2), loss=args.loss, seed=args.seed,
            device=args.device,
            precision=args.precision, channels_last=args.channels_last, compile=args.compile,
            ema_half_life=args.ema_half_life or None, ema_rampup=args.ema_rampup or None,
            checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
            max_minutes=args.minutes, progress=not args.quiet and sys.stderr.isatty())
    except ValueError as exc:
        _config_flag_error(exc, parser)
    data = _load_mnist_data(args, parser, lambda: MNIST(args.data_root, train=True, img_size=28,
                                                        download=args.download))
    if args.batch_size > len(data):
        parser.error(f"argument --batch-size: must be at most the number of training images ({len(data):,}), "
                     f"got {args.batch_size:,}")
    params = _check_training_size(args, parser, device)

    # ---- the networks, seeded: their initial weights come from --seed alone
    try:
        seed_everything(args.seed)
        G, D = build_gan(recipe.model, seed=args.seed, **_model_args(args))
        speed_settings(config, device, D=D)  # fp16 on a CPU, compile where unsupported: the flag's error
    except ValueError as exc:
        _config_flag_error(exc, parser)
    except Exception as exc:
        if _is_out_of_memory(exc):
            parser.error(f"argument --z-dim/--base-channels: out of memory building the networks "
                         f"({one_line(exc)[:120]})")
        raise
    if args.resume:
        distributed.from_main(lambda: _check_resume(checkpoint, {"g_args": G, "d_args": D}, config, args,
                                                    parser, model=recipe.model, config_cls=TrainConfig))
    distributed.from_main(lambda: _prepare_out(args, parser, params))
    return _run_training(lambda: fit(G, D, data, config, out_dir=args.out, resume=args.resume), args, parser,
                         device)


def _run_training(train, args, parser, device, *, batch_size: int | None = None, what: str = "",
                  unit: str = "images") -> int:
    """Call ``train()`` (a fit that writes into ``--out``), report it (rank 0 under torchrun), and turn its
    failures into one line. ``batch_size`` (default ``--batch-size``) names the batch in an out-of-memory
    error; ``what`` and ``unit`` word the report ("trained {what}N steps (M {unit}) ...")."""
    from .train import distributed

    start = time.perf_counter()
    result = _fit_or_exit(train, args, parser, device, args.batch_size if batch_size is None else batch_size)
    if distributed.is_main():
        processes = f"; {distributed.world_size()} processes" if distributed.active() else ""
        print(f"trained {what}{result.step} steps ({result.step * result.config.batch_size:,} {unit}) in "
              f"{time.perf_counter() - start:.0f} s; stopped by {result.stopped}; checkpoint: "
              f"{result.checkpoint}{processes}")
    return 0


# the flags of `train` that only the GAN recipes (dcgan, cdcgan) take: cyclegan refuses a value other than the
# default, rather than ignore it
_GAN_ONLY = ("z_dim", "base_channels", "extra_layers", "residual", "latent_components", "beta1", "beta2", "loss",
             "spectral_norm", "ema_half_life", "ema_rampup", "channels_last", "compile", "sample_every")


def _load_mnist_data(args, parser, load):
    """``load()`` of MNIST data, a missing or damaged file as one line naming the flag."""
    from .errors import DataError

    try:
        return load()
    except FileNotFoundError as exc:
        parser.error(f"argument {'--data' if args.data_root is None else '--data-root'}: {exc}")
    except DataError as exc:
        parser.error(f"argument --data-root: {exc}")


def _train_cyclegan(args, parser) -> int:
    """``train cyclegan``: CycleGAN between MNIST (A) and MNIST-M (B), each from its half of the training
    digits, on :data:`ganlab.recipes.MNIST_MNISTM` with the flags' steps, batch size, rates and seed."""
    import torch  # noqa: F401

    from .data import MNIST, MNISTM
    from .train import CycleGANConfig, autocast_context, distributed, fit_cyclegan, resolve_precision

    # ---- every check before anything is built, loaded or written
    if args.data != "mnist:mnistm":
        parser.error(f"argument --data: {args.model} translates between two domains, mnist:mnistm; got "
                     f"{args.data!r}")
    defaults = build_parser().parse_args(["train", args.model, "--out", "x"])  # every flag at its default
    for dest in _GAN_ONLY:
        if getattr(args, dest) != getattr(defaults, dest):
            parser.error(f"argument {_flag(dest)}: a setting of the GAN recipes (dcgan, cdcgan); {args.model} "
                         f"trains ganlab.recipes.MNIST_MNISTM's networks (change them through the Python API)")
    recipe = TRANSLATION_RECIPES[args.model]
    device = _join_processes(args, parser)  # under torchrun: the process group joined, this process's device
    # rank 0 alone looks at and writes --out (another node may not see it); every process gets the verdict
    checkpoint = distributed.from_main(lambda: _check_train_out(args, parser))
    try:
        config = recipe.train_config(
            steps=args.steps, batch_size=args.batch_size, lr_g=args.lr_g, lr_d=args.lr_d, seed=args.seed,
            device=args.device, precision=args.precision, checkpoint_every=args.checkpoint_every,
            max_minutes=args.minutes, progress=not args.quiet and sys.stderr.isatty())
        autocast_context(device, resolve_precision(device, config.precision))  # bf16 on a GPU without it
    except ValueError as exc:
        _config_flag_error(exc, parser)
    digits = _load_mnist_data(args, parser, lambda: MNIST(args.data_root, train=True, download=args.download))
    mnistm = _load_mnist_data(args, parser, lambda: MNISTM(args.data_root, train=True))
    half = len(digits) // 2  # domain A from the first half of the digits, B from the second: never a pair
    domain_a, domain_b = digits.images[:half], mnistm.images[half:]
    if args.batch_size > half:
        parser.error(f"argument --batch-size: must be at most the images of one domain ({half:,}, half the "
                     f"training digits), got {args.batch_size:,}")
    nets = recipe.build(seed=args.seed)
    if args.resume:
        distributed.from_main(lambda: _check_resume(checkpoint, {"g_args": nets.G_AB, "d_args": nets.D_A}, config,
                                                    args, parser, model="cyclegan", config_cls=CycleGANConfig))
    params = sum(p.numel() for net in nets for p in net.parameters())
    distributed.from_main(lambda: _prepare_out(args, parser, params))
    return _run_training(lambda: fit_cyclegan(nets, domain_a, domain_b, config, out_dir=args.out,
                                              resume=args.resume), args, parser, device)


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


def _sample(args, parser) -> int:
    import numpy as np

    device = _device(args, parser)
    path = _run_checkpoint(args, parser)
    if args.out.suffix != ".npy":
        parser.error(f"argument --out: must end in .npy, got {args.out}")
    if args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a folder, not a .npy file")
    G, D = _load_run(path, args, parser, device)
    if not all(isinstance(getattr(G, k, None), int) for k in ("z_dim", "img_channels", "img_size")):
        parser.error(f"argument run_dir: {path} holds a {type(G).__name__}, not an image generator from noise")
    _check_draw_memory(args, G, parser)
    num_classes = getattr(G, "num_classes", None)
    if args.label is not None and num_classes is None:
        parser.error(f"argument --label: the run at {path} is unconditional (its generator takes no labels)")
    if args.label is not None and args.label >= num_classes:
        parser.error(f"argument --label: must be in 0..{num_classes - 1} for this run, got {args.label}")
    images, labels = _draw_checked(G, D, args, parser, path)      # (N, C, H, W) in [-1, 1], (N,) or None
    images = ((images + 1) / 2).clamp_(0, 1)                      # -> [0, 1]
    if images.shape[1] == 1:
        images = images[:, 0]                                     # (N, H, W) for grey images
    if images.shape[-1] == 32 and G.img_channels == 1:
        images = images[..., 2:30, 2:30]                          # MNIST trained padded: back to 28 x 28
    array = images.numpy().astype(np.float32)
    from .utils import atomic_write, remove_stale_temp_files

    label_path = args.out.with_suffix(".labels.npy")
    remove_stale_temp_files(args.out.parent, (args.out.name, label_path.name))

    def save(path: Path, values) -> None:
        def write(tmp):
            with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to a bare temp name
                np.save(fh, values)

        atomic_write(path, write)  # a full or read-only disk: an OSError naming the file (see main)

    save(args.out, array)
    print(f"wrote {array.shape[0]} samples of shape {tuple(array.shape[1:])} to {args.out}")
    if labels is not None:  # a conditional run: the class each image was drawn for, beside the images
        save(label_path, labels.numpy().astype(np.int64))
        print(f"wrote their labels (int64) to {label_path}")
    return 0


def _evaluate(args, parser) -> int:

    from .metrics import evaluate_run_samples, get_mnist_classifier, reference_features
    from .data import MNIST
    from .errors import DataError

    device = _device(args, parser)
    if args.n < 4:  # k-NN precision / recall need more than k = 3 points in each set
        parser.error(f"argument --n: must be at least 4 to score precision and recall, got {args.n}")
    path = _run_checkpoint(args, parser)
    G, D = _load_run(path, args, parser, device)
    shape = (getattr(G, "img_channels", None), getattr(G, "img_size", None))
    if shape[0] != 1 or shape[1] not in (28, 32) or not isinstance(getattr(G, "z_dim", None), int):
        parser.error(f"argument run_dir: {path} is not an MNIST run (grey 28 x 28 or 32 x 32 images from "
                     f"noise), its generator makes (channels, size) = {shape}")
    _check_draw_memory(args, G, parser)
    try:
        held = MNIST(args.data_root, train=False)
        train = MNIST(args.data_root, train=True, limit=args.n)
    except (FileNotFoundError, DataError) as exc:
        parser.error(f"argument --data-root: {exc}")
    try:
        classifier = get_mnist_classifier(args.data_root, device=device, progress=sys.stderr.isatty())
    except UsageError as exc:  # too few training digits to train the domain classifier on
        parser.error(f"argument --data-root: the domain classifier cannot be trained on this data ({exc})")

    # the images `sample` writes, in [-1, 1] at 28 x 28
    images, _ = _draw_checked(G, D, args, parser, path)
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


def _read_images(path: Path, parser) -> "torch.Tensor":
    """``--in``: an .npy array of images in [0, 1], ``(N, H, W)`` or ``(N, C, H, W)`` with C 1 or 3 and
    H = W = 28 or 32, as a float tensor ``(N, C, H, W)`` in [-1, 1]; anything else one line naming it."""
    import numpy as np
    import torch

    if not path.exists():
        parser.error(f"argument --in: {path} does not exist")
    if path.is_dir():
        parser.error(f"argument --in: {path} is a folder, not a .npy file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        parser.error(f"argument --in: {path} is not a .npy array ({one_line(exc)[:120]})")
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        hint = " (0..255 pixels: divide by 255 first)" if getattr(array, "dtype", None) == np.uint8 else ""
        parser.error(f"argument --in: {path} must hold floats in [0, 1], got {getattr(array, 'dtype', '?')}{hint}")
    shape = array.shape
    if not (len(shape) == 3 or (len(shape) == 4 and shape[1] in (1, 3))) or shape[0] == 0 \
            or shape[-1] != shape[-2] or shape[-1] not in (28, 32):
        parser.error(f"argument --in: {path} must hold images (N, H, W) or (N, C, H, W) with N > 0, C 1 or 3 "
                     f"and H = W = 28 or 32, got shape {shape}")
    finite = np.isfinite(array)
    if not finite.all() or array.min() < -1e-3 or array.max() > 1 + 1e-3:
        seen = array[finite]  # the range of the finite values (an all-NaN array has none)
        got = (f"values in [{seen.min():.3g}, {seen.max():.3g}]" if seen.size else "no finite values")
        parser.error(f"argument --in: {path} must hold pixels in [0, 1], got {got}"
                     + ("" if finite.all() else ", and NaN or infinite ones"))
    x = torch.from_numpy(array.astype(np.float32)).clamp(0, 1)
    return (x.unsqueeze(1) if x.dim() == 3 else x) * 2 - 1


def _translate(args, parser) -> int:
    import numpy as np
    import torch.nn.functional as F

    from .checkpoint import CheckpointError
    from .data import to_channels, to_unit
    from .train import load_cyclegan
    from .translate import translate
    from .utils import atomic_write, remove_stale_temp_files

    device = _device(args, parser)
    path = _run_checkpoint(args, parser)
    if args.out.suffix != ".npy":
        parser.error(f"argument --out: must end in .npy, got {args.out}")
    if args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a folder, not a .npy file")
    images = _read_images(args.input, parser)                       # (N, C, H, W) in [-1, 1]
    try:
        run = load_cyclegan(path, device=device)
    except (CheckpointError, FileNotFoundError) as exc:
        parser.error(f"argument run_dir: {one_line(exc)}")
    source, target = (run.a_channels, run.b_channels) if args.direction == "a2b" else \
        (run.b_channels, run.a_channels)
    G = run.generator(args.direction)
    x = to_channels(to_channels(images, source), G.channels)        # a grey side sees the luminance
    if x.shape[-1] != run.img_size:                                 # 28 <-> 32: to the run's size
        x = F.interpolate(x, size=(run.img_size, run.img_size), mode="bilinear", antialias=True,
                          align_corners=False).clamp(-1, 1)
    try:
        out = translate(G, x)                                        # (N, C, S, S) in [-1, 1]
    except Exception as exc:
        if _is_out_of_memory(exc):
            parser.error(f"argument --in: out of memory translating {len(x):,} images ({one_line(exc)[:120]})")
        raise
    out = to_unit(to_channels(out, target))
    array = (out[:, 0] if target == 1 else out).numpy().astype(np.float32)   # (N, S, S) grey, (N, 3, S, S)
    remove_stale_temp_files(args.out.parent, (args.out.name,))

    def write(tmp):
        with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to a bare temp name
            np.save(fh, array)

    atomic_write(args.out, write)
    print(f"translated {len(array)} images {args.direction} to shape {tuple(array.shape[1:])}: {args.out}")
    return 0


# the config fields of `train restore` and the flags that set them
_RESTORE_FLAGS = {"steps": "--steps", "batch_size": "--batch-size", "lr_g": "--lr", "adv_weight": "--adv-weight",
                  "seed": "--seed", "device": "--device", "precision": "--precision",
                  "checkpoint_every": "--checkpoint-every", "max_minutes": "--minutes"}


def _check_restore_resume(checkpoint: Path, args, parser) -> None:
    """The run to resume holds this task and has steps left (its settings are checked by fit_pix2pix)."""
    from .checkpoint import CheckpointError, load_checkpoint

    try:
        saved = load_checkpoint(checkpoint)
    except CheckpointError as exc:
        parser.error(f"argument --resume: {one_line(exc)}")
    task = (saved.get("meta") or {}).get("task") if isinstance(saved.get("meta"), dict) else None
    if saved.get("kind") != "pix2pix" or task is None:
        parser.error(f"argument --resume: {checkpoint} is not a `train restore` run")
    if task != args.task:
        parser.error(f"argument --task: {checkpoint} holds a {task!r} run, not {args.task!r}")
    done = saved.get("step")
    if isinstance(done, int) and args.steps is not None and done >= args.steps:
        parser.error(f"argument --steps: {checkpoint} is already at step {done:,}; pass more than that to "
                     f"continue it")


def _train_restore(args, parser) -> int:
    from .recipes import RESTORE
    from .train import distributed
    from .train.pix2pix import fit_pix2pix

    recipe = RESTORE[args.task]
    # under torchrun: the process group joined, this process's device; rank 0 alone looks at and writes --out
    device = _join_processes(args, parser, args.batch_size or recipe.config.batch_size)
    checkpoint = distributed.from_main(lambda: _check_train_out(args, parser))
    given = dict(steps=args.steps, batch_size=args.batch_size, lr_g=args.lr, adv_weight=args.adv_weight)
    try:
        config = recipe.train_config(
            **{k: v for k, v in given.items() if v is not None}, seed=args.seed, device=args.device,
            precision=args.precision, checkpoint_every=args.checkpoint_every, max_minutes=args.minutes,
            progress=not args.quiet and sys.stderr.isatty())
    except ValueError as exc:
        field = str(exc).split()[0].rstrip(":")
        parser.error(f"argument {_RESTORE_FLAGS.get(field, '--' + field.replace('_', '-'))}: {exc}")
    if args.resume:
        distributed.from_main(lambda: _check_restore_resume(checkpoint, args, parser))
    G, D = recipe.build(seed=args.seed, **({"base_channels": args.base_channels} if args.base_channels else {}))
    params = sum(p.numel() for net in (G, D) for p in net.parameters())
    distributed.from_main(lambda: _prepare_out(args, parser, params))
    data = recipe.data()
    return _run_training(lambda: fit_pix2pix(G, D if config.adv_weight > 0 else None, data, config,
                                             out_dir=args.out, resume=args.resume, meta={"task": args.task}),
                         args, parser, device, batch_size=config.batch_size, what=f"a {args.task} restorer for ",
                         unit="crops")


def _restore(args, parser) -> int:
    from .checkpoint import CheckpointError
    from .restore import MAX_PIXELS, TASKS, read_image, read_mask, restore_image, write_image
    from .train.pix2pix import load_pix2pix_generator

    device = _device(args, parser)
    path = _run_checkpoint(args, parser)
    if args.out.suffix.lower() != ".png":
        parser.error(f"argument --out: must end in .png (a PNG is written), got {args.out}")
    if args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a folder, not a .png file")
    try:
        G, meta = load_pix2pix_generator(path, device=device)
    except (CheckpointError, FileNotFoundError) as exc:
        parser.error(f"argument run_dir: {one_line(exc)}")
    task = meta.get("task")
    if task not in TASKS:
        parser.error(f"argument run_dir: {path} is not a `train restore` run (it names no task)")
    if args.mask is not None and task != "inpaint":
        parser.error(f"argument --mask: only inpaint runs take a mask; {path} is a {task} run")
    if task == "inpaint" and args.mask is None:
        parser.error(f"argument --mask: {path} is an inpaint run: give --mask MASK.png, white where pixels "
                     f"are missing")
    image = read_image(args.input, flag="--in", colour=TASKS[task].colour_input)  # (C, H, W) in [-1, 1]
    h, w = image.shape[1:]
    s = TASKS[task].upscale
    if h * w * s * s > MAX_PIXELS:
        parser.error(f"argument --in: {args.input} is {w} x {h} pixels; {s}x larger it would be "
                     f"{w * s} x {h * s}, more than the {MAX_PIXELS:,} pixels this command writes")
    mask = read_mask(args.mask, (h, w)) if task == "inpaint" else None
    try:
        restored = restore_image(G, task, image, mask, tile=args.tile, ensemble=not args.no_ensemble)
    except Exception as exc:
        if _is_out_of_memory(exc):
            parser.error(f"argument --tile: out of memory restoring tiles of {args.tile} pixels on {device} "
                         f"({one_line(exc)[:120]}); try a smaller --tile")
        raise
    write_image(args.out, restored)
    print(f"{task}: {args.input} ({w} x {h}) -> {args.out} ({restored.shape[2]} x {restored.shape[1]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.model == "restore":
        args.command = "train_restore"
    command = {"train": _train, "train_restore": _train_restore, "evaluate": _evaluate, "sample": _sample,
               "translate": _translate, "restore": _restore}[args.command]
    try:
        return command(args, parser)
    except UsageError as exc:  # a bad file or value that the command did not tie to one flag
        parser.error(one_line(exc))
    except OSError as exc:  # a full disk, a read-only folder: say which file
        if exc.filename is None:
            raise
        parser.error(f"cannot write {exc.filename}: {exc.strerror or exc}" if exc.errno in _WRITE_ERRNOS
                     else f"{exc.filename}: {exc.strerror or exc}")
    finally:
        if "ganlab.train.distributed" in sys.modules:  # `train` under torchrun: leave the process group
            sys.modules["ganlab.train.distributed"].teardown()


# the errors of a write that the disk or its permissions refused
_WRITE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM, errno.EFBIG,
                 getattr(errno, "EDQUOT", -1)}


if __name__ == "__main__":
    raise SystemExit(main())
