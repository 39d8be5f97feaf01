# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Ignite evaluator that segments NIfTI files slab by slab and writes the labels and the generated points."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

import torch
from monai.engines import Evaluator
from monai.engines.utils import IterationEvents

from aisam_monai.inferers.streaming import StreamingNiftiInferer
from aisam_monai.io.errors import reported
from aisam_monai.io.nifti import case_stem
from aisam_monai.io.points_record import write_points_file

__all__ = ["StreamingEvaluator"]


class StreamingEvaluator(Evaluator):
    """
    MONAI ``Evaluator`` whose iterations are NIfTI files: each item's ``image`` path is segmented by a
    :class:`~aisam_monai.inferers.StreamingNiftiInferer` into ``{case}{postfix}.nii.gz`` in ``output_dir`` (uint8
    labels on the input grid, written atomically) with ``{case}_points.json`` beside it (the generated points,
    :func:`~aisam_monai.io.points_record.points_record`) — the outputs of ``AISAMEvaluator`` + ``PredictionWriter``,
    with host memory bounded by one slab instead of growing with depth. Handlers attach as usual (a
    ``CheckpointLoader`` at ``STARTED``, ``StatsHandler``, ...); ``engine.state.output`` holds ``image`` (the
    path), ``pred`` (the written file), ``points`` and ``class_probs``.

    Args:
        device: device of the network.
        val_data_loader: items ``{"image": path}``: an iterable, or a map-style dataset (a MONAI ``Dataset``
            without transform) whose items are taken in order.
        network: an AISAM.
        inferer: the streaming inferer.
        output_dir: folder of the outputs.
        class_names: ``C`` class names, background first (for the points file).
        postfix: file name postfix of the segmentation.
        val_handlers: Ignite handlers (with ``attach``).
        amp: bfloat16 autocast on CUDA.
        amp_dtype: autocast dtype.
    """

    def __init__(
        self,
        device: torch.device | str,
        val_data_loader: Iterable | Sequence,
        network: torch.nn.Module,
        inferer: StreamingNiftiInferer,
        output_dir: str,
        class_names: Sequence[str],
        postfix: str = "_seg",
        val_handlers: Sequence | None = None,
        amp: bool = False,
        amp_dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        if not isinstance(val_data_loader, Iterable):  # a map-style Dataset: its items, in order
            val_data_loader = [val_data_loader[i] for i in range(len(val_data_loader))]
        super().__init__(device=device, val_data_loader=val_data_loader, val_handlers=val_handlers, decollate=False)
        self.network = network
        self.inferer = inferer
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.postfix = postfix
        self.autocast = amp
        self.amp_dtype = amp_dtype
        self.logger = logging.getLogger("aisam_monai.writer")
        self.write_error: OSError | None = None

    def run(self, global_epoch: int = 1) -> None:  # type: ignore[override]
        """
        Segment every item. A failed write (a full disk) stops the run and is raised as one reported line
        (:func:`~aisam_monai.io.errors.reported`) once the engine has stopped, outside Ignite's exception handlers
        (which would log it again with a traceback); the atomic writer left that output as it was.
        """
        self.write_error = None
        super().run(global_epoch)
        if self.write_error is not None:
            raise reported(self.write_error) from None

    def _iteration(self, engine: StreamingEvaluator, batchdata: dict) -> dict:  # type: ignore[override]
        image = str(batchdata["image"])
        case = case_stem(image)
        seg_path = os.path.join(self.output_dir, f"{case}{self.postfix}.nii.gz")
        device = torch.device(engine.state.device)
        with engine.mode(self.network), torch.no_grad():
            with torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.autocast and device.type == "cuda"):
                try:
                    result = self.inferer(image, seg_path, self.network)
                except OSError as e:  # a full disk: stop, and report it after the run (see ``run``)
                    self.write_error = e
                    engine.terminate()
                    return {}
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        points_path = write_points_file(
            self.output_dir,
            case,
            result["points"],
            result["class_probs"],
            self.class_names,
            image,
            result["shape"][:3],
            self.inferer.inferer.spatial_dim,
        )
        self.logger.info(f"wrote {seg_path} and {points_path}")
        engine.state.output = {
            "image": image,
            "pred": seg_path,
            "points": result["points"],
            "class_probs": result["class_probs"],
        }
        return engine.state.output
