"""The book as readers meet it: its config, its Colab cells, and its rendered pages in a real browser.

* ``_config.yml`` is read with a YAML loader that rejects duplicate keys (PyYAML silently keeps the last
  one), every key must be one Jupyter Book 1.x knows (its ``default_config.yml`` and
  ``config_schema.json``), and the values must pass Jupyter Book's own schema check.
* Colab: every chapter's first code cell is the Colab install cell, and the repository URL, branch and
  Colab launch button are configured in ``_config.yml`` (the one place that names the repository).
* The rendered book (``@pytest.mark.book``, one build per session): ``jupyter-book build`` renders the
  committed notebooks (execution is off), then headless Chromium opens every chapter page and the
  test checks the DOM after scripts ran: as many output images as the notebook has, no error output
  or traceback, the widget state (or a static figure) where the notebook displays a widget, and the
  "Open in Colab" link. Skipped only when no Chromium binary is installed (``.ci/run`` installs
  Debian's ``chromium``).

Run only the fast part with ``pytest tests/test_book.py -m "not book"``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COLAB_CELL = re.compile(r'if "google\.colab" in sys\.modules:\s*\n\s*%pip install -q git\+https://github\.com/')
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that raises on a key repeated within one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def strict_load(text: str):
    return yaml.load(text, Loader=_StrictLoader)


def _known_keys() -> dict:
    """Jupyter Book 1.x's config keys as a tree of dicts (None marks a free-form value)."""
    import jupyter_book

    pkg = Path(jupyter_book.__file__).parent
    tree: dict = {}

    def from_defaults(d: dict, node: dict) -> None:
        for k, v in d.items():
            node.setdefault(k, {} if isinstance(v, dict) else None)
            if isinstance(v, dict):
                from_defaults(v, node[k])

    def from_schema(s: dict, node: dict) -> None:
        for k, v in s.get("properties", {}).items():
            if "properties" in v:
                node[k] = node.get(k) or {}
                from_schema(v, node[k])
            else:
                node.setdefault(k, None)

    from_defaults(yaml.safe_load((pkg / "default_config.yml").read_text()), tree)
    from_schema(json.loads((pkg / "config_schema.json").read_text()), tree)
    tree["sphinx"]["config"] = None       # passed to Sphinx as is
    return tree


def unknown_keys(config: dict, known: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in config.items():
        if key not in known:
            out.append(prefix + str(key))
        elif isinstance(known[key], dict) and isinstance(value, dict):
            out += unknown_keys(value, known[key], f"{prefix}{key}.")
    return out


def _book_config() -> dict:
    return strict_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]


def _chapters() -> list[Path]:
    return [ROOT / f"{page}.ipynb" for page in _toc_pages() if (ROOT / f"{page}.ipynb").exists()]


# --- config ---------------------------------------------------------------------------------------------

def test_strict_loader_rejects_duplicate_keys():
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'title'"):
        strict_load("title: a\nauthor: b\ntitle: c\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'url'"):
        strict_load("repository:\n  url: a\n  url: b\n")
    assert strict_load("a: 1\nb: {a: 2}\n") == {"a": 1, "b": {"a": 2}}


def test_unknown_keys_are_found_at_any_depth():
    known = _known_keys()
    assert unknown_keys({"title": "x", "titel": "y", "html": {"use_repository_buton": True},
                         "sphinx": {"config": {"anything": 1}}}, known) == ["titel", "html.use_repository_buton"]


def test_config_has_no_duplicate_or_unknown_keys_and_passes_the_schema():
    from jupyter_book.config import validate_yaml

    config = _book_config()     # raises on a duplicate key
    assert unknown_keys(config, _known_keys()) == []
    assert validate_yaml(config, raise_on_errors=True) is None


# --- Colab ----------------------------------------------------------------------------------------------

