# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Ignite handler of the paper-protocol metric (mean foreground Dice), reading the evaluator's outputs."""

from __future__ import annotations

from collections.abc import Callable

from monai.handlers import IgniteMetricHandler, from_engine

from aisam_monai.metrics import PaperSegmentationMetric

__all__ = ["PaperMetricHandler"]

_DEFAULT_KEYS = {"aisam": ("pred_lowres", "label_lowres"), "transunet": ("pred", "label")}


class PaperMetricHandler(IgniteMetricHandler):
    """
    Mean foreground Dice of :class:`~aisam_monai.metrics.PaperSegmentationMetric` as an Ignite metric; the
    per-case ``(N, C-1, 3)`` scores (Dice, HD95, HD95 mm), gathered across ranks, are kept in
    ``engine.state.metric_details[name]`` for :class:`~aisam_monai.handlers.PaperReportHandler`.

    Args:
        num_classes: number of classes including background.
        protocol: ``"aisam"`` (scores ``pred_lowres`` against ``label_lowres``, the ``S/4`` grid, unit spacing)
            or ``"transunet"`` (``pred`` against ``label`` on the original grid, plus HD95 in mm).
        output_transform: callable giving ``(y_pred, y)`` from the engine output; defaults per protocol.
        spacing_mm: compute HD95 in mm (default: for the ``transunet`` protocol only).
    """

    def __init__(
        self,
        num_classes: int,
        protocol: str = "aisam",
        output_transform: Callable | None = None,
        spacing_mm: bool | None = None,
    ) -> None:
        metric = PaperSegmentationMetric(
            num_classes, rule=protocol, spacing_mm=protocol == "transunet" if spacing_mm is None else spacing_mm
        )
        if output_transform is None:
            output_transform = from_engine(list(_DEFAULT_KEYS[protocol]))
        super().__init__(metric_fn=metric, output_transform=output_transform, save_details=True)
        self.protocol = protocol
