# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Prepared cases: the case records, their validation, writing as NIfTI, the split by patient, the failure report
and the decathlon-style datalist.

Every source form (``acdc.py``, ``synapse.py``) turns its files into a list of :class:`SourceCase` (with the readers
of :mod:`aisam_monai.data.sources`); :func:`prepare_cases` validates and writes them and :func:`write_datalist`
records the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aisam_monai.io.atomic import atomic_write_json
from aisam_monai.io.checks import check_image_array, check_label_array
from aisam_monai.io.errors import InputError
from aisam_monai.io.nifti import write_nifti

__all__ = [
    "DATALIST_NAME",
    "CaseError",
    "SourceCase",
    "CaseVolume",
    "PrepareResult",
    "validate_case",
    "prepare_cases",
    "ratio_split",
    "write_datalist",
]

IMAGES_DIR = "images"
LABELS_DIR = "labels"
DATALIST_NAME = "datalist.json"
REPORT_NAME = "prepare_report.json"


class CaseError(InputError):
    """A bad source case: ``file`` is the offending path, ``reason`` says what was expected."""


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


def validate_case(vol: CaseVolume, num_classes: int, nonfinite: str = "error") -> None:
    """Check one loaded case with the input checks (:mod:`aisam_monai.io.checks`); with ``nonfinite="fill"``
    the image's NaN and infinite voxels are filled in place of ``vol.image`` (with a warning).

    Raises:
        InputError: non-3D or empty volume, NaN/inf intensities (``nonfinite="error"``), image/label shape
            mismatch, non-integer label values or values outside ``0..num_classes-1``, naming the file.
    """
    vol.image = check_image_array(vol.image, vol.image_file, nonfinite)
    check_label_array(vol.label, vol.label_file, num_classes, vol.image.shape)


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
    nonfinite: str = "error",
) -> PrepareResult:
    """Validate and write every case as ``images/<case>.nii.gz`` and ``labels/<case>.nii.gz``.

    ``nonfinite``: what NaN/inf intensities do (:data:`~aisam_monai.io.checks.NONFINITE_POLICIES`).

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
            validate_case(vol, num_classes, nonfinite)
        except InputError as e:
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
