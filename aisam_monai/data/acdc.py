# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""ACDC (cardiac cine MRI) source forms: the official challenge release, the SSL4MIS h5 form and the
MT-UNet npz form. Each ``find_*`` function returns :class:`~aisam_monai.data.cases.SourceCase` items
(one per patient and cardiac phase, ``case = patientNNN_ED|ES``) and, where the form ships one, its
split by patient.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from aisam_monai.data.cases import CaseError, CaseVolume, SourceCase
from aisam_monai.data.sources import read_h5, read_list, read_nifti, read_npz, stack_slices, zhw_volume

__all__ = [
    "ACDC_LABELS",
    "ACDC_FORMS",
    "DEFAULT_SPACING",
    "detect_form",
    "find_official",
    "find_ssl4mis",
    "find_mtunet",
    "find_cases",
    "acdc_meta",
]

ACDC_LABELS = {"0": "background", "1": "RV", "2": "Myo", "3": "LV"}
ACDC_FORMS = ("official", "ssl4mis", "mtunet")
# The preprocessed forms store no spacing. 1.5625 mm is the most frequent in-plane pixel size of the
# official release (range 1.37-1.68 mm) and 10 mm the most frequent distance between slice centres
# (5-10 mm); documented in docs/data.md.
DEFAULT_SPACING = (1.5625, 1.5625, 10.0)

_FRAME = re.compile(r"^(patient\d+)_frame(\d+)\.nii(\.gz)?$")
_SSL_VOL = re.compile(r"^(patient\d+)_frame(\d+)$")
_SSL_SLICE = re.compile(r"^(patient\d+_frame\d+)_slice_(\d+)\.h5$")
_MT = re.compile(r"^case_(\d+)_(slice|volume)_?(ED|ES)(?:_(\d+))?\.npz$")


def _read_info(path: Path) -> dict[str, str]:
    info = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


def _official_roots(source: Path) -> list[Path]:
    """Directories holding ``patientNNN`` folders: the source itself or its training/testing."""
    roots = [d for d in (source / "training", source / "testing") if d.is_dir()]
    if not roots and any(source.glob("patient*/Info.cfg")):
        roots = [source]
    if not roots and (source / "database").is_dir():
        return _official_roots(source / "database")
    return roots


def _ssl4mis_root(source: Path) -> Path | None:
    for d in (source, source / "ACDC"):
        if (d / "data").is_dir() and (any((d / "data").glob("*.h5")) or (d / "data" / "slices").is_dir()):
            return d
    return None


def _mtunet_root(source: Path) -> Path | None:
    for d in (source, source / "ACDC"):
        if (d / "lists_ACDC").is_dir():
            return d
    return None


def detect_form(source: Path) -> str:
    """Return the ACDC form found under ``source``.

    Raises:
        ValueError: no form or several forms match (then pass ``--form``).
    """
    found = [
        name
        for name, hit in (
            ("official", bool(_official_roots(source))),
            ("ssl4mis", _ssl4mis_root(source) is not None),
            ("mtunet", _mtunet_root(source) is not None),
        )
        if hit
    ]
    if len(found) != 1:
        what = "none" if not found else " and ".join(found)
        raise ValueError(
            f"{source}: cannot tell the ACDC form (found {what}); expected training/patientNNN/Info.cfg "
            "(official), data/*.h5 (ssl4mis) or lists_ACDC/ (mtunet); pass --form"
        )
    return found[0]


def _nifti_pair_loader(image_file: Path, label_file: Path):
    def load() -> CaseVolume:
        image, affine, notes = read_nifti(image_file)
        label, _, _ = read_nifti(label_file)
        return CaseVolume(image, label, affine, str(image_file), str(label_file), notes)

    return load


