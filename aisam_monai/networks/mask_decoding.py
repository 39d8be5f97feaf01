# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
SAM's mask decoder for ``B`` images x ``C`` prompt sets in one call (docs/architecture.md: data flow).

The stock ``MaskDecoder`` takes one image per call. This module runs the same computation with the
decoder's own sub-modules and weights (its ``TwoWayTransformer`` layers, output upscaling and the first
hypernetwork MLP, i.e. ``multimask_output=False``), batched over images and classes, with attention
through ``scaled_dot_product_attention`` and a key mask for padded prompt tokens: a masked token is
exactly equivalent to a dropped one.
"""

from __future__ import annotations

import torch
from segment_anything.modeling import MaskDecoder, TwoWayTransformer
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

from .blocks import layer_norm_2d, multihead_attention, sam_attention

__all__ = ["decode_masks", "two_way_transformer", "upscale"]


def two_way_transformer(
    transformer: TwoWayTransformer,
    image: torch.Tensor,
    image_pe: torch.Tensor,
    tokens: torch.Tensor,
    token_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    ``TwoWayTransformer.forward`` with a key mask over the prompt tokens, for ``G`` prompt sets per image: the
    first layer's image-side terms (token-to-image keys and values, image-to-token queries) are computed once per
    image, the image tokens become per-set after it.

    Args:
        transformer: SAM's two-way transformer (its weights are used).
        image: ``(B, D, h, w)`` image embedding (plus dense prompt), shared by the ``G`` sets of each image.
        image_pe: ``(1, D, h, w)`` dense positional encoding.
        tokens: ``(B*G, T, D)`` output and prompt tokens, the ``G`` sets of an image consecutive.
        token_mask: optional boolean ``(B*G, T)``, ``False`` for padding tokens.

    Returns:
        tokens ``(B*G, T, D)`` and image tokens ``(B*G, h*w, D)``.
    """
    b, d = image.shape[:2]
    if tokens.shape[0] % b:
        raise ValueError(f"{tokens.shape[0]} prompt sets for {b} images: expected a multiple.")
    g = tokens.shape[0] // b
    keys = image.flatten(2).transpose(1, 2)  # (B, hw, D) until the first image-to-token attention
    key_pe = image_pe.flatten(2).transpose(1, 2)
    hw = keys.shape[1]
    queries = tokens
    for layer in transformer.layers:
        shared = keys.shape[0] != queries.shape[0]
        if layer.skip_first_layer_pe:
            queries = sam_attention(layer.self_attn, queries, queries, queries, token_mask)
        else:
            q = queries + tokens
            queries = queries + sam_attention(layer.self_attn, q, q, queries, token_mask)
        queries = layer.norm1(queries)
        q, k = queries + tokens, keys + key_pe
        if shared:  # attention per query: the G sets of an image are one query set over the same keys
            attn = sam_attention(layer.cross_attn_token_to_image, q.reshape(b, -1, d), k, keys).reshape(q.shape)
        else:
            attn = sam_attention(layer.cross_attn_token_to_image, q, k, keys)
        queries = layer.norm2(queries + attn)
        queries = layer.norm3(queries + layer.mlp(queries))
        q, k = queries + tokens, keys + key_pe
        m = layer.cross_attn_image_to_token
        image_queries = m.q_proj(k)
        if shared:
            image_queries = image_queries.unsqueeze(1).expand(-1, g, -1, -1).reshape(b * g, hw, -1)
        attn = m.out_proj(multihead_attention(image_queries, m.k_proj(q), m.v_proj(queries), m.num_heads, token_mask))
        if shared:
            keys = layer.norm4((keys.unsqueeze(1) + attn.view(b, g, hw, d)).reshape(b * g, hw, d))
        else:
            keys = layer.norm4(keys + attn)
    if keys.shape[0] != queries.shape[0]:  # no layers
        keys = keys.repeat_interleave(g, dim=0)
    q, k = queries + tokens, keys + key_pe
    queries = transformer.norm_final_attn(queries + sam_attention(transformer.final_attn_token_to_image, q, k, keys))
    return queries, keys


def upscale(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """
    ``layers(x)`` for the decoder's ``output_upscaling``, with each segment-anything ``LayerNorm2d`` computed by
    :func:`~.blocks.layer_norm_2d` (its own weights, the same normalisation, fused): on a ``(B*C, 64, 4h, 4w)`` map
    per image and class, SAM's elementwise version is a large part of a training step on the CPU.
    """
    for layer in layers:
        x = layer_norm_2d(x, layer.weight, layer.bias, layer.eps) if isinstance(layer, LayerNorm2d) else layer(x)
    return x


def decode_masks(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    dense_embedding: torch.Tensor,
    sparse: torch.Tensor,
    sparse_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    Decode one mask per (image, prompt set).

    Args:
        decoder: SAM's ``MaskDecoder``.
        image_embeddings: ``(B, D, h, w)``.
        image_pe: ``(1, D, h, w)`` from ``prompt_encoder.get_dense_pe()``.
        dense_embedding: ``(1, D, 1, 1)`` or ``(B, D, h, w)`` dense prompt (SAM's "no mask" embedding).
        sparse: ``(B, C, T, D)`` sparse prompt tokens of ``C`` prompt sets per image.
        sparse_mask: optional boolean ``(B, C, T)``; ``False`` marks padding tokens.

    Returns:
        mask logits ``(B, C, 4h, 4w)`` (SAM's first, single-mask output).
    """
    b, c, t, d = sparse.shape
    if image_embeddings.shape[0] != b:
        raise ValueError(f"{b} prompt batches for {image_embeddings.shape[0]} image embeddings.")
    n = b * c
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([output_tokens.unsqueeze(0).expand(n, -1, -1), sparse.reshape(n, t, d)], dim=1)
    mask = None
    if sparse_mask is not None:
        fixed = sparse_mask.new_ones(n, output_tokens.shape[0])
        mask = torch.cat([fixed, sparse_mask.reshape(n, t)], dim=1)
    if dense_embedding.shape[0] not in (1, b):
        raise ValueError(f"dense_embedding batch {dense_embedding.shape[0]} is neither 1 nor {b}.")
    src = image_embeddings + dense_embedding  # (B, D, h, w): shared by the C prompt sets of each image
    hs, keys = two_way_transformer(decoder.transformer, src, image_pe, tokens, mask)
    h, w = image_embeddings.shape[-2:]
    upscaled = upscale(decoder.output_upscaling, keys.transpose(1, 2).reshape(n, d, h, w))
    hyper = decoder.output_hypernetworks_mlps[0](hs[:, 1])  # first mask token: multimask_output=False
    masks = torch.bmm(hyper.unsqueeze(1), upscaled.flatten(2))
    return masks.view(b, c, *upscaled.shape[-2:])
