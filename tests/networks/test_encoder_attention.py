# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from aisam_monai.networks import AISAM
from aisam_monai.networks.encoder_attention import SDPAEncoderAttention, use_sdpa_encoder_attention
from aisam_monai.networks.lora import apply_lora
from aisam_monai.networks.sam_builder import build_sam

torch.set_num_threads(1)


def _model(image_size=64, **kwargs) -> AISAM:
    torch.manual_seed(0)
    model = AISAM(3, sam_type="tiny", image_size=image_size, **kwargs)
    for block in model.sam.image_encoder.blocks:  # SAM zero-initialises the tables: make the term count
        torch.nn.init.normal_(block.attn.rel_pos_h, std=0.2)
        torch.nn.init.normal_(block.attn.rel_pos_w, std=0.2)
    return model


class TestSDPAEncoderAttention(unittest.TestCase):
    """SDPA with the decomposed relative position as an additive mask equals SAM's attention (fp32, 1e-5)."""

    @parameterized.expand([[64, 2], [128, 1], [80, 2]])  # 80: windows padded (grid 5, window 4)
    def test_equal_to_stock(self, size, batch):
        model = _model(size).eval()
        image = torch.rand(batch, 3, size, size)
        with torch.no_grad():
            fast = model(image)
            self.assertEqual(
                use_sdpa_encoder_attention(model.sam.image_encoder, False), len(model.sam.image_encoder.blocks)
            )
            stock = model(image)
            use_sdpa_encoder_attention(model.sam.image_encoder)
        self.assertIsInstance(model.sam.image_encoder.blocks[0].attn, SDPAEncoderAttention)
        for key in ("logits", "class_logits", "point_weights"):
            torch.testing.assert_close(fast[key], stock[key], atol=1e-5, rtol=1e-5, msg=key)

    def test_gradients_and_lora(self):
        model = _model(use_lora=True)
        image = torch.rand(2, 3, 64, 64)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        grads = []
        for enable in (False, True):
            use_sdpa_encoder_attention(model.sam.image_encoder, enable)
            model.zero_grad()
            model.sam.image_encoder(image).square().mean().backward()
            grads.append(model.sam.image_encoder.blocks[0].attn.qkv.a_q.weight.grad.clone())
        torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)
        self.assertEqual(state.keys(), model.state_dict().keys())  # the switch leaves the state dict alone

    def test_default_and_opt_out(self):
        self.assertIsInstance(build_sam("tiny", 64).image_encoder.blocks[0].attn, SDPAEncoderAttention)
        stock = build_sam("tiny", 64, sdpa_attention=False).image_encoder.blocks[0].attn
        self.assertNotIsInstance(stock, SDPAEncoderAttention)

    def test_switch_is_per_instance_and_reversible(self):
        model, other = _model(), _model()
        use_sdpa_encoder_attention(other.sam.image_encoder, False)
        self.assertIsInstance(model.sam.image_encoder.blocks[0].attn, SDPAEncoderAttention)
        self.assertNotIsInstance(other.sam.image_encoder.blocks[0].attn, SDPAEncoderAttention)
        self.assertEqual(use_sdpa_encoder_attention(model.sam.image_encoder), 0)  # already switched
        apply_lora(model.sam.image_encoder, 2)  # LoRA still finds the fused qkv
        self.assertEqual(use_sdpa_encoder_attention(model.sam.image_encoder, False), 2)
        self.assertNotIsInstance(model.sam.image_encoder.blocks[1].attn, SDPAEncoderAttention)


if __name__ == "__main__":
    unittest.main()
