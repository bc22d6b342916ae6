"""Training on several processes (DDP under torchrun), on the CPU: 2 gloo processes against one process.

One ``torchrun --nproc_per_node=2`` launch of this file (the ``two_processes`` fixture; each process runs
:func:`_worker`) plays every distributed scenario, then ``python -m ganlab train`` as torchrun would start
it, and leaves its results in files; the tests compare them with single-process runs made here. One launch
for everything: each process pays the import of torch and ganlab once. The networks have no batch norm (an
MLP generator, a spectral-norm DCGAN discriminator), so that 2 processes x B/2 images compute what one
process computes on B, up to float rounding.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import ganlab as gl
from ganlab.train import distributed

ROOT = Path(__file__).resolve().parent.parent
WORLD = 2
STEPS = 3          # generator updates of each distributed run (each after N_CRITIC updates of D)
BATCH = 8          # the global batch: 4 images per process


class MLPGenerator(nn.Module):
    """z -> 1 x 8 x 8 images in [-1, 1], without batch norm (whose statistics would depend on the split)."""

    def __init__(self, z_dim: int = 4) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(nn.Linear(z_dim, 32), nn.LeakyReLU(0.2), nn.Linear(32, 64), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 8, 8)  # (B, 64) -> (B, 1, 8, 8)


def build() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    G = MLPGenerator()
    D = gl.models.DCGANDiscriminator(img_size=8, base_channels=4, spectral_norm=True)  # u, v buffers
    return G, D


def images() -> torch.Tensor:
    return torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1


def config(**overrides) -> gl.TrainConfig:
    # two D updates per G update (the first without G's graph), D called twice per update (real, fake),
    # R1 through the eager D, the EMA of G, and learning rates large enough that a wrong gradient shows
    return gl.TrainConfig(**{"steps": STEPS, "batch_size": BATCH, "lr_g": 1e-2, "lr_d": 1e-2, "n_critic": 2,
                             "loss": "hinge", "r1_weight": 1.0, "joint_d_batch": False, "ema_half_life": 40.0,
                             "device": "cpu", "progress": False, "n_samples": 4, "log_every": 1,
                             "sample_every": 2, **overrides})


def weights(result) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of G, D (spectral norm's u and v included) and the EMA of G."""
    nets = {"G": result.G, "D": result.D, **({"G_ema": result.G_ema} if result.G_ema is not None else {})}
    return {f"{name}.{k}": v.detach().clone() for name, net in nets.items()
            for k, v in net.state_dict().items()}


def cycle_nets():
    return gl.models.build_cyclegan(base_channels=4, g_n_downsampling=1, g_n_blocks=1, d_n_layers=1, seed=0)


def cycle_images() -> torch.Tensor:
    return torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1


def cycle_config() -> gl.train.CycleGANConfig:
    return gl.train.CycleGANConfig(steps=STEPS, batch_size=BATCH, pool_size=0, lr_g=1e-2, lr_d=1e-2,
                                   log_every=1, device="cpu", progress=False)


def cycle_weights(result) -> dict[str, torch.Tensor]:
    """What the four networks compute on fixed inputs. Not their weights: a bias before an instance norm has
    no effect, its true gradient is 0, and Adam turns the rounding noise it gets instead into whole steps."""
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        return {name: net.eval()(x) for name, net in result.nets._asdict().items()}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


