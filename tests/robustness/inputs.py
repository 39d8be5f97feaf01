# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Bad and unusual input files, as a new user would give them, and what every entry point must do with each."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np

SHAPE = (24, 20, 6)
NUM_CLASSES = 4
AFFINE = np.diag([1.5, 1.2, 4.0, 1.0])


def volume(seed: int = 0, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """int16-range intensities: smooth blobs plus noise."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in shape[:3]], indexing="ij")
    vol = sum(np.sin(2 * np.pi * rng.uniform(1, 3) * g + rng.uniform(0, 6)) for g in grids)
    return np.round(300 * vol + 20 * rng.normal(size=shape[:3])).astype(np.float32).reshape(shape)


def label(shape: tuple[int, ...] = SHAPE, dtype=np.uint8) -> np.ndarray:
    lab = np.zeros(shape, dtype)
    lab[4:12, 4:10, 1:5] = 1
    lab[14:20, 8:16, 2:4] = 3
    return lab


def save(path: str, array: np.ndarray, affine: np.ndarray = AFFINE) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine, dtype=array.dtype), path)
    return path


def _nan_patch(path: str) -> str:
    vol = volume()
    vol[2:12, 2:12, 3] = np.nan  # a 10 x 10 patch on one slice
    return save(path, vol)


def _inf(path: str) -> str:
    vol = volume()
    vol[0, 0, :2] = np.inf
    vol[1, 1, 4] = -np.inf
    return save(path, vol)


def _truncated(path: str) -> str:
    save(path, volume())
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:  # a half-copied file: the header is intact
        f.write(data[: len(data) // 2])
    return path


def _truncated_nii(path: str) -> str:
    path = path.replace(".nii.gz", ".nii")
    save(path, volume())
    with open(path, "r+b") as f:
        f.truncate(352 + 24 * 20 * 4 * 4)  # 4 of 6 slices
    return path


def _huge(path: str, compressed: bool = True) -> str:
    """A header declaring 4096^3 float32 voxels (256 GiB) over a few bytes of data."""
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), AFFINE)
    img.header.set_data_shape((4096, 4096, 4096))
    raw = img.header.binaryblock + b"\0" * 4 + b"\0" * 64
    path = path if compressed else path.replace(".nii.gz", ".nii")
    with gzip.open(path, "wb") if compressed else open(path, "wb") as f:
        f.write(raw)
    return path


def _text(path: str) -> str:
    with open(path, "w") as f:
        f.write("patient,age\n1,54\n")  # a CSV saved under an image's name
    return path


def _random_gzip(path: str) -> str:
    with gzip.open(path, "wb") as f:
        f.write(np.random.default_rng(0).bytes(4096))
    return path


def _bad_affine(path: str) -> str:
    save(path, volume())
    img = nib.load(path)
    header = img.header.copy()
    header["srow_x"] = [np.nan, 0, 0, 0]
    header["qform_code"] = 0
    header["sform_code"] = 1
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), None, header), path)
    return path


def _loop(path: str) -> str:
    os.symlink(os.path.basename(path), path)  # a link to itself
    return path


def _folder(path: str) -> str:
    os.makedirs(path)
    return path


@dataclass
class Case:
    """An input file and its expected outcome: ``error`` (a pattern of the one line) or ``None`` (it works)."""

    name: str
    make: Callable[[str], str]
    error: str | None = None
    warning: str | None = None
    nonfinite: str = "error"
    not_for: set = field(default_factory=set)  # entry points where the case cannot be set up (with the reason)


IMAGE_CASES = [
    # prepare finds its cases by listing the source (a missing image is "missing image for label" there); the
    # editor opens listed files only
    Case("missing", lambda p: p, "not found|no such file|but missing", not_for={"prepare"}),
    Case("folder_named_nii", _folder, "is a folder|but missing", not_for={"prepare", "serve"}),
    Case("symlink_loop", _loop, "not found|no such file|but missing", not_for={"prepare"}),
    Case("text_named_nii_gz", _text, "not a readable NIfTI"),
    Case("random_gzip", _random_gzip, "not a readable NIfTI"),
    Case("truncated_gz", _truncated, "truncated"),
    Case("truncated_nii", _truncated_nii, "truncated"),
    Case("huge_declared_gz", _huge, "truncated"),
    Case("huge_declared_nii", lambda p: _huge(p, compressed=False), "truncated"),
    Case("image_2d", lambda p: save(p, volume()[..., 0]), "3D"),
    Case("image_4d", lambda p: save(p, np.stack([volume()] * 2, -1)), "3D"),
    Case("zero_slices", lambda p: save(p, volume()[..., :0]), "empty"),
    Case("nan_patch", _nan_patch, "100 of 2880 voxels are NaN/inf"),
    Case("inf_voxels", _inf, "3 of 2880 voxels are NaN/inf"),
    Case("all_nan", lambda p: save(p, np.full(SHAPE, np.nan, np.float32)), "NaN"),
    Case("nonfinite_affine", _bad_affine, "affine"),
    # inputs that work
    Case("plain", lambda p: save(p, volume())),
    Case("int16", lambda p: save(p, volume().astype(np.int16))),
    Case("singleton_4d", lambda p: save(p, volume()[..., None])),
    Case(
        "unicode_space_path",
        lambda p: save(os.path.join(os.path.dirname(p), "dir with space", "ünï cødé ✓.nii.gz"), volume()),
    ),
    Case("constant", lambda p: save(p, np.zeros(SHAPE, np.float32)), warning="constant image"),
    Case("huge_intensities", lambda p: save(p, volume() * 1e5), warning="beyond +-100000"),
    Case(
        "nan_patch_filled",
        _nan_patch,
        warning="100 of 2880 voxels are NaN/inf; NaN and -Inf set to",
        nonfinite="fill",
        not_for={"evaluate"},  # evaluation takes prepared (finite) datasets: prepare --nonfinite fill
    ),
]

LABEL_CASES = [
    Case("label_int64", lambda p: save(p, label(dtype=np.int64))),
    Case("label_outside_class_set", lambda p: save(p, label() * 20), "outside the class set"),
    Case("label_not_integer", lambda p: save(p, label(dtype=np.float32) + 0.5), "integers"),
    Case("label_other_grid", lambda p: save(p, label(shape=(24, 20, 5))), "differs from the image"),
    Case("label_truncated", _truncated, "truncated"),
]
