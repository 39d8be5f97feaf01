# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""AI-SAM as a plain ``network(image) -> tensor`` module over 3D volumes, for tooling that calls a bundle's
``network_def`` directly: the Model Zoo's ``verify_net_in_out`` and ``ckpt_export``, ONNX export, and MONAI
Label's default inferer path."""

from __future__ import annotations

import torch

from aisam_monai.networks import AISAM, class_probabilities
from aisam_monai.transforms.intensity import to_model_input

__all__ = ["AISAMVolumeNet"]


class AISAMVolumeNet(AISAM):
    """
    :class:`AISAM` whose ``forward`` maps a volume ``(B, 1, H, W, D)`` to the class probabilities of the automatic
    mode (generated points, hard class gate) on the input grid; a batch of model-frame slices ``(B, 3, S, S)`` still
    takes :meth:`AISAM.forward` (prompts, dict output), so every AI-SAM consumer (the slice-wise inferers, the
    interactive predictor) works with it unchanged. It has the parameters of :class:`AISAM` under the same names:
    a checkpoint trained with :class:`AISAM` loads into it as is.

    Each slice along the last axis goes through :func:`~aisam_monai.transforms.to_model_input` (resize to
    ``S x S``, 3 channels, the backbone's normalisation), the model, and
    :func:`~aisam_monai.networks.class_probabilities` back to the slice grid (bilinear), as
    :class:`~aisam_monai.inferers.SliceVolumeInferer` does with ``resample="bilinear"``: the argmax of this output
    is that inferer's label volume.

    Args:
        slice_batch: slices per model call.
        gate: class gate, ``"hard"``, ``"soft"`` or ``"none"``.
        threshold: presence threshold of the hard gate.
        args, kwargs: those of :class:`AISAM`.

    Example::

        >>> net = AISAMVolumeNet(num_classes=4, sam_type="tiny", image_size=64).eval()
        >>> net(torch.rand(1, 1, 40, 32, 5)).shape
        torch.Size([1, 4, 40, 32, 5])
    """

    def __init__(self, *args, slice_batch: int = 8, gate: str = "hard", threshold: float = 0.5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slice_batch = slice_batch
        self.gate = gate
        self.threshold = threshold

    def forward(self, image: torch.Tensor, **prompts):  # type: ignore[override]
        """
        Args:
            image: ``(B, 1, H, W, D)`` volumes, intensities in [0, 1] (the bundle's preprocessing), slices along D;
                or ``(B, 3, S, S)`` normalised slices, with the ``prompts`` of :meth:`AISAM.forward`.

        Returns:
            ``(B, C, H, W, D)`` gated class probabilities (float32) for volumes; :meth:`AISAM.forward`'s dict for
            slices.
        """
        if image.ndim == 4:
            return super().forward(image, **prompts)
        if image.ndim != 5 or image.shape[1] != 1 or prompts:
            raise ValueError(
                f"image must be (B, 1, H, W, D) single-channel volumes (no prompts; clicks go through "
                f"ClickLabelInferer) or (B, 3, S, S) slices, got {tuple(image.shape)} and prompts {sorted(prompts)}."
            )
        h, w, depth = image.shape[-3:]
        volumes = []
        for volume in image[:, 0]:  # (H, W, D)
            parts = []
            for start in range(0, depth, self.slice_batch):
                slices = volume[..., start : start + self.slice_batch].permute(2, 0, 1).unsqueeze(1)
                image = to_model_input(slices, self.image_size, self.pixel_normalization == "sam")
                out = self.decode(self.encode(image))
                probs = class_probabilities(out["logits"], out["class_logits"], self.gate, self.threshold, size=(h, w))
                parts.append(probs)
            volumes.append(torch.cat(parts).permute(1, 2, 3, 0))  # (C, H, W, D)
        return torch.stack(volumes)
