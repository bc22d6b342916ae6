"""pytest settings shared by the unit tests (``tests/``) and the chapters (``book/*.ipynb`` under nbval).

* Data: when ``GANLAB_DATA`` is not set and a ``shared/data`` folder holding MNIST sits beside the
  repository (the layout of the book's offline build and CI machines), it is used. Set ``GANLAB_DATA``
  yourself to point anywhere else. Notebook kernels started by nbval and papermill inherit it.
* nbval: stderr is not compared (library warnings differ between versions and platforms); everything
  else a cell prints is compared unless the cell is marked ``# NBVAL_IGNORE_OUTPUT`` or the text is
  rewritten by ``book/nbval_sanitize.cfg`` (given in ``pyproject.toml``).
"""
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the unit tests draw figures without a screen

_SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"
if not os.environ.get("GANLAB_DATA") and (_SHARED_DATA / "MNIST" / "raw").is_dir():
    os.environ["GANLAB_DATA"] = str(_SHARED_DATA)


def pytest_report_header(config):
    return f"GANLAB_DATA: {os.environ.get('GANLAB_DATA', '(not set: ~/.cache/ganlab)')}"


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)
