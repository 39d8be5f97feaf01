# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Sliding-slice inference of AI-SAM over whole 3D volumes, with user prompts and the evaluation prompts."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import optional_import

from aisam_monai.networks import class_gate, combine_class_masks
from aisam_monai.transforms.intensity import to_model_input
from aisam_monai.transforms.label_prompts import class_presence, label_boxes, random_label_points
from aisam_monai.transforms.slice_geometry import box_to_model, model_to_pixel, pixel_to_model

tqdm, _ = optional_import("tqdm", name="tqdm")

__all__ = ["EVAL_PROMPTS", "SliceVolumeInferer"]

EVAL_PROMPTS = ("auto", "gt_label", "random_points", "gt_box", "one_hot_points", "soft_points", "gt_points_only")
"""The prompts an evaluation gives the model. ``auto``: generated points as trained (``onehot(argmax W)`` for a
``hard_points`` model, else ``softmax W``) and classifier gate; ``gt_label``: ground-truth presence replaces the gate;
``random_points``: N ground-truth clicks per class appended to the generated points; ``gt_box``: ground-truth boxes;
``one_hot_points``: ``onehot(argmax W)`` points and ``soft_points``: ``softmax W`` (generalized) points, whatever the
training used (the two evaluations of the paper's Table 3, arXiv 2312.03119); ``gt_points_only``: ``Np`` ground-truth
clicks per class replace the generated points (the prompt-quality test)."""

_POINT_MODES = {"one_hot_points": "one_hot", "soft_points": "soft"}

_LABEL_PROMPTS = ("gt_label", "random_points", "gt_box", "gt_points_only")
_PROMPT_KEYS = ("points", "point_labels", "boxes", "class_labels", "present")


