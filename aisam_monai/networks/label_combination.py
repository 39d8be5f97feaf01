# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Combining AI-SAM's class masks into a label map (arXiv 2312.03119), on the mask grid or the slice's own grid.

The one label path of the bundles' :class:`~aisam_monai.inferers.SliceVolumeInferer`, of the interactive
predictor and of training metrics; the way back from the decoder's mask grid to the slice grid
(:func:`resize_logits`) is part of it. Slice <-> model geometry of points, boxes and images is in
:mod:`aisam_monai.transforms.slice_geometry`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["GATES", "class_gate", "class_probabilities", "combine_class_masks", "resize_logits"]

GATES = ("hard", "soft", "none")


def class_gate(
    class_logits: torch.Tensor | None,
    num_classes: int,
    gate: str = "hard",
    threshold: float = 0.5,
    class_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    Per-class gate ``g (B, C)`` with ``g_0 = 1`` (AI-SAM, arXiv 2312.03119, combining the class masks):
    ``class_labels`` when given, else ``1[sigmoid > threshold]`` (``"hard"``), ``sigmoid`` (``"soft"``), or ones
    (``"none"`` or no classifier).
    """
    if gate not in GATES:
        raise ValueError(f"gate must be one of {GATES}, got {gate!r}.")
    if class_labels is not None:
        g = class_labels.float().clone()
    elif class_logits is None or gate == "none":
        return torch.ones(1, num_classes)
    else:
        g = torch.sigmoid(class_logits.float())
        if gate == "hard":
            g = (g > threshold).float()
    g[:, 0] = 1.0
    return g


def class_probabilities(
    logits: torch.Tensor,
    class_logits: torch.Tensor | None = None,
    gate: str = "hard",
    threshold: float = 0.5,
    class_labels: torch.Tensor | None = None,
    size: tuple[int, int] | None = None,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    Gated class probabilities ``softmax_c(Z) * g_c`` (arXiv 2312.03119, combining the class masks), whose argmax
    over the classes is :func:`combine_class_masks`; the arguments are its own.

    Returns:
        ``(B, C, H, W)`` float32 (``(h, w)`` without ``size``).
    """
    g = class_gate(class_logits, logits.shape[1], gate, threshold, class_labels).to(logits.device)
    probs = logits.float().softmax(1) * g[:, :, None, None]
    if size is not None:
        probs = resize_logits(probs.contiguous(memory_format=torch.channels_last), size)
    if allowed is not None:
        probs = probs.masked_fill(~allowed, 0.0)
    return probs


def combine_class_masks(
    logits: torch.Tensor,
    class_logits: torch.Tensor | None = None,
    gate: str = "hard",
    threshold: float = 0.5,
    class_labels: torch.Tensor | None = None,
    size: tuple[int, int] | None = None,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    Label map from class mask logits: ``argmax_c softmax_c(Z) * g_c`` (arXiv 2312.03119, combining the class masks).

    With ``size``, the gated probabilities are resized bilinearly to the slice grid before the argmax
    (:func:`resize_logits`, classes innermost in memory: the resize and
    argmax run about 3x faster on CPU), which gives smooth contours on the slice's own grid. This is the one
    label path of the bundles' :class:`~aisam_monai.inferers.SliceVolumeInferer` and of the interactive
    predictor's ``generalized`` decode path (docs/interactive.md).

    Args:
        logits: ``(B, C, h, w)`` mask logits.
        class_logits: ``(B, C)`` presence logits or None.
        gate: ``"hard"`` (threshold, the test rule), ``"soft"`` (sigmoid) or ``"none"``.
        threshold: presence threshold of the hard gate.
        class_labels: ``(B, C)`` multi-hot replacing the classifier gate (the ``gt_label`` evaluation prompts).
        size: ``(H, W)`` output grid; None keeps the mask grid ``(h, w)``.
        allowed: optional ``(B, C, H, W)`` bool on the output grid: where each class may be (e.g. inside a box).

    Returns:
        ``(B, 1, H, W)`` int64 labels.
    """
    probs = class_probabilities(logits, class_logits, gate, threshold, class_labels, size, allowed)
    return probs.argmax(1, keepdim=True)


def resize_logits(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """
    Per-class maps on the decoder's mask grid ``(B, C, h, w)`` (logits or probabilities) -> ``(B, C, H, W)`` on
    the slice grid (bilinear, ``align_corners=False``), float32; the memory format of ``maps`` is kept.
    """
    return F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=False)
