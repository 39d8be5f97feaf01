# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Sliding-slice volume inference for AI-SAM, and the same as a ``network(volume) -> tensor`` module."""

from __future__ import annotations

from aisam_monai.inferers.streaming import StreamingNiftiInferer
from aisam_monai.inferers.volume_inferer import EVAL_PROMPTS, SliceVolumeInferer
from aisam_monai.inferers.volume_net import AISAMVolumeNet

__all__ = ["EVAL_PROMPTS", "AISAMVolumeNet", "SliceVolumeInferer", "StreamingNiftiInferer"]