def find_official(source: Path) -> tuple[list[SourceCase], dict | None]:
    """Cases of the official release: ED and ES frames named in each patient's ``Info.cfg``.

    Without ``Info.cfg`` every ``patientNNN_frameXX`` with a ``_gt`` partner is taken, phase by order.
    """
    cases = []
    for root in _official_roots(source):
        for pdir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("patient")):
            pid = pdir.name
            frames = {
                int(m.group(2)): pdir / n for n in sorted(f.name for f in pdir.iterdir()) if (m := _FRAME.match(n))
            }
            gts = {int(f.name.split("_frame")[1][:2]): f for f in pdir.glob(f"{pid}_frame*_gt.nii*")}
            info_file = pdir / "Info.cfg"
            if info_file.exists():
                info = _read_info(info_file)
                try:
                    phases = {"ED": int(info["ED"]), "ES": int(info["ES"])}
                except (KeyError, ValueError):
                    cases.append(
                        SourceCase(
                            f"{pid}_ED",
                            pid,
                            [str(info_file)],
                            None,
                            error=CaseError(info_file, "expected 'ED: n' and 'ES: n' lines"),
                        )
                    )
                    continue
            else:
                numbers = sorted(set(frames) | set(gts))
                phases = dict(zip(("ED", "ES"), numbers))
            for phase, frame in phases.items():
                img = frames.get(frame, pdir / f"{pid}_frame{frame:02d}.nii.gz")
                gt = gts.get(frame, pdir / f"{pid}_frame{frame:02d}_gt.nii.gz")
                case = SourceCase(
                    f"{pid}_{phase}",
                    pid,
                    [str(img), str(gt)],
                    _nifti_pair_loader(img, gt),
                    {"phase": phase, "frame": frame},
                )
                if not img.exists():
                    case.error = CaseError(img, f"missing image for label {gt.name}")
                elif not gt.exists():
                    case.error = CaseError(gt, f"missing label for image {img.name}")
                cases.append(case)
    return cases, None


def find_ssl4mis(source: Path, spacing=DEFAULT_SPACING) -> tuple[list[SourceCase], dict | None]:
    """Cases of the SSL4MIS form: ``data/patientNNN_frameNN.h5`` volumes, or volumes rebuilt from
    ``data/slices/patientNNN_frameNN_slice_K.h5`` when only slices exist. Phases: the lower frame
    number of a patient is ED, the higher ES. Split from ``train.list``/``val.list``/``test.list``
    (``train_slices.list`` when ``train.list`` is missing).
    """
    root = _ssl4mis_root(source)
    if root is None:
        raise ValueError(f"{source}: no SSL4MIS data/ folder with .h5 files")
    data = root / "data"
    volumes = {p.stem: p for p in data.glob("*.h5") if _SSL_VOL.match(p.stem)}
    slices: dict[str, dict[int, Path]] = defaultdict(dict)
    for p in (data / "slices").glob("*.h5") if (data / "slices").is_dir() else []:
        if m := _SSL_SLICE.match(p.name):
            slices[m.group(1)][int(m.group(2))] = p
    names = sorted(set(volumes) | set(slices))
    by_patient: dict[str, list[str]] = defaultdict(list)
    for n in names:
        by_patient[_SSL_VOL.match(n).group(1)].append(n)

    def loader(name: str):
        def load() -> CaseVolume:
            if name in volumes:
                image, label = read_h5(volumes[name])
                return zhw_volume(image, label, volumes[name], volumes[name], spacing)
            files = {k: str(p) for k, p in slices[name].items()}
            image, label = stack_slices({k: read_h5(p) for k, p in slices[name].items()}, files)
            first = Path(files[min(files)])
            return zhw_volume(image, label, first, first, spacing)

        return load

    cases = []
    for pid, frame_names in sorted(by_patient.items()):
        ordered = sorted(frame_names, key=lambda n: int(n.split("_frame")[1]))
        for phase, name in zip(("ED", "ES"), ordered):
            src = volumes.get(name) or sorted(slices[name].values())[0]
            cases.append(
                SourceCase(
                    f"{pid}_{phase}",
                    pid,
                    [str(src)],
                    loader(name),
                    {"phase": phase, "frame": int(name.split("_frame")[1])},
                )
            )
        for extra in ordered[2:]:
            cases.append(
                SourceCase(
                    f"{pid}_{extra}",
                    pid,
                    [str(volumes.get(extra, data))],
                    None,
                    error=CaseError(volumes.get(extra, data / extra), f"more than two frames for {pid}: {ordered}"),
                )
            )
    lists = {}
    for key, fname in (("training", "train.list"), ("validation", "val.list"), ("test", "test.list")):
        entries = read_list(root / fname) or (read_list(root / "train_slices.list") if key == "training" else [])
        lists[key] = sorted({e.split("_")[0] for e in entries})
    for fname in ("train.list", "train_slices.list", "val.list", "test.list"):
        for entry in read_list(root / fname):  # a listed volume or slice must exist
            m = _SSL_SLICE.match(f"{entry}.h5")
            missing = (
                (m.group(1) not in slices or int(m.group(2)) not in slices[m.group(1)]) if m else entry not in names
            )
            if missing:
                f = data / "slices" / f"{entry}.h5" if m else data / f"{entry}.h5"
                error = CaseError(f, f"listed in {root / fname} but missing")
                cases.append(SourceCase(entry, entry.split("_")[0], [str(f)], None, error=error))
    split = lists | {"method": f"SSL4MIS lists in {root}"} if any(lists.values()) else None
    return cases, split


