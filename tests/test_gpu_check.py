"""benchmarks/gpu_check.py without a GPU: the chapters' ``# gpu:`` lines, the check with the CPU standing in.

Its data-parallel run on two processes is exercised inside the torchrun launch of ``test_distributed.py``
(one launch for both: each process pays the imports once); here the check runs with one process.
"""
from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]*_*.ipynb"))
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapters_gpu_line_parses_into_parameters_it_has(path):
    source = gpu_check.parameters_source(nbformat.read(path, as_version=4))
    settings = gpu_check.gpu_settings(source)   # raises on a malformed line or an unknown name
    if "On a GPU" in source and "use" in source.split("On a GPU", 1)[1][:40]:
        assert settings, f"{path.name}: its parameters cell says what to use on a GPU, on no '# gpu:' line"


def test_gpu_lines_are_name_value_pairs_of_the_cell_and_nothing_else():
    source = "steps = 10\nseeds = [0]\ndevice = 'auto'\n# gpu: steps=20_000,\n# gpu: seeds=[0, 1]\n"
    assert gpu_check.gpu_settings(source) == {"steps": 20_000, "seeds": [0, 1]}
    assert gpu_check.gpu_settings("steps = 10\n") == {}
    for bad, match in [("steps = 1\n# gpu: stepz=2", "does not assign"),
                       ("steps = 1\n# gpu: steps=f(2)", "literal"), ("steps = 1\n# gpu: 3", "name=value")]:
        with pytest.raises(ValueError, match=match):
            gpu_check.gpu_settings(bad)
    # the device: "auto" chapters get the check's device; one that chose the CPU keeps it on a GPU
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})
    notebook = nbformat.v4.new_notebook(cells=[cell])
    assert gpu_check.chapter_parameters(notebook, device="cuda", tiny=False, smoke={}) == \
        {"steps": 20_000, "seeds": [0, 1], "device": "cuda"}
    notebook.cells[0].source = source.replace("'auto'", "'cpu'")
    assert gpu_check.chapter_parameters(notebook, device="cuda", tiny=True, smoke={"steps": 2}) == \
        {"steps": 2}


def test_the_check_runs_with_the_cpu_standing_in(tmp_path, monkeypatch):
    import ganlab.bench

    # a chapter of two cells: its parameters (with a GPU line the tiny run does not use) and a glued value
    book = tmp_path / "book"
    book.mkdir()
    cells = [nbformat.v4.new_code_cell("steps = 1000\ndevice = 'auto'\n# gpu: steps=5\n",
                                       metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("from IPython.display import display\n"
                                       "mime = 'application/papermill.record/text/plain'\n"
                                       "display({mime: repr(2 * steps)},\n"
                                       "        raw=True, metadata={'scrapbook': {'name': 'twice'}})")]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernel})
    nbformat.write(notebook, book / "01_tiny.ipynb")
    # the throughput's yardstick on a small matrix: the benchmark itself is tested in test_bench.py
    monkeypatch.setattr(ganlab.bench, "matmul_gflops", functools.partial(ganlab.bench.matmul_gflops, n=64))
    out = tmp_path / "check.json"
    report = gpu_check.main(["--device", "cpu", "--tiny", "--book", str(book), "--work",
                             str(tmp_path / "work"), "--out", str(out), "--processes", "1"])
    assert json.loads(out.read_text())["chapters"] == report["chapters"]
    chapter = report["chapters"]["01_tiny"]
    assert chapter["status"] == "ok" and chapter["parameters"] == {"device": "cpu"}
    assert chapter["figures"] == {"twice": 2000} and chapter["seconds"] > 0
    assert not (book / "work").exists() and (tmp_path / "work" / "01_tiny.ipynb").is_file()  # copies only
    rows = report["throughput"]["rows"]
    assert rows[0]["ratio"] == 1.0 and all(r["images_per_s"] > 0 for r in rows)
    one = report["ddp"]["one"]
    assert one["processes"] == 1 and one["images_per_s"] > 0 and one["backend"] is None
    assert report["machine"]["torch"] and "several" not in report["ddp"]
