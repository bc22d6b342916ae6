"""Every chapter follows the portability rule (see tests/nbval_report.py and CONTRIBUTING.md)."""
import json

import pytest

import nbval_report as report


def test_significant_digits():
    assert report.significant_digits("0.2043750324114626") == 16
    assert report.significant_digits("1.3863") == 5
    assert report.significant_digits("0.0050") == 1
    assert report.significant_digits("2.9629864243638226e-05") == 17
    assert report.significant_digits("10000.0") == 1


@pytest.mark.parametrize("path", report.chapters(), ids=lambda p: p.stem)
def test_compared_outputs_are_portable(path):
    problems = report.violations(path)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def _notebook(tmp_path, cells):
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "99_test.ipynb"
    path.write_text(json.dumps(nb))
    return path


def _code(source, outputs, tags=()):
    return {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)}, "outputs": outputs,
            "execution_count": 1}


def test_the_rule_catches_raw_floats_and_comment_markers_but_not_varying_cells(tmp_path):
    raw = {"output_type": "display_data", "metadata": {},
           "data": {"application/papermill.record/text/plain": "0.2043750324114626"}}
    printed = {"output_type": "stream", "name": "stdout", "text": "loss 0.123456789, 1,234,567 images\n"}
    fine = {"output_type": "stream", "name": "stdout", "text": "loss 0.1235, 1234567 images, 2 log 2 = 1.3863\n"}
    path = _notebook(tmp_path, [
        _code("glue('x', v)", [raw]),
        _code("print(loss)", [printed]),
        _code("# NBVAL_IGNORE_OUTPUT\nprint(1)", []),
        _code("print(loss)", [fine]),
        _code("train()", [raw, printed], tags=["nbval-ignore-output"]),
    ])
    problems = report.violations(path)
    assert len(problems) == 3, problems
    assert "code cell 0" in problems[1] or "code cell 0" in problems[0]
    assert any("comment marker" in p for p in problems)
    assert not any("code cell 3" in p or "code cell 4" in p for p in problems)
    statuses = [c.status for c in report.chapter_report(path)]
    assert statuses == ["compared", "compared", "compared", "compared", "varying"]
