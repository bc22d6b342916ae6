"""Training diagnostics: read a training history (and a batch of samples) and flag the usual failures.

Taught in ``book/08_faq.ipynb`` ("FAQ: common problems and their fixes"); every :class:`Finding` links to
the FAQ section that reproduces the problem and shows its fix.

Three rules, each a cheap check that a reader can redo by hand:

* ``"non_finite"``: a NaN or infinite value in any logged series (losses, mean logits, penalties).
  :func:`ganlab.fit` already stops at the first non-finite loss; this rule also covers histories logged
  by hand-written loops.
* ``"d_saturated"``: the discriminator wins. For ``patience`` consecutive log entries either its loss
  sits in ``[0, d_loss_floor)`` (BCE and hinge losses reach 0 only when D separates every batch) or the
  gap between its mean logits on real and on fake images, ``d_real - d_fake``, exceeds ``logit_gap``
  (at a gap of 10, sigmoid gives about 0.99 against 0.01). G's gradients then vanish (Goodfellow et al.
  2014, https://arxiv.org/abs/1406.2661, section 3; Arjovsky & Bottou 2017,
  https://arxiv.org/abs/1701.04862).
* ``"mode_collapse"``: low sample diversity. Either the mean pairwise distance between samples is below
  ``diversity_ratio`` times that of a batch of real images (``reference``), or, for MNIST samples and a
  digit ``classifier`` (:func:`ganlab.metrics.get_mnist_classifier`), the entropy of the predicted labels
  is below ``entropy_floor`` bits (balanced digits give ``log2(10) ≈ 3.32``).

Example::

    result = gl.fit(G, D, data, cfg)
    for finding in gl.diagnose(result, reference=real_batch):
        print(finding)      # [mode_collapse] step 500: ... (see book/08_faq#mode-collapse)
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .utils import check_positive_float, check_positive_int

__all__ = ["Finding", "diagnose", "sample_diversity", "FAQ_PAGE", "FAQ_ANCHORS"]

FAQ_PAGE = "book/08_faq"
# rule code -> section label in the FAQ chapter (a MyST target, so also the rendered page's anchor)
FAQ_ANCHORS = {
    "non_finite": "nan-losses",
    "d_saturated": "discriminator-wins",
    "mode_collapse": "mode-collapse",
}


@dataclass(frozen=True)
class Finding:
    """One problem found by :func:`diagnose`: a rule ``code``, the first ``step`` it shows at (or
    ``None`` when unknown), a ``message`` saying what was seen, and ``faq``, the FAQ section to read."""

    code: str
    step: int | None
    message: str
    faq: str

    def __str__(self) -> str:
        where = f" step {self.step}" if self.step is not None else ""
        return f"[{self.code}]{where}: {self.message} (see {self.faq})"


def _finding(code: str, step: int | None, message: str) -> Finding:
    return Finding(code=code, step=step, message=message, faq=f"{FAQ_PAGE}#{FAQ_ANCHORS[code]}")


def sample_diversity(images: Any) -> float:
    """Mean Euclidean distance between all pairs of images ``(N, ...)`` with ``N >= 2`` (flattened).

    A collapsed generator, whose samples are near copies of each other, scores far below real data.
    """
    x = torch.as_tensor(images)
    if x.dim() < 2 or len(x) < 2:
        raise ValueError(f"images must have shape (N, ...) with N >= 2, got {tuple(x.shape)}")
    x = x.detach().reshape(len(x), -1).double().cpu()
    return float(torch.pdist(x).mean())


def _history_and_samples(history: Any, samples: Any) -> tuple[Mapping[str, Sequence[float]], Any]:
    # accept a TrainResult (its history and last samples) or a plain mapping of series
    if not isinstance(history, Mapping) and hasattr(history, "history"):
        if samples is None and getattr(history, "samples", None):
            samples = history.samples
        history = history.history
    if not isinstance(history, Mapping):
        raise TypeError(f"history must be a mapping of name -> list of floats or a TrainResult, "
                        f"got {type(history).__name__}")
    lengths = {k: len(v) for k, v in history.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history: all series must have the same length, got {lengths}")
    return history, samples


def _last_samples(samples: Any) -> tuple[int | None, torch.Tensor]:
    # a tensor, or fit's list of (step, images): take the last
    if isinstance(samples, (list, tuple)):
        if not samples:
            raise ValueError("samples must not be empty")
        step, images = samples[-1]
        return int(step), torch.as_tensor(images)
    if isinstance(samples, (torch.Tensor, np.ndarray)):
        return None, torch.as_tensor(samples)
    raise TypeError(f"samples must be a tensor (N, C, H, W) or a list of (step, tensor), "
                    f"got {type(samples).__name__}")


def _runs(flags: Sequence[bool], patience: int) -> int | None:
    """Index where the first run of at least ``patience`` consecutive True values starts, else None."""
    count = 0
    for i, flag in enumerate(flags):
        count = count + 1 if flag else 0
        if count == patience:
            return i - patience + 1
    return None


def diagnose(history: Any, samples: Any = None, *, reference: Any = None, classifier: nn.Module | None = None,
             d_loss_floor: float = 0.05, logit_gap: float = 10.0, patience: int = 3,
             diversity_ratio: float = 0.5, entropy_floor: float = 1.5) -> list[Finding]:
    """Check a training history (and optionally samples) for NaNs, a saturated D and mode collapse.

    Args:
        history: ``TrainResult.history`` (``{"step": [...], "d_loss": [...], ...}``, equal lengths) or
            a :class:`ganlab.TrainResult` (then its last samples are used when ``samples`` is None).
        samples: generated images ``(N, C, H, W)`` or fit's list of ``(step, images)`` (the last is used).
            The collapse rule runs only when samples and a ``reference`` or ``classifier`` are given.
        reference: real images ``(M, C, H, W)`` to compare the samples' diversity with.
        classifier: a digit classifier with ``features``/``head`` (MNIST samples only).
        d_loss_floor: D's loss below this (and >= 0) counts as saturated.
        logit_gap: ``d_real - d_fake`` above this counts as saturated.
        patience: how many consecutive log entries a saturated D must last to be reported.
        diversity_ratio: collapse when sample diversity < ``diversity_ratio`` x reference diversity.
        entropy_floor: collapse when the classifier's label entropy (bits) is below this.

    Returns:
        The findings, at most one per rule, in the order non_finite, d_saturated, mode_collapse; an
        empty list when nothing was flagged. ``str(finding)`` reads as one line with its FAQ link.
    """
    history, samples = _history_and_samples(history, samples)
    check_positive_float("d_loss_floor", d_loss_floor)
    check_positive_float("logit_gap", logit_gap)
    check_positive_int("patience", patience)
    check_positive_float("diversity_ratio", diversity_ratio)
    check_positive_float("entropy_floor", entropy_floor)
    steps = [int(s) for s in history["step"]] if "step" in history else None

    def step_at(i: int) -> int | None:
        return steps[i] if steps is not None else None

    findings: list[Finding] = []
    # 1. NaN or infinity in any series: report the earliest
    first = None
    for name, values in history.items():
        bad = [i for i, v in enumerate(values) if not math.isfinite(float(v))]
        if bad and (first is None or bad[0] < first[1]):
            first = (name, bad[0], float(values[bad[0]]))
    if first is not None:
        name, i, value = first
        findings.append(_finding("non_finite", step_at(i), f"{name} is {value} at log entry {i}: training "
                                 f"diverged; lower the learning rates or use a bounded loss"))

    # 2. D saturated for `patience` consecutive entries (only over finite entries)
    if "d_loss" in history:
        d_loss = [float(v) for v in history["d_loss"]]
        gap = ([float(r) - float(f) for r, f in zip(history["d_real"], history["d_fake"])]
               if "d_real" in history and "d_fake" in history else [math.nan] * len(d_loss))
        flags = [(0.0 <= d < d_loss_floor) or g > logit_gap for d, g in zip(d_loss, gap)]
        i = _runs(flags, patience)
        if i is not None:
            detail = f"d_loss {d_loss[i]:.3g}" + (f", logit gap {gap[i]:.3g}" if math.isfinite(gap[i]) else "")
            if "g_loss" in history:
                g = [float(v) for v in history["g_loss"][i:]]
                detail += f", g_loss {g[0]:.3g} -> {max(g):.3g}"
            findings.append(_finding("d_saturated", step_at(i), f"the discriminator wins ({detail}) for "
                                     f"{patience}+ log entries: G gets almost no gradient"))

    # 3. collapse: low diversity of the samples
    if samples is not None and (reference is not None or classifier is not None):
        at, images = _last_samples(samples)
        if reference is not None:
            ours, real = sample_diversity(images), sample_diversity(reference)
            if ours < diversity_ratio * real:
                findings.append(_finding("mode_collapse", at, f"sample diversity {ours:.3g} is below "
                                         f"{diversity_ratio:g} x that of real data ({real:.3g})"))
        if classifier is not None and not any(f.code == "mode_collapse" for f in findings):
            from .metrics import classifier_outputs, label_entropy

            entropy = label_entropy(classifier_outputs(images, classifier)[1].numpy())
            if entropy < entropy_floor:
                findings.append(_finding("mode_collapse", at, f"label entropy {entropy:.2f} bits is below "
                                         f"{entropy_floor:g} (10 balanced digits give 3.32)"))
    elif samples is not None:
        raise ValueError("samples: pass reference (real images) or classifier to check them for collapse")
    return findings
