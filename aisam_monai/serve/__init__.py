# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The browser editor (``aisam serve``): a JSON API over the interactive predictor and a static page.

Needs the ``serve`` extra: ``pip install -e ".[serve]"`` (FastAPI and uvicorn).
"""

from __future__ import annotations

from aisam_monai.serve.app import NIFTI_SUFFIXES, create_app
from aisam_monai.serve.session import EditError, EditorSession

__all__ = ["create_app", "EditorSession", "EditError", "NIFTI_SUFFIXES"]
