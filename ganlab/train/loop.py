"""The run skeleton every training loop shares: budget, progress bar, history, divergence stop, cadence.

``ganlab.fit``, ``fit_vae``, ``fit_pix2pix``, the metrics' classifier and the 2-D :class:`ToyGame` all
loop the same way; only what happens inside a step differs. Lightning calls this "not abstracted, just
organised"; minGPT's ``Trainer`` is the same idea with its tiny event hook. A loop reads::

    with Run(steps=config.steps, log_every=config.log_every, max_minutes=config.max_minutes,
             progress=config.progress, desc="training") as run:
        while run.running():                      # steps left, and time left (else stopped = "time")
            stats = update(batches(run.step))     # the loop's own step, on batch number `run.step`
            run.end_step(stats, finite=("loss",))  # count it, stop on NaN/inf, log a row when due
            if run.due(config.checkpoint_every):  # every k steps
                ...
            run.emit("on_step_end", state)        # callbacks

A history row is ``{"step": k, <stats as floats>, "seconds": since the start}``, written every
``log_every`` steps and at the last step; ``UNLIMITED_STEPS`` with ``max_minutes`` makes a run that only
its time budget ends.

Divergence: a ``finite`` value that is NaN or infinite stops the run with a ``FloatingPointError``. So does
an *exploding* one, when the loop asks for it (``explode_at``; ``ganlab.fit`` does, at
:data:`EXPLODING_LOSS`): beyond that magnitude for :data:`EXPLODING_STEPS` steps in a row, with the same
message. It stops rather than warns because such a run is on its way to NaN (a loss of 1e6 in a GAN means
logits of that size, far outside anything that trains) and because each checkpoint it went on writing would
replace a good one with exploded weights; a warning scrolls away in a long command-line run.

Several processes (``torchrun``, :mod:`.distributed`): rank 0 alone shows the bar and writes files
(:meth:`Run.write`; checkpoints go through ``ganlab.save_checkpoint``, which writes on rank 0 only). A loop
that trains with DDP passes ``distributed=True``: :meth:`Run.end_step` then averages the step's values over
the processes (one all-reduce), so every process logs the same history, the loss of the global batch, and
stops at the same step when one of them sees a NaN; the time budget is agreed the same way (the run stops
when any process is out of time), so that no process is left waiting for the others.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..utils import atomic_write, check_choice
from . import distributed as dist
from .config import UNLIMITED_STEPS
from .steps import as_floats

__all__ = ["Run", "check_callbacks", "EXPLODING_LOSS", "EXPLODING_STEPS"]

# a loss beyond this magnitude for this many steps in a row stops a run as NaN does (see the module docstring)
EXPLODING_LOSS = 1e6
EXPLODING_STEPS = 5


def check_callbacks(callbacks: Mapping[str, Iterable[Callable]] | None,
                    events: tuple[str, ...]) -> dict[str, list[Callable]]:
    """``{event: [fn, ...]}`` checked against the loop's ``events`` (a single callable is a list of one)."""
    if callbacks is None:
        return {}
    if not isinstance(callbacks, Mapping):
        raise TypeError("callbacks must be a dict like {'on_step_end': [fn, ...]}")
    out = {}
    for event, fns in callbacks.items():
        check_choice("callbacks event", event, events)
        fns = [fns] if callable(fns) else list(fns)
        if not all(callable(f) for f in fns):
            raise TypeError(f"callbacks[{event!r}] must hold callables")
        out[event] = fns
    return out


