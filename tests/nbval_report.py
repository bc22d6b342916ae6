"""Which outputs of each chapter ``pytest --nbval`` compares, and whether they are portable.

Run it as a script (CI does, before the tests) to print, per chapter, the code cells whose outputs nbval
compares, the cells marked as varying (tag ``nbval-ignore-output``) or skipped (``nbval-skip``), and the
numbers the compared outputs contain::

    python tests/nbval_report.py            # the summary table
    python tests/nbval_report.py --cells    # and every compared cell's first line

The rule it enforces (``tests/test_nbval_report.py`` runs :func:`violations` on every chapter), written
out in CONTRIBUTING.md:

* A compared output may hold integers of any length (counts, shapes, parameter numbers) and floats of at
  most :data:`MAX_PRINTED_DIGITS` significant digits. Float reductions are not bit-identical across CPU
  kernels (AVX-512 and AVX2 sum in different orders), so a full ``repr`` differs in its last digits.
* A glued float (a ``myst_nb.glue`` record) in a compared cell has at most :data:`MAX_GLUED_DIGITS`
  significant digits: glue it through :func:`ganlab.book.glue`, which rounds.
* A cell whose outputs come from a training run is tagged ``nbval-ignore-output``; the claim the text
  makes about it is asserted in the notebook instead. Comment markers (``# NBVAL_IGNORE_OUTPUT``) are not
  used: every reader would see them on the rendered page.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

BOOK = Path(__file__).resolve().parent.parent / "book"
MAX_PRINTED_DIGITS = 6   # e.g. 550.847 (a seeded loss printed .3f) is fine; 0.20437503241 is a raw repr
MAX_GLUED_DIGITS = 5     # glued values: 3 significant figures, or the decimals the sentence prints
IGNORE_TAG, SKIP_TAG = "nbval-ignore-output", "nbval-skip"
COMMENT_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "NBVAL_CHECK_OUTPUT", "PYTEST_VALIDATE_IGNORE_OUTPUT")
# nbval skips these keys (see conftest.py: stderr too); everything else in an output is compared
NOT_COMPARED = {"image/png", "image/jpeg", "application/vnd.jupyter.widget-view+json"}
_FLOAT = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d+|\d+\.?\d*[eE][-+]?\d+|\.\d+)(?![\w.])")


def significant_digits(number: str) -> int:
    """Significant digits written in ``number``, trailing zeros aside ("0.0050" has 1, "1.2e-05" has 2,
    "73.94" has 4, "10000.0" has 1)."""
    mantissa = re.split(r"[eE]", number.lstrip("+-"))[0]
    digits = mantissa.replace(".", "").strip("0")
    return len(digits) if digits else 1


@dataclass
class CellReport:
    index: int                      # the cell's position among the notebook's code cells
    first_line: str
    status: str                     # "compared", "varying" (ignore-output) or "skipped"
    texts: list[tuple[str, str]] = field(default_factory=list)  # (kind, compared text)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _status(cell: dict) -> str:
    tags = cell.get("metadata", {}).get("tags", [])
    if SKIP_TAG in tags:
        return "skipped"
    return "varying" if IGNORE_TAG in tags else "compared"


def _compared_texts(cell: dict) -> list[tuple[str, str]]:
    texts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            if out.get("name") == "stdout":
                texts.append(("stdout", "".join(out["text"])))
        elif out["output_type"] in ("display_data", "execute_result"):
            for key, value in out.get("data", {}).items():
                if key in NOT_COMPARED:
                    continue
                value = "".join(value) if isinstance(value, list) else value
                kind = "glue" if key.startswith("application/papermill.record/") else key
                texts.append((kind, value if isinstance(value, str) else json.dumps(value)))
    return texts


def _code_cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def chapter_report(path: Path) -> list[CellReport]:
    code = _code_cells(path)
    reports = []
    for i, cell in enumerate(code):
        lines = [ln for ln in _source(cell).splitlines() if ln.strip()]
        reports.append(CellReport(i, lines[0][:70] if lines else "", _status(cell), _compared_texts(cell)))
    return reports


def violations(path: Path) -> list[str]:
    """Every break of the rule above in one chapter, as ``"code cell N: why"``."""
    problems = []
    for i, cell in enumerate(_code_cells(path)):
        for line in _source(cell).splitlines():
            marker = line.strip().lstrip("#").strip()
            if line.strip().startswith("#") and marker in COMMENT_MARKERS:
                problems.append(f"code cell {i}: comment marker {marker!r}; use the tag {IGNORE_TAG!r} or "
                                f"{SKIP_TAG!r} in the cell's metadata")
    for cell in chapter_report(path):
        if cell.status != "compared":
            continue
        for kind, text in cell.texts:
            limit = MAX_GLUED_DIGITS if kind == "glue" else MAX_PRINTED_DIGITS
            long = [n for n in _FLOAT.findall(text) if significant_digits(n) > limit]
            if long:
                problems.append(f"code cell {cell.index} ({cell.first_line!r}): {kind} output has "
                                f"{len(long)} float(s) with more than {limit} significant digits, e.g. {long[0]}")
    return problems


def chapters() -> list[Path]:
    return sorted(BOOK.glob("[0-9][0-9]*_*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", action="store_true", help="list every compared cell")
    args = parser.parse_args(argv)
    print(f"{'chapter':<28}{'code cells':>11}{'compared':>10}{'varying':>9}{'skipped':>9}"
          f"{'numbers compared':>18}{'glued compared':>16}{'rule breaks':>13}")
    total_breaks = 0
    for path in chapters():
        cells = chapter_report(path)
        by = {s: [c for c in cells if c.status == s] for s in ("compared", "varying", "skipped")}
        numbers = sum(len(re.findall(r"\d+(?:\.\d+)?", t)) for c in by["compared"] for k, t in c.texts
                      if not t.startswith("<Figure size"))
        glued = sum(1 for c in by["compared"] for k, _ in c.texts if k == "glue")
        breaks = violations(path)
        total_breaks += len(breaks)
        print(f"{path.stem:<28}{len(cells):>11}{len(by['compared']):>10}{len(by['varying']):>9}"
              f"{len(by['skipped']):>9}{numbers:>18}{glued:>16}{len(breaks):>13}")
        if args.cells:
            for c in by["compared"]:
                kinds = sorted({k for k, _ in c.texts}) or ["no output"]
                print(f"    cell {c.index:>3} compared [{', '.join(kinds)}]: {c.first_line}")
        for b in breaks:
            print(f"    ! {b}")
    return 1 if total_breaks else 0


if __name__ == "__main__":
    sys.exit(main())
