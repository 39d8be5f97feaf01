# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""A tiny AISAM trained in seconds to follow clicks, shared by the interactive tests.

Images hold two bright disks, one left and one right of the centre; class 1 is the disk (or both disks) under
its positive clicks, the background has one positive click (user points only, ``point_mode="none"``, classes
combined by softmax). 150 steps on 64 x 64 inputs teach the decoder where a click is, which is what the editing
tests need; the presence classifier learns that class 1 is present. The generated points stay untrained.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

from aisam_monai.networks import AISAM
from aisam_monai.networks.sam_builder import SAM_CONFIGS
from aisam_monai.transforms import SAM_PIXEL_MEAN, SAM_PIXEL_STD

SIZE = 64
MASK_STRIDE = SAM_CONFIGS["tiny"].patch_size // 4  # input pixels per mask cell
CONFIG = {"num_classes": 2, "sam_type": "tiny", "image_size": SIZE, "train_encoder": True}
CLASS_NAMES = ["background", "disk"]


def disks(height: int, width: int, left: tuple[float, float], right: tuple[float, float], radius: float) -> np.ndarray:
    """
    ``(H, W)`` float image with two ellipses of intensity 1 on 0, centred at ``left`` and ``right`` ``(x, y)``,
    with radii ``radius * W / SIZE`` and ``radius * H / SIZE`` (circles of ``radius`` once resized to ``SIZE``).
    """
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    rx, ry = radius * width / SIZE, radius * height / SIZE
    image = np.zeros((height, width), dtype=np.float32)
    for cx, cy in (left, right):
        image[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1] = 1.0
    return image


def _batch(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SAM-normalised model-frame images ``(n, 3, S, S)``, targets ``(n, 1, 4h, 4w)`` on the mask grid.

    Also clicks ``(n, 2, 2, 2)``.
    """
    images, targets, clicks = [], [], []
    for _ in range(n):
        jitter_x, jitter_y = rng.integers(-SIZE // 16, SIZE // 16 + 1, 2), rng.integers(-SIZE // 8, SIZE // 8 + 1, 2)
        centres = [(SIZE * (0.28 + 0.44 * k) + jitter_x[k], SIZE / 2 + jitter_y[k]) for k in (0, 1)]
        radius = SIZE * rng.uniform(0.12, 0.18)
        chosen = [centres, [centres[0]] * 2, [centres[1]] * 2][int(rng.integers(3))]  # both disks, left or right
        image = disks(SIZE, SIZE, centres[0], centres[1], radius) + rng.normal(0, 0.05, (SIZE, SIZE))
        target = disks(SIZE, SIZE, chosen[0], chosen[1], radius)
        background = (float(rng.integers(0, SIZE // 10)), float(rng.integers(0, SIZE)))
        images.append(image)
        targets.append(target[MASK_STRIDE // 2 :: MASK_STRIDE, MASK_STRIDE // 2 :: MASK_STRIDE])  # nearest-exact
        clicks.append([[background, background], chosen])
    images = torch.as_tensor(np.stack(images), dtype=torch.float32)[:, None].expand(-1, 3, -1, -1)
    images = (images - torch.tensor(SAM_PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(SAM_PIXEL_STD).view(1, 3, 1, 1)
    return images, torch.as_tensor(np.stack(targets))[:, None], torch.as_tensor(clicks, dtype=torch.float32)


@functools.lru_cache(maxsize=1)
def trained_model(steps: int = 300, seed: int = 0) -> AISAM:
    """The trained tiny model (cached for the test session); callers must not modify it."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AISAM(**CONFIG)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    labels = torch.tensor([[1, -1], [1, 1]]).expand(8, 2, 2)  # one background click, two disk clicks
    for _ in range(steps):
        images, targets, clicks = _batch(8, rng)
        out = model(images, points=clicks, point_labels=labels, point_mode="none")
        presence = F.binary_cross_entropy_with_logits(out["class_logits"], torch.ones_like(out["class_logits"]))
        loss = loss_fn(out["logits"], targets) + presence
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
