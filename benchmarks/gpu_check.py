"""The GPU check: every chapter at its GPU settings, the training throughput, and training on two processes.

For whoever has a GPU machine: the book's outputs come from CPU runs, so a chapter's GPU settings (and
any time it might quote for them) are measured here or nowhere. The figures go into one JSON file; record
it with the issue that asked for them.

    python benchmarks/gpu_check.py                                  # everything, on cuda
    python benchmarks/gpu_check.py --chapters 04 05a                # some chapters, and the rest
    python benchmarks/gpu_check.py --parts throughput,ddp           # no chapters
    python benchmarks/gpu_check.py --parts ddp --share-gpu          # one GPU: two processes on it (gloo)
    python benchmarks/gpu_check.py --device cpu --tiny              # the CPU standing in: checks the script

Chapters. A chapter's ``parameters`` cell gives its GPU settings on comment lines that start with
``# gpu:``, in keyword form (``# gpu: steps=20_000, n_eval=5_000``; several such lines are read as one).
Each chapter runs with papermill at those values into ``--work`` (the book's copies are never touched);
``device`` is set to ``--device`` where the chapter's own default is ``"auto"`` (the chapters that chose
the CPU keep it). A chapter without a ``# gpu:`` line runs at its book settings: it says a GPU changes
nothing for it. The JSON keeps, per chapter, the values used, the seconds, ``"ok"`` or the error, and its
headline figures: every value the chapter glues into its text (``ganlab.book.glue``, unrounded).
``--tiny`` runs each chapter with the smoke-test parameters of ``tests/test_notebooks.py`` instead.

Throughput. ``benchmarks/throughput.py`` with the settings chapter 6 gives for a GPU (``--device cuda
--batch-size 256 --steps 100 --compile``): each speed lever against a plain PyTorch loop.

Training on several processes. The command line's MNIST networks (``ganlab.recipes.MNIST``) trained by
``ganlab.fit`` on a global batch of 256, in one process and then in ``--processes`` (2) that ``torchrun``
starts (NCCL, one GPU each) when that many GPUs are present: images per second of each and the speed-up,
and afterwards the largest difference between the processes' parameters (0: DDP kept them equal) and
buffers. With fewer GPUs, ``--share-gpu`` runs the processes on them through gloo: a check that DDP,
SyncBatchNorm, mixed precision (``--precision``, default ``auto``) and ``--compile`` work together on
CUDA, not a speed figure. On the CPU (``--device cpu``) the processes use gloo, as the tests do.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
PARTS = ("chapters", "throughput", "ddp")
GPU_LINE = re.compile(r"^\s*#\s*gpu:\s*(.*?)\s*$", re.M)
GLUE_MIME = "application/papermill.record/"


# ---- the chapters' GPU settings

def gpu_settings(source: str) -> dict[str, Any]:
    """The values of the ``# gpu:`` lines of a parameters cell's ``source`` (``{}`` when it has none).

    ``# gpu: steps=20_000, eval_every=1_000`` gives ``{"steps": 20000, "eval_every": 1000}``; the lines
    are joined in order; every value must be a Python literal and every name one the cell assigns.
    """
    parts = [m.group(1).rstrip(",") for m in GPU_LINE.finditer(source)]
    if not parts:
        return {}
    text = ", ".join(p for p in parts if p)
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        values = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"a '# gpu:' line is not of the form name=literal, ...: {text!r} ({exc})") from None
    if call.args or None in values:
        raise ValueError(f"a '# gpu:' line must hold name=value pairs only, got {text!r}")
    assigned = set(re.findall(r"^([A-Za-z_]\w*)\s*=", source, flags=re.M))
    unknown = sorted(set(values) - assigned)
    if unknown:
        raise ValueError(f"'# gpu:' names {unknown}, which the parameters cell does not assign")
    return values


def parameters_source(notebook: dict) -> str:
    """The source of the notebook's cell tagged ``parameters``."""
    cells = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(cells)}")
    source = cells[0]["source"]
    return "".join(source) if isinstance(source, list) else source


def chapter_parameters(notebook: dict, *, device: str, tiny: bool, smoke: dict[str, Any]) -> dict[str, Any]:
    """The values a chapter runs with: its GPU settings (``smoke`` with ``tiny``), and ``device``."""
    source = parameters_source(notebook)
    values = dict(smoke) if tiny else gpu_settings(source)
    own = re.search(r"^device\s*=\s*(['\"])(\w+)\1", source, flags=re.M)
    if own is not None and "device" not in values and (own.group(2) == "auto" or device == "cpu"):
        values["device"] = device  # the chapters that chose the CPU keep it, unless the CPU stands in
    return values


