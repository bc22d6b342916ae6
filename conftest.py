"""pytest settings shared by the unit tests (``tests/``) and the chapters (``book/*.ipynb`` under nbval).

* Data: when ``GANLAB_DATA`` is not set and a ``shared/data`` folder holding MNIST sits beside the
  repository (the layout of the book's offline build and CI machines), it is used. Set ``GANLAB_DATA``
  yourself to point anywhere else. Notebook kernels started by nbval and papermill inherit it.
* nbval: stderr is not compared (library warnings differ between versions and platforms); everything
  else a cell prints is compared unless the cell is tagged ``nbval-ignore-output`` or the text is
  rewritten by ``tests/nbval_sanitize.cfg`` (given in ``pyproject.toml``). ``tests/nbval_report.py``
  lists what is compared, and CONTRIBUTING.md gives the rule.
* ``--smoke`` also runs every chapter with tiny parameters (tests marked ``smoke``): a quick check of a
  chapter's wiring while editing it. ``pytest --nbval`` runs every chapter in full anyway, so CI leaves
  the smoke runs out.
* Side by side: pytest-xdist (``-n auto --dist loadfile``, in ``pyproject.toml``) runs each test file,
  a chapter whole, in one of up to four worker processes, one per core, and gives each worker its share
  of the cores' threads (``OMP_NUM_THREADS``) unless that is set already. The chapters go first, the
  longest first by the seconds stored in them, so that no long chapter is left running alone at the end.
  ``-n 0`` runs one file after another in a single process, in the order collected.
* At the end, the seconds spent per chapter under nbval (and on the unit tests) are printed, so a change
  can see what it costs.
"""
import os
from collections import defaultdict
from pathlib import Path

import pytest

import matplotlib

matplotlib.use("Agg")  # the unit tests draw figures without a screen

_SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"
if not os.environ.get("GANLAB_DATA") and (_SHARED_DATA / "MNIST" / "raw").is_dir():
    os.environ["GANLAB_DATA"] = str(_SHARED_DATA)


# ---- chapters side by side: pytest-xdist (`-n auto --dist loadfile` in pyproject.toml) runs each test
# file, a chapter whole, in one of several worker processes
_MAX_WORKERS = 4  # more chapters at once than this ask more memory than a laptop has to spare


def _cores() -> int:
    """The cores this process may run on (a container's or a `taskset`'s limit included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most ``_MAX_WORKERS`` (``PYTEST_XDIST_AUTO_NUM_WORKERS``
    overrides it, as in pytest-xdist)."""
    given = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    return int(given) if given.isdigit() else max(1, min(_cores(), _MAX_WORKERS))


# in a worker: its share of the cores for PyTorch, and for the kernels nbval starts (they inherit the
# environment), unless set already. Two workers with two threads each on two cores would slow both.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "").isdigit():
    _threads = str(max(1, _cores() // max(1, int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, _threads)


def pytest_report_header(config):
    return f"GANLAB_DATA: {os.environ.get('GANLAB_DATA', '(not set: ~/.cache/ganlab)')}"


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


def pytest_addoption(parser):
    parser.addoption("--smoke", action="store_true", default=False,
                     help="also run every chapter with tiny parameters (tests marked 'smoke')")


def stored_seconds(notebook: Path) -> float:
    """The seconds a chapter's cells took when it was last executed (papermill's ``duration`` in each
    cell's metadata), 0 for a file that is not an executed notebook."""
    import json

    try:
        cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    return sum(float(((c.get("metadata") or {}).get("papermill") or {}).get("duration") or 0) for c in cells)


def longest_chapters_first(items: list) -> list:
    """``items`` regrouped by file: the chapters first, the longest (by :func:`stored_seconds`) first, then
    every other file in its own order; the order of the items within a file is kept.

    Side by side, a worker takes the next file when it is almost done with its own
    (``--no-loadscope-reorder`` keeps this order; pytest-xdist would otherwise sort the files by their
    number of tests), so the long chapters start first and the short files fill the gaps at the end
    instead of one long chapter running alone at the end while the other workers wait.
    """
    seconds: dict[str, float] = {}
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        file = item.nodeid.split("::")[0]
        if file not in first:
            first[file] = i
            seconds[file] = stored_seconds(item.path) if file.endswith(".ipynb") else 0.0
    rank = {file: (-seconds[file], first[file]) for file in first}
    return sorted(items, key=lambda item: rank[item.nodeid.split("::")[0]])


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # side by side: every worker collects the same order
        items[:] = longest_chapters_first(items)
    if config.getoption("--smoke"):
        return
    skip = pytest.mark.skip(reason="chapter smoke run: pass --smoke (pytest --nbval runs every chapter in full)")
    for item in items:
        if "smoke" in item.keywords:
            item.add_marker(skip)


_SECONDS: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    # setup (the kernel start), call and teardown, summed per chapter; the unit tests as one line
    path = report.nodeid.split("::")[0]
    _SECONDS[path if path.endswith(".ipynb") else "unit tests (tests/*.py)"] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _SECONDS:
        return
    terminalreporter.section("seconds per chapter")
    for name in sorted(_SECONDS, key=lambda n: (not n.endswith(".ipynb"), n)):
        terminalreporter.write_line(f"{_SECONDS[name]:8.1f} s  {name}")
    workers = getattr(terminalreporter.config.option, "numprocesses", None) or 1
    terminalreporter.write_line(f"{sum(_SECONDS.values()):8.1f} s  in all"
                                + (f" (summed over {workers} workers side by side)" if workers > 1 else ""))
