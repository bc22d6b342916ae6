"""ganlab.book.glue: what the chapters store for the text is rounded to what the text shows."""
import math

import numpy as np
import pytest
import torch

from ganlab.book import glue, round_significant


def test_round_significant():
    assert round_significant(0.2043750324114626) == 0.204
    assert round_significant(0.20437503083053343) == 0.204       # the other CPU's value: the same
    assert round_significant(1234.5678, 2) == 1200.0
    assert round_significant(-0.0001234567, 3) == -0.000123
    assert round_significant(0.0) == 0.0 and math.isinf(round_significant(float("inf")))
    with pytest.raises(ValueError, match="digits"):
        round_significant(1.0, 0)


@pytest.fixture
def displayed(monkeypatch):
    seen = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw, metadata: seen.append((obj, metadata)))
    return seen


def test_glue_stores_the_rounded_value_in_myst_nbs_format(displayed):
    glue("share", np.float32(0.2043750324114626))
    glue("psnr", torch.tensor(21.4567), decimals=2)
    glue("tiny", 2.9629864243638226e-05, decimals=4)
    glue("steps", np.int64(1200))
    glue("name", "R1 penalty")
    glue("ok", True)
    texts = [obj["application/papermill.record/text/plain"] for obj, _ in displayed]
    assert texts == ["0.204", "21.46", "0.0", "1200", "'R1 penalty'", "True"]
    meta = displayed[0][1]
    assert meta["scrapbook"] == {"name": "share", "mime_prefix": "application/papermill.record/"}
    assert meta["ganlab"]["full"].startswith("0.20437")          # the unrounded value is kept beside it
    assert glue("x", 1.0) is None                                 # nothing for a cell to display


def test_glue_rejects_bad_arguments(displayed):
    with pytest.raises(ValueError, match="name"):
        glue("two words", 1.0)
    with pytest.raises(ValueError, match="not both"):
        glue("x", 1.0, digits=2, decimals=1)
    with pytest.raises(ValueError, match="decimals"):
        glue("x", 1.0, decimals=-1)
    with pytest.raises(TypeError, match="value"):
        glue("x", [1.0, 2.0])
    assert not displayed
