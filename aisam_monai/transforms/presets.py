# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Transform chains built from a datalist's metadata, so bundles call one function instead of spelling the
chain out in YAML.

* :func:`train_transforms`: datalist item -> random 2D slices ready for AI-SAM (§3.3);
* :func:`slice_transforms`: its per-slice part (augmentation, resize, channels, normalisation, presence);
* :func:`eval_transforms`: datalist item -> whole volume and label in [0, 1] on the native grid (the
  slice-wise inferer resizes each batch of slices itself);
* :func:`inference_transforms`: the same for an image alone; its output can be inverted with ``Invertd``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.transforms import (
    Compose,
    CopyItemsd,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    Orientationd,
    RepeatChanneld,
    Resized,
)

from aisam_monai.transforms.augment import RandIntegerRotated, RandRot90Flipd, RandScaleCropd
from aisam_monai.transforms.intensity import SAMNormalized, intensity_transform
from aisam_monai.transforms.label_promptsd import ClassPresenced, LabelBoxesd, RandLabelPointsd
from aisam_monai.transforms.slicing import RandSliceSampled

__all__ = ["train_transforms", "slice_transforms", "eval_transforms", "inference_transforms"]


def _load(keys: Sequence[str], orientation: str | None) -> list:
    chain = [LoadImaged(keys, image_only=True), EnsureChannelFirstd(keys)]
    if orientation is not None:
        chain.append(Orientationd(keys, axcodes=orientation, labels=(("L", "R"), ("P", "A"), ("I", "S"))))
    return chain


def train_transforms(
    image_size: int,
    num_classes: int,
    intensity: Mapping,
    *,
    slices_per_volume: int = 4,
    foreground_prob: float = 0.75,
    slice_axis: int = 2,
    augment: bool = True,
    aug_prob: float = 0.5,
    flips: bool = True,
    sam_normalize: bool = True,
    lowres_label: bool = False,
    num_points: int = 0,
    boxes: bool = False,
    load: bool = True,
) -> Compose:
    """
    Datalist items (``image``/``label`` NIfTI paths, or loaded ``(1, H, W, D)`` arrays with ``load=False``) to
    random training slices for AI-SAM.

    Chain: load, channel first, intensity to [0, 1] (``intensity``), ``slices_per_volume`` slices along
    ``slice_axis`` (``foreground_prob``: chance of drawing among slices with foreground), the §3.3
    augmentation (three independent steps, each with ``aug_prob``), resize to ``S x S`` (image bilinear, label
    nearest), grey to 3 channels, SAM normalisation, targets and prompts from the resized label.

    Args:
        image_size: model input side ``S``.
        num_classes: ``C``, background included.
        intensity: the datalist's ``intensity`` entry (see :func:`~aisam_monai.transforms.intensity_transform`).
        slices_per_volume: slices drawn per volume (the chain returns a list of that many items).
        foreground_prob: probability of drawing a slice among those with foreground.
        slice_axis: spatial axis of the slices (the datalist's ``slice_axis``).
        augment: apply the §3.3 augmentation.
        aug_prob: probability of each augmentation step.
        flips: include the rot90-and-flip step; without it the augmentation keeps the anatomy's orientation
            (rotations within +-20 degrees and scale-crops only), for structures told apart by their side.
        sam_normalize: apply SAM's pixel normalisation (docs/architecture.md: why inputs are normalised).
        lowres_label: also emit ``label_lowres`` ``(1, S/4, S/4)`` (``nearest-exact`` from the ``S`` label).
        num_points: when > 0, emit ``points (C, N, 2)`` and ``point_labels (C, N)`` with ``N = num_points``.
        boxes: emit ``boxes (C, 4)``.
        load: start with ``LoadImaged`` + ``EnsureChannelFirstd`` (False: items already hold channel-first volumes).

    Returns:
        a ``Compose`` giving, per volume, a list of dicts with ``image`` float32 ``(3, S, S)``, ``label`` float32
        ``(1, S, S)`` (integer values), ``multi_hot`` float32 ``(C,)``, ``slice_index`` and the optional keys;
        every other key of the item (e.g. ``case``) is passed through.
    """
    keys = ["image", "label"]
    chain = _load(keys, None) if load else []
    chain += [
        intensity_transform(intensity, "image", in_place=load),
        EnsureTyped(keys, dtype=None, track_meta=True),
        RandSliceSampled(
            keys, "label", spatial_axis=slice_axis, num_samples=slices_per_volume, foreground_prob=foreground_prob
        ),
    ]
    chain += _slice_chain(
        image_size, num_classes, augment, aug_prob, flips, sam_normalize, lowres_label, num_points, boxes
    )
    return Compose(chain)