class NoisyStream:
    """An endless stream as ``ganlab.data.PhotoPatches`` is one: batch ``index`` made afresh from the step's
    generator, ``(noisy, clean)`` colour crops of 8 x 8."""

    def batch(self, index: int, batch_size: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        g = gl.train.step_generator(seed, index)
        clean = torch.rand(batch_size, 3, 8, 8, generator=g) * 2 - 1
        return clean + 0.2 * torch.randn(clean.shape, generator=g), clean


def restorer_run(out_dir: Path | None = None) -> dict[str, torch.Tensor]:
    """A restorer trained on the stream with the EMA of G (as `train restore` trains one): its weights."""
    torch.manual_seed(0)
    G = gl.models.RestorationUNet(base_channels=4, depth=1, blocks=1)
    result = gl.train.fit_pix2pix(G, None, NoisyStream(), gl.train.Pix2PixConfig(
        steps=STEPS, batch_size=BATCH, lr_g=1e-2, adv_weight=0.0, ema_half_life=40.0, device="cpu",
        progress=False, log_every=1), out_dir=out_dir)
    nets = {"G": result.G, **({"G_ema": result.G_ema} if result.G_ema is not None else {})}
    return {f"{name}.{k}": v.detach().clone() for name, net in nets.items()
            for k, v in net.state_dict().items()}


def _allreduce_skipped(state, bucket):  # a DDP communication hook that keeps each process's own gradient
    future = torch.futures.Future()
    future.set_result(bucket.buffer())
    return future


class _Writes:
    """Paths under ``roots`` this process opened for writing, created, renamed or removed (audit hook)."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots, self.paths, self.on = [str(r) for r in roots], [], False
        sys.addaudithook(self.hook)

    def hook(self, event: str, args: tuple) -> None:
        if not self.on or event not in ("open", "os.rename", "os.remove", "os.mkdir"):
            return
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or \
                (mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if not writing:
                return
        paths = [str(a) for a in (args[:2] if event == "os.rename" else args[:1])]  # a rename: both names
        self.paths += [p for p in paths if any(p.startswith(r) for r in self.roots) and p not in self.paths]


def _worker(tmp: Path) -> None:
    """What each process that torchrun starts runs (see the end of the file); results go to ``tmp``."""
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    distributed.init("cpu")                             # env://, as torchrun set it up: gloo on the CPU
    out: dict = {"world": distributed.world_size(), "main": distributed.is_main()}
    writes = _Writes([tmp / "dist", tmp / "s2d", tmp / "d2s"])

    # the data order: this process's slice of the global batch, and its rows of the batch's noise
    batches = gl.train.Batches(images(), BATCH, seed=0, distributed=True)
    out["batch"] = batches(5)[0]
    out["noise"] = batches.noise(4, torch.device("cpu"), gl.train.step_generator(0, 5))

    # (a) equivalence: 2 processes x 4 images against one process x 8, the files written by rank 0 alone
    writes.on = True
    G, D = build()
    out["dist"] = weights(gl.fit(G, D, images(), config(), out_dir=tmp / "dist"))
    # (b) resume: a single process's checkpoint continued here, and this run's continued in one process
    G, D = build()
    out["s2d"] = weights(gl.fit(G, D, images(), config(steps=2 * STEPS), out_dir=tmp / "s2d", resume=True))
    G, D = build()
    gl.fit(G, D, images(), config(), out_dir=tmp / "d2s")
    writes.on = False
    out["writes"] = writes.paths

    # (a') the same run with DDP's gradient all-reduce broken: each process keeps its own gradient
    ddp_init = nn.parallel.DistributedDataParallel.__init__

    def init_without_allreduce(self, *args, **kwargs):
        ddp_init(self, *args, **kwargs)
        self.register_comm_hook(None, _allreduce_skipped)

    nn.parallel.DistributedDataParallel.__init__ = init_without_allreduce
    try:
        G, D = build()
        out["broken"] = weights(gl.fit(G, D, images(), config()))
    finally:
        nn.parallel.DistributedDataParallel.__init__ = ddp_init

    # the other loops on the same pieces (per-process batch norm and sampling noise on the CPU, so no
    # one-process reference): every process ends with the same weights
    torch.manual_seed(0)
    G, D = gl.models.build_pix2pix(base_channels=4, g_depth=1, d_n_layers=1)
    noisy = images()[:16]
    gl.train.fit_pix2pix(G, D, (noisy, noisy.clamp(-0.5, 0.5)),
                         gl.train.Pix2PixConfig(steps=2, batch_size=8, device="cpu", progress=False))
    torch.manual_seed(0)
    vae = gl.models.VAE(z_dim=4, img_size=8, base_channels=4)
    gl.train.fit_vae(vae, images(), gl.train.VAEConfig(steps=2, batch_size=8, device="cpu", progress=False))
    out["other_loops"] = torch.cat([p.detach().flatten() for net in (G, D, vae) for p in net.parameters()])
    # CycleGAN (instance norm, no batch norm; without the replay buffers, which each process keeps for its
    # own images): 2 processes x 4 images of each domain against one process x 8, the files by rank 0
    writes.roots, writes.paths, writes.on = [str(tmp / "cycle")], [], True
    out["cycle"] = cycle_weights(gl.train.fit_cyclegan(cycle_nets(), images(), cycle_images(), cycle_config(),
                                                       out_dir=tmp / "cycle"))
    writes.on = False
    out["cycle_writes"] = writes.paths
    out["stream"] = restorer_run(tmp / "stream")   # fit_pix2pix on a stream: rows of each global batch

    # the run skeleton: rank 0 alone shows a bar; a time budget or a NaN on one process stops both
    with gl.train.Run(steps=1, progress=True) as run:
        out["bar_shown"] = not run.bar.disable
    with gl.train.Run(steps=50, max_minutes=60.0, log_every=1, distributed=True) as run:
        while run.running():
            if rank == 0 and run.step == 3:
                run.deadline = 0.0                      # rank 0 alone is out of time
            run.end_step({"loss": torch.tensor(float(rank))})
    out["time"] = (run.step, run.stopped, run.history["loss"][-1])
    try:
        with gl.train.Run(steps=50, distributed=True) as run:
            while run.running():
                nan = rank == 1 and run.step == 2       # rank 1 alone sees a NaN
                run.end_step({"loss": torch.tensor(float("nan") if nan else 1.0)}, finite=("loss",))
        out["nan"] = None
    except FloatingPointError as exc:
        out["nan"] = (run.step, str(exc))

    # benchmarks/gpu_check.py's data-parallel run, as its own torchrun launch runs it (see test_gpu_check.py)
    gpu_check = _gpu_check()
    out["gpu_check"] = gpu_check.main(gpu_check.worker_arguments(tmp / "gpu_check.json", device="cpu",
                                                                 precision="auto", compile=False, tiny=True))

    # the command line, run as `python -m ganlab train ...` runs it (it leaves the process group at the end)
    sys.argv = ["ganlab", *CLI_ARGS, "--data-root", str(tmp / "data"), "--out", str(tmp / "cli")]
    try:
        runpy.run_module("ganlab", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        out["cli_exit"] = exc.code
    torch.save(out, tmp / f"rank{rank}.pt")


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# `ganlab train` with small networks on batches of 8: 4 images per process
CLI_ARGS = ["train", "dcgan", "--steps", "3", "--batch-size", "8", "--z-dim", "8", "--base-channels", "4",
            "--extra-layers", "0", "--quiet", "--sample-every", "0"]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, fake_mnist_root):
    """The single-process checkpoint to continue, then what the two processes torchrun started left:
    ``(tmp, [rank 0's results, rank 1's], torchrun's stdout)``."""
    tmp = tmp_path_factory.mktemp("ddp")
    (tmp / "data").symlink_to(fake_mnist_root, target_is_directory=True)
    G, D = build()
    gl.fit(G, D, images(), config(), out_dir=tmp / "s2d")  # continued by the two processes
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
               __file__, str(tmp)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)      # torchrun and both processes: none is left waiting
        pytest.fail("the two processes did not finish in 300 s (a collective left waiting?)")
    assert proc.returncode == 0, stderr[-3000:]
    return tmp, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], stdout


