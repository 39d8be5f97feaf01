# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""The mask decoder's side of interactive AI-SAM: edits -> model-frame prompts, decoder output -> slice result.

The two :data:`DECODE_PATHS` (docs/interactive.md, "Two ways to use edited points") and the per-slice results of
:class:`~aisam_monai.interactive.AISAMPredictor`. Geometry and the label combination are the bundles' own
(:mod:`aisam_monai.transforms.slice_geometry`, :mod:`aisam_monai.networks.label_combination`), so an unedited
slice gets the labels of :class:`~aisam_monai.inferers.SliceVolumeInferer` voxel for voxel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from aisam_monai.interactive.edit_state import EditState, group_points
from aisam_monai.networks import class_gate, combine_class_masks, resize_logits
from aisam_monai.networks.ai_prompter import BOX_FILL
from aisam_monai.transforms.slice_geometry import box_mask, box_to_model, pixel_to_model

__all__ = ["DECODE_PATHS", "AutoResult", "SlicePrediction", "decoder_prompts", "slice_point_mode", "slice_prediction"]

DECODE_PATHS = ("generalized", "point")
"""How edited points reach the mask decoder. ``generalized`` (default): the model's generalized point tokens plus
appended user points, classes combined by softmax x class gate (the evaluation path, so an unedited slice gives
exactly the automatic result). ``point``: the authors' demo notebook (docs/interactive.md, two ways to use edited
points): every point, generated ones included, goes through SAM's ordinary point encoder; each class's mask is
``logit > 0`` (sigmoid > 0.5), no softmax across classes, no classifier."""


class AutoResult(NamedTuple):
    """
    The model's automatic output for one slice, before edits.

    Attributes:
        points: ``(C, Np, 2)`` generated points ``(x, y)`` in slice pixels.
        presence: ``(C,)`` classifier presence probabilities (1 for the background; all 1 without a classifier).
    """

    points: torch.Tensor
    presence: torch.Tensor


@dataclass
class SlicePrediction:
    """
    Result for one slice, on the slice's own pixel grid ``H x W``.

    Attributes:
        labels: ``(H, W)`` int64 label map.
        masks: ``(C, H, W)`` bool mask of every class (disjoint on the ``generalized`` decode path, possibly
            overlapping on the ``point`` path; ``masks[0]`` is where no foreground class is).
        presence: ``(C,)`` classifier presence probabilities (1 for the background; all 1 without a classifier).
        present: ``(C,)`` bool classes allowed in the result: the classifier's decision (``generalized``) or all
            classes (``point``), with the user's declarations applied.
        points: ``(C, K, 2)`` prompt points ``(x, y)`` grouped by class, padded.
        point_labels: ``(C, K)``: 1 positive, 0 negative, -1 padding (the layout of
            :func:`aisam_monai.visualize.plot_slices`).
        point_ids: ``(C, K)`` ids for :meth:`~aisam_monai.interactive.AISAMPredictor.move_point` /
            ``delete_point``, -1 padding.
        point_generated: ``(C, K)`` True for the model's generated points.
    """

    labels: torch.Tensor
    masks: torch.Tensor
    presence: torch.Tensor
    present: torch.Tensor
    points: torch.Tensor
    point_labels: torch.Tensor
    point_ids: torch.Tensor
    point_generated: torch.Tensor


def slice_point_mode(decode_path: str, edits: EditState, slice_index: int) -> str:
    """
    The model's ``point_mode`` for a slice: ``"generalized"`` on that decode path until a generated point of the
    slice is moved or deleted, then (and always on the ``point`` path) ``"none"``: every point as a pixel point.
    """
    slice_edits = edits.of(slice_index)
    return "generalized" if decode_path == "generalized" and not (slice_edits.moved or slice_edits.deleted) else "none"


