# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Ignite engines for AI-SAM: slice-batch training, whole-volume evaluation and slab-streamed inference."""

from __future__ import annotations

from aisam_monai.engines.evaluator import AISAMEvaluator
from aisam_monai.engines.streaming import StreamingEvaluator
from aisam_monai.engines.trainer import AISAMTrainer

__all__ = ["AISAMTrainer", "AISAMEvaluator", "StreamingEvaluator"]
