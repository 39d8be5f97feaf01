# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Clicks on a whole volume, as MONAI Label's clients (3D Slicer, OHIF) send them, to AI-SAM's per-slice prompts.

Two request layouts are read (docs/monailabel.md):

* DeepEdit style: one key per label name holding that label's foreground clicks, ``{"LV": [[i, j, k], ...]}``;
  clicks of ``"background"`` are foreground clicks of the background class (negative prompts of every class);
* Deepgrow / SAM style: ``{"label": name, "foreground": [...], "background": [...]}``, positive and negative
  clicks of one label; a 2D client sends ``[i, j]`` points with the ``"slice"`` index.

Points are voxel indices of the image as the bundle loads it (no reorientation), along its axes 0, 1, 2.
A click becomes a :class:`~aisam_monai.interactive.PromptPoint` of its slice with the interactive predictor's
rules: a positive click of class ``c`` is a negative prompt of every other class and declares ``c`` present on
that slice (AI-SAM, arXiv 2312.03119: interactive refinement).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.transforms import MapTransform

from aisam_monai.inferers import SliceVolumeInferer
from aisam_monai.interactive.edit_state import PromptPoint, group_points

__all__ = ["CLICKS_META_KEY", "ClickLabelInferer", "Clicksd", "parse_clicks", "volume_prompts"]

CLICKS_META_KEY = "aisam_clicks"
"""Key of the image's metadata under which :class:`Clicksd` leaves the parsed clicks for the inferer."""


def _points(value, name: str, slice_index, spatial_dim: int) -> list[list[float]]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"clicks of {name!r} must be a list of [i, j, k] voxel points, got {value!r}.")
    points = []
    for p in value:
        if not isinstance(p, (list, tuple)) or not all(isinstance(v, (int, float)) for v in p):
            raise ValueError(f"click {p!r} of {name!r} is not a list of numbers.")
        if len(p) == 2 and slice_index is not None:
            p = list(p)
            p.insert(spatial_dim, slice_index)
        if len(p) != 3:
            raise ValueError(f"click {p!r} of {name!r} must be [i, j, k] (or [i, j] with 'slice').")
        points.append([float(v) for v in p])
    return points


def parse_clicks(
    request: Mapping, class_names: Sequence[str], spatial_shape: Sequence[int], spatial_dim: int = 2
) -> list[list]:
    """
    Clicks of a MONAI Label request (both layouts of the module docstring) as ``[class, positive, i, j, k]`` rows.

    Args:
        request: the request's data dict (other keys are ignored).
        class_names: the model's class names, index = class id (background first); matched case-insensitively.
        spatial_shape: ``(H, W, D)`` of the image, to check the clicks against.
        spatial_dim: the slice axis (where a 2D client's ``slice`` index goes).

    Raises:
        ValueError: an unknown label name, a malformed click, or a click outside the image.
    """
    index = {str(n).lower(): c for c, n in enumerate(class_names)}
    slice_index = request.get("slice")
    clicks = []
    for key, value in request.items():  # DeepEdit style: a key per label name
        c = index.get(str(key).lower()) if isinstance(key, str) else None
        if c is not None and key not in ("foreground", "background"):
            clicks += [[c, True, *p] for p in _points(value, key, slice_index, spatial_dim)]
    foreground = _points(request.get("foreground"), "foreground", slice_index, spatial_dim)
    background = _points(request.get("background"), "background", slice_index, spatial_dim)
    if "background" in index and not request.get("label") and background:  # DeepEdit's background label
        clicks += [[index["background"], True, *p] for p in background]
        background = []
    if foreground or background:
        label = request.get("label")
        if not isinstance(label, str) or label.lower() not in index:
            raise ValueError(f"'label' must name one of the model's labels {list(class_names)}, got {label!r}.")
        c = index[label.lower()]
        clicks += [[c, True, *p] for p in foreground] + [[c, False, *p] for p in background]
    for c, _, *p in clicks:
        if any(not -0.5 <= v < s - 0.5 for v, s in zip(p, spatial_shape)):
            raise ValueError(f"click {p} of {class_names[c]!r} is outside the image of shape {tuple(spatial_shape)}.")
    return clicks


