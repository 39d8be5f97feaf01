# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Round trips phantom -> source layout -> prepare -> datalist -> MONAI LoadImaged, and bad inputs."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import unittest
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import torch
from monai.data import load_decathlon_datalist
from monai.transforms import EnsureChannelFirstd, LoadImaged

from aisam_monai.data import acdc, synapse
from aisam_monai.data.prepare import main, prepare
from aisam_monai.data.sources import zhw_affine
from aisam_monai.data.synthetic import write_phantoms

torch.set_num_threads(1)


def _quiet(*_):
    pass


def _snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*") if p.is_file()}


def _load(out: Path, item: dict) -> dict:
    loader = LoadImaged(keys=("image", "label"), image_only=True)
    return EnsureChannelFirstd(keys=("image", "label"))(loader({k: str(out / item[k]) for k in ("image", "label")}))


class _TmpCase(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_datalist(self, out: Path, n_cases: int, labels: dict) -> dict:
        with open(out / "datalist.json") as f:
            dl = json.load(f)
        self.assertEqual(dl["labels"], labels)
        self.assertIn("kind", dl["intensity"])
        patients = {k: {i["patient"] for i in dl[k]} for k in ("training", "validation", "test")}
        self.assertFalse(patients["training"] & patients["validation"])
        self.assertFalse(patients["training"] & patients["test"])
        self.assertFalse(patients["validation"] & patients["test"])
        self.assertEqual(sum(len(dl[k]) for k in ("training", "validation", "test")), n_cases)
        for k in ("training", "validation", "test"):
            self.assertEqual(sorted(dl["split"][k]), sorted(patients[k] | set(dl["split"][k])))
            for item in dl[k]:
                self.assertFalse(os.path.isabs(item["image"]))
        # MONAI reads it as a decathlon datalist
        self.assertEqual(
            len(load_decathlon_datalist(str(out / "datalist.json"), True, "training", str(out))), len(dl["training"])
        )
        return dl


class TestACDCRoundTrip(_TmpCase):
    def test_official(self):
        src, out = self.tmp / "src", self.tmp / "out"
        write_phantoms("acdc", src, cases=4, seed=3, size=40, log=_quiet)
        before = _snapshot(src)
        report = prepare("acdc", src, out, log=_quiet)
        self.assertTrue(report["ok"])
        self.assertEqual(_snapshot(src), before)  # the source is never modified
        dl = self.check_datalist(out, 8, acdc.ACDC_LABELS)
        self.assertEqual(dl["source"]["form"], "official")
        for item in dl["training"] + dl["validation"] + dl["test"]:
            pdir = src / "training" / item["patient"]
            stem = f"{item['patient']}_frame{item['frame']:02d}"
            ref_img, ref_lab = nib.load(pdir / f"{stem}.nii.gz"), nib.load(pdir / f"{stem}_gt.nii.gz")
            d = _load(out, item)
            np.testing.assert_array_equal(d["image"][0].numpy(), np.asarray(ref_img.dataobj))
            np.testing.assert_array_equal(d["label"][0].numpy(), np.asarray(ref_lab.dataobj))
            np.testing.assert_allclose(d["image"].affine.numpy(), ref_img.affine, atol=1e-4)  # orientation kept
            np.testing.assert_allclose(d["label"].pixdim.numpy(), ref_img.header.get_zooms()[:3], rtol=1e-5)
        info = acdc._read_info(src / "training" / "patient001" / "Info.cfg")
        ed = next(i for i in dl["training"] + dl["validation"] + dl["test"] if i["case"] == "patient001_ES")
        self.assertEqual(ed["frame"], int(info["ES"]))
        # re-run skips every finished case; --overwrite rewrites them
        self.assertEqual(len(prepare("acdc", src, out, log=_quiet)["skipped_existing"]), 8)
        self.assertEqual(len(prepare("acdc", src, out, overwrite=True, log=_quiet)["written"]), 8)

    def test_ssl4mis(self):
        src, out = self.tmp / "src", self.tmp / "out"
        write_phantoms("acdc-ssl4mis", src, cases=5, seed=4, size=40, log=_quiet)
        self.assertFalse(
            any((src / "data").glob("patient001_*.h5")) and any((src / "data" / "slices").glob("patient001_*"))
        )
        report = prepare("acdc", src, out, spacing=(1.4, 1.4, 8.0), log=_quiet)
        self.assertTrue(report["ok"], report["failed"])
        dl = self.check_datalist(out, 10, acdc.ACDC_LABELS)
        self.assertEqual(dl["source"]["form"], "ssl4mis")
        self.assertEqual(dl["intensity"], {"kind": "range", "a_min": 0.0, "a_max": 1.0})
        lists = {
            k: sorted({n.split("_")[0] for n in (src / f).read_text().split()})
            for k, f in (("training", "train.list"), ("validation", "val.list"), ("test", "test.list"))
        }
        for k, v in lists.items():
            self.assertEqual(dl["split"][k], v)  # the lists' split is kept
        for item in dl["training"] + dl["test"]:
            name = f"{item['patient']}_frame{item['frame']:02d}"
            if item in dl["training"]:  # rebuilt from slices in slice-index order
                files = sorted(
                    (src / "data" / "slices").glob(f"{name}_slice_*.h5"), key=lambda p: int(p.stem.rsplit("_", 1)[1])
                )
                ref = [h5py.File(f, "r") for f in files]
                ref_img, ref_lab = np.stack([r["image"][()] for r in ref]), np.stack([r["label"][()] for r in ref])
            else:
                with h5py.File(src / "data" / f"{name}.h5", "r") as r:
                    ref_img, ref_lab = r["image"][()], r["label"][()]
            d = _load(out, item)
            np.testing.assert_array_equal(d["image"][0].numpy(), np.moveaxis(ref_img, 0, -1))
            np.testing.assert_array_equal(d["label"][0].numpy(), np.moveaxis(ref_lab, 0, -1))
            np.testing.assert_allclose(d["image"].affine.numpy(), zhw_affine((1.4, 1.4, 8.0)), atol=1e-5)
            np.testing.assert_allclose(d["image"].pixdim.numpy(), (1.4, 1.4, 8.0), rtol=1e-5)

    def test_mtunet(self):
        src, out = self.tmp / "src", self.tmp / "out"
        write_phantoms("acdc-mtunet", src, cases=5, seed=5, size=40, log=_quiet)
        report = prepare("acdc", src, out, log=_quiet)
        self.assertTrue(report["ok"], report["failed"])
        dl = self.check_datalist(out, 10, acdc.ACDC_LABELS)
        self.assertEqual(dl["intensity"], {"kind": "range", "a_min": -1.0, "a_max": 1.0})
        self.assertEqual(dl["source"]["spacing"], list(acdc.DEFAULT_SPACING))
        item = dl["test"][0]
        with np.load(src / "test" / f"case_{int(item['patient'][7:]):03d}_volume_{item['phase']}.npz") as f:
            d = _load(out, item)
            np.testing.assert_array_equal(d["image"][0].numpy(), np.moveaxis(f["img"], 0, -1))
            np.testing.assert_array_equal(d["label"][0].numpy(), np.moveaxis(f["label"], 0, -1))
        item = dl["training"][0]
        case = f"case_{int(item['patient'][7:]):03d}_slice{item['phase']}"
        d = _load(out, item)
        for k in range(d["image"].shape[-1]):
            with np.load(src / "train" / f"{case}_{k}.npz") as f:
                np.testing.assert_array_equal(d["label"][0, :, :, k].numpy(), f["label"])

    def test_official_testing_folder(self):
        src, out = self.tmp / "src", self.tmp / "out"
        write_phantoms("acdc", src, cases=3, seed=12, size=24, log=_quiet)
        (src / "testing").mkdir()
        (src / "training" / "patient003").rename(src / "testing" / "patient003")
        report = prepare("acdc", src, out, log=_quiet)
        self.assertEqual(len(report["written"]), 6)

    def test_ratio_split_by_patient(self):
        src, out = self.tmp / "src", self.tmp / "out"
        write_phantoms("acdc", src, cases=10, seed=6, size=24, log=_quiet)
        prepare("acdc", src, out, split="ratio", ratios=(0.7, 0.1, 0.2), seed=1, log=_quiet)
        dl = self.check_datalist(out, 20, acdc.ACDC_LABELS)
        self.assertEqual([len(dl["split"][k]) for k in ("training", "validation", "test")], [7, 1, 2])
        for k in ("training", "validation", "test"):  # both frames of a patient in the same list
            self.assertEqual(len(dl[k]), 2 * len(dl["split"][k]))


class TestSynapseRoundTrip(_TmpCase):
    def test_btcv(self):
        src, out = self.tmp / "src", self.tmp / "out"
        write_phantoms("synapse", src, cases=5, seed=7, size=48, slices=(6, 9), log=_quiet)
        report = prepare("synapse", src, out, log=_quiet)
        self.assertTrue(report["ok"], report["failed"])
        dl = self.check_datalist(out, 5, synapse.SYNAPSE_LABELS)
        self.assertEqual(dl["intensity"], {"kind": "ct_window", "a_min": -125.0, "a_max": 275.0})
        self.assertEqual(dl["split"]["test"], ["case0001", "case0002"])
        for item in dl["training"] + dl["test"]:
            num = item["case"][4:]
            ref_img = nib.load(src / "RawData" / "Training" / "img" / f"img{num}.nii.gz")
            ref_lab = np.asarray(nib.load(src / "RawData" / "Training" / "label" / f"label{num}.nii.gz").dataobj)
            d = _load(out, item)
            np.testing.assert_array_equal(d["image"][0].numpy(), np.asarray(ref_img.dataobj))
            np.testing.assert_allclose(d["image"].affine.numpy(), ref_img.affine, atol=1e-4)
            lab = d["label"][0].numpy()
            # organ mapping: BTCV liver (6) -> 5, aorta (8) -> 1, IVC (9) -> background
            np.testing.assert_array_equal(lab[ref_lab == 6], 5)
            np.testing.assert_array_equal(lab[ref_lab == 8], 1)
            np.testing.assert_array_equal(lab[ref_lab == 9], 0)
            self.assertLessEqual(lab.max(), 8)

    def test_transunet(self):
        src, out = self.tmp / "src", self.tmp / "out"
        write_phantoms("synapse-transunet", src, cases=5, seed=8, size=48, slices=(6, 9), log=_quiet)
        report = prepare("synapse", src, out, log=_quiet)
        self.assertTrue(report["ok"], report["failed"])
        dl = self.check_datalist(out, 5, synapse.SYNAPSE_LABELS)
        self.assertEqual(dl["intensity"], {"kind": "range", "a_min": 0.0, "a_max": 1.0})
        self.assertEqual(dl["split"]["test"], ["case0001", "case0002"])
        with h5py.File(src / "test_vol_h5" / "case0001.npy.h5", "r") as f:
            d = _load(out, dl["test"][0])
            np.testing.assert_allclose(d["image"][0].numpy(), np.moveaxis(f["image"][()], 0, -1))
            np.testing.assert_array_equal(d["label"][0].numpy(), np.moveaxis(f["label"][()], 0, -1))
            np.testing.assert_allclose(d["image"].pixdim.numpy(), synapse.DEFAULT_SPACING, rtol=1e-5)
        d = _load(out, dl["training"][0])
        with np.load(src / "train_npz" / f"{dl['training'][0]['case']}_slice002.npz") as f:
            np.testing.assert_array_equal(d["label"][0, :, :, 2].numpy(), f["label"])


def _nifti(path: Path, data: np.ndarray, affine=None) -> None:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))