def test_each_process_draws_its_slice_of_every_global_batch_and_of_its_noise(two_processes):
    _, ranks, _ = two_processes
    assert [r["world"] for r in ranks] == [WORLD, WORLD] and [r["main"] for r in ranks] == [True, False]
    whole = gl.train.Batches(images(), BATCH, seed=0)
    torch.testing.assert_close(torch.cat([r["batch"] for r in ranks]), whole(5)[0], rtol=0, atol=0)
    noise = whole.noise(4, torch.device("cpu"), gl.train.step_generator(0, 5))
    torch.testing.assert_close(torch.cat([r["noise"] for r in ranks]), noise, rtol=0, atol=0)


def test_two_processes_train_the_weights_of_one_process_on_the_whole_batch(two_processes):
    _, (rank0, rank1), _ = two_processes
    G, D = build()
    reference = gl.fit(G, D, images(), config())
    one = weights(reference)
    assert max_difference(rank0["dist"], one) < 1e-5  # float rounding (measured: 4e-7)
    # every process holds the same networks (rank 1 keeps no EMA: rank 0 alone samples)
    assert "G_ema.n_averaged" not in rank1["dist"]
    assert all(torch.equal(rank0["dist"][k], v) for k, v in rank1["dist"].items())
    # with the gradient all-reduce broken each process follows its own half batch, and the test sees it
    assert max_difference(rank0["broken"], one) > 1e-3
    assert max_difference({k: rank0["broken"][k] for k in rank1["broken"]}, rank1["broken"]) > 1e-3


def test_fit_vae_and_fit_pix2pix_train_the_same_weights_on_every_process(two_processes):
    _, (rank0, rank1), _ = two_processes
    assert torch.equal(rank0["other_loops"], rank1["other_loops"])
    assert torch.isfinite(rank0["other_loops"]).all()


def test_fit_cyclegan_on_two_processes_trains_the_weights_of_one_process(two_processes):
    tmp, (rank0, rank1), _ = two_processes
    one = cycle_weights(gl.train.fit_cyclegan(cycle_nets(), images(), cycle_images(), cycle_config()))
    assert max_difference(rank0["cycle"], one) < 1e-3  # float rounding, through Adam (measured: 3e-5)
    assert all(torch.equal(rank0["cycle"][k], v) for k, v in rank1["cycle"].items())
    assert rank0["cycle_writes"] and not rank1["cycle_writes"]   # rank 0 alone writes the checkpoint
    assert gl.train.load_cyclegan(tmp / "cycle" / "checkpoint.pt").step == STEPS
