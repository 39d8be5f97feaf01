# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Readers of the dataset source forms: NIfTI (with the ``pixdim`` check), h5 and npz volumes or slices, case lists,
and the (Z, H, W) arrays of the preprocessed releases turned into :class:`~aisam_monai.data.cases.CaseVolume`.

Every reader raises :class:`~aisam_monai.data.cases.CaseError` naming the bad file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from aisam_monai.data.cases import CaseError, CaseVolume
from aisam_monai.io.checks import check_readable
from aisam_monai.io.errors import InputError

__all__ = ["read_nifti", "zhw_affine", "read_h5", "read_npz", "zhw_volume", "read_list", "stack_slices"]


def read_nifti(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a NIfTI volume; return ``(array, affine, notes)``.

    When the affine's column lengths disagree with the header's pixel dimensions (``pixdim``), the
    affine's directions are kept and its scales are taken from ``pixdim``; a note says so.

    Raises:
        CaseError: unreadable file.
    """
    try:
        check_readable(path)  # the whole file, streamed: a truncated or oversized file fails before any allocation
    except (FileNotFoundError, ValueError) as e:
        reason = e.reason if isinstance(e, InputError) else f"unreadable NIfTI: {str(e).removeprefix(f'{path}: ')}"
        raise CaseError(path, reason) from None
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        if data.ndim == 4 and data.shape[3] == 1:  # one volume stored as 4D
            data = data[..., 0]
    except Exception as e:  # nibabel raises many types for corrupt files
        raise CaseError(path, f"unreadable NIfTI ({type(e).__name__}: {e})") from e
    affine = np.array(img.affine, dtype=np.float64)
    notes = []
    zooms = np.array(img.header.get_zooms()[:3], dtype=np.float64)
    if data.ndim >= 3 and zooms.size == 3 and np.all(zooms > 0):
        lengths = np.linalg.norm(affine[:3, :3], axis=0)
        if not np.allclose(lengths, zooms, rtol=1e-3, atol=1e-4):
            affine[:3, :3] = affine[:3, :3] / np.where(lengths > 0, lengths, 1.0) * zooms
            notes.append(
                f"{path}: affine scales {np.round(lengths, 4).tolist()} disagree with pixdim "
                f"{np.round(zooms, 4).tolist()}; pixdim used"
            )
    return data, affine, notes


def zhw_affine(spacing: Sequence[float]) -> np.ndarray:
    """Affine for a volume stored as (H, W, Z) after transposing a (Z, H, W) array.

    (Z, H, W) arrays from the preprocessed releases were produced with SimpleITK (identity direction,
    i.e. LPS axes: columns along x, rows along y, slices along z). Written as (row, column, slice),
    the RAS affine maps rows to -y (anterior flipped), columns to -x and slices to +z.

    Args:
        spacing: (sx, sy, sz) in mm: column (in-plane x), row (in-plane y), slice spacing.
    """
    sx, sy, sz = (float(s) for s in spacing)
    return np.array([[0.0, -sx, 0.0, 0.0], [-sy, 0.0, 0.0, 0.0], [0.0, 0.0, sz, 0.0], [0.0, 0.0, 0.0, 1.0]])


def read_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ``image`` and ``label`` datasets of an h5 file (SSL4MIS and TransUNet forms) as arrays."""
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f["image"]), np.asarray(f["label"])
    except (OSError, KeyError) as e:
        raise CaseError(path, f"unreadable h5 with 'image' and 'label' datasets ({e})") from e


def read_npz(path: Path, image_key: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``image_key`` and ``label`` arrays of an npz file (MT-UNet and TransUNet forms)."""
    try:
        with np.load(path) as f:
            return np.asarray(f[image_key]), np.asarray(f["label"])
    except (OSError, KeyError, ValueError) as e:
        raise CaseError(path, f"unreadable npz with '{image_key}' and 'label' arrays ({e})") from e


def zhw_volume(image: np.ndarray, label: np.ndarray, file: Path, label_file: Path, spacing) -> CaseVolume:
    """(Z, H, W) arrays -> CaseVolume stored (H, W, Z) with :func:`zhw_affine`."""
    for arr, f in ((image, file), (label, label_file)):
        if arr.ndim != 3:
            raise CaseError(f, f"expected a 3D (Z, H, W) volume, got {arr.ndim}D shape {arr.shape}")
    return CaseVolume(
        np.ascontiguousarray(np.moveaxis(image, 0, -1)),
        np.ascontiguousarray(np.moveaxis(label, 0, -1)),
        zhw_affine(spacing),
        str(file),
        str(label_file),
    )


def read_list(path: Path) -> list[str]:
    """The non-empty lines of a case list file (stripped), or ``[]`` when the file does not exist."""
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


def stack_slices(
    slices: dict[int, tuple[np.ndarray, np.ndarray]], files: dict[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild (Z, H, W) image and label volumes from 2D slices keyed by slice index.

    Raises:
        CaseError: a missing slice index, a non-2D slice or slices of different shapes.
    """
    indices = sorted(slices)
    first = indices[0]
    missing = sorted(set(range(first, indices[-1] + 1)) - set(indices))
    if missing:
        raise CaseError(files[first], f"slice indices {missing} missing between {first} and {indices[-1]}")
    shape = slices[first][0].shape
    for k in indices:
        img, lab = slices[k]
        if img.ndim != 2 or lab.ndim != 2:
            raise CaseError(files[k], f"expected 2D slice image/label, got {img.shape} / {lab.shape}")
        if img.shape != shape:
            raise CaseError(files[k], f"slice shape {img.shape} differs from {shape} of {files[first]}")
    image = np.stack([slices[k][0] for k in indices])
    label = np.stack([slices[k][1] for k in indices])
    return image, label
