"""The chapters: each runs end to end with tiny parameters (papermill), and each is committed clean.

``pytest --nbval`` re-executes every chapter at its book settings and compares outputs; the tests here
add what nbval does not check: that every chapter is in the table of contents, that the committed
notebooks are executed, error-free, free of machine paths and carry the widget state the rendered book
needs, and (with ``--smoke``, for local use) that the ``parameters`` cell really controls the cost.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]*_*.ipynb"))  # 01_..., 05a_...

# tiny values for each chapter's `parameters` cell: the smoke run checks wiring, not quality
SMOKE_PARAMETERS: dict[str, dict] = {
    "01_introduction": {},
    "02_adversarial_game": dict(steps=20, collapse_steps=24, n_seeds=1, n_eval=200, frames=3, optimal_d_steps=20,
                                probe_d_steps=10, explorer_steps=10, batch_size=64, check_claims=False),
    "03_gan_vs_vae": dict(max_steps=10, n_eval=100, n_invert=4, invert_steps=5, base_channels=8),
    "04_implementation": dict(steps=12, eval_every=6, n_eval=100, resume_steps=4,
                              batch_size=16, base_channels=16, refine_steps=2,
                              check_claims=False),
    "06_optimization": dict(seeds=[0], stab_steps=6, eval_every=2, stab_base_channels=4, small_data=16,
                            stab_batch_size=8,
                            n_eval=50, check_claims=False, bench_steps=2, bench_base_channels=8,
                            bench_batch_size=8),
    "08_faq": dict(steps=40, log_every=10, n_samples=200, collapse_steps=20, collapse_seeds=[0],
                   check_claims=False, fid_pool=400, fid_sizes=[50, 100, 200]),
    "05a_generation_on_demand": dict(steps=10, eval_every=5, n_eval=100, batch_size=16, base_channels=8,
                                     extra_layers=1, check_claims=False),
    "05c_unpaired_translation": dict(steps=3, ablation_steps=3, batch_size=4, base_channels=4,
                                     d_base_channels=4, seeds=[0], n_eval=50, dcgan_steps=3,
                                     dcgan_base_channels=4, check_claims=False),
    "05b_image_restoration": dict(pre_steps=3, tune_steps=2, den_pre_steps=3, batch_size=2, base_channels=4,
                                  n_test=8, n_bm3d=1, bm3d_size=32, check_claims=False),
}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_are_chapters_and_each_has_smoke_parameters():
    names = [p.stem for p in CHAPTERS]
    assert names, "no chapters found in book/"
    assert sorted(SMOKE_PARAMETERS) == names, "SMOKE_PARAMETERS must list exactly the chapters in book/"


def test_every_chapter_is_in_the_table_of_contents():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]} | {entry["file"] for entry in toc.get("chapters", [])}
    missing = [p.stem for p in CHAPTERS if f"book/{p.stem}" not in files]
    assert not missing, f"chapters missing from _toc.yml: {missing}"
    for f in files:
        assert (ROOT / f).with_suffix(".ipynb").exists() or (ROOT / f).with_suffix(".md").exists(), f


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_parameters_cell(path):
    """One cell tagged `parameters`, holding plain assignments only, that the smoke values all exist in."""
    cells = [c for c in _code_cells(_load(path)) if "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}"
    source = "".join(cells[0]["source"])
    names = set(re.findall(r"^([A-Za-z_]\w*)\s*=", source, flags=re.M))
    unknown = set(SMOKE_PARAMETERS[path.stem]) - names
    assert not unknown, f"{path.name}: smoke parameters {sorted(unknown)} are not in its parameters cell"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_committed_notebook_is_executed_and_clean(path):
    nb = _load(path)
    code = _code_cells(nb)
    assert code, f"{path.name} has no code cells"
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None and "".join(c["source"]).strip()]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were never executed; regenerate with papermill"
    widget_views = set()
    for i, cell in enumerate(code):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: code cell {i} has an error output"
            text = json.dumps(out)
            assert not re.search(r"/(work|tmp|root|home|Users)/[\w.+-]+/", text), \
                f"{path.name}: code cell {i} shows a machine path"
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view:
                widget_views.add(view["model_id"])
    if widget_views:
        state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        missing = widget_views - set(state.get("state", {}))
        assert not missing, f"{path.name}: {len(missing)} displayed widget(s) have no saved state"


@pytest.mark.smoke
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_with_tiny_parameters(path, tmp_path):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters=SMOKE_PARAMETERS[path.stem], cwd=str(tmp_path),
                               progress_bar=False, kernel_name="python3")
    # papermill raises PapermillExecutionError on a failing cell; what is left to check is that every
    # code cell ran (a parameter that skips the rest of a chapter would go unnoticed otherwise)
    nb = _load(out)
    skipped = [i for i, c in enumerate(_code_cells(nb)) if c.get("execution_count") is None
               and "".join(c["source"]).strip()]
    assert not skipped, f"{path.name}: code cells {skipped} did not run with the smoke parameters"
