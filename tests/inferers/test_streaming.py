# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Slab-streamed NIfTI inference gives the whole-volume path's labels, points and presence, on the input grid."""

from __future__ import annotations

import os
import tempfile
import unittest

import nibabel as nib
import numpy as np
import torch

from aisam_monai.inferers import SliceVolumeInferer, StreamingNiftiInferer
from aisam_monai.networks import AISAM
from aisam_monai.transforms import inference_transforms

torch.set_num_threads(1)
AFFINE = np.array([[-1.5, 0.0, 0.0, 30.0], [0.0, 1.4, 0.0, -8.0], [0.0, 0.0, 5.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
INTENSITY = {"kind": "per_volume", "lower": 0.5, "upper": 99.5}


def _phantom(shape=(48, 40, 21), seed=0) -> np.ndarray:
    """An int16 MR-like volume: noisy background and a bright ellipsoid."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    inside = (grid**2).sum(0) < 0.4
    return (rng.normal(200, 40, size=shape) + 600 * inside).astype(np.int16)


class FailingAfter(torch.nn.Module):
    """Wraps a model and raises on its n-th forward call (a crash half-way through a volume)."""

    def __init__(self, model: torch.nn.Module, calls: int) -> None:
        super().__init__()
        self.model, self.left = model, calls
        self.num_classes, self.image_size, self.mask_size = model.num_classes, model.image_size, model.mask_size
        self.pixel_normalization = model.pixel_normalization
        self.predict_labels = model.predict_labels

    def forward(self, *args, **kwargs):
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("simulated crash")
        return self.model(*args, **kwargs)


class TestStreamingNiftiInferer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls.model = AISAM(4, sam_type="tiny", image_size=64).eval()
        cls.dir = tempfile.mkdtemp()
        cls.image = os.path.join(cls.dir, "case.nii.gz")
        nib.save(nib.Nifti1Image(_phantom(), AFFINE), cls.image)

    def test_equals_whole_volume_path(self):
        volume = inference_transforms(INTENSITY)({"image": self.image})["image"]
        for axis in (2, 0):
            for resample in ("nearest", "bilinear"):
                with self.subTest(axis=axis, resample=resample):
                    inferer = SliceVolumeInferer(image_size=64, sw_batch_size=4, spatial_dim=axis, resample=resample)
                    expected = inferer(volume, self.model)
                    out = os.path.join(self.dir, f"seg_{axis}_{resample}.nii.gz")
                    streamer = StreamingNiftiInferer(inferer, INTENSITY, slab_slices=6)
                    self.assertEqual(streamer.slab_slices, 8)  # a multiple of the forward batch
                    result = streamer(self.image, out, self.model)
                    written = nib.load(out)
                    self.assertEqual(written.shape, (48, 40, 21))
                    self.assertEqual(written.get_data_dtype(), np.uint8)
                    np.testing.assert_allclose(written.affine, AFFINE, atol=1e-6)
                    np.testing.assert_array_equal(np.asanyarray(written.dataobj), expected["pred"][0].numpy())
                    torch.testing.assert_close(result["points"], expected["points"])
                    torch.testing.assert_close(result["class_probs"], expected["class_probs"], equal_nan=True)
                    self.assertEqual(result["points"].shape[0], written.shape[axis])

    def test_crash_leaves_no_output(self):
        out = os.path.join(self.dir, "crashed", "seg.nii.gz")
        streamer = StreamingNiftiInferer(SliceVolumeInferer(image_size=64, sw_batch_size=4), INTENSITY, slab_slices=4)
        with self.assertRaises(RuntimeError):
            streamer(self.image, out, FailingAfter(self.model, calls=2))
        self.assertEqual(os.listdir(os.path.dirname(out)), [])

    def test_label_modes_are_refused(self):
        with self.assertRaises(ValueError):
            StreamingNiftiInferer(SliceVolumeInferer(image_size=64, eval_prompts="gt_box"), INTENSITY)


if __name__ == "__main__":
    unittest.main()
