# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The quickstart end to end with a minimal setting (4 synthetic patients, one epoch, S=64)."""

from __future__ import annotations

import json
import os
import tempfile
import unittest

import nibabel as nib

from aisam_monai.quickstart import _val_interval, run_quickstart

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TestQuickstart(unittest.TestCase):
    def test_validation_ends_on_the_last_epoch(self):
        for epochs, expected in ((60, 15), (45, 15), (80, 16), (7, 7), (1, 1)):
            interval = _val_interval(epochs)
            self.assertEqual((interval, epochs % interval), (expected, 0), epochs)

    def test_all_steps_write_their_outputs(self):
        cwd = os.getcwd()
        with tempfile.TemporaryDirectory() as d:
            os.chdir(REPO)  # the quickstart runs the bundles from the repository root
            try:
                summary = run_quickstart(out=d, cases=4, epochs=1, image_size=64)
            finally:
                os.chdir(cwd)
            self.assertEqual(set(summary["protocols"]), {"aisam", "transunet"})
            self.assertGreater(summary["protocols"]["aisam"]["num_cases"], 0)
            self.assertTrue(os.path.getsize(os.path.join(d, "quickstart.png")) > 1000)
            preds = os.listdir(os.path.join(d, "acdc", "predictions"))
            seg = [p for p in preds if p.endswith("_seg.nii.gz")]
            self.assertEqual(len(seg), 1)
            self.assertIn(seg[0].replace("_seg.nii.gz", "_points.json"), preds)
            case = seg[0].replace("_seg.nii.gz", "")
            image = nib.load(os.path.join(d, "data", "acdc", "images", f"{case}.nii.gz"))
            self.assertEqual(nib.load(os.path.join(d, "acdc", "predictions", seg[0])).shape, image.shape)

    def test_litemedsam_recipe_trains_from_cached_embeddings(self):
        cwd = os.getcwd()
        with tempfile.TemporaryDirectory() as d:
            os.chdir(REPO)
            try:
                summary = run_quickstart(out=d, cases=3, epochs=1, image_size=64, sam_type="litemedsam")
            finally:
                os.chdir(cwd)
            self.assertGreater(summary["protocols"]["aisam"]["num_cases"], 0)
            with open(os.path.join(d, "acdc", "embedding_cache", "manifest.json")) as f:
                manifest = json.load(f)
            self.assertEqual((manifest["sam_type"], manifest["image_size"]), ("litemedsam", 64))
            volumes = [f for f in os.listdir(os.path.join(d, "acdc", "embedding_cache")) if f.startswith("volume_")]
            self.assertEqual(len(volumes), len(manifest["datalist"]))  # one file per training volume
            self.assertTrue(os.path.getsize(os.path.join(d, "quickstart.png")) > 1000)
        with self.assertRaises(SystemExit):
            run_quickstart(out="unused", sam_type="vit_h")


if __name__ == "__main__":
    unittest.main()
