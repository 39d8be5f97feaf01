# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Sliding-slice volume inference for AI-SAM and prompts derived from label maps."""

from __future__ import annotations

from aisam_monai.inferers.label_prompts import class_presence, label_boxes, random_label_points
from aisam_monai.inferers.volume_inferer import EVAL_MODES, SliceVolumeInferer

__all__ = ["EVAL_MODES", "SliceVolumeInferer", "class_presence", "label_boxes", "random_label_points"]
