# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Support of the bundle workflows: dataset and input checks, multi-GPU helpers."""

from __future__ import annotations

from aisam_monai.workflows.datalist import (
    DATALIST_NAME,
    check_volume_file,
    dataset_info,
    dataset_intensity,
    inference_items,
    load_datalist,
)
from aisam_monai.workflows.distributed import LOGGING_HANDLERS, ddp_backend, ddp_device, handlers_for_rank

__all__ = [
    "DATALIST_NAME",
    "check_volume_file",
    "dataset_info",
    "dataset_intensity",
    "inference_items",
    "load_datalist",
    "LOGGING_HANDLERS",
    "ddp_backend",
    "ddp_device",
    "handlers_for_rank",
]
