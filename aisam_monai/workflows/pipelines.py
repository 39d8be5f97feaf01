# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Preprocessing pipelines of the bundles: 2D training slices from 3D volumes, and whole volumes."""

from __future__ import annotations

from collections.abc import Mapping

from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    NormalizeIntensityd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandRotate90d,
    RandRotated,
    RepeatChanneld,
    Resized,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
    SqueezeDimd,
)

from aisam_monai.inferers.volume_inferer import SAM_PIXEL_MEAN, SAM_PIXEL_STD

__all__ = ["intensity_transform", "train_transforms", "volume_transforms"]


def intensity_transform(intensity: Mapping, keys: str = "image") -> MapTransform:
    """
    Map intensities to [0, 1] as the datalist's ``intensity`` entry says: ``{"kind": "range", "a_min", "a_max"}``
    (clipped linear window) or ``{"kind": "per_volume", "lower", "upper"}`` (per-volume percentiles, clipped).
    """
    kind = intensity.get("kind")
    if kind == "range":
        return ScaleIntensityRanged(keys, a_min=intensity["a_min"], a_max=intensity["a_max"], b_min=0.0, b_max=1.0, clip=True)
    if kind == "per_volume":
        return ScaleIntensityRangePercentilesd(
            keys, lower=intensity["lower"], upper=intensity["upper"], b_min=0.0, b_max=1.0, clip=True
        )
    raise ValueError(f"datalist intensity must have kind 'range' or 'per_volume', got {dict(intensity)}.")


def volume_transforms(intensity: Mapping, with_label: bool = True) -> Compose:
    """Whole volumes for evaluation and inference: load, channel first, intensity to [0, 1]; no spatial change."""
    keys = ["image", "label"] if with_label else ["image"]
    return Compose(
        [
            LoadImaged(keys, image_only=True),
            EnsureChannelFirstd(keys),
            intensity_transform(intensity),
            EnsureTyped(keys, dtype=None, track_meta=True),
        ]
    )


def train_transforms(
    intensity: Mapping,
    image_size: int,
    slices_per_volume: int = 4,
    foreground_ratio: float = 3.0,
    slice_axis: int = 2,
    augment: bool = True,
    normalize: bool = True,
) -> Compose:
    """
    Random 2D training slices of 3D volumes, ready for AI-SAM.

    Load, intensity to [0, 1], ``slices_per_volume`` slices per volume (``foreground_ratio`` : 1 odds of a slice
    through a foreground voxel), optional augmentation (rot90, flip, rotation up to 20°, nearest for the
    label), resize to ``image_size`` (bilinear image, nearest label), grey to 3 channels, SAM normalisation.

    Returns items with ``image (3, S, S)`` and ``label (1, S, S)``.
    """
    keys = ["image", "label"]
    roi = [-1, -1, -1]
    roi[slice_axis] = 1
    transforms = [
        LoadImaged(keys, image_only=True),
        EnsureChannelFirstd(keys),
        intensity_transform(intensity),
        RandCropByPosNegLabeld(
            keys, label_key="label", spatial_size=roi, pos=foreground_ratio, neg=1.0, num_samples=slices_per_volume
        ),
        SqueezeDimd(keys, dim=slice_axis + 1),
    ]
    if augment:
        transforms += [
            RandRotate90d(keys, prob=0.5, max_k=3),
            RandFlipd(keys, prob=0.5, spatial_axis=0),
            RandRotated(keys, range_x=0.35, prob=0.5, mode=("bilinear", "nearest"), padding_mode="zeros"),
        ]
    transforms += [Resized(keys, spatial_size=(image_size, image_size), mode=("bilinear", "nearest-exact"))]
    transforms += [RepeatChanneld("image", repeats=3)]
    if normalize:
        transforms += [NormalizeIntensityd("image", subtrahend=SAM_PIXEL_MEAN, divisor=SAM_PIXEL_STD, channel_wise=True)]
    transforms += [EnsureTyped(keys, track_meta=False)]
    return Compose(transforms)
