# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Presence, boxes and random points from labels: boxes enclose their class, points lie inside it."""

from __future__ import annotations

import unittest

import torch

from aisam_monai.transforms import ClassPresenced, LabelBoxesd, RandLabelPointsd

torch.set_num_threads(1)


def _label() -> torch.Tensor:
    lab = torch.zeros(1, 30, 40)
    lab[0, 5:12, 3:20] = 1  # rows 5..11, cols 3..19
    lab[0, 20, 35] = 2  # one pixel
    return lab  # class 3 absent


class TestPrompts(unittest.TestCase):
    def test_presence(self):
        out = ClassPresenced("label", 4)({"label": _label()})
        torch.testing.assert_close(out["multi_hot"], torch.tensor([1.0, 1.0, 1.0, 0.0]))

    def test_boxes(self):
        boxes = LabelBoxesd("label", 4)({"label": _label()})["boxes"]
        self.assertEqual(boxes.shape, (4, 4))
        torch.testing.assert_close(boxes[1], torch.tensor([3.0, 5.0, 19.0, 11.0]))  # inclusive x1, y1, x2, y2
        torch.testing.assert_close(boxes[2], torch.tensor([35.0, 20.0, 35.0, 20.0]))
        torch.testing.assert_close(boxes[3], torch.tensor([0.0, 0.0, -1.0, -1.0]))  # absent: empty box
        torch.testing.assert_close(boxes[0], torch.tensor([0.0, 0.0, 39.0, 29.0]))

    def test_boxes_enclose_random_shapes(self):
        g = torch.Generator().manual_seed(0)
        lab = torch.randint(0, 3, (1, 16, 12), generator=g) * (torch.rand(1, 16, 12, generator=g) > 0.7)
        boxes = LabelBoxesd("label", 3)({"label": lab})["boxes"]
        rows, cols = torch.meshgrid(torch.arange(16), torch.arange(12), indexing="ij")
        for c in range(3):
            m = lab[0] == c
            x1, y1, x2, y2 = boxes[c].tolist()
            self.assertTrue(((cols[m] >= x1) & (cols[m] <= x2) & (rows[m] >= y1) & (rows[m] <= y2)).all())
            self.assertEqual(
                (cols[m].min().item(), rows[m].min().item(), cols[m].max().item(), rows[m].max().item()),
                (x1, y1, x2, y2),
            )

    def test_points_inside_their_class(self):
        xf = RandLabelPointsd("label", 4, num_points=5)
        xf.set_random_state(7)
        lab = _label()
        out = xf({"label": lab})
        pts, pl = out["points"], out["point_labels"]
        self.assertEqual(pts.shape, (4, 5, 2))
        self.assertEqual(pl.dtype, torch.int64)
        for c in range(3):
            self.assertTrue((pl[c] == 1).all())
            x, y = pts[c, :, 0].long(), pts[c, :, 1].long()
            self.assertTrue((lab[0, y, x] == c).all(), c)
        self.assertTrue((pl[3] == -1).all())
        torch.testing.assert_close(pts[3], torch.zeros(5, 2))
        # seeded: same state, same points; another draw differs
        xf.set_random_state(7)
        torch.testing.assert_close(xf({"label": lab})["points"], pts)
        self.assertFalse(torch.equal(xf({"label": lab})["points"][1], pts[1]))

    def test_volume_label(self):
        vol = torch.stack([_label()[0], torch.zeros(30, 40)], -1)[None]  # (1, 30, 40, 2)
        d = ClassPresenced("label", 4)({"label": vol})
        d = LabelBoxesd("label", 4)(d)
        xf = RandLabelPointsd("label", 4, num_points=2)
        d = xf(d)
        self.assertEqual(d["multi_hot"].shape, (2, 4))
        self.assertEqual(d["boxes"].shape, (2, 4, 4))
        self.assertEqual(d["points"].shape, (2, 4, 2, 2))
        torch.testing.assert_close(d["multi_hot"][1], torch.tensor([1.0, 0.0, 0.0, 0.0]))
        torch.testing.assert_close(d["boxes"][1, 1], torch.tensor([0.0, 0.0, -1.0, -1.0]))
        self.assertTrue((d["point_labels"][1, 1:] == -1).all())

    def test_bad_label(self):
        with self.assertRaisesRegex(ValueError, "0..3"):
            ClassPresenced("label", 4)({"label": torch.full((1, 4, 4), 5)})
        with self.assertRaisesRegex(ValueError, r"\(1, H, W\)"):
            LabelBoxesd("label", 4)({"label": torch.zeros(2, 4, 4)})


if __name__ == "__main__":
    unittest.main()
