# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Summaries and report files of paper-protocol scores: per-case CSV, summary JSON, Table 1 style text table."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from aisam_monai.io.atomic import atomic_write_bytes
from aisam_monai.metrics.paper_metric import METRIC_NAMES

__all__ = ["TABLE_COLUMNS", "CASE_CSV_COLUMNS", "summarize", "case_rows", "format_table", "write_report"]

TABLE_COLUMNS = {
    "synapse": ("DICE", "HD95", "Aorta", "GB", "KL", "KR", "Liver", "PC", "SP", "SM"),
    "acdc": ("DICE", "RV", "Myo", "LV"),
}
"""Column order of the paper's Table 1; after ``DICE`` (and ``HD95``) come the per-class Dice of classes 1..C-1."""

CASE_CSV_COLUMNS = ("case", "protocol", "class", *METRIC_NAMES)


def _atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            f.write(text)

    atomic_write_bytes(path, write, suffix=os.path.splitext(path)[1])


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """NaN-ignoring mean that returns NaN (without a warning) where every value is NaN."""
    values = np.asarray(values, dtype=np.float64)
    count = np.sum(~np.isnan(values), axis=axis)
    total = np.nansum(values, axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def summarize(scores: np.ndarray, class_names: Sequence[str]) -> dict:
    """
    Aggregate per-case scores: mean over cases per class, then mean over classes.

    Args:
        scores: ``(N, C-1, 3)`` array, columns :data:`~aisam_monai.metrics.paper_metric.METRIC_NAMES`.
        class_names: names of the foreground classes 1..C-1.

    Returns:
        ``{"num_cases", "mean_dice", "mean_hd95", "mean_hd95_mm", "per_class": {name: {metric: value}}}``;
        ``hd95_mm`` ignores NaN (cases where a class is empty in prediction or ground truth).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 3 or scores.shape[1:] != (len(class_names), len(METRIC_NAMES)):
        raise ValueError(f"scores must be (N, {len(class_names)}, {len(METRIC_NAMES)}), got {scores.shape}.")
    per_class = np.stack([scores[..., 0].mean(0), scores[..., 1].mean(0), _nanmean(scores[..., 2], axis=0)], -1)
    means = [per_class[:, 0].mean(), per_class[:, 1].mean(), _nanmean(per_class[:, 2])]
    as_float = lambda v: None if np.isnan(v) else float(v)  # noqa: E731  (JSON has no NaN)
    return {
        "num_cases": int(scores.shape[0]),
        **{f"mean_{m}": as_float(v) for m, v in zip(METRIC_NAMES, means)},
        "per_class": {
            name: {m: as_float(v) for m, v in zip(METRIC_NAMES, row)} for name, row in zip(class_names, per_class)
        },
    }


def case_rows(case_names: Sequence[str], scores: Mapping[str, np.ndarray], class_names: Sequence[str]) -> list[list]:
    """Long-format rows ``(case, protocol, class, dice, hd95, hd95_mm)`` of per-case scores of every protocol."""
    rows = []
    for protocol, values in scores.items():
        values = np.asarray(values)
        if values.shape[0] != len(case_names):
            raise ValueError(f"{protocol}: {values.shape[0]} scored cases but {len(case_names)} case names.")
        for case, case_values in zip(case_names, values):
            rows.extend([case, protocol, name, *map(float, v)] for name, v in zip(class_names, case_values))
    return rows


def format_table(summaries: Mapping[str, dict], columns: Sequence[str]) -> str:
    """
    Markdown table in the paper's column order, one row per protocol; Dice in percent.

    Args:
        summaries: ``{protocol: summarize(...)}``.
        columns: e.g. ``TABLE_COLUMNS["acdc"]``: ``DICE``, optional ``HD95``, then one name per foreground class.
    """
    class_columns = [c for c in columns if c not in ("DICE", "HD95")]
    header = ["protocol", *columns, "HD95 mm"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for protocol, summary in summaries.items():
        per_class = list(summary["per_class"].values())
        if len(per_class) != len(class_columns):
            raise ValueError(f"table needs {len(class_columns)} classes, summary has {len(per_class)}.")
        values = {"DICE": 100 * summary["mean_dice"], "HD95": summary["mean_hd95"]}
        values.update({c: 100 * v["dice"] for c, v in zip(class_columns, per_class)})
        mm = summary["mean_hd95_mm"]
        cells = [protocol, *(f"{values[c]:.2f}" for c in columns), "n/a" if mm is None else f"{mm:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    output_dir: str,
    case_names: Sequence[str],
    scores: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    columns: Sequence[str],
    extra: Mapping | None = None,
    prefix: str = "metrics",
) -> tuple[dict, str]:
    """
    Write ``{prefix}_per_case.csv`` (columns :data:`CASE_CSV_COLUMNS`) and ``{prefix}_summary.json`` atomically.

    Args:
        output_dir: folder of the two files (created if needed).
        case_names: one name per scored case, in the order of ``scores``.
        scores: ``{protocol: (N, C-1, 3) array}``.
        class_names: names of the foreground classes.
        columns: table columns, see :func:`format_table`.
        extra: additional entries of the summary JSON (e.g. the evaluation mode).
        prefix: file name prefix.

    Returns:
        (the summary dictionary, the formatted table).
    """
    summaries = {protocol: summarize(values, class_names) for protocol, values in scores.items()}
    table = format_table(summaries, columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CASE_CSV_COLUMNS)
    writer.writerows(case_rows(case_names, scores, class_names))
    _atomic_write_text(os.path.join(output_dir, f"{prefix}_per_case.csv"), buffer.getvalue())
    summary = {**(extra or {}), "protocols": summaries, "table": table}
    _atomic_write_text(os.path.join(output_dir, f"{prefix}_summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary, table
