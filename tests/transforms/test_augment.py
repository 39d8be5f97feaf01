# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Geometric transforms keep image/label alignment, and their inverses bring the slice back."""

from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Resized
from parameterized import parameterized
from scipy import ndimage

from aisam_monai.transforms import RandIntegerRotated, RandRot90Flipd, RandScaleCropd

torch.set_num_threads(1)


def _shape_item(h: int = 40, w: int = 52) -> dict:
    """An asymmetric drawing (an L and a dot) with image = 10 * label + 1 inside the frame."""
    label = torch.zeros(1, h, w)
    label[0, 8:30, 10:16] = 1
    label[0, 24:30, 16:34] = 2
    label[0, 5:9, 40:46] = 3
    image = 10 * label + 1
    return {"image": MetaTensor(image), "label": MetaTensor(label)}


def _aligned(d: dict) -> bool:
    """Every pixel is either padding in both (0) or the drawing's ``10 * label + 1``."""
    image, label = d["image"].as_tensor(), d["label"].as_tensor()
    return bool(((image == 10 * label + 1) | ((image == 0) & (label == 0))).all())


KEYS = ["image", "label"]
CASES = [
    ["rot90_flip", lambda: RandRot90Flipd(KEYS, prob=1.0)],
    ["rotate", lambda: RandIntegerRotated(KEYS, prob=1.0)],
    ["crop", lambda: RandScaleCropd(KEYS, prob=1.0)],
]


class TestAugment(unittest.TestCase):
    @parameterized.expand(CASES)
    def test_alignment_and_inverse(self, _, make):
        xf = make()
        for seed in range(12):
            xf.set_random_state(seed)
            item = _shape_item()
            out = xf(item)
            self.assertTrue(_aligned(out), seed)
            self.assertEqual(out["image"].shape, out["label"].shape)
            # classes survive with their own values only
            self.assertTrue(set(out["label"].unique().tolist()) <= {0.0, 1.0, 2.0, 3.0})
            back = xf.inverse(out)
            self.assertEqual(back["label"].shape, item["label"].shape)
            self.assertTrue(_aligned(back))
            same = (back["label"] == item["label"]).float().mean().item()
            if isinstance(xf, RandRot90Flipd):
                self.assertEqual(same, 1.0)
            elif isinstance(xf, RandScaleCropd):
                p = xf._params
                t, left, (ch, cw) = p["top"], p["left"], p["size"]
                np.testing.assert_array_equal(
                    back["label"][:, t : t + ch, left : left + cw], item["label"][:, t : t + ch, left : left + cw]
                )
            else:
                self.assertGreater(same, 0.97)

    def test_parameter_ranges(self):
        rot, ang, crop = (
            RandRot90Flipd(KEYS, prob=1.0),
            RandIntegerRotated(KEYS, prob=1.0),
            RandScaleCropd(KEYS, prob=1.0),
        )
        for xf in (rot, ang, crop):
            xf.set_random_state(0)
        ks, axes, angles, fracs = set(), set(), set(), []
        for _ in range(400):
            rot.randomize((40, 52))
            ks.add(rot._params["k"])
            axes.add(rot._params["axis"])
            ang.randomize((40, 52))
            angles.add(ang._params["degrees"])
            crop.randomize((40, 52))
            fracs.append((crop._params["size"][0] / 40, crop._params["size"][1] / 52))
        self.assertEqual(ks, {0, 1, 2, 3})
        self.assertEqual(axes, {0, 1})
        self.assertEqual((min(angles), max(angles)), (-20, 19))
        fracs = np.array(fracs)
        self.assertGreaterEqual(fracs.min(), 0.675)
        self.assertLessEqual(fracs.max(), 1.0)
        self.assertFalse(np.allclose(fracs[:, 0], fracs[:, 1], atol=0.03))  # drawn independently per side

    def test_probability(self):
        xf = RandRot90Flipd(KEYS, prob=0.5)
        xf.set_random_state(1)
        fired = sum(xf._do_transform for _ in range(400) if xf.randomize((4, 4)) is None)
        self.assertTrue(150 < fired < 250)

    def test_rotation_matches_reference(self):
        """Same as ``scipy.ndimage.rotate(order=0, reshape=False)`` used by the reference, up to rounding ties."""
        label = _shape_item(41, 41)["label"]
        xf = RandIntegerRotated(["label"], prob=1.0)
        for seed in range(5):
            xf.set_random_state(seed)
            out = xf({"label": label})["label"][0].numpy()
            ref = ndimage.rotate(label[0].numpy(), xf._params["degrees"], order=0, reshape=False)
            self.assertGreater((out == ref).mean(), 0.98)

    def test_inverse_through_compose_with_resize(self):
        keys = ["image", "label"]
        chain = Compose(
            [
                RandRot90Flipd(keys, prob=1.0),
                RandScaleCropd(keys, prob=1.0),
                Resized(keys, (64, 64), mode=("bilinear", "nearest")),
            ]
        )
        chain.set_random_state(3)
        item = _shape_item()
        out = chain(item)
        self.assertEqual(tuple(out["label"].shape), (1, 64, 64))
        # the L keeps its relative layout after resizing: class 2 touches class 1
        lab = out["label"][0].numpy()
        self.assertTrue((ndimage.binary_dilation(lab == 2) & (lab == 1)).any())
        back = chain.inverse(out)
        self.assertEqual(back["label"].shape, item["label"].shape)
        self.assertGreater((back["label"] == item["label"]).float().mean().item(), 0.9)

    def test_rejects_volumes(self):
        with self.assertRaisesRegex(ValueError, r"\(C, H, W\)"):
            RandRot90Flipd(KEYS, prob=1.0)({"image": torch.zeros(1, 4, 4, 4), "label": torch.zeros(1, 4, 4, 4)})


if __name__ == "__main__":
    unittest.main()
