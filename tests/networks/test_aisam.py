# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from aisam_monai.losses import AISAMLoss
from aisam_monai.networks import AISAM, combine_class_masks
from aisam_monai.networks.prompt_tokens import box_masks, grid_index_to_pixel
from aisam_monai.networks.sam_builder import SAM_CONFIGS
from benchmarks.reference import reference_forward

torch.set_num_threads(1)

# num_classes, batch, image_size
SHAPE_CASES = [[4, 1, 128], [4, 3, 128], [9, 1, 256], [9, 3, 128], [4, 3, 256]]
PATCH = SAM_CONFIGS["tiny"].patch_size  # embedding grid S / PATCH, mask grid 4 S / PATCH


def _model(num_classes=4, image_size=64, **kwargs) -> AISAM:
    torch.manual_seed(0)
    return AISAM(num_classes, sam_type="tiny", image_size=image_size, **kwargs)


class TestAISAMShapes(unittest.TestCase):
    @parameterized.expand(SHAPE_CASES)
    def test_shapes(self, c, b, s):
        model = _model(c, s).eval()
        with torch.no_grad():
            out = model(torch.rand(b, 3, s, s))
        n, d = model.prompter.num_points, model.sam.prompt_encoder.embed_dim
        g = s // PATCH
        self.assertEqual((model.grid, model.mask_size), ((g, g), (4 * g, 4 * g)))
        self.assertEqual(out["logits"].shape, (b, c, 4 * g, 4 * g))
        self.assertEqual(out["class_logits"].shape, (b, c))
        self.assertEqual(out["point_weights"].shape, (b, c, n, g, g))
        self.assertEqual(out["point_features"].shape, (b, c, n, d))
        self.assertEqual(out["points"].shape, (b, c, n, 2))
        sums = out["point_weights"].sum((-2, -1))
        torch.testing.assert_close(sums, torch.ones_like(sums))
        self.assertEqual(model.predict_labels(out).shape, (b, 1, 4 * g, 4 * g))

    def test_bad_image_shape(self):
        with self.assertRaisesRegex(ValueError, r"\(B, 3, 64, 64\)"):
            _model()(torch.rand(1, 3, 32, 32))

    def test_bad_prompt_shape(self):
        with self.assertRaisesRegex(ValueError, "boxes must have shape"):
            _model().eval()(torch.rand(1, 3, 64, 64), boxes=torch.zeros(1, 3, 4))

    def test_no_classifier(self):
        model = _model(use_classifier=False).eval()
        out = model(torch.rand(2, 3, 64, 64))
        self.assertIsNone(out["class_logits"])
        self.assertEqual(model.predict_labels(out).shape, (2, 1, 256 // PATCH, 256 // PATCH))


class TestBatchedEqualsLoop(unittest.TestCase):
    """Spec §0.2: the batched prompter/decoder equals the reference per-class loop (fp32, 1e-5)."""

    def setUp(self):
        self.model = _model(4, 128).eval()
        g = torch.Generator().manual_seed(3)
        self.image = torch.rand(3, 3, 128, 128, generator=g)
        self.points = torch.rand(3, 4, 2, 2, generator=g) * 127
        self.labels = torch.tensor([[[1, -1], [1, 0], [-1, -1], [0, 1]]] * 3)
        self.labels[1, 0] = torch.tensor([-1, -1])  # images differ in their number of valid clicks
        boxes = torch.full((3, 4, 4), -1.0)
        boxes[:, 1] = torch.tensor([10.0, 20.0, 90.0, 100.0])
        boxes[2, 3] = torch.tensor([0.0, 0.0, -1.0, -1.0])  # empty box: class suppressed
        self.boxes = boxes

    @parameterized.expand(
        [
            ["auto", {}],
            ["points", {"points": True}],
            ["boxes", {"boxes": True}],
            ["points_only", {"points": True, "point_mode": "none"}],
            ["one_hot", {"point_mode": "one_hot"}],
            ["all", {"points": True, "boxes": True}],
        ]
    )
    def test_equal(self, _, spec):
        kwargs = {"point_mode": spec.get("point_mode", "generalized")}
        if spec.get("points"):
            kwargs.update(points=self.points, point_labels=self.labels)
        if spec.get("boxes"):
            kwargs["boxes"] = self.boxes
        with torch.no_grad():
            fast = self.model(self.image, **kwargs)
            ref = reference_forward(self.model, self.image, **kwargs)
        torch.testing.assert_close(fast["logits"], ref["logits"], atol=1e-5, rtol=0)
        torch.testing.assert_close(fast["point_weights"], ref["point_weights"], atol=1e-5, rtol=0)
        torch.testing.assert_close(fast["class_logits"], ref["class_logits"], atol=1e-5, rtol=0)

    @parameterized.expand([[1], [3]])
    def test_equal_any_number_of_clicks(self, k):
        points = torch.rand(2, 4, k, 2, generator=torch.Generator().manual_seed(k)) * 127
        labels = torch.ones(2, 4, k, dtype=torch.long)
        labels[1, 2] = -1
        with torch.no_grad():
            fast = self.model(self.image[:2], points=points, point_labels=labels)
            ref = reference_forward(self.model, self.image[:2], points=points, point_labels=labels)
        torch.testing.assert_close(fast["logits"], ref["logits"], atol=1e-5, rtol=0)

    def test_user_points_change_masks(self):
        with torch.no_grad():
            auto = self.model(self.image)["logits"]
            clicked = self.model(self.image, points=self.points, point_labels=self.labels)["logits"]
        self.assertGreater((auto - clicked).abs().max().item(), 1e-4)


class TestPointEncoding(unittest.TestCase):
    def test_one_hot_weights_equal_sam_point_encoding(self):
        """A one-hot W gives exactly SAM's encoding of the cell-centre pixel (docs/interactive.md: coordinates)."""
        model = _model(4, 128)
        pe = model.sam.prompt_encoder.get_dense_pe().flatten(2).transpose(1, 2)[0]  # (hw, D)
        idx = torch.tensor([0, 5, 17, 40, 63])
        generalized = torch.nn.functional.one_hot(idx, pe.shape[0]).float() @ pe
        pixels = grid_index_to_pixel(idx, model.grid, 128)
        sam_encoding = model.sam.prompt_encoder.pe_layer.forward_with_coords(pixels[None] + 0.5, (128, 128))[0]
        torch.testing.assert_close(generalized, sam_encoding, atol=1e-5, rtol=0)

    def test_points_are_argmax_cell_centres(self):
        model = _model(4, 128).eval()
        out = model(torch.rand(2, 3, 128, 128))
        idx = out["point_weights"].flatten(3).argmax(-1)
        torch.testing.assert_close(out["points"], grid_index_to_pixel(idx, model.grid, 128))
        cell = 128 // model.grid[0]
        self.assertTrue(((out["points"] - (cell / 2 - 0.5)) % cell == 0).all())  # centres of the embedding cells

    def test_one_hot_mode_with_soft_points(self):
        model = _model(4, 64, hard_points=False).eval()
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            soft, hard = model(x), model(x, point_mode="one_hot")
        self.assertGreater((soft["logits"] - hard["logits"]).abs().max().item(), 1e-5)
        torch.testing.assert_close(soft["point_weights"], hard["point_weights"])

    def test_inference_is_deterministic_training_samples(self):
        model = _model(4, 64)
        x = torch.rand(1, 3, 64, 64)
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(x)["logits"], model(x)["logits"])


class TestBoxes(unittest.TestCase):
    def test_box_restricts_weights_and_mask(self):
        model = _model(4, 128).eval()
        boxes = torch.full((2, 4, 4), -1.0)
        boxes[:, 2] = torch.tensor([16.0, 24.0, 63.0, 95.0])
        with torch.no_grad():
            out = model(torch.rand(2, 3, 128, 128), boxes=boxes)
        inside_grid = box_masks(boxes, model.grid, 128)
        w = out["point_weights"][:, 2]
        self.assertEqual(w.masked_select(~inside_grid[:, 2, None].expand_as(w)).abs().max().item(), 0.0)
        low = out["logits"][:, 2]
        m = model.mask_size[0]
        centres = torch.arange(m) * (128 // m) + 128 // m // 2  # pixel sampled by each mask cell (nearest-exact)
        ys, xs = torch.meshgrid(centres, centres, indexing="ij")
        outside = ~((xs >= 16) & (xs <= 63) & (ys >= 24) & (ys <= 95))
        self.assertTrue((low[:, outside] <= -1e4 + 1).all())
        self.assertTrue((low[:, ~outside] > -1e3).all())
        labels = model.predict_labels(out, gate="none")
        self.assertFalse((labels[:, 0][:, outside] == 2).any())
        # the points of the boxed class lie in the box
        pts = out["points"][:, 2]
        self.assertTrue(
            (
                (pts[..., 0] >= 16 - 4) & (pts[..., 0] <= 63 + 4) & (pts[..., 1] >= 24 - 4) & (pts[..., 1] <= 95 + 4)
            ).all()
        )

    def test_box_mask_grid(self):
        boxes = torch.tensor([[[0.0, 0.0, 31.0, 15.0], [-1, -1, -1, -1], [5, 5, 4, 4], [40, 40, 41, 41]]])
        m = box_masks(boxes, (4, 4), 64)  # cells of 16 px, sampled at 8, 24, 40, 56
        self.assertEqual(m[0, 0].nonzero().tolist(), [[0, 0], [0, 1]])
        self.assertTrue(m[0, 1].all())
        self.assertFalse(m[0, 2].any())
        self.assertEqual(m[0, 3].nonzero().tolist(), [[2, 2]])  # smaller than a cell: the cell of its centre


class TestCachedPrompterLogits(unittest.TestCase):
    def test_decode_with_cached_prompter_logits_equals_decode(self):
        """The interactive cache (prompter transformer + classifier once per embedding) changes nothing."""
        torch.manual_seed(0)
        model = AISAM(num_classes=3, sam_type="tiny", image_size=64).eval()
        emb = model.encode(torch.rand(2, 3, 64, 64))
        cached = model.prompter_logits(emb)
        points = torch.tensor([[[[10.0, 20.0]], [[30.0, 40.0]], [[50.0, 5.0]]]]).expand(2, -1, -1, -1)
        labels = torch.tensor([[[1], [0], [1]]]).expand(2, -1, -1)
        boxes = -torch.ones(2, 3, 4)
        boxes[:, 1] = torch.tensor([8.0, 8.0, 40.0, 40.0])
        for kwargs in ({}, {"points": points, "point_labels": labels}, {"boxes": boxes}, {"point_mode": "one_hot"},
                       {"point_mode": "none", "points": points, "point_labels": labels}):  # fmt: skip
            with torch.no_grad():
                plain, fast = model.decode(emb, **kwargs), model.decode(emb, prompter_logits=cached, **kwargs)
            for key in ("logits", "class_logits", "point_weights", "points"):
                torch.testing.assert_close(fast[key], plain[key], rtol=0, atol=0, msg=f"{key} {sorted(kwargs)}")


class TestPrompterImagePE(unittest.TestCase):
    def test_prompter_reads_x_plus_p(self):
        """``prompter_image_pe``: the prompter's transformer reads X + P; the classifier, the point features and the
        decoder still take X. Off by default for a backbone with a position embedding (tiny, SAM's ViTs)."""
        plain, with_pe = _model().eval(), _model(prompter_image_pe=True).eval()
        self.assertEqual((plain.prompter.image_pe, with_pe.prompter.image_pe), (False, True))
        with torch.no_grad():
            emb = plain.encode(torch.rand(2, 3, 64, 64))
            pe = plain.sam.prompt_encoder.get_dense_pe()
            got = with_pe.prompter_logits(emb)
            torch.testing.assert_close(
                got["point_logits"], plain.prompter.embedding_logits(emb + pe, pe)["point_logits"]
            )
            torch.testing.assert_close(got["class_logits"], plain.prompter_logits(emb)["class_logits"])
            self.assertGreater((got["point_logits"] - plain.prompter_logits(emb)["point_logits"]).abs().max(), 1e-3)
            out = with_pe.decode(emb)
            used = torch.nn.functional.one_hot(got["point_logits"].argmax(-1), emb.shape[-2] * emb.shape[-1])
            x = emb.flatten(2).transpose(1, 2).unsqueeze(1)
            torch.testing.assert_close(out["point_features"], used.float() @ (pe.flatten(2).transpose(1, 2) + x))


class TestPointLogitScale(unittest.TestCase):
    def test_scale_multiplies_the_logits(self):
        plain, scaled = _model().eval(), _model(point_logit_scale=0.25).eval()
        self.assertEqual((plain.prompter.point_logit_scale, scaled.prompter.point_logit_scale), (1.0, 0.25))
        with torch.no_grad():
            emb = plain.encode(torch.rand(2, 3, 64, 64))
            expected = plain.prompter_logits(emb)["point_logits"] * 0.25
            torch.testing.assert_close(scaled.prompter_logits(emb)["point_logits"], expected)

    def test_unscaled_softmax_starts_almost_one_hot_at_width_256(self):
        """Why LiteMedSAM's prompter scales by 1/sqrt(D): at D = 256 the paper's unscaled point logits put most of
        each point's weight on one cell of a 32 x 32 grid at initialisation; scaled, the weight is spread."""
        from aisam_monai.networks import AIPrompter

        peaks = []
        for scale in (1.0, 256**-0.5):
            torch.manual_seed(0)
            prompter = AIPrompter(4, 256, depth=1, num_heads=8, mlp_dim=256, point_logit_scale=scale).eval()
            with torch.no_grad():
                logits = prompter.embedding_logits(torch.randn(2, 256, 32, 32), torch.zeros(1, 256, 32, 32))
            peaks.append(logits["point_logits"].softmax(-1).amax(-1).mean().item())
        self.assertGreater(peaks[0], 0.5)
        self.assertLess(peaks[1], 0.1)


class TestCombine(unittest.TestCase):
    def test_gates(self):
        logits = torch.zeros(1, 3, 2, 2)
        logits[0, 1] = 5.0
        class_logits = torch.tensor([[-9.0, -3.0, 3.0]])
        self.assertTrue((combine_class_masks(logits, class_logits, gate="hard") == 0).all())
        self.assertTrue((combine_class_masks(logits, class_logits, gate="none") == 1).all())
        self.assertTrue((combine_class_masks(logits, None, class_labels=torch.tensor([[0, 1, 1]])) == 1).all())


class TestTraining(unittest.TestCase):
    def test_overfit_one_batch(self):
        """A tiny AISAM overfits one synthetic batch: the loss falls by more than half in <= 200 steps."""
        model = _model(4, 128)
        g = torch.Generator().manual_seed(1)
        y = torch.zeros(2, 1, 128, 128, dtype=torch.long)
        y[:, :, 30:90, 30:90] = 1
        y[:, :, 45:75, 45:75] = 2
        y[0, :, 50:60, 50:60] = 3
        y[1, :, 20:40, 90:110] = 3
        x = (torch.rand(2, 3, 128, 128, generator=g) * 0.3 + y * 0.25).float()
        loss_fn = AISAMLoss(4)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        first = None
        for _ in range(120):
            parts = loss_fn(model(x), y)
            opt.zero_grad()
            parts["loss"].backward()
            for p in model.parameters():
                if p.grad is not None:
                    self.assertTrue(torch.isfinite(p.grad).all())
            opt.step()
            first = parts["loss"].item() if first is None else first
        self.assertLess(parts["loss"].item(), 0.5 * first)

    def test_trainable_parts(self):
        model = _model(4, 64)
        self.assertFalse(any(p.requires_grad for p in model.sam.image_encoder.parameters()))
        self.assertFalse(any(p.requires_grad for p in model.sam.prompt_encoder.parameters()))
        self.assertTrue(all(p.requires_grad for p in model.sam.mask_decoder.parameters()))
        self.assertTrue(all(p.requires_grad for p in model.prompter.parameters()))
        full = _model(4, 64, train_encoder=True)
        self.assertTrue(all(p.requires_grad for p in full.sam.image_encoder.parameters()))
        # in training mode only an encoder trained as a whole leaves evaluation mode
        self.assertEqual(
            (model.train().sam.image_encoder.training, full.train().sam.image_encoder.training), (False, True)
        )
        self.assertTrue(model.sam.mask_decoder.training and model.prompter.training)

    def test_parameter_groups(self):
        """The mask decoder gets its own learning rate when one is given; every trainable parameter once."""
        model = _model(4, 64, use_lora=True)
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        (single,) = model.parameter_groups()
        self.assertEqual({id(p) for p in single["params"]}, trainable)
        rest, decoder = model.parameter_groups(decoder_lr=1e-5)
        self.assertEqual({id(p) for p in decoder["params"]}, {id(p) for p in model.sam.mask_decoder.parameters()})
        self.assertEqual(decoder["lr"], 1e-5)
        self.assertNotIn("lr", rest)
        self.assertEqual({id(p) for p in rest["params"]} | {id(p) for p in decoder["params"]}, trainable)
        self.assertFalse({id(p) for p in rest["params"]} & {id(p) for p in decoder["params"]})
        encoder = {id(p) for p in model.sam.image_encoder.parameters() if p.requires_grad}  # the LoRA weights
        self.assertTrue(encoder and encoder <= {id(p) for p in rest["params"]})
        opt = torch.optim.AdamW(model.parameter_groups(decoder_lr=1e-5), lr=1e-3)
        self.assertEqual([g["lr"] for g in opt.param_groups], [1e-3, 1e-5])


if __name__ == "__main__":
    unittest.main()
