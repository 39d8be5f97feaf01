# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Input errors reported to the user: one logged line (logger ``aisam_monai.inputs``) per bad input, before any long
work starts."""

from __future__ import annotations

import logging

__all__ = ["reported"]

_LOGGER = logging.getLogger("aisam_monai.inputs")


def reported(error: Exception) -> Exception:
    """Log ``error`` as one ERROR line (visible above the config parser's traceback) and return it for raising."""
    _LOGGER.error(str(error))
    return error
