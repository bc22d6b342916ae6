"""Every glued value the text refers to exists: a `{glue:text}`name`` in a chapter was glued by that
chapter's stored run, and a `{glue:text}`NB.ipynb::name`` in any page (the conclusion) was glued by NB's.
A chapter that renames or drops a glued value fails here, not as a blank in the rendered book."""
import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
REF = re.compile(r"\{glue(?::[a-z]*)?\}`([^`]+)`")


def glued_names(path: Path) -> set[str]:
    names = set()
    for cell in json.loads(path.read_text())["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                names.add(name)
    return names


def references(text: str, page: str) -> list[tuple[str, str]]:
    """(notebook file name, glued name) for every glue role in ``text``; ``page`` for local ones."""
    refs = []
    for target in REF.findall(text):
        notebook, _, name = target.rpartition("::")        # "NB::name:fmt" or "name:fmt"
        refs.append((notebook or page, name.split(":", 1)[0]))
    return refs


def pages():
    for path in sorted(BOOK.glob("*.md")):
        yield path, path.read_text()
    for path in sorted(BOOK.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield path, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_references_are_parsed():
    text = "a {glue:text}`x:.1f` b {glue:text}`02_a.ipynb::y:.0f` c {glue:}`z` d {glue:text}`03.ipynb::w:s`"
    assert references(text, "p.ipynb") == [("p.ipynb", "x"), ("02_a.ipynb", "y"), ("p.ipynb", "z"),
                                           ("03.ipynb", "w")]


@pytest.mark.parametrize("path,text", list(pages()), ids=lambda v: v.name if isinstance(v, Path) else "")
def test_every_glue_reference_is_glued(path, text):
    missing = []
    for notebook, name in references(text, path.name):
        source = BOOK / notebook
        if not source.exists() or name not in glued_names(source):
            missing.append(f"{notebook}::{name}")
    assert not missing, f"{path.name} refers to values that are not glued: {sorted(set(missing))}"
