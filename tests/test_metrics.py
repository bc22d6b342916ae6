"""Metrics against closed forms, the classifier cache, and torchmetrics cross-checks."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import ganlab.train.classifier as classifier_training
from ganlab import metrics
from ganlab.data import data_root
from ganlab.metrics import (confident_share, evaluate_samples, feature_statistics, frechet_distance,
                            get_mnist_classifier, label_entropy, label_histogram, reference_statistics)

HAVE_MNIST = (data_root() / "MNIST" / "raw").is_dir()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")


def random_cov(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s = random_cov(5, 1)
    assert frechet_distance(mu1, s, mu1, s) == pytest.approx(0.0, abs=1e-8)
    # equal covariances: only the means count
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(float(((mu1 - mu2) ** 2).sum()), rel=1e-8)
    # diagonal covariances: sum of (sqrt(a) - sqrt(b))^2
    a, b = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-8)
    # symmetric, and torch tensors work
    s2 = random_cov(5, 2)
    assert frechet_distance(mu1, s, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s), rel=1e-8)
    assert frechet_distance(torch.tensor(mu1), torch.tensor(s), torch.tensor(mu1), torch.tensor(s)) == pytest.approx(0, abs=1e-8)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_frechet_distance_matches_scipy_sqrtm_on_singular_covariances():
    from scipy import linalg

    rng = np.random.default_rng(3)
    f1, f2 = np.maximum(rng.normal(size=(50, 8)), 0), np.maximum(rng.normal(size=(50, 8)) + 0.3, 0)
    f1[:, 0] = 0.0  # a dead ReLU unit: singular covariance
    (m1, s1), (m2, s2) = feature_statistics(f1), feature_statistics(f2)
    root = linalg.sqrtm(s1 @ s2).real
    expected = float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_argument_errors():
    with pytest.raises(ValueError, match="mu1 and mu2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="sigma1 holds NaN"):
        frechet_distance(np.zeros(2), np.full((2, 2), np.nan), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="features must have shape"):
        feature_statistics(np.zeros((1, 4)))


def test_confident_share_histogram_and_entropy():
    uniform_onehot = np.eye(10)[np.arange(100) % 10]
    assert label_entropy(uniform_onehot) == pytest.approx(math.log2(10))
    assert label_histogram(uniform_onehot).tolist() == [10] * 10
    one_class = np.eye(10)[np.zeros(50, dtype=int)]
    assert label_entropy(one_class) == 0.0
    two_classes = np.eye(10)[np.arange(40) % 2]
    assert label_entropy(two_classes) == pytest.approx(1.0)
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.5, 0.5], [0.02, 0.98]])
    assert confident_share(probs) == pytest.approx(0.5)  # strictly above 0.9
    assert confident_share(probs, threshold=0.5) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="threshold"):
        confident_share(probs, threshold=1.0)
    with pytest.raises(ValueError, match="probs"):
        label_entropy(np.zeros(3))


@needs_mnist
def test_classifier_is_deterministic_cached_and_survives_a_corrupt_cache(tmp_path, monkeypatch):
    a = get_mnist_classifier(cache_dir=tmp_path / "a", epochs=1, train_limit=512)
    b = get_mnist_classifier(cache_dir=tmp_path / "b", epochs=1, train_limit=512)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert 0.0 <= a.heldout_accuracy <= 1.0 and not a.training  # 8 steps: accuracy is not the point here
    assert not any(p.requires_grad for p in a.parameters())
    # a second call reads the cache: training would fail now
    monkeypatch.setattr(classifier_training, "fit_classifier", lambda *a, **k: pytest.fail("retrained"))
    c = get_mnist_classifier(cache_dir=tmp_path / "a", epochs=1, train_limit=512)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    # a different recipe does not reuse it
    with pytest.raises(pytest.fail.Exception):
        get_mnist_classifier(cache_dir=tmp_path / "a", epochs=2, train_limit=512)
    monkeypatch.undo()
    (cached,) = (tmp_path / "a").glob("mnist-classifier-*.pt")
    cached.write_bytes(b"not a checkpoint")
    d = get_mnist_classifier(cache_dir=tmp_path / "a", epochs=1, train_limit=512)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), d.state_dict().values()))


@needs_mnist
def test_real_digits_score_well_and_noise_scores_badly(tmp_path):
    from ganlab.data import MNIST

    clf = get_mnist_classifier(cache_dir=tmp_path, epochs=1, train_limit=2000)
    train, held = MNIST(train=True), MNIST(train=False)
    ref = reference_statistics(held.images, clf)
    real = evaluate_samples(train.images[:1000], classifier=clf, reference=ref)
    noise = evaluate_samples(torch.rand(1000, 1, 28, 28) * 2 - 1, classifier=clf, reference=ref)
    assert real["entropy"] > 3.2 and real["n"] == 1000 and sum(real["histogram"]) == 1000
    assert noise["fd"] > 20 * real["fd"]
    assert real["confident"] > noise["confident"]


class Projection(nn.Module):
    """A fixed random linear feature extractor for the torchmetrics cross-check."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.w = nn.Parameter(torch.randn(d_in, d_out, generator=torch.Generator().manual_seed(0)), requires_grad=False)

    def forward(self, x):
        return x.flatten(1).double() @ self.w.double()


