# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor

from aisam_monai.interactive import AISAMPredictor, model_to_pixel, pixel_to_model, resize_logits
from aisam_monai.networks import AISAM, combine_class_masks
from tests.interactive.tiny_model import CLASS_NAMES, SIZE, disks, trained_model

H, W = 96, 160  # non-square, not the model size: x scales by 64/160, y by 64/96
RADIUS = 9.0  # disk radius in model pixels
LEFT, RIGHT = (0.3 * W, 0.45 * H), (0.72 * W, 0.6 * H)  # off-centre disk centres (x, y) in slice pixels
INTENSITY = {"kind": "range", "a_min": 0.0, "a_max": 1.0}


def disk_mask(centre: tuple[float, float]) -> torch.Tensor:
    """``(H, W)`` bool: the ellipse drawn by :func:`disks` around ``centre``."""
    return torch.as_tensor(disks(H, W, centre, centre, RADIUS) > 0)


def image() -> np.ndarray:
    return disks(H, W, LEFT, RIGHT, RADIUS)


def click_only(predictor: AISAMPredictor, slice_index: int | None = None):
    """Delete every generated point of a slice and put one background click in a corner."""
    for pid in range(predictor.num_classes * predictor.num_points):
        predictor.delete_point(pid, slice_index=slice_index)
    return predictor.add_point(3, 3, "background", slice_index=slice_index)


class EncoderCounter:
    """Counts the image encoder's forward calls and the images it saw."""

    def __init__(self, model: AISAM) -> None:
        self.calls = 0
        self.images = 0
        self.handle = model.sam.image_encoder.register_forward_hook(self)

    def __call__(self, module, inputs, output) -> None:
        self.calls += 1
        self.images += inputs[0].shape[0]


