"""The chapters as the rendered page shows them: code that fits, no reader-visible test markers, no red bars.

* Every line of a code cell fits in :data:`MAX_COLUMNS` characters: the book's code blocks are that wide,
  and a longer line is cut off on the page (a comment ends mid-word, a call loses its last arguments).
* nbval is steered by cell tags (``nbval-ignore-output``, ``nbval-skip``), never by ``# NBVAL_...``
  comments, which every reader would see (CONTRIBUTING.md, rule 3).
* Every progress bar the notebook stores finished: a tqdm widget in the saved widget state is not red
  (``bar_style == "danger"``, what tqdm shows for a loop left early) and stands at its maximum, and a text
  bar in a stream output ends at 100%.

These read the committed JSON only (no kernel), so they take milliseconds per chapter.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
MAX_COLUMNS = 88
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}
# nbval's comment markers (NBVAL_IGNORE_OUTPUT, NBVAL_SKIP, NBVAL_CHECK_OUTPUT, NBVAL_RAISES_EXCEPTION, ...)
COMMENT_MARKER = re.compile(r"#\s*(NBVAL_\w+|PYTEST_VALIDATE_IGNORE_OUTPUT)")
# a tqdm text bar: " 45%|████▌     | 9/20 [...]"; the counts are absent when the total is unknown
TQDM_BAR = re.compile(r"(\d{1,3})%\|[^|\n\r]*\|\s*(?:(\d+)/(\d+))?")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[tuple[int, int, list[str]]]:
    """``(code cell index, cell index, source lines)`` for every code cell."""
    cells = [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    return [(k, i, "".join(c["source"]).split("\n")) for k, (i, c) in enumerate(cells)]


def _where(path: Path, k: int, i: int, line_no: int) -> str:
    return f"{path.name}: code cell {k} (cell {i} of the notebook), line {line_no}"


def unfinished_text_bars(text: str) -> list[str]:
    """The final states of the tqdm bars in ``text`` that stopped short of their total.

    tqdm redraws a bar in place with ``\\r`` and ends it with ``\\n`` when it closes, so the last bar drawn
    on each line is where that bar stopped (an open bar is the text's last line, with no ``\\n``).
    """
    stopped = []
    for line in text.split("\n"):
        bars = list(TQDM_BAR.finditer(line))
        if not bars:
            continue
        last = bars[-1]
        percent, n, total = last.group(1), last.group(2), last.group(3)
        if int(percent) < 100 or (n is not None and int(n) != int(total)):
            stopped.append(line[line.rfind("\r", 0, last.start()) + 1:].strip())
    return stopped


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_lines_fit_the_page(path):
    long = [f"{_where(path, k, i, n)} has {len(line)} > {MAX_COLUMNS} characters: {line.strip()[:60]}..."
            for k, i, lines in _code_cells(_load(path))
            for n, line in enumerate(lines, start=1) if len(line) > MAX_COLUMNS]
    if long:
        pytest.fail(f"{len(long)} code line(s) wider than the page:\n" + "\n".join(long), pytrace=False)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_nbval_comment_markers(path):
    found = [f"{_where(path, k, i, n)}: {line.strip()}"
             for k, i, lines in _code_cells(_load(path))
             for n, line in enumerate(lines, start=1) if COMMENT_MARKER.search(line)]
    if found:
        pytest.fail("nbval comment markers (tag the cell 'nbval-ignore-output' or 'nbval-skip' instead):\n"
                    + "\n".join(found), pytrace=False)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_progress_bars_finished(path):
    nb = _load(path)
    problems = []
    state = nb["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for model_id, model in state.items():
        if model.get("model_name") not in PROGRESS_MODELS:
            continue
        bar = model.get("state", {})
        if bar.get("bar_style") == "danger":
            problems.append(f"widget {model_id}: a red bar (bar_style 'danger') at {bar.get('value')}"
                            f"/{bar.get('max')}")
        elif bar.get("value") != bar.get("max", 100):
            problems.append(f"widget {model_id}: stopped at {bar.get('value')}/{bar.get('max', 100)}")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for k, cell in enumerate(code):
        for out in cell.get("outputs", []):
            if out["output_type"] != "stream":
                continue
            text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
            for bar in unfinished_text_bars(text):
                problems.append(f"code cell {k}, {out['name']}: a text bar stopped at {bar!r}")
    if problems:
        pytest.fail(f"{path.name}: unfinished progress bars:\n" + "\n".join(problems), pytrace=False)


@pytest.mark.parametrize("text, stopped", [
    ("run:   0%|          | 0/20 [00:00<?, ?it/s]\rrun:  50%|█████     | 10/20 [00:01<00:01]\r"
     "run: 100%|██████████| 20/20 [00:02<00:00]\n", []),
    ("run:   0%|          | 0/20 [00:00<?, ?it/s]\rrun:   5%|▌         | 1/20 [00:01<00:19]", ["5%"]),
    ("a: 100%|██████████| 3/3 [00:00]\nb:  40%|████      | 2/5 [00:00]\n", ["40%"]),
    ("run: 100%|█████████▉| 999/1000 [00:09<00:00]\n", ["100%"]),      # rounded up, but one short
    ("no bar here\n", []),
])
def test_unfinished_text_bars(text, stopped):
    found = unfinished_text_bars(text)
    assert len(found) == len(stopped) and all(s in f for s, f in zip(stopped, found)), found
