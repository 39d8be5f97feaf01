# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The training augmentation of AI-SAM (arXiv 2312.03119, after the authors' code) on 2D slices.

Three independent invertible random transforms.

Each fires with its own probability (default 0.5) and applies the same parameters to every key, so image and
label stay aligned; all resample with nearest neighbour (labels keep their values):

1. :class:`RandRot90Flipd`: ``rot90`` by ``k`` in {0, 1, 2, 3}, then a flip along a random spatial axis;
2. :class:`RandIntegerRotated`: rotation by an integer angle in [-20, 19] degrees about the slice centre,
   same size, zeros outside;
3. :class:`RandScaleCropd`: crop of ``floor(u * H) x floor(v * W)``, ``u, v ~ U(0.7, 1.0)``, at a uniform offset.

MONAI's ``RandRotate90d`` draws ``k`` in {1..max_k} and ``RandRotated`` continuous angles, hence these
transforms. Parameters are recorded on ``MetaTensor`` inputs, and ``inverse`` undoes each transform (exactly
for rot90/flip; the crop restores the cropped region and zero-pads the rest; the rotation rotates back, also
with nearest neighbour, so corners rotated out of the slice stay zero). The 2D affine is not updated.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import InvertibleTransform, MapTransform, RandomizableTransform
from monai.transforms.inverse import TraceKeys
from monai.utils import convert_to_tensor

__all__ = ["RandRot90Flipd", "RandIntegerRotated", "RandScaleCropd"]


