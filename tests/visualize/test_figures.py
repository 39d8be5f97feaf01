# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

from __future__ import annotations

import os
import tempfile
import unittest

import matplotlib.pyplot as plt
import numpy as np
import torch

from aisam_monai.visualize import class_colors, draw_overlay, plot_slices

NAMES = ["background", "RV", "Myo", "LV"]


def _slice(h: int = 40, w: int = 56):
    yy, xx = np.mgrid[:h, :w]
    lab = np.zeros((h, w), dtype=np.int64)
    lab[(xx - 20) ** 2 + (yy - 20) ** 2 < 100] = 3
    lab[(xx - 40) ** 2 + (yy - 20) ** 2 < 36] = 1
    img = lab * 0.3 + np.random.default_rng(0).normal(0, 0.05, (h, w))
    return img, lab


class TestDrawOverlay(unittest.TestCase):
    def test_mask_colours_and_points(self):
        img, lab = _slice()
        fig, ax = plt.subplots()
        pts = np.array([[[1, 1]], [[40, 20]], [[0, 0]], [[20, 20]]], dtype=np.float32)  # (C=4, K=1, 2)
        lbl = np.array([[1], [0], [-1], [1]])
        draw_overlay(ax, torch.as_tensor(img)[None], mask=lab, points=pts, point_labels=lbl, num_classes=4)
        rgba = ax.get_images()[1].get_array()
        colors = class_colors(4)
        np.testing.assert_allclose(rgba[20, 20, :3], colors[3, :3])
        np.testing.assert_allclose(rgba[20, 40, :3], colors[1, :3])
        self.assertEqual(rgba[0, 0, 3], 0.0)  # background is not coloured
        self.assertGreater(rgba[20, 20, 3], 0.0)
        # positive points (classes 0 and 3) and one negative point (class 1); padding is not drawn
        offsets = [c.get_offsets() for c in ax.collections]
        self.assertEqual(sorted(len(o) for o in offsets), [1, 2])
        plt.close(fig)

    def test_bad_inputs(self):
        img, lab = _slice()
        fig, ax = plt.subplots()
        with self.assertRaises(ValueError):
            draw_overlay(ax, img, mask=lab[:10], num_classes=4)
        with self.assertRaises(ValueError):
            draw_overlay(ax, img, mask=lab, num_classes=3)  # label 3 out of range
        with self.assertRaises(ValueError):
            draw_overlay(ax, img, points=np.zeros((5, 1, 2)), num_classes=4)
        with self.assertRaises(ValueError):
            draw_overlay(ax, np.zeros((2, 3, 4, 5)))
        plt.close(fig)


class TestPlotSlices(unittest.TestCase):
    def test_writes_png_with_grid_and_legend(self):
        img, lab = _slice()
        img2, lab2 = _slice(32, 32)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "sub", "fig.png")
            fig = plot_slices(
                [img, img2],
                labels=[lab, lab2],
                preds=[np.roll(lab, 2, 1), lab2],
                points=[np.zeros((4, 2, 2)) + 5, None],
                class_names=NAMES,
                titles=["slice 0", "slice 1"],
                out_path=out,
            )
            self.assertEqual(len(fig.axes), 4)  # 2 rows (truth, prediction) x 2 slices
            texts = [t.get_text() for t in fig.legends[0].get_texts()]
            self.assertEqual(texts[:3], NAMES[1:])
            self.assertIn("negative", texts)
            with open(out, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertEqual(sorted(os.listdir(os.path.dirname(out))), ["fig.png"])  # no temporary left
            plt.close(fig)

    def test_background_points_legend_matches_drawing(self):
        img, lab = _slice()
        pts = np.zeros((4, 2, 2)) + 5
        hidden = np.ones((4, 2))
        hidden[0] = -1  # background points not drawn
        for labels, expected in ((None, True), ([hidden], False)):
            fig = plot_slices([img], preds=[lab], points=[pts], point_labels=labels, class_names=NAMES)
            handles = {h.get_label(): h for h in fig.legends[0].legend_handles}
            self.assertEqual(f"{NAMES[0]} points" in handles, expected)
            if expected:  # drawn with the same circle as every positive point
                self.assertEqual(handles[f"{NAMES[0]} points"].get_marker(), handles["positive"].get_marker())
            plt.close(fig)

    def test_length_mismatch(self):
        img, lab = _slice()
        with self.assertRaises(ValueError):
            plot_slices([img, img], preds=[lab], class_names=NAMES)
        with self.assertRaises(ValueError):
            plot_slices([], class_names=NAMES)


if __name__ == "__main__":
    unittest.main()
