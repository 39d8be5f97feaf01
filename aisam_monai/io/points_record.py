# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The ``{case}_points.json`` record: the generated points of every slice of a segmented volume, in the input's voxel
coordinates (written beside each segmentation by the bundles' inference and read back by the ``aisam`` tool)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from aisam_monai.io.atomic import atomic_write_json

__all__ = ["points_record", "write_points_file"]


def points_record(
    points: torch.Tensor, class_probs: torch.Tensor, class_names: Sequence[str], image: str, shape, slice_axis: int
) -> dict:
    """
    JSON-ready record of the generated points of one volume.

    Args:
        points: ``(D, C, Np, 3)`` points in input voxel coordinates (continuous indices along the input's axes).
        class_probs: ``(D, C)`` presence probabilities (NaN without a classifier).
        class_names: ``C`` names, background first.
        image: input file name.
        shape: spatial shape of the input.
        slice_axis: axis along which the volume was sliced.

    Returns:
        ``{"image", "shape", "slice_axis", "coordinates", "classes", "slices": [{"index", "presence", "points"}]}``
        where ``points[name]`` lists that class's ``Np`` points ``[i, j, k]`` of the slice.
    """
    points = points.detach().cpu().double().numpy().round(3)
    probs = class_probs.detach().cpu().double().numpy()
    slices = []
    for index, (slice_points, slice_probs) in enumerate(zip(points, probs)):
        slices.append(
            {
                "index": index,
                "presence": {n: None if np.isnan(p) else round(float(p), 4) for n, p in zip(class_names, slice_probs)},
                "points": {n: p.tolist() for n, p in zip(class_names, slice_points)},
            }
        )
    return {
        "image": image,
        "shape": [int(s) for s in shape],
        "slice_axis": slice_axis,
        "coordinates": "continuous voxel indices (i, j, k) along the axes of the input image",
        "classes": list(class_names),
        "slices": slices,
    }


def write_points_file(
    output_dir: str,
    case: str,
    points: torch.Tensor,
    class_probs: torch.Tensor,
    class_names: Sequence[str],
    image: str,
    shape,
    slice_axis: int,
) -> str:
    """Write ``{case}_points.json`` (:func:`points_record` of the arguments) in ``output_dir`` atomically.

    Returns the path written.
    """
    path = os.path.join(output_dir, f"{case}_points.json")
    atomic_write_json(path, points_record(points, class_probs, class_names, image, shape, slice_axis))
    return path
