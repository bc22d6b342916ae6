"""Nothing is lost on a crash: a training process killed with SIGKILL resumes to the same final weights."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import ganlab as gl

# a training script run in a child process: tiny DCGAN on synthetic images, a checkpoint every 3 steps,
# and a short sleep per step so that the parent can kill it mid-run
SCRIPT = textwrap.dedent("""
    import sys, time, torch, ganlab as gl
    out, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    torch.manual_seed(0)
    G, D = gl.models.build_gan("dcgan", z_dim=8, img_size=12, base_channels=4)
    data = torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cfg = gl.TrainConfig(steps=steps, batch_size=8, ema_half_life=40.0, checkpoint_every=3,
                         progress=False, n_samples=4, device="cpu")
    gl.fit(G, D, data, cfg, out_dir=out, resume=True,
           callbacks={"on_step_end": [lambda state: time.sleep(delay)]})
""")

STEPS = 24


def _run(out: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), str(STEPS), str(delay)], env=env)


def _weights(path: Path) -> dict:
    state = gl.load_checkpoint(path)
    return {k: state[k] for k in ("G", "D", "G_ema", "opt_g", "opt_d")} | {"step": state["step"]}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_weights(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _run(straight, 0.0).wait(timeout=120) == 0

    proc = _run(killed, 0.05)
    deadline = time.monotonic() + 120
    ckpt = killed / "checkpoint.pt"
    # wait until at least two checkpoints were written, then kill without warning
    while time.monotonic() < deadline:
        if ckpt.exists():
            try:
                if gl.load_checkpoint(ckpt)["step"] >= 6:
                    break
            except gl.CheckpointError:
                pass  # never happens with atomic writes, but a half-written file must not end the test
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    killed_at = gl.load_checkpoint(ckpt)["step"]    # the last complete checkpoint is still readable
    assert 6 <= killed_at < STEPS

    assert _run(killed, 0.0).wait(timeout=120) == 0  # resume=True picks the checkpoint up
    assert _same(_weights(ckpt), _weights(straight / "checkpoint.pt"))
