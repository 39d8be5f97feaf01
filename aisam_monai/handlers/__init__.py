# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handlers for AI-SAM workflows: loss parts, paper metrics and reports, checkpoints/resume, predictions.

The checkpoint checks they use are in :mod:`aisam_monai.io.checkpoint`, the files they write in :mod:`aisam_monai.io`.
"""

from __future__ import annotations

from aisam_monai.handlers.checkpoint import (
    AtomicCheckpointSaver,
    AtomicDiskSaver,
    CheckedCheckpointLoader,
    ResumeHandler,
)
from aisam_monai.handlers.loss_parts import LossPartsHandler
from aisam_monai.handlers.metric_report import PaperReportHandler
from aisam_monai.handlers.paper_metric import PaperMetricHandler
from aisam_monai.handlers.prediction_writer import PredictionWriter

__all__ = [
    "AtomicCheckpointSaver",
    "AtomicDiskSaver",
    "CheckedCheckpointLoader",
    "ResumeHandler",
    "LossPartsHandler",
    "PaperReportHandler",
    "PaperMetricHandler",
    "PredictionWriter",
]
