# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""MONAI Label click requests -> AI-SAM prompts, the label inferer MONAI Label calls, and the tooling network."""

from __future__ import annotations

import os
import tempfile
import unittest

import torch
from monai.data import MetaTensor

from aisam_monai.inferers import AISAMVolumeNet, SliceVolumeInferer
from aisam_monai.interactive import CLICKS_META_KEY, ClickLabelInferer, Clicksd, parse_clicks, volume_prompts
from aisam_monai.io.model_loading import model_from_bundle
from aisam_monai.networks import AISAM
from aisam_monai.serving.export import export_bundle
from aisam_monai.serving.export import main as export_main

torch.set_num_threads(1)
NAMES = ["background", "RV", "Myo", "LV"]
SHAPE = (20, 16, 5)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TestParseClicks(unittest.TestCase):
    def test_deepedit_style(self):
        clicks = parse_clicks({"lv": [[3, 4, 2]], "rv": [[1, 1, 0], [2, 2, 0]], "model": "acdc"}, NAMES, SHAPE)
        self.assertEqual(sorted(clicks), [[1, True, 1.0, 1.0, 0.0], [1, True, 2.0, 2.0, 0.0], [3, True, 3.0, 4.0, 2.0]])
        self.assertEqual(parse_clicks({"background": [[0, 0, 1]]}, NAMES, SHAPE), [[0, True, 0.0, 0.0, 1.0]])

    def test_deepgrow_style_and_2d_points(self):
        request = {"label": "Myo", "foreground": [[5, 6]], "background": [[7, 8]], "slice": 3}
        self.assertEqual(parse_clicks(request, NAMES, SHAPE), [[2, True, 5.0, 6.0, 3.0], [2, False, 7.0, 8.0, 3.0]])
        request = {"label": "lv", "foreground": [[5, 3]], "slice": 1}
        self.assertEqual(parse_clicks(request, NAMES, SHAPE, spatial_dim=0), [[3, True, 1.0, 5.0, 3.0]])

    def test_bad_requests(self):
        with self.assertRaisesRegex(ValueError, "'label' must name one of .*'spleen'"):
            parse_clicks({"label": "spleen", "foreground": [[1, 1, 1]]}, NAMES, SHAPE)
        with self.assertRaisesRegex(ValueError, "outside the image"):
            parse_clicks({"lv": [[1, 16, 1]]}, NAMES, SHAPE)
        with self.assertRaisesRegex(ValueError, r"must be \[i, j, k\]"):
            parse_clicks({"lv": [[1, 1]]}, NAMES, SHAPE)
        with self.assertRaisesRegex(ValueError, "list of numbers"):
            parse_clicks({"lv": [["a", 1, 1]]}, NAMES, SHAPE)

    def test_volume_prompts(self):
        clicks = [[3, True, 3.0, 4.0, 2.0], [3, True, 5.0, 6.0, 2.0], [1, False, 1.0, 2.0, 0.0]]
        prompts = volume_prompts(clicks, SHAPE, num_classes=4)
        self.assertEqual(tuple(prompts["points"].shape), (5, 4, 2, 2))
        torch.testing.assert_close(prompts["points"][2, 3], torch.tensor([[3.0, 4.0], [5.0, 6.0]]))  # (row, column)
        self.assertEqual(prompts["point_labels"][2, 3].tolist(), [1, 1])
        self.assertEqual(prompts["point_labels"][0, 1].tolist(), [0, -1])
        self.assertEqual(int((prompts["point_labels"] >= 0).sum()), 3)
        self.assertEqual(prompts["present"][2].tolist(), [-1, -1, -1, 1])  # a positive click declares its class
        self.assertEqual(prompts["present"][0].tolist(), [-1, -1, -1, -1])


class TestClickLabelInferer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls.net = AISAMVolumeNet(num_classes=4, sam_type="tiny", image_size=64).eval()
        cls.volume = torch.rand(1, 1, *SHAPE)
        cls.inferer = ClickLabelInferer(SliceVolumeInferer(image_size=64, sw_batch_size=3))

    def _image(self, request: dict) -> MetaTensor:
        data = Clicksd("image", NAMES)({"image": MetaTensor(self.volume[0].clone()), **request})
        return data["image"][None]

    def test_automatic_equals_the_volume_inferer_and_the_tooling_network(self):
        labels = self.inferer(self._image({}), self.net)
        self.assertEqual(labels.dtype, torch.uint8)
        self.assertEqual(self._image({}).meta[CLICKS_META_KEY], [])
        torch.testing.assert_close(labels, SliceVolumeInferer(image_size=64)(self.volume, self.net)["pred"])
        with torch.no_grad():
            probs = self.net(self.volume)
        self.assertEqual(tuple(probs.shape), (1, 4, *SHAPE))
        torch.testing.assert_close(probs.argmax(1, keepdim=True).to(torch.uint8), labels)

    def test_a_positive_click_declares_its_class_on_its_slice_only(self):
        auto = self.inferer(self._image({}), self.net)
        clicked = self.inferer(self._image({"lv": [[10, 8, 3]]}), self.net)
        self.assertEqual(int(clicked[0, 0, 10, 8, 3]), 3)
        self.assertTrue((clicked[..., 3] != auto[..., 3]).any())
        torch.testing.assert_close(clicked[..., [0, 1, 2, 4]], auto[..., [0, 1, 2, 4]])


class TestExportBundle(unittest.TestCase):
    def test_export_and_mismatch(self):
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as d:
            checkpoint = os.path.join(d, "model.pt")
            torch.save(
                {"model": AISAM(num_classes=4, sam_type="tiny", image_size=64).state_dict(), "epoch": 3}, checkpoint
            )
            bundle, out = os.path.join(REPO, "bundles", "acdc"), os.path.join(d, "acdc")
            with self.assertRaisesRegex(ValueError, "parameter"):  # the bundle's default backbone is ViT-B
                export_bundle(bundle, checkpoint, out, {"image_size": 64})
            self.assertFalse(os.path.exists(out))  # nothing written
            model = export_bundle(bundle, checkpoint, out, {"sam_type": "tiny", "image_size": 64})
            self.assertEqual(set(torch.load(model, weights_only=True)), {"model"})
            files = set(os.listdir(os.path.join(out, "configs")))
            self.assertIn("inference.json", files)
            self.assertNotIn("inference.yaml", files)
            for name in ("LICENSE", "large_files.yml", os.path.join("docs", "data_license.txt")):
                self.assertTrue(os.path.isfile(os.path.join(out, name)), name)

    def test_points_per_class_travel_with_the_export(self):
        with tempfile.TemporaryDirectory() as d:
            checkpoint = os.path.join(d, "model.pt")
            net = AISAM(num_classes=4, sam_type="tiny", image_size=64, num_points=2)
            torch.save({"model": net.state_dict()}, checkpoint)
            bundle, out = os.path.join(REPO, "bundles", "acdc"), os.path.join(d, "acdc")
            args = [bundle, "--checkpoint", checkpoint, "--out", out, "--sam_type", "tiny", "--image_size", "64"]
            self.assertEqual(export_main(args), 2)  # the config's 4 points per class do not fit the weights
            self.assertFalse(os.path.exists(out))
            self.assertEqual(export_main([*args, "--num_points", "2"]), 0)
            loaded = model_from_bundle(out).model
            self.assertEqual(loaded.prompter.num_points, 2)
            torch.testing.assert_close(loaded.state_dict(), net.state_dict())


if __name__ == "__main__":
    unittest.main()
