# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Write synthetic ACDC / Synapse phantoms in the on-disk layouts of the real releases.

Usage::

    python -m aisam_monai.data.synthetic --layout acdc|acdc-ssl4mis|acdc-mtunet|synapse|synapse-transunet \
        --out DIR --cases N --seed S [--size PX] [--slices LO HI]

Layouts (see docs/data.md): ``acdc`` the official challenge release; ``acdc-ssl4mis`` SSL4MIS h5
(training patients as slices only); ``acdc-mtunet`` MT-UNet npz with ``lists_ACDC``; ``synapse`` BTCV
``RawData/Training`` (13 organs, HU); ``synapse-transunet`` TransUNet npz/h5 with ``lists_Synapse``.
The same seed gives the same files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from aisam_monai.data.cases import ratio_split
from aisam_monai.data.phantoms import abdomen_case, abdomen_volume, cardiac_patient, cardiac_volume, random_rotation
from aisam_monai.data.synapse import BTCV_TO_SYNAPSE, CT_WINDOW, SYNAPSE_TEST, SYNAPSE_TRAIN
from aisam_monai.io.atomic import atomic_write_bytes
from aisam_monai.io.nifti import write_nifti

__all__ = ["LAYOUTS", "write_phantoms", "synapse_case_ids", "main"]

LAYOUTS = ("acdc", "acdc-ssl4mis", "acdc-mtunet", "synapse", "synapse-transunet")


def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))


def _write_h5(path: Path, **arrays: np.ndarray) -> None:
    def _w(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v, compression="gzip", compression_opts=1)

    atomic_write_bytes(path, _w)


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    def _w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write_bytes(path, _w)


def _acdc_patient(rng: np.random.Generator, size: int | None):
    p = cardiac_patient(rng)
    if size is not None:  # same field of view on a smaller matrix (tests)
        fov = p.cols * p.pixel
        p.rows, p.cols, p.pixel = max(8, round(size * p.rows / p.cols)), size, fov / size
    return p


def _minmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return (x - x.min()) / max(float(x.max() - x.min()), 1e-6)


def _write_acdc(out: Path, layout: str, cases: int, seed: int, size: int | None, log) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"patient{i:03d}" for i in range(1, cases + 1)]
    split = ratio_split(ids, (0.7, 0.1, 0.2), seed)
    where = {p: k for k, v in split.items() for p in v}
    lists: dict[str, list[str]] = {"training": [], "validation": [], "test": [], "slices": []}
    for pid in ids:
        p = _acdc_patient(rng, size)
        es_frame = int(rng.integers(8, 17))
        frames = {"ED": 1, "ES": es_frame}
        for phase, frame in frames.items():
            image, label = cardiac_volume(p, phase)  # (Z, H, W)
            name = f"{pid}_frame{frame:02d}"
            if layout == "acdc":
                folder = out / ("training" if int(pid[7:]) <= 100 else "testing") / pid
                affine = np.eye(4)
                affine[:3, :3] = random_rotation(np.random.default_rng([seed, int(pid[7:])])) * np.array(
                    [p.pixel, p.pixel, p.slice_spacing]
                )
                affine[:3, 3] = rng.uniform(-150, 150, 3)
                write_nifti(folder / f"{name}.nii.gz", np.moveaxis(image, 0, -1), affine)
                write_nifti(folder / f"{name}_gt.nii.gz", np.moveaxis(label, 0, -1), affine)
            elif layout == "acdc-ssl4mis":
                img01 = _minmax(image)
                if where[pid] == "training":  # circulated copies keep training patients as slices only
                    for k in range(image.shape[0]):
                        _write_h5(out / "data" / "slices" / f"{name}_slice_{k}.h5", image=img01[k], label=label[k])
                        lists["slices"].append(f"{name}_slice_{k}")
                else:
                    _write_h5(out / "data" / f"{name}.h5", image=img01, label=label)
                lists[where[pid]].append(name)
            else:  # acdc-mtunet
                img11 = _minmax(image) * 2 - 1
                case = f"case_{int(pid[7:]):03d}"
                if where[pid] == "test":
                    rel = f"{case}_volume_{phase}.npz"
                    _write_npz(out / "test" / rel, img=img11, label=label)
                    lists["test"].append(rel)
                else:
                    sub = "train" if where[pid] == "training" else "valid"
                    for k in range(image.shape[0]):
                        rel = f"{case}_slice{phase}_{k}.npz"
                        _write_npz(out / sub / rel, img=img11[k], label=label[k])
                        lists[where[pid]].append(rel)
        if layout == "acdc":
            info = (
                f"ED: 1\nES: {es_frame}\nGroup: NOR\nHeight: {rng.uniform(155, 190):.1f}\n"
                f"NbFrame: {es_frame + 14}\nWeight: {rng.uniform(55, 95):.1f}\n"
            )
            _write_text(folder / "Info.cfg", info)
        log(f"{pid}: {p.slices} slices of {p.rows}x{p.cols}, {p.pixel:.2f} mm, {p.slice_spacing:.1f} mm apart")
    if layout == "acdc-ssl4mis":
        for fname, key in (
            ("train.list", "training"),
            ("train_slices.list", "slices"),
            ("val.list", "validation"),
            ("test.list", "test"),
        ):
            _write_text(out / fname, "".join(f"{n}\n" for n in lists[key]))
    elif layout == "acdc-mtunet":
        for fname, key in (("train.txt", "training"), ("valid.txt", "validation"), ("test.txt", "test")):
            _write_text(out / "lists_ACDC" / fname, "".join(f"{n}\n" for n in lists[key]))


