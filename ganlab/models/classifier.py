"""The small classifiers behind ganlab's domain metrics (see :mod:`ganlab.metrics`).

:class:`MNISTClassifier` plays the part Inception-v3 plays in FID: its 128-d penultimate activations are
the features of the "domain Fréchet distance", and its softmax gives the confident-classification share and
the label histogram. It is trained from scratch by :func:`ganlab.metrics.get_mnist_classifier`,
deterministically, and cached. It is not Inception, so its numbers are not comparable with published FIDs.

:class:`PhotoFeatureNet` does the same for photographs (:func:`ganlab.metrics.get_photo_features`): trained
on crops of clean photographs to tell them from the same crops blurred, enlarged from a smaller copy, or
noisy, its features measure what restorers get wrong: missing fine detail, soft edges, residual noise.
"""
from __future__ import annotations

import torch
from torch import nn

from ..utils import check_image_channels

__all__ = ["MNISTClassifier", "PhotoFeatureNet"]


class MNISTClassifier(nn.Module):
    """A LeNet-style CNN for ``(B, in_channels, 28, 28)`` images in [-1, 1]; 32x32 inputs are centre-cropped.

    Args:
        num_classes: number of labels (10 digits).
        feature_dim: width of the penultimate layer, the features used by the Fréchet distance.
        in_channels: 1 for MNIST, 3 for colour digits (MNIST-M, ``ganlab.metrics.get_mnistm_classifier``).
    """

    def __init__(self, *, num_classes: int = 10, feature_dim: int = 128, in_channels: int = 1) -> None:
        super().__init__()
        check_image_channels("in_channels", in_channels)
        self.num_classes, self.feature_dim, self.in_channels = num_classes, feature_dim, in_channels
        self.model_args = dict(num_classes=num_classes, feature_dim=feature_dim, in_channels=in_channels)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),   # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Flatten(),                                                             # (B, 3136)
            nn.Linear(64 * 7 * 7, feature_dim), nn.ReLU(inplace=True),                # (B, feature_dim)
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        c = self.in_channels
        if x.dim() != 4 or x.shape[1] != c or x.shape[-2:] not in ((28, 28), (32, 32)):
            raise ValueError(f"x must have shape (B, {c}, 28, 28) or (B, {c}, 32, 32), got {tuple(x.shape)}")
        return x[..., 2:30, 2:30] if x.shape[-1] == 32 else x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``(B, feature_dim)``."""
        return self.body(self._prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes)``."""
        return self.head(self.features(x))


class PhotoFeatureNet(nn.Module):
    """A small CNN for colour crops ``(B, 3, H, W)`` in [-1, 1] (any size of at least 16): class logits.

    Four 3 x 3 convolutions (two of stride 2) and then, per channel, the mean and the standard deviation
    over the positions: the features ``(B, 2 * width)``, the energy and the spread of each detector's
    response, on which :func:`ganlab.metrics.photo_realism` computes a Fréchet distance.

    Args:
        num_classes: the kinds of crop told apart (4: clean, blurred, enlarged, noisy).
        width: channels of the last convolutions (the features are twice as many).
    """

    def __init__(self, *, num_classes: int = 4, width: int = 64) -> None:
        super().__init__()
        self.num_classes, self.width = num_classes, width
        self.feature_dim = 2 * width
        self.model_args = dict(num_classes=num_classes, width=width)
        half = width // 2
        self.body = nn.Sequential(
            nn.Conv2d(3, half, 3, padding=1), nn.ReLU(inplace=True),                  # (B, w/2, H, W)
            nn.Conv2d(half, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),    # (B, w, H/2, W/2)
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),   # (B, w, H/4, W/4)
        )
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel mean and standard deviation of the last convolution ``(B, 2 * width)``."""
        if x.dim() != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 16:
            raise ValueError(f"x must have shape (B, 3, H, W) with H, W >= 16, got {tuple(x.shape)}")
        h = self.body(x).flatten(2)                                                 # (B, w, H/4 * W/4)
        return torch.cat([h.mean(dim=2), h.std(dim=2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes)``."""
        return self.head(self.features(x))
