"""Every command's bad input: one line on stderr, status 2, the argument or file named, nothing overwritten.

The runs and the data are small fixtures made here (a 64-image fake MNIST from conftest.py, a 2-step run of a
tiny DCGAN), and each kind of damage is made from them in the test's own folder. A full or read-only disk is
simulated by making the write raise (``ENOSPC``, ``EACCES``), not by mounting anything.
"""
import errno
import gzip
import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_damage import nan_weights

from ganlab.__main__ import main

SMALL = ["--base-channels", "4", "--extra-layers", "0", "--z-dim", "8", "--ema-half-life", "0", "--quiet",
         "--sample-every", "0", "--device", "cpu", "--batch-size", "8"]
IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CYCLE_SMALL = ["--quiet", "--device", "cpu", "--batch-size", "4"]

# arrays for `translate --in`, by placeholder: each is written into the shared folder once
ARRAYS = {
    "GREY": np.full((4, 28, 28), 0.5, np.float32),
    "UINT8": np.zeros((4, 28, 28), np.uint8),
    "TWOCHANNELS": np.zeros((4, 2, 28, 28), np.float32),
    "SIDE30": np.zeros((4, 30, 30), np.float32),
    "WIDE": np.zeros((4, 28, 32), np.float32),
    "NOIMAGES": np.zeros((0, 28, 28), np.float32),
    "PIXELS255": np.full((4, 28, 28), 255.0, np.float32),
    "NANPIXELS": np.full((4, 28, 28), np.nan, np.float32),
    "OBJECTS": np.array([{"not": "images"}], dtype=object),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, fake_mnist_root):
    """A fake MNIST folder (64 digits), a finished 2-step DCGAN run and a 2-step CycleGAN run trained on it,
    and the arrays of ARRAYS as .npy files (shared: never changed)."""
    base = tmp_path_factory.mktemp("cli_errors")
    data = fake_mnist_root
    run, cycle = base / "run", base / "cycle"
    assert main(["train", "dcgan", "--steps", "2", "--out", str(run), "--data-root", str(data), *SMALL]) == 0
    assert main(["train", "cyclegan", "--steps", "2", "--out", str(cycle), "--data-root", str(data),
                 *CYCLE_SMALL]) == 0
    arrays = {}
    for key, array in ARRAYS.items():
        arrays[key] = base / f"{key.lower()}.npy"
        np.save(arrays[key], array, allow_pickle=array.dtype == object)
    arrays["TEXTNPY"] = base / "text.npy"
    arrays["TEXTNPY"].write_text("not an array\n")
    arrays["NPYFOLDER"] = base / "folder.npy"
    arrays["NPYFOLDER"].mkdir()
    return {"DATA": data, "RUN": run, "SHA": _sha(run / "checkpoint.pt"), "CYCLE": cycle,
            "CYCLE_SHA": _sha(cycle / "checkpoint.pt"), **arrays}


# ---- damage, made in the test's folder: each returns the path that replaces its placeholder

def _run_with(tmp: Path, world, content) -> Path:
    folder = tmp / "damaged"
    folder.mkdir()
    ckpt = folder / "checkpoint.pt"
    if callable(content):
        content(world["RUN"] / "checkpoint.pt", ckpt)
    else:
        ckpt.write_bytes(content)
    return folder


def _truncated(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes()[:3000])


CHECKPOINTS = {
    "EMPTY": b"",
    "TEXT": b"this is a text file, not a checkpoint\n",
    "RANDOM": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
    "TRUNCATED": _truncated,
    "NAN": nan_weights,
}


def _data_with(tmp: Path, world, damage) -> Path:
    root = tmp / "data"
    shutil.copytree(world["DATA"], root)
    damage(root / "MNIST" / "raw")
    return root


def _cut_gz(raw):  # a download stopped half-way
    p = raw / IMAGES
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _bad_crc(raw):  # one flipped bit in the stored CRC
    p = raw / LABELS
    b = bytearray(p.read_bytes())
    b[-6] ^= 0x01
    p.write_bytes(bytes(b))


def _not_gzip(raw):
    (raw / IMAGES).write_bytes(b"<html>404 not found</html>")


