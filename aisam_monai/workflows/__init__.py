# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Support of the bundle workflows: dataset and input checks, preprocessing pipelines."""

from __future__ import annotations

from aisam_monai.workflows.datalist import DATALIST_NAME, check_volume_file, dataset_info, inference_items, load_datalist
from aisam_monai.workflows.pipelines import intensity_transform, train_transforms, volume_transforms

__all__ = [
    "DATALIST_NAME",
    "check_volume_file",
    "dataset_info",
    "inference_items",
    "load_datalist",
    "intensity_transform",
    "train_transforms",
    "volume_transforms",
]
