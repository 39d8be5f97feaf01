# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Reading and writing NIfTI volumes one slab of slices at a time, so that whole-volume inference holds a fixed
number of slices in memory whatever the depth.

* :class:`NiftiSlabReader`: slabs of a 3D NIfTI with the datalist's intensity window applied, equal to
  ``LoadImaged`` + :class:`~aisam_monai.transforms.ScaleToUnitd` on the whole volume; per-volume percentiles are
  gathered in a first streaming pass (:func:`stream_percentiles`). The file is checked first
  (:func:`~aisam_monai.io.checks.check_volume_file`, with its non-finite policy). It is the one file reader of the
  bundles' inference and of :class:`~aisam_monai.interactive.AISAMPredictor`, so both see the same intensities.
* :class:`NiftiSlabWriter`: a uint8 label NIfTI written slab after slab (gzip-streamed when the path ends in
  ``.gz``).

Slabs are taken along the last stored axis, the one NIfTI stores slowest, so each slab is one contiguous read
(nibabel seeks forward in the open gzip stream) and one contiguous write. Along another axis the reader loads the
volume once and the writer gathers the labels (one byte per voxel) before writing; both say so in their
``streaming`` attribute.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Mapping, Sequence

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import ArrayProxy
from nibabel.volumeutils import apply_read_scaling

from aisam_monai.io.checks import VolumeSummary, check_volume_file
from aisam_monai.io.nifti import open_volume
from aisam_monai.transforms.intensity import intensity_transform

__all__ = ["NiftiSlabReader", "NiftiSlabWriter", "stream_percentiles", "HISTOGRAM_BINS"]

HISTOGRAM_BINS = 65536
"""Bins of the percentile histogram of volumes stored as floats or wide integers; the percentile is then exact
to ``(max - min) / HISTOGRAM_BINS``. Volumes stored as (u)int8/16 get exact percentiles."""


def _order_statistic_interp(values_at, n: int, q: float) -> float:
    """Linear-interpolated ``q``-th percentile (numpy's default) from ``values_at(ranks)`` over ``n`` values."""
    pos = q / 100.0 * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    a, b = values_at(np.array([lo, hi]))
    return float(a + (pos - lo) * (b - a))


def stream_percentiles(
    img: nib.Nifti1Image,
    qs: Sequence[float],
    slab_slices: int = 32,
    path: str = "",
    summary: VolumeSummary | None = None,
) -> list[float]:
    """
    Percentiles ``qs`` (0-100, numpy's linear interpolation) of the stored intensities of a NIfTI volume, read
    slab by slab along its last axis.

    Volumes stored as (u)int8 or (u)int16 (most scanner exports) are counted exactly: one count per stored value,
    then the scaling (``scl_slope``, ``scl_inter``) is applied to the order statistics. Other stored types are
    binned into :data:`HISTOGRAM_BINS` bins between their minimum and maximum (two passes), exact to one bin.

    Args:
        img: an opened NIfTI image (``nib.load``).
        qs: percentiles in [0, 100].
        slab_slices: slices per read.
        path: file name for error messages.
        summary: what :func:`~aisam_monai.io.checks.check_volume_file` found: its finite range replaces the first
            pass over float volumes, and non-finite voxels are counted as its fill values.
    """
    shape = tuple(img.shape)
    depth = shape[2]
    dtype = img.header.get_data_dtype()
    slope, inter = img.dataobj.slope, img.dataobj.inter
    starts = range(0, depth, slab_slices)
    n = int(np.prod(shape))
    if n == 0:
        raise ValueError(f"{path}: empty volume of shape {shape}.")
    if dtype.kind in "iu" and dtype.itemsize <= 2:
        raw = ArrayProxy(img.dataobj.file_like, (shape, dtype, img.dataobj.offset, 1.0, 0.0), keep_file_open=True)
        offset = int(np.iinfo(dtype).min)
        counts = np.zeros(2 ** (8 * dtype.itemsize), dtype=np.int64)
        for start in starts:
            slab = np.asarray(raw[:, :, start : start + slab_slices]).ravel()
            counts += np.bincount(slab.astype(np.int64) - offset, minlength=counts.size)
        cumulative = np.cumsum(counts)
        descending = float(slope) < 0  # a negative slope reverses the order of the scaled values

        def values_at(ranks):
            ranks = n - 1 - ranks if descending else ranks
            stored = (np.searchsorted(cumulative, ranks, side="right") + offset).astype(dtype)
            return np.asarray(apply_read_scaling(stored, slope, inter), dtype=np.float32).astype(np.float64)

        return [_order_statistic_interp(values_at, n, q) for q in qs]

    if summary is None:
        summary = check_volume_file(img.get_filename())
    fill = summary.fill
    lo, hi = np.float32(summary.minimum), np.float32(summary.maximum)
    if not lo < hi:  # a constant volume (or all NaN)
        return [lo] * len(qs)
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    counts = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    for start in starts:
        slab = _filled(np.asarray(img.dataobj[:, :, start : start + slab_slices], dtype=np.float32), fill)
        counts += np.histogram(slab, bins=edges)[0]
    cumulative = np.cumsum(counts)

    def binned_values_at(ranks):
        bins = np.searchsorted(cumulative, ranks, side="right")
        below = np.where(bins > 0, cumulative[np.maximum(bins - 1, 0)], 0)
        inside = (ranks - below + 0.5) / np.maximum(counts[bins], 1)  # uniform within the bin
        return edges[bins] + inside * (edges[bins + 1] - edges[bins])

    return [_order_statistic_interp(binned_values_at, int(cumulative[-1]), q) for q in qs]


