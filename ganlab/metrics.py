"""Sample-quality metrics: the domain Fréchet distance, confident share and label entropy on MNIST.

Taught in ``book/04_implementation.ipynb`` ("Measuring quality").

* :func:`frechet_distance` is the distance of Heusel et al. 2017 (https://arxiv.org/abs/1706.08500)
  between two Gaussians fitted to feature vectors:
  ``‖μ₁ - μ₂‖² + Tr(Σ₁ + Σ₂ - 2 (Σ₁ Σ₂)^{1/2})``.
* The *domain* Fréchet distance applies it to the 128 penultimate features of
  :class:`ganlab.models.MNISTClassifier`, a small digit classifier that :func:`get_mnist_classifier`
  trains deterministically and caches. It is **not** Inception FID: the numbers are not comparable with
  published FIDs, only with each other (same classifier, same reference, same sample size).
* :func:`confident_share` is the share of samples the classifier labels with probability above a
  threshold (do they look like *some* digit?); :func:`label_entropy` is the entropy, in bits, of the
  histogram of labels it gives (do *all* digits appear? at most ``log2(10) ≈ 3.32``).
* :func:`mode_coverage` (taught in ``book/02_adversarial_game.ipynb``) scores 2-D samples of a known
  mixture of Gaussians the standard way (Metz et al. 2017, https://arxiv.org/abs/1611.02163; Srivastava
  et al. 2017, https://arxiv.org/abs/1705.07761): a sample is *high quality* when it lies within
  3 standard deviations of its nearest mode, and a mode is *covered* when at least one high-quality
  sample has it as nearest mode. The published tables use 2,500 samples.
* :func:`laplacian_variance` measures sharpness (``book/03_gan_vs_vae.ipynb``): the variance of the
  discrete Laplacian over each image's pixels, averaged over images. Blur removes the high frequencies
  the Laplacian responds to, so blurry images score low; compare with the same number for real images.
* :func:`class_accuracy` is the share of images the classifier reads as the class they were asked
  for: the measure of a class-conditional generator (``book/05a_generation_on_demand.ipynb``).
* :func:`psnr`, :func:`ssim` and :func:`laplacian_variance` score image restoration
  (``book/05b_image_restoration.ipynb``): fidelity to the clean image in decibels, structural
  similarity (Wang et al. 2004, through torchmetrics), and a sharpness measure that needs no
  reference (the variance of the Laplacian, high for crisp edges and fine texture, low for blur).
* :func:`photo_realism` is a Fréchet distance for restored photographs that does not reward blur: on
  the features of :class:`ganlab.models.PhotoFeatureNet`, a small CNN that :func:`get_photo_features`
  trains (once, deterministically, then cached) on crops of the training photographs to tell clean crops
  from blurred, enlarged and noisy copies of them. Lower is more like the clean photographs.
* :func:`colourfulness` (Hasler & Süsstrunk 2003), :func:`chroma_error` (the distance of the CIELAB
  a*b* colour coordinates: hue and saturation errors together) and :func:`chroma_correlation` (whether
  the colours vary across the image as the truth's do, which a global tint does not) score
  colourisation per image.
* :func:`inception_fid` computes real FID with torchmetrics where the Inception weights can be had
  (for example on Colab); :func:`fid_with_features` runs torchmetrics' implementation on any feature
  extractor, which lets the two implementations be checked against each other offline.
* :func:`kernel_inception_distance` (KID, Bińkowski et al. 2018, https://arxiv.org/abs/1801.01401) is the
  unbiased squared MMD under the kernel ``(x·y / d + 1)³``, averaged over random subsets, and
  :func:`precision_recall` the k-nearest-neighbour precision and recall of Kynkäänniemi et al. 2019
  (https://arxiv.org/abs/1904.06991); :func:`evaluate_run_samples` adds both to :func:`evaluate_samples`
  on the same classifier features (``python -m ganlab evaluate``).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from scipy.spatial.distance import cdist
from torch import nn

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .errors import UsageError
from .models.classifier import MNISTClassifier, PhotoFeatureNet
from .utils import (check_choice, check_nonnegative_int, check_pixels, check_positive_float,
                    check_positive_int, device_of, get_device)

# metrics accept images a little outside their range (noisy inputs are scored unclipped, then clamped), but
# not values this many range widths beyond it: those are images on another scale (0..255 under (-1, 1))
_PIXEL_SLACK = 4.0

__all__ = [
    "cache_folder",
    "get_mnist_classifier",
    "get_mnistm_classifier",
    "classifier_outputs",
    "feature_statistics",
    "frechet_distance",
    "confident_share",
    "label_histogram",
    "label_entropy",
    "reference_statistics",
    "evaluate_samples",
    "fid_with_features",
    "inception_fid",
    "mode_coverage",
    "METRICS",
    "get_metric",
    "class_accuracy",
    "psnr",
    "ssim",
    "laplacian_variance",
    "restoration_scores",
    "get_photo_features",
    "photo_features",
    "photo_realism",
    "colourfulness",
    "chroma_error",
    "chroma_correlation",
]

_CLASSIFIER_FORMAT = 1  # bump when the training recipe changes, so old caches are not reused
_PHOTO_FEATURES_FORMAT = 1  # the same for get_photo_features
PHOTO_KINDS = ("clean", "blurred", "enlarged", "noisy")  # what PhotoFeatureNet tells apart


def cache_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where trained helper models are cached: ``cache_dir``, else ``$GANLAB_CACHE``, else the user cache.

    (Not the data folder: ``GANLAB_DATA`` may be read-only.)
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("GANLAB_CACHE"):
        return Path(os.environ["GANLAB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ganlab"


def get_mnist_classifier(root: str | os.PathLike | None = None, *, device: str | torch.device = "cpu",
                         cache_dir: str | os.PathLike | None = None, epochs: int = 3, seed: int = 0,
                         train_limit: int | None = None, progress: bool = False) -> MNISTClassifier:
    """The digit classifier behind the domain metrics: trained once, deterministically, then cached.

    It is trained on ``ganlab.data.MNIST(root, train=True)`` (the 8,000-image offline training part, or
    the 60,000 images online) for ``epochs`` epochs on the CPU with a fixed ``seed``, and scored on the
    held-out part; the accuracy is stored as ``heldout_accuracy``. The weights are cached in
    :func:`cache_folder` under a name that hashes everything they depend on; a corrupt cache file is
    retrained over. The returned model is in eval mode with gradients switched off.
    """
    from .data import MNIST

    check_positive_int("epochs", epochs)
    if train_limit is not None:
        check_positive_int("train_limit", train_limit)
    return _cached_classifier("mnist", MNIST(root, train=True, limit=train_limit), MNIST(root, train=False),
                              device=device, cache_dir=cache_dir, epochs=epochs, seed=seed, progress=progress)


def get_mnistm_classifier(root: str | os.PathLike | None = None, *, device: str | torch.device = "cpu",
                          cache_dir: str | os.PathLike | None = None, epochs: int = 3, seed: int = 0,
                          train_limit: int | None = None, progress: bool = False) -> MNISTClassifier:
    """:func:`get_mnist_classifier` for colour digits: the same network with three input channels, trained
    on ``ganlab.data.MNISTM(root, train=True)`` and scored on its held-out part (other photographs).

    It is the judge of MNIST-M images (``book/05c_unpaired_translation.ipynb``): its features give the
    domain Fréchet distance to real MNIST-M digits, its labels the digit a translated image shows.
    """
    from .data import MNISTM

    check_positive_int("epochs", epochs)
    if train_limit is not None:
        check_positive_int("train_limit", train_limit)
    return _cached_classifier("mnistm", MNISTM(root, train=True, limit=train_limit), MNISTM(root, train=False),
                              device=device, cache_dir=cache_dir, epochs=epochs, seed=seed, progress=progress)


def _cached_classifier(name: str, train: Any, held: Any, *, device: str | torch.device,
                       cache_dir: str | os.PathLike | None, epochs: int, seed: int,
                       progress: bool) -> MNISTClassifier:
    """A :class:`MNISTClassifier` for ``train``'s images, trained once (seeded) and cached by a hash of
    everything its weights depend on; scored on ``held`` (``heldout_accuracy``)."""
    from .train.classifier import ClassifierConfig, fit_classifier  # here: drawing code imports metrics

    args = dict(in_channels=train.images.shape[1])
    digest = hashlib.sha256()
    for part in (train.images, train.targets, held.targets):
        digest.update(part.numpy().tobytes())
    digest.update(repr((_CLASSIFIER_FORMAT, epochs, seed, MNISTClassifier(**args).model_args)).encode())
    path = cache_folder(cache_dir) / f"{name}-classifier-{digest.hexdigest()[:16]}.pt"

    def fit() -> tuple[nn.Module, float]:
        torch.manual_seed(seed)
        model = MNISTClassifier(**args)
        fit_classifier(model, train.images, train.targets,
                       ClassifierConfig(epochs=epochs, batch_size=64, seed=seed, progress=progress))
        _, probs = classifier_outputs(held.images, model)
        return model, (probs.argmax(1) == held.targets).float().mean().item()

    return _cached_model(path, MNISTClassifier(**args), fit, device)


def _cached_model(path: Path, model: nn.Module, train: Callable[[], tuple[nn.Module, float]],
                  device: str | torch.device) -> nn.Module:
    """``model`` with the weights cached at ``path``, else ``train()``'s (then cached), in eval mode.

    ``train()`` returns the trained model and its held-out accuracy, kept as ``model.heldout_accuracy``;
    an unreadable cache file is trained over.
    """
    state = None
    if path.is_file():
        try:
            state = load_checkpoint(path)
            model.load_state_dict(state["weights"])
        except (CheckpointError, KeyError, RuntimeError):
            state = None  # unreadable cache: train again and overwrite it
    if state is None:
        model, accuracy = train()
        state = {"weights": model.state_dict(), "heldout_accuracy": accuracy}
        save_checkpoint(path, **state)
    model.heldout_accuracy = float(state["heldout_accuracy"])
    model.eval().requires_grad_(False)
    return model.to(get_device(device))


def _photo_kinds(clean: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each crop of ``clean`` as it is and blurred, enlarged and noisy (:data:`PHOTO_KINDS`), with labels."""
    from torchvision.transforms.functional import gaussian_blur

    g = torch.Generator().manual_seed(seed)
    n, _, h, w = clean.shape
    blurred = torch.cat([gaussian_blur(x[None], [9, 9], [float(s)] * 2)
                         for x, s in zip(clean, 0.5 + torch.rand(n, generator=g))])     # sigma 0.5 .. 1.5 px
    factors = torch.randint(1, 3, (n,), generator=g).tolist()                          # 2x or 4x
    enlarged = torch.cat([F.interpolate(F.interpolate(x[None], scale_factor=1 / 2 ** f, mode="bicubic",
                                                      antialias=True), size=(h, w), mode="bicubic")
                          for x, f in zip(clean, factors)])
    sigma = (3 + 12 * torch.rand(n, 1, 1, 1, generator=g)) / 255                        # 3 .. 15 / 255
    noisy = clean + 2 * sigma * torch.randn(clean.shape, generator=g)
    images = torch.cat([clean, blurred, enlarged, noisy]).clamp(-1, 1)
    return images, torch.arange(len(PHOTO_KINDS)).repeat_interleave(n)


