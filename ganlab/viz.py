"""Plots for the book: image grids, samples over training, and training curves.

Every function draws and returns a matplotlib ``Figure``; none of them shows it (no ``plt.show()``):
the notebook decides, and Jupyter Book renders the returned figure (STYLE.md, rule 15). Images are
accepted in ganlab's range [-1, 1] and gridded with ``torchvision.utils.make_grid``.
Used throughout the book, first in ``book/04_implementation.ipynb``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from .utils import check_positive_int

__all__ = ["image_grid", "samples_over_time", "image_rows", "loss_curves", "history_plot"]


def _as_images(images) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    x = x.detach().float().cpu()
    if x.dim() == 3:  # (N, H, W) grey
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] not in (1, 3) or len(x) == 0:
        raise ValueError(f"images must have shape (N, C, H, W) or (N, H, W) with C in (1, 3) and N > 0, "
                         f"got {tuple(x.shape)}")
    return x


def _grid_array(images, nrow: int, value_range: tuple[float, float]) -> np.ndarray:
    grid = make_grid(_as_images(images), nrow=nrow, padding=2, normalize=True, value_range=value_range,
                     pad_value=1.0)                               # (3, H', W') in [0, 1]
    return grid.permute(1, 2, 0).numpy()                          # (H', W', 3) for imshow


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def image_grid(images, *, nrow: int = 8, ax: Axes | None = None, title: str | None = None,
               value_range: tuple[float, float] = (-1.0, 1.0), size: float = 0.6) -> Figure:
    """Draw images ``(N, C, H, W)`` (or ``(N, H, W)``) in [-1, 1] as one grid with ``nrow`` per row.

    ``value_range`` is the pixel range of the input (``(0, 1)`` for images in [0, 1]); ``size`` is the
    width in inches of one image when a new figure is made.
    """
    check_positive_int("nrow", nrow)
    x = _as_images(images)
    ncol = min(nrow, len(x))
    nrows = -(-len(x) // nrow)
    fig, ax = _new_axes(ax, (max(2.0, size * ncol), max(1.2, size * nrows)))
    ax.imshow(_grid_array(x, nrow, value_range), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def samples_over_time(samples: Sequence[tuple[int, torch.Tensor]], *, n_show: int = 8,
                      size: float = 0.6) -> Figure:
    """One row per snapshot ``(step, images)`` (as in ``TrainResult.samples``): the first ``n_show`` images."""
    if len(samples) == 0:
        raise ValueError("samples must hold at least one (step, images) pair")
    return image_rows({f"step {step}": images for step, images in samples}, n_show=n_show, size=size)


def image_rows(rows: Mapping[str, torch.Tensor], *, n_show: int = 8, size: float = 0.6,
               title: str | None = None) -> Figure:
    """One labelled row per entry ``label: images`` (e.g. input / restored / target): the first ``n_show`` each.

    Rows may mix grey and colour images (grey is shown grey); all images are in [-1, 1].
    """
    check_positive_int("n_show", n_show)
    if len(rows) == 0:
        raise ValueError("rows must hold at least one (label, images) entry")
    fig, axes = plt.subplots(len(rows), 1, figsize=(size * n_show + 1.0, size * len(rows) + 0.2 + 0.3 * bool(title)),
                             squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        ax.imshow(_grid_array(_as_images(images)[:n_show], n_show, (-1.0, 1.0)), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        for spine in ax.spines.values():
            spine.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)  # running mean while the window fills
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def history_plot(history: Mapping[str, Sequence[float]], keys: Sequence[str], *, x: str = "step",
                 ax: Axes | None = None, smooth: int = 1, title: str | None = None,
                 ylabel: str | None = None, logy: bool = False) -> Figure:
    """Plot ``history[key]`` against ``history[x]`` for each key; ``smooth`` is a moving-average window."""
    check_positive_int("smooth", smooth)
    if x not in history:
        raise ValueError(f"x: {x!r} is not in the history (keys: {', '.join(history)})")
    missing = [k for k in keys if k not in history]
    if missing:
        raise ValueError(f"keys: {', '.join(missing)} not in the history (keys: {', '.join(history)})")
    fig, ax = _new_axes(ax, (6.0, 3.2))
    xs = np.asarray(history[x], dtype=float)
    for key in keys:
        ys = np.asarray(history[key], dtype=float)
        if len(ys) != len(xs):
            raise ValueError(f"history[{key!r}] has {len(ys)} values but history[{x!r}] has {len(xs)}")
        ax.plot(xs, _smooth(ys, smooth), label=key)
    ax.set_xlabel(x)
    if ylabel:
        ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def loss_curves(history: Mapping[str, Sequence[float]], *, ax: Axes | None = None, smooth: int = 5,
                title: str = "losses") -> Figure:
    """The discriminator's and the generator's losses over training (moving average of ``smooth`` entries)."""
    return history_plot(history, ["d_loss", "g_loss"], ax=ax, smooth=smooth, title=title, ylabel="loss")
