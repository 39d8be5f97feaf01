# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import ScaleIntensityRanged, ScaleIntensityRangePercentilesd

from aisam_monai.transforms import ScaleToUnitd


def _volume() -> MetaTensor:
    torch.manual_seed(0)
    return MetaTensor(torch.randn(1, 30, 20, 5) * 300, affine=torch.diag(torch.tensor([1.5, 1.5, 5.0, 1.0])))


class TestScaleToUnitd(unittest.TestCase):
    def test_equals_monai_scaling(self):
        x = _volume()
        for ours, monai in (
            (
                ScaleToUnitd("image", a_min=-125, a_max=275),
                ScaleIntensityRanged("image", -125, 275, 0.0, 1.0, clip=True),
            ),
            (
                ScaleToUnitd("image", lower=0.5, upper=99.5),
                ScaleIntensityRangePercentilesd("image", 0.5, 99.5, 0.0, 1.0, clip=True),
            ),
        ):
            a, b = ours({"image": x.clone()})["image"], monai({"image": x.clone()})["image"]
            self.assertIsInstance(a, MetaTensor)
            torch.testing.assert_close(a.as_tensor(), b.as_tensor(), atol=1e-6, rtol=0)
            torch.testing.assert_close(a.affine, x.affine)
            self.assertEqual((a.min().item(), a.max().item()), (0.0, 1.0))

    def test_in_place_only_when_asked(self):
        x = _volume()
        kept = x.clone()
        out = ScaleToUnitd("image", a_min=-125, a_max=275)({"image": x})["image"]
        self.assertNotEqual(out.data_ptr(), x.data_ptr())
        torch.testing.assert_close(x, kept)  # the input is untouched by default
        out = ScaleToUnitd("image", a_min=-125, a_max=275, in_place=True)({"image": x})["image"]
        self.assertEqual(out.data_ptr(), x.data_ptr())  # no copy of the volume

    def test_integer_and_constant_inputs(self):
        ints = np.arange(24, dtype=np.int16).reshape(1, 2, 3, 4)
        out = ScaleToUnitd("image", a_min=0, a_max=23, in_place=True)({"image": ints})["image"]
        self.assertEqual(out.dtype, torch.float32)
        self.assertEqual(ints.dtype, np.int16)  # converted, not rewritten
        torch.testing.assert_close(out, torch.from_numpy(ints.astype(np.float32) / 23))
        flat = ScaleToUnitd("image", lower=1, upper=99)({"image": torch.full((1, 4, 4), 7.0)})["image"]
        self.assertEqual(flat.unique().tolist(), [0.0])  # as MONAI: x - lo when the bounds coincide

    def test_bad_bounds(self):
        for kwargs in ({"a_min": 0}, {"a_min": 0, "a_max": 1, "lower": 1, "upper": 99}, {}, {"upper": 99}):
            with self.assertRaisesRegex(ValueError, "either a_min and a_max or lower and upper"):
                ScaleToUnitd("image", **kwargs)


if __name__ == "__main__":
    unittest.main()