class TestTrainedPredictor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.model = trained_model()

    def setUp(self):
        self.predictor = AISAMPredictor(self.model, CLASS_NAMES, intensity=INTENSITY, progress=False)
        self.predictor.set_image(image())
        self.counter = EncoderCounter(self.model)

    def tearDown(self):
        self.counter.handle.remove()

    def test_edits_do_not_rerun_the_encoder(self):
        p = self.predictor
        p.predict()
        self.assertEqual(self.counter.calls, 1)
        p.add_point(*LEFT, "disk")
        p.add_point(*RIGHT, "disk", positive=False)
        p.move_point(0, 10.0, 10.0)
        p.delete_point(5)
        p.set_box("disk", (10, 10, 100, 80))
        p.set_present_classes(["background"])
        p.clear_edits()
        p.decode_path = "point"
        p.predict()
        self.assertEqual(self.counter.calls, 1)

    def test_positive_click_recovers_missed_region(self):
        p = self.predictor
        click_only(p)
        before = p.add_point(*LEFT, "disk").masks[1]
        left, right = disk_mask(LEFT), disk_mask(RIGHT)
        self.assertGreater(int((before & left).sum()), 0.6 * int(left.sum()))
        self.assertLess(int((before & right).sum()), 0.1 * int(right.sum()))  # the right disk is missed
        after = p.add_point(*RIGHT, "disk").masks[1]
        self.assertGreater(int((after & right).sum()), int((before & right).sum()) + 0.5 * int(right.sum()))

    def test_moving_a_generated_point_changes_the_mask(self):
        p = self.predictor
        np_ = p.num_points
        for pid in range(2 * np_):  # keep one generated point per class: ids 0 (background) and Np (disk)
            if pid % np_:
                p.delete_point(pid)
        p.move_point(0, 3.0, 3.0)
        at_left = p.move_point(np_, *LEFT).masks[1]
        at_right = p.move_point(np_, *RIGHT).masks[1]
        self.assertTrue(bool(p.predict().point_generated[1, 0]))
        torch.testing.assert_close(p.predict().points[1, 0], torch.tensor(RIGHT))
        left, right = disk_mask(LEFT), disk_mask(RIGHT)
        self.assertGreater(int((at_left & left).sum()), 0.6 * int(left.sum()))
        self.assertGreater(int((at_right & right).sum()), 0.6 * int(right.sum()))
        self.assertLess(int((at_right & left).sum()), 0.1 * int(left.sum()))

    def test_box_removes_class_outside(self):
        for mode in ("generalized", "point"):
            p = self.predictor
            p.decode_path = mode
            click_only(p)
            both = p.add_point(*RIGHT, "disk")
            p.add_point(*LEFT, "disk")
            both = p.predict().masks[1]
            self.assertGreater(int((both & disk_mask(RIGHT)).sum()), 0, mode)
            box = (20, 10, 75, 70)  # around the left disk only
            boxed = p.set_box("disk", box).masks[1]
            inside = torch.zeros(H, W, dtype=torch.bool)
            inside[box[1] : box[3] + 1, box[0] : box[2] + 1] = True
            self.assertFalse(bool((boxed & ~inside).any()), mode)
            self.assertGreater(int((boxed & disk_mask(LEFT)).sum()), 0.5 * int(disk_mask(LEFT).sum()), mode)
            p.clear_edits()

    def test_declaring_a_class_absent_removes_it(self):
        p = self.predictor
        click_only(p)
        pred = p.add_point(*LEFT, "disk")
        self.assertGreater(int(pred.masks[1].sum()), 0)
        pred = p.set_present_classes(["background"])
        self.assertEqual(int(pred.masks[1].sum()), 0)
        self.assertFalse(bool(pred.present[1]))
        self.assertTrue(bool((pred.labels == 0).all()))

    def test_off_centre_shape_maps_back_to_the_input_grid(self):
        # a click on the off-centre right ellipse of a 96 x 160 slice: the mask comes back on the ellipse
        p = self.predictor
        click_only(p)
        mask = p.add_point(*RIGHT, "disk").masks[1]
        truth = disk_mask(RIGHT)
        dice = 2 * int((mask & truth).sum()) / (int(mask.sum()) + int(truth.sum()))
        self.assertGreater(dice, 0.8)

    def test_points_reach_the_model_in_its_frame(self):
        p = self.predictor
        seen = {}
        decode = self.model.decode

        def spy(emb, **kwargs):
            seen.update(kwargs)
            return decode(emb, **kwargs)

        self.model.decode = spy
        try:
            p.add_point(*RIGHT, "disk")
        finally:
            del self.model.decode
        clicks = seen["points"][0, 1][seen["point_labels"][0, 1] == 1]
        expected = torch.tensor([[(RIGHT[0] + 0.5) * SIZE / W - 0.5, (RIGHT[1] + 0.5) * SIZE / H - 0.5]])
        torch.testing.assert_close(clicks.cpu(), expected)
        # generated points are reported at the cell centres of the model output, mapped to the slice
        with torch.no_grad():
            out = self.model.decode(self.model.encode(p._model_input([0])))
        torch.testing.assert_close(p.generated_points(), model_to_pixel(out["points"][0], (H, W), SIZE))