def get_photo_features(*, device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None,
                       n_crops: int = 1_500, size: int = 32, epochs: int = 3, seed: int = 0,
                       progress: bool = False) -> PhotoFeatureNet:
    """The feature network of :func:`photo_realism`: trained once, deterministically, then cached.

    ``n_crops`` clean ``size x size`` crops of the training photographs
    (:data:`ganlab.data.RESTORE_TRAIN_PHOTOS`, at full, three-quarter and half size) are each shown as
    they are, blurred (Gaussian, 0.5 to 1.5 pixels), enlarged from a 2 or 4 times smaller copy (bicubic)
    and with noise (3 to 15 / 255), and a :class:`ganlab.models.PhotoFeatureNet` learns to tell the four
    apart (``epochs`` passes, CPU, fixed ``seed``). Its accuracy on crops of the held-out photographs
    (:data:`ganlab.data.RESTORE_TEST_PHOTOS` and :data:`ganlab.data.OTHER_PHOTOS`) is stored as
    ``heldout_accuracy`` (chance is 1/4). Cached in :func:`cache_folder` under a name that hashes every
    setting; the model is returned in eval mode.
    """
    from .data import OTHER_PHOTOS, RESTORE_TEST_PHOTOS, RESTORE_TRAIN_PHOTOS, PhotoPatches
    from .train.classifier import ClassifierConfig, fit_classifier

    for name, value in (("n_crops", n_crops), ("size", size), ("epochs", epochs)):
        check_positive_int(name, value)
    key = repr((_PHOTO_FEATURES_FORMAT, RESTORE_TRAIN_PHOTOS, PHOTO_KINDS, n_crops, size, epochs, seed,
                PhotoFeatureNet().model_args))
    path = cache_folder(cache_dir) / f"photo-features-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"

    def train() -> tuple[nn.Module, float]:
        images, labels = _photo_kinds(PhotoPatches(RESTORE_TRAIN_PHOTOS, size=size).batch(0, n_crops, seed=seed),
                                      seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = PhotoFeatureNet()
        fit_classifier(model, images, labels, ClassifierConfig(epochs=epochs, batch_size=64, max_shift=0,
                                                               seed=seed, progress=progress))
        held = PhotoPatches(RESTORE_TEST_PHOTOS + OTHER_PHOTOS, size=size, scales=(1.0,))
        held, held_labels = _photo_kinds(held.batch(0, 200, seed=seed + 1), seed + 1)
        with torch.no_grad():
            return model, (model(held).argmax(1) == held_labels).float().mean().item()

    return _cached_model(path, PhotoFeatureNet(), train, device)


@torch.no_grad()
def photo_features(images: torch.Tensor, net: nn.Module, *, batch_size: int = 256) -> torch.Tensor:
    """The features ``(N, D)`` (float64, CPU) of colour images ``(N, 3, H, W)`` in [-1, 1] under ``net``."""
    check_positive_int("batch_size", batch_size)
    images = check_pixels("images", images, slack=_PIXEL_SLACK).clamp(-1, 1)
    if images.dim() != 4 or images.shape[1] != 3 or len(images) == 0:
        raise UsageError(f"images must have shape (N, 3, H, W) with N > 0, got {tuple(images.shape)}")
    device = device_of(net)
    return torch.cat([net.features(chunk.to(device).float()).double().cpu() for chunk in images.split(batch_size)])


def _tiles(images: torch.Tensor, tile: int | None) -> torch.Tensor:
    # (N, C, H, W) -> (N * H // tile * W // tile, C, tile, tile): the whole tiles of each image
    if tile is None:
        return images
    check_positive_int("tile", tile)
    n, c, h, w = images.shape
    if tile > min(h, w):
        raise UsageError(f"tile must be at most the images' side ({min(h, w)}), got {tile}")
    x = images[..., :h // tile * tile, :w // tile * tile].unfold(2, tile, tile).unfold(3, tile, tile)
    return x.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, tile, tile)


def photo_realism(images: torch.Tensor, reference: torch.Tensor, net: nn.Module | None = None, *,
                  tile: int | None = None) -> float:
    """Fréchet distance between the :func:`photo_features` of ``images`` and of clean ``reference`` crops.

    Both ``(N, 3, H, W)`` in [-1, 1] (``N >= 2`` each; compare distances only at equal ``N`` and crop
    size, the estimate is biased upwards at small ``N``). ``tile`` scores the ``tile x tile`` pieces of
    every image instead of whole images (more samples for the covariance). ``net`` defaults to
    :func:`get_photo_features`. Lower is more like the reference: a blurred, noisy or overshooting
    restoration moves its features' statistics away from those of clean crops, however close each pixel
    is on average.
    """
    net = net if net is not None else get_photo_features()
    mu1, s1 = feature_statistics(photo_features(_tiles(images, tile), net))
    mu2, s2 = feature_statistics(photo_features(_tiles(reference, tile), net))
    return frechet_distance(mu1, s1, mu2, s2)


@torch.no_grad()
def classifier_outputs(images: torch.Tensor, classifier: nn.Module, *,
                       batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(N, feature_dim)`` (float64) and class probabilities ``(N, num_classes)``, on the CPU.

    ``images``: ``(N, C, 28, 28)`` or ``(N, C, 32, 32)`` in [-1, 1], ``C`` the classifier's input channels;
    batches go to the classifier's device.
    """
    check_positive_int("batch_size", batch_size)
    images = check_pixels("images", images, slack=_PIXEL_SLACK)
    if images.dim() != 4 or len(images) == 0:
        raise UsageError(f"images must have shape (N, C, H, W) with N > 0, got {tuple(images.shape)}")
    device = device_of(classifier)
    was_training = classifier.training
    classifier.eval()
    feats, probs = [], []
    try:
        for chunk in images.split(batch_size):
            f = classifier.features(chunk.to(device).float())
            feats.append(f.double().cpu())
            probs.append(F.softmax(classifier.head(f), dim=1).cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(feats), torch.cat(probs)


def _as_float64(name: str, x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be an array of numbers") from None
    if not np.all(np.isfinite(arr)):
        raise UsageError(f"{name} holds NaN or infinite values")
    return arr


def _check_covariance(name: str, s: np.ndarray) -> np.ndarray:
    # symmetric positive semi-definite, up to round-off relative to its largest entry; returns eigenvalues
    scale = max(float(np.abs(s).max()), 1e-300)
    if not np.allclose(s, s.T, rtol=0, atol=1e-6 * scale):
        raise UsageError(f"{name} must be a covariance matrix (symmetric), got one with |S - S^T| up to "
                         f"{float(np.abs(s - s.T).max()):.3g}")
    w = linalg.eigvalsh((s + s.T) / 2)
    if w.min() < -1e-6 * max(scale, float(np.abs(w).max())):
        raise UsageError(f"{name} must be a covariance matrix (positive semi-definite), got an eigenvalue of "
                         f"{w.min():.3g}")
    return w


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (float64) of features ``(N, D)``, ``N >= 2``."""
    f = _as_float64("features", features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (N, D) with N >= 2, got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """``‖μ₁ - μ₂‖² + Tr(Σ₁ + Σ₂ - 2 (Σ₁ Σ₂)^{1/2})`` in float64.

    The square root is taken of the symmetric matrix ``Σ₁^{1/2} Σ₂ Σ₁^{1/2}`` (which has the same trace
    root as ``Σ₁ Σ₂``) through its eigenvalues, with negative round-off clipped to zero: stable for the
    singular covariances that ReLU features produce. Empty inputs, and matrices that are not covariances
    (not symmetric, or with a negative eigenvalue beyond round-off), raise a ``UsageError`` naming them.
    """
    m1, m2 = _as_float64("mu1", mu1), _as_float64("mu2", mu2)
    s1, s2 = _as_float64("sigma1", sigma1), _as_float64("sigma2", sigma2)
    if m1.ndim != 1 or m1.shape != m2.shape:
        raise UsageError(f"mu1 and mu2 must be vectors of the same length, got {m1.shape} and {m2.shape}")
    d = m1.shape[0]
    if d == 0:
        raise UsageError("mu1 and mu2 are empty: the Fréchet distance needs features of at least "
                         "one dimension")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise UsageError(f"{name} must have shape ({d}, {d}), got {s.shape}")
        _check_covariance(name, s)
    # Σ₁^{1/2} from the eigen-decomposition of the (symmetrised) covariance
    w1, v1 = linalg.eigh((s1 + s1.T) / 2)
    root1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    middle = root1 @ s2 @ root1
    w = linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = np.sqrt(np.clip(w, 0, None)).sum()
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def _probs(probs: Any) -> np.ndarray:
    # class probabilities: in [0, 1], each row summing to 1 (logits are the usual mistake)
    p = _as_float64("probs", probs)
    if p.ndim != 2 or len(p) == 0 or p.shape[1] == 0:
        raise UsageError(f"probs must have shape (N, num_classes) with N > 0, got {p.shape}")
    sums = p.sum(axis=1)
    if p.min() < -1e-6 or p.max() > 1 + 1e-6 or np.abs(sums - 1).max() > 1e-3:
        raise UsageError(f"probs must be class probabilities (each row in [0, 1], summing to 1), got values "
                         f"in [{p.min():.3g}, {p.max():.3g}] and row sums in [{sums.min():.3g}, "
                         f"{sums.max():.3g}]; logits need a softmax first")
    return p


def confident_share(probs: Any, threshold: float = 0.9) -> float:
    """Share of rows of ``probs`` ``(N, C)`` whose largest probability is above ``threshold``."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    return float(np.mean(_probs(probs).max(axis=1) > threshold))


def label_histogram(probs: Any) -> np.ndarray:
    """How many rows of ``probs`` ``(N, C)`` have their largest probability at each class: ``(C,)`` ints."""
    p = _probs(probs)
    return np.bincount(p.argmax(axis=1), minlength=p.shape[1])


def label_entropy(probs: Any) -> float:
    """Entropy in bits of the histogram of predicted labels: ``log2(C)`` when balanced, 0 when one class."""
    counts = label_histogram(probs).astype(np.float64)
    share = counts[counts > 0] / counts.sum()
    return float(-(share * np.log2(share)).sum() + 0.0)


def reference_statistics(images: torch.Tensor, classifier: nn.Module) -> dict[str, Any]:
    """Feature statistics of real images (computed once, then passed to :func:`evaluate_samples`)."""
    feats, probs = classifier_outputs(images, classifier)
    mu, sigma = feature_statistics(feats)
    return {"mu": mu, "sigma": sigma, "n": len(feats)}


def evaluate_samples(images: torch.Tensor, *, classifier: nn.Module, reference: dict[str, Any],
                     threshold: float = 0.9) -> dict[str, Any]:
    """Score images in [-1, 1] against a :func:`reference_statistics` dictionary.

    Returns ``fd`` (domain Fréchet distance), ``confident`` (share above ``threshold``), ``entropy``
    (bits), ``histogram`` (list of counts per predicted label) and ``n``.
    """
    if not isinstance(reference, dict) or not {"mu", "sigma"} <= set(reference):
        raise ValueError("reference must come from reference_statistics(images, classifier)")
    feats, probs = classifier_outputs(images, classifier)
    mu, sigma = feature_statistics(feats)
    return {
        "fd": frechet_distance(mu, sigma, reference["mu"], reference["sigma"]),
        "confident": confident_share(probs, threshold),
        "entropy": label_entropy(probs),
        "histogram": label_histogram(probs).tolist(),
        "n": len(feats),
    }


# --- torchmetrics ----------------------------------------------------------------------------------

def _torchmetrics_fid():
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Inception FID needs torchmetrics (and torch-fidelity for its weights): "
                          "pip install torchmetrics torch-fidelity") from exc
    return FrechetInceptionDistance


class _FeatureWrapper(nn.Module):
    """Adapts a feature extractor to torchmetrics' custom ``feature=`` interface (it reads ``num_features``)."""

    def __init__(self, extractor: nn.Module, num_features: int) -> None:
        super().__init__()
        self.extractor = extractor
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x).reshape(len(x), -1)


@torch.no_grad()
def fid_with_features(fake: torch.Tensor, real: torch.Tensor, feature_extractor: nn.Module, *,
                      num_features: int) -> float:
    """torchmetrics' FID with a custom feature extractor (any module mapping a batch to ``(B, num_features)``)."""
    check_positive_int("num_features", num_features)
    FID = _torchmetrics_fid()
    metric = FID(feature=_FeatureWrapper(feature_extractor, num_features), normalize=True).double()
    metric.update(torch.as_tensor(real), real=True)
    metric.update(torch.as_tensor(fake), real=False)
    return float(metric.compute())


def _to_rgb_unit(images: torch.Tensor) -> torch.Tensor:
    x = ((torch.as_tensor(images).float() + 1) / 2).clamp(0, 1)  # [-1, 1] -> [0, 1]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def inception_fid(fake: torch.Tensor, real: torch.Tensor, *, device: str | torch.device = "auto",
                  batch_size: int = 100) -> float:
    """FID with torchmetrics' Inception-v3 features (2048-d), for images in [-1, 1] (grey is repeated).

    Needs the Inception weights, which torch-fidelity downloads on first use: where there is no network
    (the book's offline build machines) this raises a ``RuntimeError`` that says so.
    """
    check_positive_int("batch_size", batch_size)
    FID = _torchmetrics_fid()
    dev = get_device(device)
    try:
        metric = FID(feature=2048, normalize=True).to(dev)
    except Exception as exc:  # torchmetrics raises several kinds when torch-fidelity or the weights are missing
        raise RuntimeError(
            "Inception FID is unavailable here: the Inception-v3 weights could not be loaded "
            f"(they need torch-fidelity and a network connection on first use): {str(exc).splitlines()[0]}. "
            "Use the domain Fréchet distance (evaluate_samples) offline.") from None
    for is_real, images in ((True, real), (False, fake)):
        for chunk in _to_rgb_unit(images).split(batch_size):
            metric.update(chunk.to(dev), real=is_real)
    return float(metric.compute())


# --- 2-D mixtures: modes covered and high-quality share --------------------------------------------

def mode_coverage(samples: Any, centers: Any, *, std: float, n_std: float = 3.0) -> dict[str, Any]:
    """Modes covered and share of high-quality samples of 2-D (or any-D) samples from a Gaussian mixture.

    Each sample is assigned to its nearest centre (Euclidean). It is *high quality* when that distance
    is at most ``n_std * std`` (``std``: the per-coordinate standard deviation of each mixture
    component). A mode counts as *covered* when at least one high-quality sample is nearest to it.

    Args:
        samples: ``(N, D)`` points.
        centers: ``(K, D)`` mixture means, e.g. :func:`ganlab.data.ring_centers`.
        std: the components' standard deviation (0.02 for the usual ring, 0.05 for the grid).
        n_std: the radius of "high quality", in standard deviations (3 in the papers).

    Returns ``modes`` (int, 0..K), ``high_quality`` (float in [0, 1]), ``counts`` (list of K ints: the
    high-quality samples nearest to each mode) and ``n`` (samples scored).
    """
    x, c = _as_float64("samples", samples), _as_float64("centers", centers)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"samples must have shape (N, D) with N > 0, got {x.shape}")
    if c.ndim != 2 or len(c) == 0 or c.shape[1] != x.shape[1]:
        raise ValueError(f"centers must have shape (K, {x.shape[1]}) with K > 0, got {c.shape}")
    std = check_positive_float("std", std)
    n_std = check_positive_float("n_std", n_std)
    dist = cdist(x, c)                                                   # (N, K) Euclidean
    nearest = dist.argmin(axis=1)                                        # (N,)
    good = dist[np.arange(len(x)), nearest] <= n_std * std               # (N,) high quality
    counts = np.bincount(nearest[good], minlength=len(c))                # (K,)
    return {"modes": int((counts > 0).sum()), "high_quality": float(good.mean()),
            "counts": counts.tolist(), "n": len(x)}


