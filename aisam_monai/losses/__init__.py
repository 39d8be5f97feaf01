# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

from .aisam_loss import AISAMLoss, presence_from_labels
from .diversity import PromptDiversityLoss, info_nce
from .heuristic import PromptHeuristicLoss
from .point import PointCorrectnessLoss, PointSharpnessLoss, class_target

__all__ = [
    "AISAMLoss",
    "PointCorrectnessLoss",
    "PointSharpnessLoss",
    "PromptDiversityLoss",
    "PromptHeuristicLoss",
    "class_target",
    "info_nce",
    "presence_from_labels",
]
