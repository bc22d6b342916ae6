"""The run skeleton (``ganlab.train.loop.Run``) and the package's boundaries."""
import ast
import time
from pathlib import Path

import pytest
import torch

import ganlab as gl
from ganlab.train.loop import Run

PACKAGE = Path(gl.__file__).parent


def test_run_logs_every_k_steps_and_the_last_and_counts_its_budget():
    with Run(steps=7, log_every=3) as run:
        while run.running():
            run.end_step({"loss": torch.tensor(float(run.step))})
    assert run.step == 7 and run.stopped == "steps"
    assert run.history["step"] == [3, 6, 7] and run.history["loss"] == [2.0, 5.0, 6.0]
    assert set(run.history) == {"step", "loss", "seconds"}
    assert [run.due(k) for k in (0, 7, 2)] == [False, True, False]


def test_run_stops_on_time_and_on_a_non_finite_value():
    with Run(steps=10**9, max_minutes=1e-6) as run:
        while run.running():
            run.end_step({})
    assert run.stopped == "time" and run.step < 10**9
    with pytest.raises(FloatingPointError, match=r"diverged at step 2: loss=nan\. Lower"):
        with Run(steps=5, advice="Lower the learning rate.") as run:
            while run.running():
                run.end_step({"loss": torch.tensor(float("nan") if run.step == 1 else 1.0)}, finite=("loss",))
    with pytest.raises(ValueError, match="callbacks event"):
        Run(steps=1, callbacks={"on_epoch": []})


def test_a_run_stopped_by_its_time_budget_ends_with_a_full_bar_and_a_crash_does_not():
    # a notebook draws a closed bar short of its total in red, as if the run had crashed
    with Run(steps=10**6, max_minutes=1e-6, progress=True) as run:
        while run.running():
            run.end_step({})
    assert run.stopped == "time" and run.bar.n == run.bar.total == run.step
    with pytest.raises(RuntimeError):
        with Run(steps=10, progress=True) as crashed:
            crashed.end_step({})
            raise RuntimeError("boom")
    assert crashed.bar.n == 1 and crashed.bar.total == 10


def test_a_time_stopped_run_leaves_a_full_green_widget_in_a_notebook(monkeypatch):
    # tqdm.notebook's widget keeps its own maximum: the one a stored notebook shows
    notebook = pytest.importorskip("tqdm.notebook")

    def slow_widget(*args, **kwargs):  # a first widget takes milliseconds to build, more on a busy machine
        bar = notebook.tqdm(*args, **kwargs)
        time.sleep(0.01)  # longer than the whole budget below: it must not count
        return bar

    monkeypatch.setattr("ganlab.train.loop.tqdm", slow_widget)
    with Run(steps=10**6, max_minutes=1e-4, progress=True) as run:
        while run.running():
            run.end_step({})
    widget = run.bar.container.children[1]
    assert run.step > 0 and widget.value == widget.max == run.step and widget.bar_style == "success"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module named, names imported) for every import in a source file, relative ones resolved."""
    tree = ast.parse(path.read_text())
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]  # the package a relative import starts from
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.append((module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_the_package_root_or_anothers_private_names(path):
    is_root = path == PACKAGE / "__init__.py"
    for module, names in _imports(path):
        assert is_root or module != "ganlab", (path, names)  # e.g. `from .. import __version__`
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not (module.startswith("ganlab") and private), (path, module, private)


def test_viz_draws_and_imports_no_training_code():
    modules = [m for m, _ in _imports(PACKAGE / "viz.py")]
    assert not any(m.startswith("ganlab.train") for m in modules), modules
    assert not hasattr(gl.viz, "ToyGame") and hasattr(gl.train, "ToyGame")
