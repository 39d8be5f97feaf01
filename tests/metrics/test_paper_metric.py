# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import csv
import json
import os
import tempfile
import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized
from scipy import ndimage

from aisam_monai.metrics import (
    CASE_CSV_COLUMNS,
    TABLE_COLUMNS,
    PaperSegmentationMetric,
    binary_dice,
    compute_case_metrics,
    hd95,
    write_report,
)

torch.set_num_threads(1)


def _point_mask(shape, *points):
    mask = np.zeros(shape, bool)
    for p in points:
        mask[p] = True
    return mask


def _brute_force_hd95(pred, gt, spacing=None):
    """medpy's definition without cropping: erosion surfaces, EDT on the whole array, pooled percentile."""
    s = ndimage.generate_binary_structure(pred.ndim, 1)
    pb, gb = pred ^ ndimage.binary_erosion(pred, s), gt ^ ndimage.binary_erosion(gt, s)
    d1 = ndimage.distance_transform_edt(~gb, sampling=spacing)[pb]
    d2 = ndimage.distance_transform_edt(~pb, sampling=spacing)[gb]
    return np.percentile(np.hstack((d1, d2)), 95)


HD95_CASES = [
    # single voxels 3 columns apart: every surface distance is 3
    [_point_mask((10, 10), (5, 5)), _point_mask((10, 10), (5, 8)), None, 3.0],
    # same with spacing (2, 0.5): 3 columns of 0.5
    [_point_mask((10, 10), (5, 5)), _point_mask((10, 10), (5, 8)), (2.0, 0.5), 1.5],
    # pred {(5,5),(5,9)}, gt {(5,5)}: pooled distances [0, 4, 0] -> 95th percentile 0 + 0.9 * 4
    [_point_mask((10, 10), (5, 5), (5, 9)), _point_mask((10, 10), (5, 5)), None, 3.6],
    # 3-D: voxels 2 slices apart along z with z-spacing 2.5
    [_point_mask((4, 6, 6), (0, 2, 2)), _point_mask((4, 6, 6), (2, 2, 2)), (2.5, 1.0, 1.0), 5.0],
]


class TestSurfaceDistance(unittest.TestCase):
    @parameterized.expand(HD95_CASES)
    def test_hand_computed(self, pred, gt, spacing, expected):
        self.assertAlmostEqual(hd95(pred, gt, spacing), expected, places=6)

    def test_matches_uncropped_definition(self):
        rng = np.random.default_rng(0)
        for _ in range(5):
            pred = ndimage.binary_dilation(rng.random((12, 20, 18)) > 0.97, iterations=2)
            gt = ndimage.binary_dilation(rng.random((12, 20, 18)) > 0.97, iterations=2)
            for spacing in (None, (3.0, 0.7, 0.9)):
                self.assertAlmostEqual(hd95(pred, gt, spacing), _brute_force_hd95(pred, gt, spacing), places=6)

    def test_border_voxels_are_surface(self):
        # a mask filling the array is eroded away entirely (border value 0): all its voxels are surface
        full = np.ones((3, 3), bool)
        # 8 border voxels at distance 1 or sqrt(2) from the centre voxel, the centre at 0; centre -> border: 0
        distances = [1.0] * 4 + [2**0.5] * 4 + [0.0, 0.0]
        self.assertAlmostEqual(hd95(full, _point_mask((3, 3), (1, 1))), np.percentile(distances, 95), places=6)

    def test_dice(self):
        a = _point_mask((4, 4), (0, 0), (0, 1), (1, 1))
        b = _point_mask((4, 4), (0, 1), (1, 1), (2, 2), (3, 3))
        self.assertAlmostEqual(binary_dice(a, b), 2 * 2 / 7)

    def test_empty_raises(self):
        with self.assertRaises(ValueError):
            hd95(np.zeros((4, 4), bool), _point_mask((4, 4), (1, 1)))


def _four_row_case():
    """Label maps (8, 8, 2) with 5 classes, one per row of the empty-mask table.

    class 1: both present (gt 4 voxels, pred 2 of them + 1 outside) -> Dice 2*2/7
    class 2: gt empty, pred present; class 3: both empty; class 4: gt present, pred empty
    """
    gt = np.zeros((8, 8, 2), np.int64)
    pred = np.zeros_like(gt)
    gt[0:2, 0:2, 0] = 1
    pred[0, 0:2, 0] = 1
    pred[5, 5, 1] = 1
    pred[7, 7, 0] = 2
    gt[4:6, 0, 1] = 4
    return pred, gt