def test_repository_and_colab_launch_button_are_configured():
    config = _book_config()
    repo = config["repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repo["url"]), repo
    assert repo.get("branch"), "repository.branch must name the branch the launch buttons open"
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.stem)
def test_first_code_cell_is_the_colab_install_cell(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    source = "".join(first["source"])
    assert COLAB_CELL.search(source), f"{path.name}: the first code cell is not the Colab install cell"
    repo = _book_config()["repository"]["url"]
    assert f"git+{repo}" in source, f"{path.name}: the Colab cell installs from another repository than {repo}"


# --- widget state ----------------------------------------------------------------------------------------
# (tests/test_notebooks.py checks that every displayed widget view has saved state; here: that the state is
# complete, so that the page can rebuild the widget's children and layouts from it)

@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.stem)
def test_saved_widget_state_is_complete(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    state = nb["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    referenced = set(re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state)))
    missing = referenced - set(state)
    assert not missing, f"{path.name}: the saved widget state refers to {len(missing)} model(s) it does not hold"


# --- the rendered book ----------------------------------------------------------------------------------

def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                None)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Render the book once per session (the notebooks' stored outputs; nothing is executed)."""
    if shutil.which("jupyter-book") is None:
        pytest.skip("jupyter-book is not installed")
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run([shutil.which("jupyter-book"), "build", str(ROOT), "--path-output", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    html = out / "_build" / "html"
    assert (html / "index.html").exists()
    return html


def _dump_dom(browser: str, page: Path) -> str:
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium failed on {page.name}: {proc.stderr[-2000:]}"
    return proc.stdout


def _image_outputs(nb: dict) -> int:
    return sum(1 for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
               if any(k.startswith("image/") for k in o.get("data", {})))


def _displays_widgets(nb: dict) -> bool:
    return any(WIDGET_VIEW in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code"
               for o in c.get("outputs", []))


@pytest.mark.book
@pytest.mark.parametrize("path", _chapters(), ids=lambda p: p.stem)
def test_rendered_page_in_chromium(path, built_book):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary found (Debian: apt-get install chromium)")
    page = built_book / path.relative_to(ROOT).with_suffix(".html")
    assert page.exists(), f"{page.name} was not rendered"
    dom = _dump_dom(browser, page)
    assert "</html>" in dom and len(dom) > 1000, f"{page.name}: chromium returned no page"
    nb = json.loads(path.read_text(encoding="utf-8"))

    shown = len(re.findall(r"<img[^>]+src=\"[^\"]*_images/", dom))
    assert shown >= _image_outputs(nb), f"{page.name}: {shown} output images shown, notebook has {_image_outputs(nb)}"
    # myst-nb renders an error output as <div class="output traceback ...">; the text itself is split by
    # syntax-highlighting spans, so it is searched with the tags removed
    assert not re.search(r'class="[^"]*\b(traceback|output_error)\b', dom), f"{page.name} shows an error output"
    text = re.sub(r"<[^>]+>", "", dom)
    assert "Traceback (most recent call last)" not in text, f"{page.name} shows a traceback"
    for block in re.findall(r'class="[^"]*\bstderr\b[^"]*".{0,3000}?</pre>', dom, flags=re.S):
        assert not re.search(r"\b\w*(Error|Exception)\b: ", block), f"{page.name} shows an error in stderr"
    if _displays_widgets(nb):
        assert WIDGET_STATE in dom or shown > 0, f"{page.name}: a widget without saved state or a static figure"
    assert "colab.research.google.com" in dom, f"{page.name}: no 'Open in Colab' launch button"


@pytest.mark.book
def test_diagnostics_links_lead_to_faq_sections(built_book):
    from ganlab.diagnostics import FAQ_ANCHORS, FAQ_PAGE

    html = (built_book / f"{FAQ_PAGE}.html").read_text(encoding="utf-8")
    missing = [a for a in FAQ_ANCHORS.values() if f'id="{a}"' not in html]
    assert not missing, f"{FAQ_PAGE} has no section for the diagnostics' anchors {missing}"

