# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Intensity, slice sampling and the preset chains on prepared synthetic data, with inversion to NIfTI."""

from __future__ import annotations

import json
import shutil
import tempfile
import unittest
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor, load_decathlon_datalist
from monai.transforms import Invertd, SaveImaged

from aisam_monai.data.prepare import prepare
from aisam_monai.data.synthetic import write_phantoms
from aisam_monai.transforms import (
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    RandSliceSampled,
    SAMNormalized,
    eval_transforms,
    inference_transforms,
    intensity_transform,
    train_transforms,
)

torch.set_num_threads(1)


class TestIntensity(unittest.TestCase):
    def test_kinds(self):
        x = torch.tensor([[-1000.0, -125.0, 75.0, 275.0, 900.0]])
        ct = intensity_transform({"kind": "ct_window", "a_min": -125, "a_max": 275})({"image": x})["image"]
        torch.testing.assert_close(ct, torch.tensor([[0.0, 0.0, 0.5, 1.0, 1.0]]))
        r = intensity_transform({"kind": "range", "a_min": -1, "a_max": 1})(
            {"image": torch.tensor([[-1.0, 0.0, 1.0]])}
        )["image"]
        torch.testing.assert_close(r, torch.tensor([[0.0, 0.5, 1.0]]))
        v = torch.arange(1001.0)[None]
        pv = intensity_transform({"kind": "per_volume", "lower": 1, "upper": 99})({"image": v})["image"]
        self.assertAlmostEqual(float(pv.min()), 0.0)
        self.assertAlmostEqual(float(pv.max()), 1.0)
        self.assertAlmostEqual(float(pv[0, 500]), 0.5, places=3)
        with self.assertRaisesRegex(ValueError, "kind"):
            intensity_transform({"kind": "zscore"})

    def test_sam_normalisation(self):
        x = torch.full((3, 2, 2), 0.5)
        out = SAMNormalized("image")({"image": x})["image"]
        for c in range(3):
            torch.testing.assert_close(out[c], torch.full((2, 2), (0.5 - SAM_PIXEL_MEAN[c]) / SAM_PIXEL_STD[c]))


class TestSliceSampling(unittest.TestCase):
    def test_foreground_and_uniform(self):
        vol = torch.arange(6 * 5 * 8, dtype=torch.float32).reshape(1, 6, 5, 8)
        lab = torch.zeros(1, 6, 5, 8)
        lab[0, 2, 2, [1, 6]] = 2
        item = {
            "image": MetaTensor(vol, affine=torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0]))),
            "label": MetaTensor(lab),
            "case": "x",
        }
        xf = RandSliceSampled(["image", "label"], "label", num_samples=40, foreground_prob=1.0)
        xf.set_random_state(0)
        out = xf(item)
        self.assertEqual({o["slice_index"] for o in out}, {1, 6})
        for o in out:
            self.assertEqual(o["case"], "x")
            torch.testing.assert_close(o["image"].as_tensor(), vol[..., o["slice_index"]])
            np.testing.assert_allclose(o["image"].affine.numpy(), np.diag([2.0, 3.0, 1.0]))
        xf = RandSliceSampled(["image", "label"], "label", num_samples=200, foreground_prob=0.0)
        xf.set_random_state(0)
        self.assertEqual({o["slice_index"] for o in xf(item)}, set(range(8)))
        xf = RandSliceSampled(["image", "label"], "label", spatial_axis=0, num_samples=3)
        self.assertEqual(tuple(xf(item)[0]["image"].shape), (1, 5, 8))


