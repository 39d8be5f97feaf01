# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The loss switches of the paper's Table 3 ablations (arXiv 2312.03119): no diversity, no diversity and sharpness,
no prompt heuristic loss."""

from __future__ import annotations

import unittest

import torch

from aisam_monai.losses import AISAMLoss, PromptHeuristicLoss

HEURISTIC_PARTS = ("point_correctness", "point_sharpness", "diversity", "heuristic")


def _outputs(with_points: bool = True) -> dict:
    torch.manual_seed(0)
    out = {"logits": torch.randn(2, 3, 16, 16, requires_grad=True), "class_logits": torch.randn(2, 3)}
    if with_points:
        out["point_weights"] = torch.softmax(torch.randn(2, 3, 4, 16), -1).view(2, 3, 4, 4, 4)
        out["point_features"] = torch.randn(2, 3, 4, 8)
    return out


def _target() -> torch.Tensor:
    y = torch.zeros(2, 1, 32, 32, dtype=torch.long)
    y[0, :, 4:12, 4:12] = 1
    y[1, :, 10:20, 8:30] = 2
    return y


class TestLossAblations(unittest.TestCase):
    def test_without_prompt_heuristic_loss(self):
        # no point_weights / point_features in the outputs: the heuristic loss is not computed at all
        parts = AISAMLoss(3, prompt_heuristic=False)(_outputs(with_points=False), _target())
        for name in HEURISTIC_PARTS:
            self.assertEqual(float(parts[name]), 0.0, name)
        torch.testing.assert_close(parts["loss"].detach(), parts["seg"] + parts["cls"])
        parts["loss"].backward()

    def test_full_loss_keeps_the_heuristic(self):
        out, y = _outputs(), _target()
        full, without = AISAMLoss(3)(out, y), AISAMLoss(3, prompt_heuristic=False)(out, y)
        self.assertGreater(float(full["heuristic"]), 0.0)
        torch.testing.assert_close(full["loss"].detach() - full["heuristic"], without["loss"].detach())

    def test_without_diversity_and_sharpness(self):
        out, y = _outputs(), _target()
        w, f = out["point_weights"], out["point_features"]
        terms = PromptHeuristicLoss().terms(w, f, y)
        self.assertGreater(float(terms["diversity"]), 0.0)
        no_div = PromptHeuristicLoss(diversity_weight=0.0)
        torch.testing.assert_close(no_div(w, f, y), 2.0 * terms["point_correctness"] + terms["point_sharpness"])
        no_div_sharp = PromptHeuristicLoss(sharpness_weight=0.0, diversity_weight=0.0)
        torch.testing.assert_close(no_div_sharp(w, f, y), 2.0 * terms["point_correctness"])
        # the parts are still reported (for logging) while the total leaves them out
        parts = AISAMLoss(3, heuristic=no_div_sharp)(out, y)
        torch.testing.assert_close(parts["diversity"], terms["diversity"])
        torch.testing.assert_close(parts["heuristic"], 2.0 * terms["point_correctness"])


if __name__ == "__main__":
    unittest.main()