class TestBadInput(_TmpCase):
    def test_each_bad_case_reported(self):
        src, out = self.tmp / "src", self.tmp / "out"
        write_phantoms("acdc", src, cases=7, seed=9, size=24, log=_quiet)
        tr = src / "training"

        def frame(pid: int, gt: bool = False) -> Path:
            es = acdc._read_info(tr / f"patient{pid:03d}" / "Info.cfg")["ES"]
            return tr / f"patient{pid:03d}" / f"patient{pid:03d}_frame{int(es):02d}{'_gt' if gt else ''}.nii.gz"

        def shape(pid: int) -> tuple[int, ...]:
            return nib.load(frame(pid)).shape

        expected = {}
        frame(1, gt=True).unlink()
        expected["patient001_ES"] = (frame(1, gt=True), "missing label")
        _nifti(frame(2, gt=True), np.zeros((shape(2)[0] - 1, *shape(2)[1:]), np.uint8))
        expected["patient002_ES"] = (frame(2, gt=True), "shape")
        _nifti(frame(3, gt=True), np.full(shape(3), 7, np.uint8))
        expected["patient003_ES"] = (frame(3, gt=True), "outside the class set")
        _nifti(frame(4), np.zeros((*shape(4), 2), np.float32))
        expected["patient004_ES"] = (frame(4), "3D")
        bad = np.zeros(shape(5), np.float32)
        bad[0, 0, 0] = np.nan
        _nifti(frame(5), bad)
        expected["patient005_ES"] = (frame(5), "NaN/inf")
        with gzip.open(frame(6), "wb") as f:
            f.write(b"not a nifti file")
        expected["patient006_ES"] = (frame(6), "unreadable")
        before = _snapshot(src)
        lines: list[str] = []
        self.assertEqual(main(["acdc", "--source", str(src), "--out", str(out)]), 1)
        report = prepare("acdc", src, out, log=lines.append)
        self.assertEqual(_snapshot(src), before)
        failed = {f["case"]: f for f in report["failed"]}
        self.assertEqual(set(failed), set(expected))
        for case, (file, reason) in expected.items():
            self.assertEqual(failed[case]["file"], str(file))
            self.assertIn(reason, failed[case]["reason"])
            self.assertTrue(any(str(file) in ln and case in ln for ln in lines))  # printed summary
            self.assertFalse((out / "images" / f"{case}.nii.gz").exists())
        with open(out / "prepare_report.json") as f:
            self.assertEqual(len(json.load(f)["failed"]), 6)
        # nothing lost: every case is in the datalist or in the report
        with open(out / "datalist.json") as f:
            dl = json.load(f)
        listed = {i["case"] for k in ("training", "validation", "test") for i in dl[k]}
        self.assertEqual(listed | set(failed), {f"patient{p:03d}_{ph}" for p in range(1, 8) for ph in ("ED", "ES")})
        self.assertEqual(main(["acdc", "--source", str(src), "--out", str(out), "--skip-bad"]), 0)

    def test_missing_partner_and_slices_in_preprocessed_forms(self):
        src, out = self.tmp / "src", self.tmp / "out"
        write_phantoms("synapse", src, cases=3, seed=10, size=24, slices=(5, 6), log=_quiet)
        (src / "RawData" / "Training" / "img" / "img0005.nii.gz").unlink()
        report = prepare("synapse", src, out, log=_quiet)
        self.assertEqual([f["case"] for f in report["failed"]], ["case0005"])
        self.assertIn("label0005.nii.gz", report["failed"][0]["reason"])
        src2, out2 = self.tmp / "src2", self.tmp / "out2"
        write_phantoms("acdc-ssl4mis", src2, cases=3, seed=11, size=24, log=_quiet)
        victim = sorted((src2 / "data" / "slices").glob("*_slice_1.h5"))[0]
        victim.unlink()
        gone = sorted((src2 / "data").glob("*.h5"))[0]
        gone.unlink()
        report = prepare("acdc", src2, out2, log=_quiet)
        reasons = {f["file"]: f["reason"] for f in report["failed"]}
        self.assertEqual(len(reasons), 3, reasons)
        self.assertTrue(any("slice indices [1] missing" in r for r in reasons.values()))
        self.assertIn("but missing", reasons[str(victim)])  # listed in train_slices.list
        self.assertIn("but missing", reasons[str(gone)])  # listed in val.list or test.list

    def test_pixdim_wins_over_sform(self):
        src, out = self.tmp / "src", self.tmp / "out"
        pdir = src / "training" / "patient001"
        pdir.mkdir(parents=True)
        (pdir / "Info.cfg").write_text("ED: 1\nES: 2\n")
        for fr in (1, 2):
            for suffix, data in (("", np.ones((6, 5, 3), np.int16)), ("_gt", np.zeros((6, 5, 3), np.uint8))):
                img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 5.0, 1.0]))
                img.header["pixdim"][1:4] = [1.5, 1.5, 10.0]
                nib.save(img, str(pdir / f"patient001_frame{fr:02d}{suffix}.nii.gz"))
        report = prepare("acdc", src, out, split="ratio", ratios=(1, 0, 0), log=_quiet)
        self.assertTrue(report["ok"])
        self.assertEqual(len(report["notes"]), 2)
        d = _load(out, {"image": "images/patient001_ED.nii.gz", "label": "labels/patient001_ED.nii.gz"})
        np.testing.assert_allclose(d["image"].pixdim.numpy(), (1.5, 1.5, 10.0))

    def test_ambiguous_form(self):
        src = self.tmp / "src"
        (src / "lists_ACDC").mkdir(parents=True)
        (src / "training" / "patient001").mkdir(parents=True)
        with self.assertRaisesRegex(ValueError, "pass --form"):
            acdc.detect_form(src)
        self.assertEqual(main(["acdc", "--source", str(src), "--out", str(self.tmp / "o")]), 2)


if __name__ == "__main__":
    unittest.main()
