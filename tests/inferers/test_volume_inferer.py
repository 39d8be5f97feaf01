# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import unittest

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from parameterized import parameterized

from aisam_monai.inferers import EVAL_PROMPTS, SliceVolumeInferer
from aisam_monai.networks import AISAM
from aisam_monai.transforms.intensity import SAM_PIXEL_MEAN, SAM_PIXEL_STD
from aisam_monai.transforms.label_prompts import class_presence, label_boxes, random_label_points

torch.set_num_threads(1)


class ThresholdNet(torch.nn.Module):
    """Stand-in with AISAM's interface: class 1 where the (de-normalised) intensity exceeds 0.5."""

    def __init__(self, image_size: int = 32) -> None:
        super().__init__()
        self.num_classes = 2
        self.image_size = image_size
        self.mask_size = (image_size // 4, image_size // 4)  # its logits are area-pooled by 4
        self.pixel_normalization = "sam"  # it de-normalises SAM's mean/std
        self.calls: list[dict] = []

    def forward(self, image, **kwargs):
        self.calls.append({"batch": image.shape[0], **kwargs})
        x = image[:, :1] * SAM_PIXEL_STD[0] + SAM_PIXEL_MEAN[0]
        x = F.interpolate(x, scale_factor=0.25, mode="area") - 0.5
        b = image.shape[0]
        # generated point of class c, slot n at model pixel (x, y) = (4n + c, 8)
        n = torch.arange(4).view(1, 1, 4)
        c = torch.arange(2).view(1, 2, 1)
        pts = torch.stack([(4 * n + c).float().expand(b, 2, 4), torch.full((b, 2, 4), 8.0)], -1)
        return {"logits": torch.cat([-x, x], 1) * 10, "class_logits": torch.full((b, 2), 5.0), "points": pts}

    predict_labels = staticmethod(AISAM.predict_labels)


def _blocky_volume(shape=(24, 20, 9)):
    vol = torch.zeros(1, *shape)
    vol[:, 4:16, 8:20, 2:7] = 1.0
    return vol


class TestSliceVolumeInferer(unittest.TestCase):
    @parameterized.expand([[0], [1], [2]])
    def test_labels_follow_the_volume(self, spatial_dim):
        # block edges on multiples of 4: the 8 x 8 low-res grid of a 32 x 32 slice represents it exactly
        vol = torch.zeros(1, 32, 32, 32)
        vol[:, 4:16, 8:20, 12:28] = 1.0
        net = ThresholdNet()
        label = (vol > 0.5).long()
        inferer = SliceVolumeInferer(image_size=32, sw_batch_size=4, spatial_dim=spatial_dim, resample="nearest")
        result = inferer(vol, net, label=label)
        self.assertEqual(result["pred"].shape, vol.shape)
        # the label on the S/4 grid (aisam protocol) matches the low-res prediction of this exact stand-in
        torch.testing.assert_close(result["label_lowres"], result["pred_lowres"])
        self.assertEqual(result["label_lowres"].shape[1 + spatial_dim], 32)
        self.assertEqual(result["pred"].dtype, torch.uint8)
        torch.testing.assert_close(result["pred"], (vol > 0.5).to(torch.uint8))
        self.assertTrue(all(call["batch"] <= 4 for call in net.calls))
        self.assertEqual(sum(call["batch"] for call in net.calls), vol.shape[1 + spatial_dim])

    def test_layouts_metadata_and_bilinear(self):
        affine = torch.diag(torch.tensor([1.5, 1.5, 5.0, 1.0], dtype=torch.float64))
        vol = MetaTensor(_blocky_volume()[None], affine=affine)
        result = SliceVolumeInferer(image_size=32, sw_batch_size=3, resample="bilinear")(vol, ThresholdNet())
        self.assertEqual(result["pred"].shape, (1, 1, 24, 20, 9))
        self.assertEqual(result["pred_lowres"].shape, (1, 1, 8, 8, 9))
        self.assertIsInstance(result["pred"], MetaTensor)
        torch.testing.assert_close(result["pred"].affine, affine)
        self.assertGreater((result["pred"] == (vol > 0.5)).float().mean().item(), 0.97)

    def test_bilinear_equals_plain_layout_resize(self):
        """The channels-last resize gives the labels of a plain bilinear resize of the gated probabilities."""
        torch.manual_seed(0)
        vol = torch.rand(1, 37, 29, 6)
        net = ThresholdNet()
        result = SliceVolumeInferer(image_size=32, sw_batch_size=4)(vol, net)  # bilinear by default
        slices = vol[0].permute(2, 0, 1).unsqueeze(1)
        image = F.interpolate(slices, size=(32, 32), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
        image = (image - torch.tensor(SAM_PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(SAM_PIXEL_STD).view(1, 3, 1, 1)
        out = net(image)
        probs = out["logits"].softmax(1) * (torch.sigmoid(out["class_logits"]) > 0.5)[:, :, None, None]
        expected = F.interpolate(probs, size=(37, 29), mode="bilinear", align_corners=False).argmax(1)
        torch.testing.assert_close(result["pred"][0], expected.permute(1, 2, 0).to(torch.uint8))

    def test_points_in_voxel_coordinates(self):
        vol = _blocky_volume((64, 16, 5))
        result = SliceVolumeInferer(image_size=32)(vol, ThresholdNet())
        points = result["points"]
        self.assertEqual(points.shape, (5, 2, 4, 3))
        # model pixel (x, y) = (4n + c, 8) on 32 x 32 -> row (8.5 * 64 / 32 - 0.5), column ((x + 0.5) * 16 / 32 - 0.5)
        torch.testing.assert_close(points[..., 0], torch.full((5, 2, 4), 16.5))
        expected_col = ((4 * torch.arange(4).view(1, 4) + torch.arange(2).view(2, 1)).float() + 0.5) * 0.5 - 0.5
        torch.testing.assert_close(points[..., 1], expected_col.expand(5, 2, 4))
        torch.testing.assert_close(points[:, 0, 0, 2], torch.arange(5).float())
        self.assertTrue(torch.all(result["class_probs"] > 0.99))

    @parameterized.expand(
        [
            ["gt_label", {"class_labels"}],
            ["random_points", {"points", "point_labels"}],
            ["gt_box", {"boxes"}],
            ["one_hot_points", {"point_mode"}],
            ["soft_points", {"point_mode"}],
            ["gt_points_only", {"points", "point_labels", "point_mode"}],
        ]
    )
    def test_eval_prompts_pass_prompts(self, eval_prompts, keys):
        vol = _blocky_volume()
        net = ThresholdNet()
        inferer = SliceVolumeInferer(image_size=32, sw_batch_size=5, eval_prompts=eval_prompts)
        inferer(vol, net, label=(vol > 0.5).long())
        self.assertEqual(set(net.calls[0]) - {"batch"}, keys)
        if eval_prompts == "gt_points_only":
            self.assertEqual(net.calls[0]["point_mode"], "none")
            self.assertEqual(net.calls[0]["points"].shape, (5, 2, 4, 2))  # Np points per class

    def test_user_prompts_in_model_frame(self):
        vol = _blocky_volume((16, 32, 3))
        net = ThresholdNet()
        points = torch.zeros(3, 2, 1, 2)
        points[..., 0], points[..., 1] = 3.0, 7.0  # (row, column) voxels
        boxes = torch.tensor([2.0, 4.0, 5.0, 9.0]).expand(3, 2, 4).clone()
        boxes[:, 0] = -1
        prompts = {"points": points, "point_labels": torch.ones(3, 2, 1), "boxes": boxes}
        SliceVolumeInferer(image_size=32, sw_batch_size=3)(vol, net, prompts=prompts)
        call = net.calls[0]
        # x = (7 + 0.5) * 32 / 32 - 0.5, y = (3 + 0.5) * 32 / 16 - 0.5
        torch.testing.assert_close(call["points"][0, 0, 0], torch.tensor([7.0, 6.5]))
        torch.testing.assert_close(call["boxes"][0, 0], torch.full((4,), -1.0))
        torch.testing.assert_close(call["boxes"][0, 1], torch.tensor([4.0, 4.0, 9.0, 11.0]))

    def test_bad_inputs(self):
        inferer = SliceVolumeInferer(image_size=32)
        with self.assertRaisesRegex(ValueError, "3D volume"):
            inferer(torch.rand(1, 20, 20), ThresholdNet())
        with self.assertRaisesRegex(ValueError, "needs the ground-truth label"):
            SliceVolumeInferer(image_size=32, eval_prompts="gt_box")(torch.rand(1, 8, 8, 2), ThresholdNet())
        with self.assertRaisesRegex(ValueError, "image_size"):
            SliceVolumeInferer(image_size=64)(torch.rand(1, 8, 8, 2), ThresholdNet())
        with self.assertRaises(ValueError):
            SliceVolumeInferer(image_size=32, eval_prompts="everything")

    def test_real_tiny_model(self):
        model = AISAM(num_classes=3, sam_type="tiny", image_size=64).eval()
        vol = torch.rand(1, 30, 26, 5)
        result = SliceVolumeInferer(image_size=64, sw_batch_size=2)(vol, model)
        self.assertEqual(result["pred"].shape, vol.shape)
        self.assertTrue(result["pred"].max() < 3)
        self.assertEqual(result["points"].shape, (5, 3, 4, 3))


class TestLabelPrompts(unittest.TestCase):
    def setUp(self):
        self.labels = torch.zeros(2, 1, 8, 10, dtype=torch.long)
        self.labels[0, 0, 1:4, 2:6] = 1
        self.labels[0, 0, 6, 9] = 2
        self.labels[1, 0, 2:5, 0:3] = 2

    def test_presence_and_boxes(self):
        presence = class_presence(self.labels, 3)
        torch.testing.assert_close(presence, torch.tensor([[True, True, True], [True, False, True]]))
        boxes = label_boxes(self.labels, 3)
        torch.testing.assert_close(boxes[0, 1], torch.tensor([2.0, 1.0, 5.0, 3.0]))
        torch.testing.assert_close(boxes[0, 2], torch.tensor([9.0, 6.0, 9.0, 6.0]))
        torch.testing.assert_close(boxes[1, 1], torch.tensor([0.0, 0.0, -1.0, -1.0]))
        torch.testing.assert_close(boxes[1, 0], torch.tensor([0.0, 0.0, 9.0, 7.0]))

    def test_random_points_inside_masks(self):
        gen = torch.Generator().manual_seed(0)
        points, point_labels = random_label_points(self.labels, 3, 16, gen)
        self.assertEqual(points.shape, (2, 3, 16, 2))
        self.assertTrue(torch.all(point_labels[1, 1] == -1))
        self.assertTrue(torch.all(point_labels[0] == 1))
        b, c, k = torch.nonzero(point_labels == 1, as_tuple=True)
        x, y = points[b, c, k, 0].long(), points[b, c, k, 1].long()
        torch.testing.assert_close(self.labels[b, 0, y, x], c)
        # draws spread over the 12-pixel mask of class 1 in slice 0
        self.assertGreater(len({tuple(p) for p in points[0, 1].tolist()}), 4)


if __name__ == "__main__":
    unittest.main()


class TestEvalPromptsWithAISAM(unittest.TestCase):
    """Every kind of evaluation prompts runs end to end with the real (tiny, random) AISAM, not a stand-in."""

    @parameterized.expand([[m] for m in EVAL_PROMPTS])
    def test_eval_prompts(self, eval_prompts):
        torch.manual_seed(0)
        model = AISAM(3, sam_type="tiny", image_size=64).eval()
        vol = torch.rand(1, 40, 36, 5)
        label = torch.zeros(1, 40, 36, 5, dtype=torch.long)
        label[:, 10:30, 8:20] = 1
        label[:, 14:22, 22:30, 1:4] = 2
        inferer = SliceVolumeInferer(image_size=64, sw_batch_size=2, eval_prompts=eval_prompts, num_random_points=2)
        with torch.no_grad():
            out = inferer(vol, model, label=label if inferer.needs_label else None)
        self.assertEqual(out["pred"].shape, (1, 40, 36, 5))
        self.assertTrue(set(out["pred"].unique().tolist()) <= {0, 1, 2})

    def test_point_weights_of_table3(self):
        """``one_hot_points`` and ``soft_points`` build the points from ``onehot(argmax W)`` and ``softmax W`` whatever
        the training used; ``auto`` uses the W of the training (one-hot for ``hard_points``)."""
        vol = torch.rand(1, 40, 36, 3)

        def logits(model, mode):
            seen = []
            hook = model.register_forward_hook(lambda m, args, out: seen.append(out["logits"]))
            with torch.no_grad():
                SliceVolumeInferer(image_size=64, sw_batch_size=3, eval_prompts=mode)(vol, model)
            hook.remove()
            return torch.cat(seen)

        torch.manual_seed(0)
        hard = AISAM(3, sam_type="tiny", image_size=64, hard_points=True).eval()
        soft = AISAM(3, sam_type="tiny", image_size=64, hard_points=False).eval()
        soft.load_state_dict(hard.state_dict())
        auto = logits(hard, "auto")
        torch.testing.assert_close(logits(hard, "one_hot_points"), auto, rtol=0, atol=0)
        self.assertGreater(float((logits(hard, "soft_points") - auto).abs().max()), 1e-3)
        torch.testing.assert_close(logits(soft, "soft_points"), logits(soft, "auto"), rtol=0, atol=0)
        torch.testing.assert_close(logits(soft, "soft_points"), logits(hard, "soft_points"), rtol=0, atol=0)
