"""`ganlab train restore` and `ganlab restore`: a run per task, the image files, and every bad input as one line.

The runs are tiny (2 steps of a 4-channel restorer, module fixtures); each kind of bad file is made in the test's
own folder. As in tests/test_cli_errors.py, an error is one line on stderr, status 2, naming the flag or file,
and nothing is written.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.__main__ import main
from ganlab.restore import read_image

TINY = ["--steps", "2", "--base-channels", "4", "--batch-size", "2", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("restore_runs")
    out = {}
    for task in ("denoise", "sr4", "inpaint", "colorize"):
        out[task] = base / task
        assert main(["train", "restore", "--task", task, "--out", str(out[task]), *TINY]) == 0
    return out


def _png(path, array):
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)
    mask = np.zeros((30, 44), dtype=np.uint8)
    mask[5:12, 10:30] = 255
    return {"RGB": _png(tmp_path / "rgb.png", rgb), "GREY": _png(tmp_path / "grey.png", rgb[..., 0]),
            "MASK": _png(tmp_path / "mask.png", mask), "SMALLMASK": _png(tmp_path / "small.png", mask[:20]),
            "WHITE": _png(tmp_path / "white.png", np.full((30, 44), 255, np.uint8)),
            "DEEP": _png(tmp_path / "deep.png", rgb[..., 0].astype(np.uint16) * 257),
            "CLEAR": _png(tmp_path / "clear.png", np.dstack([rgb, np.zeros((30, 44), np.uint8)])),
            "TINY": _png(tmp_path / "tiny.png", rgb[:5, :5]), "OUT": str(tmp_path / "out.png"),
            "TEXT": str(tmp_path / "text.png"), "MISSING": str(tmp_path / "missing.png")}


def test_each_task_restores_an_image_file(runs, files, capsys):
    expected = {"denoise": (3, 30, 44), "sr4": (3, 120, 176), "inpaint": (3, 30, 44), "colorize": (3, 30, 44)}
    for task, shape in expected.items():
        extra = ["--mask", files["MASK"]] if task == "inpaint" else []
        source = files["GREY"] if task == "colorize" else files["RGB"]   # colorize takes any image
        assert main(["restore", str(runs[task]), "--in", source, "--out", files["OUT"], *extra]) == 0
        out = read_image(files["OUT"])
        assert out.shape == shape, task
        if task == "inpaint":   # the known pixels come out exactly as they went in
            known = torch.from_numpy(np.asarray(Image.open(files["MASK"])) < 128)
            assert torch.equal(out[:, known], read_image(files["RGB"])[:, known])
    assert "sr4:" in capsys.readouterr().out


def test_train_restore_resumes_and_overwrites(tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--base-channels", "4", "--batch-size", "2", "--quiet", "--device", "cpu"]
    assert main(["train", "restore", "--task", "denoise", "--out", str(run), "--steps", "2", *flags]) == 0
    assert main(["train", "restore", "--task", "denoise", "--out", str(run), "--steps", "3", "--resume", *flags]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 3
    assert main(["train", "restore", "--task", "denoise", "--out", str(run), "--steps", "1", "--overwrite", *flags]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 1
    assert "trained a denoise restorer for 1 steps" in capsys.readouterr().out


CASES = [
    ("restore a mode-16 image", ["restore", "DENOISE", "--in", "DEEP", "--out", "OUT"], ["--in", "16-bit"]),
    ("restore transparency", ["restore", "DENOISE", "--in", "CLEAR", "--out", "OUT"], ["--in", "transparent"]),
    ("restore a tiny image", ["restore", "DENOISE", "--in", "TINY", "--out", "OUT"], ["--in", "at least 8"]),
    ("restore grey for colour", ["restore", "SR4", "--in", "GREY", "--out", "OUT"], ["--in", "greyscale"]),
    ("restore not an image", ["restore", "DENOISE", "--in", "TEXT", "--out", "OUT"], ["--in", "not an image"]),
    ("restore missing input", ["restore", "DENOISE", "--in", "MISSING", "--out", "OUT"], ["--in", "does not exist"]),
    ("restore --out .jpg", ["restore", "DENOISE", "--in", "RGB", "--out", "OUT.jpg"], ["--out", ".png"]),
    ("restore a mask to denoise", ["restore", "DENOISE", "--in", "RGB", "--out", "OUT", "--mask", "MASK"],
     ["--mask", "only inpaint"]),
    ("inpaint without a mask", ["restore", "INPAINT", "--in", "RGB", "--out", "OUT"], ["--mask", "inpaint run"]),
    ("inpaint, mask of another size", ["restore", "INPAINT", "--in", "RGB", "--out", "OUT", "--mask", "SMALLMASK"],
     ["--mask", "image's size"]),
    ("inpaint, all white", ["restore", "INPAINT", "--in", "RGB", "--out", "OUT", "--mask", "WHITE"],
     ["--mask", "every pixel"]),
    ("restore a dcgan-less folder", ["restore", "MISSINGRUN", "--in", "RGB", "--out", "OUT"], ["run_dir"]),
    ("restore a text checkpoint", ["restore", "TEXTRUN", "--in", "RGB", "--out", "OUT"], ["run_dir"]),
    ("restore --device gpu", ["restore", "DENOISE", "--in", "RGB", "--out", "OUT", "--device", "gpu"], ["--device"]),
    ("train restore, no task", ["train", "restore", "--out", "OUTDIR"], ["--task"]),
    ("train restore, bad task", ["train", "restore", "--task", "deblur", "--out", "OUTDIR"], ["--task"]),
    ("train restore --steps 0", ["train", "restore", "--task", "sr4", "--out", "OUTDIR", "--steps", "0"],
     ["--steps"]),
    ("train restore --adv-weight -1", ["train", "restore", "--task", "sr4", "--out", "OUTDIR", "--adv-weight",
                                       "-1"], ["--adv-weight"]),
    ("train restore --lr nan", ["train", "restore", "--task", "sr4", "--out", "OUTDIR", "--lr", "nan"], ["--lr"]),
    ("train restore into a run", ["train", "restore", "--task", "denoise", "--out", "DENOISE", *TINY],
     ["--out", "--resume", "--overwrite"]),
    ("train restore --resume, other task", ["train", "restore", "--task", "sr4", "--out", "DENOISE", "--resume",
                                            "--steps", "5"], ["--task", "'denoise'"]),
    ("train restore --resume, steps done", ["train", "restore", "--task", "denoise", "--out", "DENOISE",
                                            "--resume", *TINY], ["--steps", "step 2"]),
    ("train restore --resume, other lr", ["train", "restore", "--task", "denoise", "--out", "DENOISE", "--resume",
                                          "--lr", "0.5", *TINY[2:], "--steps", "4"], ["--resume", "lr_g"]),
]


@pytest.mark.parametrize("case, argv, names", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_with_status_2(case, argv, names, runs, files, tmp_path, capsys):
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "textrun").mkdir()
    (tmp_path / "textrun" / "checkpoint.pt").write_text("not a checkpoint")
    sha = {t: (p / "checkpoint.pt").read_bytes() for t, p in runs.items()}
    subst = {"DENOISE": str(runs["denoise"]), "SR4": str(runs["sr4"]), "INPAINT": str(runs["inpaint"]),
             "MISSINGRUN": str(tmp_path / "norun"), "TEXTRUN": str(tmp_path / "textrun"),
             "OUTDIR": str(tmp_path / "outdir"), **files}
    argv = [subst.get(a, a) if not a.startswith("OUT.") else files["OUT"][:-4] + a[3:] for a in argv]
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("ganlab: error: ") and err.count("\n") == 1, err
    for name in names:
        assert name in err, (name, err)
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "outdir" / "checkpoint.pt").exists()
    assert all((p / "checkpoint.pt").read_bytes() == sha[t] for t, p in runs.items())   # nothing overwritten