class Run:
    """The state of one call of a training loop, besides the networks: step, history, clock and bar.

    Args:
        steps: the step budget (the run ends when ``step`` reaches it).
        step: the step to start from (a resumed run's), with its ``history``.
        log_every: steps between history rows (a row is also written at the last step); ``None``: only then.
        max_minutes: the wall-clock budget of this call; ``None``: no limit.
        progress, desc: a tqdm bar, and its label.
        postfix: ``{key: format}`` of the values the bar shows, e.g. ``{"d_loss": ".3f"}``.
        timed: add a ``seconds`` column to each row.
        check_logged: stop when a logged row holds a non-finite value (no sync in between).
        callbacks, events: the callbacks and the events the loop emits.
        advice: appended to the divergence error, e.g. "lower the learning rate".
        checkpoints: the divergence error names the last checkpoint written (``self.checkpoint``).
        resumed_from: the checkpoint a resumed run started from: the last good one until another is written.
        explode_at: stop when a ``finite`` value of :meth:`end_step` is beyond this magnitude for
            ``explode_steps`` steps in a row, as for NaN; ``None``: only NaN and infinity stop.
        distributed: the loop trains with DDP: average the step's values over the processes and agree on
            when to stop (see the module docstring); a no-op without a process group.
    """

    def __init__(self, *, steps: int, step: int = 0, history: dict[str, list[float]] | None = None,
                 log_every: int | None = None, max_minutes: float | None = None, progress: bool = False,
                 desc: str = "training", postfix: Mapping[str, str] | None = None, timed: bool = True,
                 check_logged: bool = False, callbacks: Mapping[str, Iterable[Callable]] | None = None,
                 events: tuple[str, ...] = ("on_step_end",), advice: str = "", checkpoints: bool = False,
                 explode_at: float | None = None, explode_steps: int = EXPLODING_STEPS,
                 distributed: bool = False, resumed_from: Path | None = None) -> None:
        self.steps, self.step = steps, step
        self.history = history if history is not None else {}
        self.log_every, self.timed, self.check_logged = log_every, timed, check_logged
        self.postfix, self.advice, self.checkpoints = dict(postfix or {}), advice, checkpoints
        self.callbacks = check_callbacks(callbacks, events)
        self.explode_at, self.explode_steps, self.exploding = explode_at, explode_steps, 0
        self.stopped = "steps"                  # "steps" (budget done) or "time" (max_minutes reached)
        self.checkpoint: Path | None = None     # the last checkpoint written, and at which step
        self.checkpoint_step = -1
        self.resumed_from = resumed_from
        self.main = dist.is_main()              # rank 0 (or the only process): the bar and the files are its
        self.world_size = dist.world_size() if distributed else 1
        self.time_up = False                    # in a process group: some process ran out of time
        self.bar = tqdm(total=None if steps >= UNLIMITED_STEPS else steps, initial=min(step, steps),
                        disable=not (progress and self.main), desc=desc, unit="step", dynamic_ncols=True,
                        mininterval=0.5)
        # the clock starts once the bar is drawn: a notebook's first widget takes milliseconds to build
        # (more on a busy machine), which are not the run's
        self.start = time.perf_counter()
        self.deadline = self.start + 60.0 * max_minutes if max_minutes is not None else math.inf

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:  # a stopped run's bar is cleared, so that its error is the line that remains
            self.bar.leave = False
        elif self.stopped == "time" and self.bar.total != self.bar.n:
            # the time budget is this run's end: a bar stopped short of `steps` would read as a crash
            # (red in a notebook)
            self.bar.total = self.bar.n
            container = getattr(self.bar, "container", None)  # tqdm.notebook: the widget keeps its own max
            if container is not None:
                container.children[1].max = self.bar.n
            self.bar.refresh()
        self.bar.close()

    @property
    def seconds(self) -> float:
        """Wall-clock seconds since the run started."""
        return time.perf_counter() - self.start

    def running(self) -> bool:
        """Whether to make another step: steps are left and so is time (else ``stopped = "time"``)."""
        if self.step >= self.steps:
            return False
        if self.time_up or (self.world_size == 1 and time.perf_counter() >= self.deadline):
            self.stopped = "time"
            return False
        return True

    def end_step(self, stats: Mapping[str, torch.Tensor | float], *, finite: tuple[str, ...] = ()) -> dict | None:
        """Count a finished step; stop if a ``finite`` key of ``stats`` is NaN or infinite; log when due.

        Returns the history row written (``None`` when none was due). With ``distributed=True`` the values
        are first averaged over the processes (and the time budget agreed on), in one all-reduce.
        """
        self.step += 1
        if self.world_size > 1:
            keys = list(stats)
            values, (self.time_up,) = dist.reduce_mean([stats[k] for k in keys],
                                                       flags=[time.perf_counter() >= self.deadline])
            stats = dict(zip(keys, values))
        if finite:
            values = {k: float(torch.as_tensor(stats[k]).detach()) for k in finite}  # one sync per value
            if not all(math.isfinite(v) for v in values.values()):
                raise self.diverged(", ".join(f"{k}={v}" for k, v in values.items()))
            if self.explode_at is not None:
                big = any(abs(v) > self.explode_at for v in values.values())
                self.exploding = self.exploding + 1 if big else 0
                if self.exploding >= self.explode_steps:
                    what = ", ".join(f"{k}={v:.3g}" for k, v in values.items())
                    raise self.diverged(f"{what} (beyond {self.explode_at:.0e} for {self.exploding} steps "
                                        f"in a row)")
        self.bar.update(1)
        if not (self.step == self.steps or (self.log_every and self.step % self.log_every == 0)):
            return None
        row = {"step": self.step, **as_floats(stats)}
        if self.timed:
            row["seconds"] = self.seconds
        if self.check_logged and not all(math.isfinite(v) for v in row.values()):
            raise self.diverged(str(row))
        for k, v in row.items():
            self.history.setdefault(k, []).append(v)
        if self.postfix:
            self.bar.set_postfix({k: format(row[k], f) for k, f in self.postfix.items() if k in row},
                                 refresh=False)
        return row

    def due(self, every: int) -> bool:
        """Whether this step is a multiple of ``every`` (0: never), e.g. for samples and checkpoints."""
        return bool(every) and self.step % every == 0

    def write(self, path: str | Path, write: Callable[[Path], Any]) -> Path:
        """``atomic_write(path, write)`` on rank 0 alone (or the only process); returns ``path``."""
        if self.main:
            atomic_write(path, write)
        return Path(path)

    def saved(self, path: Path) -> None:
        """Record the checkpoint just written (the divergence error names it)."""
        self.checkpoint, self.checkpoint_step = path, self.step

    def diverged(self, what: str) -> FloatingPointError:
        """The error that stops a run whose losses or weights stopped being finite."""
        message = f"training diverged at step {self.step}: {what}"
        last = self.checkpoint if self.checkpoint is not None else self.resumed_from
        if self.checkpoints:
            message += (f"; the last good checkpoint ({last}) was kept" if last is not None
                        else "; no checkpoint had been written yet")
        return FloatingPointError(f"{message}. {self.advice}" if self.advice else message)

    def emit(self, event: str, state: Any) -> None:
        """Call the callbacks registered for ``event`` with ``state``."""
        for fn in self.callbacks.get(event, []):
            fn(state)
