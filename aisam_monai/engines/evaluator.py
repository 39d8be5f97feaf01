# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Ignite evaluator that segments whole volumes with the sliding-slice inferer."""

from __future__ import annotations

import torch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.utils.enums import CommonKeys as Keys

from aisam_monai.inferers import SliceVolumeInferer

__all__ = ["AISAMEvaluator"]


class AISAMEvaluator(SupervisedEvaluator):
    """
    ``SupervisedEvaluator`` over whole 3D volumes (batch size 1) with a
    :class:`~aisam_monai.inferers.SliceVolumeInferer`.

    ``engine.state.output`` holds ``image``, ``label`` (when the batch has one), ``pred`` (labels on the input
    grid, input layout), ``pred_lowres`` and ``label_lowres`` (the ``S/4`` evaluation grid of the ``aisam``
    protocol), ``points`` (generated points in input voxel coordinates) and ``class_probs``. The label reaches the
    inferer only for the label-driven evaluation modes; per-volume user prompts may come in the batch under
    ``prompts_key``. With ``amp=True`` on CUDA, inference runs under bfloat16 autocast. Batches are not decollated.

    Args:
        args, kwargs: those of ``monai.engines.SupervisedEvaluator``; ``inferer`` must be a
            ``SliceVolumeInferer``; ``decollate`` defaults to ``False``.
        prompts_key: optional batch key of a prompt dictionary (see ``SliceVolumeInferer.__call__``).
        amp_dtype: autocast dtype on CUDA.
    """

    def __init__(self, *args, prompts_key: str = "prompts", amp_dtype: torch.dtype = torch.bfloat16, **kwargs) -> None:
        kwargs.setdefault("decollate", False)
        amp = kwargs.pop("amp", False)
        super().__init__(*args, **kwargs)  # MONAI's amp path (float16 + gradient scaler) stays off
        self.autocast = amp
        if not isinstance(self.inferer, SliceVolumeInferer):
            raise TypeError(f"AISAMEvaluator needs a SliceVolumeInferer, got {type(self.inferer).__name__}.")
        self.prompts_key = prompts_key
        self.amp_dtype = amp_dtype

    def _iteration(self, engine: AISAMEvaluator, batchdata: dict) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        device = torch.device(engine.state.device)
        image = batchdata[Keys.IMAGE].to(device, non_blocking=engine.non_blocking)
        label = batchdata.get(Keys.LABEL)
        label = None if label is None else label.to(device, non_blocking=engine.non_blocking)
        prompts = batchdata.get(self.prompts_key)
        engine.state.output = {Keys.IMAGE: image, Keys.LABEL: label}
        with engine.mode(engine.network):
            with torch.autocast(device.type, dtype=self.amp_dtype, enabled=engine.autocast and device.type == "cuda"):
                result = engine.inferer(image, engine.network, label=label, prompts=prompts)
        engine.state.output.update(result)
        engine.state.output[Keys.PRED] = result["pred"]
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
