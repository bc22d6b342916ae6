"""The command line: train then sample, and one-line errors that name the argument."""
import subprocess
import sys

import numpy as np
import pytest

from ganlab.__main__ import main
from ganlab.data import data_root

HAVE_MNIST = (data_root() / "MNIST" / "raw").is_dir()


@pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")
def test_train_then_sample(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "dcgan", "--data", "mnist", "--steps", "3", "--out", str(out), "--quiet",
                 "--sample-every", "0"]) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    assert (out / "checkpoint.pt").is_file()
    # a second call resumes and continues up to the new step count
    assert main(["train", "dcgan", "--steps", "5", "--out", str(out), "--quiet", "--resume"]) == 0
    assert "trained 5 steps" in capsys.readouterr().out
    npy = tmp_path / "s.npy"
    assert main(["sample", str(out), "--n", "12", "--out", str(npy)]) == 0
    array = np.load(npy)
    assert array.shape == (12, 28, 28) and array.dtype == np.float32
    assert array.min() >= 0 and array.max() <= 1
    assert main(["sample", str(out), "--n", "12", "--out", str(npy), "--seed", "0"]) == 0
    assert np.array_equal(np.load(npy), array)  # seeded
    # the default is plain G(z); --refine-steps 10 moves every z a little on the same noise
    from ganlab.train import load_generator, sample

    expected = ((sample(load_generator(out / "checkpoint.pt"), 12, seed=0) + 1) / 2).clamp(0, 1)[:, 0].numpy()
    np.testing.assert_array_equal(array, expected)
    refined = tmp_path / "refined.npy"
    assert main(["sample", str(out), "--n", "12", "--out", str(refined), "--refine-steps", "10"]) == 0
    assert not np.array_equal(np.load(refined), array)
    assert np.abs(np.load(refined) - array).mean() < 0.1  # small steps: the same digits, touched up


@pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")
def test_the_same_seed_trains_the_same_weights(tmp_path, capsys):
    import torch

    from ganlab.checkpoint import load_checkpoint

    def weights(seed, name):
        out = tmp_path / name
        small = ["--base-channels", "4", "--extra-layers", "0", "--z-dim", "8", "--ema-half-life", "0"]
        assert main(["train", "dcgan", "--steps", "2", "--out", str(out), "--quiet", "--sample-every", "0",
                     "--device", "cpu", "--seed", str(seed), *small]) == 0
        state = load_checkpoint(out / "checkpoint.pt")
        return {**{"G." + k: v for k, v in state["G"].items()}, **{"D." + k: v for k, v in state["D"].items()}}

    a = weights(3, "a")
    torch.randn(100)  # the global generator moved on: --seed alone must decide the initial weights
    b, c = weights(3, "b"), weights(4, "c")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("argv, name", [
    (["sample", "RUN", "--n", "0", "--out", "x.npy"], "--n"),
    (["sample", "RUN", "--n", "five", "--out", "x.npy"], "--n"),
    (["sample", "MISSING", "--n", "3", "--out", "x.npy"], "run_dir"),
    (["sample", "RUN", "--n", "3", "--out", "x.npy", "--refine-steps", "-1"], "--refine-steps"),
    (["sample", "RUN", "--n", "3", "--out", "x.npy", "--refine-step-size", "0"], "--refine-step-size"),
    (["train", "dcgan", "--out", "OUT", "--minutes", "-1"], "--minutes"),
    (["train", "dcgan", "--out", "OUT", "--steps", "2.5"], "--steps"),
    (["train", "dcgan", "--out", "OUT", "--minutes", "nan"], "--minutes"),
    (["train", "dcgan", "--out", "OUT", "--minutes", "inf"], "--minutes"),
    (["train", "dcgan", "--out", "OUT", "--minutes", "1", "--extra-layers", "-1"], "--extra-layers"),
    (["train", "dcgan", "--out", "OUT", "--steps", "1" + "0" * 400, "--batch-size", "0"], "--batch-size"),
    (["train", "nogan", "--out", "OUT", "--steps", "2"], "model"),
    (["train", "dcgan", "--out", "OUT", "--steps", "2", "--data", "cifar"], "--data"),
    (["train", "dcgan", "--out", "OUT", "--steps", "2", "--ema-half-life", "-5"], "--ema-half-life"),
    (["train", "dcgan", "--out", "OUT", "--steps", "2", "--ema-rampup", "-0.1"], "--ema-rampup"),
    (["sample", "RUN", "--n", "3", "--out", "x.npy", "--label", "-1"], "--label"),
    (["train", "dcgan", "--out", "OUT", "--steps", "2", "--latent-components", "-3"], "--latent-components"),
])
def test_bad_arguments_exit_2_with_one_line_naming_them(tmp_path, capsys, argv, name):
    argv = [a.replace("RUN", str(tmp_path)).replace("MISSING", str(tmp_path / "missing"))
            .replace("OUT", str(tmp_path / "out")) for a in argv]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ganlab: error: ") and name in err


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "ganlab", "sample", "--n", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("ganlab: error:")


@pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")
def test_config_errors_name_the_flag(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "dcgan", "--out", str(tmp_path), "--steps", "2", "--beta1", "1.5"])
    assert info.value.code == 2
    assert "argument --beta1/--beta2: betas must be" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")
def test_the_mnist_recipe_uses_residual_blocks_unless_told_not_to(tmp_path, capsys):
    from ganlab.checkpoint import load_checkpoint
    from ganlab.models.dcgan import ResidualBlock
    from ganlab.train import load_generator

    for flags, residual in (([], True), (["--no-residual"], False)):
        out = tmp_path / f"run{residual}"
        assert main(["train", "dcgan", "--steps", "1", "--out", str(out), "--quiet", *flags]) == 0
        state = load_checkpoint(out / "checkpoint.pt")
        for args in (state["g_args"], state["d_args"]):
            assert args.get("residual", False) is residual and args["extra_layers"] == 3
        G = load_generator(out / "checkpoint.pt")
        assert sum(isinstance(m, ResidualBlock) for m in G.modules()) == (3 if residual else 0)
    capsys.readouterr()


@pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")
def test_latent_components_puts_a_learned_mixture_in_front_of_g(tmp_path, capsys):
    from ganlab.checkpoint import load_checkpoint
    from ganlab.models.dcgan import LatentMixture
    from ganlab.train import load_generator

    out = tmp_path / "run"
    assert main(["train", "dcgan", "--steps", "2", "--out", str(out), *TINY, "--latent-components", "5"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["g_args"]["latent_components"] == 5
    G = load_generator(out / "checkpoint.pt")
    assert isinstance(G.latent, LatentMixture) and tuple(G.latent.centers.shape) == (5, 8)
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (4, 28, 28)
    # a resume with other networks is refused, naming the flag's setting; the recipe's default is plain z
    with pytest.raises(SystemExit):
        main(["train", "dcgan", "--steps", "3", "--out", str(out), *TINY, "--resume"])
    assert "was trained with --latent-components=5 (not its default)" in capsys.readouterr().err
    assert main(["train", "dcgan", "--steps", "1", "--out", str(tmp_path / "plain"), *TINY]) == 0
    assert "latent_components" not in load_checkpoint(tmp_path / "plain" / "checkpoint.pt")["g_args"]


TINY = ["--base-channels", "4", "--extra-layers", "0", "--z-dim", "8", "--quiet", "--sample-every", "0",
        "--checkpoint-every", "0", "--device", "cpu"]


def test_train_defaults_to_the_recipes_steps_with_minutes_only_a_cap(capsys):
    from ganlab.__main__ import build_parser
    from ganlab.recipes import MNIST, MNIST_COND

    args = build_parser().parse_args(["train", "dcgan", "--out", "x"])
    assert args.steps == MNIST.config.steps == 4_000 and args.minutes is None
    with pytest.raises(SystemExit):
        main(["train", "dcgan", "--help"])
    assert "(default: 4000," in " ".join(capsys.readouterr().out.split())
    # the flags' defaults are MNIST's: the conditional recipe must share every value they set
    assert MNIST_COND.config == MNIST.config
    flagged = ("z_dim", "base_channels", "extra_layers", "residual", "d_spectral_norm", "latent_components")
    assert all(MNIST_COND.model_args[k] == MNIST.model_args[k] for k in flagged)


@pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")
def test_train_without_steps_or_minutes_trains_the_default_steps(tmp_path, capsys, monkeypatch):
    import ganlab.recipes

    # the default comes from the recipe: a 2-step recipe shows that no flag is needed (and none caps it)
    monkeypatch.setattr(ganlab.recipes.MNIST.config, "steps", 2)
    assert main(["train", "dcgan", "--out", str(tmp_path / "run"), *TINY]) == 0
    assert "trained 2 steps" in capsys.readouterr().out


@pytest.fixture(scope="module")
def cdcgan_run(tmp_path_factory):
    """A 2-step tiny `train cdcgan` run (MNIST with labels)."""
    if not HAVE_MNIST:
        pytest.skip("no MNIST files under GANLAB_DATA")
    out = tmp_path_factory.mktemp("cdcgan") / "run"
    assert main(["train", "cdcgan", "--data", "mnist", "--steps", "2", "--out", str(out), *TINY]) == 0
    return out


def test_train_cdcgan_is_class_conditional_with_batch_norm_per_class(cdcgan_run):
    from ganlab.checkpoint import load_checkpoint
    from ganlab.models.dcgan import ConditionalBatchNorm2d
    from ganlab.train import load_discriminator, load_generator

    state = load_checkpoint(cdcgan_run / "checkpoint.pt")
    assert state["g_args"]["num_classes"] == 10 and state["g_args"]["conditioning"] == "batchnorm"
    G, D = load_generator(cdcgan_run / "checkpoint.pt"), load_discriminator(cdcgan_run / "checkpoint.pt")
    assert G.embed is None and any(isinstance(m, ConditionalBatchNorm2d) for m in G.modules())
    assert D.num_classes == 10 and D.conditioning == "projection"


def test_sample_label_writes_that_digit_and_balanced_labels_without_it(cdcgan_run, tmp_path, capsys):
    import torch

    from ganlab.train import load_generator, sample

    G = load_generator(cdcgan_run / "checkpoint.pt")
    for k in (0, 7, 9):
        npy = tmp_path / f"d{k}.npy"
        assert main(["sample", str(cdcgan_run), "--n", "6", "--label", str(k), "--out", str(npy),
                     "--refine-steps", "0"]) == 0
        array = np.load(npy)
        assert array.shape == (6, 28, 28) and array.dtype == np.float32
        assert 0 <= array.min() <= array.max() <= 1
        asked = torch.full((6,), k)
        expected = ((sample(G, 6, seed=0, labels=asked) + 1) / 2).clamp(0, 1)[:, 0].numpy()
        np.testing.assert_array_equal(array, expected)  # G drew digit k for each image
        assert np.array_equal(np.load(tmp_path / f"d{k}.labels.npy"), np.full(6, k))
    assert not np.array_equal(np.load(tmp_path / "d0.npy"), np.load(tmp_path / "d7.npy"))
    npy = tmp_path / "all.npy"
    assert main(["sample", str(cdcgan_run), "--n", "12", "--out", str(npy), "--refine-steps", "2"]) == 0
    labels = np.load(tmp_path / "all.labels.npy")
    assert labels.dtype == np.int64 and labels.shape == (12,)
    assert np.array_equal(labels, np.arange(12) % 10) and np.load(npy).shape == (12, 28, 28)
    capsys.readouterr()


@pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")
def test_an_unconditional_run_writes_no_labels(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "dcgan", "--steps", "1", "--out", str(out), *TINY]) == 0
    assert main(["sample", str(out), "--n", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert (tmp_path / "s.npy").is_file() and not (tmp_path / "s.labels.npy").exists()
    with pytest.raises(SystemExit) as info:
        main(["sample", str(out), "--n", "3", "--out", str(tmp_path / "s.npy"), "--label", "3"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("ganlab: error: argument --label:") and "unconditional" in err


@pytest.mark.parametrize("label", ["10", "99"])
def test_sample_label_out_of_range_is_a_one_line_error(cdcgan_run, tmp_path, capsys, label):
    with pytest.raises(SystemExit) as info:
        main(["sample", str(cdcgan_run), "--n", "3", "--out", str(tmp_path / "s.npy"), "--label", label])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("ganlab: error: argument --label:") and "0..9" in err and label in err
    assert not (tmp_path / "s.npy").exists()


def test_train_cyclegan_then_translate_both_ways(tmp_path, fake_mnist_root, capsys):
    import torch

    from ganlab.data import to_channels, to_unit
    from ganlab.train import load_cyclegan

    def train(out, steps, *extra):
        return main(["train", "cyclegan", "--data", "mnist:mnistm", "--steps", str(steps), "--batch-size", "4",
                     "--out", str(out), "--quiet", "--device", "cpu", "--data-root", str(fake_mnist_root), *extra])

    run = tmp_path / "cycle"
    assert train(run, 2) == 0 and "trained 2 steps (8 images)" in capsys.readouterr().out
    assert train(tmp_path / "again", 2) == 0  # --seed decides everything: byte-identical checkpoints
    assert (run / "checkpoint.pt").read_bytes() == (tmp_path / "again" / "checkpoint.pt").read_bytes()
    assert train(run, 3, "--resume") == 0 and "trained 3 steps" in capsys.readouterr().out
    loaded = load_cyclegan(run / "checkpoint.pt")
    assert (loaded.a_channels, loaded.b_channels, loaded.img_size, loaded.step) == (1, 3, 28, 3)

    rng = np.random.default_rng(0)
    arrays = {"grey": rng.random((5, 28, 28)), "grey4d": None, "colour": rng.random((5, 3, 28, 28)),
              "grey32": rng.random((5, 32, 32))}
    arrays["grey4d"] = arrays["grey"][:, None]
    outputs = {}
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array.astype(np.float32))
        for direction in ("a2b", "b2a"):
            out = tmp_path / f"{name}_{direction}.npy"
            assert main(["translate", str(run), "--direction", direction, "--in", str(tmp_path / f"{name}.npy"),
                         "--out", str(out)]) == 0
            outputs[name, direction] = np.load(out)
            assert outputs[name, direction].dtype == np.float32
            assert 0 <= outputs[name, direction].min() <= outputs[name, direction].max() <= 1
    assert "translated 5 images b2a to shape (28, 28)" in capsys.readouterr().out
    # translate uses the moving averages of the generators that the recipe keeps
    assert loaded.G_AB_ema is not None and loaded.G_BA_ema is not None
    G_AB, G_BA = loaded.generator("a2b"), loaded.generator("b2a")
    with torch.no_grad():
        grey = torch.from_numpy(arrays["grey"].astype(np.float32))[:, None] * 2 - 1
        colour = torch.from_numpy(arrays["colour"].astype(np.float32)) * 2 - 1
        expected_a2b = to_unit(G_AB(to_channels(grey, 3))).numpy()           # MNIST -> MNIST-M: colour
        expected_b2a = to_unit(to_channels(G_BA(colour), 1))[:, 0].numpy()  # MNIST-M -> MNIST: grey
    np.testing.assert_allclose(outputs["grey", "a2b"], expected_a2b, atol=1e-6)
    np.testing.assert_allclose(outputs["colour", "b2a"], expected_b2a, atol=1e-6)
    assert outputs["grey", "a2b"].shape == (5, 3, 28, 28) and outputs["colour", "b2a"].shape == (5, 28, 28)
    np.testing.assert_array_equal(outputs["grey4d", "a2b"], outputs["grey", "a2b"])  # (N, 1, H, W) is grey too
    assert outputs["grey32", "a2b"].shape == (5, 3, 28, 28)  # 32 x 32 resized to the run's 28 x 28
    assert outputs["colour", "a2b"].shape == (5, 3, 28, 28) and outputs["grey", "b2a"].shape == (5, 28, 28)
    # colour into the grey side: its luminance, as a grey image would be
    np.save(tmp_path / "luma.npy", to_channels(torch.from_numpy(arrays["colour"].astype(np.float32)), 1).numpy())
    assert main(["translate", str(run), "--direction", "a2b", "--in", str(tmp_path / "luma.npy"),
                 "--out", str(tmp_path / "luma_a2b.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "luma_a2b.npy"), outputs["colour", "a2b"], atol=1e-6)
    capsys.readouterr()


def test_train_cyclegan_defaults_are_its_recipes(capsys):
    from ganlab.__main__ import build_parser
    from ganlab.recipes import MNIST, MNIST_MNISTM

    args = build_parser().parse_args(["train", "cyclegan", "--out", "x"])
    assert (args.data, args.steps, args.batch_size, args.lr_g, args.lr_d) == (
        "mnist:mnistm", MNIST_MNISTM.config.steps, MNIST_MNISTM.config.batch_size, MNIST_MNISTM.config.lr_g,
        MNIST_MNISTM.config.lr_d)
    args = build_parser().parse_args(["train", "dcgan", "--out", "x"])
    assert (args.data, args.batch_size, args.lr_g) == ("mnist", MNIST.config.batch_size, MNIST.config.lr_g)
