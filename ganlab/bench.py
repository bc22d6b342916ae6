"""Measuring training speed: each lever of :func:`ganlab.fit` against a plain PyTorch loop, in one run.

The reference is the loop of pytorch/examples' ``dcgan/main.py`` (https://github.com/pytorch/examples),
written out in :func:`reference_loop` with logits in place of ``Sigmoid`` + ``BCELoss``, in fp32, eager,
contiguous (NCHW) tensors and the default Adam. :func:`throughput` times it next to ``fit`` with every
lever off, with one lever on at a time, and with ganlab's defaults for the device, all on the same model,
batch size and data; runs alternate so that all variants see the same machine state, and the median of
the repeats is kept. Speed is stated as a ratio to the reference measured in the same run, never as an
absolute figure carried over from another run.

Besides images/second, each row gives the achieved GFLOP/s: the floating-point operations of one training
step, counted by :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products,
each multiply-add counted as 2), divided by the measured time per step. The yardstick is
:func:`matmul_gflops`, the rate of one large fp32 matrix product on the same device: the practical peak
that a training step, made of smaller and less regular convolutions, can approach but not pass.

Used by ``benchmarks/throughput.py`` (the command line) and chapter 6
(``book/06_optimization.ipynb``).
"""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .train import TrainConfig, fit, resolve_precision
from .utils import check_positive_int, get_device

__all__ = ["matmul_gflops", "step_flops", "reference_loop", "Variant", "default_variants", "throughput",
           "format_rows", "cpu_supports_bf16", "LEVERS_OFF"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX), as oneDNN reports it."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe()) if probe is not None else False


