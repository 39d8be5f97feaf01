# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Synthetic phantoms: determinism, ranges of the acquisition parameters and anatomy."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import unittest
from pathlib import Path

import nibabel as nib
import numpy as np

from aisam_monai.data.phantoms import abdomen_case, abdomen_volume, cardiac_patient, cardiac_volume
from aisam_monai.data.synapse import BTCV_TO_SYNAPSE
from aisam_monai.data.synthetic import main, synapse_case_ids, write_phantoms


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class TestSynthetic(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_deterministic(self):
        for layout in ("acdc-mtunet", "synapse-transunet"):
            a, b, c = self.tmp / f"{layout}a", self.tmp / f"{layout}b", self.tmp / f"{layout}c"
            for out, seed in ((a, 1), (b, 1), (c, 2)):
                main(
                    [
                        "--layout",
                        layout,
                        "--out",
                        str(out),
                        "--cases",
                        "2",
                        "--seed",
                        str(seed),
                        "--size",
                        "24",
                        "--slices",
                        "4",
                        "5",
                    ]
                )
            self.assertEqual(_digest(a), _digest(b))
            self.assertNotEqual(_digest(a), _digest(c))

    def test_acdc_official_layout(self):
        write_phantoms("acdc", self.tmp, cases=3, seed=0, size=32, log=lambda *_: None)
        pdir = self.tmp / "training" / "patient002"
        info = dict(ln.split(": ") for ln in (pdir / "Info.cfg").read_text().splitlines())
        self.assertEqual(info["ED"], "1")
        img = nib.load(pdir / f"patient002_frame{int(info['ES']):02d}.nii.gz")
        self.assertTrue(6 <= img.shape[2] <= 12)
        zooms = img.header.get_zooms()
        self.assertTrue(5 <= zooms[2] <= 10)
        rot = img.affine[:3, :3] / np.array(zooms)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-5)  # a rotation: random orientation
        self.assertFalse(np.allclose(np.abs(rot), np.eye(3), atol=0.05))

    def test_cardiac_anatomy(self):
        rng = np.random.default_rng(0)
        for _ in range(4):
            p = cardiac_patient(rng)
            self.assertTrue(150 <= p.rows <= 260 and 150 <= p.cols <= 260 and 1.2 <= p.pixel <= 1.8)
            self.assertTrue(6 <= p.slices <= 12 and 5 <= p.slice_spacing <= 10)
            (ed, ed_lab), (_, es_lab) = cardiac_volume(p, "ED"), cardiac_volume(p, "ES")
            self.assertEqual(ed.shape, (p.slices, p.rows, p.cols))
            self.assertGreater((ed_lab == 3).sum(), 1.5 * (es_lab == 3).sum())  # ES cavity is smaller
            self.assertEqual(set(np.unique(ed_lab)), {0, 1, 2, 3})
            present = np.stack([(ed_lab == c).any(axis=(1, 2)) for c in (1, 2, 3)])
            self.assertFalse(present[:, 0].all() and present[:, -1].all())  # classes vanish at base or apex
            # blood brighter than myocardium on average, but the intensity ranges overlap
            lv, myo = ed[ed_lab == 3], ed[ed_lab == 2]
            self.assertGreater(np.median(lv), 1.8 * np.median(myo))
            self.assertLess(np.percentile(lv, 1), np.percentile(myo, 99))
            # the heart takes roughly a quarter to a third of the field width at mid-ventricle
            mid = int(np.argmax((ed_lab > 0).sum(axis=(1, 2))))
            cols = np.nonzero((ed_lab[mid] > 0).any(axis=0))[0]
            self.assertTrue(0.18 < (cols[-1] - cols[0] + 1) / p.cols < 0.45, (cols[-1] - cols[0] + 1) / p.cols)

    def test_abdomen_anatomy(self):
        a = abdomen_case(np.random.default_rng(1), size=96, slices=(40, 60))
        hu, btcv = abdomen_volume(a, z_chunk=7)
        self.assertEqual(hu.shape, (a.slices, 96, 96))
        lab = BTCV_TO_SYNAPSE[btcv]
        organs = set(np.unique(lab)) - {0}
        self.assertGreaterEqual(len(organs), 7)
        per_slice = np.stack([(lab == c).any(axis=(1, 2)) for c in sorted(organs - {1})])
        self.assertTrue((~per_slice).any(axis=1).all())  # every organ but the aorta is absent from some slices
        self.assertTrue((lab == 1).any(axis=(1, 2)).all())
        self.assertGreater(np.median(hu[lab == 5]), np.median(hu[(btcv == 0) & (hu > -500)]))  # liver vs fat/soft
        self.assertGreater((hu > 400).sum(), 0)  # bone
        self.assertLess(np.median(hu[lab == 0]), -100)  # air and fat

    def test_synapse_case_ids(self):
        ids = synapse_case_ids(5)
        self.assertEqual(ids, ["0005", "0006", "0007", "0001", "0002"])
        self.assertEqual(len(set(synapse_case_ids(32))), 32)


if __name__ == "__main__":
    unittest.main()