METRICS: dict[str, Callable[..., float]] = {
    "fd": frechet_distance,
    "confident": confident_share,
    "entropy": label_entropy,
}


def get_metric(name: str) -> Callable[..., float]:
    """A metric function by name: ``"fd"``, ``"confident"``, ``"entropy"``, ``"psnr"``, ``"ssim"``, ``"laplacian_variance"``."""
    if name not in METRICS:
        raise ValueError(f"name must be one of {', '.join(map(repr, sorted(METRICS)))}; got {name!r}")
    return METRICS[name]


# --- class-conditional generation ------------------------------------------------------------------

def class_accuracy(images: torch.Tensor, labels: torch.Tensor, *, classifier: nn.Module) -> float:
    """Share of ``images`` (in [-1, 1]) that ``classifier`` reads as their ``labels`` (the class asked for)."""
    labels = torch.as_tensor(labels).long().cpu()
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    _, probs = classifier_outputs(images, classifier)
    return float((probs.argmax(dim=1) == labels).float().mean())


# --- image restoration -----------------------------------------------------------------------------

def _unit_pair(pred: Any, target: Any, value_range: tuple[float, float],
               names: tuple[str, str] = ("pred", "target")) -> tuple[torch.Tensor, torch.Tensor]:
    # both to [0, 1] (clamped, as saving them as images would), float64, shape-checked; NaN and images on
    # another scale than value_range (0..255 under (-1, 1)) are refused rather than scored
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise UsageError(f"value_range must be two numbers (low, high), got {value_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise UsageError(f"value_range must be (low, high) with high > low, got {value_range!r}")
    p = check_pixels(names[0], pred, value_range=(lo, hi), slack=_PIXEL_SLACK).detach().cpu().double()
    t = check_pixels(names[1], target, value_range=(lo, hi), slack=_PIXEL_SLACK).detach().cpu().double()
    if p.shape != t.shape or p.dim() != 4 or len(p) == 0:
        raise ValueError(f"pred and target must have the same shape (N, C, H, W), got {tuple(p.shape)} "
                         f"and {tuple(t.shape)}")
    return ((p - lo) / (hi - lo)).clamp(0, 1), ((t - lo) / (hi - lo)).clamp(0, 1)


def _reduce(values: torch.Tensor, reduction: str, choices: tuple[str, ...] = ("mean", "none")) -> float | torch.Tensor:
    check_choice("reduction", reduction, choices)
    if reduction == "none":
        return values
    return float(values.mean())


def psnr(pred: Any, target: Any, *, mask: Any = None, value_range: tuple[float, float] = (-1.0, 1.0),
         reduction: str = "mean") -> float | torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image, on the [0, 1] scale: ``10 log10(1 / MSE)``.

    ``pred`` and ``target`` are ``(N, C, H, W)`` in ``value_range`` (both are clamped to it). ``mask``
    (``(N, 1 or C, H, W)``, true where a pixel counts) restricts the mean squared error to those pixels,
    e.g. the missing region of an inpainting task. ``reduction="mean"`` averages the images' PSNRs (the
    usual convention), ``"none"`` returns them ``(N,)``, and ``"pooled"`` is the PSNR of the mean squared
    error over all (masked) pixels of all images, which stays finite when some images are restored
    perfectly (a perfect image has infinite PSNR).
    """
    check_choice("reduction", reduction, ("mean", "none", "pooled"))
    p, t = _unit_pair(pred, target, value_range)
    err = (p - t) ** 2
    if mask is None:
        if reduction == "pooled":
            return float(10 * torch.log10(1.0 / err.mean()))
        mse = err.flatten(1).mean(dim=1)
    else:
        m = torch.as_tensor(mask).detach().cpu().bool()
        if m.dim() != 4 or m.shape[0] != p.shape[0] or m.shape[2:] != p.shape[2:] or m.shape[1] not in (1, p.shape[1]):
            raise ValueError(f"mask must have shape ({p.shape[0]}, 1 or {p.shape[1]}, {p.shape[2]}, {p.shape[3]}), "
                             f"got {tuple(m.shape)}")
        m = m.expand_as(err).double()
        counts = m.flatten(1).sum(dim=1)
        if (counts == 0).any():
            raise ValueError("mask: every image needs at least one pixel to score")
        if reduction == "pooled":
            return float(10 * torch.log10(counts.sum() / (err * m).sum()))
        mse = (err * m).flatten(1).sum(dim=1) / counts
    return _reduce(10 * torch.log10(1.0 / mse), reduction, ("mean", "none", "pooled"))


def ssim(pred: Any, target: Any, *, value_range: tuple[float, float] = (-1.0, 1.0),
         reduction: str = "mean") -> float | torch.Tensor:
    """Structural similarity (Wang et al. 2004) on the [0, 1] scale, per image, through torchmetrics.

    The usual settings: an 11 x 11 Gaussian window with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``; colour
    images average the channels. 1 means identical; ``reduction`` as in :func:`psnr`.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    p, t = _unit_pair(pred, target, value_range)
    values = structural_similarity_index_measure(p, t, data_range=1.0, reduction="none")
    return _reduce(values, reduction)


