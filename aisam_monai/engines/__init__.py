# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Ignite engines for AI-SAM: slice-batch training and whole-volume evaluation."""

from __future__ import annotations

from aisam_monai.engines.evaluator import AISAMEvaluator
from aisam_monai.engines.trainer import AISAMTrainer

__all__ = ["AISAMTrainer", "AISAMEvaluator"]
