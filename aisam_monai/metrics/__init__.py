# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Paper-protocol segmentation metrics (AI-SAM and TransUNet empty-mask rules) and their reports."""

from __future__ import annotations

from aisam_monai.metrics.paper_metric import (
    EMPTY_MASK_RULES,
    METRIC_NAMES,
    PaperSegmentationMetric,
    compute_case_metrics,
)
from aisam_monai.metrics.report import CASE_CSV_COLUMNS, TABLE_COLUMNS, format_table, summarize, write_report
from aisam_monai.metrics.surface_distance import binary_dice, hd95, surface_distances

__all__ = [
    "EMPTY_MASK_RULES",
    "METRIC_NAMES",
    "PaperSegmentationMetric",
    "compute_case_metrics",
    "CASE_CSV_COLUMNS",
    "TABLE_COLUMNS",
    "format_table",
    "summarize",
    "write_report",
    "binary_dice",
    "hd95",
    "surface_distances",
]
