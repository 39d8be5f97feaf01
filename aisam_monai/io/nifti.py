# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""NIfTI files: atomic writing, lazy opening of 3D input volumes (checked by :mod:`aisam_monai.io.checks`), and the
case name of a file."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np

from aisam_monai.io.atomic import atomic_write_bytes

__all__ = ["write_nifti", "write_labels_like", "open_volume", "case_stem"]


def write_nifti(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray) -> None:
    """Write ``array`` (X, Y, Z) with ``affine`` as NIfTI-1 (sform and qform set), atomically."""
    img = nib.Nifti1Image(array, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    atomic_write_bytes(path, lambda tmp: nib.save(img, tmp), suffix=".nii.gz")


def write_labels_like(path: str | os.PathLike, labels, image_path: str | os.PathLike) -> None:
    """Write ``labels`` as uint8 NIfTI with the shape and affine of the image ``image_path``, atomically."""
    ref = nib.load(image_path)
    write_nifti(path, np.asarray(labels, dtype=np.uint8).reshape(ref.shape), ref.affine)


def open_volume(path: str | os.PathLike) -> nib.Nifti1Image:
    """
    Open a 3D NIfTI lazily (the file kept open: forward seeks in a gzip stream are cheap), a trailing 4th axis of
    one volume accepted.

    Raises:
        FileNotFoundError, ValueError: missing file, unreadable file, not a 3D volume (one line naming the file).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: input image not found.")
    try:
        img = nib.load(path, keep_file_open=True)
    except Exception as e:  # nibabel raises many types for unreadable files
        reason = getattr(e, "strerror", None) or ""
        raise ValueError(
            f"{path}: not a readable NIfTI image ({type(e).__name__}{': ' if reason else ''}{reason})."
        ) from e
    shape = img.shape
    if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
        raise ValueError(f"{path}: expected a 3D volume (H, W, D), got shape {tuple(shape)}.")
    return img


def case_stem(path: str | os.PathLike) -> str:
    """Case name of an image file: its base name without ``.nii.gz`` (or its one extension)."""
    base = os.path.basename(str(path))
    return base[: -len(".nii.gz")] if base.endswith(".nii.gz") else os.path.splitext(base)[0]
