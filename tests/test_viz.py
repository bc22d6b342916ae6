"""Plot helpers draw and return figures; they never show them."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ganlab import viz  # noqa: E402


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("ganlab must not call plt.show()"))
    yield
    plt.close("all")


def test_image_grid_maps_minus_one_to_black_and_one_to_white():
    images = torch.cat([-torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4)])
    fig = viz.image_grid(images, nrow=2)
    assert isinstance(fig, Figure)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (8, 14, 3)  # 2 px padding around and between two 4x4 images
    assert np.allclose(shown[2:6, 2:6], 0.0) and np.allclose(shown[2:6, 8:12], 1.0)


def test_image_grid_accepts_numpy_hw_and_an_axes():
    fig, ax = plt.subplots()
    out = viz.image_grid(np.zeros((3, 5, 5)), ax=ax, title="t", value_range=(0, 1))
    assert out is fig and ax.get_title() == "t"
    with pytest.raises(ValueError, match="images must have shape"):
        viz.image_grid(torch.zeros(2, 2, 5, 5))
    with pytest.raises(ValueError, match="nrow"):
        viz.image_grid(torch.zeros(2, 1, 5, 5), nrow=0)


def test_samples_over_time_one_row_per_snapshot():
    fig = viz.samples_over_time([(10, torch.zeros(9, 1, 6, 6)), (20, torch.ones(9, 1, 6, 6))], n_show=4)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "step 20"
    with pytest.raises(ValueError, match="samples"):
        viz.samples_over_time([])


def test_curves():
    history = {"step": [1, 2, 3], "d_loss": [1.0, 0.5, 0.2], "g_loss": [0.1, 0.7, 1.5]}
    fig = viz.loss_curves(history, smooth=1)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["d_loss", "g_loss"]
    assert list(lines[0].get_ydata()) == [1.0, 0.5, 0.2]
    assert list(viz.loss_curves(history, smooth=2).axes[0].get_lines()[0].get_ydata()) == [1.0, 0.75, 0.35]
    with pytest.raises(ValueError, match="keys"):
        viz.history_plot(history, ["fd"])


def test_image_rows_labels_each_row_and_mixes_grey_and_colour():
    fig = viz.image_rows({"input": torch.zeros(5, 1, 6, 6), "output": torch.ones(5, 3, 6, 6)}, n_show=3, title="t")
    assert [ax.get_ylabel() for ax in fig.axes] == ["input", "output"]
    assert fig.axes[0].images[0].get_array().shape == (10, 26, 3)  # three 6x6 images with 2 px padding
    with pytest.raises(ValueError, match="rows"):
        viz.image_rows({})
    with pytest.raises(ValueError, match="n_show"):
        viz.image_rows({"a": torch.zeros(1, 1, 4, 4)}, n_show=0)
