# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Sliding-slice volume inference for AI-SAM."""

from __future__ import annotations

from aisam_monai.inferers.click_inferer import ClickLabelInferer
from aisam_monai.inferers.streaming import StreamingNiftiInferer
from aisam_monai.inferers.volume_inferer import EVAL_MODES, SliceVolumeInferer

__all__ = ["EVAL_MODES", "ClickLabelInferer", "SliceVolumeInferer", "StreamingNiftiInferer"]
