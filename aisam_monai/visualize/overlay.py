# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""Drawing one 2D slice: image, label map overlay and prompt points on a matplotlib axes."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from monai.utils import convert_to_numpy  # noqa: E402

__all__ = ["class_colors", "draw_overlay", "legend_handles", "to_display_image"]

BACKGROUND_POINT_COLOR = (0.85, 0.85, 0.85, 1.0)
POSITIVE_MARKER = "o"
NEGATIVE_MARKER = "X"


def class_colors(num_classes: int) -> np.ndarray:
    """RGBA colour per class, shape ``(num_classes, 4)``.

    Class 0 (background) is light grey, used only for its points; masks are never drawn for it.
    Foreground classes take the ``tab10`` palette (``tab20`` beyond 10 foreground classes).
    """
    cmap = matplotlib.colormaps["tab10" if num_classes <= 11 else "tab20"]
    colors = np.array([BACKGROUND_POINT_COLOR] + [to_rgba(cmap(c % cmap.N)) for c in range(num_classes - 1)])
    return colors.reshape(num_classes, 4)


def to_display_image(image) -> np.ndarray:
    """A 2D float array in [0, 1] for display.

    Args:
        image: ``(H, W)`` or channel-first ``(C, H, W)`` array or tensor (the first channel is shown, as the
            model's 3 channels are a replicated grey image). Intensities are stretched between the 1st and
            99th percentile.
    """
    img = np.asarray(convert_to_numpy(image), dtype=np.float32)
    if img.ndim == 3:
        img = img[0]
    if img.ndim != 2:
        raise ValueError(f"expected an image of shape (H, W) or (C, H, W), got {img.shape}.")
    lo, hi = np.percentile(img, (1, 99))
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0)


def draw_overlay(
    ax: Axes,
    image,
    mask=None,
    points=None,
    point_labels=None,
    num_classes: int = 2,
    alpha: float = 0.45,
    marker_size: float = 40.0,
    title: str | None = None,
) -> None:
    """Draw an image with a label-map overlay and prompt points on ``ax``.

    Args:
        ax: target axes.
        image: ``(H, W)`` or ``(C, H, W)`` image.
        mask: optional ``(H, W)`` integer label map (0 = background, not coloured), same grid as ``image``.
        points: optional ``(C, K, 2)`` point coordinates ``(x, y)`` = (column, row) in ``image`` pixels;
            ``points[c]`` are the points of class ``c`` (class 0 = background points).
        point_labels: optional ``(C, K)``: 1 positive, 0 negative, -1 padding (not drawn). Defaults to all
            positive (the automatic points of a class are positive prompts for it).
        num_classes: number of classes ``C`` including background; fixes the colours.
        alpha: opacity of the mask fill.
        marker_size: point marker area in points^2.
        title: optional axes title.
    """
    img = to_display_image(image)
    colors = class_colors(num_classes)
    ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if mask is not None:
        lab = np.asarray(convert_to_numpy(mask)).astype(np.int64).squeeze()
        if lab.shape != img.shape:
            raise ValueError(f"mask shape {lab.shape} does not match image shape {img.shape}.")
        if lab.min() < 0 or lab.max() >= num_classes:
            raise ValueError(f"mask values must lie in [0, {num_classes - 1}], got [{lab.min()}, {lab.max()}].")
        rgba = colors[lab].copy()
        rgba[..., 3] = np.where(lab > 0, alpha, 0.0)
        ax.imshow(rgba, interpolation="nearest")
    if points is not None:
        pts = np.asarray(convert_to_numpy(points), dtype=np.float32)
        if pts.ndim != 3 or pts.shape[-1] != 2 or pts.shape[0] > num_classes:
            raise ValueError(f"points must have shape (C, K, 2) with C <= {num_classes}, got {pts.shape}.")
        cls = np.repeat(np.arange(pts.shape[0]), pts.shape[1])
        pts = pts.reshape(-1, 2)
        lbl = (
            np.ones(pts.shape[0], dtype=np.int64)
            if point_labels is None
            else np.asarray(convert_to_numpy(point_labels)).astype(np.int64).reshape(-1)
        )
        if lbl.shape[0] != pts.shape[0]:
            raise ValueError(f"point_labels hold {lbl.shape[0]} entries for {pts.shape[0]} points.")
        for value, marker in ((1, POSITIVE_MARKER), (0, NEGATIVE_MARKER)):
            sel = lbl == value
            if sel.any():
                ax.scatter(
                    pts[sel, 0],
                    pts[sel, 1],
                    s=marker_size,
                    c=colors[cls[sel]],
                    marker=marker,
                    edgecolors="black",
                    linewidths=0.8,
                )
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def legend_handles(class_names: Sequence[str], with_points: bool = False, with_background_points: bool = False) -> list:
    """Legend entries: one colour patch per foreground class, plus marker shapes when points are drawn.

    Args:
        class_names: names of all ``C`` classes, background first.
        with_points: add entries for the positive (circle) and negative (cross) markers.
        with_background_points: also add the colour of the background class's points (drawn as circles).
    """
    colors = class_colors(len(class_names))
    handles: list = [Patch(facecolor=colors[c], edgecolor="none", label=name) for c, name in enumerate(class_names)][1:]
    entries = (
        [(POSITIVE_MARKER, colors[0], f"{class_names[0]} points")] if with_points and with_background_points else []
    )
    if with_points:
        entries += [(POSITIVE_MARKER, "white", "positive"), (NEGATIVE_MARKER, "white", "negative")]
    for marker, color, label in entries:
        handles.append(Line2D([], [], ls="", marker=marker, color=color, markeredgecolor="black", label=label))
    return handles
