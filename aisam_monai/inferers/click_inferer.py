# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The bundle inferer MONAI Label calls: ``inferer(image, network)`` -> label volume, with the request's clicks."""

from __future__ import annotations

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer

from aisam_monai.inferers.volume_inferer import SliceVolumeInferer
from aisam_monai.interactive.clicks import CLICKS_META_KEY, volume_prompts

__all__ = ["ClickLabelInferer"]


class ClickLabelInferer(Inferer):
    """
    A :class:`SliceVolumeInferer` that returns the label volume alone and takes its prompts from the clicks that
    :class:`~aisam_monai.interactive.Clicksd` attached to the image's metadata: the ``inferer(inputs, network)``
    contract of MONAI Label's bundle tasks, which pass the image and nothing else. Without clicks the result is the
    automatic segmentation; with clicks, the clicked slices are refined as in the interactive predictor.

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
            shape = inputs.shape[-3:]
            prompts = volume_prompts(clicks, shape, model.num_classes, self.inferer.spatial_dim)
        return self.inferer(inputs, network, prompts=prompts)["pred"]