class TestEmptyMaskRules(unittest.TestCase):
    @parameterized.expand(
        [
            ["aisam", [2 * 2 / 7, 1.0, 1.0, 0.0], [None, 0.0, 0.0, 0.0]],
            ["transunet", [2 * 2 / 7, 1.0, 0.0, 0.0], [None, 0.0, 0.0, 0.0]],
        ]
    )
    def test_rows(self, rule, dice, hd):
        pred, gt = _four_row_case()
        result = compute_case_metrics(pred, gt, num_classes=5, rule=rule, spacing=(1.0, 1.0, 4.0))
        self.assertEqual(result.shape, (4, 3))
        np.testing.assert_allclose(result[:, 0], dice, atol=1e-12)
        np.testing.assert_allclose(result[1:, 1], hd[1:], atol=1e-12)
        self.assertAlmostEqual(result[0, 1], hd95(pred == 1, gt == 1))
        # the mm column is MONAI's Hausdorff distance with spacing, NaN for any empty mask
        self.assertTrue(np.isfinite(result[0, 2]))
        self.assertTrue(np.all(np.isnan(result[1:, 2])))

    def test_bad_rule_and_labels(self):
        pred, gt = _four_row_case()
        with self.assertRaises(ValueError):
            compute_case_metrics(pred, gt, num_classes=5, rule="medpy")
        with self.assertRaises(ValueError):
            compute_case_metrics(pred, gt, num_classes=3)


class TestPaperSegmentationMetric(unittest.TestCase):
    def test_batch_and_aggregate(self):
        pred, gt = _four_row_case()
        affine = torch.diag(torch.tensor([0.5, 0.5, 4.0, 1.0], dtype=torch.float64))
        y = MetaTensor(torch.as_tensor(np.stack([gt, gt]))[:, None], affine=affine)
        y_pred = torch.as_tensor(np.stack([pred, gt]))[:, None]
        metric = PaperSegmentationMetric(num_classes=5, rule="transunet")
        metric(y_pred=y_pred, y=y)
        buffer = metric.get_buffer()
        self.assertEqual(tuple(buffer.shape), (2, 4, 3))
        # second case is perfect: Dice 1 for present classes, (0, 0) for the both-empty classes under transunet
        np.testing.assert_allclose(buffer[1, :, 0].numpy(), [1.0, 0.0, 0.0, 1.0])
        expected = buffer[..., 0].mean(0).mean().item()
        self.assertAlmostEqual(metric.aggregate().item(), expected)

    def test_spacing_from_affine(self):
        # single voxels 3 columns apart; spacing (0.5, 0.5, 4) from the affine gives 1.5 mm, unit spacing 3
        gt = np.zeros((1, 1, 6, 6, 2), np.int64)
        pred = np.zeros_like(gt)
        gt[..., 2, 1, 0] = 1
        pred[..., 2, 4, 0] = 1
        affine = torch.diag(torch.tensor([0.5, 0.5, 4.0, 1.0], dtype=torch.float64))
        metric = PaperSegmentationMetric(num_classes=2, rule="aisam")
        metric(y_pred=torch.as_tensor(pred), y=MetaTensor(torch.as_tensor(gt), affine=affine))
        np.testing.assert_allclose(metric.get_buffer()[0, 0].numpy(), [0.0, 3.0, 1.5], atol=1e-6)
        no_mm = PaperSegmentationMetric(num_classes=2, rule="aisam", spacing_mm=False)
        no_mm(y_pred=torch.as_tensor(pred), y=torch.as_tensor(gt))
        self.assertTrue(np.isnan(no_mm.get_buffer()[0, 0, 2].item()))


class TestReport(unittest.TestCase):
    def test_files_and_table(self):
        pred, gt = _four_row_case()
        scores = {
            rule: np.stack([compute_case_metrics(pred, gt, 5, rule), compute_case_metrics(gt, gt, 5, rule)])
            for rule in ("aisam", "transunet")
        }
        names = ["RV", "Myo", "LV", "extra"]
        with tempfile.TemporaryDirectory() as d:
            summary, table = write_report(
                d, ["case_a", "case_b"], scores, names, ("DICE", "HD95", *names), extra={"eval_mode": "auto"}
            )
            with open(os.path.join(d, "metrics_per_case.csv")) as f:
                rows = list(csv.reader(f))
            self.assertEqual(tuple(rows[0]), CASE_CSV_COLUMNS)
            self.assertEqual(len(rows), 1 + 2 * 2 * 4)
            with open(os.path.join(d, "metrics_summary.json")) as f:
                saved = json.load(f)
        self.assertEqual(saved["eval_mode"], "auto")
        aisam = saved["protocols"]["aisam"]
        self.assertAlmostEqual(aisam["per_class"]["RV"]["dice"], (4 / 7 + 1) / 2)
        self.assertAlmostEqual(aisam["mean_dice"], np.mean([(4 / 7 + 1) / 2, 1.0, 1.0, 0.5]))
        self.assertIsNone(aisam["per_class"]["Myo"]["hd95_mm"])
        header = table.splitlines()[0]
        self.assertEqual(
            [c.strip() for c in header.strip("|").split("|")], ["protocol", "DICE", "HD95", *names, "HD95 mm"]
        )
        self.assertIn(f"{100 * aisam['mean_dice']:.2f}", table.splitlines()[2])

    def test_paper_columns(self):
        self.assertEqual(TABLE_COLUMNS["acdc"], ("DICE", "RV", "Myo", "LV"))
        self.assertEqual(TABLE_COLUMNS["synapse"][:3], ("DICE", "HD95", "Aorta"))


if __name__ == "__main__":
    unittest.main()
