"""Checkpoints: atomic writes, weights-only loading, clear errors for bad files."""
import pickle

import pytest
import torch

from ganlab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ganlab.utils import atomic_write


def test_round_trip_of_modules_and_plain_values(tmp_path):
    lin = torch.nn.Linear(3, 2)
    path = save_checkpoint(tmp_path / "c.pt", G=lin, step=7, config={"betas": [0.5, 0.9]}, history={"a": [1.0]})
    state = load_checkpoint(path)
    assert state["step"] == 7 and state["config"]["betas"] == [0.5, 0.9]
    assert torch.equal(state["G"]["weight"], lin.weight.detach())
    assert "version" in state


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", G=torch.nn.Linear(50, 50), step=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a torch checkpoint"):
        load_checkpoint(path)


class Payload:
    """Unpickling this would create a file: the test proves that loading never runs it."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_foreign_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "ganlab-checkpoint-v1", "G": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # the control: a full unpickle of the same file does run the payload
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_plain_pickle_and_foreign_torch_files(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a ganlab checkpoint"):
        load_checkpoint(other)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"good")

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"step: 5\nweights: none\n", "truncated or not a torch checkpoint"),
    (bytes(range(256)) * 20, "truncated or not a torch checkpoint"),
])
def test_empty_text_and_random_files_are_named_and_not_called_unsafe(tmp_path, content, message):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert str(path) in text and message in text and "\n" not in text
    assert "unsafe" not in text  # nothing here asked for an unpickle that could run code


def test_equal_contents_give_byte_identical_files(tmp_path):
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    a = save_checkpoint(tmp_path / "a.pt", G=lin, step=3, history={"loss": [1.0, 0.5]})
    b = save_checkpoint(tmp_path / "sub" / "b.pt", G=lin, step=3, history={"loss": [1.0, 0.5]})
    assert a.read_bytes() == b.read_bytes()


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno
    import os

    path = save_checkpoint(tmp_path / "c.pt", step=1)
    old = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # where a full disk with delayed allocation reports it
    with pytest.raises(OSError) as info:
        save_checkpoint(path, step=2)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_stale_temp_files_are_removed_and_others_kept(tmp_path):
    from ganlab.utils import remove_stale_temp_files

    stale = [tmp_path / ".checkpoint.pt.abc123.tmp", tmp_path / ".samples_000010.png.xyz.tmp"]
    others = [tmp_path / "checkpoint.pt", tmp_path / ".other.tmp", tmp_path / ".checkpoint.pt.notes"]
    for p in stale + others:
        p.write_bytes(b"x")
    removed = remove_stale_temp_files(tmp_path, ("checkpoint.pt", "samples_*.png"))
    assert sorted(removed) == sorted(stale)
    assert all(p.exists() for p in others) and not any(p.exists() for p in stale)