def volume_prompts(
    clicks: Sequence[Sequence], spatial_shape: Sequence[int], num_classes: int, spatial_dim: int = 2
) -> dict[str, torch.Tensor]:
    """
    ``[class, positive, i, j, k]`` clicks to the per-slice prompts of
    :class:`~aisam_monai.inferers.SliceVolumeInferer` (its ``prompts`` argument, input voxel coordinates).

    Returns:
        ``points (D, C, K, 2)`` as (row, column) of the slice, ``point_labels (D, C, K)`` (1/0, -1 padding) and
        ``present (D, C)`` (1 where a positive click declares the class, else -1), ``D`` the slices along
        ``spatial_dim`` and ``K`` the most clicks of one class on one slice.
    """
    depth = spatial_shape[spatial_dim]
    in_plane = [a for a in range(3) if a != spatial_dim]
    per_slice: dict[int, list[tuple[int, PromptPoint]]] = {}
    present = torch.full((depth, num_classes), -1.0)
    for n, (c, positive, *p) in enumerate(clicks):
        z = int(round(p[spatial_dim]))
        row, col = p[in_plane[0]], p[in_plane[1]]
        per_slice.setdefault(z, []).append((n, PromptPoint(col, row, int(c), bool(positive))))
        if positive:
            present[z, int(c)] = 1.0
    grouped = {z: group_points(points, num_classes)[:2] for z, points in per_slice.items()}
    k = max([1, *(xy.shape[1] for xy, _ in grouped.values())])
    points = torch.zeros(depth, num_classes, k, 2)
    labels = torch.full((depth, num_classes, k), -1, dtype=torch.int64)
    for z, (xy, lab) in grouped.items():
        points[z] = F.pad(xy.flip(-1), (0, 0, 0, k - xy.shape[1]))  # (x, y) -> (row, column)
        labels[z] = F.pad(lab, (0, k - lab.shape[1]), value=-1)
    return {"points": points, "point_labels": labels, "present": present}


class Clicksd(MapTransform):
    """
    Read a MONAI Label request's clicks (:func:`parse_clicks`) from the data dict and attach them to the image's
    metadata under :data:`CLICKS_META_KEY`, where :class:`ClickLabelInferer` finds them:
    MONAI Label gives a bundle's inferer the image alone. Without clicks the entry is an empty list.

    Args:
        keys: the image key (a ``(1, H, W, D)`` MetaTensor).
        class_names: the model's class names, background first.
        spatial_dim: the slice axis.
    """

    def __init__(self, keys: KeysCollection, class_names: Sequence[str], spatial_dim: int = 2) -> None:
        super().__init__(keys)
        self.class_names = list(class_names)
        self.spatial_dim = spatial_dim

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            if not isinstance(image, MetaTensor):
                raise ValueError(f"Clicksd: {key!r} must be a MetaTensor (1, H, W, D), got {type(image).__name__}.")
            clicks = parse_clicks(d, self.class_names, image.shape[-3:], self.spatial_dim)
            image.meta[CLICKS_META_KEY] = clicks
        return d


class ClickLabelInferer(Inferer):
    """
    The bundle inferer MONAI Label calls, ``inferer(image, network) -> label volume``: a
    :class:`~aisam_monai.inferers.SliceVolumeInferer` whose prompts are the clicks :class:`Clicksd` attached to the
    image's metadata (MONAI Label passes the image and nothing else). Without clicks the result is the automatic
    segmentation; with clicks, the clicked slices are refined (:func:`volume_prompts`) and the others are unchanged.

    Args:
        inferer: the slice-wise volume inferer (its geometry, normalisation and label combination are used as is).
    """

    def __init__(self, inferer: SliceVolumeInferer) -> None:
        super().__init__()
        self.inferer = inferer

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:  # type: ignore[override]
        """
        Args:
            inputs: ``(1, 1, H, W, D)`` volume in [0, 1] (a MetaTensor carrying the clicks, or a plain tensor).
            network: the AI-SAM network (:class:`~aisam_monai.networks.AISAM` or a subclass).

        Returns:
            ``(1, 1, H, W, D)`` uint8 label volume on the input grid.
        """
        clicks = inputs.meta.get(CLICKS_META_KEY) if isinstance(inputs, MetaTensor) else None
        prompts = None
        if clicks:
            model = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
            prompts = volume_prompts(clicks, inputs.shape[-3:], model.num_classes, self.inferer.spatial_dim)
        return self.inferer(inputs, network, prompts=prompts)["pred"]