def laplacian_variance(images: Any, *, value_range: tuple[float, float] = (-1.0, 1.0),
                       reduction: str = "mean") -> float | torch.Tensor:
    """Sharpness without a reference: the variance of the 3 x 3 Laplacian of each image (on [0, 1]).

    The Laplacian is the kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` (scikit-image's
    ``filters.laplace``), applied to each channel of ``images`` ``(N, C, H, W)`` after mapping
    ``value_range`` to [0, 1], on interior pixels only (no padding), so that borders add nothing. It is 0
    for a constant or linear ramp image and 16 for a 0/1 checkerboard (every response is ±4). Colour
    images get the mean over their three channels, so colour edges count as well as brightness edges.
    Blur lowers it, noise and crisp edges raise it: compare it with the clean images'
    (``book/03_gan_vs_vae.ipynb``, ``book/05b_image_restoration.ipynb``). ``reduction="none"`` returns
    the ``(N,)`` values.
    """
    x, _ = _unit_pair(images, images, value_range, names=("images", "images"))
    n, c = x.shape[:2]
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c}")
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype)
    lap = F.conv2d(x.reshape(n * c, 1, *x.shape[2:]), kernel[None, None])  # (N * C, 1, H - 2, W - 2)
    return _reduce(lap.flatten(1).var(dim=1, unbiased=False).reshape(n, c).mean(dim=1), reduction)