class TestPredictorModes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        torch.manual_seed(0)
        cls.model = AISAM(num_classes=3, sam_type="tiny", image_size=64).eval()

    def setUp(self):
        self.predictor = AISAMPredictor(self.model, ["background", "a", "b"], intensity=INTENSITY, progress=False)
        self.image = np.random.default_rng(0).random((48, 80)).astype(np.float32)
        self.predictor.set_image(self.image)

    def test_automatic_result_is_the_models(self):
        pred = self.predictor.predict()
        with torch.no_grad():
            out = self.model(self.predictor._model_input([0]))
        # the gated probabilities are resized to the slice (the inferer's order, combine_class_masks with size)
        expected = combine_class_masks(out["logits"], out["class_logits"], size=(48, 80))
        torch.testing.assert_close(pred.labels, expected[0, 0])
        self.assertEqual(tuple(pred.masks.shape), (3, 48, 80))
        torch.testing.assert_close(pred.masks.long().argmax(0), pred.labels)

    def test_generated_point_at_its_own_place_keeps_the_result(self):
        # generalized mode: an edited generated point switches the slice to pixel points, which equal the one-hot
        # generalized tokens, so moving a point onto itself changes nothing
        p = self.predictor
        auto = p.predict()
        xy = p.generated_points()[2, 1]
        moved = p.move_point(2 * p.num_points + 1, float(xy[0]), float(xy[1]))
        self.assertEqual(int((moved.labels != auto.labels).sum()), 0)

    def test_point_mode_is_the_demo_path(self):
        p = self.predictor
        p.decode_path = "point"
        pred = p.predict()
        pts = pixel_to_model(p.generated_points(), (48, 80), 64)[None]
        with torch.no_grad():
            emb = self.model.encode(p._model_input([0]))
            labels = torch.ones(1, 3, 4, dtype=torch.int64)
            out = self.model.decode(emb, points=pts, point_labels=labels, point_mode="none")
        fg = resize_logits(out["logits"], (48, 80))[0, 1:] > 0
        torch.testing.assert_close(pred.masks[1:], fg)
        self.assertTrue(bool(pred.present.all()))  # no classifier in the demo path

    def test_nearest_point(self):
        p = self.predictor
        pred = p.add_point(70.0, 40.0, "a")
        pid = p.nearest_point(70.4, 40.0)
        point = pred.points[pred.point_ids == pid][0]
        self.assertLessEqual(float(torch.dist(point, torch.tensor([70.4, 40.0]))), 0.4 + 1e-5)
        far = torch.linalg.vector_norm(pred.points[pred.point_ids >= 0] - torch.tensor([40.0, 24.0]), dim=-1)
        expected = None if float(far.min()) > 3.0 else int(pred.point_ids[pred.point_ids >= 0][far.argmin()])
        self.assertEqual(p.nearest_point(40.0, 24.0), expected)

    def test_volume_cache_and_propagation(self):
        names = ["background", "a", "b"]
        p = AISAMPredictor(self.model, names, intensity=INTENSITY, cache_size=16, batch_size=3, progress=False)
        volume = MetaTensor(torch.rand(1, 40, 56, 7), affine=torch.diag(torch.tensor([2.0, 2.0, 5.0, 1.0])))
        p.set_volume(volume)
        counter = EncoderCounter(self.model)
        try:
            labels = p.predict_volume()
            self.assertEqual(tuple(labels.shape), (40, 56, 7))
            self.assertEqual(labels.dtype, torch.uint8)
            torch.testing.assert_close(labels.affine, volume.affine)
            self.assertEqual((counter.calls, counter.images), (3, 7))  # batches of 3 slices, each encoded once
            p.set_present_classes(["background"], slice_index=3, propagate=1)
            self.assertEqual(p.edited_slices(), [2, 3, 4])
            after = p.predict_volume()
            self.assertTrue(bool((after[..., 2:5] == 0).all()))
            torch.testing.assert_close(after[..., [0, 1, 5, 6]], labels[..., [0, 1, 5, 6]])
            p.set_box("a", (5, 5, 20, 20), slice_index=0, propagate=2)
            self.assertEqual(p.edited_slices(), [0, 1, 2, 3, 4])
            for z in (0, 1, 2):
                self.assertFalse(bool(p.predict(z).masks[1][21:].any()))
            self.assertEqual(counter.images, 7)  # every edit reused the cached embeddings
            small = AISAMPredictor(self.model, names, intensity=INTENSITY, cache_size=2, batch_size=3, progress=False)
            small.set_volume(volume)
            torch.testing.assert_close(small.predict_volume(), labels)
            self.assertLessEqual(len(small._embeddings), 3)  # bounded: max(cache_size, batch_size)
        finally:
            counter.handle.remove()

    def test_bad_edits(self):
        p = self.predictor
        with self.assertRaisesRegex(ValueError, "class 5 does not exist"):
            p.add_point(3, 3, 5)
        with self.assertRaisesRegex(ValueError, "unknown class 'liver'"):
            p.add_point(3, 3, "liver")
        with self.assertRaisesRegex(ValueError, "outside the image"):
            p.add_point(80, 3, "a")
        with self.assertRaisesRegex(ValueError, "slice 1 does not exist"):
            p.add_point(3, 3, "a", slice_index=1)
        with self.assertRaisesRegex(ValueError, "no point with id 99"):
            p.delete_point(99)
        with self.assertRaisesRegex(ValueError, "edit 1 \\(set_box\\)"):
            edits = [
                {"op": "add_point", "x": 1, "y": 1, "class_id": "a"},
                {"op": "set_box", "class_id": 1, "box": (9, 9, 2, 2)},
            ]
            p.apply_edits(edits)
        p.set_volume(np.zeros((10, 12, 3)))
        with self.assertRaisesRegex(ValueError, "slice_index is required"):
            p.predict()


if __name__ == "__main__":
    unittest.main()
