# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Write the per-case CSV, the summary JSON and the Table 1 style table after each evaluation."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import ignite.distributed as idist
from ignite.engine import Engine, Events
from monai.utils import string_list_all_gather

from aisam_monai.io.nifti import case_stem
from aisam_monai.metrics import write_report

__all__ = ["PaperReportHandler", "batch_case_names"]


def batch_case_names(batch: dict, key: str) -> list[str]:
    """Case names (file stems) of a batch from the image's ``filename_or_obj`` metadata."""
    image = batch.get(key)
    meta = getattr(image, "meta", None) or batch.get(f"{key}_meta_dict") or {}
    names = meta.get("filename_or_obj", [])
    names = [names] if isinstance(names, str) else list(names)
    return [case_stem(name) for name in names]


class PaperReportHandler:
    """
    At the end of each evaluation, write ``{prefix}_per_case.csv`` and ``{prefix}_summary.json`` in
    ``output_dir`` (rank 0, atomically) from the details of the :class:`PaperMetricHandler` metrics and log the
    table in the paper's column order.

    Args:
        output_dir: report folder.
        class_names: names of the foreground classes 1..C-1.
        columns: table columns, e.g. ``aisam_monai.metrics.TABLE_COLUMNS["acdc"]``.
        metric_names: ``{protocol: metric name in the evaluator}``, e.g. ``{"aisam": "val_mean_dice"}``.
        extra: entries added to the summary JSON (e.g. ``{"eval_mode": "auto"}``).
        prefix: file name prefix.
        image_key: batch key whose metadata names the cases.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        columns: Sequence[str],
        metric_names: Mapping[str, str],
        extra: Mapping | None = None,
        prefix: str = "metrics",
        image_key: str = "image",
    ) -> None:
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.columns = list(columns)
        self.metric_names = dict(metric_names)
        self.extra = dict(extra or {})
        self.prefix = prefix
        self.image_key = image_key
        self.logger = logging.getLogger("aisam_monai.report")
        self._names: list[str] = []
        self.summary: dict | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self._names.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _collect(self, engine: Engine) -> None:
        self._names.extend(batch_case_names(engine.state.batch, self.image_key))

    def _write(self, engine: Engine) -> None:
        names = string_list_all_gather(self._names) if idist.get_world_size() > 1 else list(self._names)
        scores = {p: engine.state.metric_details[m] for p, m in self.metric_names.items()}
        if idist.get_rank() != 0:
            return
        scores = {p: s.cpu().numpy() for p, s in scores.items()}
        if any(len(s) != len(names) for s in scores.values()):
            names = [f"case_{i}" for i in range(len(next(iter(scores.values()))))]
            self.logger.warning("case names were not found for every scored case; numbered names are used.")
        self.summary, table = write_report(
            self.output_dir, names, scores, self.class_names, self.columns, self.extra, self.prefix
        )
        self.logger.info(f"{len(names)} cases ({self.extra}), Dice in %:\n{table}")
        self.logger.info(f"per-case metrics and summary written to {os.path.abspath(self.output_dir)}")
