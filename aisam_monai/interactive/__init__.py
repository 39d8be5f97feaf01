# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""Interactive AI-SAM: :class:`AISAMPredictor` (cached embeddings, point/box/class edits) and the ``aisam`` tool."""

from __future__ import annotations

from .clicks import CLICKS_META_KEY, Clicksd, parse_clicks, volume_prompts
from .coordinates import box_mask, box_to_model, model_to_pixel, pixel_to_model, resize_logits
from .edit_file import prompts_record, read_edits, slice_points_from_record
from .predictor import DEFAULT_INTENSITY, EDIT_OPS, MODES, AISAMPredictor, PromptPoint, SlicePrediction, group_points

__all__ = [
    "CLICKS_META_KEY",
    "Clicksd",
    "parse_clicks",
    "volume_prompts",
    "AISAMPredictor",
    "PromptPoint",
    "SlicePrediction",
    "group_points",
    "MODES",
    "EDIT_OPS",
    "DEFAULT_INTENSITY",
    "box_mask",
    "box_to_model",
    "model_to_pixel",
    "pixel_to_model",
    "resize_logits",
    "prompts_record",
    "read_edits",
    "slice_points_from_record",
]
