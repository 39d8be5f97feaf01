# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from aisam_monai.losses import PointCorrectnessLoss, PointSharpnessLoss

# One image, 2 classes, 1 point, a 2x2 grid. Class 1 occupies the left column; class 0 the right.
W = torch.tensor([0.1, 0.2, 0.3, 0.4]).view(1, 1, 1, 2, 2).expand(1, 2, 1, 2, 2).clone()
LABELS = torch.tensor([[[[1, 0], [1, 0]]]])  # (B, 1, H, W) label map
G = 0.1
# class 0 cells {0.2, 0.4}: cor 0.6, max 0.4; class 1 cells {0.1, 0.3}: cor 0.4, max 0.3
PC = [1 - (0.6 + G) / (1 + G), 1 - (0.4 + G) / (1 + G)]
PS = [1 - (0.4 + G) / (0.6 + G), 1 - (0.3 + G) / (0.4 + G)]

TEST_CASES = [
    # loss class, expected per-class values
    [PointCorrectnessLoss, PC],
    [PointSharpnessLoss, PS],
]


class TestPointLosses(unittest.TestCase):
    @parameterized.expand(TEST_CASES)
    def test_hand_computed(self, cls, expected):
        np_expected = torch.tensor(expected)
        torch.testing.assert_close(cls(G, reduction="none")(W, LABELS)[0, :, 0], np_expected)
        torch.testing.assert_close(cls(G)(W, LABELS), np_expected.mean())
        torch.testing.assert_close(cls(G, reduction="sum")(W, LABELS), np_expected.sum())
        one_hot = torch.nn.functional.one_hot(LABELS[:, 0], 2).permute(0, 3, 1, 2)
        torch.testing.assert_close(cls(G)(W, one_hot), np_expected.mean())

    @parameterized.expand(TEST_CASES)
    def test_absent_class_is_excluded(self, cls, expected):
        labels = torch.zeros_like(LABELS)  # class 1 absent: only class 0 counts, over the whole grid
        value = cls(G)(W, labels)
        full = 1 - (1 + G) / (1 + G) if cls is PointCorrectnessLoss else 1 - (0.4 + G) / (1 + G)
        torch.testing.assert_close(value, torch.tensor(full))
        self.assertEqual(cls(G, reduction="none")(W, labels)[0, 1].item(), 0.0)

    @parameterized.expand(TEST_CASES)
    def test_all_absent_gives_zero(self, cls, _):
        w = W[:, :1].clone().requires_grad_(True)  # one class (background) ...
        target = torch.zeros(1, 1, 2, 2)  # ... absent from a one-hot target
        value = cls(G)(w, target)
        self.assertEqual(value.item(), 0.0)
        value.backward()
        self.assertTrue(torch.isfinite(w.grad).all())

    def test_one_hot_inside_is_zero(self):
        w = torch.zeros(1, 2, 1, 2, 2)
        w[0, 1, 0, 0, 0] = 1.0  # class 1's point on a class-1 cell
        w[0, 0, 0, 1, 1] = 1.0  # class 0's point on a class-0 cell
        self.assertEqual(PointCorrectnessLoss()(w, LABELS).item(), 0.0)
        self.assertEqual(PointSharpnessLoss()(w, LABELS).item(), 0.0)
        w_out = torch.zeros(1, 2, 1, 2, 2)
        w_out[0, :, 0, 0, 1] = 1.0  # both on a class-0 cell: class 1's point is outside
        self.assertAlmostEqual(
            PointCorrectnessLoss(reduction="none")(w_out, LABELS)[0, 1, 0].item(), 1 - G / (1 + G), places=6
        )

    def test_gradients_finite_and_sharpness_denominator_detached(self):
        logits = torch.randn(2, 3, 4, 8, 8, requires_grad=True)
        w = logits.flatten(3).softmax(-1).view_as(logits)
        target = torch.randint(0, 3, (2, 1, 32, 32))  # resized to 8x8 bilinearly
        (PointCorrectnessLoss()(w, target) + PointSharpnessLoss()(w, target)).backward()
        self.assertTrue(torch.isfinite(logits.grad).all())
        # detached denominator: the gradient equals that of -max(W*T)/(const+gamma) alone
        w2 = W.clone().requires_grad_(True)
        PointSharpnessLoss(G, reduction="sum")(w2, LABELS).backward()
        expected = torch.zeros_like(W)
        expected[0, 0, 0, 1, 1] = -1 / (0.6 + G)
        expected[0, 1, 0, 1, 0] = -1 / (0.4 + G)
        torch.testing.assert_close(w2.grad, expected)

    def test_identity_resize_at_grid_size(self):
        target = torch.randint(0, 3, (1, 1, 8, 8))
        w = torch.full((1, 3, 2, 8, 8), 1 / 64)
        frac = torch.stack([(target == c).float().mean() for c in range(3)])
        expected = 1 - (frac + G) / (1 + G)
        got = PointCorrectnessLoss(reduction="none")(w, target)[0, :, 0]
        present = frac > 0
        torch.testing.assert_close(got[present], expected[present])

    def test_bad_inputs(self):
        with self.assertRaisesRegex(ValueError, r"point_weights must be \(B, C, N, h, w\)"):
            PointCorrectnessLoss()(torch.rand(1, 2, 4, 4), LABELS)
        with self.assertRaisesRegex(ValueError, r"label values must lie in \[0, 2\)"):
            PointCorrectnessLoss()(W, LABELS + 2)
        with self.assertRaisesRegex(ValueError, r"target must be"):
            PointSharpnessLoss()(W, torch.zeros(1, 3, 2, 2))


if __name__ == "__main__":
    unittest.main()
