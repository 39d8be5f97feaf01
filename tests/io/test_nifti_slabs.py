# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Slab reading equals whole-volume loading + intensity window; slab writing gives the volume back."""

from __future__ import annotations

import os
import tempfile
import unittest

import nibabel as nib
import numpy as np

from aisam_monai.io.nifti_slabs import HISTOGRAM_BINS, NiftiSlabReader, NiftiSlabWriter, stream_percentiles
from aisam_monai.transforms import inference_transforms

AFFINE = np.array([[0.0, -1.2, 0.0, 10.0], [1.3, 0.0, 0.0, -5.0], [0.0, 0.0, 5.0, 2.0], [0.0, 0.0, 0.0, 1.0]])
PERCENTILES = {"kind": "per_volume", "lower": 0.5, "upper": 99.5}
CT = {"kind": "ct_window", "a_min": -100, "a_max": 500}


class TestNiftiSlabReader(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.rng = np.random.default_rng(0)

    def _write(self, name, data, slope_inter=None):
        img = nib.Nifti1Image(data, AFFINE)
        if slope_inter is not None:
            img.header.set_slope_inter(*slope_inter)
        path = os.path.join(self.dir, name)
        nib.save(img, path)
        return path

    def _read(self, path, intensity, axis=2, slab=4):
        reader = NiftiSlabReader(path, intensity, slice_axis=axis, slab_slices=slab)
        starts, slabs = zip(*reader)
        self.assertEqual(list(starts), list(range(0, reader.depth, slab)))
        self.assertEqual(len(reader), len(slabs))
        self.assertTrue(all(s.dtype == np.float32 and s.shape[2] <= slab for s in slabs))
        return reader, np.concatenate(slabs, -1)

    def _whole(self, path, intensity, axis=2):
        return np.moveaxis(inference_transforms(intensity)({"image": path})["image"][0].numpy(), axis, -1)

    def test_equals_whole_volume_loading(self):
        ints = self.rng.integers(-1000, 3000, size=(40, 30, 13))
        cases = {
            "int16.nii.gz": (ints.astype(np.int16), None, 0.0),
            "scaled.nii.gz": (np.abs(ints).astype(np.int16), (0.5, -100.0), 0.0),
            "negative_slope.nii": (np.abs(ints).astype(np.int16), (-2.0, 10.0), 0.0),
            "uint8.nii.gz": (self.rng.integers(0, 255, size=(40, 30, 13)).astype(np.uint8), None, 0.0),
            # floats: percentiles to one histogram bin of the value range, in [0, 1] units
            "float.nii.gz": (self.rng.normal(size=(40, 30, 13)).astype(np.float32) * 100, None, 1e-4),
        }
        for name, (data, slope_inter, tol) in cases.items():
            path = self._write(name, data, slope_inter)
            for intensity in (PERCENTILES, CT):
                for axis in (2, 0, 1):
                    with self.subTest(name=name, kind=intensity["kind"], axis=axis):
                        reader, got = self._read(path, intensity, axis)
                        self.assertEqual(reader.streaming, axis == 2)
                        np.testing.assert_allclose(got, self._whole(path, intensity, axis), atol=max(tol, 1e-6), rtol=0)

    def test_integer_percentiles_are_exact(self):
        data = self.rng.integers(-500, 500, size=(20, 10, 7)).astype(np.int16)
        img = nib.load(self._write("v.nii", data))
        qs = [0.0, 0.5, 37.3, 99.5, 100.0]
        np.testing.assert_allclose(
            stream_percentiles(img, qs, slab_slices=3), np.percentile(data.astype(np.float64), qs), atol=1e-9
        )

    def test_float_percentiles_within_one_bin(self):
        data = self.rng.standard_exponential(size=(20, 10, 7)).astype(np.float32)
        img = nib.load(self._write("f.nii", data))
        width = (data.max() - data.min()) / HISTOGRAM_BINS
        got = stream_percentiles(img, [1.0, 50.0, 99.0], slab_slices=2)
        np.testing.assert_allclose(got, np.percentile(data, [1.0, 50.0, 99.0]), atol=width)

    def test_constant_volumes(self):
        for dtype in (np.int16, np.float32):
            img = nib.load(self._write(f"c_{np.dtype(dtype).name}.nii", np.full((6, 5, 4), 7, dtype)))
            self.assertEqual(stream_percentiles(img, [0.5, 99.5]), [7.0, 7.0])

    def test_4d_single_volume(self):
        data = self.rng.integers(0, 100, size=(12, 10, 5, 1)).astype(np.int16)
        path = self._write("v4.nii.gz", data)
        reader, got = self._read(path, CT, slab=2)
        self.assertEqual(reader.shape, (12, 10, 5, 1))
        np.testing.assert_allclose(got, np.clip((data[..., 0] + 100) / 600, 0, 1), atol=1e-6)

    def test_bad_inputs_give_one_line(self):
        missing = os.path.join(self.dir, "missing.nii.gz")
        corrupt = os.path.join(self.dir, "corrupt.nii.gz")
        with open(corrupt, "wb") as f:
            f.write(b"not a nifti file")
        multi = self._write("multi.nii.gz", np.zeros((4, 4, 3, 2), np.int16))
        for path, error, words in (
            (missing, FileNotFoundError, "not found"),
            (corrupt, ValueError, "not a readable NIfTI"),
            (multi, ValueError, "expected a 3D volume"),
        ):
            with self.subTest(path=path), self.assertRaises(error) as ctx:
                NiftiSlabReader(path, CT)
            self.assertIn(path, str(ctx.exception))
            self.assertIn(words, str(ctx.exception))
            self.assertNotIn("\n", str(ctx.exception))

    def test_truncated_file_names_the_slices(self):
        path = self._write("t.nii", self.rng.integers(0, 9, size=(16, 16, 8)).astype(np.int16))
        with open(path, "r+b") as f:
            f.truncate(352 + 16 * 16 * 2 * 5)  # 5 of 8 slices left
        with self.assertRaises(ValueError) as ctx:
            list(NiftiSlabReader(path, CT, slab_slices=4))
        self.assertIn(path, str(ctx.exception))
        self.assertIn("slices 5..7 missing", str(ctx.exception))  # found by the input checks, before any slab


class TestNiftiSlabWriter(unittest.TestCase):
    def test_round_trip(self):
        labels = np.random.default_rng(1).integers(0, 9, size=(24, 20, 11)).astype(np.uint8)
        with tempfile.TemporaryDirectory() as d:
            for axis in (2, 0, 1):
                for ext in (".nii", ".nii.gz"):
                    with self.subTest(axis=axis, ext=ext):
                        path = os.path.join(d, f"out{axis}{ext}")
                        with NiftiSlabWriter(path, labels.shape, AFFINE, slice_axis=axis) as writer:
                            ordered = np.moveaxis(labels, axis, -1)
                            for start in range(0, ordered.shape[-1], 3):
                                writer.write(ordered[..., start : start + 3].astype(np.int64))
                        self.assertEqual(writer.streaming, axis == 2)
                        img = nib.load(path)
                        self.assertEqual(img.get_data_dtype(), np.uint8)
                        np.testing.assert_array_equal(np.asanyarray(img.dataobj), labels)
                        np.testing.assert_allclose(img.affine, AFFINE, atol=1e-6)
                        self.assertEqual((int(img.header["sform_code"]), int(img.header["qform_code"])), (1, 1))
                        np.testing.assert_allclose(img.header.get_zooms(), (1.3, 1.2, 5.0), atol=1e-6)

    def test_bad_slabs(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "out.nii")
            writer = NiftiSlabWriter(path, (8, 6, 4), np.eye(4))
            with self.assertRaises(ValueError):
                writer.write(np.zeros((6, 8, 2)))  # other in-plane shape
            with self.assertRaises(ValueError):
                writer.write(np.full((8, 6, 2), 300))  # not uint8
            writer.write(np.zeros((8, 6, 3)))
            with self.assertRaises(ValueError):
                writer.write(np.zeros((8, 6, 2)))  # past the depth
            with self.assertRaises(ValueError) as ctx:
                writer.close()  # 3 of 4 slices
            self.assertIn("3 of 4", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
