# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Intensity transforms: the datalist's ``intensity`` entry to [0, 1], and SAM's pixel normalisation."""

from __future__ import annotations

from collections.abc import Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform, NormalizeIntensityd, ScaleIntensityRanged, ScaleIntensityRangePercentilesd

__all__ = ["SAM_PIXEL_MEAN", "SAM_PIXEL_STD", "INTENSITY_KINDS", "SAMNormalized", "intensity_transform"]

SAM_PIXEL_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
SAM_PIXEL_STD = (58.395 / 255, 57.12 / 255, 57.375 / 255)
INTENSITY_KINDS = ("per_volume", "ct_window", "range")


class SAMNormalized(NormalizeIntensityd):
    """
    SAM's RGB normalisation rescaled for [0, 1] data, channel-wise: ``(x - m/255) / (s/255)`` with
    ``m = (123.675, 116.28, 103.53)`` and ``s = (58.395, 57.12, 57.375)``.

    Args:
        keys: keys of ``(3, H[, W, D])`` images with intensities in [0, 1] (grey replicated to 3 channels).
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(self, keys: KeysCollection = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(
            keys,
            subtrahend=SAM_PIXEL_MEAN,
            divisor=SAM_PIXEL_STD,
            channel_wise=True,
            allow_missing_keys=allow_missing_keys,
        )


def intensity_transform(intensity: Mapping, keys: KeysCollection = "image") -> MapTransform:
    """
    The transform mapping intensities to [0, 1] as a datalist's ``intensity`` entry prescribes.

    Args:
        intensity: one of
            ``{"kind": "per_volume", "lower": p_lo, "upper": p_hi}``: per-volume percentiles ``p_lo``/``p_hi``
            (defaults 0.5 / 99.5) to 0 / 1, clipped (MRI stored in scanner units);
            ``{"kind": "ct_window", "a_min": lo, "a_max": hi}``: HU window to [0, 1], clipped (CT);
            ``{"kind": "range", "a_min": lo, "a_max": hi}``: data already in ``[lo, hi]`` mapped to [0, 1], clipped.
        keys: image keys.

    Raises:
        ValueError: unknown kind or missing bounds.
    """
    kind = intensity.get("kind")
    if kind == "per_volume":
        return ScaleIntensityRangePercentilesd(
            keys, lower=float(intensity.get("lower", 0.5)), upper=float(intensity.get("upper", 99.5)),
            b_min=0.0, b_max=1.0, clip=True,
        )  # fmt: skip
    if kind in ("ct_window", "range"):
        if "a_min" not in intensity or "a_max" not in intensity:
            raise ValueError(f"intensity {dict(intensity)}: kind {kind!r} needs 'a_min' and 'a_max'.")
        return ScaleIntensityRanged(
            keys, a_min=float(intensity["a_min"]), a_max=float(intensity["a_max"]), b_min=0.0, b_max=1.0, clip=True
        )
    raise ValueError(f"intensity {dict(intensity)}: 'kind' must be one of {INTENSITY_KINDS}.")
