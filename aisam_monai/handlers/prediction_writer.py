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

from aisam_monai.handlers.metric_report import batch_case_names
from aisam_monai.io.nifti import write_nifti
from aisam_monai.io.points_record import write_points_file

__all__ = ["PredictionWriter"]


class PredictionWriter:
    """
    After each evaluator iteration, write ``{case}{postfix}.nii.gz`` (the ``pred`` label volume, uint8, with the
    affine of its metadata: the input's when preprocessing has no spatial transform) and ``{case}_points.json``
    (:func:`~aisam_monai.io.points_record.points_record`) in ``output_dir``, both atomically. Volumes are written one
    per iteration (batch 1).

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