def matmul_gflops(device: str | torch.device = "cpu", *, dtype: torch.dtype = torch.float32, n: int = 2048,
                  repeats: int = 10) -> float:
    """GFLOP/s of an ``n x n`` by ``n x n`` matrix product (``2 n^3`` operations), median of ``repeats``."""
    check_positive_int("n", n)
    check_positive_int("repeats", repeats)
    device = get_device(device)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    for _ in range(3):  # warm-up: thread pool, kernel selection, clocks
        a @ b
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def step_flops(run_step) -> int:
    """Floating-point operations counted while ``run_step()`` runs (one training step)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run_step()
    return int(counter.get_total_flops())


def reference_step(G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor,
                   opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer, *, ones: torch.Tensor | None = None,
                   zeros: torch.Tensor | None = None, amp=None) -> None:
    """One iteration of the pytorch/examples DCGAN loop (BCE on D's logits), with nothing of ganlab's.

    zero_grad, D on ``real``, D on ``G(z).detach()``, D's step; then D on the same ``G(z)`` for G's step
    (D's weight gradients are computed there too, and thrown away at D's next zero_grad). ``ones`` and
    ``zeros`` are the targets (made here when not given); ``amp`` is a context manager for the forward
    passes (for example :func:`torch.autocast`).
    """
    amp = amp if amp is not None else nullcontext()
    ones = ones if ones is not None else torch.ones(len(real), device=real.device)
    zeros = zeros if zeros is not None else torch.zeros(len(z), device=real.device)
    # (1) update D: maximise log D(x) + log(1 - D(G(z)))
    D.zero_grad()
    with amp:
        err_real = F.binary_cross_entropy_with_logits(D(real).float(), ones)
    err_real.backward()
    with amp:
        fake = G(z)
        err_fake = F.binary_cross_entropy_with_logits(D(fake.detach()).float(), zeros)
    err_fake.backward()
    opt_d.step()
    # (2) update G: maximise log D(G(z))
    G.zero_grad()
    with amp:
        err_g = F.binary_cross_entropy_with_logits(D(fake).float(), ones)
    err_g.backward()
    opt_g.step()


def reference_loop(G: nn.Module, D: nn.Module, data: torch.Tensor, steps: int, *, batch_size: int,
                   lr: float = 2e-4, seed: int = 0, autocast_dtype: torch.dtype | None = None) -> float:
    """:func:`reference_step` for ``steps`` iterations on random batches; returns the seconds they took.

    Adam(lr, betas=(0.5, 0.999)) for both networks, as in pytorch/examples. ``autocast_dtype`` wraps the
    forward passes in :func:`torch.autocast` (for measuring mixed precision on the plain loop).
    """
    device = next(G.parameters()).device
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    g = torch.Generator().manual_seed(seed)
    ones = torch.ones(batch_size, device=device)
    zeros = torch.zeros(batch_size, device=device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        real = data[torch.randint(len(data), (batch_size,), generator=g)].to(device)
        reference_step(G, D, real, torch.randn(batch_size, G.z_dim, generator=g).to(device), opt_d, opt_g,
                       ones=ones, zeros=zeros, amp=amp)
    _sync(device)
    return time.perf_counter() - start


@dataclass
class Variant:
    """One row of the benchmark: the reference loop (``config is None``) or ``fit`` with ``config``."""

    name: str
    config: dict[str, Any] | None = None          # TrainConfig fields for fit; None: the reference loop
    autocast_dtype: torch.dtype | None = None     # reference loop only


# every lever chosen for the device, precision included (TrainConfig's own precision default is "fp32")
LEVERS_AUTO = dict(precision="auto")

# every lever off: what fit computes with the plain loop's precision, layout and optimiser
LEVERS_OFF = dict(precision="fp32", channels_last=False, fused_adam=False, skip_d_grads=False, compile=False,
                  tune_allocator=False, joint_d_batch=False)


def default_variants(device: str | torch.device = "cpu", *, compile: bool = False) -> list[Variant]:
    """The rows :func:`throughput` measures on ``device``: reference, ganlab with no lever, each lever
    alone, ganlab's defaults (and with ``torch.compile`` when ``compile``), and mixed precision."""
    device = get_device(device)
    adam = "fused Adam" if device.type in ("cuda", "cpu") else "multi-tensor (foreach) Adam"
    rows = [
        Variant("plain fp32 eager loop (reference)", None),
        Variant("ganlab, every lever off", dict(LEVERS_OFF)),
        Variant("  + channels-last only", {**LEVERS_OFF, "channels_last": True}),
        Variant(f"  + {adam} only", {**LEVERS_OFF, "fused_adam": None}),
        Variant("  + skip D's weight grads in G's step only", {**LEVERS_OFF, "skip_d_grads": True}),
    ]
    if device.type == "cpu":
        rows.append(Variant("  + heap keeps freed activations only", {**LEVERS_OFF, "tune_allocator": True}))
    auto = resolve_precision(device, "auto")
    if device.type == "cuda":
        rows.append(Variant(f"  + {auto} autocast only", {**LEVERS_OFF, "precision": auto}))
    rows.append(Variant("ganlab defaults for this device", dict(LEVERS_AUTO)))
    if compile:
        rows.append(Variant("ganlab defaults + torch.compile", {**LEVERS_AUTO, "compile": True}))
    if device.type == "cpu" and cpu_supports_bf16():
        rows.append(Variant("plain loop + bf16 autocast (not a CPU default)", None,
                            autocast_dtype=torch.bfloat16))
    return rows


def _measure(task: dict[str, Any]) -> tuple[float, int]:
    """One timed run, in a fresh process (see :func:`throughput`): ``(seconds, FLOPs of one step)``."""
    from .models import build_gan

    torch.set_num_threads(task["threads"])
    device = torch.device(task["device"])
    if task["kind"] == "matmul":
        return matmul_gflops(device), 0
    model_args, batch_size, steps, seed = task["model_args"], task["batch_size"], task["steps"], task["seed"]
    img_size, channels = model_args.get("img_size", 28), model_args.get("img_channels", 1)
    data = torch.rand(4096, channels, img_size, img_size, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def run(n_steps: int) -> float:
        torch.manual_seed(seed)
        G, D = build_gan(task["model"], **model_args)
        G, D = G.to(device), D.to(device)
        if task["config"] is None:
            return reference_loop(G, D, data, n_steps, batch_size=batch_size, seed=seed,
                                  autocast_dtype=task["autocast_dtype"])
        config = TrainConfig(steps=n_steps, batch_size=batch_size, seed=seed, device=str(device),
                             progress=False, n_samples=1, log_every=n_steps, **task["config"])
        _sync(device)
        start = time.perf_counter()
        fit(G, D, data, config)
        _sync(device)
        return time.perf_counter() - start

    run(task["warmup"])  # kernels, allocator, thread pool, compilation
    seconds = run(steps)
    flops = 0
    if task["count_flops"]:
        if task["config"] is not None and task["config"].get("compile"):
            task = {**task, "config": {**task["config"], "compile": False}}
        flops = step_flops(lambda: run(1))
    return seconds, flops


def throughput(*, model: str = "dcgan", model_args: dict[str, Any] | None = None, batch_size: int = 64,
               steps: int = 30, repeats: int = 3, warmup: int = 5, device: str | torch.device = "auto",
               variants: list[Variant] | None = None, compile: bool = False,
               progress: bool = True, in_process: bool = False) -> list[dict[str, Any]]:
    """Time each variant for ``steps`` training steps, ``repeats`` times, interleaved; one dict per row.

    Every timed run happens in a fresh Python process (``spawn``), after ``warmup`` untimed steps there,
    so that no row inherits another's process state: the allocator setting of ``fit`` on the CPU (see
    :func:`ganlab.utils.tune_cpu_allocator`), warmed caches, compiled code. The fp32 matrix-product rate
    is measured the same way in each round. ``in_process=True`` runs everything in this process instead:
    quicker (no interpreter start per run), for tests and quick looks, but the rows then share that state.

    Each row has ``name``, ``images_per_s`` (median over repeats), ``ratio`` (to the first row, the
    reference), ``gflop_per_step``, ``gflops`` (achieved), ``peak_share`` (achieved over the median fp32
    matrix-product rate; ``None`` for reduced-precision rows, whose yardstick would be the bf16 rate)
    and ``peak_gflops``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .models import GAN_REGISTRY

    for name, value in (("batch_size", batch_size), ("steps", steps), ("repeats", repeats),
                        ("warmup", warmup)):
        check_positive_int(name, value)
    if model not in GAN_REGISTRY:
        raise ValueError(f"model: unknown GAN {model!r}; choose from {sorted(GAN_REGISTRY)}")
    device = get_device(device)
    model_args = dict(model_args or {})
    variants = variants if variants is not None else default_variants(device, compile=compile)
    if not variants or variants[0].config is not None:
        raise ValueError("variants: the first row must be the reference loop (config=None)")

    context = multiprocessing.get_context("spawn")
    base = dict(model=model, model_args=model_args, batch_size=batch_size, steps=steps, warmup=warmup,
                device=str(device), threads=torch.get_num_threads())

    def measure(task: dict[str, Any]) -> tuple[float, int]:
        if in_process:
            return _measure({**base, **task})
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(_measure, {**base, **task}).result()

    bar = tqdm(total=(len(variants) + 1) * repeats, desc="benchmark", disable=not progress)
    times: list[list[float]] = [[] for _ in variants]
    flops = [0] * len(variants)
    peaks = []
    for r in range(repeats):
        peaks.append(measure(dict(kind="matmul"))[0])
        bar.update(1)
        for i, v in enumerate(variants):
            seconds, counted = measure(dict(kind="train", config=v.config, autocast_dtype=v.autocast_dtype,
                                            seed=r, count_flops=r == 0))
            times[i].append(seconds)
            flops[i] = counted or flops[i]
            bar.update(1)
    bar.close()
    peak = statistics.median(peaks)
    rows = []
    for v, t, fl in zip(variants, times, flops):
        seconds_per_step = statistics.median(t) / steps
        reduced = v.autocast_dtype is not None or (
            v.config is not None and device.type != "cpu"
            and resolve_precision(device, v.config.get("precision", "fp32")) != "fp32")
        gflops = fl / seconds_per_step / 1e9
        rows.append(dict(name=v.name, images_per_s=batch_size / seconds_per_step, gflop_per_step=fl / 1e9,
                         gflops=gflops, peak_share=None if reduced else gflops / peak, peak_gflops=peak))
    ref = rows[0]["images_per_s"]
    for row in rows:
        row["ratio"] = row["images_per_s"] / ref
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`throughput` as a fixed-width text table."""
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'variant':<{width}}  {'images/s':>9}  {'ratio':>6}  {'GFLOP/step':>10}  {'GFLOP/s':>8}  "
             f"{'of fp32 matmul':>14}"]
    for r in rows:
        share = f"{100 * r['peak_share']:13.0f}%" if r["peak_share"] is not None else f"{'(bf16)':>14}"
        lines.append(f"{r['name']:<{width}}  {r['images_per_s']:9.1f}  {r['ratio']:6.2f}  "
                     f"{r['gflop_per_step']:10.2f}  {r['gflops']:8.1f}  {share}")
    lines.append(f"fp32 matrix product ({rows[0]['peak_gflops']:.0f} GFLOP/s) is the practical peak")
    return "\n".join(lines)