def _more_labels(raw):
    (raw / LABELS).write_bytes(gzip.compress(_idx(np.arange(65) % 10)))


def _label_200(raw):
    (raw / LABELS).write_bytes(gzip.compress(_idx(np.full(64, 200))))


DATA = {"CUTGZ": (_cut_gz, IMAGES), "CRC": (_bad_crc, LABELS), "NOTGZ": (_not_gzip, IMAGES),
        "MORELABELS": (_more_labels, LABELS), "LABEL200": (_label_200, LABELS)}


def _expand(argv, tmp, world):
    out, named = [], []
    for a in argv:
        for key in CHECKPOINTS:
            if a == key:
                a = str(_run_with(tmp, world, CHECKPOINTS[key]))
                named.append(str(Path(a) / "checkpoint.pt"))
        for key, (damage, name) in DATA.items():
            if a == key:
                a = str(_data_with(tmp, world, damage))
                named.append(name)
        if a in world and a not in ("RUN", "DATA", "SHA", "CYCLE", "CYCLE_SHA"):  # an .npy of ARRAYS
            a = str(world[a])
        a = (a.replace("RUN", str(world["RUN"])).replace("DATA", str(world["DATA"]))
             .replace("CYCLE", str(world["CYCLE"]))
             .replace("OUT", str(tmp / "out")).replace("MISSING", str(tmp / "missing")))
        out.append(a)
    return out, named


