# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""MONAI dictionary transforms for AI-SAM: intensity, 2D slice sampling, AI-SAM's augmentation, targets and
prompts from labels, preset chains built from a datalist's metadata, and the slice <-> model-grid geometry."""

from __future__ import annotations

from aisam_monai.transforms.augment import RandIntegerRotated, RandRot90Flipd, RandScaleCropd
from aisam_monai.transforms.intensity import (
    INTENSITY_KINDS,
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    SAMNormalized,
    ScaleToUnitd,
    intensity_transform,
    to_model_input,
)
from aisam_monai.transforms.label_promptsd import ClassPresenced, LabelBoxesd, RandLabelPointsd
from aisam_monai.transforms.presets import eval_transforms, inference_transforms, slice_transforms, train_transforms
from aisam_monai.transforms.slice_geometry import (
    box_mask,
    box_to_model,
    model_to_pixel,
    pixel_to_model,
    resize_to_model,
)
from aisam_monai.transforms.slicing import RandSliceSampled

__all__ = [
    "INTENSITY_KINDS",
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "SAMNormalized",
    "ScaleToUnitd",
    "intensity_transform",
    "to_model_input",
    "box_mask",
    "box_to_model",
    "model_to_pixel",
    "pixel_to_model",
    "resize_to_model",
    "RandSliceSampled",
    "RandRot90Flipd",
    "RandIntegerRotated",
    "RandScaleCropd",
    "ClassPresenced",
    "LabelBoxesd",
    "RandLabelPointsd",
    "train_transforms",
    "slice_transforms",
    "eval_transforms",
    "inference_transforms",
]
