# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""2D training slices sampled from 3D volumes."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable
from monai.utils import convert_to_tensor

__all__ = ["RandSliceSampled"]


class RandSliceSampled(Randomizable, MapTransform):
    """
    Draw ``num_samples`` 2D slices along one spatial axis of ``(C, H, W, D)`` volumes (all ``keys`` at the
    same index), favouring slices that contain foreground.

    With probability ``foreground_prob`` a slice is drawn uniformly among the slices whose ``label_key`` holds
    a non-zero voxel (when there is one), otherwise uniformly among all slices. Returns a list of
    ``num_samples`` dictionaries (as MONAI's ``RandCropByPosNegLabeld``), each with ``(C, H', W')`` slices
    (the two remaining spatial axes in their order, with the matching 2D affine) and ``slice_index``.

    Args:
        keys: keys of the volumes to slice.
        label_key: key of the label used to find foreground slices.
        spatial_axis: spatial axis (0, 1 or 2) along which slices are taken; 2 is the acquisition axis of the
            prepared datasets (``slice_axis`` in the datalist).
        num_samples: slices per volume.
        foreground_prob: probability of drawing among foreground slices.
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        spatial_axis: int = 2,
        num_samples: int = 1,
        foreground_prob: float = 0.75,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if spatial_axis not in (0, 1, 2):
            raise ValueError(f"spatial_axis must be 0, 1 or 2, got {spatial_axis}.")
        if num_samples < 1 or not 0.0 <= foreground_prob <= 1.0:
            raise ValueError(
                f"need num_samples >= 1 and foreground_prob in [0, 1], got {num_samples}, {foreground_prob}."
            )
        self.label_key = label_key
        self.spatial_axis = spatial_axis
        self.num_samples = num_samples
        self.foreground_prob = foreground_prob
        self._indices: np.ndarray = np.zeros(0, dtype=int)

    def randomize(self, label: torch.Tensor) -> None:
        """Choose the slice indices from ``label`` ``(C, H, W, D)``."""
        axis = 1 + self.spatial_axis
        depth = label.shape[axis]
        other = tuple(i for i in range(label.ndim) if i != axis)
        fg = np.nonzero(convert_to_tensor(label != 0, track_meta=False).any(dim=other).cpu().numpy())[0]
        use_fg = self.R.random_sample(self.num_samples) < self.foreground_prob
        uniform = self.R.randint(0, depth, self.num_samples)
        from_fg = fg[self.R.randint(0, len(fg), self.num_samples)] if len(fg) else uniform
        self._indices = np.where(use_fg & (len(fg) > 0), from_fg, uniform)

    def _slice(self, volume, index: int):
        axis = 1 + self.spatial_axis
        data = torch.as_tensor(volume).select(axis, int(index))
        if not isinstance(volume, MetaTensor):
            return data
        keep = [i for i in range(3) if i != self.spatial_axis] + [3]
        affine = volume.affine[keep][:, keep]
        meta = {k: v for k, v in volume.meta.items() if k not in ("affine", "original_affine", "spatial_shape")}
        return MetaTensor(data.as_tensor() if isinstance(data, MetaTensor) else data, affine=affine, meta=meta)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> list[dict]:
        d = dict(data)
        self.randomize(d[self.label_key])
        out = []
        for index in self._indices:
            item = {k: v for k, v in d.items() if k not in self.keys}
            for key in self.key_iterator(d):
                item[key] = self._slice(d[key], index)
            item["slice_index"] = int(index)
            out.append(item)
        return out
