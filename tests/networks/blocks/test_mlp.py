# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The fused channel LayerNorm equals segment-anything's ``LayerNorm2d``, forward and backward, in both places."""

from __future__ import annotations

import unittest

import torch
from segment_anything.modeling.common import LayerNorm2d as SAMLayerNorm2d

from aisam_monai.networks import AISAM
from aisam_monai.networks.blocks import LayerNorm2d
from aisam_monai.networks.mask_decoding import upscale

torch.set_num_threads(1)


class TestLayerNorm2d(unittest.TestCase):
    def test_equals_segment_anything(self):
        torch.manual_seed(0)
        ours, sam = LayerNorm2d(16), SAMLayerNorm2d(16)
        for norm in (ours, sam):
            norm.weight.data = torch.linspace(0.5, 2.0, 16)
            norm.bias.data = torch.linspace(-1.0, 1.0, 16)
        x = (torch.randn(3, 16, 5, 7) * 4 + 2).requires_grad_(True)
        outs, grads = [], []
        for norm in (ours, sam):
            out = norm(x)
            (out * torch.arange(out.numel()).view_as(out).sin()).sum().backward()
            outs.append(out)
            grads.append((x.grad.clone(), norm.weight.grad.clone(), norm.bias.grad.clone()))
            x.grad = None
        self.assertEqual(outs[0].shape, (3, 16, 5, 7))
        torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)

    def test_decoder_upscaling_equals_its_module(self):
        torch.manual_seed(0)
        layers = AISAM(3, sam_type="tiny", image_size=64).sam.mask_decoder.output_upscaling
        self.assertTrue(any(isinstance(m, SAMLayerNorm2d) for m in layers))
        x = torch.randn(2, layers[0].in_channels, 4, 4)
        with torch.no_grad():
            torch.testing.assert_close(upscale(layers, x), layers(x), atol=1e-5, rtol=1e-5)


if __name__ == "__main__":
    unittest.main()
