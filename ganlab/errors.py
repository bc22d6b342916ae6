"""The errors ganlab raises for bad input: one family, one line each, naming what was bad and what was due.

A :class:`UsageError` is a mistake in what the caller handed over (an argument, a file, a setting), not a
bug in ganlab. Its message is one line that names the argument or the file and says what was expected, so
``python -m ganlab`` prints it as ``ganlab: error: <message>`` and exits with status 2; any other exception
is a bug and keeps its traceback. It subclasses ``ValueError``, so code that caught ``ValueError`` before
still catches it (torchvision and scikit-learn raise ``ValueError`` for bad arguments too).

* :class:`DataError`: a data file that is damaged, truncated or inconsistent (the message names the file).
* :class:`ganlab.checkpoint.CheckpointError`: a checkpoint that cannot be read or does not fit the run.
"""
from __future__ import annotations

__all__ = ["UsageError", "DataError", "one_line"]


class UsageError(ValueError):
    """A bad argument, file or setting from the caller (not a bug): one line naming it and what was due."""


class DataError(UsageError):
    """A data file that is missing parts, damaged or inconsistent; the message names the file."""


def one_line(text: object) -> str:
    """``text`` on one line: line breaks (as in some torch and zlib messages) become ``"; "``."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
