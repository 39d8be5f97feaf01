# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Synapse multi-organ CT source forms: BTCV ``RawData`` (13 organs, HU) and TransUNet's preprocessed
release (8 organs, HU window [-125, 275] scaled to [0, 1]). Cases are named ``caseNNNN``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from aisam_monai.data.cases import CaseError, CaseVolume, SourceCase
from aisam_monai.data.sources import read_h5, read_list, read_nifti, read_npz, stack_slices, zhw_volume
from aisam_monai.io.checks import check_label_array

__all__ = [
    "SYNAPSE_LABELS",
    "BTCV_LABELS",
    "BTCV_TO_SYNAPSE",
    "SYNAPSE_FORMS",
    "SYNAPSE_TRAIN",
    "SYNAPSE_TEST",
    "DEFAULT_SPACING",
    "CT_WINDOW",
    "detect_form",
    "find_btcv",
    "find_transunet",
    "find_cases",
    "default_split",
    "synapse_meta",
]

SYNAPSE_LABELS = {
    "0": "background",
    "1": "aorta",
    "2": "gallbladder",
    "3": "left kidney",
    "4": "right kidney",
    "5": "liver",
    "6": "pancreas",
    "7": "spleen",
    "8": "stomach",
}
BTCV_LABELS = {
    0: "background",
    1: "spleen",
    2: "right kidney",
    3: "left kidney",
    4: "gallbladder",
    5: "esophagus",
    6: "liver",
    7: "stomach",
    8: "aorta",
    9: "inferior vena cava",
    10: "portal and splenic veins",
    11: "pancreas",
    12: "right adrenal gland",
    13: "left adrenal gland",
}
# BTCV label value -> Synapse label value (organs outside the 8 of the paper become background).
_NAME_TO_SYNAPSE = {v: int(k) for k, v in SYNAPSE_LABELS.items()}
BTCV_TO_SYNAPSE = np.array([_NAME_TO_SYNAPSE.get(BTCV_LABELS[i], 0) for i in range(14)], dtype=np.uint8)
SYNAPSE_FORMS = ("btcv", "transunet")
SYNAPSE_TEST = ("0001", "0002", "0003", "0004", "0008", "0022", "0025", "0029", "0032", "0035", "0036", "0038")
SYNAPSE_TRAIN = (
    "0005", "0006", "0007", "0009", "0010", "0021", "0023", "0024", "0026",
    "0027", "0028", "0030", "0031", "0033", "0034", "0037", "0039", "0040",
)  # fmt: skip
# TransUNet's files store no spacing; approximately the median BTCV voxel (0.76 mm in-plane, 3 mm slices).
DEFAULT_SPACING = (0.76, 0.76, 3.0)
CT_WINDOW = (-125.0, 275.0)

_IMG = re.compile(r"^img(\d{4})\.nii(\.gz)?$")
_LAB = re.compile(r"^label(\d{4})\.nii(\.gz)?$")
_SLICE = re.compile(r"^case(\d{4})_slice(\d+)\.npz$")
_VOL = re.compile(r"^case(\d{4})\.npy\.h5$")


def _btcv_root(source: Path) -> Path | None:
    for d in (source, source / "Training", source / "RawData" / "Training", source / "RawData"):
        if (d / "img").is_dir() or (d / "label").is_dir():
            return d
    return None


def _transunet_root(source: Path) -> Path | None:
    for d in (source, source / "Synapse", source / "data" / "Synapse"):
        if (d / "train_npz").is_dir() or (d / "test_vol_h5").is_dir():
            return d
    return None


def detect_form(source: Path) -> str:
    """Return the Synapse form found under ``source``; ValueError when none or both match."""
    found = [n for n, hit in (("btcv", _btcv_root(source)), ("transunet", _transunet_root(source))) if hit is not None]
    if len(found) != 1:
        what = "none" if not found else " and ".join(found)
        raise ValueError(
            f"{source}: cannot tell the Synapse form (found {what}); expected img/ and label/ (btcv) "
            "or train_npz/ and test_vol_h5/ (transunet); pass --form"
        )
    return found[0]


def find_btcv(source: Path) -> tuple[list[SourceCase], None]:
    """Cases of BTCV ``RawData/Training``: ``img/imgNNNN.nii.gz`` with ``label/labelNNNN.nii.gz``.

    Labels are checked against the 14 BTCV values, then mapped to the 9 Synapse classes.
    """
    root = _btcv_root(source)
    if root is None:
        raise ValueError(f"{source}: no BTCV img/ or label/ folder")
    imgs = {m.group(1): p for p in (root / "img").glob("*") if (m := _IMG.match(p.name))}
    labs = {m.group(1): p for p in (root / "label").glob("*") if (m := _LAB.match(p.name))}

    def loader(image_file: Path, label_file: Path):
        def load() -> CaseVolume:
            image, affine, notes = read_nifti(image_file)
            label, _, _ = read_nifti(label_file)
            lab = np.asarray(label)
            check_label_array(lab, str(label_file), len(BTCV_LABELS))  # the BTCV values 0..13, mapped below
            return CaseVolume(
                image, BTCV_TO_SYNAPSE[lab.astype(np.int64)], affine, str(image_file), str(label_file), notes
            )

        return load

    cases = []
    for num in sorted(set(imgs) | set(labs)):
        img = imgs.get(num, root / "img" / f"img{num}.nii.gz")
        lab = labs.get(num, root / "label" / f"label{num}.nii.gz")
        case = SourceCase(f"case{num}", f"case{num}", [str(img), str(lab)], loader(img, lab))
        if num not in imgs:
            case.error = CaseError(img, f"missing image for label {lab.name}")
        elif num not in labs:
            case.error = CaseError(lab, f"missing label for image {img.name}")
        cases.append(case)
    return cases, None


