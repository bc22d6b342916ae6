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
    # --refine-steps 0 is plain G(z) on the same noise; the default refinement moves every z a little
    from ganlab.train import load_generator, sample

    plain = tmp_path / "plain.npy"
    assert main(["sample", str(out), "--n", "12", "--out", str(plain), "--refine-steps", "0"]) == 0
    expected = ((sample(load_generator(out / "checkpoint.pt"), 12, seed=0) + 1) / 2).clamp(0, 1)[:, 0].numpy()
    np.testing.assert_array_equal(np.load(plain), expected)
    assert not np.array_equal(np.load(plain), array)
    assert np.abs(np.load(plain) - array).mean() < 0.1  # small steps: the same digits, touched up


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
    (["train", "dcgan", "--out", "OUT"], "--minutes/--steps"),
    (["train", "dcgan", "--out", "OUT", "--minutes", "-1"], "--minutes"),
    (["train", "dcgan", "--out", "OUT", "--steps", "2.5"], "--steps"),
    (["train", "dcgan", "--out", "OUT", "--minutes", "nan"], "--minutes"),
    (["train", "dcgan", "--out", "OUT", "--minutes", "inf"], "--minutes"),
    (["train", "dcgan", "--out", "OUT", "--minutes", "1", "--extra-layers", "-1"], "--extra-layers"),
    (["train", "dcgan", "--out", "OUT", "--steps", "1" + "0" * 400, "--batch-size", "0"], "--batch-size"),
    (["train", "nogan", "--out", "OUT", "--steps", "2"], "model"),
    (["train", "dcgan", "--out", "OUT", "--steps", "2", "--data", "cifar"], "--data"),
    (["train", "dcgan", "--out", "OUT", "--steps", "2", "--ema-half-life", "-5"], "--ema-half-life"),
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
