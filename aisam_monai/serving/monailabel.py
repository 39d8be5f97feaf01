# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""MONAI Label's bundle task with input errors answered as HTTP 422 and the app's bundle discovery
(docs/monailabel.md). Needs ``monailabel`` (``pip install aisam-monai[label]``, in its own environment)."""

from __future__ import annotations

import logging
import os

try:
    from fastapi import HTTPException
    from monailabel.tasks.infer.bundle import BundleInferTask
except ImportError as e:  # a class is derived from BundleInferTask below: a lazy import cannot stand in for it
    raise ImportError(
        f"{e}; aisam_monai.serving.monailabel needs MONAI Label: `pip install aisam-monai[label]`, in its own "
        "virtual environment (docs/monailabel.md)."
    ) from e

__all__ = ["AISAMInferTask", "served_bundles", "infer_tasks"]

logger = logging.getLogger(__name__)


class AISAMInferTask(BundleInferTask):
    """
    MONAI Label's ``BundleInferTask`` whose pre-transforms (reading the image, mapping its intensities, reading
    the clicks) failing on the request's input is answered ``422`` with a one-line reason, instead of a bare
    ``500``: a corrupt or unreadable file, a click outside the image, an unknown label name. The server goes on
    serving. Everything else is the stock task, reading the bundle's ``inference.json``/``.yaml`` unchanged.
    """

    def run_pre_transforms(self, data, transforms):
        try:
            return super().run_pre_transforms(data, transforms)
        except Exception as e:  # noqa: BLE001 - every pre-transform failure here comes from the request's input
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise HTTPException(status_code=422, detail=f"bad input for {self.bundle_path}: {reason}") from e


def served_bundles(model_dir: str) -> dict[str, str]:
    """``{name: folder}`` of the bundle folders in ``model_dir`` that hold ``models/model.pt`` (exported ones)."""
    if not os.path.isdir(model_dir):
        return {}
    found = {}
    for name in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, name)
        if os.path.isfile(os.path.join(path, "models", "model.pt")):
            found[name] = path
        elif os.path.isdir(path):
            logger.warning(
                f"{path}: no models/model.pt, not served; export a trained model there (docs/monailabel.md)."
            )
    return found


def infer_tasks(model_dir: str, conf: dict) -> dict:
    """
    Two tasks per served bundle: ``<name>`` (interactive: DeepEdit-style clicks, one key per label name, as 3D
    Slicer sends them) and ``<name>_seg`` (automatic).
    """
    tasks = {}
    for name, path in served_bundles(model_dir).items():
        tasks[name] = AISAMInferTask(path, conf, type="deepedit")
        tasks[f"{name}_seg"] = AISAMInferTask(path, conf, type="segmentation")
    return tasks