def restoration_scores(pred: Any, target: Any, *, mask: Any = None, psnr_reduction: str = "mean",
                       value_range: tuple[float, float] = (-1.0, 1.0)) -> dict[str, float]:
    """``psnr`` (on ``mask`` when given, reduced by ``psnr_reduction``), ``ssim`` (whole images) and
    ``sharpness`` (Laplacian variance of ``pred``), each averaged over the images."""
    check_choice("psnr_reduction", psnr_reduction, ("mean", "pooled"))
    return {"psnr": psnr(pred, target, mask=mask, value_range=value_range, reduction=psnr_reduction),
            "ssim": ssim(pred, target, value_range=value_range),
            "sharpness": laplacian_variance(pred, value_range=value_range)}


def colourfulness(images: Any, *, value_range: tuple[float, float] = (-1.0, 1.0),
                  reduction: str = "mean") -> float | torch.Tensor:
    """The colourfulness of Hasler & Süsstrunk (2003) per image, on the [0, 255] scale of their paper.

    With ``rg = R - G`` and ``yb = (R + G) / 2 - B`` over the pixels of a colour image,
    ``sqrt(std(rg)² + std(yb)²) + 0.3 sqrt(mean(rg)² + mean(yb)²)``: 0 for a grey image, about 15 for
    "slightly", 33 for "moderately" and 59 for "highly" colourful photographs in their survey. A global
    tint scores only its small second term: its colours do not vary.
    """
    x, _ = _unit_pair(images, images, value_range, names=("images", "images"))
    if x.shape[1] != 3:
        raise ValueError(f"images must have 3 channels, got {x.shape[1]}")
    r, g, b = (255 * x[:, i].flatten(1) for i in range(3))
    rg, yb = r - g, (r + g) / 2 - b
    std = (rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False)).sqrt()
    mean = (rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2).sqrt()
    return _reduce(std + 0.3 * mean, reduction)


