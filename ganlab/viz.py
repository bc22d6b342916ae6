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

__all__ = ["image_grid", "samples_over_time", "image_rows", "loss_curves", "history_plot", "game_snapshot",
           "game_plot", "game_frames", "game_animation", "game_snapshot_of", "game_explorer"]


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


# --- the 2-D game: the discriminator's surface and the generator's samples -------------------------
# Taught in book/02_adversarial_game.ipynb, in the spirit of GAN Lab (Kahng et al. 2019,
# https://arxiv.org/abs/1809.01587): D's output over the plane as a coloured surface, real points,
# generated points, and the direction in which G's next step moves each generated point.

REAL_COLOR, FAKE_COLOR = "#1b7837", "#762a83"  # green: real, purple: generated (GAN Lab's colours)


def _points(name: str, x) -> np.ndarray:
    arr = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {arr.shape}")
    return arr


def _d_on_points(D, x: torch.Tensor) -> torch.Tensor:
    # a packing discriminator (PacGAN) judges `pack` points at once: show it each point packed with copies
    # of itself, so that the surface is defined point by point
    pack = getattr(D, "pack", 1)
    return D(x.repeat_interleave(pack, dim=0)) if pack > 1 else D(x)  # (N,) logits


def game_snapshot(G, D, *, z: torch.Tensor, extent: tuple[float, float, float, float] = (-3.0, 3.0, -3.0, 3.0),
                  resolution: int = 60, output: str = "probability", step: int | None = None) -> dict:
    """Freeze the 2-D game at one moment: D's surface on a grid, G's points for ``z``, and G's pull on them.

    Args:
        G, D: a generator of 2-D points and a discriminator of them (e.g. ``build_gan("toy")``).
        z: ``(N, G.z_dim)`` noise; keep it fixed across snapshots so the same points are followed.
        extent: ``(xmin, xmax, ymin, ymax)`` of the grid.
        resolution: grid points per side.
        output: ``"probability"`` (σ of D's logit, for the cross-entropy losses) or ``"score"`` (the raw
            output, for a Wasserstein critic).
        step: the training step, stored for titles.

    Returns a dict of NumPy arrays: ``surface`` ``(resolution, resolution)``, ``fake`` ``(N, 2)``,
    ``pull`` ``(N, 2)`` (the gradient of D's logit at each generated point: the direction G's
    non-saturating step moves it, up to a positive factor), ``extent``, ``output`` and ``step``.
    Both networks are run in eval mode without changing their weights; their modes are restored.
    """
    from .utils import check_choice, device_of

    check_positive_int("resolution", resolution)
    check_choice("output", output, ("probability", "score"))
    if len(extent) != 4 or not (extent[0] < extent[1] and extent[2] < extent[3]):
        raise ValueError(f"extent must be (xmin, xmax, ymin, ymax) with min < max, got {extent!r}")
    device = device_of(D)
    modes = G.training, D.training
    G.eval()
    D.eval()
    try:
        xs = torch.linspace(extent[0], extent[1], resolution)
        ys = torch.linspace(extent[2], extent[3], resolution)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(device)  # (R*R, 2), row-major in y
        with torch.no_grad():
            logits = _d_on_points(D, grid).float().cpu()
            fake = G(z.to(device_of(G))).float()
        surface = torch.sigmoid(logits) if output == "probability" else logits
        points = fake.detach().to(device).requires_grad_(True)
        (pull,) = torch.autograd.grad(_d_on_points(D, points).sum(), points)  # (N, 2)
    finally:
        G.train(modes[0])
        D.train(modes[1])
    return {"surface": surface.reshape(resolution, resolution).numpy(), "fake": fake.cpu().numpy(),
            "pull": pull.float().cpu().numpy(), "extent": tuple(float(e) for e in extent), "output": output,
            "step": step}