class TestPresets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp())
        write_phantoms("acdc", cls.tmp / "src", cases=3, seed=2, size=40, log=lambda *_: None)
        prepare("acdc", cls.tmp / "src", cls.tmp / "prep", split="ratio", ratios=(2, 0, 1), log=lambda *_: None)
        cls.datalist = cls.tmp / "prep" / "datalist.json"
        with open(cls.datalist) as f:
            cls.meta = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def items(self, split: str) -> list[dict]:
        return load_decathlon_datalist(str(self.datalist), True, split, str(self.tmp / "prep"))

    def test_train(self):
        chain = train_transforms(
            32, 4, self.meta["intensity"], slices_per_volume=3, lowres_label=True, num_points=2, boxes=True
        )
        chain.set_random_state(0)
        out = chain(self.items("training")[0])
        self.assertEqual(len(out), 3)
        for o in out:
            self.assertEqual(tuple(o["image"].shape), (3, 32, 32))
            self.assertEqual(tuple(o["label"].shape), (1, 32, 32))
            self.assertEqual(tuple(o["label_lowres"].shape), (1, 8, 8))
            self.assertEqual(o["image"].dtype, torch.float32)
            self.assertTrue(set(o["label"].unique().tolist()) <= {0.0, 1.0, 2.0, 3.0})
            present = torch.tensor([(o["label"] == c).any() for c in range(4)]).float()
            torch.testing.assert_close(o["multi_hot"], present)
            for c in range(4):
                if present[c]:
                    x, y = o["points"][c, :, 0].long(), o["points"][c, :, 1].long()
                    self.assertTrue((o["label"][0, y, x] == c).all())
            # SAM normalisation of [0, 1] data
            self.assertGreaterEqual(float(o["image"][0].min()), (0 - SAM_PIXEL_MEAN[0]) / SAM_PIXEL_STD[0] - 1e-4)
            self.assertLessEqual(float(o["image"][0].max()), (1 - SAM_PIXEL_MEAN[0]) / SAM_PIXEL_STD[0] + 1e-4)
        chain.set_random_state(0)
        torch.testing.assert_close(chain(self.items("training")[0])[1]["image"], out[1]["image"])  # seeded

    def test_augmentation_without_flips_keeps_sides(self):
        """Class 1 on the left half, class 2 on the right: without the rot90/flip step they never swap sides."""
        label = torch.zeros(1, 48, 48, 4)
        label[:, 8:40, 4:20] = 1
        label[:, 8:40, 28:44] = 2
        item = {"image": label / 2, "label": label}
        for flips in (False, True):
            chain = train_transforms(32, 3, {"kind": "range", "a_min": 0, "a_max": 1}, slices_per_volume=1,
                                     aug_prob=1.0, flips=flips, load=False)  # fmt: skip
            chain.set_random_state(1)
            swapped = []
            for _ in range(12):
                out = chain(item)[0]["label"][0]
                cols = torch.arange(32.0)
                side = [float((out == c).float().mean(0) @ cols / (out == c).float().mean(0).sum()) for c in (1, 2)]
                swapped.append(side[0] > side[1])
            self.assertEqual(any(swapped), flips, f"flips={flips}: {swapped}")

    def test_eval_keeps_grid(self):
        item = self.items("test")[0]
        out = eval_transforms(self.meta["intensity"])(item)
        ref = nib.load(item["image"])
        self.assertEqual(tuple(out["image"].shape), (1, *ref.shape))
        np.testing.assert_allclose(out["image"].affine.numpy(), ref.affine, atol=1e-4)
        self.assertAlmostEqual(float(out["image"].max()), 1.0)
        np.testing.assert_array_equal(out["label"][0].numpy(), np.asarray(nib.load(item["label"]).dataobj))

    def test_inference_inverts_to_input_space(self):
        item = {"image": self.items("test")[0]["image"]}
        ref = nib.load(item["image"])  # an oblique, randomly oriented ACDC-like stack
        pre = inference_transforms(self.meta["intensity"], orientation="RAS")
        d = pre(item)
        self.assertFalse(np.allclose(d["image"].affine.numpy(), ref.affine, atol=1e-3))  # reoriented
        pred = MetaTensor(
            (d["image"] > 0.5).to(torch.uint8), meta=d["image"].meta, applied_operations=d["image"].applied_operations
        )
        d["pred"] = pred
        inv = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=True)(d)
        np.testing.assert_array_equal(inv["pred"].shape[1:], ref.shape)
        out_dir = self.tmp / "pred"
        SaveImaged("pred", output_dir=str(out_dir), output_postfix="seg", separate_folder=False, print_log=False)(inv)
        saved = nib.load(next(out_dir.glob("*_seg.nii.gz")))
        self.assertEqual(saved.shape, ref.shape)
        np.testing.assert_allclose(saved.affine, ref.affine, atol=1e-4)
        # the prediction lines up with the input voxels: recompute it on the raw grid
        raw = intensity_transform(self.meta["intensity"])(
            {"image": torch.as_tensor(np.asarray(ref.dataobj, np.float32))[None]}
        )["image"]
        np.testing.assert_array_equal(np.asarray(saved.dataobj), (raw[0] > 0.5).numpy().astype(np.uint8))


if __name__ == "__main__":
    unittest.main()