def chroma_error(pred: Any, target: Any, *, value_range: tuple[float, float] = (-1.0, 1.0),
                 reduction: str = "mean") -> float | torch.Tensor:
    """The mean distance per image between the CIELAB a*b* coordinates of ``pred`` and ``target``.

    The a*b* plane holds a colour's hue (angle) and saturation (radius) and leaves out its lightness, so
    this is the colour error of a colouriser whose lightness is exact. A grey image scores the target's
    mean chroma; a wrong hue, or a global tint, scores more than the grey image where the target's
    colours differ from it. Colour images ``(N, 3, H, W)``; scikit-image's ``rgb2lab`` (D65).
    """
    p, t = _unit_pair(pred, target, value_range)
    if p.shape[1] != 3:
        raise ValueError(f"pred and target must have 3 channels, got {p.shape[1]}")
    return _reduce((_ab(p) - _ab(t)).norm(dim=-1).mean(dim=1), reduction)


def _ab(images: torch.Tensor) -> torch.Tensor:
    # (N, 3, H, W) on [0, 1] -> the CIELAB a*b* coordinates (N, H * W, 2), scikit-image's rgb2lab (D65)
    from skimage.color import rgb2lab

    lab = rgb2lab(images.permute(0, 2, 3, 1).numpy(), channel_axis=-1)
    return torch.from_numpy(lab[..., 1:]).flatten(1, 2)


