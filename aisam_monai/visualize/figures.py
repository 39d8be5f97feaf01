# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""Multi-slice figures: a few slices side by side, ground truth above prediction, saved atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from aisam_monai.io.atomic import atomic_write_bytes  # noqa: E402
from aisam_monai.visualize.overlay import draw_overlay, legend_handles  # noqa: E402

__all__ = ["plot_slices", "save_figure"]


def save_figure(fig: Figure, out_path: str | os.PathLike, dpi: int = 120) -> str:
    """Write ``fig`` to ``out_path`` atomically (temporary file in the same folder, then ``os.replace``).

    The format follows the file extension (``.png``, ``.pdf``, ``.svg``, ...). Returns the path written.
    """
    out_path = os.fspath(out_path)
    ext = os.path.splitext(out_path)[1].lstrip(".").lower() or "png"

    def write(tmp: str) -> None:
        fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")

    atomic_write_bytes(out_path, write, suffix=f".{ext}")
    return out_path


def plot_slices(
    images: Sequence,
    labels: Sequence | None = None,
    preds: Sequence | None = None,
    points: Sequence | None = None,
    point_labels: Sequence | None = None,
    class_names: Sequence[str] = ("background", "foreground"),
    titles: Sequence[str] | None = None,
    out_path: str | os.PathLike | None = None,
    alpha: float = 0.45,
    panel_size: float = 3.0,
    dpi: int = 120,
) -> Figure:
    """Plot ``N`` slices side by side with optional ground truth, prediction and prompt points.

    One column per slice. Rows: the ground truth (when ``labels`` is given) above the prediction (when
    ``preds`` is given); with neither, a single row of images. Points are drawn on the prediction row (or
    the only row). Masks use one colour per foreground class and a legend with ``class_names``; points are
    coloured by class with a circle for positive and a cross for negative prompts.

    Args:
        images: ``N`` slices, each ``(H, W)`` or ``(C, H, W)`` (array, tensor or MetaTensor); an array or
            tensor ``(N, H, W)`` works too. Slices may differ in size.
        labels: optional ``N`` ground-truth label maps ``(H, W)`` on the slices' grids.
        preds: optional ``N`` predicted label maps ``(H, W)``.
        points: optional ``N`` point sets ``(C, K, 2)``, ``(x, y)`` = (column, row) in slice pixels;
            ``None`` entries draw no points on that slice.
        point_labels: optional ``N`` label sets ``(C, K)``: 1 positive, 0 negative, -1 not drawn; default
            all positive.
        class_names: names of all ``C`` classes, background first; ``C`` fixes the colours.
        titles: optional ``N`` column titles (e.g. ``"slice 5"``).
        out_path: when given, the figure is written there atomically (format from the extension).
        alpha: mask opacity.
        panel_size: size of one panel in inches.
        dpi: resolution of the written file.

    Returns:
        the matplotlib ``Figure`` (close it with ``matplotlib.pyplot.close(fig)`` when done).

    Example::

        >>> fig = plot_slices([img5, img9], labels=[gt5, gt9], preds=[pr5, pr9],
        ...                   class_names=["background", "RV", "Myo", "LV"], out_path="fig.png")
    """
    n = len(images)
    if n == 0:
        raise ValueError("plot_slices needs at least one image.")
    sequences = {"labels": labels, "preds": preds, "points": points, "point_labels": point_labels, "titles": titles}
    for name, seq in sequences.items():
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} holds {len(seq)} entries for {n} images.")
    rows = [("ground truth", labels), ("prediction", preds)]
    rows = [r for r in rows if r[1] is not None] or [("", None)]
    num_classes = len(class_names)
    fig, axes = plt.subplots(
        len(rows), n, figsize=(panel_size * n, panel_size * len(rows)), squeeze=False, layout="constrained"
    )
    for r, (row_name, masks) in enumerate(rows):
        with_points = r == len(rows) - 1 and points is not None
        for i in range(n):
            title = titles[i] if titles is not None and r == 0 else None
            draw_overlay(
                axes[r, i],
                images[i],
                mask=None if masks is None else masks[i],
                points=points[i] if with_points else None,
                point_labels=point_labels[i] if with_points and point_labels is not None else None,
                num_classes=num_classes,
                alpha=alpha,
                title=title,
            )
        if row_name:
            axes[r, 0].set_ylabel(row_name, fontsize=9)
    background_points = points is not None and any(
        p is not None
        and (point_labels is None or point_labels[i] is None or (np.asarray(point_labels[i])[0] >= 0).any())
        for i, p in enumerate(points)
    )
    fig.legend(
        handles=legend_handles(class_names, with_points=points is not None, with_background_points=background_points),
        loc="outside lower center",
        ncol=min(num_classes + 3, 8),
        fontsize=8,
        frameon=False,
    )
    if out_path is not None:
        save_figure(fig, out_path, dpi=dpi)
    return fig
