"""The small MNIST classifier behind ganlab's domain metrics (see :mod:`ganlab.metrics`).

It plays the part Inception-v3 plays in FID: its 128-d penultimate activations are the features of the
"domain Fréchet distance", and its softmax gives the confident-classification share and the label
histogram. It is trained from scratch by :func:`ganlab.metrics.get_mnist_classifier`, deterministically,
and cached. It is not Inception, so its numbers are not comparable with published FIDs.
"""
from __future__ import annotations

import torch
from torch import nn

from ..utils import check_image_channels

__all__ = ["MNISTClassifier"]


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
