# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""One label path: ``aisam segment``, ``AISAMPredictor.predict_volume`` and the bundle's ``inference.yaml`` write
the same labels, voxel for voxel, on non-square slices and along another slice axis."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import tempfile
import unittest

import nibabel as nib
import numpy as np
import torch
from monai.bundle import run as bundle_run

from aisam_monai.cli import main as aisam_main
from aisam_monai.interactive import AISAMPredictor
from aisam_monai.networks import AISAM

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLE = os.path.join(REPO, "bundles", "acdc")
SIZE = 64  # model input side: every slice below is resized, non-uniformly
H, W, D = 96, 80, 5  # non-square slices


def _volume(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Raw int16 intensities: smooth blobs (contours for the bilinear return to decide) plus noise."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    volume = sum(np.sin(2 * np.pi * rng.uniform(1, 3) * g + rng.uniform(0, 6)) for g in grids)
    return np.round(300 * volume + 20 * rng.normal(size=shape)).astype(np.int16)


class TestOnePath(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        cls.model = AISAM(num_classes=4, sam_type="tiny", image_size=SIZE).eval()
        cls.checkpoint = os.path.join(cls.tmp.name, "model.pt")
        torch.save({"model": cls.model.state_dict()}, cls.checkpoint)
        # the bundle's default intensity (per-volume percentiles): the predictor reads files through the bundle's
        # reader, so both see the same values to the last bit (a 1-ulp difference flips generated-point ties)
        cls.overrides = {"sam_type": "tiny", "image_size": SIZE, "dataset_dir": cls.tmp.name}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def _write(self, name: str, array: np.ndarray) -> str:
        path = os.path.join(self.tmp.name, f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(array, np.diag([1.5, 1.2, 4.0, 1.0])), path)
        return path

    def _cli(self, image: str) -> np.ndarray:
        out = image.replace(".nii.gz", "_cli.nii.gz")
        argv = ["segment", image, "--bundle", BUNDLE, "--checkpoint", self.checkpoint, "--out", out, "--no-progress"]
        argv += [f"--override={k}={json.dumps(v)}" for k, v in self.overrides.items()]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(aisam_main(argv), 0, err.getvalue())
        return np.asarray(nib.load(out).dataobj)

    def _predictor(self, image: str) -> np.ndarray:
        predictor = AISAMPredictor.from_bundle(BUNDLE, self.checkpoint, overrides=self.overrides, progress=False)
        predictor.set_volume(image)
        labels = predictor.predict_volume()
        self.assertEqual(labels.dtype, torch.uint8)
        return labels.numpy()

    def _bundle(self, image: str, slice_axis: int) -> np.ndarray:
        output_dir = os.path.join(self.tmp.name, f"bundle_{slice_axis}")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            bundle_run(
                "inference",
                config_file=os.path.join(BUNDLE, "configs", "inference.yaml"),
                bundle_root=BUNDLE,
                input_image=image,
                checkpoint=self.checkpoint,
                output_dir=output_dir,
                slice_axis=slice_axis,
                device="$torch.device('cpu')",
                progress=False,
                **self.overrides,
            )
        (seg,) = glob.glob(os.path.join(output_dir, "predictions", "*_seg.nii.gz"))
        return np.asarray(nib.load(seg).dataobj)

    def test_last_axis_non_square(self):
        image = self._write("last", _volume((H, W, D)))
        bundle = self._bundle(image, slice_axis=2)
        self.assertEqual(bundle.shape, (H, W, D))
        self.assertGreater(len(np.unique(bundle)), 2)  # contours between several classes are compared
        np.testing.assert_array_equal(self._predictor(image), bundle)
        np.testing.assert_array_equal(self._cli(image), bundle)

    def test_first_axis(self):
        # the predictor and ``aisam`` take slices along the last stored axis: they get the volume with the bundle's
        # slice axis (0) moved last, and their labels are moved back
        volume = _volume((D, H, W), seed=1)
        bundle = self._bundle(self._write("first", volume), slice_axis=0)
        self.assertEqual(bundle.shape, (D, H, W))
        self.assertGreater(len(np.unique(bundle)), 2)
        moved = self._write("first_moved", np.ascontiguousarray(np.moveaxis(volume, 0, -1)))
        np.testing.assert_array_equal(np.moveaxis(self._predictor(moved), -1, 0), bundle)
        np.testing.assert_array_equal(np.moveaxis(self._cli(moved), -1, 0), bundle)


if __name__ == "__main__":
    unittest.main()