def glued_figures(notebook: dict) -> dict[str, Any]:
    """Every value the executed notebook glued into its text (``ganlab.book.glue``), unrounded where the
    output keeps the full value."""
    def literal(text: Any) -> Any:
        try:
            return ast.literal_eval(text) if isinstance(text, str) else text
        except (ValueError, SyntaxError):
            return text

    figures: dict[str, Any] = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {})
            name = meta.get("scrapbook", {}).get("name")
            stored = [v for mime, v in output.get("data", {}).items() if mime.startswith(GLUE_MIME)]
            if name is None or not stored:
                continue
            full = meta.get("ganlab", {}).get("full")
            figures[name] = literal(full if full is not None else stored[0])
    return figures


def _smoke_parameters() -> dict[str, dict[str, Any]]:
    """``SMOKE_PARAMETERS`` of ``tests/test_notebooks.py``: the chapters' tiny settings, kept in one place."""
    path = ROOT / "tests" / "test_notebooks.py"
    spec = importlib.util.spec_from_file_location("_ganlab_test_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SMOKE_PARAMETERS


def run_chapters(book: Path, work: Path, *, names: list[str], device: str, tiny: bool,
                 timeout: float) -> dict[str, Any]:
    import nbformat
    import papermill

    smoke = _smoke_parameters() if tiny else {}
    results: dict[str, Any] = {}
    for path in sorted(book.glob("[0-9][0-9]*_*.ipynb")):
        if names and not any(path.stem.startswith(n) for n in names):
            continue
        notebook = nbformat.read(path, as_version=4)
        entry: dict[str, Any] = {"parameters": chapter_parameters(notebook, device=device, tiny=tiny,
                                                                  smoke=smoke.get(path.stem, {}))}
        print(f"chapter {path.stem}: {entry['parameters']}", flush=True)
        out = work / path.name
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(path), str(out), parameters=entry["parameters"], cwd=str(book),
                                       progress_bar=False, execution_timeout=timeout)
            entry["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 - recorded, and the other chapters still run
            entry["status"] = f"error: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
        entry["seconds"] = round(time.perf_counter() - start, 1)
        if out.exists():
            entry["figures"] = glued_figures(nbformat.read(out, as_version=4))
        print(f"  {entry['status']} in {entry['seconds']} s", flush=True)
        results[path.stem] = entry
    return results


# ---- the throughput benchmark

def run_throughput(work: Path, *, device: str, tiny: bool) -> dict[str, Any]:
    """``benchmarks/throughput.py`` (in this process; its timed runs each start their own unless tiny)."""
    spec = importlib.util.spec_from_file_location("_ganlab_throughput", ROOT / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = work / "throughput.json"
    argv = ["--device", device, "--json", str(out)]
    argv += (["--steps", "1", "--repeats", "1", "--base-channels", "4", "--extra-layers", "0",
              "--batch-size", "8", "--in-process"] if tiny else
             ["--batch-size", "256", "--steps", "100"] + (["--compile"] if device.startswith("cuda") else []))
    start = time.perf_counter()
    module.main(argv)
    result = json.loads(out.read_text(encoding="utf-8"))
    result.update(argv=argv, seconds=round(time.perf_counter() - start, 1))
    return result


# ---- training on several processes

def ddp_measure(*, batch_size: int, steps: int, warmup: int, device: str, precision: str, compile: bool,
                tiny: bool) -> dict[str, Any]:
    """``ganlab.fit`` on the MNIST recipe's networks in this process, or in each process torchrun started:
    images per second over ``steps`` steps after ``warmup``, and how far the processes' weights differ."""
    import torch
    import torch.distributed as torch_dist

    import ganlab as gl
    from ganlab.train import distributed

    dev = distributed.init(device)
    G, D = gl.recipes.MNIST.build(seed=0, **(dict(z_dim=8, base_channels=4, extra_layers=0) if tiny else {}))
    data = torch.rand(4096, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    config = gl.recipes.MNIST.train_config(steps=warmup + steps, batch_size=batch_size, device=dev.type,
                                           precision=precision, compile=compile, progress=False,
                                           log_every=warmup + steps, n_samples=1, checkpoint_every=0)
    marks: dict[int, float] = {}

    def mark(state) -> None:
        if state.step in (warmup, warmup + steps):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            marks[state.step] = time.perf_counter()

    result = gl.fit(G, D, data, config, callbacks={"on_step_end": [mark]})
    seconds = marks[warmup + steps] - marks[warmup]
    row = {"processes": distributed.world_size(), "device": str(dev), "batch_size": batch_size,
           "steps": steps, "precision": gl.train.resolve_precision(dev, precision), "compile": compile,
           "backend": torch_dist.get_backend() if distributed.active() else None,
           "sync_batchnorm": any(isinstance(m, torch.nn.SyncBatchNorm) for m in G.modules()),
           "d_loss": result.history["d_loss"][-1], "g_loss": result.history["g_loss"][-1]}
    if distributed.active():
        flat = {kind: torch.cat([t.detach().float().flatten() for net in (G, D)
                                 for t in (net.parameters() if kind == "parameters" else net.buffers())
                                 if t.is_floating_point()]) for kind in ("parameters", "buffers")}
        for kind, mine in flat.items():
            every = [torch.empty_like(mine) for _ in range(distributed.world_size())]
            torch_dist.all_gather(every, mine)
            row[f"{kind}_max_difference"] = max(float((t - every[0]).abs().max()) for t in every)
        seconds = max(s for s in _gather(seconds))
    row["seconds"] = seconds
    row["images_per_s"] = steps * batch_size / seconds
    return row


def _gather(value: float) -> list[float]:
    import torch.distributed as torch_dist

    values: list[Any] = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(values, value)
    return values


# the training on several processes: tiny (a check of the code) or at a GPU's size
DDP_SIZES = {True: dict(batch_size=8, steps=2, warmup=1), False: dict(batch_size=256, steps=200, warmup=20)}


def run_ddp(work: Path, *, device: str, tiny: bool, processes: int, share_gpu: bool, precision: str,
            compile: bool, timeout: float) -> dict[str, Any]:
    """One process here, then ``processes`` under torchrun where as many GPUs (or the CPU, or
    ``share_gpu``) allow: ``{"one": row, "several": row or why not, "speedup": ...}``."""
    import torch

    size = DDP_SIZES[tiny]
    result: dict[str, Any] = {"one": ddp_measure(device=device, precision=precision, compile=compile,
                                                 tiny=tiny, **size)}
    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    if processes < 2:
        return result
    if device.startswith("cuda") and gpus < processes and not share_gpu:
        result["several"] = (f"skipped: {gpus} GPU(s) for {processes} processes (--share-gpu runs them "
                             f"on fewer GPUs: a check, not a speed)")
        return result
    out = work / "ddp_several.json"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if device.startswith("cuda") and gpus < processes:
        env["GANLAB_DIST_BACKEND"] = "gloo"   # NCCL refuses two processes on one GPU
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               str(Path(__file__).resolve()),
               *worker_arguments(out, device=device.split(":")[0], precision=precision, compile=compile,
                                 tiny=tiny)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0 or not out.exists():
        result["several"] = f"error (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        return result
    result["several"] = json.loads(out.read_text(encoding="utf-8"))
    result["several"]["shared_gpu"] = bool(device.startswith("cuda") and gpus < processes)
    result["speedup"] = result["several"]["images_per_s"] / result["one"]["images_per_s"]
    return result


def worker_arguments(out: Path, *, device: str, precision: str, compile: bool, tiny: bool) -> list[str]:
    """The arguments of this script for one of the processes torchrun starts (``run_ddp``)."""
    return ["--ddp-worker", str(out), "--device", device, "--precision", precision,
            *(["--compile"] if compile else []), *(["--tiny"] if tiny else [])]


# ---- the whole check

def machine() -> dict[str, Any]:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda, "gpus": []}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json", help="the JSON file to write")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to let the CPU stand in")
    parser.add_argument("--tiny", action="store_true", help="tiny settings everywhere: a check of the script")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"what to run, of {','.join(PARTS)}")
    parser.add_argument("--chapters", nargs="*", default=[], help="name prefixes (default: every chapter)")
    parser.add_argument("--book", default=str(BOOK), help="the folder of the chapters")
    parser.add_argument("--work", default=None, help="where the executed chapters go (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per chapter cell and per run")
    parser.add_argument("--precision", default="auto", help="of the training on several processes")
    parser.add_argument("--compile", action="store_true", help="torch.compile in the training on processes")
    parser.add_argument("--processes", type=int, default=2,
                        help="processes of the data-parallel run (1: one process only)")
    parser.add_argument("--share-gpu", action="store_true", help="processes share fewer GPUs (gloo): a check")
    parser.add_argument("--ddp-worker", default=None, help=argparse.SUPPRESS)  # a process torchrun started
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        parser.error(f"argument --parts: unknown {bad}; choose from {','.join(PARTS)}")

    if args.ddp_worker:  # one of the processes of run_ddp (the process group is left at exit)
        from ganlab.train import distributed

        row = ddp_measure(device=args.device, precision=args.precision, compile=args.compile, tiny=args.tiny,
                          **DDP_SIZES[args.tiny])
        if distributed.is_main():
            Path(args.ddp_worker).write_text(json.dumps(row, indent=1), encoding="utf-8")
        return row

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("argument --device: CUDA is not available here; --device cpu --tiny checks the script")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "settings": {**vars(args), "parts": parts}}
    start = time.perf_counter()
    if "chapters" in parts:
        report["chapters"] = run_chapters(Path(args.book), work, names=args.chapters, device=args.device,
                                          tiny=args.tiny, timeout=args.timeout)
    if "throughput" in parts:
        report["throughput"] = run_throughput(work, device=args.device, tiny=args.tiny)
    if "ddp" in parts:
        report["ddp"] = run_ddp(work, device=args.device, tiny=args.tiny, processes=args.processes,
                                share_gpu=args.share_gpu, precision=args.precision, compile=args.compile,
                                timeout=args.timeout)
    report["seconds"] = round(time.perf_counter() - start, 1)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(f"wrote {args.out} ({report['seconds']} s)")
    return report


if __name__ == "__main__":
    main()
