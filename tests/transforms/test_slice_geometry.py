# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

from __future__ import annotations

import unittest

import torch

from aisam_monai.transforms.slice_geometry import (
    box_mask,
    box_to_model,
    model_to_pixel,
    pixel_to_model,
    resize_to_model,
)


class TestPointMapping(unittest.TestCase):
    def test_scaling_per_axis(self):
        # a 96 x 160 slice on a 128 grid: x scales by 128/160, y by 128/96 (pixel centres onto pixel centres)
        xy = torch.tensor([[0.0, 0.0], [159.0, 95.0], [79.5, 47.5]])
        out = pixel_to_model(xy, (96, 160), 128)
        sy = 128 / 96
        expected = torch.tensor([[0.5 * 0.8 - 0.5, 0.5 * sy - 0.5], [127.5 - 0.4, 127.5 - 0.5 * sy], [63.5, 63.5]])
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(model_to_pixel(out, (96, 160), 128), xy)

    def test_cell_centres_map_to_cell_centres(self):
        # the centre of embedding cell (r, c) of an 8 x 8 grid over 128 px is at 16c + 7.5; in a 96 x 160 slice
        # it is the centre of the same cell laid over the slice: (c + 0.5) * 160 / 8 - 0.5
        cols, rows = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="xy")
        model_xy = torch.stack([16 * cols + 7.5, 16 * rows + 7.5], -1)
        slice_xy = model_to_pixel(model_xy, (96, 160), 128)
        torch.testing.assert_close(slice_xy[..., 0], (cols + 0.5) * 20 - 0.5)
        torch.testing.assert_close(slice_xy[..., 1], (rows + 0.5) * 12 - 0.5)


class TestImageResize(unittest.TestCase):
    def test_slices_to_the_model_grid(self):
        slices = torch.arange(6 * 10, dtype=torch.int16).view(1, 1, 6, 10)
        out = resize_to_model(slices, 32)
        self.assertEqual((out.shape, out.dtype), ((1, 1, 32, 32), torch.float32))
        torch.testing.assert_close(out, torch.nn.functional.interpolate(slices.float(), size=(32, 32), mode="bilinear"))


class TestBoxes(unittest.TestCase):
    def test_box_to_model_covers_the_same_area(self):
        boxes = torch.tensor([[[10.0, 20.0, 29.0, 35.0], [-1.0, -1.0, -1.0, -1.0], [5.0, 5.0, 4.0, 9.0]]])
        out = box_to_model(boxes, (96, 160), 128)
        # x: [10, 30) * 0.8 = [8, 24) -> 8..23; y: [20, 36) * 4/3 = [26.67, 48) -> 26..47
        torch.testing.assert_close(out[0, 0], torch.tensor([8.0, 26.0, 23.0, 47.0]))
        torch.testing.assert_close(out[0, 1], torch.full((4,), -1.0))  # no box stays no box
        torch.testing.assert_close(out[0, 2], torch.tensor([0.0, 0.0, -1.0, -1.0]))  # empty stays empty

    def test_box_mask_inclusive(self):
        boxes = torch.tensor([[[2.0, 1.0, 4.0, 3.0], [-1.0, -1.0, -1.0, -1.0], [0.0, 0.0, -1.0, -1.0]]])
        mask = box_mask(boxes, (6, 7))
        expected = torch.zeros(6, 7, dtype=torch.bool)
        expected[1:4, 2:5] = True
        torch.testing.assert_close(mask[0, 0], expected)
        self.assertTrue(bool(mask[0, 1].all()))
        self.assertFalse(bool(mask[0, 2].any()))


if __name__ == "__main__":
    unittest.main()