class SliceVolumeInferer(Inferer):
    """
    Segment a 3D volume slice by slice with an :class:`~aisam_monai.networks.AISAM`, ``sw_batch_size`` slices at
    a time, and map the labels back onto the input grid.

    Per batch of slices: the model input (:func:`~aisam_monai.transforms.to_model_input`: resize to ``S x S``,
    3 channels, SAM normalisation), the model (all classes batched inside it), and the class masks combined with
    the class gate and brought back to the slice grid: ``bilinear`` on the gated class probabilities of that batch
    (:func:`~aisam_monai.networks.combine_class_masks` with ``size``: smooth contours, the labels of the interactive
    predictor's ``generalized`` decode path voxel for voxel; ``(k, C, H, W)`` float32 per batch) or ``nearest``
    on the low-resolution label map (cheaper: no per-class full-size tensor; contours in steps of the mask grid).
    Points and boxes map between the grids with :mod:`aisam_monai.transforms.slice_geometry`. Memory is bounded
    by one batch of slices whatever the depth; the output is a uint8 label volume (up to 256 classes). Prompts
    travel through :meth:`__call__` (MONAI's ``SliceInferer`` drops extra keyword arguments).

    Args:
        image_size: model input side ``S``.
        sw_batch_size: slices per forward pass.
        spatial_dim: axis of the spatial shape ``(H, W, D)`` along which slices are taken (2: the last).
        eval_prompts: one of :data:`EVAL_PROMPTS`; all but ``auto``, ``one_hot_points`` and ``soft_points`` need the
            label.
        num_random_points: clicks per class of ``random_points``.
        gate: class gate of the label combination: ``"hard"``, ``"soft"`` or ``"none"``.
        threshold: presence threshold of the hard gate.
        resample: ``"bilinear"`` (probabilities) or ``"nearest"`` (labels) for the way back to the slice grid.
        normalize: apply SAM's pixel mean/std to the ``[0, 1]`` intensities; None: as the model's backbone expects
            (``model.pixel_normalization == "sam"``).
        progress: show a progress bar over the batches of slices.
        seed: seed of the random clicks (reproducible per call).

    Example::

        inferer = SliceVolumeInferer(image_size=256, sw_batch_size=8)
        result = inferer(volume, model)  # volume (1, H, W, D) or (1, 1, H, W, D), intensities in [0, 1]
        result["pred"]          # (1, H, W, D) or (1, 1, H, W, D) uint8 labels on the input grid
        result["pred_lowres"]   # the same layout at (S/4, S/4) per slice
        result["points"]        # (D, C, Np, 3) generated points in input voxel coordinates
    """

    def __init__(
        self,
        image_size: int,
        sw_batch_size: int = 8,
        spatial_dim: int = 2,
        eval_prompts: str = "auto",
        num_random_points: int = 1,
        gate: str = "hard",
        threshold: float = 0.5,
        resample: str = "bilinear",
        normalize: bool | None = None,
        progress: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if eval_prompts not in EVAL_PROMPTS:
            raise ValueError(f"eval_prompts must be one of {EVAL_PROMPTS}, got {eval_prompts!r}.")
        if resample not in ("nearest", "bilinear"):
            raise ValueError(f"resample must be 'nearest' or 'bilinear', got {resample!r}.")
        if spatial_dim not in (0, 1, 2):
            raise ValueError(f"spatial_dim must be 0, 1 or 2, got {spatial_dim}.")
        self.image_size = image_size
        self.sw_batch_size = sw_batch_size
        self.spatial_dim = spatial_dim
        self.eval_prompts = eval_prompts
        self.num_random_points = num_random_points
        self.gate = gate
        self.threshold = threshold
        self.resample = resample
        self.normalize = normalize
        self.progress = progress
        self.seed = seed

    @property
    def needs_label(self) -> bool:
        """Whether the evaluation prompts are derived from the ground-truth label."""
        return self.eval_prompts in _LABEL_PROMPTS

    def _label_prompts(self, labels: torch.Tensor, num_classes: int, num_points: int, generator) -> dict:
        """Network keyword arguments of the evaluation prompts from ``(k, 1, S, S)`` labels."""
        if self.eval_prompts == "gt_label":
            return {"class_labels": class_presence(labels, num_classes).float()}
        if self.eval_prompts == "gt_box":
            return {"boxes": label_boxes(labels, num_classes)}
        if self.eval_prompts in ("random_points", "gt_points_only"):
            k = self.num_random_points if self.eval_prompts == "random_points" else num_points
            points, point_labels = random_label_points(labels, num_classes, k, generator)
            kwargs = {"points": points, "point_labels": point_labels}
            if self.eval_prompts == "gt_points_only":
                kwargs["point_mode"] = "none"
            return kwargs
        return {}

    def _user_prompts(self, prompts: Mapping, index: slice, in_size: tuple[int, int], device) -> dict:
        """Slice ``index`` of per-slice user prompts in input voxel coordinates -> model-frame keyword arguments."""
        kwargs = {}
        if prompts.get("points") is not None:
            rc = torch.as_tensor(prompts["points"])[index].to(device).float()  # (k, C, K, 2) as (row, col)
            kwargs["points"] = pixel_to_model(rc.flip(-1), in_size, self.image_size)
            kwargs["point_labels"] = torch.as_tensor(prompts["point_labels"])[index].to(device).long()
        if prompts.get("boxes") is not None:
            box = torch.as_tensor(prompts["boxes"])[index].to(device).float()  # (k, C, 4) as (r1, c1, r2, c2)
            kwargs["boxes"] = box_to_model(box[..., [1, 0, 3, 2]], in_size, self.image_size)
        for key in ("class_labels", "present"):
            if prompts.get(key) is not None:
                kwargs[key] = torch.as_tensor(prompts[key])[index].to(device).float()
        return kwargs

    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        network: torch.nn.Module,
        label: torch.Tensor | None = None,
        prompts: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            inputs: ``(1, H, W, D)`` or ``(1, 1, H, W, D)`` volume with intensities in [0, 1].
            network: an AISAM (or a ``DistributedDataParallel`` around one) with ``num_classes``, ``mask_size``
                and ``predict_labels``.
            label: ground truth of the same layout, needed by the label-driven evaluation prompts.
            prompts: optional user prompts per slice (along ``spatial_dim``), in input voxel coordinates of the
                slice (row, column): ``points (D, C, K, 2)`` with ``point_labels (D, C, K)`` (1/0/-1),
                ``boxes (D, C, 4)`` inclusive ``(row1, col1, row2, col2)`` (all -1: no box), ``class_labels (D, C)``,
                ``present (D, C)`` (1: the class is declared present on the slice, 0: absent, -1: the class gate
                decides; the interactive predictor's rule for clicks); row and column are the first and second of
                the two in-plane axes (in input axis order). They are added to the evaluation prompts.

        Returns:
            ``pred`` (input layout, uint8 labels, a MetaTensor with the input's metadata when the input is one),
            ``pred_lowres`` (same layout with slices of ``S/4 x S/4``), ``points (D, C, Np, 3)`` generated points
            in input voxel coordinates (float), ``class_probs (D, C)`` presence probabilities (NaN without a
            classifier), and, when ``label`` is given, ``label_lowres``: the label resized per slice to ``S`` and then
            to ``S/4`` (``nearest-exact``), the evaluation grid of the ``aisam`` protocol.
        """
        if inputs.ndim not in (4, 5) or inputs.shape[0] != 1 or (inputs.ndim == 5 and inputs.shape[1] != 1):
            raise ValueError(
                f"the inference input must be one single-channel 3D volume (1, H, W, D) or (1, 1, H, W, D), "
                f"got shape {tuple(inputs.shape)}."
            )
        if self.needs_label and label is None:
            raise ValueError(f"eval_prompts {self.eval_prompts!r} needs the ground-truth label.")
        if label is not None and label.shape != inputs.shape:
            raise ValueError(f"label shape {tuple(label.shape)} differs from the image shape {tuple(inputs.shape)}.")
        if prompts is not None and set(prompts) - set(_PROMPT_KEYS):
            raise ValueError(f"prompts may hold {_PROMPT_KEYS}, got {sorted(prompts)}.")
        model = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
        num_classes = model.num_classes
        if num_classes > 256:
            raise ValueError(f"label volumes are uint8: at most 256 classes, the model has {num_classes}.")
        # Np: ground-truth clicks per class of the prompt-quality test (gt_points_only)
        num_points = getattr(getattr(model, "prompter", None), "num_points", 4)
        if getattr(model, "image_size", self.image_size) != self.image_size:
            raise ValueError(f"inferer image_size {self.image_size} differs from the model's {model.image_size}.")

        volume = inputs.reshape(inputs.shape[-3:]).movedim(self.spatial_dim, -1)  # (H, W, D) slices last
        gt = None if label is None else label.reshape(label.shape[-3:]).movedim(self.spatial_dim, -1)
        h, w, depth = volume.shape
        low = model.mask_size[0]  # the decoder's mask grid: S/4 for the SAM backbones, S/2 for tiny
        device = volume.device
        # uint8 label volumes: a quarter of the float32 input's memory (classes < 256)
        pred = torch.zeros((h, w, depth), dtype=torch.uint8, device=device)
        pred_low = torch.zeros((low, low, depth), dtype=torch.uint8, device=device)
        label_low = None if gt is None else torch.zeros_like(pred_low)
        points = None  # (D, C, Np, 3), allocated once Np is known from the first output
        probs = torch.full((depth, num_classes), float("nan"), device=device)
        generator = torch.Generator(device=device).manual_seed(self.seed)

        normalize = self.normalize if self.normalize is not None else model.pixel_normalization == "sam"
        starts = range(0, depth, self.sw_batch_size)
        for start in tqdm(starts, desc="slices", unit="batch") if self.progress else starts:
            index = slice(start, min(start + self.sw_batch_size, depth))
            image = to_model_input(volume[..., index].permute(2, 0, 1).unsqueeze(1), self.image_size, normalize)
            kwargs = {}
            if gt is not None:  # label on the model grid (prompts) and the S/4 evaluation grid (the paper's protocol)
                lab = gt[..., index].permute(2, 0, 1).unsqueeze(1).float()
                lab = F.interpolate(lab, size=image.shape[-2:], mode="nearest-exact")
                label_low[..., index] = (
                    F.interpolate(lab, size=(low, low), mode="nearest-exact")[:, 0].permute(1, 2, 0).to(torch.uint8)
                )
            if self.needs_label:
                kwargs.update(self._label_prompts(lab.long(), num_classes, num_points, generator))
            if self.eval_prompts in _POINT_MODES:
                kwargs["point_mode"] = _POINT_MODES[self.eval_prompts]
            if prompts is not None:
                user = self._user_prompts(prompts, index, (h, w), device)
                if "points" in user and "points" in kwargs:
                    user["points"] = torch.cat([kwargs["points"], user["points"]], 2)
                    user["point_labels"] = torch.cat([kwargs["point_labels"], user["point_labels"]], 2)
                kwargs.update(user)
            present = kwargs.pop("present", None)
            with torch.no_grad():  # the unwrapped module: DDP's forward would sync buffers across ranks per call
                out = model(image, **kwargs)
            class_labels = kwargs.get("class_labels")
            if present is not None:  # declared classes override the gate, per slice and class
                g = class_gate(out.get("class_logits"), num_classes, self.gate, self.threshold, class_labels)
                class_labels = torch.where(present >= 0, present, g.to(device))
            combine = {"gate": self.gate, "threshold": self.threshold, "class_labels": class_labels}
            labels_low = model.predict_labels(out, **combine)
            pred_low[..., index] = labels_low[:, 0].permute(1, 2, 0).to(torch.uint8)
            if self.resample == "nearest":
                back = F.interpolate(labels_low.float(), size=(h, w), mode="nearest-exact")[:, 0].long()
            else:
                back = combine_class_masks(out["logits"], out.get("class_logits"), size=(h, w), **combine)[:, 0]
            pred[..., index] = back.permute(1, 2, 0).to(torch.uint8)
            cols, rows = model_to_pixel(out["points"].float(), (h, w), self.image_size).unbind(-1)  # (k, C, Np)
            depth_index = torch.arange(index.start, index.stop, device=device, dtype=torch.float32)
            if points is None:
                points = torch.zeros((depth, *rows.shape[1:], 3), device=device)
            points[index] = torch.stack([rows, cols, depth_index.view(-1, 1, 1).expand_as(rows)], -1)
            if out.get("class_logits") is not None:
                probs[index] = torch.sigmoid(out["class_logits"].float())

        # back to the input's axis order and layout
        order = [0, 1, 2]
        order.remove(self.spatial_dim)
        order.append(self.spatial_dim)
        points = points[..., torch.argsort(torch.tensor(order))]
        pred = pred.movedim(-1, self.spatial_dim).reshape(inputs.shape)
        lead = inputs.shape[: inputs.ndim - 3]
        pred_low = pred_low.movedim(-1, self.spatial_dim)
        result = {"pred_lowres": pred_low.reshape(lead + pred_low.shape), "points": points, "class_probs": probs}
        result["pred"] = MetaTensor(pred, meta=inputs.meta) if isinstance(inputs, MetaTensor) else pred
        if label_low is not None:
            label_low = label_low.movedim(-1, self.spatial_dim)
            result["label_lowres"] = label_low.reshape(lead + label_low.shape)
        return result
