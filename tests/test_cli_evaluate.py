"""`python -m ganlab evaluate`: the six figures of a run, and one-line errors with exit status 2."""
import re

import pytest
import torch

from ganlab import metrics
from ganlab.__main__ import main
from ganlab.data import data_root

HAVE_MNIST = (data_root() / "MNIST" / "raw").is_dir()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")

FIGURES = ("Fréchet", "KID", "precision", "recall", "confident", "entropy")
ROW = re.compile(r"^(samples \(n=\d+\)|real train digits \(n=\d+\))\s+(\S+)\s+(\S+) ± (\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$")


def save_run(folder, **model_args):
    """A run folder as `ganlab train` leaves it, with an untrained DCGAN (what `evaluate` reads of it)."""
    from ganlab.checkpoint import save_checkpoint
    from ganlab.models import build_gan

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    G, D = build_gan("dcgan", z_dim=8, base_channels=8, extra_layers=0, **model_args)
    save_checkpoint(folder / "checkpoint.pt", model="dcgan", g_args=G.model_args, d_args=D.model_args, G=G, D=D)
    return folder


@pytest.fixture
def quick_classifier(tmp_path_factory, monkeypatch):
    """The command's classifier, replaced by a quick one (8 steps; cached for the session) to keep this fast."""
    clf = metrics.get_mnist_classifier(cache_dir=tmp_path_factory.getbasetemp() / "classifier", epochs=1,
                                       train_limit=512)
    monkeypatch.setattr(metrics, "get_mnist_classifier", lambda *args, **kwargs: clf)
    return clf


def parse(out):
    rows = {}
    for line in out.splitlines():
        match = ROW.match(line)
        if match:
            rows[match[1].split(" (")[0]] = [float(v) for v in match.groups()[1:]]
    return rows


@needs_mnist
def test_evaluate_prints_the_six_figures_of_what_sample_draws(tmp_path, quick_classifier, capsys):
    from ganlab.data import MNIST
    from ganlab.train import load_generator, sample

    run_dir = save_run(tmp_path / "run", img_channels=1, img_size=28)

    assert main(["evaluate", str(run_dir), "--n", "40", "--refine-steps", "0"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "Fréchet" in line)
    assert all(name in header for name in FIGURES)
    rows = parse(out)
    assert set(rows) == {"samples", "real train digits"}, out
    # the samples row: the scores of the 40 images `sample --refine-steps 0` writes, on the same features
    # and the real row those of the first 40 training digits (their precision and recall differ: the
    # columns cannot be swapped unseen)
    ref = metrics.reference_features(MNIST(train=False).images, quick_classifier)
    for row, images in (("samples", sample(load_generator(run_dir / "checkpoint.pt"), 40, seed=0)),
                        ("real train digits", MNIST(train=True, limit=40).images)):
        s = metrics.evaluate_run_samples(images, classifier=quick_classifier, reference=ref, seed=0)
        printed = rows[row]
        expected = [s["fd"], s["kid"], s["precision"], s["recall"], s["confident"], s["entropy"]]
        assert printed[:2] + printed[3:] == pytest.approx(expected, rel=1e-3, abs=1e-3), row  # 3 decimals / 4 digits
        assert printed[2] == pytest.approx(s["kid_std"], rel=0.05, abs=1e-3), row         # KID's std: 2 digits
    # an untrained generator: far from the digits, which score better on every figure but the entropy
    fd, kid, _, precision, recall, confident, _ = rows["real train digits"]
    assert fd < rows["samples"][0] and kid < rows["samples"][1]
    assert precision >= rows["samples"][3] and recall >= rows["samples"][4]
    # refining each z first (as `sample --refine-steps 2` does); a run on padded 32 x 32 digits works too
    assert main(["evaluate", str(save_run(tmp_path / "run32", img_channels=1, img_size=32)), "--n", "8",
                 "--seed", "3", "--refine-steps", "2"]) == 0
    assert set(parse(capsys.readouterr().out)) == {"samples", "real train digits"}


@pytest.mark.parametrize("argv, name", [
    (["evaluate", "MISSING", "--n", "10"], "run_dir: "),
    (["evaluate", "EMPTY", "--n", "10"], "run_dir: no checkpoint at"),
    (["evaluate", "EMPTY/checkpoint.pt", "--n", "10"], "run_dir: "),
    (["evaluate", "CORRUPT", "--n", "10"], "run_dir: "),
    (["evaluate", "COLOUR", "--n", "10"], "is not an MNIST run"),
    (["evaluate", "COLOUR", "--n", "0"], "--n"),
    (["evaluate", "COLOUR", "--n", "-3"], "--n"),
    (["evaluate", "COLOUR", "--n", "2.5"], "--n"),
    (["evaluate", "COLOUR", "--n", "five"], "--n"),
    (["evaluate", "COLOUR", "--n", "3"], "--n: must be at least 4"),
    (["evaluate", "COLOUR"], "--n"),
    (["evaluate", "COLOUR", "--n", "10", "--seed", "-1"], "--seed"),
    (["evaluate", "COLOUR", "--n", "10", "--device", "bogus"], "--device: device: unknown device 'bogus'"),
    (["evaluate", "COLOUR", "--n", "10", "--refine-step-size", "0"], "--refine-step-size"),
])
def test_evaluate_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, name):
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    save_run(tmp_path / "colour", img_channels=3, img_size=32)
    argv = [a.replace("MISSING", str(tmp_path / "missing")).replace("EMPTY", str(tmp_path / "empty"))
            .replace("CORRUPT", str(tmp_path / "corrupt")).replace("COLOUR", str(tmp_path / "colour")) for a in argv]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ganlab: error: ") and name in err, err
