# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The full AI-SAM training loss: segmentation + class presence + prompt heuristic.

AI-SAM (arXiv 2312.03119) trains with the prompt heuristic loss beside the segmentation objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch.nn.modules.loss import _Loss

from .heuristic import PromptHeuristicLoss
from .point import class_target

__all__ = ["AISAMLoss", "presence_from_labels"]


def presence_from_labels(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Multi-hot class presence ``(B, C)`` (background included) of a label map ``(B, 1, H, W)``."""
    return class_target(target, num_classes, target.shape[-2:]).amax((-2, -1))


class AISAMLoss(_Loss):
    """
    ``seg_weight * DiceCE(logits, label) + cls_weight * BCE(class_logits, presence)
    + heuristic_weight * PromptHeuristicLoss``.

    The segmentation term is MONAI's softmax ``DiceCELoss`` over all ``C`` channels (background included)
    on the low-resolution logits, against the label nearest-resized to that grid. Presence is the
    multi-hot of the label (background included) unless given.

    Args:
        num_classes: ``C``.
        seg_weight, cls_weight, heuristic_weight: term weights (1, 1, 1); 0 disables a term.
        lambda_dice, lambda_ce: weights inside ``DiceCELoss`` (1, 1).
        heuristic: the prompt heuristic loss (default: reference constants).
        prompt_heuristic: False trains without the prompt heuristic loss (the "w/o heuristic loss" row of the paper's
            Table 3, arXiv 2312.03119): it is not computed, and its parts are reported as 0.
    """

    def __init__(
        self,
        num_classes: int,
        seg_weight: float = 1.0,
        cls_weight: float = 1.0,
        heuristic_weight: float = 1.0,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        heuristic: PromptHeuristicLoss | None = None,
        prompt_heuristic: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.seg_weight, self.cls_weight, self.heuristic_weight = seg_weight, cls_weight, heuristic_weight
        self.seg = DiceCELoss(
            to_onehot_y=True, softmax=True, include_background=True, lambda_dice=lambda_dice, lambda_ce=lambda_ce
        )
        self.heuristic = heuristic or PromptHeuristicLoss()
        self.prompt_heuristic = prompt_heuristic

    def forward(
        self, outputs: dict, target: torch.Tensor, presence: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            outputs: an ``AISAM`` forward output (``logits``, ``class_logits``, ``point_weights``,
                ``point_features``).
            target: label map ``(B, 1, H, W)``, values in ``[0, C)``, at any resolution.
            presence: optional ``(B, C)`` multi-hot; computed from ``target`` when omitted.

        Returns:
            ``loss`` (the weighted total to back-propagate) and the detached parts ``seg``, ``cls``,
            ``point_correctness``, ``point_sharpness``, ``diversity``, ``heuristic`` (all 0 without the prompt
            heuristic loss).
        """
        logits = outputs["logits"]
        if target.ndim != 4 or target.shape[1] != 1 or target.shape[0] != logits.shape[0]:
            raise ValueError(
                f"target must be a (B, 1, H, W) label map for logits {tuple(logits.shape)}, got {tuple(target.shape)}."
            )
        if presence is None:
            presence = presence_from_labels(target, self.num_classes)
        low = F.interpolate(target.float(), size=logits.shape[-2:], mode="nearest-exact")
        parts = {"seg": self.seg(logits.float(), low)}
        zero = logits.new_zeros(())
        class_logits = outputs.get("class_logits")
        parts["cls"] = (
            F.binary_cross_entropy_with_logits(class_logits.float(), presence.float())
            if class_logits is not None
            else zero
        )
        if self.prompt_heuristic:
            terms = self.heuristic.terms(outputs["point_weights"].float(), outputs["point_features"].float(), target)
            parts.update(terms, heuristic=self.heuristic.combine(terms))
        else:
            parts.update(dict.fromkeys(("point_correctness", "point_sharpness", "diversity", "heuristic"), zero))
        total = (
            self.seg_weight * parts["seg"] + self.cls_weight * parts["cls"] + self.heuristic_weight * parts["heuristic"]
        )
        return {"loss": total, **{k: v.detach() for k, v in parts.items()}}
