# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""G token sets per image share the image's first-layer terms: equal to repeating the image per set (fp32, 1e-5)."""

from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from aisam_monai.networks import AISAM
from aisam_monai.networks.mask_decoding import two_way_transformer
from aisam_monai.networks.prompter_transformer import PrompterTransformer

torch.set_num_threads(1)


class TestSharedImage(unittest.TestCase):
    @parameterized.expand([[1, 3], [2, 4], [3, 1]])
    def test_prompter_transformer(self, b, g):
        torch.manual_seed(0)
        transformer = PrompterTransformer(depth=2, dim=32, num_heads=2, mlp_dim=64).eval()
        image, tokens = torch.randn(b, 32, 4, 5), torch.randn(b * g, 6, 32)
        with torch.no_grad():
            shared = transformer(tokens, image)
            repeated = transformer(tokens, image.repeat_interleave(g, dim=0))
        for a, r in zip(shared, repeated):
            self.assertEqual(a.shape, r.shape)
            torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)

    @parameterized.expand([[1, 3], [2, 4], [3, 1]])
    def test_decoder_transformer(self, b, g):
        torch.manual_seed(0)
        decoder = AISAM(3, sam_type="tiny", image_size=64).sam.mask_decoder.transformer.eval()
        image, pe, tokens = torch.randn(b, 64, 4, 4), torch.randn(1, 64, 4, 4), torch.randn(b * g, 7, 64)
        mask = torch.rand(b * g, 7) > 0.3
        mask[:, 0] = True  # every query keeps a valid key
        with torch.no_grad():
            shared = two_way_transformer(decoder, image, pe, tokens, mask)
            repeated = two_way_transformer(decoder, image.repeat_interleave(g, dim=0), pe, tokens, mask)
        for a, r in zip(shared, repeated):
            torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)

    def test_set_count_must_divide(self):
        transformer = PrompterTransformer(depth=1, dim=32, num_heads=2, mlp_dim=64)
        with self.assertRaisesRegex(ValueError, "expected a multiple"):
            transformer(torch.randn(5, 6, 32), torch.randn(2, 32, 4, 4))

    def test_gradients_equal(self):
        """Training uses the shared path too: gradients of the prompter match the repeated-image path."""
        torch.manual_seed(0)
        transformer = PrompterTransformer(depth=2, dim=32, num_heads=2, mlp_dim=64)
        image, tokens = torch.randn(2, 32, 4, 4), torch.randn(6, 5, 32)
        grads = []
        for img in (image, image.repeat_interleave(3, dim=0)):
            transformer.zero_grad()
            q, k = transformer(tokens, img)
            (q.square().mean() + k.square().mean()).backward()
            grads.append(transformer.layers[0].image_mlp.conv1.weight.grad.clone())
        torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


if __name__ == "__main__":
    unittest.main()