def decoder_prompts(
    edits: EditState,
    slices: list[int],
    auto: Mapping[int, AutoResult],
    point_mode: str,
    image_size: int,
    device: torch.device | str = "cpu",
) -> tuple[dict, torch.Tensor | None]:
    """
    Model-frame decoder arguments for the edited ``slices`` decoded with ``point_mode`` (generated points included
    as pixel points only for ``"none"``), and their boxes in slice pixels ``(B, C, 4)`` (None without).

    Args:
        edits: the edit state.
        slices: slice indices, the batch ``B``.
        auto: the automatic result of each slice (its generated points).
        point_mode: the model's ``"generalized"`` or ``"none"`` (see :func:`slice_point_mode`).
        image_size: model input side ``S``.
        device: where the model runs (the prompts are put there).
    """
    h, w, _ = edits.shape
    num_classes = edits.num_classes
    keep = (lambda p: True) if point_mode == "none" else (lambda p: not p.generated)
    grouped = [
        group_points([(i, p) for i, p in edits.slice_points(z, auto[z].points) if keep(p)], num_classes) for z in slices
    ]
    k = max(g[0].shape[1] for g in grouped)
    points = torch.stack([F.pad(g[0], (0, 0, 0, k - g[0].shape[1])) for g in grouped])
    labels = torch.stack([F.pad(g[1], (0, k - g[1].shape[1]), value=-1) for g in grouped])
    boxes = torch.full((len(slices), num_classes, 4), -1.0)
    for i, z in enumerate(slices):
        for c, box in edits.of(z).boxes.items():
            boxes[i, c] = torch.tensor(box)
    prompts = {"point_mode": point_mode}
    if bool((labels >= 0).any()):
        prompts["points"] = pixel_to_model(points, (h, w), image_size).to(device)
        prompts["point_labels"] = labels.to(device)
    has_box = bool((boxes >= 0).any())
    if has_box:
        prompts["boxes"] = box_to_model(boxes, (h, w), image_size).to(device)
    return prompts, boxes if has_box else None


def slice_prediction(
    out: Mapping,
    j: int,
    edits: EditState,
    slice_index: int,
    auto: AutoResult,
    decode_path: str,
    threshold: float = 0.5,
    pixel_boxes: torch.Tensor | None = None,
) -> SlicePrediction:
    """
    A slice's result from entry ``j`` of a decoder output, on the slice's pixel grid.

    Args:
        out: the decoder output (``logits (B, C, h, w)``, ``class_logits (B, C)`` or None).
        j: the slice's entry in ``out``.
        edits: the edit state (the slice's points and class declarations).
        slice_index: the slice.
        auto: the slice's automatic result (generated points, presence).
        decode_path: one of :data:`DECODE_PATHS`.
        threshold: presence threshold of the classifier gate (``generalized``).
        pixel_boxes: ``(C, 4)`` the slice's boxes in slice pixels (-1: none), cut on the slice grid.
    """
    h, w, _ = edits.shape
    num_classes = edits.num_classes
    logits = out["logits"][j : j + 1].cpu()  # (1, C, h, w) on the mask grid
    inside = None if pixel_boxes is None else box_mask(pixel_boxes[None], (h, w))  # (1, C, H, W)
    class_logits = out.get("class_logits")
    gate = "hard" if decode_path == "generalized" else "none"
    class_logits = None if class_logits is None else class_logits[j : j + 1].cpu()
    present = class_gate(class_logits, num_classes, gate, threshold).bool()[0]
    for c, flag in edits.of(slice_index).presence.items():
        present[c] = flag
    present[0] = True
    if decode_path == "generalized":
        labels = combine_class_masks(logits, class_labels=present[None].float(), size=(h, w), allowed=inside)[0, 0]
        masks = F.one_hot(labels, num_classes).permute(2, 0, 1).bool()
    else:  # the demo: each class's own logit > 0 on the slice grid
        logits = resize_logits(logits, (h, w))
        if inside is not None:
            logits = logits.masked_fill(~inside, BOX_FILL)
        fg = (logits[0, 1:] > 0) & present[1:, None, None]
        labels = torch.where(fg.any(0), logits[0, 1:].masked_fill(~fg, float("-inf")).argmax(0) + 1, 0)
        masks = torch.cat([(labels == 0)[None], fg])
    points, point_labels, point_ids, generated = group_points(edits.slice_points(slice_index, auto.points), num_classes)
    return SlicePrediction(labels, masks, auto.presence, present, points, point_labels, point_ids, generated)
