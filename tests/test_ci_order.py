"""The order in which side-by-side workers take the test files (the root ``conftest.py``)."""
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent


def _root_conftest():
    spec = importlib.util.spec_from_file_location("ganlab_root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(path: Path, durations: list) -> Path:
    cells = [{"cell_type": "code", "source": "", "metadata": {"papermill": {"duration": d}}} for d in durations]
    path.write_text(json.dumps({"cells": cells}), encoding="utf-8")
    return path


def test_the_longest_chapters_go_first_and_each_file_keeps_its_order(tmp_path):
    conftest = _root_conftest()
    short = _notebook(tmp_path / "a_short.ipynb", [1.0, 2.0])
    long = _notebook(tmp_path / "b_long.ipynb", [30.0, None, 5.0])
    items = [SimpleNamespace(nodeid=f"{file}::{name}", path=path) for file, name, path in [
        ("tests/test_a.py", "t1", tmp_path / "test_a.py"),
        ("book/a_short.ipynb", "Cell 0", short), ("book/a_short.ipynb", "Cell 1", short),
        ("tests/test_b.py", "t1", tmp_path / "test_b.py"),
        ("book/b_long.ipynb", "Cell 0", long), ("book/b_long.ipynb", "Cell 1", long),
        ("book/b_long.ipynb", "Cell 2", long),
        ("tests/test_a.py", "t2", tmp_path / "test_a.py"),
    ]]
    order = [item.nodeid for item in conftest.longest_chapters_first(items)]
    assert order == ["book/b_long.ipynb::Cell 0", "book/b_long.ipynb::Cell 1", "book/b_long.ipynb::Cell 2",
                     "book/a_short.ipynb::Cell 0", "book/a_short.ipynb::Cell 1",
                     "tests/test_a.py::t1", "tests/test_a.py::t2", "tests/test_b.py::t1"]


def test_every_chapter_stores_the_seconds_its_cells_took():
    conftest = _root_conftest()
    for notebook in sorted((ROOT / "book").glob("*.ipynb")):
        assert conftest.stored_seconds(notebook) > 0, notebook.name
    assert conftest.stored_seconds(ROOT / "README.md") == 0.0


def test_the_workers_keep_the_order_conftest_gives(pytestconfig):
    # pytest-xdist sorts the files by their number of tests unless told not to (pyproject.toml's addopts)
    assert pytestconfig.getoption("loadscopereorder") is False