def test_fit_pix2pix_on_a_stream_trains_what_one_process_trains(two_processes):
    tmp, (rank0, rank1), _ = two_processes
    one = restorer_run()
    assert max_difference(rank0["stream"], one) < 1e-5                 # the EMA of G included
    assert rank1["stream"].keys() == {k for k in one if k.startswith("G.")}   # rank 1 keeps no EMA
    saved = gl.train.pix2pix.load_pix2pix_generator(tmp / "stream" / "checkpoint.pt")[0].state_dict()
    assert max_difference({f"G_ema.{k}": v for k, v in saved.items()},
                          {k: v for k, v in one.items() if k.startswith("G_ema.")}) < 1e-5


def test_a_run_resumes_from_distributed_to_one_process_and_back(two_processes):
    tmp, (rank0, _), _ = two_processes
    G, D = build()
    uninterrupted = weights(gl.fit(G, D, images(), config(steps=2 * STEPS)))
    assert max_difference(rank0["s2d"], uninterrupted) < 1e-5           # one process, then two
    G, D = build()
    continued = gl.fit(G, D, images(), config(steps=2 * STEPS), out_dir=tmp / "d2s", resume=True)
    assert continued.step == 2 * STEPS
    assert max_difference(weights(continued), uninterrupted) < 1e-5      # two processes, then one


def test_only_rank_0_writes_files_and_shows_the_bar(two_processes):
    tmp, (rank0, rank1), _ = two_processes
    assert rank1["writes"] == [] and not rank1["bar_shown"]
    assert rank0["bar_shown"] and any(p.endswith("checkpoint.pt") for p in rank0["writes"])
    assert sorted(p.name for p in (tmp / "dist").iterdir()) == ["checkpoint.pt", "samples_000002.png",
                                                                "samples_000003.png"]


def test_the_processes_stop_together_on_one_processs_time_budget_or_nan(two_processes):
    _, ranks, _ = two_processes
    assert [r["time"] for r in ranks] == [(4, "time", 0.5)] * WORLD   # and the logged value is the mean
    assert [r["nan"][0] for r in ranks] == [3, 3] and "loss=nan" in ranks[0]["nan"][1]


def test_gpu_checks_data_parallel_run_keeps_the_processes_weights_equal(two_processes):
    tmp, ranks, _ = two_processes
    row = json.loads((tmp / "gpu_check.json").read_text())        # written by rank 0 alone
    assert row == ranks[0]["gpu_check"]
    assert row["processes"] == WORLD and row["backend"] == "gloo" and row["images_per_s"] > 0
    assert row["parameters_max_difference"] == 0.0   # DDP: the same step on every process
    assert not row["sync_batchnorm"]                   # SyncBatchNorm is CUDA's only: per-process statistics


def test_sync_batchnorm_networks_write_the_checkpoints_of_plain_ones(tiny_gan):
    # on GPUs prepare() turns batch norms into SyncBatchNorm in place (CUDA only: checked on a GPU machine
    # by benchmarks/gpu_check.py); what must hold on any machine: the same state-dict keys, so that the
    # checkpoint loads into plain networks, and the same images in eval mode (sampling), where no
    # statistics are exchanged
    G, _ = tiny_gan(num_classes=3, g_conditioning="batchnorm")
    plain = copy.deepcopy(G)
    assert nn.SyncBatchNorm.convert_sync_batchnorm(G) is G
    assert any(isinstance(m, nn.SyncBatchNorm) for m in G.modules())
    assert G.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(G.state_dict())
    z, y = torch.randn(6, G.z_dim), torch.arange(6) % 3
    assert torch.equal(gl.sample(G, 6, z=z, labels=y), gl.sample(plain, 6, z=z, labels=y))


def test_torchrun_trains_on_the_cpu_and_one_process_samples_and_resumes(two_processes, tmp_path, capsys):
    from ganlab.__main__ import main
    from ganlab.checkpoint import load_checkpoint

    tmp, ranks, stdout = two_processes
    assert [r["cli_exit"] for r in ranks] == [0, 0]
    assert stdout.count("trained 3 steps (24 images)") == 1 and f"{WORLD} processes" in stdout  # rank 0's
    out = tmp / "cli"
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    argv = [*CLI_ARGS, "--data-root", str(tmp / "data"), "--out", str(out), "--resume"]
    assert main([*argv[:3], "5", *argv[4:]]) == 0                                    # one process continues
    assert "trained 5 steps" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 5


if __name__ == "__main__":  # one of the processes torchrun starts (the `two_processes` fixture)
    _worker(Path(sys.argv[1]))
