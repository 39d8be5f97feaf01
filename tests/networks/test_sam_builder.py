# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import argparse
import os
import tempfile
import unittest

import torch

from aisam_monai.networks import AISAM, CheckpointError, LoRAQKV, build_sam, count_parameters, load_sam_checkpoint

torch.set_num_threads(1)


class TestOfficialCheckpoint(unittest.TestCase):
    """A vit_b state dict in the official layout (as ``sam_vit_b_01ec64.pth``), random weights."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        state = build_sam("vit_b", 1024).state_dict()
        # the official file holds exactly these keys (pixel_mean/std are non-persistent buffers)
        assert "image_encoder.pos_embed" in state and "pixel_mean" not in state
        # a linear position field (its interpolation is known) and random relative tables
        a, b = torch.randn(768), torch.randn(768)
        ramp = torch.arange(64.0)
        state["image_encoder.pos_embed"] = (ramp[:, None, None] * a + ramp[None, :, None] * b)[None]
        cls.a, cls.b = a, b
        for k in state:
            if "rel_pos" in k:
                state[k] = torch.randn_like(state[k])
        cls.state = state
        cls.path = os.path.join(cls.tmp.name, "sam_vit_b_test.pth")
        torch.save(state, cls.path)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_load_at_1024_exact(self):
        model = AISAM(4, sam_type="vit_b", sam_checkpoint=self.path, image_size=1024)
        own = model.sam.state_dict()
        for k, v in self.state.items():
            torch.testing.assert_close(own[k], v, rtol=0, atol=0, msg=k)

    def test_load_at_256_interpolates_positions(self):
        model = AISAM(4, sam_type="vit_b", sam_checkpoint=self.path, image_size=256, use_lora=True)
        own = model.sam.state_dict()
        self.assertEqual(own["image_encoder.pos_embed"].shape, (1, 16, 16, 768))
        self.assertEqual(own["image_encoder.blocks.2.attn.rel_pos_h"].shape, (31, 64))  # global block
        self.assertEqual(own["image_encoder.blocks.0.attn.rel_pos_h"].shape, (27, 64))  # windowed block
        for k, v in self.state.items():
            key = k.replace("attn.qkv.", "attn.qkv.qkv.")  # LoRA wraps the original qkv
            if own[key].shape == v.shape:
                torch.testing.assert_close(own[key], v, rtol=0, atol=0, msg=k)
        # the 16x16 cell i covers old cells 4i..4i+3, centred at old coordinate 4i + 1.5
        centre = torch.arange(16.0) * 4 + 1.5
        expected = centre[:, None, None] * self.a + centre[None, :, None] * self.b
        torch.testing.assert_close(
            own["image_encoder.pos_embed"][0, 2:-2, 2:-2], expected[2:-2, 2:-2], atol=1e-3, rtol=1e-4
        )
        self.assertFalse(
            torch.equal(
                own["image_encoder.blocks.2.attn.rel_pos_h"][:5],
                self.state["image_encoder.blocks.2.attn.rel_pos_h"][:5],
            )
        )
        with torch.no_grad():
            out = model.eval()(torch.rand(1, 3, 256, 256))
        self.assertEqual(out["logits"].shape, (1, 4, 64, 64))


class TestCheckpointErrors(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.sam = build_sam("tiny", 64)

    def tearDown(self):
        self.tmp.cleanup()

    def _path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_missing_file(self):
        with self.assertRaisesRegex(CheckpointError, "nowhere.pth: SAM checkpoint file not found"):
            load_sam_checkpoint(self.sam, self._path("nowhere.pth"))

    def test_not_a_torch_file(self):
        path = self._path("garbage.pth")
        with open(path, "wb") as f:
            f.write(b"not a checkpoint")
        with self.assertRaisesRegex(CheckpointError, "garbage.pth: not a loadable weights-only"):
            load_sam_checkpoint(self.sam, path)

    def test_unsafe_pickle_refused(self):
        path = self._path("namespace.pth")
        torch.save({"args": argparse.Namespace(a=1), "model": self.sam.state_dict()}, path)
        with self.assertRaisesRegex(CheckpointError, "namespace.pth: not a loadable weights-only"):
            load_sam_checkpoint(self.sam, path)

    def test_not_a_state_dict(self):
        path = self._path("list.pth")
        torch.save([torch.zeros(1)], path)
        with self.assertRaisesRegex(CheckpointError, "list.pth: expected a SAM state dict"):
            load_sam_checkpoint(self.sam, path)

    def test_wrong_keys(self):
        path = self._path("keys.pth")
        state = self.sam.state_dict()
        state["extra.weight"] = state.pop("mask_decoder.iou_token.weight")
        torch.save(state, path)
        with self.assertRaisesRegex(
            CheckpointError, r"keys.pth: keys do not fit.*mask_decoder.iou_token.weight.*extra.weight"
        ):
            load_sam_checkpoint(self.sam, path)

    def test_wrong_shapes(self):
        path = self._path("shapes.pth")
        state = self.sam.state_dict()
        state["mask_decoder.iou_token.weight"] = torch.zeros(1, 7)
        torch.save(state, path)
        with self.assertRaisesRegex(
            CheckpointError, r"shapes.pth: tensor shapes do not fit.*iou_token.weight \(1, 7\)"
        ):
            load_sam_checkpoint(self.sam, path)

    def test_bad_type_and_size(self):
        with self.assertRaisesRegex(ValueError, "unknown sam_type"):
            build_sam("vit_x")
        with self.assertRaisesRegex(ValueError, "multiple of 16"):
            build_sam("tiny", 100)


class TestLoRA(unittest.TestCase):
    def test_lora_starts_as_identity_and_trains_only_lora(self):
        torch.manual_seed(0)
        plain = AISAM(4, sam_type="tiny", image_size=64)
        torch.manual_seed(0)
        lora = AISAM(4, sam_type="tiny", image_size=64, use_lora=True, lora_rank=3)
        x = torch.rand(1, 3, 64, 64)
        torch.testing.assert_close(plain.encode(x), lora.encode(x))
        wrapped = [b.attn.qkv for b in lora.sam.image_encoder.blocks]
        self.assertTrue(all(isinstance(m, LoRAQKV) for m in wrapped))
        self.assertEqual(wrapped[0].a_q.weight.shape, (3, 64))
        trainable = {n for n, p in lora.sam.image_encoder.named_parameters() if p.requires_grad}
        self.assertTrue(trainable)
        self.assertTrue(all(n.split(".")[-2] in ("a_q", "b_q", "a_v", "b_v") for n in trainable))
        t_plain, total_plain = count_parameters(plain)
        t_lora, total_lora = count_parameters(lora)
        extra = sum(p.numel() for m in wrapped for p in (m.a_q.weight, m.b_q.weight, m.a_v.weight, m.b_v.weight))
        self.assertEqual(t_lora - t_plain, extra)
        self.assertEqual(total_lora - total_plain, extra)

    def test_lora_gets_gradient_from_segmentation(self):
        model = AISAM(4, sam_type="tiny", image_size=64, use_lora=True)
        model(torch.rand(1, 3, 64, 64))["logits"].sum().backward()
        b = model.sam.image_encoder.blocks[0].attn.qkv.b_q.weight
        self.assertIsNotNone(b.grad)
        self.assertGreater(b.grad.abs().sum().item(), 0)


if __name__ == "__main__":
    unittest.main()