def chroma_correlation(pred: Any, target: Any, *, value_range: tuple[float, float] = (-1.0, 1.0),
                       reduction: str = "mean") -> float | torch.Tensor:
    """How far the colours of ``pred`` vary as those of ``target`` do, per image: the correlation of their
    CIELAB a*b* vectors over the pixels, ``Σ (p - p̄)·(t - t̄) / sqrt(Σ |p - p̄|² Σ |t - t̄|²)``.

    1 when each pixel's colour departs from the image's mean colour the way the truth's does; 0 for a
    grey image and for a global tint, whose colour does not vary; negative for colours that vary the
    wrong way. Colour images ``(N, 3, H, W)``.
    """
    p, t = _unit_pair(pred, target, value_range)
    if p.shape[1] != 3:
        raise ValueError(f"pred and target must have 3 channels, got {p.shape[1]}")
    dp, dt = (ab - ab.mean(dim=1, keepdim=True) for ab in (_ab(p), _ab(t)))
    num = (dp * dt).sum(dim=(1, 2))
    den = (dp.pow(2).sum(dim=(1, 2)) * dt.pow(2).sum(dim=(1, 2))).sqrt()
    # colours that vary by less than 0.01 a*b* units (rounding in a grey image) do not vary
    flat = (dp.pow(2).mean(dim=(1, 2)) < 1e-4) | (dt.pow(2).mean(dim=(1, 2)) < 1e-4)
    return _reduce(torch.where(flat, torch.zeros_like(num), num / den.clamp_min(1e-12)), reduction)


METRICS.update(psnr=psnr, ssim=ssim, laplacian_variance=laplacian_variance)


# --- KID and k-NN precision / recall on classifier features -----------------------------------------

def _feature_matrix(name: str, x: Any) -> np.ndarray:
    # (N, D) float64, finite, N >= 1, D >= 1; the error names the argument
    f = _as_float64(name, x)
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N > 0 and D > 0, got {f.shape}")
    return f


def _feature_pair(fake: Any, real: Any) -> tuple[np.ndarray, np.ndarray]:
    f, r = _feature_matrix("features_fake", fake), _feature_matrix("features_real", real)
    if f.shape[1] != r.shape[1]:
        raise ValueError(f"features_fake and features_real must have the same feature dimension, got "
                         f"{f.shape[1]} and {r.shape[1]}")
    return f, r


def _cubic_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # k(x, y) = (x·y / d + 1)^3, the kernel of KID
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, n = len(x), len(y)
    k_xx, k_yy = _cubic_kernel(x, x), _cubic_kernel(y, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))   # i != j only: the unbiased U-statistic
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    across = _cubic_kernel(x, y).sum() / (m * n)
    return float(within_x + within_y - 2 * across)


def polynomial_mmd2(features_fake: Any, features_real: Any) -> float:
    """Unbiased squared MMD between two feature sets under the cubic kernel ``k(x, y) = (x·y / d + 1)³``.

    With ``x₁..x_m`` (fake) and ``y₁..y_n`` (real) in ``R^d`` (Gretton et al. 2012, JMLR 13, eq. 3;
    https://jmlr.org/papers/v13/gretton12a.html)::

        MMD²_u = 1/(m(m-1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n-1)) Σ_{i≠j} k(y_i, y_j) - 2/(mn) Σ_{i,j} k(x_i, y_j)

    The diagonal terms ``k(x_i, x_i)`` are left out, which makes the estimate unbiased: its expectation
    is the population MMD², 0 when both sets come from one distribution, so a single estimate can be
    negative. This is the quantity :func:`kernel_inception_distance` averages over subsets. Needs
    ``m, n >= 2``; float64 throughout; memory ``O((m + n)²)``.
    """
    x, y = _feature_pair(features_fake, features_real)
    for name, f in (("features_fake", x), ("features_real", y)):
        if len(f) < 2:
            raise ValueError(f"{name} must hold at least 2 rows for the unbiased estimate, got {len(f)}")
    return _mmd2_unbiased(x, y)


