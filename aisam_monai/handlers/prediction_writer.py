# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Write each predicted volume as NIfTI on the input's grid and its generated points as JSON beside it."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor, decollate_batch

from aisam_monai.data.common import atomic_write_json, write_nifti
from aisam_monai.handlers.metric_report import batch_case_names

__all__ = ["PredictionWriter", "points_record", "write_points_file"]


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


class PredictionWriter:
    """
    After each evaluator iteration, write ``{case}{postfix}.nii.gz`` (the ``pred`` label volume, uint8, with the
    affine of its metadata: the input's when preprocessing has no spatial transform) and ``{case}_points.json``
    (:func:`points_record`) in ``output_dir``, both atomically. Volumes are written one per iteration (batch 1).

    Args:
        output_dir: output folder.
        class_names: class names, background first (for the points file).
        postfix: file name postfix of the segmentation.
        slice_axis: axis along which the inferer sliced the volume (recorded in the points file).
        image_key: batch key whose metadata names the case.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        postfix: str = "_seg",
        slice_axis: int = 2,
        image_key: str = "image",
    ) -> None:
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.postfix = postfix
        self.slice_axis = slice_axis
        self.image_key = image_key
        self.logger = logging.getLogger("aisam_monai.writer")
        self.written: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        output = engine.state.output
        pred = output["pred"]
        if pred.shape[0] != 1:
            raise ValueError(f"PredictionWriter writes one volume per iteration, got a batch of {pred.shape[0]}.")
        (case,) = batch_case_names(engine.state.batch, self.image_key) or [f"case_{engine.state.iteration - 1}"]
        volume = decollate_batch(pred, detach=True)[0]  # (1, H, W, D) channel-first with its own metadata
        meta = dict(volume.meta) if isinstance(volume, MetaTensor) else {}
        image_file = str(meta.get("filename_or_obj", case))
        seg_path = os.path.join(self.output_dir, f"{case}{self.postfix}.nii.gz")
        affine = np.eye(4) if meta.get("affine") is None else np.asarray(meta["affine"], dtype=np.float64)
        write_nifti(seg_path, torch.as_tensor(volume)[0].detach().cpu().to(torch.uint8).numpy(), affine)
        points_path = write_points_file(
            self.output_dir,
            case,
            output["points"],
            output["class_probs"],
            self.class_names,
            image_file,
            volume.shape[1:],
            self.slice_axis,
        )
        self.written.append(seg_path)
        self.logger.info(f"wrote {seg_path} and {points_path}")
