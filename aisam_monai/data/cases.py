# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Shared pieces of dataset preparation: source cases, validation, atomic NIfTI writing, splits,
the failure report and the decathlon-style datalist.

Every source form (``acdc.py``, ``synapse.py``) turns its files into a list of :class:`SourceCase`;
:func:`prepare_cases` validates and writes them and :func:`write_datalist` records the result.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

__all__ = [
    "CaseError",
    "SourceCase",
    "CaseVolume",
    "PrepareResult",
    "atomic_write_bytes",
    "atomic_write_json",
    "read_nifti",
    "write_nifti",
    "zhw_affine",
    "stack_slices",
    "read_h5",
    "read_npz",
    "read_list",
    "zhw_volume",
    "validate_case",
    "prepare_cases",
    "ratio_split",
    "write_datalist",
]

IMAGES_DIR = "images"
LABELS_DIR = "labels"
DATALIST_NAME = "datalist.json"
REPORT_NAME = "prepare_report.json"


class CaseError(Exception):
    """A bad source case: ``file`` is the offending path, ``reason`` says what was expected."""

    def __init__(self, file: str | os.PathLike, reason: str) -> None:
        self.file = str(file)
        self.reason = reason
        super().__init__(f"{self.file}: {reason}")


@dataclass
class CaseVolume:
    """One loaded case: ``image`` and ``label`` as (X, Y, Z) voxel arrays, ``affine`` 4x4 (RAS, mm)."""

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    image_file: str
    label_file: str
    notes: list[str] = field(default_factory=list)


@dataclass
class SourceCase:
    """A case found in the source tree, loaded lazily.

    Args:
        case: output case identifier (file stem of the prepared NIfTI files).
        patient: patient identifier used for splitting (never split one patient across lists).
        files: source files of the case (for messages and the report).
        load: callable returning a :class:`CaseVolume`; raises :class:`CaseError` on bad input.
        info: extra entries copied into the datalist item (e.g. ``{"phase": "ED"}``).
        error: set when the case is already known to be bad at discovery (e.g. a missing partner).
    """

    case: str
    patient: str
    files: list[str]
    load: Callable[[], CaseVolume] | None
    info: dict = field(default_factory=dict)
    error: CaseError | None = None


@dataclass
class PrepareResult:
    """Outcome of :func:`prepare_cases`: written/skipped items and failures (file, reason)."""

    items: dict[str, dict] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)


def _default_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would give a new file (``mkstemp`` gives ``0o600``)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """
    Call ``write(tmp_path)`` on a temporary file in the target directory, then ``os.replace`` it; the file gets the
    permissions a plain ``open()`` would give it (readable by the group and others under the usual umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    atomic_write_bytes(path, _write)


def read_nifti(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a NIfTI volume; return ``(array, affine, notes)``.

    When the affine's column lengths disagree with the header's pixel dimensions (``pixdim``), the
    affine's directions are kept and its scales are taken from ``pixdim``; a note says so.

    Raises:
        CaseError: unreadable file.
    """
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
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


def write_nifti(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray) -> None:
    """Write ``array`` (X, Y, Z) with ``affine`` as NIfTI-1 (sform and qform set), atomically."""
    img = nib.Nifti1Image(array, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    atomic_write_bytes(path, lambda tmp: nib.save(img, tmp), suffix=".nii.gz")


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
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f["image"]), np.asarray(f["label"])
    except (OSError, KeyError) as e:
        raise CaseError(path, f"unreadable h5 with 'image' and 'label' datasets ({e})") from e


def read_npz(path: Path, image_key: str) -> tuple[np.ndarray, np.ndarray]:
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


def validate_case(vol: CaseVolume, num_classes: int) -> None:
    """Check one loaded case.

    Raises:
        CaseError: non-3D volume, image/label shape mismatch, NaN/inf intensities or label values
            outside ``0..num_classes-1``.
    """
    for arr, f, what in ((vol.image, vol.image_file, "image"), (vol.label, vol.label_file, "label")):
        if arr.ndim != 3:
            raise CaseError(f, f"expected a 3D {what} volume, got {arr.ndim}D shape {tuple(arr.shape)}")
    if vol.image.shape != vol.label.shape:
        raise CaseError(
            vol.label_file,
            f"label shape {tuple(vol.label.shape)} != image shape {tuple(vol.image.shape)} ({vol.image_file})",
        )
    if np.issubdtype(vol.image.dtype, np.floating) and not np.isfinite(vol.image).all():
        bad = int((~np.isfinite(vol.image)).sum())
        raise CaseError(vol.image_file, f"{bad} NaN/inf intensities")
    lab = np.asarray(vol.label)
    if np.issubdtype(lab.dtype, np.floating) and (not np.isfinite(lab).all() or np.any(lab != np.round(lab))):
        raise CaseError(vol.label_file, "label values must be integers")
    values = np.unique(lab)
    extra = values[(values < 0) | (values >= num_classes)]
    if extra.size:
        raise CaseError(vol.label_file, f"label values {extra.tolist()} outside the class set 0..{num_classes - 1}")


def _image_dtype(image: np.ndarray) -> np.ndarray:
    if np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize <= 2:
        return image
    return image.astype(np.float32)


