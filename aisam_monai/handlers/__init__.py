# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handlers for AI-SAM workflows: loss parts, paper metrics and reports, checkpoints/resume, predictions."""

from __future__ import annotations

from aisam_monai.handlers.checkpoint import (
    AtomicCheckpointSaver,
    AtomicDiskSaver,
    CheckedCheckpointLoader,
    ResumeHandler,
    check_checkpoint,
    find_last_checkpoint,
)
from aisam_monai.handlers.loss_parts import LossPartsHandler
from aisam_monai.handlers.metric_report import PaperReportHandler
from aisam_monai.handlers.paper_metric import PaperMetricHandler
from aisam_monai.handlers.prediction_writer import PredictionWriter, points_record, write_points_file

__all__ = [
    "AtomicCheckpointSaver",
    "AtomicDiskSaver",
    "CheckedCheckpointLoader",
    "ResumeHandler",
    "check_checkpoint",
    "find_last_checkpoint",
    "LossPartsHandler",
    "PaperReportHandler",
    "PaperMetricHandler",
    "PredictionWriter",
    "points_record",
    "write_points_file",
]
