# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import math
import unittest

import torch

from aisam_monai.losses import AISAMLoss, PromptDiversityLoss, PromptHeuristicLoss

T = 1 / 7


class TestPromptDiversityLoss(unittest.TestCase):
    def test_identical_points_hand_computed(self):
        """All features equal: every anchor has loss log(M) (M members in its set)."""
        f = torch.ones(2, 3, 4, 8)
        loss = PromptDiversityLoss(T, within_weight=0.2, across_weight=0.5)
        torch.testing.assert_close(loss(f), torch.tensor(0.2 * math.log(4) + 0.5 * math.log(3)))

    def test_orthogonal_points_hand_computed(self):
        """Orthonormal features: loss = -log(e^{1/t} / (e^{1/t} + (M-1)))."""
        f = torch.eye(12).view(1, 3, 4, 12)  # 12 mutually orthogonal points
        within = -math.log(math.exp(7) / (math.exp(7) + 3))
        across = -math.log(math.exp(7) / (math.exp(7) + 2))
        loss = PromptDiversityLoss(T)
        torch.testing.assert_close(loss(f), torch.tensor(0.2 * within + 0.5 * across))
        torch.testing.assert_close(loss.within_class(f), torch.full((1, 3, 4), within))
        self.assertEqual(PromptDiversityLoss(T, reduction="none")(f).shape, (1, 3, 4))

    def test_gradient_spreads_points(self):
        f = torch.randn(1, 3, 4, 16, requires_grad=True)
        loss = PromptDiversityLoss()
        before = loss(f)
        before.backward()
        self.assertTrue(torch.isfinite(f.grad).all())
        with torch.no_grad():
            after = loss(f - 0.1 * f.grad)
        self.assertLess(after.item(), before.item())

    def test_bad_shape(self):
        with self.assertRaisesRegex(ValueError, r"\(B, C, N, D\)"):
            PromptDiversityLoss()(torch.rand(3, 4, 8))


class TestHeuristicAndAISAMLoss(unittest.TestCase):
    def test_heuristic_is_weighted_sum(self):
        w = torch.rand(2, 3, 4, 4, 4)
        w = w / w.sum((-2, -1), keepdim=True)
        f = torch.randn(2, 3, 4, 8)
        y = torch.randint(0, 3, (2, 1, 16, 16))
        h = PromptHeuristicLoss(correctness_weight=2.0, sharpness_weight=1.0)
        t = h.terms(w, f, y)
        torch.testing.assert_close(h(w, f, y), 2.0 * t["point_correctness"] + t["point_sharpness"] + t["diversity"])

    def test_aisam_loss_parts(self):
        out = {
            "logits": torch.randn(2, 3, 16, 16, requires_grad=True),
            "class_logits": torch.randn(2, 3, requires_grad=True),
            "point_weights": torch.softmax(torch.randn(2, 3, 4, 16), -1).view(2, 3, 4, 4, 4),
            "point_features": torch.randn(2, 3, 4, 8),
        }
        y = torch.zeros(2, 1, 64, 64, dtype=torch.long)
        y[0, :, 10:20, 10:20] = 2
        parts = AISAMLoss(3)(out, y)
        self.assertEqual(
            set(parts), {"loss", "seg", "cls", "point_correctness", "point_sharpness", "diversity", "heuristic"}
        )
        presence = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
        expected_cls = torch.nn.functional.binary_cross_entropy_with_logits(out["class_logits"], presence)
        torch.testing.assert_close(parts["cls"], expected_cls.detach())
        torch.testing.assert_close(parts["loss"].detach(), parts["seg"] + parts["cls"] + parts["heuristic"])
        parts["loss"].backward()
        self.assertTrue(torch.isfinite(out["logits"].grad).all())
        with self.assertRaisesRegex(ValueError, r"\(B, 1, H, W\) label map"):
            AISAMLoss(3)(out, y[:, 0])


if __name__ == "__main__":
    unittest.main()
