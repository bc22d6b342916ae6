"""KID and k-NN precision / recall against closed forms and constructed cases (issue #14, item 6)."""
import numpy as np
import pytest
import torch

from ganlab.data import data_root
from ganlab.metrics import (evaluate_run_samples, evaluate_samples, feature_statistics, get_mnist_classifier,
                            kernel_inception_distance, polynomial_mmd2, precision_recall, reference_features)

HAVE_MNIST = (data_root() / "MNIST" / "raw").is_dir()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")


def mmd2_by_loops(x, y):
    """The unbiased MMD² of Gretton et al. 2012 (eq. 3), written out term by term in float64."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    d = x.shape[1]

    def k(a, b):
        return (sum(a[t] * b[t] for t in range(d)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_polynomial_mmd2_matches_the_double_loop_closed_form():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(9, 3)) + 0.5
    assert polynomial_mmd2(x, y) == pytest.approx(mmd2_by_loops(x, y), rel=1e-12)
    # a hand-computed case: d = 1, x = (0, 1), y = (0, 2): k = (xy + 1)^3
    # xx: 2 k(0, 1) / 2 = 1;  yy: 2 k(0, 2) / 2 = 1;  xy: (1 + 1 + 1 + 27) / 4 = 7.5  ->  1 + 1 - 15 = -13
    assert polynomial_mmd2([[0.0], [1.0]], [[0.0], [2.0]]) == pytest.approx(-13.0, rel=1e-12)
    # torch tensors work and the estimate is symmetric in its two arguments
    assert polynomial_mmd2(torch.tensor(y), torch.tensor(x)) == pytest.approx(polynomial_mmd2(x, y), rel=1e-12)


def test_kid_with_one_whole_subset_is_the_unbiased_mmd2_and_agrees_with_torchmetrics():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 4)) * 1.3
    mean, std = kernel_inception_distance(x, y, subset_size=12, n_subsets=1)
    assert mean == pytest.approx(mmd2_by_loops(x, y), rel=1e-12) and std == 0.0  # a permutation: same value
    kid = pytest.importorskip("torchmetrics.image.kid")
    theirs = float(kid.poly_mmd(torch.tensor(y), torch.tensor(x)))
    assert mean == pytest.approx(theirs, rel=1e-10)


def test_kid_subsets_average_the_per_subset_estimates():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(25, 3)) + 0.2
    mean, std = kernel_inception_distance(x, y, subset_size=6, n_subsets=5, seed=7)
    draw = np.random.default_rng(7)
    values = []
    for _ in range(5):
        i, j = draw.choice(30, 6, replace=False), draw.choice(25, 6, replace=False)
        values.append(mmd2_by_loops(x[i], y[j]))
    assert mean == pytest.approx(np.mean(values), rel=1e-12) and std == pytest.approx(np.std(values), rel=1e-10)
    assert kernel_inception_distance(x, y, subset_size=6, n_subsets=5, seed=7) == (mean, std)  # seeded


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, same_std = kernel_inception_distance(a, b, subset_size=200, n_subsets=20)
    assert abs(same) < 3 * same_std  # unbiased: centred on 0, either sign
    shifted, shifted_std = kernel_inception_distance(a + 0.5, b, subset_size=200, n_subsets=20)
    assert shifted > same + 5 * shifted_std and shifted > 0


def test_kid_argument_errors_name_the_argument():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="features_fake must have shape"):
        kernel_inception_distance(np.zeros(10), x, subset_size=5)
    with pytest.raises(ValueError, match="features_real must have shape"):
        kernel_inception_distance(x, np.zeros((0, 3)), subset_size=5)
    with pytest.raises(ValueError, match="same feature dimension, got 3 and 4"):
        kernel_inception_distance(x, np.zeros((10, 4)), subset_size=5)
    with pytest.raises(ValueError, match=r"subset_size must be at most the smaller set's size \(10 fake, 8 real"):
        kernel_inception_distance(x, np.zeros((8, 3)), subset_size=9)
    with pytest.raises(ValueError, match="subset_size must be at least 2"):
        kernel_inception_distance(x, x, subset_size=1)
    with pytest.raises(ValueError, match="n_subsets must be a positive integer"):
        kernel_inception_distance(x, x, subset_size=5, n_subsets=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        kernel_inception_distance(x, x, subset_size=5, seed=-1)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="features_real holds NaN"):
        kernel_inception_distance(x, bad, subset_size=5)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="features_fake holds NaN or infinite"):
        polynomial_mmd2(bad, x)
    with pytest.raises(ValueError, match="features_fake must hold at least 2 rows"):
        polynomial_mmd2(x[:1], x)


# --- precision and recall ---------------------------------------------------------------------------

def test_precision_recall_hand_computed_1d_case():
    # real: 0, 1, 2, 10 with k = 1 -> radii 1, 1, 1, 8 (nearest other point, self excluded)
    # fake: 0.5 (in the balls of 0 and 1), 3 (in the ball of 2: |3 - 2| = 1 <= 1, and of 10: 7 <= 8),
    #       19 (outside: |19 - 10| = 9 > 8), -1.5 (outside: 1.5 > 1)  -> precision 2 / 4
    # fake radii (k = 1): 0.5 -> 2 (to -1.5), 3 -> 2.5 (to 0.5), 19 -> 16 (to 3), -1.5 -> 2 (to 0.5)
    # real 0 (|0 - 0.5| = 0.5 <= 2), 1 (0.5), 2 (1.5 <= 2), 10 (|10 - 19| = 9 <= 16): recall 4 / 4
    real = np.array([[0.0], [1.0], [2.0], [10.0]])
    fake = np.array([[0.5], [3.0], [19.0], [-1.5]])
    for batch_size in (1, 3, 1000):  # row batches: the self-distance is excluded in every batch
        assert precision_recall(fake, real, k=1, batch_size=batch_size) == (0.5, 1.0)
    # k = 2: real radii 2, 1, 2, 9 -> 19 is now in (|19 - 10| = 9 <= 9: the boundary counts), and so is
    # -1.5 (1.5 <= 2): precision 4 / 4
    assert precision_recall(fake, real, k=2)[0] == 1.0
    # k = 3 (the default, the largest k these 4 points allow): real radii 10, 9, 8, 10; fake radii
    # 18.5, 16, 20.5, 20.5: everything is covered both ways
    assert precision_recall(fake, real) == (1.0, 1.0)


def test_precision_recall_small_batches_give_the_same_answer():
    rng = np.random.default_rng(4)
    fake, real = rng.normal(size=(53, 5)), rng.normal(size=(41, 5)) + 0.7
    whole = precision_recall(fake, real, batch_size=1000)
    assert precision_recall(fake, real, batch_size=7) == whole
    assert precision_recall(torch.tensor(fake), torch.tensor(real), batch_size=1) == whole
    assert 0 < whole[0] < 1 and 0 < whole[1] < 1
    # the radii themselves: the k-th smallest distance to the other rows, by brute force
    from ganlab.metrics import _knn_radii

    dist = np.sqrt(((real[:, None, :] - real[None, :, :]) ** 2).sum(-1))
    expected = np.array([np.sort(np.delete(row, i))[2] for i, row in enumerate(dist)])
    for batch_size in (1, 7, 1000):
        np.testing.assert_allclose(_knn_radii(real, 3, batch_size), expected, rtol=1e-12)


def test_precision_recall_identical_sets_collapse_and_far_away_fakes():
    rng = np.random.default_rng(5)
    real = np.concatenate([rng.normal(size=(300, 2)) - 10, rng.normal(size=(300, 2)) + 10])
    assert precision_recall(real, real) == (1.0, 1.0)
    # the fakes are the real points of one of the two modes: all of them real, half the data covered
    assert precision_recall(real[300:], real) == (1.0, 0.5)
    # fresh draws from that mode: the k-NN balls miss a few tail points, so "about" 1 and 0.5
    precision, recall = precision_recall(rng.normal(size=(300, 2)) + 10, real)
    assert precision > 0.95 and 0.45 < recall <= 0.5
    fresh = np.concatenate([rng.normal(size=(300, 2)) - 10, rng.normal(size=(300, 2)) + 10])
    assert min(precision_recall(fresh, real)) > 0.93
    assert precision_recall(rng.normal(size=(300, 2)) + 100, real) == (0.0, 0.0)


def test_precision_recall_self_is_excluded_but_duplicates_count():
    # four copies of one point: each one's nearest *other* point is a copy at distance 0, radius 0
    real = np.array([[0.0], [0.0], [0.0], [0.0], [5.0]])
    fake = np.array([[0.0], [0.0], [0.0], [0.0], [0.1]])
    # k = 1: real radii 0, 0, 0, 0, 5; fake radii 0, 0, 0, 0, 0.1 -> 0.1 lies in the ball of 5 (radius 5)
    assert precision_recall(fake, real, k=1) == (1.0, 0.8)


def test_precision_recall_argument_errors():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="features_fake must hold more than k=5 rows"):
        precision_recall(x, np.zeros((9, 2)), k=5)
    with pytest.raises(ValueError, match="features_real must hold more than k=3 rows"):
        precision_recall(x, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="same feature dimension"):
        precision_recall(x, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        precision_recall(x, x, k=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        precision_recall(x, x, batch_size=0)
    with pytest.raises(ValueError, match="features_fake holds NaN"):
        precision_recall(np.full((5, 2), np.nan), x)


# --- on the domain classifier's features --------------------------------------------------------------

@needs_mnist
def test_evaluate_run_samples_adds_kid_and_pr_without_changing_the_other_scores(tmp_path_factory):
    from ganlab.data import MNIST

    # a quick classifier (8 steps), cached for the session: tests/test_cli_evaluate.py uses the same one
    clf = get_mnist_classifier(cache_dir=tmp_path_factory.getbasetemp() / "classifier", epochs=1, train_limit=512)
    held = MNIST(train=False)
    ref = reference_features(held.images, clf)
    assert ref["n"] == len(held) and ref["features"].shape == (len(held), 128)
    mu, sigma = feature_statistics(ref["features"])   # the statistics of reference_statistics, from them
    np.testing.assert_array_equal(ref["mu"], mu)
    np.testing.assert_array_equal(ref["sigma"], sigma)
    stats = {"mu": ref["mu"], "sigma": ref["sigma"], "n": ref["n"]}
    real = MNIST(train=True, limit=300).images
    noise = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scored = {}
    for name, images in (("real", real), ("noise", noise)):
        full = evaluate_run_samples(images, classifier=clf, reference=ref, kid_subsets=10)
        assert {k: full[k] for k in ("fd", "confident", "entropy", "histogram", "n")} == \
            evaluate_samples(images, classifier=clf, reference=stats)   # the old numbers, unchanged
        scored[name] = full
    assert scored["noise"]["kid"] > 10 * max(scored["real"]["kid"], scored["real"]["kid_std"])
    assert scored["real"]["precision"] > 0.5 and scored["real"]["recall"] > 0.5
    assert scored["noise"]["precision"] < 0.05 and scored["noise"]["recall"] < 0.05
    with pytest.raises(ValueError, match="reference must come from reference_features"):
        evaluate_run_samples(real, classifier=clf, reference=stats)
