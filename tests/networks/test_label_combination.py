# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

from __future__ import annotations

import unittest

import torch
import torch.nn.functional as F

from aisam_monai.networks import class_gate, combine_class_masks, resize_logits


class TestMaskMapping(unittest.TestCase):
    def test_off_centre_rectangle(self):
        # logits on the 32 x 32 low-res grid of a 128 model frame, positive on a rectangle; on a 96 x 160 slice the
        # rectangle must land at the same relative place
        logits = torch.full((1, 1, 32, 32), -5.0)
        logits[..., 4:12, 20:28] = 5.0  # rows 4..11, cols 20..27 of 32
        mask = resize_logits(logits, (96, 160))[0, 0] > 0
        rows, cols = torch.nonzero(mask, as_tuple=True)
        self.assertEqual((int(rows.min()), int(rows.max())), (12, 35))  # [4, 12) * 3
        self.assertEqual((int(cols.min()), int(cols.max())), (100, 139))  # [20, 28) * 5


class TestLabelsOnTheSliceGrid(unittest.TestCase):
    def test_gated_probabilities_are_resized_before_the_argmax(self):
        torch.manual_seed(0)
        logits, class_logits = torch.randn(2, 4, 8, 8), torch.randn(2, 4)
        labels = combine_class_masks(logits, class_logits, size=(21, 13))
        probs = logits.softmax(1) * class_gate(class_logits, 4)[:, :, None, None]
        expected = F.interpolate(probs, size=(21, 13), mode="bilinear", align_corners=False).argmax(1, keepdim=True)
        torch.testing.assert_close(labels, expected)
        torch.testing.assert_close(combine_class_masks(logits, class_logits), probs.argmax(1, keepdim=True))

    def test_allowed_region(self):
        logits = torch.zeros(1, 3, 4, 4)
        logits[:, 2] = 5.0  # class 2 wins everywhere
        allowed = torch.ones(1, 3, 8, 8, dtype=torch.bool)
        allowed[:, 2, :, 4:] = False  # ... but may only be in the left half
        labels = combine_class_masks(logits, gate="none", size=(8, 8), allowed=allowed)[0, 0]
        self.assertTrue(bool((labels[:, :4] == 2).all()))
        self.assertFalse(bool((labels[:, 4:] == 2).any()))


if __name__ == "__main__":
    unittest.main()