def _on_array(x: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn`` to the plain tensor of ``x``; keep ``x``'s metadata and applied operations."""
    if not isinstance(x, MetaTensor):
        return fn(x)
    return MetaTensor(fn(x.as_tensor()), meta=dict(x.meta), applied_operations=list(x.applied_operations))


class _RandSliceAugmentd(RandomizableTransform, MapTransform, InvertibleTransform):
    """Shared machinery: draw parameters once per call from the first key's ``(C, H, W)`` shape, apply them to
    every key, record them for :meth:`inverse`."""

    def __init__(self, keys: KeysCollection, prob: float = 0.5, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self._params: dict = {}

    def _sample(self, shape: Sequence[int]) -> dict:
        raise NotImplementedError

    def _forward(self, x: torch.Tensor, **params) -> torch.Tensor:
        raise NotImplementedError

    def _backward(self, x: torch.Tensor, **params) -> torch.Tensor:
        raise NotImplementedError

    def randomize(self, shape: Sequence[int]) -> None:
        super().randomize(None)
        self._params = self._sample(shape) if self._do_transform else {}

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        first = self.first_key(d)
        if first == []:
            return d
        shape = d[first].shape
        if len(shape) != 3:
            raise ValueError(f"{type(self).__name__} expects (C, H, W) slices, got shape {tuple(shape)} for '{first}'.")
        self.randomize(shape[1:])
        for key in self.key_iterator(d):
            x = convert_to_tensor(d[key], track_meta=get_track_meta())
            if x.shape[1:] != shape[1:]:
                raise ValueError(
                    f"'{key}' spatial shape {tuple(x.shape[1:])} differs from '{first}' {tuple(shape[1:])}."
                )
            if self._do_transform:
                x = _on_array(x, lambda t: self._forward(t, **self._params))
            if isinstance(x, MetaTensor):
                self.push_transform(x, extra_info=dict(self._params))
            d[key] = x
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            xform = self.pop_transform(d[key])
            if xform[TraceKeys.DO_TRANSFORM]:
                params = xform[TraceKeys.EXTRA_INFO]
                d[key] = _on_array(d[key], lambda t, params=params: self._backward(t, **params))
        return d


class RandRot90Flipd(_RandSliceAugmentd):
    """
    ``rot90`` by ``k`` in {0, 1, 2, 3} over the two spatial axes, then a flip along spatial axis 0 or 1
    (step 1 of 3).

    Args:
        keys: keys of ``(C, H, W)`` slices.
        prob: probability of applying the step.
        allow_missing_keys: don't raise if a key is missing.
    """

    def _sample(self, shape):
        return {"k": int(self.R.randint(0, 4)), "axis": int(self.R.randint(0, 2))}

    def _forward(self, x, k, axis):
        return torch.flip(torch.rot90(x, k, dims=(1, 2)), dims=(1 + axis,))

    def _backward(self, x, k, axis):
        return torch.rot90(torch.flip(x, dims=(1 + axis,)), -k, dims=(1, 2))


def _rotate_nearest(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate ``(C, H, W)`` by ``degrees`` (counter-clockwise as displayed, rows downwards) about the centre
    ``((H - 1) / 2, (W - 1) / 2)``, nearest neighbour, same size, zeros outside."""
    h, w = x.shape[-2:]
    t = math.radians(degrees)
    rows = torch.arange(h, dtype=torch.float32, device=x.device) - (h - 1) / 2
    cols = torch.arange(w, dtype=torch.float32, device=x.device) - (w - 1) / 2
    dy, dx = torch.meshgrid(rows, cols, indexing="ij")
    src_x = math.cos(t) * dx - math.sin(t) * dy + (w - 1) / 2
    src_y = math.sin(t) * dx + math.cos(t) * dy + (h - 1) / 2
    grid = torch.stack([src_x / max(w - 1, 1) * 2 - 1, src_y / max(h - 1, 1) * 2 - 1], -1)[None]
    out = F.grid_sample(x[None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=True)[0]
    return out.to(x.dtype)


class RandIntegerRotated(_RandSliceAugmentd):
    """
    Rotation by an integer angle drawn uniformly in ``[min_angle, max_angle]`` degrees (default [-20, 19], the
    reference's ``randint(-20, 20)``), nearest neighbour for every key, same size, zeros outside
    (step 2 of 3).

    Args:
        keys: keys of ``(C, H, W)`` slices.
        prob: probability of applying the step.
        min_angle: smallest angle in degrees.
        max_angle: largest angle in degrees (inclusive).
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.5,
        min_angle: int = -20,
        max_angle: int = 19,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob, allow_missing_keys)
        self.min_angle, self.max_angle = int(min_angle), int(max_angle)

    def _sample(self, shape):
        return {"degrees": int(self.R.randint(self.min_angle, self.max_angle + 1))}

    def _forward(self, x, degrees):
        return _rotate_nearest(x, degrees)

    def _backward(self, x, degrees):
        return _rotate_nearest(x, -degrees)


class RandScaleCropd(_RandSliceAugmentd):
    """
    Crop of ``floor(u * H)`` rows and ``floor(v * W)`` columns, ``u, v ~ U(min_scale, max_scale)`` drawn
    independently, at a uniformly random offset (step 3 of 3).

    Args:
        keys: keys of ``(C, H, W)`` slices.
        prob: probability of applying the step.
        min_scale: smallest side fraction.
        max_scale: largest side fraction.
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.5,
        min_scale: float = 0.7,
        max_scale: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob, allow_missing_keys)
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}.")
        self.min_scale, self.max_scale = min_scale, max_scale

    def _sample(self, shape):
        h, w = int(shape[0]), int(shape[1])
        ch = max(1, int(self.R.uniform(self.min_scale, self.max_scale) * h))
        cw = max(1, int(self.R.uniform(self.min_scale, self.max_scale) * w))
        return {
            "top": int(self.R.randint(0, h - ch + 1)),
            "left": int(self.R.randint(0, w - cw + 1)),
            "size": (ch, cw),
            "orig": (h, w),
        }

    def _forward(self, x, top, left, size, orig):
        return x[:, top : top + size[0], left : left + size[1]]

    def _backward(self, x, top, left, size, orig):
        return F.pad(x, (left, orig[1] - left - size[1], top, orig[0] - top - size[0]))