def _one_line_status_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    assert info.value.code == 2, captured
    assert captured.err.startswith("ganlab: error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and "trained" not in captured.out and "wrote" not in captured.out
    return captured.err


TRAIN = ["train", "dcgan", "--steps", "2", *SMALL, "--data-root", "DATA"]
MORE = ["--steps", "4"]  # a resume that asks for more steps than the 2 the run has done
SAMPLE = ["sample", "RUN", "--n", "4", "--out", "OUT.npy", "--refine-steps", "1"]
EVALUATE = ["evaluate", "RUN", "--n", "8", "--data-root", "DATA"]
CYCLE_TRAIN = ["train", "cyclegan", "--steps", "2", *CYCLE_SMALL, "--data-root", "DATA"]
TRANSLATE = ["translate", "CYCLE", "--direction", "b2a", "--in", "GREY", "--out", "OUT.npy"]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is there: --device cuda is valid")
NO_MPS = pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is there: --device mps is valid")


def _with(base, *changes, drop=()):
    """``base`` with the flags of ``drop`` (and their values) removed, then ``changes`` appended."""
    argv, i = [], 0
    while i < len(base):
        if base[i] in drop:
            i += 2
            continue
        argv.append(base[i])
        i += 1
    return argv + list(changes)


CASES = [
    # train: the output folder, and what --resume and --overwrite may do with it
    ("train into a finished run", _with(TRAIN, "--out", "RUN"), ["--out", "--resume", "--overwrite"]),
    ("train --resume, no checkpoint", _with(TRAIN, "--out", "OUT", "--resume"),
     ["--resume", "checkpoint.pt"]),
    ("train --out ''", _with(TRAIN, "--out", ""), ["--out"]),
    ("train --out a file", _with(TRAIN, "--out", "RUN/checkpoint.pt"), ["--out"]),
    ("train --resume --overwrite", _with(TRAIN, "--out", "RUN", "--resume", "--overwrite"), ["--overwrite"]),
    ("train --resume empty", _with(TRAIN, "--out", "EMPTY", "--resume"), ["--resume", "empty"]),
    ("train --resume text", _with(TRAIN, "--out", "TEXT", "--resume"), ["--resume"]),
    ("train --resume random", _with(TRAIN, "--out", "RANDOM", "--resume"), ["--resume"]),
    ("train --resume truncated", _with(TRAIN, "--out", "TRUNCATED", "--resume"), ["--resume", "truncated"]),
    ("train --resume NaN weights", _with(TRAIN, "--out", "NAN", "--resume", *MORE), ["--resume", "NaN"]),
    ("train --resume, steps done", _with(TRAIN, "--out", "RUN", "--resume"), ["--steps", "step 2"]),
    ("train --resume other lr", _with(TRAIN, "--out", "RUN", "--resume", "--lr-d", "0.5", *MORE),
     ["--resume", "--lr-d"]),
    ("train --resume other width", _with(TRAIN, "--out", "RUN", "--resume", "--base-channels", "8", *MORE,
                                         drop=("--base-channels",)), ["--resume", "--base-channels"]),
    ("train --resume other z", _with(TRAIN, "--out", "RUN", "--resume", "--z-dim", "9", *MORE,
                                     drop=("--z-dim",)),
     ["--resume", "--z-dim"]),
    # train: devices, sizes and seeds
    ("train --device gpu", _with(TRAIN, "--out", "OUT", "--device", "gpu", drop=("--device",)), ["--device"]),
    pytest.param("train --device cuda", _with(TRAIN, "--out", "OUT", "--device", "cuda", drop=("--device",)),
                 ["--device", "CUDA"], marks=NO_CUDA),
    pytest.param("train --device mps", _with(TRAIN, "--out", "OUT", "--device", "mps", drop=("--device",)),
                 ["--device", "MPS"], marks=NO_MPS),
    ("train --batch-size > data", _with(TRAIN, "--out", "OUT", "--batch-size", "52", drop=("--batch-size",)),
     ["--batch-size", "(51)"]),  # 51 of the 64 fake test images form the training part
    ("train --seed 2**64", _with(TRAIN, "--out", "OUT", "--seed", str(2**64)), ["--seed"]),
    ("train --seed 3e9", _with(TRAIN, "--out", "OUT", "--seed", "3e9"), ["--seed"]),
    ("train --z-dim 1e8", _with(TRAIN, "--out", "OUT", "--z-dim", "100000000", drop=("--z-dim",)),
     ["--z-dim", "memory"]),
    ("train --base-channels 3e9", _with(TRAIN, "--out", "OUT", "--base-channels", "3000000000",
                                        drop=("--base-channels",)), ["--base-channels"]),
    ("train --extra-layers 1000", _with(TRAIN, "--out", "OUT", "--extra-layers", "1000",
                                        drop=("--extra-layers",)), ["--extra-layers"]),
    ("train --lr-g nan", _with(TRAIN, "--out", "OUT", "--lr-g", "nan"), ["--lr-g"]),
    ("train --beta2 nan", _with(TRAIN, "--out", "OUT", "--beta2", "nan"), ["--beta1/--beta2"]),
    # train: the data
    ("train --data-root ''", _with(TRAIN, "--out", "OUT", "--data-root", "", drop=("--data-root",)),
     ["--data-root"]),
    ("train --data-root missing", _with(TRAIN, "--out", "OUT", "--data-root", "MISSING",
                                        drop=("--data-root",)), ["--data-root", "MNIST not found"]),
    ("train truncated gz", _with(TRAIN, "--out", "OUT", "--data-root", "CUTGZ", drop=("--data-root",)),
     ["--data-root", "truncated"]),
    ("train CRC-damaged gz", _with(TRAIN, "--out", "OUT", "--data-root", "CRC", drop=("--data-root",)),
     ["--data-root", "CRC"]),
    ("train non-gzip file", _with(TRAIN, "--out", "OUT", "--data-root", "NOTGZ", drop=("--data-root",)),
     ["--data-root", "gzip"]),
    ("train more labels", _with(TRAIN, "--out", "OUT", "--data-root", "MORELABELS", drop=("--data-root",)),
     ["--data-root", "65 labels", "64 images"]),
    ("train label 200", _with(TRAIN, "--out", "OUT", "--data-root", "LABEL200", drop=("--data-root",)),
     ["--data-root", "200"]),
    # sample
    ("sample --device gpu", _with(SAMPLE, "--device", "gpu"), ["--device"]),
    pytest.param("sample --device cuda", _with(SAMPLE, "--device", "cuda"), ["--device"], marks=NO_CUDA),
    ("sample missing run", ["sample", "MISSING", "--n", "4", "--out", "OUT.npy"],
     ["run_dir", "does not exist"]),
    ("sample empty", ["sample", "EMPTY", "--n", "4", "--out", "OUT.npy"], ["run_dir", "empty"]),
    ("sample text", ["sample", "TEXT", "--n", "4", "--out", "OUT.npy"], ["run_dir"]),
    ("sample random", ["sample", "RANDOM", "--n", "4", "--out", "OUT.npy"], ["run_dir"]),
    ("sample truncated", ["sample", "TRUNCATED", "--n", "4", "--out", "OUT.npy"], ["run_dir", "truncated"]),
    ("sample NaN weights", ["sample", "NAN", "--n", "4", "--out", "OUT.npy"], ["run_dir", "NaN"]),
    ("sample --refine-step-size 1e300", _with(SAMPLE, "--refine-step-size", "1e300"), ["--refine-step-size"]),
    ("sample --refine-step-size 2", _with(SAMPLE, "--refine-step-size", "2"), ["--refine-step-size"]),
    ("sample --out ''", ["sample", "RUN", "--n", "4", "--out", ""], ["--out"]),
    ("sample --out a folder", ["sample", "RUN", "--n", "4", "--out", "DATA"], ["--out"]),
    ("sample --n 4e12", ["sample", "RUN", "--n", str(4 * 10**12), "--out", "OUT.npy"], ["--n", "memory"]),
    ("sample --seed -1", _with(SAMPLE, "--seed", "-1"), ["--seed"]),
    ("sample --seed 2**64", _with(SAMPLE, "--seed", str(2**64)), ["--seed"]),
    # evaluate
    ("evaluate --device gpu", _with(EVALUATE, "--device", "gpu"), ["--device"]),
    ("evaluate empty", ["evaluate", "EMPTY", "--n", "8"], ["run_dir", "empty"]),
    ("evaluate random", ["evaluate", "RANDOM", "--n", "8"], ["run_dir"]),
    ("evaluate NaN weights", ["evaluate", "NAN", "--n", "8", "--data-root", "DATA"], ["run_dir"]),
    ("evaluate truncated gz", _with(EVALUATE, "--data-root", "CUTGZ", drop=("--data-root",)),
     ["--data-root", "truncated"]),
    ("evaluate label 200", _with(EVALUATE, "--data-root", "LABEL200", drop=("--data-root",)),
     ["--data-root", "200"]),
    ("evaluate --n 4e12", _with(EVALUATE, "--n", str(4 * 10**12), drop=("--n",)), ["--n", "memory"]),
    ("evaluate --refine-step-size 5", _with(EVALUATE, "--refine-step-size", "5"), ["--refine-step-size"]),
    ("evaluate, too few digits", EVALUATE, ["--data-root", "classifier", "51 images"]),
    ("evaluate --data-root ''", _with(EVALUATE, "--data-root", "", drop=("--data-root",)), ["--data-root"]),
    # train cyclegan: its data, the flags it does not take, its resume
    ("train cyclegan --data mnist", _with(CYCLE_TRAIN, "--out", "OUT", "--data", "mnist"), ["--data", "mnist:mnistm"]),
    ("train dcgan --data mnist:mnistm", _with(TRAIN, "--out", "OUT", "--data", "mnist:mnistm"), ["--data"]),
    ("train cyclegan --z-dim", _with(CYCLE_TRAIN, "--out", "OUT", "--z-dim", "8"), ["--z-dim", "cyclegan"]),
    ("train cyclegan --loss minimax", _with(CYCLE_TRAIN, "--out", "OUT", "--loss", "minimax"), ["--loss"]),
    ("train cyclegan --batch-size > a domain", _with(CYCLE_TRAIN, "--out", "OUT", "--batch-size", "26",
                                                     drop=("--batch-size",)), ["--batch-size", "(25,"]),
    ("train cyclegan --data-root missing", _with(CYCLE_TRAIN, "--out", "OUT", "--data-root", "MISSING",
                                                 drop=("--data-root",)), ["--data-root", "MNIST not found"]),
    ("train cyclegan label 200", _with(CYCLE_TRAIN, "--out", "OUT", "--data-root", "LABEL200",
                                       drop=("--data-root",)), ["--data-root", "200"]),
    ("train cyclegan into a finished run", _with(CYCLE_TRAIN, "--out", "CYCLE"), ["--out", "--resume"]),
    ("train cyclegan --resume, steps done", _with(CYCLE_TRAIN, "--out", "CYCLE", "--resume"),
     ["--steps", "step 2"]),
    ("train cyclegan --resume other lr", _with(CYCLE_TRAIN, "--out", "CYCLE", "--resume", "--lr-d", "0.5", *MORE),
     ["--resume", "--lr-d"]),
    ("train cyclegan --resume a dcgan run", _with(CYCLE_TRAIN, "--out", "RUN", "--resume", *MORE),
     ["--resume", "'dcgan'", "not 'cyclegan'"]),
    ("train dcgan --resume a cyclegan run", _with(TRAIN, "--out", "CYCLE", "--resume", *MORE),
     ["--resume", "'cyclegan'"]),
    ("train cyclegan --resume truncated", _with(CYCLE_TRAIN, "--out", "TRUNCATED", "--resume"), ["--resume"]),
    # translate: the run, the direction, the arrays
    ("translate --direction c2d", _with(TRANSLATE, "--direction", "c2d", drop=("--direction",)),
     ["--direction", "c2d"]),
    ("translate no --direction", _with(TRANSLATE, drop=("--direction",)), ["--direction"]),
    ("translate a dcgan run", ["translate", "RUN", "--direction", "a2b", "--in", "GREY", "--out", "OUT.npy"],
     ["run_dir", "not a CycleGAN"]),
    ("translate missing run", ["translate", "MISSING", "--direction", "a2b", "--in", "GREY", "--out", "OUT.npy"],
     ["run_dir", "does not exist"]),
    ("translate empty", ["translate", "EMPTY", "--direction", "a2b", "--in", "GREY", "--out", "OUT.npy"],
     ["run_dir", "empty"]),
    ("translate NaN weights", ["translate", "NAN", "--direction", "a2b", "--in", "GREY", "--out", "OUT.npy"],
     ["run_dir"]),
    ("translate --device gpu", _with(TRANSLATE, "--device", "gpu"), ["--device"]),
    ("translate --in missing", _with(TRANSLATE, "--in", "MISSING.npy", drop=("--in",)), ["--in", "does not exist"]),
    ("translate --in a folder", _with(TRANSLATE, "--in", "DATA", drop=("--in",)), ["--in", "folder"]),
    ("translate --in text", _with(TRANSLATE, "--in", "TEXTNPY", drop=("--in",)), ["--in", "not a .npy array"]),
    ("translate --in objects", _with(TRANSLATE, "--in", "OBJECTS", drop=("--in",)), ["--in", "not a .npy array"]),
    ("translate --in uint8", _with(TRANSLATE, "--in", "UINT8", drop=("--in",)), ["--in", "uint8", "255"]),
    ("translate --in 2 channels", _with(TRANSLATE, "--in", "TWOCHANNELS", drop=("--in",)),
     ["--in", "(4, 2, 28, 28)"]),
    ("translate --in 30 x 30", _with(TRANSLATE, "--in", "SIDE30", drop=("--in",)), ["--in", "28 or 32"]),
    ("translate --in 28 x 32", _with(TRANSLATE, "--in", "WIDE", drop=("--in",)), ["--in", "(4, 28, 32)"]),
    ("translate --in no images", _with(TRANSLATE, "--in", "NOIMAGES", drop=("--in",)), ["--in", "N > 0"]),
    ("translate --in 0..255", _with(TRANSLATE, "--in", "PIXELS255", drop=("--in",)), ["--in", "[0, 1]", "255"]),
    ("translate --in NaN", _with(TRANSLATE, "--in", "NANPIXELS", drop=("--in",)), ["--in", "NaN"]),
    ("translate --out .txt", _with(TRANSLATE, "--out", "OUT.txt", drop=("--out",)), ["--out", ".npy"]),
    ("translate --out a folder", _with(TRANSLATE, "--out", "NPYFOLDER", drop=("--out",)), ["--out", "folder"]),
]


# a Python warning on the way to the error would print its own lines to stderr before the one line
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("case, argv, names", CASES, ids=[c.values[0] if hasattr(c, "marks") else c[0]
                                                          for c in CASES])
def test_bad_input_is_one_line_with_status_2_and_names_it(case, argv, names, world, tmp_path, capsys):
    argv, files = _expand(argv, tmp_path, world)
    err = _one_line_status_2(argv, capsys)
    for name in names + files:
        assert name in err, (name, err)
    if case.startswith("sample --device") or case.startswith("evaluate --device"):
        assert "run_dir" not in err  # the device's fault, not the run's
    # nothing overwritten, nothing written
    assert _sha(world["RUN"] / "checkpoint.pt") == world["SHA"]
    assert _sha(world["CYCLE"] / "checkpoint.pt") == world["CYCLE_SHA"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.npy").exists()


def test_a_second_train_without_resume_leaves_the_first_checkpoint_byte_identical(world, capsys):
    before = (world["RUN"] / "checkpoint.pt").read_bytes()
    _one_line_status_2(["train", "dcgan", "--steps", "4", "--out", str(world["RUN"]), *SMALL,
                        "--data-root", str(world["DATA"])], capsys)
    assert (world["RUN"] / "checkpoint.pt").read_bytes() == before


def test_overwrite_replaces_and_resume_continues(world, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(world["RUN"], run)
    (run / "samples_000099.png").write_bytes(b"stale grid")
    argv = ["train", "dcgan", "--out", str(run), *SMALL, "--data-root", str(world["DATA"])]
    assert main(argv + ["--steps", "1", "--overwrite"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 1
    assert not (run / "samples_000099.png").exists()  # the replaced run's grids go with it
    assert main(argv + ["--steps", "3", "--resume"]) == 0
    assert "trained 3 steps" in capsys.readouterr().out


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_a_full_or_read_only_disk_names_the_checkpoint(world, tmp_path, capsys, monkeypatch, code):
    # the checkpoint's bytes are written by Path.write_bytes (ganlab.checkpoint): make that write fail
    def refuse(self, data):
        raise OSError(code, "simulated")

    monkeypatch.setattr(Path, "write_bytes", refuse)
    out = tmp_path / "run"
    err = _one_line_status_2(["train", "dcgan", "--steps", "2", "--out", str(out), *SMALL,
                              "--data-root", str(world["DATA"])], capsys)
    assert f"cannot write {out / 'checkpoint.pt'}" in err and "simulated" in err
    assert not list(out.glob(".*.tmp"))  # the temporary file is gone, and no checkpoint appeared
    assert not (out / "checkpoint.pt").exists()


def test_a_read_only_output_folder_is_refused_before_training(world, tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    err = _one_line_status_2(["train", "dcgan", "--steps", "2", "--out", str(tmp_path / "ro"), *SMALL,
                              "--data-root", str(world["DATA"])], capsys)
    assert "argument --out" in err and "Permission denied" in err


def test_sample_on_a_full_disk_names_the_file_and_keeps_the_old_one(world, tmp_path, capsys, monkeypatch):
    out = tmp_path / "s.npy"
    out.write_bytes(b"old samples")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    err = _one_line_status_2(["sample", str(world["RUN"]), "--n", "4", "--out", str(out),
                              "--refine-steps", "0"], capsys)
    assert f"cannot write {out}: No space left on device" in err
    assert out.read_bytes() == b"old samples" and not list(tmp_path.glob(".*.tmp"))


def test_divergence_is_one_line_and_keeps_the_last_good_checkpoint(world, tmp_path, capsys):
    out = tmp_path / "run"
    err = _one_line_status_2(["train", "dcgan", "--steps", "40", "--out", str(out), *SMALL,
                              "--checkpoint-every", "1", "--lr-g", "1e6", "--lr-d", "1e6",
                              "--data-root", str(world["DATA"])], capsys)
    assert "training diverged at step" in err and "Lower the learning rates" in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert all(bool(torch.isfinite(v).all()) for net in ("G", "D") for v in state[net].values()
               if v.is_floating_point())


def test_stale_temp_files_of_a_killed_run_are_removed_on_the_next_start(world, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(world["RUN"], run)
    stale = [run / ".checkpoint.pt.k1ll3d.tmp", run / ".samples_000002.png.abc123.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 1000)
    keep = run / ".notes.tmp"  # not ganlab's: left alone
    keep.write_bytes(b"mine")
    assert main(["train", "dcgan", "--steps", "3", "--out", str(run), "--resume", *SMALL,
                 "--data-root", str(world["DATA"])]) == 0
    assert not any(p.exists() for p in stale) and keep.exists()