def test_torchmetrics_fid_with_custom_features_agrees_with_ours():
    pytest.importorskip("torchmetrics")
    g = torch.Generator().manual_seed(1)
    real = torch.rand(300, 3, 4, 4, generator=g)
    fake = (torch.rand(300, 3, 4, 4, generator=g) * 0.8 + 0.1)
    proj = Projection(48, 6)
    ours = frechet_distance(*feature_statistics(proj(fake)), *feature_statistics(proj(real)))
    theirs = metrics.fid_with_features(fake, real, proj, num_features=6)
    assert theirs == pytest.approx(ours, rel=1e-3)


def test_inception_fid_explains_missing_weights(monkeypatch):
    # offline, torchmetrics fails to build its Inception network: constructed here, on any machine
    pytest.importorskip("torchmetrics")

    class NoWeights:
        def __init__(self, *args, **kwargs):
            raise ModuleNotFoundError("No module named 'torch_fidelity'")

    monkeypatch.setattr(metrics, "_torchmetrics_fid", lambda: NoWeights)
    images = torch.zeros(4, 1, 28, 28)
    with pytest.raises(RuntimeError, match="Inception FID is unavailable here.*torch_fidelity.*evaluate_samples"):
        metrics.inception_fid(images, images, device="cpu")


def test_metric_registry():
    assert metrics.get_metric("fd") is frechet_distance
    with pytest.raises(ValueError, match="name must be one of"):
        metrics.get_metric("is")


def test_laplacian_variance_closed_forms():
    from ganlab.metrics import laplacian_variance

    assert laplacian_variance(torch.full((3, 1, 8, 8), 0.4)) == 0.0                 # constant
    ramp = 0.7 * torch.linspace(-1, 1, 10)[None, None, None, :] + 0.2 * torch.linspace(-1, 1, 10)[None, None, :, None]
    assert laplacian_variance(ramp) == pytest.approx(0.0, abs=1e-6)                # linear: no curvature
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1.0)[None, None]
    assert laplacian_variance(checker) == pytest.approx(16.0)                      # on [0, 1]: responses ±4
    # per image, channels averaged: a checkerboard in one of three channels scores 16 / 3
    rgb = torch.zeros(2, 3, 8, 8)
    rgb[1, 0] = checker[0, 0]
    assert laplacian_variance(rgb, reduction="none").tolist() == pytest.approx([0.0, 16.0 / 3])


def test_laplacian_variance_matches_scikit_image_and_falls_with_blur():
    skimage_filters = pytest.importorskip("skimage.filters")
    from ganlab.metrics import laplacian_variance

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    expected = np.mean([skimage_filters.laplace(img[0].numpy())[1:-1, 1:-1].var() for img in x])
    assert laplacian_variance(x) == pytest.approx(expected / 4, rel=1e-6)   # [-1, 1] -> [0, 1] halves the values
    blurred = torch.from_numpy(np.stack([skimage_filters.gaussian(img.numpy(), sigma=1.0, channel_axis=0)
                                         for img in x]))
    assert laplacian_variance(blurred) < 0.2 * laplacian_variance(x)


def test_frechet_distance_refuses_empty_inputs_and_matrices_that_are_not_covariances():
    with pytest.raises(ValueError, match="empty"):
        frechet_distance(np.zeros(0), np.zeros((0, 0)), np.zeros(0), np.zeros((0, 0)))
    mu = np.zeros(3)
    with pytest.raises(ValueError, match="sigma1 must be a covariance matrix .positive semi-definite"):
        frechet_distance(mu, -np.eye(3), mu, np.eye(3))
    with pytest.raises(ValueError, match="sigma2 must be a covariance matrix .symmetric"):
        frechet_distance(mu, np.eye(3), mu, np.triu(np.ones((3, 3))))
    # round-off of singular covariances (ReLU features) is still accepted
    f = np.random.default_rng(0).normal(size=(5, 8))
    assert frechet_distance(*feature_statistics(f), *feature_statistics(f)) == pytest.approx(0, abs=1e-6)


def test_probabilities_that_are_not_probabilities_are_refused():
    logits = np.random.default_rng(0).normal(size=(20, 10)) * 5
    for fn in (confident_share, label_entropy, label_histogram):
        with pytest.raises(ValueError, match="probs must be class probabilities.*softmax"):
            fn(logits)
    with pytest.raises(ValueError, match="probs must be class probabilities"):
        confident_share(np.full((4, 10), 0.5))  # each in [0, 1], but the rows sum to 5


@pytest.mark.parametrize("fn", ["psnr", "ssim", "laplacian_variance"])
def test_restoration_metrics_refuse_nan_and_images_on_another_scale(fn):
    score = getattr(metrics, fn)
    call = (lambda x, y: score(x)) if fn == "laplacian_variance" else score
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    bad = x.clone()
    bad[0, 0, 3, 3] = math.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        call(bad, x)
    with pytest.raises(ValueError, match=r"must be images in \[-1, 1\], got .*value_range=\(0, 255\)"):
        call((x + 1) * 127.5, (x + 1) * 127.5)  # 0..255 pixels under the default range
    assert math.isfinite(call(x, x * 0.9))
    # noisy inputs are scored unclipped, as before: values beyond [-1, 1] but on the same scale pass
    noisy = x + 2 * 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert math.isfinite(call(noisy, x))


def test_classifier_inputs_are_checked():
    clf = nn.Sequential()
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 5, 5] = math.nan
    with pytest.raises(ValueError, match="images holds 1 NaN"):
        metrics.classifier_outputs(x, clf)
    with pytest.raises(ValueError, match=r"images must be images in \[-1, 1\]"):
        metrics.classifier_outputs(torch.full((2, 1, 28, 28), 255.0), clf)
