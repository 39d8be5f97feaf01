# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""A folder with a two-disk NIfTI volume and the tiny click-trained model, for the editor tests."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import torch
import yaml

from tests.interactive.tiny_model import CONFIG, disks, trained_model

H, W, D = 96, 160, 4
LEFT, RIGHT = (0.3 * W, 0.45 * H), (0.72 * W, 0.6 * H)  # (x, y)
AFFINE = np.array([[0.0, -1.5, 0.0, 40.0], [1.5, 0.0, 0.0, -20.0], [0.0, 0.0, 8.0, 5.0], [0.0, 0.0, 0.0, 1.0]])


def write_editor_folder(folder: str) -> dict:
    """Write ``root/case.nii.gz``, ``model.pt`` and ``model.yaml`` under ``folder``; return their paths."""
    root = os.path.join(folder, "volumes")
    os.makedirs(os.path.join(root, "sub"), exist_ok=True)
    image = os.path.join(root, "case.nii.gz")
    volume = np.stack([disks(H, W, LEFT, RIGHT, 9.0)] * D, -1) * 300.0 + 50.0
    nib.save(nib.Nifti1Image(volume.astype(np.float32), AFFINE), image)
    nib.save(nib.Nifti1Image(volume[..., :2].astype(np.float32), AFFINE), os.path.join(root, "sub", "other.nii.gz"))
    checkpoint = os.path.join(folder, "model.pt")
    torch.save({"model": trained_model().state_dict()}, checkpoint)
    config = os.path.join(folder, "model.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(
            {
                "network_def": {"_target_": "aisam_monai.networks.AISAM", **CONFIG},
                "class_names": ["disk"],
                "intensity": {"kind": "range", "a_min": 50.0, "a_max": 350.0},
            },
            f,
        )
    return {"root": root, "image": image, "checkpoint": checkpoint, "config": config}


def disk_mask(centre: tuple[float, float]) -> np.ndarray:
    """``(H, W)`` bool mask of one disk of the volume."""
    return disks(H, W, centre, centre, 9.0) > 0