def _find_lists(source: Path, root: Path) -> Path | None:
    for d in (
        source / "lists_Synapse",
        root / "lists_Synapse",
        source / "lists" / "lists_Synapse",
        root.parent / "lists_Synapse",
    ):
        if d.is_dir():
            return d
    return None


def find_transunet(source: Path, spacing=DEFAULT_SPACING) -> tuple[list[SourceCase], dict]:
    """Cases of TransUNet's release: ``train_npz/caseNNNN_sliceNNN.npz`` (rebuilt into volumes in slice
    order) and ``test_vol_h5/caseNNNN.npy.h5``, (Z, H, W) ``image`` in [0, 1] and ``label``. The split
    follows the folders; when ``lists_Synapse`` (train.txt, test_vol.txt) is found, each listed name
    must exist.
    """
    root = _transunet_root(source)
    if root is None:
        raise ValueError(f"{source}: no train_npz/ or test_vol_h5/ folder")
    slices: dict[str, dict[int, Path]] = defaultdict(dict)
    for p in (root / "train_npz").glob("*.npz") if (root / "train_npz").is_dir() else []:
        if m := _SLICE.match(p.name):
            slices[m.group(1)][int(m.group(2))] = p
    vols = (
        {m.group(1): p for p in (root / "test_vol_h5").glob("*.h5") if (m := _VOL.match(p.name))}
        if (root / "test_vol_h5").is_dir()
        else {}
    )
    cases: list[SourceCase] = []
    lists = _find_lists(source, root)
    if lists is not None:
        for fname, folder, suffix in (("train.txt", "train_npz", ".npz"), ("test_vol.txt", "test_vol_h5", ".npy.h5")):
            for entry in read_list(lists / fname):
                if not (root / folder / f"{entry}{suffix}").exists():
                    f = root / folder / f"{entry}{suffix}"
                    cases.append(
                        SourceCase(
                            entry,
                            entry[:8],
                            [str(f)],
                            None,
                            error=CaseError(f, f"listed in {lists / fname} but missing"),
                        )
                    )

    def train_loader(num: str):
        def load() -> CaseVolume:
            files = slices[num]
            image, label = stack_slices(
                {k: read_npz(p, "image") for k, p in files.items()}, {k: str(p) for k, p in files.items()}
            )
            first = files[min(files)]
            return zhw_volume(image, label, first, first, spacing)

        return load

    def test_loader(num: str):
        def load() -> CaseVolume:
            image, label = read_h5(vols[num])
            return zhw_volume(image, label, vols[num], vols[num], spacing)

        return load

    for num in sorted(slices):
        src = sorted(slices[num].values())[0]
        cases.append(SourceCase(f"case{num}", f"case{num}", [str(src)], train_loader(num)))
    for num in sorted(vols):
        case = SourceCase(f"case{num}", f"case{num}", [str(vols[num])], test_loader(num))
        cases.append(case)
    split = {
        "training": [f"case{n}" for n in sorted(slices) if n not in vols],
        "validation": [],
        "test": [f"case{n}" for n in sorted(vols)],
        "method": f"TransUNet folders in {root}",
    }
    return cases, split


def default_split(patients: list[str]) -> dict[str, list[str]]:
    """The 18 training / 12 test cases of TransUNet (Chen et al., arXiv 2102.04306); other case ids go to training."""
    test = {f"case{n}" for n in SYNAPSE_TEST}
    return {
        "training": sorted(p for p in patients if p not in test),
        "validation": [],
        "test": sorted(p for p in patients if p in test),
        "method": "TransUNet 18/12 cases (other ids in training)",
    }


def find_cases(source: Path, form: str | None, spacing=None) -> tuple[str, list[SourceCase], dict | None]:
    """Detect (or check) the form and list its cases; returns ``(form, cases, split or None)``."""
    form = form or detect_form(source)
    if form == "btcv":
        return form, *find_btcv(source)
    if form == "transunet":
        return form, *find_transunet(source, spacing or DEFAULT_SPACING)
    raise ValueError(f"unknown Synapse form '{form}', expected one of {SYNAPSE_FORMS}")


def synapse_meta(form: str, spacing=None) -> dict:
    """Datalist metadata for Synapse prepared from ``form``."""
    intensity = (
        {"kind": "ct_window", "a_min": CT_WINDOW[0], "a_max": CT_WINDOW[1]}
        if form == "btcv"
        else {"kind": "range", "a_min": 0.0, "a_max": 1.0}
    )
    return {
        "name": "Synapse",
        "description": "Synapse multi-atlas abdominal CT (BTCV), 8 organs of the AI-SAM / TransUNet protocol",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": dict(SYNAPSE_LABELS),
        "num_classes": len(SYNAPSE_LABELS),
        "intensity": intensity,
        "slice_axis": 2,
        "source": {"form": form, "spacing": "header" if form == "btcv" else list(spacing or DEFAULT_SPACING)},
    }
