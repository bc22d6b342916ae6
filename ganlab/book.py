"""Helpers for the book's notebooks: numbers glued into the text at the precision the text shows.

A chapter's prose quotes figures through MyST-NB's ``{glue:text}`name``` role. The value behind the role is
stored in the notebook as the ``repr`` of a Python object, and ``pytest --nbval`` compares that stored
text with a fresh run. A float that came out of a reduction (a mean, a matrix product, a convolution) is
not bit-identical across CPU kernels: ``0.2043750324114626`` on one machine is ``0.20437503083053343``
on another. :func:`glue` therefore rounds floats to a few significant figures before it stores them,
so the stored and the re-executed values agree wherever the claim agrees, and keeps the unrounded
value in the output's metadata (which nbval does not compare) for a reader who wants it::

    from ganlab.book import glue
    glue("fd_ratio", fd / real_fd, decimals=1)   # the text writes {glue:text}`fd_ratio:.1f`: 9.7
    glue("share", 1.4266e-06, decimals=4)        # the sentence prints 0.0000: stored as 0.0
    glue("n_steps", 1200)                        # integers, bools and strings are stored as they are
    glue("kid", 0.0123456)                       # no precision given: 3 significant figures, 0.0123

An outcome of a training run differs between CPUs by more than rounding, since the two trajectories drift
apart; such a cell is tagged ``nbval-ignore-output`` and the claim is asserted in the notebook instead.
The rule is written out in CONTRIBUTING.md and checked by ``tests/nbval_report.py``.

Storing works like ``myst_nb.glue(name, value, display=False)`` (the same output format, so Jupyter Book
renders it), without needing MyST-NB installed: on Colab a chapter runs with ``ganlab`` alone.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["glue", "round_significant"]

_GLUE_PREFIX = "application/papermill.record/"   # what myst_nb.glue(..., display=False) writes


def round_significant(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant figures (``0.020437`` -> ``0.0204``); inf and nan pass."""
    if not isinstance(digits, int) or isinstance(digits, bool) or digits < 1:
        raise ValueError(f"digits must be a positive integer, got {digits!r}")
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def _python_scalar(value: Any) -> Any:
    # NumPy and torch scalars become Python numbers, so the book's format specs (:.1f, :,) apply to them
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


def _portable(value: Any, digits: int | None, decimals: int | None) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if decimals is not None:
            rounded = round(float(value), decimals)
            return 0.0 if rounded == 0 else rounded    # no "-0.0" from a tiny negative
        return round_significant(value, digits if digits is not None else 3)
    if isinstance(value, (str, type(None))):
        return value
    raise TypeError(f"glue: value must be a number, a bool or a string, got {type(value).__name__}")


def glue(name: str, value: Any, *, digits: int | None = None, decimals: int | None = None) -> None:
    """Store ``value`` under ``name`` for the book's ``{glue:text}`` role, rounded to what the text shows.

    Floats are rounded to ``digits`` significant figures (default 3) or, when given, to ``decimals``
    places (for a value whose size varies, such as a share near zero). Integers, bools and strings are
    stored as they are. The unrounded value goes into the output's metadata (``ganlab.full``).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"glue: name must be an identifier-like string, got {name!r}")
    if digits is not None and decimals is not None:
        raise ValueError("glue: give digits or decimals, not both")
    if decimals is not None and (not isinstance(decimals, int) or isinstance(decimals, bool) or decimals < 0):
        raise ValueError(f"glue: decimals must be a non-negative integer, got {decimals!r}")
    full = _python_scalar(value)
    stored = _portable(full, digits, decimals)
    try:
        from IPython.display import display
    except ImportError:   # outside IPython there is no notebook to store into
        return
    display({_GLUE_PREFIX + "text/plain": repr(stored)}, raw=True,
            metadata={"scrapbook": {"name": name, "mime_prefix": _GLUE_PREFIX}, "ganlab": {"full": repr(full)}})
