"""The training loop of the metrics' digit classifier (``ganlab.metrics.get_mnist_classifier``).

Cross-entropy with Adam under a one-cycle learning-rate schedule (Smith & Topin 2018,
https://arxiv.org/abs/1708.07120), on the shared run skeleton. Every batch is shifted by up to 2 pixels
in each direction (random translations), which makes the classifier's features, on which the domain
Fréchet distance is computed, less sensitive to where a digit sits. One ``torch.Generator`` seeded with
``config.seed`` draws each epoch's permutation and then every step's shift, in that order, so the
classifier is the same on every run.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..utils import check_bool, check_nonnegative_int, check_positive_float, check_positive_int, check_seed
from .loop import Run

__all__ = ["ClassifierConfig", "fit_classifier"]


@dataclass
class ClassifierConfig:
    """Every setting of the classifier's training (field names as in the other loop configs)."""

    epochs: int = 3                     # passes over the images (the step budget is epochs * batches per epoch)
    batch_size: int = 64                # images per step
    lr: float = 2e-3                    # the one-cycle schedule's peak learning rate
    max_shift: int = 2                  # random translations of up to this many pixels per direction
    seed: int = 0                       # seeds the permutations and the shifts (seed weights with torch.manual_seed)
    progress: bool = False              # show a tqdm progress bar

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive_float("lr", self.lr)
        check_nonnegative_int("max_shift", self.max_shift)
        check_seed("seed", self.seed)
        check_bool("progress", self.progress)


def fit_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   config: ClassifierConfig | None = None) -> dict[str, list[float]]:
    """Train ``model`` (logits over classes) on ``images`` ``(N, C, H, W)`` and ``labels`` ``(N,)``, in place.

    Returns the history (the last batch's loss at the end of each epoch); ``model`` is left in eval mode.
    """
    config = config if config is not None else ClassifierConfig()
    if not isinstance(config, ClassifierConfig):
        raise TypeError(f"config must be a ClassifierConfig, got {type(config).__name__}")
    steps_per_epoch = len(images) // config.batch_size
    if steps_per_epoch == 0:
        raise UsageError(f"batch_size ({config.batch_size}) is larger than the data ({len(images)} images)")

    # ---- setup
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # the schedule sets every step's rate
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr,
                                                   total_steps=config.epochs * steps_per_epoch)
    model.train()
    perm = torch.arange(len(images))

    # ---- loop
    with Run(steps=config.epochs * steps_per_epoch, log_every=steps_per_epoch, progress=config.progress,
             desc="MNIST classifier", postfix={"loss": ".3f"}, advice="Lower the learning rate.") as run:
        while run.running():
            epoch, i = divmod(run.step, steps_per_epoch)
            if i == 0:
                perm = torch.randperm(len(images), generator=g)
            idx = perm[i * config.batch_size:(i + 1) * config.batch_size]
            s = config.max_shift
            dy, dx = torch.randint(-s, s + 1, (2,), generator=g).tolist()
            x = torch.roll(images[idx], shifts=(dy, dx), dims=(2, 3))            # (B, C, H, W), shifted
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            run.end_step({"loss": loss.detach()})
    model.eval()
    return run.history
