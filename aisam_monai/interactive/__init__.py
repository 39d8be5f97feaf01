# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""Interactive AI-SAM: :class:`AISAMPredictor` (cached embeddings, point/box/class edits) and the ``aisam`` tool."""

from __future__ import annotations

from aisam_monai.networks.label_combination import resize_logits
from aisam_monai.transforms.slice_geometry import box_mask, box_to_model, model_to_pixel, pixel_to_model

from .clicks import CLICKS_META_KEY, ClickLabelInferer, Clicksd, parse_clicks, volume_prompts
from .edit_file import prompts_record, read_edits, slice_points_from_record
from .edit_state import EDIT_OPS, EditState, PromptPoint, group_points, nearest_point
from .predictor import DEFAULT_INTENSITY, AISAMPredictor
from .slice_decoding import DECODE_PATHS, AutoResult, SlicePrediction

__all__ = [
    "CLICKS_META_KEY",
    "ClickLabelInferer",
    "Clicksd",
    "parse_clicks",
    "volume_prompts",
    "AISAMPredictor",
    "AutoResult",
    "EditState",
    "PromptPoint",
    "SlicePrediction",
    "group_points",
    "nearest_point",
    "DECODE_PATHS",
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