def slice_transforms(
    image_size: int,
    num_classes: int,
    *,
    augment: bool = True,
    aug_prob: float = 0.5,
    flips: bool = True,
    sam_normalize: bool = True,
) -> Compose:
    """
    The part of :func:`train_transforms` after the slice sampling: one ``(1, H, W)`` ``image`` (in [0, 1]) and
    ``label`` slice to ``image`` float32 ``(3, S, S)``, ``label`` float32 ``(1, S, S)`` and ``multi_hot`` float32
    ``(C,)``, with the same augmentation; the arguments are those of :func:`train_transforms`. The embedding cache
    (:class:`~aisam_monai.engines.EmbeddingCache`) builds its entries with it.
    """
    return Compose(_slice_chain(image_size, num_classes, augment, aug_prob, flips, sam_normalize, False, 0, False))


def _slice_chain(
    image_size: int,
    num_classes: int,
    augment: bool,
    aug_prob: float,
    flips: bool,
    sam_normalize: bool,
    lowres_label: bool,
    num_points: int,
    boxes: bool,
) -> list:
    keys = ["image", "label"]
    chain = []
    if augment:
        chain += [RandRot90Flipd(keys, prob=aug_prob)] if flips else []
        chain += [RandIntegerRotated(keys, prob=aug_prob), RandScaleCropd(keys, prob=aug_prob)]
    chain.append(Resized(keys, spatial_size=(image_size, image_size), mode=("bilinear", "nearest")))
    if lowres_label:
        low = image_size // 4
        chain += [
            CopyItemsd("label", names="label_lowres"),
            Resized("label_lowres", spatial_size=(low, low), mode="nearest-exact"),
        ]
    chain.append(RepeatChanneld("image", repeats=3))
    if sam_normalize:
        chain.append(SAMNormalized("image"))
    chain.append(ClassPresenced("label", num_classes))
    if boxes:
        chain.append(LabelBoxesd("label", num_classes))
    if num_points > 0:
        chain.append(RandLabelPointsd("label", num_classes, num_points))
    chain.append(EnsureTyped(keys + (["label_lowres"] if lowres_label else []), dtype=torch.float32, track_meta=False))
    return chain


def eval_transforms(intensity: Mapping, *, orientation: str | None = None, load: bool = True) -> Compose:
    """
    Datalist items to whole volumes for evaluation: ``image`` and ``label`` ``(1, H, W, D)`` MetaTensors on the
    native grid, image in [0, 1]. Nothing is resized, so predictions on this grid are in the input's space;
    ``Invertd(keys="pred", transform=<this>, orig_keys="image")`` undoes the optional reorientation and the
    channel axis before ``SaveImaged``.

    Args:
        intensity: the datalist's ``intensity`` entry.
        orientation: axis codes for ``Orientationd`` (e.g. ``"RAS"``), or None to keep the stored axes. The
            prepared datasets store the acquisition slice axis last (``slice_axis`` 2); reorienting an oblique
            stack can move it, so keep None unless the slice axis is adjusted accordingly.
        load: start with ``LoadImaged`` + ``EnsureChannelFirstd``.
    """
    keys = ["image", "label"]
    chain = _load(keys, orientation) if load else []
    scale = intensity_transform(intensity, "image", in_place=load)  # in place on freshly loaded volumes: no copies
    return Compose(chain + [scale, EnsureTyped(keys, dtype=None, track_meta=True)])


def inference_transforms(intensity: Mapping, *, orientation: str | None = None, load: bool = True) -> Compose:
    """:func:`eval_transforms` for an ``image`` alone (no label); invertible with ``Invertd`` for ``SaveImaged``."""
    chain = _load(["image"], orientation) if load else []
    scale = intensity_transform(intensity, "image", in_place=load)
    return Compose(chain + [scale, EnsureTyped("image", dtype=None, track_meta=True)])