def kernel_inception_distance(features_fake: Any, features_real: Any, *, subset_size: int = 1000,
                              n_subsets: int = 100, seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018, "Demystifying MMD GANs", https://arxiv.org/abs/1801.01401): ``(mean, std)``.

    The kernel is the cubic polynomial ``k(x, y) = (x·y / d + 1)³`` on ``d``-dimensional features. Each
    of ``n_subsets`` rounds draws ``subset_size`` rows of ``features_fake`` and ``subset_size`` rows of
    ``features_real`` without replacement (a fresh draw per round, from ``numpy.random.default_rng(seed)``)
    and computes the unbiased estimate of :func:`polynomial_mmd2` on them; the result is the mean of the
    ``n_subsets`` estimates and their standard deviation (``ddof=0``, as in the authors' code; it is the
    spread of one subset's estimate, not the standard error of the mean). Unlike FID the estimator is
    unbiased whatever the sample size, so values from different sample sizes can be compared, and a
    value near 0 (possibly negative) means the two sets are not told apart. On Inception features
    (2048-d) this is the published KID; here it is usually applied to the domain classifier's features
    (:func:`evaluate_run_samples`), so, like the domain Fréchet distance, it is comparable only with itself.

    Args:
        features_fake, features_real: ``(N_fake, d)`` and ``(N_real, d)`` arrays or tensors, finite.
        subset_size: rows per subset, ``2 <= subset_size <= min(N_fake, N_real)`` (1000 in the paper).
        n_subsets: subsets averaged (100 in the paper).
        seed: seed of the subset draws.
    """
    x, y = _feature_pair(features_fake, features_real)
    check_positive_int("subset_size", subset_size)
    check_positive_int("n_subsets", n_subsets)
    check_nonnegative_int("seed", seed)
    if subset_size < 2:
        raise ValueError(f"subset_size must be at least 2 for the unbiased estimate, got {subset_size}")
    n = min(len(x), len(y))
    if subset_size > n:
        raise ValueError(f"subset_size must be at most the smaller set's size ({len(x)} fake, {len(y)} real "
                         f"rows), got {subset_size}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_subsets)
    for i in range(n_subsets):
        values[i] = _mmd2_unbiased(x[rng.choice(len(x), subset_size, replace=False)],
                                   y[rng.choice(len(y), subset_size, replace=False)])
    return float(values.mean()), float(values.std())


def _knn_radii(features: np.ndarray, k: int, batch_size: int) -> np.ndarray:
    # distance from each row to its k-th nearest other row (the row itself, at distance 0, excluded by
    # index, so an exact duplicate elsewhere in the set still counts as a neighbour at distance 0)
    radii = np.empty(len(features))
    for start in range(0, len(features), batch_size):
        d = cdist(features[start:start + batch_size], features)            # (b, N) Euclidean
        rows = np.arange(len(d))
        d[rows, start + rows] = np.inf
        radii[start:start + len(d)] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return radii


def _share_inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, batch_size: int) -> float:
    # share of points within (<=) the radius of at least one centre's hypersphere
    inside = 0
    for start in range(0, len(points), batch_size):
        d = cdist(points[start:start + batch_size], centres)               # (b, M)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(points)


def precision_recall(features_fake: Any, features_real: Any, *, k: int = 3,
                     batch_size: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, https://arxiv.org/abs/1904.06991): ``(precision, recall)``.

    Each set approximates its distribution's support (its "manifold") by a union of balls: around each
    feature vector ``φ``, a ball whose radius is the Euclidean distance from ``φ`` to its ``k``-th
    nearest neighbour in the same set, the point itself excluded (``k = 3`` in the paper). With
    ``f(φ, Φ) = 1`` when ``‖φ - φ'‖ <= r_k(φ')`` for at least one ``φ' ∈ Φ``::

        precision = 1/|Φ_fake| Σ_{φ ∈ Φ_fake} f(φ, Φ_real)    (share of fakes inside the real manifold)
        recall    = 1/|Φ_real| Σ_{φ ∈ Φ_real} f(φ, Φ_fake)    (share of reals inside the fake manifold)

    Precision falls when samples leave the data (poor quality), recall when parts of the data are never
    generated (mode collapse). Both depend on ``k`` and on the set sizes (the paper uses 50,000 of each),
    so compare them only at equal sizes. An outlier of the real set has a large ball, so samples far from
    the data but near a few real outliers still count as precise: an early MNIST run whose features all
    sit in one low-activation region scores a high precision with a recall near 0 (Naeem et al. 2020,
    https://arxiv.org/abs/2002.09797, discuss this and propose density and coverage). Distances are exact (``scipy.spatial.distance.cdist``, float64)
    and computed ``batch_size`` rows at a time, so memory is ``O(batch_size * max(N_fake, N_real))``.

    Args:
        features_fake, features_real: ``(N_fake, d)`` and ``(N_real, d)``, finite; each set needs more
            than ``k`` rows.
        k: the neighbour that sets the radii.
        batch_size: rows of the distance matrix held at once.
    """
    x, y = _feature_pair(features_fake, features_real)
    check_positive_int("k", k)
    check_positive_int("batch_size", batch_size)
    for name, f in (("features_fake", x), ("features_real", y)):
        if len(f) <= k:
            raise ValueError(f"{name} must hold more than k={k} rows (a k-th neighbour besides the point "
                             f"itself), got {len(f)}")
    precision = _share_inside(x, y, _knn_radii(y, k, batch_size), batch_size)
    recall = _share_inside(y, x, _knn_radii(x, k, batch_size), batch_size)
    return precision, recall


def reference_features(images: torch.Tensor, classifier: nn.Module) -> dict[str, Any]:
    """:func:`reference_statistics` plus the features themselves (``"features"``, ``(N, D)`` float64).

    KID and precision / recall need the real feature vectors, not only their mean and covariance. The
    dictionary also works as the ``reference`` of :func:`evaluate_samples` (same ``mu``, ``sigma``, ``n``).
    """
    feats, _ = classifier_outputs(images, classifier)
    mu, sigma = feature_statistics(feats)
    return {"mu": mu, "sigma": sigma, "n": len(feats), "features": feats.numpy()}


def evaluate_run_samples(images: torch.Tensor, *, classifier: nn.Module, reference: dict[str, Any],
                         threshold: float = 0.9, k: int = 3, kid_subset_size: int | None = None,
                         kid_subsets: int = 100, seed: int = 0) -> dict[str, Any]:
    """:func:`evaluate_samples` plus KID and precision / recall, on the same classifier features.

    ``reference`` comes from :func:`reference_features`. Returns everything :func:`evaluate_samples`
    returns (``fd``, ``confident``, ``entropy``, ``histogram``, ``n``: the same numbers, computed the same
    way) and ``kid``, ``kid_std`` (:func:`kernel_inception_distance`; ``kid_subset_size`` defaults to
    ``min(1000, N, N_real)``, ``kid_subsets`` subsets drawn with ``seed``) and ``precision``, ``recall``
    (:func:`precision_recall` with ``k``).
    """
    if not isinstance(reference, dict) or "features" not in reference or not {"mu", "sigma"} <= set(reference):
        raise ValueError("reference must come from reference_features(images, classifier)")
    feats, probs = classifier_outputs(images, classifier)
    real = reference["features"]
    if kid_subset_size is None:
        kid_subset_size = min(1000, len(feats), len(real))
    mu, sigma = feature_statistics(feats)
    scores = {
        "fd": frechet_distance(mu, sigma, reference["mu"], reference["sigma"]),
        "confident": confident_share(probs, threshold),
        "entropy": label_entropy(probs),
        "histogram": label_histogram(probs).tolist(),
        "n": len(feats),
    }
    scores["kid"], scores["kid_std"] = kernel_inception_distance(
        feats, real, subset_size=kid_subset_size, n_subsets=kid_subsets, seed=seed)
    scores["precision"], scores["recall"] = precision_recall(feats, real, k=k)
    return scores


__all__ += ["polynomial_mmd2", "kernel_inception_distance", "precision_recall", "reference_features",
            "evaluate_run_samples"]
