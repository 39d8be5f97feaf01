# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The edit state needs no model: every edit returns the slices it changed."""

from __future__ import annotations

import unittest

import torch

from aisam_monai.interactive import EditState, PromptPoint, nearest_point

NAMES = ["background", "a", "b"]
NP = 2  # generated points per class: ids 0..5


def state() -> EditState:
    return EditState((20, 30, 7), NAMES, NP)


class TestEditState(unittest.TestCase):
    def test_edits_return_the_changed_slices(self):
        s = state()
        self.assertEqual(s.add_point(3, 4, "a", slice_index=2), [2])
        self.assertEqual(s.move_point(1, 5.0, 6.0, slice_index=2), [2])
        self.assertEqual(s.delete_point(0, slice_index=2), [2])
        self.assertEqual(s.set_box("b", (1, 1, 9, 9), slice_index=1, propagate=2), [0, 1, 2, 3])
        self.assertEqual(s.set_present_classes(["a"], slice_index=6, propagate=1), [5, 6])
        self.assertEqual(s.clear_edits(slice_index=3), [3])
        self.assertEqual(s.edited_slices(), [0, 1, 2, 5, 6])
        self.assertEqual(s.of(1).boxes, {2: (1.0, 1.0, 9.0, 9.0)})
        self.assertEqual(s.of(2).presence, {1: True})
        self.assertEqual(s.of(5).presence, {2: False})
        self.assertTrue(s.of(4).is_empty())

    def test_apply_and_copy(self):
        s = state()
        edits = [
            {"op": "add_point", "x": 1, "y": 1, "class_id": "a", "slice_index": 4},
            {"op": "set_box", "class_id": 1, "box": (2, 2, 8, 8), "slice_index": 0, "propagate": 1},
        ]
        self.assertEqual(s.copy().apply(edits), [0, 1, 4])
        self.assertEqual(s.edited_slices(), [])  # the copy took the edits
        self.assertEqual(s.apply(edits), [0, 1, 4])
        with self.assertRaisesRegex(ValueError, "edit 1 \\(move_point\\): slice 0 has no point with id 99"):
            s.apply(
                [
                    {"op": "clear_edits", "slice_index": 4},
                    {"op": "move_point", "point_id": 99, "x": 1, "y": 1, "slice_index": 0},
                ]
            )
        self.assertEqual(s.edited_slices(), [0, 1])  # the edits before the invalid one stay applied
        with self.assertRaisesRegex(ValueError, "edit 0 \\(zoom\\): unknown op"):
            s.apply([{"op": "zoom"}])

    def test_slice_points(self):
        s = state()
        generated = torch.arange(NAMES.__len__() * NP * 2, dtype=torch.float32).view(3, NP, 2)
        s.delete_point(3, slice_index=0)
        s.move_point(4, 7.0, 8.0, slice_index=0)
        s.add_point(9.0, 9.5, "b", positive=False, slice_index=0)
        points = s.slice_points(0, generated)
        self.assertEqual([pid for pid, _ in points], [0, 1, 2, 4, 5, 6])
        self.assertEqual(points[3][1], PromptPoint(7.0, 8.0, 2, True, True))
        self.assertEqual(points[-1][1], PromptPoint(9.0, 9.5, 2, False, False))

    def test_nearest_point(self):
        points = [(0, PromptPoint(1.0, 1.0, 0)), (4, PromptPoint(10.0, 10.0, 1)), (7, PromptPoint(12.0, 10.0, 2))]
        self.assertEqual(nearest_point(points, 10.5, 10.0), 4)
        self.assertEqual(nearest_point(points, 11.6, 10.2), 7)
        self.assertEqual(nearest_point(points, 2.0, 3.0), 0)  # sqrt(5) <= 3
        self.assertIsNone(nearest_point(points, 5.0, 5.0))  # farther than 3 pixels from every point
        self.assertEqual(nearest_point(points, 5.0, 5.0, max_distance=6.0), 0)
        self.assertIsNone(nearest_point([], 1.0, 1.0))

    def test_bad_edits(self):
        s = state()
        with self.assertRaisesRegex(ValueError, "outside the image"):
            s.add_point(30, 3, "a", slice_index=0)
        with self.assertRaisesRegex(ValueError, "slice_index is required"):
            s.add_point(3, 3, "a")
        with self.assertRaisesRegex(ValueError, "propagate must be >= 0"):
            s.clear_edits(slice_index=0, propagate=-1)
        with self.assertRaisesRegex(ValueError, "the box is empty"):
            s.set_box("a", (9, 9, 2, 2), slice_index=0)


if __name__ == "__main__":
    unittest.main()