def game_plot(snapshot: Mapping, real=None, *, ax: Axes | None = None, title: str | None = None,
              arrows: bool = True, n_real: int = 500, size: float = 3.2) -> Figure:
    """Draw one :func:`game_snapshot`: D's surface, real points (green), generated points (purple), G's pull.

    The surface is D's probability of "real" (green where D says real, purple where it says generated)
    or, for a critic, its score. Arrows show the direction each generated point is pulled, all scaled to
    the same length. ``real``: ``(N, 2)`` points, of which the first ``n_real`` are drawn.
    """
    check_positive_int("n_real", n_real)
    missing = {"surface", "fake", "pull", "extent", "output"} - set(snapshot)
    if missing:
        raise ValueError(f"snapshot must come from game_snapshot (missing {', '.join(sorted(missing))})")
    fig, ax = _new_axes(ax, (size, size))
    surface, extent = snapshot["surface"], snapshot["extent"]
    if snapshot["output"] == "probability":
        vmin, vmax = 0.0, 1.0
    else:
        vmax = float(np.abs(surface).max()) or 1.0
        vmin = -vmax
    im = ax.imshow(surface, origin="lower", extent=extent, cmap="PRGn", vmin=vmin, vmax=vmax,
                   interpolation="bilinear", alpha=0.85)
    if real is not None:
        r = _points("real", real)[:n_real]
        ax.scatter(r[:, 0], r[:, 1], s=4, c=REAL_COLOR, alpha=0.6, linewidths=0, label="real")
    fake = _points("fake", snapshot["fake"])
    ax.scatter(fake[:, 0], fake[:, 1], s=5, c=FAKE_COLOR, alpha=0.8, linewidths=0, label="generated")
    if arrows:
        pull = _points("pull", snapshot["pull"])
        norm = np.linalg.norm(pull, axis=1, keepdims=True)
        unit = np.divide(pull, norm, out=np.zeros_like(pull), where=norm > 0)
        k = max(1, len(fake) // 150)  # at most ~150 arrows stay readable
        length = 0.04 * (extent[1] - extent[0])
        ax.quiver(fake[::k, 0], fake[::k, 1], length * unit[::k, 0], length * unit[::k, 1], angles="xy",
                  scale_units="xy", scale=1, color=FAKE_COLOR, width=0.004, alpha=0.7)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is None and snapshot.get("step") is not None:
        title = f"step {snapshot['step']}"
    if title:
        ax.set_title(title, fontsize=9)
    im.set_label("D")
    return fig


def game_frames(snapshots: Sequence[Mapping], real=None, *, ncols: int = 4, size: float = 2.4,
                arrows: bool = True, suptitle: str | None = None) -> Figure:
    """Several :func:`game_snapshot` frames side by side (the static version of :func:`game_animation`)."""
    check_positive_int("ncols", ncols)
    if len(snapshots) == 0:
        raise ValueError("snapshots must hold at least one snapshot")
    ncols = min(ncols, len(snapshots))
    nrows = -(-len(snapshots) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for ax in axes.flat[len(snapshots):]:
        ax.set_axis_off()
    for ax, snap in zip(axes.flat, snapshots):
        game_plot(snap, real, ax=ax, arrows=arrows)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def game_animation(snapshots: Sequence[Mapping], real=None, *, interval: int = 250, size: float = 3.6,
                   dpi: int = 60, arrows: bool = True, title: str | None = None):
    """A ``matplotlib.animation.FuncAnimation`` playing :func:`game_snapshot` frames in order.

    The figure is made without pyplot, so a notebook shows only what you render from it, for example
    ``IPython.display.HTML(anim.to_jshtml())`` (no ffmpeg needed). Keep the frames few and ``dpi`` low:
    ``to_jshtml`` embeds every frame as a PNG.
    """
    from matplotlib.animation import FuncAnimation

    check_positive_int("interval", interval)
    check_positive_int("dpi", dpi)
    if len(snapshots) == 0:
        raise ValueError("snapshots must hold at least one snapshot")
    fig = Figure(figsize=(size, size), dpi=dpi)
    ax = fig.add_subplot()

    def draw(i: int):
        ax.clear()
        snap = snapshots[i]
        label = f"step {snap['step']}" if snap.get("step") is not None else f"frame {i}"
        game_plot(snap, real, ax=ax, arrows=arrows, title=f"{title}: {label}" if title else label)
        return []

    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92)
    return FuncAnimation(fig, draw, frames=len(snapshots), interval=interval, blit=False)


# --- an interactive game: the ipywidgets explorer around a ganlab.train.ToyGame ---------------------

_EXPLORER_LOSSES = {
    # label shown in the explorer: (loss name in ganlab.losses, gradient-penalty weight)
    "non-saturating: G minimises -log D(G(z))": ("non_saturating", 0.0),
    "saturating (minimax): G minimises log(1 - D(G(z)))": ("minimax", 0.0),
    "Wasserstein + gradient penalty (λ = 0.1)": ("wasserstein", 0.1),  # λ = 0.1: WGAN-GP's toy setting
    "hinge": ("hinge", 0.0),
    "least squares": ("least_squares", 0.0),
}


def _png(snapshot: Mapping, real, *, size: float = 4.0, dpi: int = 80) -> bytes:
    import io

    fig = Figure(figsize=(size, size), dpi=dpi)  # not registered with pyplot: nothing is shown twice
    game_plot(snapshot, real, ax=fig.add_subplot())
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def game_snapshot_of(game, **kwargs) -> dict:
    """:func:`game_snapshot` of a game in progress (a :class:`ganlab.train.ToyGame`): its ``G``, ``D``,
    fixed noise ``z`` and ``step``; a critic (Wasserstein loss) shows its score, any other D its probability."""
    kwargs.setdefault("output", "score" if game.loss == "wasserstein" else "probability")
    return game_snapshot(game.G, game.D, z=game.z, step=game.step, **kwargs)


def game_explorer(game, *, centers=None, std: float | None = None, steps_per_click: int = 200):
    """An ipywidgets explorer of the 2-D game: pick the loss, the learning rates and the D steps per G
    step, then play the game and watch D's surface and G's points move (GAN Lab in a notebook).

    ``game``: the game to show and play, a :class:`ganlab.train.ToyGame` (anything with its ``data``,
    ``G``, ``D``, ``z``, ``step``, ``history``, ``loss``, ``lr_d``, ``lr_g``, ``n_critic``, ``gp_weight``,
    ``set``, ``play``, ``reset`` and ``samples``); the drawing code here never trains anything itself.
    ``centers``/``std``: the mixture's means and standard deviation, to report modes covered and the
    high-quality share (:func:`ganlab.metrics.mode_coverage`) as it plays.
    Returns the widget (an ``ipywidgets.HBox``: controls left, picture right) with the game as its
    ``game`` attribute and its "Play" action as ``play()``. Works in
    Jupyter and Colab; needs ``ipywidgets`` (``pip install ipywidgets``).
    """
    try:
        import ipywidgets as widgets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("game_explorer needs ipywidgets: pip install ipywidgets") from exc
    from .metrics import mode_coverage

    check_positive_int("steps_per_click", steps_per_click)
    if (centers is None) != (std is None):
        raise ValueError("centers and std must be given together (or neither)")
    if not all(hasattr(game, name) for name in ("data", "G", "D", "z", "play", "set", "reset", "samples")):
        raise TypeError(f"game must be a ganlab.train.ToyGame, got {type(game).__name__}")
    real = _points("game.data", game.data)
    labels = {v: k for k, v in _EXPLORER_LOSSES.items()}
    current = labels.get((game.loss, game.gp_weight), next(iter(_EXPLORER_LOSSES)))
    style = {"description_width": "150px"}
    loss_w = widgets.Dropdown(options=list(_EXPLORER_LOSSES), value=current, description="loss",
                              style=style, layout=widgets.Layout(width="480px"))
    lr_d_w = widgets.FloatLogSlider(value=game.lr_d, base=10, min=-4, max=-1.5, step=0.25,
                                    description="learning rate of D", style=style, readout_format=".1e")
    lr_g_w = widgets.FloatLogSlider(value=game.lr_g, base=10, min=-4, max=-1.5, step=0.25,
                                    description="learning rate of G", style=style, readout_format=".1e")
    critic_w = widgets.IntSlider(value=game.n_critic, min=1, max=10, description="D steps per G step",
                                 style=style)
    steps_w = widgets.IntSlider(value=steps_per_click, min=10, max=2000, step=10, description="G steps per click",
                                style=style)
    play_w = widgets.Button(description="Play", button_style="success", icon="play")
    reset_w = widgets.Button(description="Reset", icon="refresh")
    image_w = widgets.Image(format="png", layout=widgets.Layout(width="340px"))
    status_w = widgets.HTML()

    def render() -> None:
        image_w.value = _png(game_snapshot_of(game), real)
        parts = [f"step <b>{game.step}</b>"]
        if game.history:
            parts.append(f"D loss {game.history['d_loss'][-1]:.3f}, G loss {game.history['g_loss'][-1]:.3f}")
        if centers is not None:
            score = mode_coverage(game.samples(2500), centers, std=std)
            parts.append(f"modes covered <b>{score['modes']}/{len(score['counts'])}</b>, "
                         f"high quality <b>{100 * score['high_quality']:.1f}%</b> (of 2,500 samples)")
        status_w.value = " · ".join(parts)

    def apply_settings(_=None) -> None:
        loss, gp = _EXPLORER_LOSSES[loss_w.value]
        game.set(loss=loss, gp_weight=gp, lr_d=lr_d_w.value, lr_g=lr_g_w.value, n_critic=critic_w.value)

    def on_play(_=None) -> None:
        apply_settings()
        remaining = steps_w.value
        while remaining > 0:  # redraw along the way so the points visibly move
            chunk = min(remaining, max(10, steps_w.value // 4))
            game.play(chunk)
            remaining -= chunk
            render()

    def on_reset(_=None) -> None:
        apply_settings()
        game.reset()
        render()

    for w in (loss_w, lr_d_w, lr_g_w, critic_w):
        w.observe(apply_settings, names="value")
    play_w.on_click(on_play)
    reset_w.on_click(on_reset)
    controls = widgets.VBox([loss_w, lr_d_w, lr_g_w, critic_w, steps_w, widgets.HBox([play_w, reset_w]), status_w])
    box = widgets.HBox([controls, image_w])
    box.game = game
    box.play = on_play  # lets a notebook (or a test) press "Play" from code
    apply_settings()
    render()
    return box
