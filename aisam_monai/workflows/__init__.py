# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Support of the bundle workflows: dataset and input checks."""

from __future__ import annotations

from aisam_monai.workflows.datalist import DATALIST_NAME, check_volume_file, dataset_info, inference_items, load_datalist

__all__ = [
    "DATALIST_NAME",
    "check_volume_file",
    "dataset_info",
    "inference_items",
    "load_datalist",
]