def synapse_case_ids(cases: int) -> list[str]:
    """The first ``cases`` BTCV case numbers, alternating training and test cases 3:2 so that small
    sets have both (ids beyond the 30 of the release continue at 0041)."""
    train, test = list(SYNAPSE_TRAIN), list(SYNAPSE_TEST)
    order = []
    while train or test:
        order += train[:3] + test[:2]
        train, test = train[3:], test[2:]
    order += [f"{n:04d}" for n in range(41, 41 + max(0, cases - len(order)))]
    return order[:cases]


def _write_synapse(
    out: Path, layout: str, cases: int, seed: int, size: int | None, slices: tuple[int, int], log
) -> None:
    rng = np.random.default_rng(seed)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for num in synapse_case_ids(cases):
        a = abdomen_case(rng, size or 512, slices)
        hu, btcv = abdomen_volume(a)  # (Z, H, W)
        if layout == "synapse":
            root = out / "RawData" / "Training"
            affine = np.diag([-a.pixel, -a.pixel, a.slice_spacing, 1.0])
            affine[:3, 3] = (a.pixel * (a.size - 1) / 2, a.pixel * (a.size - 1) / 2, -a.slice_spacing * a.slices)
            # BTCV arrays are (column, row, slice); the last slice is the most superior
            write_nifti(root / "img" / f"img{num}.nii.gz", np.ascontiguousarray(hu[::-1].transpose(2, 1, 0)), affine)
            write_nifti(
                root / "label" / f"label{num}.nii.gz", np.ascontiguousarray(btcv[::-1].transpose(2, 1, 0)), affine
            )
        else:
            image = np.clip((hu.astype(np.float32) - CT_WINDOW[0]) / (CT_WINDOW[1] - CT_WINDOW[0]), 0, 1)
            label = BTCV_TO_SYNAPSE[btcv]
            if num in SYNAPSE_TEST:
                _write_h5(out / "test_vol_h5" / f"case{num}.npy.h5", image=image, label=label.astype(np.float32))
                lists["test"].append(f"case{num}")
            else:
                for k in range(image.shape[0]):
                    _write_npz(
                        out / "train_npz" / f"case{num}_slice{k:03d}.npz",
                        image=image[k],
                        label=label[k].astype(np.float32),
                    )
                    lists["train"].append(f"case{num}_slice{k:03d}")
        log(f"case{num}: {a.slices} slices of {a.size}x{a.size}, {a.pixel:.2f} mm, {a.slice_spacing:.1f} mm apart")
    if layout == "synapse-transunet":
        _write_text(out / "lists_Synapse" / "train.txt", "".join(f"{n}\n" for n in lists["train"]))
        _write_text(out / "lists_Synapse" / "test_vol.txt", "".join(f"{n}\n" for n in lists["test"]))
        _write_text(out / "lists_Synapse" / "all.lst", "".join(f"{n}.npz\n" for n in lists["train"]))


def write_phantoms(
    layout: str,
    out: str | Path,
    cases: int,
    seed: int = 0,
    size: int | None = None,
    slices: tuple[int, int] = (40, 150),
    log=print,
) -> None:
    """Write ``cases`` synthetic cases in ``layout`` under ``out``.

    Args:
        layout: one of :data:`LAYOUTS`.
        out: output folder.
        cases: number of patients (ACDC: two frames each) or CT volumes.
        seed: random seed; equal seeds give equal files.
        size: ACDC: matrix width in px (field of view kept); Synapse: in-plane size (default 512).
        slices: Synapse slice count range (ACDC stacks have 6-12 slices).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout '{layout}', expected one of {LAYOUTS}")
    out = Path(out)
    if layout.startswith("acdc"):
        _write_acdc(out, layout, cases, seed, size, log)
    else:
        _write_synapse(out, layout, cases, seed, size, slices, log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aisam_monai.data.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", required=True, choices=LAYOUTS)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=None, help="ACDC matrix width / Synapse slice size in px")
    parser.add_argument(
        "--slices", type=int, nargs=2, default=(40, 150), metavar=("LO", "HI"), help="Synapse slice count range"
    )
    args = parser.parse_args(argv)
    write_phantoms(args.layout, args.out, args.cases, args.seed, args.size, tuple(args.slices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