def find_mtunet(source: Path, spacing=DEFAULT_SPACING) -> tuple[list[SourceCase], dict]:
    """Cases of the MT-UNet form: ``lists_ACDC/{train,valid,test}.txt`` naming 2D slices
    ``case_NNN_slice[_]ED|ES_K.npz`` (train/valid, rebuilt into volumes in slice order) and volumes
    ``case_NNN_volume[_]ED|ES.npz`` (test), each with ``img`` and ``label`` arrays, ``img`` in [-1, 1].
    Files are looked up in ``<split dir>/`` and in the root. The split is the lists'.
    """
    root = _mtunet_root(source)
    if root is None:
        raise ValueError(f"{source}: no lists_ACDC/ folder")
    groups: dict[tuple[str, str], dict[int, Path]] = defaultdict(dict)
    vols: dict[tuple[str, str], Path] = {}
    split: dict[str, list[str]] = {"method": f"MT-UNet lists in {root / 'lists_ACDC'}"}
    cases: list[SourceCase] = []
    for key, (fname, sub) in {
        "training": ("train.txt", "train"),
        "validation": ("valid.txt", "valid"),
        "test": ("test.txt", "test"),
    }.items():
        patients = set()
        for entry in read_list(root / "lists_ACDC" / fname):
            name = Path(entry).name
            m = _MT.match(name if name.endswith(".npz") else name + ".npz")
            if not m:
                cases.append(
                    SourceCase(
                        name,
                        name,
                        [entry],
                        None,
                        error=CaseError(
                            root / "lists_ACDC" / fname, f"entry '{entry}' is not case_NNN_slice|volume_ED|ES[_K].npz"
                        ),
                    )
                )
                continue
            pid = f"patient{int(m.group(1)):03d}"
            patients.add(pid)
            path = next(
                (p for p in (root / sub / entry, root / entry, root / sub / m.group(0)) if p.exists()),
                root / sub / m.group(0),
            )
            if m.group(2) == "volume":
                vols[(pid, m.group(3))] = path
            else:
                groups[(pid, m.group(3))][int(m.group(4) or 0)] = path
        split[key] = sorted(patients)

    def loader(pid: str, phase: str):
        def load() -> CaseVolume:
            if (pid, phase) in vols:
                image, label = read_npz(vols[(pid, phase)], "img")
                return zhw_volume(image, label, vols[(pid, phase)], vols[(pid, phase)], spacing)
            files = groups[(pid, phase)]
            for p in files.values():
                if not p.exists():
                    raise CaseError(p, "listed slice file is missing")
            image, label = stack_slices(
                {k: read_npz(p, "img") for k, p in files.items()}, {k: str(p) for k, p in files.items()}
            )
            first = files[min(files)]
            return zhw_volume(image, label, first, first, spacing)

        return load

    for pid, phase in sorted(set(vols) | set(groups)):
        src = vols.get((pid, phase)) or sorted(groups[(pid, phase)].values())[0]
        case = SourceCase(f"{pid}_{phase}", pid, [str(src)], loader(pid, phase), {"phase": phase})
        if (pid, phase) in vols and not vols[(pid, phase)].exists():
            case.error = CaseError(vols[(pid, phase)], "listed volume file is missing")
        cases.append(case)
    return cases, split


def find_cases(source: Path, form: str | None, spacing=None) -> tuple[str, list[SourceCase], dict | None]:
    """Detect (or check) the form and list its cases; returns ``(form, cases, split or None)``."""
    form = form or detect_form(source)
    if form == "official":
        return form, *find_official(source)
    if form == "ssl4mis":
        return form, *find_ssl4mis(source, spacing or DEFAULT_SPACING)
    if form == "mtunet":
        return form, *find_mtunet(source, spacing or DEFAULT_SPACING)
    raise ValueError(f"unknown ACDC form '{form}', expected one of {ACDC_FORMS}")


def acdc_meta(form: str, spacing=None) -> dict:
    """Datalist metadata for ACDC prepared from ``form``."""
    intensity = {
        "official": {"kind": "per_volume", "lower": 0.5, "upper": 99.5},
        "ssl4mis": {"kind": "range", "a_min": 0.0, "a_max": 1.0},
        "mtunet": {"kind": "range", "a_min": -1.0, "a_max": 1.0},
    }[form]
    return {
        "name": "ACDC",
        "description": "Automated Cardiac Diagnosis Challenge, cine MRI short-axis stacks at ED and ES",
        "tensorImageSize": "3D",
        "modality": {"0": "MRI"},
        "labels": dict(ACDC_LABELS),
        "num_classes": len(ACDC_LABELS),
        "intensity": intensity,
        "slice_axis": 2,
        "source": {"form": form, "spacing": "header" if form == "official" else list(spacing or DEFAULT_SPACING)},
    }
