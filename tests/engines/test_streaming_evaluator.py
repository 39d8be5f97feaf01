# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The streaming evaluator writes a label NIfTI and a points file per input file, on the input's grid."""

from __future__ import annotations

import json
import os
import tempfile
import unittest

import nibabel as nib
import numpy as np
import torch

from aisam_monai.engines import StreamingEvaluator
from aisam_monai.inferers import SliceVolumeInferer, StreamingNiftiInferer
from aisam_monai.networks import AISAM

torch.set_num_threads(1)
AFFINE = np.diag([1.5, 1.4, 5.0, 1.0])
INTENSITY = {"kind": "per_volume", "lower": 0.5, "upper": 99.5}


def _phantom(shape, seed):
    return np.random.default_rng(seed).normal(200, 40, size=shape).astype(np.int16)


class TestStreamingEvaluator(unittest.TestCase):
    def test_writes_labels_and_points_per_file(self):
        torch.manual_seed(0)
        model = AISAM(3, sam_type="tiny", image_size=64)
        with tempfile.TemporaryDirectory() as d:
            items = []
            for i, shape in enumerate([(32, 24, 5), (40, 40, 9)]):
                path = os.path.join(d, f"patient{i}.nii.gz")
                nib.save(nib.Nifti1Image(_phantom(shape, seed=i), AFFINE), path)
                items.append({"image": path})
            streamer = StreamingNiftiInferer(
                SliceVolumeInferer(image_size=64, sw_batch_size=2), INTENSITY, slab_slices=4
            )
            names = ["background", "a", "b"]
            engine = StreamingEvaluator("cpu", items, model, streamer, os.path.join(d, "out"), names)
            engine.run()
            for i, item in enumerate(items):
                seg = nib.load(os.path.join(d, "out", f"patient{i}_seg.nii.gz"))
                self.assertEqual(seg.shape, nib.load(item["image"]).shape)
                self.assertLess(int(np.asanyarray(seg.dataobj).max()), 3)
                with open(os.path.join(d, "out", f"patient{i}_points.json")) as f:
                    record = json.load(f)
                self.assertEqual(record["classes"], names)
                self.assertEqual(len(record["slices"]), seg.shape[2])
                self.assertEqual(record["shape"], list(seg.shape))
            self.assertTrue(engine.state.output["pred"].endswith("patient1_seg.nii.gz"))


if __name__ == "__main__":
    unittest.main()
