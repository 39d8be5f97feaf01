# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Intensity transforms: the datalist's ``intensity`` entry to [0, 1], and SAM's pixel normalisation."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, NormalizeIntensityd
from monai.transforms.utils_pytorch_numpy_unification import percentile
from monai.utils import convert_to_tensor

from aisam_monai.transforms.slice_geometry import resize_to_model

__all__ = [
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "INTENSITY_KINDS",
    "SAMNormalized",
    "ScaleToUnitd",
    "intensity_transform",
    "to_model_input",
]

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


def to_model_input(slices: torch.Tensor, image_size: int, normalize: bool = True) -> torch.Tensor:
    """
    Slices in [0, 1] -> the model's input: resized to ``S x S`` (:func:`~aisam_monai.transforms.slice_geometry.
    resize_to_model`), grey replicated to 3 channels and, with ``normalize``, SAM's pixel mean/std applied (the
    values of :class:`SAMNormalized`). The one slice-to-model path of the inferer and the interactive predictor.

    Args:
        slices: ``(B, 1, H, W)`` intensities in [0, 1].
        image_size: model input side ``S``.
        normalize: apply SAM's pixel mean/std.

    Returns:
        ``(B, 3, S, S)`` float32.
    """
    if slices.ndim != 4 or slices.shape[1] != 1:
        raise ValueError(f"slices must have shape (B, 1, H, W), got {tuple(slices.shape)}.")
    x = resize_to_model(slices, image_size).expand(-1, 3, -1, -1)
    if normalize:
        x = (x - x.new_tensor(SAM_PIXEL_MEAN).view(1, 3, 1, 1)) / x.new_tensor(SAM_PIXEL_STD).view(1, 3, 1, 1)
    return x


class ScaleToUnitd(MapTransform):
    """
    Map intensities to [0, 1], clipped: ``clip((x - lo) / (hi - lo), 0, 1)``, with fixed bounds ``lo = a_min``,
    ``hi = a_max`` (a CT window, a known range) or the image's own percentiles ``lower`` / ``upper``.

    The values are those of MONAI's ``ScaleIntensityRanged`` / ``ScaleIntensityRangePercentilesd`` with ``b_min=0``,
    ``b_max=1``, ``clip=True`` (a constant image, ``hi == lo``, becomes ``x - lo``, as there). The difference is
    memory: with ``in_place=True`` a float32 image is rewritten where it lies, so a whole CT volume costs no
    temporary copies (MONAI's chain peaks at about four float32 copies, 600 MB for 512 x 512 x 150 slices); other
    dtypes are converted to float32 once.

    Args:
        keys: image keys; images are arrays or tensors of any shape (MetaTensors keep their metadata).
        a_min, a_max: fixed bounds; give both, or neither and ``lower`` / ``upper``.
        lower, upper: percentiles (0-100) of each image taken as its bounds.
        in_place: rewrite float32 inputs in place (use only on data the chain owns, e.g. right after loading).
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        a_min: float | None = None,
        a_max: float | None = None,
        lower: float | None = None,
        upper: float | None = None,
        in_place: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if (
            (a_min is None) != (a_max is None)
            or (lower is None) != (upper is None)
            or (a_min is None) == (lower is None)
        ):
            raise ValueError(
                f"give either a_min and a_max or lower and upper, got {(a_min, a_max)} and {(lower, upper)}."
            )
        self.a_min, self.a_max, self.lower, self.upper = a_min, a_max, lower, upper
        self.in_place = in_place

    def scale(self, img):
        """One image -> float32 tensor (a MetaTensor stays one) in [0, 1]."""
        img = convert_to_tensor(img, track_meta=isinstance(img, MetaTensor))
        if img.dtype != torch.float32:
            img = img.to(torch.float32)
        elif not self.in_place:
            img = img.clone()
        if self.a_min is not None:
            lo, hi = float(self.a_min), float(self.a_max)
        else:
            plain = img.as_tensor() if isinstance(img, MetaTensor) else img
            lo, hi = float(percentile(plain, self.lower)), float(percentile(plain, self.upper))
        with torch.no_grad():
            img.sub_(lo)
            if hi != lo:
                img.div_(hi - lo).clamp_(0.0, 1.0)
        return img

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scale(d[key])
        return d


def intensity_transform(intensity: Mapping, keys: KeysCollection = "image", in_place: bool = False) -> ScaleToUnitd:
    """
    The transform mapping intensities to [0, 1] as a datalist's ``intensity`` entry prescribes.

    Args:
        intensity: one of
            ``{"kind": "per_volume", "lower": p_lo, "upper": p_hi}``: per-volume percentiles ``p_lo``/``p_hi``
            (defaults 0.5 / 99.5) to 0 / 1, clipped (MRI stored in scanner units);
            ``{"kind": "ct_window", "a_min": lo, "a_max": hi}``: HU window to [0, 1], clipped (CT);
            ``{"kind": "range", "a_min": lo, "a_max": hi}``: data already in ``[lo, hi]`` mapped to [0, 1], clipped.
        keys: image keys.
        in_place: rewrite float32 images in place (see :class:`ScaleToUnitd`).

    Raises:
        ValueError: unknown kind or missing bounds.
    """
    kind = intensity.get("kind")
    if kind == "per_volume":
        lower, upper = float(intensity.get("lower", 0.5)), float(intensity.get("upper", 99.5))
        return ScaleToUnitd(keys, lower=lower, upper=upper, in_place=in_place)
    if kind in ("ct_window", "range"):
        if "a_min" not in intensity or "a_max" not in intensity:
            raise ValueError(f"intensity {dict(intensity)}: kind {kind!r} needs 'a_min' and 'a_max'.")
        return ScaleToUnitd(keys, a_min=float(intensity["a_min"]), a_max=float(intensity["a_max"]), in_place=in_place)
    raise ValueError(f"intensity {dict(intensity)}: 'kind' must be one of {INTENSITY_KINDS}.")