def _filled(values: np.ndarray, fill: tuple[float, float] | None) -> np.ndarray:
    """A copy of ``values`` with NaN and -Inf set to ``fill[0]`` and +Inf to ``fill[1]``, or ``values`` itself."""
    if fill is None:
        return values
    return np.nan_to_num(values, nan=fill[0], posinf=fill[1], neginf=fill[0])


class NiftiSlabReader:
    """
    Slabs of a 3D NIfTI volume with intensities mapped to [0, 1] as the datalist's ``intensity`` entry says.

    Iterating yields ``(start, slab)``: ``slab`` is a float32 array ``(H', W', d)`` of slices ``start .. start +
    d - 1`` along ``slice_axis``, slices last (``H', W'`` are the two other axes in stored order). The values equal
    those of :func:`~aisam_monai.transforms.inference_transforms` on the whole volume (float32 rounding aside;
    per-volume percentiles of float-stored volumes to one bin of :data:`HISTOGRAM_BINS`).

    Args:
        path: NIfTI file (``.nii`` or ``.nii.gz``), 3D or 4D with one volume.
        intensity: the datalist's ``intensity`` entry (see :func:`~aisam_monai.transforms.intensity_transform`).
        slice_axis: stored axis along which slices are taken; 2 (the last) streams, 0 or 1 loads the volume once.
        slab_slices: slices per slab.
        nonfinite: what NaN and infinite intensities do, one of :data:`~aisam_monai.io.checks.NONFINITE_POLICIES`.

    Raises:
        FileNotFoundError, ValueError: any input :func:`~aisam_monai.io.checks.check_volume_file` rejects (one line
        naming the file), checked when the reader is made, before any slab is read.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        intensity: Mapping,
        slice_axis: int = 2,
        slab_slices: int = 32,
        nonfinite: str = "error",
    ) -> None:
        if slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis}.")
        if slab_slices < 1:
            raise ValueError(f"slab_slices must be positive, got {slab_slices}.")
        self.path = os.fspath(path)
        self.summary = check_volume_file(self.path, nonfinite)
        self.img = open_volume(self.path)
        self.slice_axis = slice_axis
        self.slab_slices = slab_slices
        self.streaming = slice_axis == 2
        self.shape = tuple(int(s) for s in self.img.shape)
        """Shape of the stored array (a 4th axis of one volume included)."""
        self.affine = np.asarray(self.img.affine, dtype=np.float64)
        self.depth = self.shape[slice_axis]
        transform = intensity_transform(intensity, "image", in_place=True)
        if transform.lower is not None:
            qs = (transform.lower, transform.upper)
            lo, hi = stream_percentiles(self.img, qs, slab_slices, self.path, self.summary)
            transform = intensity_transform({"kind": "range", "a_min": lo, "a_max": hi}, "image", in_place=True)
        self._scale = transform
        self._volume = None

    def _stored_slab(self, start: int, stop: int) -> np.ndarray:
        """Stored (scaled) values of slices ``start:stop`` as float32 ``(H', W', d)``."""
        try:
            if self.streaming:
                slab = self.img.dataobj[:, :, start:stop]
                return _filled(np.asarray(slab.reshape(slab.shape[:3]), dtype=np.float32), self.summary.fill)
            if self._volume is None:  # slices across the stored order: one read of the whole volume
                volume = _filled(np.asarray(self.img.dataobj, dtype=np.float32), self.summary.fill)
                self._volume = np.moveaxis(volume.reshape(volume.shape[:3]), self.slice_axis, -1)
            return np.array(self._volume[..., start:stop])
        except Exception as e:
            raise ValueError(
                f"{self.path}: could not read slices {start}..{stop - 1} ({type(e).__name__}: {e})."
            ) from e

    def __len__(self) -> int:
        return -(-self.depth // self.slab_slices)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.depth, self.slab_slices):
            slab = self._stored_slab(start, min(start + self.slab_slices, self.depth))
            yield start, self._scale.scale(slab).numpy()
        self._volume = None


class NiftiSlabWriter:
    """
    Write a uint8 label volume slab after slab as a NIfTI-1 file with the given shape and affine (sform and qform
    set, as :func:`~aisam_monai.io.nifti.write_nifti` does). Use it as a context manager on a temporary path and
    rename the result (:func:`~aisam_monai.io.atomic.atomic_write_bytes`): a failure leaves no partial output.

    Args:
        path: output file; gzip-compressed (level 1, nibabel's default) when it ends in ``.gz``.
        shape: stored shape of the output (that of the input image).
        affine: ``4 x 4`` voxel-to-world matrix.
        slice_axis: axis of the slabs; 2 appends them to the file as they come, 0 or 1 gathers them in memory
            (one byte per voxel) and writes on :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike, shape: Sequence[int], affine: np.ndarray, slice_axis: int = 2) -> None:
        self.path = str(path)
        self.shape = tuple(int(s) for s in shape)
        self.slice_axis = slice_axis
        self.streaming = slice_axis == 2
        self.written = 0  # slices written so far
        template = nib.Nifti1Image(np.zeros((1, 1, 1), dtype=np.uint8), np.asarray(affine, dtype=np.float64))
        template.set_sform(template.affine, code=1)
        template.set_qform(template.affine, code=1)
        self.header = template.header.copy()
        self.header.set_data_shape(self.shape)
        self.header.set_data_dtype(np.uint8)
        self._in_plane = tuple(s for i, s in enumerate(self.shape[:3]) if i != slice_axis)
        self._gathered = None if self.streaming else np.zeros((*self._in_plane, self.shape[slice_axis]), np.uint8)
        self._file = None
        if self.streaming:
            self._file = (
                gzip.open(self.path, "wb", compresslevel=1) if self.path.endswith(".gz") else open(self.path, "wb")
            )
            self._write_header()

    def _write_header(self) -> None:
        self.header.write_to(self._file)  # 348 bytes, the 4-byte "no extensions" flag; the data start at 352

    def write(self, labels: np.ndarray) -> None:
        """Append the next slab: ``(H', W', d)`` labels (slices last, as :class:`NiftiSlabReader` gives them)."""
        labels = np.asarray(labels)
        if (
            labels.ndim != 3
            or labels.shape[:2] != self._in_plane
            or self.written + labels.shape[2] > self.shape[self.slice_axis]
        ):
            raise ValueError(
                f"{self.path}: slab of shape {labels.shape} does not continue a volume of shape {self.shape} "
                f"along axis {self.slice_axis} after {self.written} slices."
            )
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError(f"{self.path}: labels must lie in 0..255 for a uint8 volume.")
        labels = labels.astype(np.uint8, copy=False)
        if self.streaming:
            self._file.write(labels.tobytes(order="F"))
        else:
            self._gathered[..., self.written : self.written + labels.shape[2]] = labels
        self.written += labels.shape[2]

    def close(self) -> None:
        """Finish the file; every slice must have been written."""
        if self.written != self.shape[self.slice_axis]:
            if self._file is not None:
                self._file.close()
                self._file = None
            raise ValueError(f"{self.path}: {self.written} of {self.shape[self.slice_axis]} slices written.")
        if not self.streaming:
            volume = np.moveaxis(self._gathered, -1, self.slice_axis).reshape(self.shape)
            self._file = (
                gzip.open(self.path, "wb", compresslevel=1) if self.path.endswith(".gz") else open(self.path, "wb")
            )
            self._write_header()
            self._file.write(volume.tobytes(order="F"))
            self._gathered = None
        self._file.close()
        self._file = None

    def __enter__(self) -> NiftiSlabWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._file is not None:
            self._file.close()
