# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Input errors reported to the user: one logged line (logger ``aisam_monai.inputs``) per bad input, before any long
work starts, and no traceback after it.

:func:`reported` logs the line and marks the error. When a marked error ends the process uncaught (for example
inside ``python -m monai.bundle run``, whose config parser wraps it in its own ``RuntimeError``), the hook
installed by :func:`reported` prints nothing more: the logged line is the whole report and the exit status is 1.
Any other uncaught exception keeps Python's traceback.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["InputError", "reported", "reported_cause", "LOGGER_NAME"]

LOGGER_NAME = "aisam_monai.inputs"
_LOGGER = logging.getLogger(LOGGER_NAME)
_MARK = "_aisam_reported"


class InputError(ValueError):
    """
    A bad input file or value: ``"{file}: {reason}"`` on one line.

    Args:
        file: the offending file (or setting) as the user named it.
        reason: what is wrong and what was expected.
    """

    def __init__(self, file: str, reason: str) -> None:
        self.file = str(file)
        self.reason = " ".join(str(reason).split())  # one line
        super().__init__(f"{self.file}: {self.reason}")


def _first_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename and error.strerror:  # a failed write: "path: reason"
        return f"{error.filename}: {error.strerror}; nothing was written for it."
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def reported_cause(error: BaseException | None) -> BaseException | None:
    """The error marked by :func:`reported` in the chain of ``error`` (its causes and contexts), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        if getattr(error, _MARK, False):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _excepthook(exc_type, value, tb) -> None:
    if reported_cause(value) is None:
        _previous_hook(exc_type, value, tb)


_previous_hook = sys.excepthook


def reported(error: Exception) -> Exception:
    """Log ``error`` as one ERROR line, mark it, and return it for raising (see the module's docstring)."""
    global _previous_hook
    if not getattr(error, _MARK, False):
        _LOGGER.error(_first_line(error))
        setattr(error, _MARK, True)
    if sys.excepthook is not _excepthook:
        _previous_hook = sys.excepthook
        sys.excepthook = _excepthook
    return error
