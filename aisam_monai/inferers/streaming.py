# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""NIfTI file to label NIfTI file, one slab of slices at a time: host memory that does not grow with depth."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from monai.utils import optional_import

from aisam_monai.inferers.volume_inferer import SliceVolumeInferer
from aisam_monai.io.atomic import atomic_write_bytes
from aisam_monai.io.checks import check_nonfinite_policy
from aisam_monai.io.nifti_slabs import NiftiSlabReader, NiftiSlabWriter

tqdm, _ = optional_import("tqdm", name="tqdm")

__all__ = ["StreamingNiftiInferer"]


class StreamingNiftiInferer:
    """
    Segment a NIfTI volume into a label NIfTI on the same grid (shape, affine, orientation), reading, segmenting
    and writing ``slab_slices`` slices at a time, so that the host memory holds one slab whatever the depth.

    Each slab goes through ``inferer`` (a :class:`SliceVolumeInferer`: ``sw_batch_size`` slices per forward pass,
    its label combination and resampling), so the labels equal those of the whole-volume path
    (:func:`~aisam_monai.transforms.inference_transforms` + ``inferer``) on the same file. Slabs are read along
    the inferer's ``spatial_dim``; 2 (the last stored axis, as in the prepared datasets) streams both ways, another
    axis holds the input once and the labels (one byte per voxel) in memory (see :mod:`aisam_monai.io.nifti_slabs`).

    Args:
        inferer: the slice inferer applied to each slab; its ``eval_prompts`` must not need a label.
        intensity: the datalist's ``intensity`` entry (the mapping used in training).
        slab_slices: slices per slab, rounded up to a multiple of ``inferer.sw_batch_size`` (so the forward
            batches are those of the whole-volume path).
        progress: show a progress bar over the slabs.
        nonfinite: what NaN and infinite intensities do, one of :data:`~aisam_monai.io.checks.NONFINITE_POLICIES`
            (``error`` by default; ``fill`` sets them to the volume's finite extremes, with a warning).

    Example::

        window = {"kind": "ct_window", "a_min": -125, "a_max": 275}
        streamer = StreamingNiftiInferer(SliceVolumeInferer(image_size=256), window)
        result = streamer("case.nii.gz", "case_seg.nii.gz", model)
        result["points"]       # (D, C, Np, 3) generated points in input voxel coordinates
        result["class_probs"]  # (D, C) presence probabilities (NaN without a classifier)
    """

    def __init__(
        self,
        inferer: SliceVolumeInferer,
        intensity: Mapping,
        slab_slices: int = 32,
        progress: bool = False,
        nonfinite: str = "error",
    ) -> None:
        if inferer.needs_label:
            raise ValueError(
                f"eval_prompts {inferer.eval_prompts!r} needs a label; "
                "stream only 'auto', 'one_hot_points' or 'soft_points'."
            )
        self.inferer = inferer
        self.intensity = dict(intensity)
        step = inferer.sw_batch_size
        self.slab_slices = max(step, -(-slab_slices // step) * step)
        self.progress = progress
        self.nonfinite = check_nonfinite_policy(nonfinite)

    def __call__(
        self, image_path: str | os.PathLike, output_path: str | os.PathLike, network: torch.nn.Module
    ) -> dict[str, object]:
        """
        Args:
            image_path: input NIfTI (3D, or 4D with one volume).
            output_path: label NIfTI to write (uint8, atomically; ``.nii.gz`` compresses).
            network: an AISAM on the device to run on.

        Returns:
            ``points (D, C, Np, 3)`` (float32 tensor, input voxel coordinates), ``class_probs (D, C)``,
            ``shape`` (stored shape of the input and the output) and ``affine`` (``4 x 4``).

        Raises:
            FileNotFoundError, ValueError: an input :func:`~aisam_monai.io.checks.check_volume_file` rejects (one
            line naming the file), before the output is touched.
        """
        axis = self.inferer.spatial_dim
        reader = NiftiSlabReader(image_path, self.intensity, axis, self.slab_slices, self.nonfinite)
        device = next(network.parameters()).device
        points, probs = [], []

        def segment(tmp: str) -> None:
            with NiftiSlabWriter(tmp, reader.shape, reader.affine, slice_axis=axis) as writer:
                slabs = tqdm(reader, desc=os.path.basename(str(image_path)), unit="slab") if self.progress else reader
                for start, slab in slabs:
                    volume = torch.from_numpy(np.moveaxis(slab, -1, axis)).to(device).unsqueeze(0)  # (1, H, W, D)
                    out = self.inferer(volume, network)
                    writer.write(np.moveaxis(out["pred"][0].cpu().numpy(), axis, -1))
                    slab_points = out["points"].cpu()
                    slab_points[..., axis] += start  # slice index within the slab -> within the volume
                    points.append(slab_points)
                    probs.append(out["class_probs"].cpu())

        suffix = ".nii.gz" if str(output_path).endswith(".gz") else ".nii"
        atomic_write_bytes(output_path, segment, suffix=suffix)
        return {
            "points": torch.cat(points),
            "class_probs": torch.cat(probs),
            "shape": reader.shape,
            "affine": reader.affine,
        }
