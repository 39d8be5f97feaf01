# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import json
import os
import tempfile
import unittest

import nibabel as nib
import numpy as np
import torch

from aisam_monai.data.datalist import dataset_intensity, inference_items, load_datalist
from aisam_monai.io.checks import check_volume_file

torch.set_num_threads(1)


def _write(path, shape):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), path)


class TestDatalist(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name
        for case in ("a", "b", "c"):
            _write(os.path.join(self.root, "images", f"{case}.nii.gz"), (8, 8, 3))
            _write(os.path.join(self.root, "labels", f"{case}.nii.gz"), (8, 8, 3))
        item = lambda c: {"image": f"images/{c}.nii.gz", "label": f"labels/{c}.nii.gz", "case": c}  # noqa: E731
        self.content = {
            "num_classes": 4,
            "intensity": {"kind": "range", "a_min": -1.0, "a_max": 1.0},
            "training": [item("a"), item("b")],
            "validation": [item("c")],
            "test": [],
        }
        self._save()

    def tearDown(self):
        self.dir.cleanup()

    def _save(self):
        with open(os.path.join(self.root, "datalist.json"), "w") as f:
            json.dump(self.content, f)

    def test_loads_absolute_paths(self):
        items = load_datalist(self.root, "training", num_classes=4, check_splits=["validation"])
        self.assertEqual([os.path.basename(i["image"]) for i in items], ["a.nii.gz", "b.nii.gz"])
        self.assertTrue(all(os.path.isabs(i["label"]) for i in items))
        self.assertEqual(dataset_intensity(self.root, {"kind": "per_volume"})["a_min"], -1.0)
        self.assertEqual(
            dataset_intensity(os.path.join(self.root, "images"), {"kind": "per_volume"}), {"kind": "per_volume"}
        )

    def test_bad_inputs_name_the_file(self):
        with self.assertRaisesRegex(FileNotFoundError, r"no datalist.json in the dataset folder"):
            load_datalist(os.path.join(self.root, "images"))
        with self.assertRaisesRegex(FileNotFoundError, r"dataset folder not found"):
            load_datalist(os.path.join(self.root, "nowhere"))
        with self.assertRaisesRegex(ValueError, r"'test' list is empty"):
            load_datalist(self.root, "test")
        with self.assertRaisesRegex(ValueError, r"has 4 classes, the bundle expects 9"):
            load_datalist(self.root, "training", num_classes=9)
        os.remove(os.path.join(self.root, "labels", "c.nii.gz"))
        with self.assertRaisesRegex(
            FileNotFoundError, r"labels/c.nii.gz: listed in .*datalist.json \(validation\) but missing"
        ):
            load_datalist(self.root, "training", check_splits=["validation"])
        with self.assertLogs("aisam_monai.inputs", "ERROR"):
            with self.assertRaises(FileNotFoundError):
                load_datalist(self.root, "validation")

    def test_inference_inputs_must_be_3d(self):
        flat = os.path.join(self.root, "flat.nii.gz")
        _write(flat, (8, 8))
        with self.assertRaisesRegex(ValueError, r"flat.nii.gz: expected a 3D volume \(H, W, D\), got shape \(8, 8\)"):
            inference_items(self.root, flat)
        _write(os.path.join(self.root, "vol4.nii.gz"), (8, 8, 3, 1))
        check_volume_file(os.path.join(self.root, "vol4.nii.gz"))
        items = inference_items(self.root, split="training")
        self.assertEqual(len(items), 2)
        self.assertEqual(set(items[0]), {"image"})


if __name__ == "__main__":
    unittest.main()