def prepare_cases(
    cases: Sequence[SourceCase],
    out_dir: str | os.PathLike,
    num_classes: int,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> PrepareResult:
    """Validate and write every case as ``images/<case>.nii.gz`` and ``labels/<case>.nii.gz``.

    A case whose two outputs exist is skipped unless ``overwrite``. Bad cases are collected in
    ``PrepareResult.failures`` (with file and reason); nothing is written for them.
    """
    out_dir = Path(out_dir)
    result = PrepareResult()
    seen: dict[str, str] = {}
    for sc in cases:
        if sc.case in seen:
            result.failures.append(
                {"case": sc.case, "file": sc.files[0], "reason": f"duplicate case id (also from {seen[sc.case]})"}
            )
            continue
        seen[sc.case] = sc.files[0] if sc.files else ""
        image_rel = f"{IMAGES_DIR}/{sc.case}.nii.gz"
        label_rel = f"{LABELS_DIR}/{sc.case}.nii.gz"
        item = {"image": image_rel, "label": label_rel, "case": sc.case, "patient": sc.patient, **sc.info}
        if sc.error is not None:
            result.failures.append({"case": sc.case, "file": sc.error.file, "reason": sc.error.reason})
            continue
        if not overwrite and (out_dir / image_rel).exists() and (out_dir / label_rel).exists():
            result.items[sc.case] = item
            result.skipped.append(sc.case)
            continue
        try:
            vol = sc.load()
            validate_case(vol, num_classes)
        except CaseError as e:
            result.failures.append({"case": sc.case, "file": e.file, "reason": e.reason})
            log(f"FAILED {sc.case}: {e}")
            continue
        write_nifti(out_dir / image_rel, _image_dtype(vol.image), vol.affine)
        write_nifti(out_dir / label_rel, np.asarray(vol.label).astype(np.uint8), vol.affine)
        for n in vol.notes:
            result.notes.append({"case": sc.case, "note": n})
        result.items[sc.case] = item
        result.written.append(sc.case)
        log(f"wrote {sc.case} {tuple(vol.image.shape)}")
    return result


def ratio_split(patients: Sequence[str], ratios: Sequence[float], seed: int) -> dict[str, list[str]]:
    """Split patient ids into training/validation/test by ``ratios`` (normalised), shuffled by ``seed``.

    Counts are rounded so that they sum to the number of patients; each non-zero ratio gets at least
    one patient when there are enough patients.
    """
    ids = sorted(set(patients))
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or np.any(r < 0) or r.sum() <= 0:
        raise ValueError(f"split ratios must be three non-negative numbers, got {list(ratios)}")
    r = r / r.sum()
    n = len(ids)
    counts = np.floor(r * n).astype(int)
    for i in np.argsort(-(r * n - counts))[: n - counts.sum()]:
        counts[i] += 1
    for i in range(3):  # make sure a requested list is not empty
        if r[i] > 0 and counts[i] == 0 and counts.max() > 1:
            counts[int(np.argmax(counts))] -= 1
            counts[i] += 1
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ids[i] for i in order]
    a, b = counts[0], counts[0] + counts[1]
    return {"training": sorted(shuffled[:a]), "validation": sorted(shuffled[a:b]), "test": sorted(shuffled[b:])}


def write_datalist(
    out_dir: str | os.PathLike,
    result: PrepareResult,
    split: dict[str, list[str]],
    meta: dict,
    log: Callable[[str], None] = print,
) -> dict:
    """Write ``datalist.json`` and ``prepare_report.json`` in ``out_dir``; return the report.

    ``split`` maps ``training``/``validation``/``test`` to patient ids (plus an optional ``method``
    string). Prepared cases whose patient is in no list are reported as failures (never dropped
    silently).
    """
    out_dir = Path(out_dir)
    lists: dict[str, list[dict]] = {"training": [], "validation": [], "test": []}
    where = {p: name for name in lists for p in split.get(name, [])}
    failures = list(result.failures)
    for case in sorted(result.items):
        item = result.items[case]
        name = where.get(item["patient"])
        if name is None:
            failures.append(
                {"case": case, "file": item["image"], "reason": f"patient {item['patient']} is in no split list"}
            )
            continue
        lists[name].append(item)
    datalist = {
        **meta,
        "split": {k: sorted(split.get(k, [])) for k in lists} | {"method": split.get("method", "")},
        "numTraining": len(lists["training"]),
        "numValidation": len(lists["validation"]),
        "numTest": len(lists["test"]),
        **lists,
    }
    report = {
        "written": sorted(result.written),
        "skipped_existing": sorted(result.skipped),
        "failed": failures,
        "notes": result.notes,
        "ok": not failures,
    }
    atomic_write_json(out_dir / DATALIST_NAME, datalist)
    atomic_write_json(out_dir / REPORT_NAME, report)
    log(
        f"{len(result.written)} written, {len(result.skipped)} already prepared, {len(failures)} failed; "
        f"training {datalist['numTraining']}, validation {datalist['numValidation']}, test {datalist['numTest']} "
        f"-> {out_dir / DATALIST_NAME}"
    )
    for f in failures:
        log(f"  FAILED {f['case']}: {f['file']}: {f['reason']}")
    for n in result.notes:
        log(f"  note {n['case']}: {n['note']}")
    return report
