# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Per-class targets and prompts derived from a label: presence multi-hot, ground-truth boxes and random
ground-truth points (arXiv 2312.03119, Table 1's gt-label, random-point and gt-box rows), all classes at once.

The label is ``(1, H, W)`` (a slice: outputs have no leading axis) or ``(1, H, W, D)`` (a volume: one entry per
slice along the last axis, outputs lead with ``D``). Pixel coordinates are ``(x, y)`` = (column, row) of the
label's grid, so compute them after resizing to the model size ``S``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.transforms import MapTransform, Randomizable
from monai.utils import convert_to_tensor

from aisam_monai.transforms.label_prompts import class_presence, label_boxes, random_label_points

__all__ = ["ClassPresenced", "LabelBoxesd", "RandLabelPointsd"]


def _as_slices(label: torch.Tensor, key: str) -> tuple[torch.Tensor, bool]:
    """``(1, H, W)`` -> ``(1, 1, H, W)``; ``(1, H, W, D)`` -> ``(D, 1, H, W)``; flag: volume input."""
    lab = convert_to_tensor(label, track_meta=False)
    if lab.shape[0] != 1 or lab.ndim not in (3, 4):
        raise ValueError(f"'{key}' must be a (1, H, W) or (1, H, W, D) label, got shape {tuple(lab.shape)}.")
    if lab.ndim == 3:
        return lab[None].long(), False
    return lab.permute(3, 0, 1, 2).long(), True


class _LabelTargetd(MapTransform):
    def __init__(self, label_key: str, num_classes: int, output_key: str) -> None:
        super().__init__([label_key])
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be >= 2, got {num_classes}.")
        self.label_key, self.num_classes, self.output_key = label_key, num_classes, output_key

    def _slices(self, d: Mapping) -> tuple[torch.Tensor, bool]:
        lab, volume = _as_slices(d[self.label_key], self.label_key)
        if lab.numel() and (lab.min() < 0 or lab.max() >= self.num_classes):
            raise ValueError(
                f"'{self.label_key}' values must lie in 0..{self.num_classes - 1}, got {lab.min()}..{lab.max()}."
            )
        return lab, volume

    def target(self, labels: torch.Tensor) -> torch.Tensor:
        """Per-slice target of ``labels (D, 1, H, W)``, leading axis ``D``."""
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        lab, volume = self._slices(d)
        out = self.target(lab)
        d[self.output_key] = out if volume else out[0]
        return d


class ClassPresenced(_LabelTargetd):
    """
    ``multi_hot``: float ``(C,)`` (``(D, C)`` for a volume) presence of every class, background included.

    Args:
        label_key: key of the integer label.
        num_classes: ``C``, background included.
        output_key: key of the result.
    """

    def __init__(self, label_key: str = "label", num_classes: int = 4, output_key: str = "multi_hot") -> None:
        super().__init__(label_key, num_classes, output_key)

    def target(self, labels: torch.Tensor) -> torch.Tensor:
        return class_presence(labels, self.num_classes).float()


class LabelBoxesd(_LabelTargetd):
    """
    ``boxes``: float ``(C, 4)`` (``(D, C, 4)``) tightest inclusive ``(x1, y1, x2, y2)`` box of every class in
    pixels of the label's grid; an absent class gets the empty box ``(0, 0, -1, -1)`` (all -1 would mean "no box").

    Args:
        label_key: key of the integer label.
        num_classes: ``C``, background included.
        output_key: key of the result.
    """

    def __init__(self, label_key: str = "label", num_classes: int = 4, output_key: str = "boxes") -> None:
        super().__init__(label_key, num_classes, output_key)

    def target(self, labels: torch.Tensor) -> torch.Tensor:
        return label_boxes(labels, self.num_classes)


class RandLabelPointsd(Randomizable, _LabelTargetd):
    """
    ``points``: float ``(C, N, 2)`` (``(D, C, N, 2)``) pixels ``(x, y)`` drawn uniformly from each class's mask
    (with replacement), and ``point_labels``: int64 ``(C, N)``: 1 for a drawn point, -1 (padding, point at
    ``(0, 0)``) for an absent class. Seeded through :meth:`set_random_state`.

    Args:
        label_key: key of the integer label.
        num_classes: ``C``, background included.
        num_points: ``N`` points per class.
        output_key: key of the points.
        labels_key: key of the point labels.
    """

    def __init__(
        self,
        label_key: str = "label",
        num_classes: int = 4,
        num_points: int = 1,
        output_key: str = "points",
        labels_key: str = "point_labels",
    ) -> None:
        _LabelTargetd.__init__(self, label_key, num_classes, output_key)
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}.")
        self.num_points, self.labels_key = num_points, labels_key
        self._seed = 0

    def randomize(self, data=None) -> None:
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        lab, volume = self._slices(d)
        self.randomize()
        generator = torch.Generator(device=lab.device).manual_seed(self._seed)
        points, labels = random_label_points(lab, self.num_classes, self.num_points, generator)
        d[self.output_key] = points if volume else points[0]
        d[self.labels_key] = labels.long() if volume else labels[0].long()
        return d
