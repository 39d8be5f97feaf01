# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
The reference recipe of AI-SAM's public code: a Python loop over images and classes, one prompter pass
and one stock ``MaskDecoder`` call per class, padding tokens dropped. It is kept only as the baseline of
the equivalence tests and the benchmarks (not part of the package); use :class:`~aisam_monai.networks.AISAM` for real
work.
"""

from __future__ import annotations

import torch

from aisam_monai.networks import AISAM
from aisam_monai.networks.ai_prompter import BOX_FILL
from aisam_monai.networks.prompt_tokens import box_masks

__all__ = ["reference_forward"]


def reference_forward(
    model: AISAM,
    image: torch.Tensor,
    points: torch.Tensor | None = None,
    point_labels: torch.Tensor | None = None,
    boxes: torch.Tensor | None = None,
    point_mode: str = "generalized",
) -> dict[str, torch.Tensor]:
    """
    Per-image, per-class forward of ``model`` (same arguments as ``AISAM.forward``). In eval mode point
    selection is deterministic and the outputs equal ``AISAM.forward``'s; in train mode the points are
    Gumbel samples (the benchmarks' baseline training step).

    Returns:
        ``logits (B, C, S/4, S/4)``, ``point_weights (B, C, Np, h, w)``, ``point_features (B, C, Np, D)``,
        ``class_logits (B, C)`` or None: what ``AISAMLoss`` reads.
    """
    sam, prompter, c = model.sam, model.prompter, model.num_classes
    dense_pe = sam.prompt_encoder.get_dense_pe()
    pe = dense_pe.flatten(2).transpose(1, 2)[0]
    pos = sam.prompt_encoder.point_embeddings[1].weight
    neg = sam.prompt_encoder.point_embeddings[0].weight
    dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, *model.grid)
    all_logits, all_weights, all_features, all_cls = [], [], [], []
    for b in range(image.shape[0]):
        emb = sam.image_encoder(image[b : b + 1])
        x = emb.detach()  # the prompter and the classifier see the detached embedding
        grid_box = None if boxes is None else box_masks(boxes[b : b + 1], model.grid, model.image_size)[0]
        class_points, class_weights, class_features = [], [], []
        for k in range(c):
            logits = prompter.point_logits(x, torch.tensor([k], device=x.device))[0]  # (Np, hw)
            if grid_box is not None:
                logits = logits.masked_fill(~grid_box[k].flatten(), BOX_FILL)
            w_used = prompter.select(logits, point_mode)
            class_points.append(w_used @ pe)
            class_features.append(w_used @ (pe + x.flatten(2).transpose(1, 2)[0]))
            class_weights.append(logits.softmax(-1).view(-1, *model.grid))
        masks = []
        for k in range(c):
            sparse = [] if point_mode == "none" else [class_points[k] + pos]
            sparse += [] if point_mode == "none" else [class_points[j] + neg for j in range(c) if j != k]
            if points is not None:
                coords, labels = [], []
                for j in [k] + [j for j in range(c) if j != k]:
                    for p, lab in zip(points[b, j], point_labels[b, j]):
                        role = int(lab) if j == k else (0 if int(lab) == 1 else -1)
                        if role >= 0:
                            coords.append(p)
                            labels.append(role)
                if coords:
                    sparse.append(
                        sam.prompt_encoder._embed_points(torch.stack(coords)[None], torch.tensor([labels]), pad=False)[
                            0
                        ]
                    )
            sparse_tokens = torch.cat(sparse, 0)[None] if sparse else emb.new_zeros(1, 0, emb.shape[1])
            mask, _ = sam.mask_decoder(
                image_embeddings=emb,
                image_pe=dense_pe,
                sparse_prompt_embeddings=sparse_tokens,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            masks.append(mask[0, 0])
        logits = torch.stack(masks)[None]
        if boxes is not None:
            low = box_masks(boxes[b : b + 1], logits.shape[-2:], model.image_size)
            logits = logits.masked_fill(~low, BOX_FILL)
        all_logits.append(logits)
        all_weights.append(torch.stack(class_weights))
        all_features.append(torch.stack(class_features))
        if prompter.classifier is not None:
            all_cls.append(prompter.classifier(x))
    return {
        "logits": torch.cat(all_logits),
        "point_weights": torch.stack(all_weights),
        "point_features": torch.stack(all_features),
        "class_logits": torch.cat(all_cls) if all_cls else None,
    }
