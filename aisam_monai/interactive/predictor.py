# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""Interactive AI-SAM: cached image embeddings, automatic points, and point/box/class edits.

The interactive use of AI-SAM (arXiv 2312.03119): generated points a person can move, delete or add to.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.utils import convert_to_tensor, optional_import

from aisam_monai.interactive.coordinates import box_mask, box_to_model, model_to_pixel, pixel_to_model, resize_logits
from aisam_monai.io.checkpoint import check_checkpoint
from aisam_monai.io.nifti import check_volume_file
from aisam_monai.networks import AISAM, class_gate, combine_class_masks
from aisam_monai.networks.ai_prompter import BOX_FILL
from aisam_monai.transforms import inference_transforms, sam_input

tqdm, _ = optional_import("tqdm", name="tqdm")

__all__ = ["AISAMPredictor", "PromptPoint", "SlicePrediction", "group_points", "MODES", "EDIT_OPS", "DEFAULT_INTENSITY"]

MODES = ("generalized", "point")
"""``generalized`` (default): the model's generalized point tokens plus appended user points, classes combined by
softmax x class gate (the evaluation path, so an unedited slice gives exactly the automatic result). ``point``:
the authors' demo notebook (docs/interactive.md, point modes): every point, generated ones included, goes through
SAM's ordinary point encoder; each class's mask is ``logit > 0`` (sigmoid > 0.5), no softmax across classes, no
classifier."""

EDIT_OPS = ("add_point", "move_point", "delete_point", "set_box", "set_present_classes", "clear_edits")
"""Names of the edit methods, usable in :meth:`AISAMPredictor.apply_edits`."""

DEFAULT_INTENSITY = {"kind": "per_volume", "lower": 0.5, "upper": 99.5}
"""Intensity mapping to [0, 1] when neither the caller nor the bundle gives one (see
:func:`aisam_monai.transforms.intensity_transform`)."""


@dataclass(frozen=True)
class PromptPoint:
    """One prompt point of a slice: ``(x, y)`` = (column, row) in slice pixels, its class and role."""

    x: float
    y: float
    class_id: int
    positive: bool = True
    generated: bool = False


@dataclass
class SlicePrediction:
    """
    Result for one slice, on the slice's own pixel grid ``H x W``.

    Attributes:
        labels: ``(H, W)`` int64 label map.
        masks: ``(C, H, W)`` bool mask of every class (disjoint in ``generalized`` mode, possibly overlapping
            in ``point`` mode; ``masks[0]`` is where no foreground class is).
        presence: ``(C,)`` classifier presence probabilities (1 for the background; all 1 without a classifier).
        present: ``(C,)`` bool classes allowed in the result: the classifier's decision (``generalized`` mode)
            or all classes (``point`` mode), with the user's declarations applied.
        points: ``(C, K, 2)`` prompt points ``(x, y)`` grouped by class, padded.
        point_labels: ``(C, K)``: 1 positive, 0 negative, -1 padding (the layout of
            :func:`aisam_monai.visualize.plot_slices`).
        point_ids: ``(C, K)`` ids for :meth:`AISAMPredictor.move_point` / ``delete_point``, -1 padding.
        point_generated: ``(C, K)`` True for the model's generated points.
    """

    labels: torch.Tensor
    masks: torch.Tensor
    presence: torch.Tensor
    present: torch.Tensor
    points: torch.Tensor
    point_labels: torch.Tensor
    point_ids: torch.Tensor
    point_generated: torch.Tensor


@dataclass
class _SliceEdits:
    """User edits of one slice; generated points are referred to by id ``c * Np + n``."""

    added: dict[int, PromptPoint] = field(default_factory=dict)
    moved: dict[int, tuple[float, float]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    presence: dict[int, bool] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.added or self.moved or self.deleted or self.boxes or self.presence)


class AISAMPredictor:
    """
    Automatic and interactive segmentation with a trained :class:`~aisam_monai.networks.AISAM`.

    ``set_image`` / ``set_volume`` take the input; each slice's image embedding is computed once and cached
    (least recently used slices beyond ``cache_size`` are dropped and recomputed on demand), so that an edit
    reruns only the prompter and mask decoder. :meth:`predict` gives, per slice, the label map and per-class
    masks on the input's own pixel grid, the class presence and the prompt points (generated ones first)
    in input pixels. Edits (:meth:`add_point`, :meth:`move_point`, :meth:`delete_point`, :meth:`set_box`,
    :meth:`set_present_classes`, :meth:`clear_edits`) each return the updated :class:`SlicePrediction`.

    Coordinates: a slice is ``volume[:, :, k]`` of the ``(H, W, D)`` input (for a file, the voxel array as
    stored); ``(x, y)`` = (column, row) = (index along axis 1, index along axis 0), continuous, pixel centres
    at integers. The slice is resized to the model's ``S x S`` without keeping the aspect ratio; points and
    boxes are mapped with :mod:`aisam_monai.interactive.coordinates`, masks by bilinear resizing of the logits.

    Edited points in the two :data:`MODES`: in ``generalized`` mode user clicks are appended to the generated
    tokens; once a generated point of a slice is moved or deleted, that slice's generated points are passed as
    pixel points (their cell centres) instead, which equals the generalized tokens exactly for the one-hot
    points of a deterministic (hard-point) model. In ``point`` mode every point always goes through the point
    encoder (the demo path). In both modes a positive click or a box for a class declares it present on that
    slice, and classes declared absent are removed.

    Propagation to neighbouring slices (``propagate=n`` on :meth:`set_box`, :meth:`set_present_classes` and
    :meth:`clear_edits`: the ``n`` slices on each side): a box is carried over unchanged (same pixel grid), and
    classes left out of a presence declaration become absent on the neighbours (a declared presence is not
    forced there). Points are never propagated: a click marks anatomy of its own slice, and every slice has its
    own generated points. Neighbours are recomputed when next predicted.

    Args:
        model: a trained AISAM (its ``image_size`` is the model grid ``S``).
        class_names: ``C`` names, background first (default ``class_0 ...``).
        intensity: mapping of raw intensities to [0, 1] as the bundle's preprocessing does
            (:func:`aisam_monai.transforms.intensity_transform` spec), applied to whole volumes with the bundles'
            :func:`aisam_monai.transforms.inference_transforms`.
        normalize: SAM pixel mean/std normalisation of the [0, 1] slices (as the bundle's training).
        mode: one of :data:`MODES`.
        threshold: presence threshold of the classifier gate (``generalized`` mode).
        device: where the model runs (default: the model's device).
        batch_size: slices per encoder/decoder call on volumes.
        cache_size: number of slices whose embeddings and results are kept.
        progress: progress bar over the batches of :meth:`predict_volume`.

    Example::

        predictor = AISAMPredictor.from_bundle("bundles/acdc", checkpoint="model.pt")
        predictor.set_volume("case.nii.gz")
        labels = predictor.predict_volume()                    # (H, W, D)
        pred = predictor.add_point(120, 96, "LV", slice_index=4)
        pred = predictor.set_present_classes(["background", "LV"], slice_index=4, propagate=2)
    """

    def __init__(
        self,
        model: AISAM,
        class_names: Sequence[str] | None = None,
        intensity: Mapping | None = None,
        normalize: bool = True,
        mode: str = "generalized",
        threshold: float = 0.5,
        device: str | torch.device | None = None,
        batch_size: int = 8,
        cache_size: int = 32,
        progress: bool = True,
    ) -> None:
        self.model = model.eval()
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.num_classes = model.num_classes
        if self.num_classes > 256:
            raise ValueError(f"label volumes are uint8: at most 256 classes, the model has {self.num_classes}.")
        self.num_points = model.prompter.num_points
        names = list(class_names) if class_names is not None else [f"class_{c}" for c in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for a model with {self.num_classes} classes: {names}.")
        self.class_names = names
        self.intensity = dict(intensity) if intensity is not None else dict(DEFAULT_INTENSITY)
        self.normalize = normalize
        self.threshold = threshold
        self.batch_size = batch_size
        self.cache_size = max(1, cache_size)
        self.progress = progress
        self.mode = mode
        self._volume: torch.Tensor | None = None
        self._batch: set[int] | None = None
        self.meta: dict = {}

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def from_checkpoint(cls, checkpoint: str, config: str | Mapping, **kwargs) -> AISAMPredictor:
        """
        Build the model from ``config`` and load ``checkpoint`` into it.

        Args:
            checkpoint: state dict file (or a dict holding it under ``"model"``, as the bundles save it).
            config: AISAM keyword arguments, as a dict or a YAML/JSON file; a file with a ``network_def`` entry
                is read as a MONAI bundle config (``channel_names`` or ``class_names`` and ``intensity`` are taken
                from it when given).
            kwargs: further :class:`AISAMPredictor` arguments.
        """
        if isinstance(config, Mapping):
            content = dict(config)
        else:
            if not os.path.isfile(config):
                raise FileNotFoundError(f"{config}: model config not found.")
            content = ConfigParser.load_config_file(config)
        if "network_def" in content:
            return cls._from_parser(ConfigParser(content), checkpoint, **kwargs)
        model = AISAM(**content)
        cls._load_weights(model, checkpoint)
        return cls(model, **kwargs)

    @classmethod
    def from_bundle(
        cls, bundle_dir: str, checkpoint: str | None = None, overrides: Mapping | None = None, **kwargs
    ) -> AISAMPredictor:
        """
        Load a bundle folder through its ``configs/inference.yaml`` (or ``.json``): ``network_def``, the class
        names (``channel_names``, or ``class_names`` without the background), the ``intensity`` mapping and the
        ``checkpoint`` entry (the bundle's trained model) unless ``checkpoint`` is given.

        Args:
            bundle_dir: bundle folder, e.g. ``bundles/acdc``.
            checkpoint: checkpoint file overriding the bundle's.
            overrides: config entries to override, e.g. ``{"image_size": 256, "sam_type": "vit_b"}``.
            kwargs: further :class:`AISAMPredictor` arguments.
        """
        found = [os.path.join(bundle_dir, "configs", f"inference.{ext}") for ext in ("yaml", "json")]
        found = [p for p in found if os.path.isfile(p)]
        if not found:
            raise FileNotFoundError(f"{bundle_dir}: not a bundle folder (no configs/inference.yaml or inference.json).")
        parser = ConfigParser()
        parser.read_config(found[0])
        parser["bundle_root"] = bundle_dir
        for key, value in (overrides or {}).items():
            parser[key] = value
        if checkpoint is None:
            checkpoint = parser.get_parsed_content("checkpoint") if "checkpoint" in parser else None
        if checkpoint is None:
            raise ValueError(f"{found[0]}: no checkpoint entry; give the checkpoint file.")
        return cls._from_parser(parser, checkpoint, **kwargs)

    @classmethod
    def _from_parser(cls, parser: ConfigParser, checkpoint: str, **kwargs) -> AISAMPredictor:
        """Model from ``network_def``, class names and intensity from the config unless given, weights loaded."""
        model = parser.get_parsed_content("network_def")
        if "channel_names" in parser:
            kwargs.setdefault("class_names", parser.get_parsed_content("channel_names"))
        elif "class_names" in parser:
            kwargs.setdefault("class_names", ["background", *parser.get_parsed_content("class_names")])
        if "intensity" in parser:
            kwargs.setdefault("intensity", parser.get_parsed_content("intensity"))
        cls._load_weights(model, checkpoint)
        return cls(model, **kwargs)

    @staticmethod
    def _load_weights(model: AISAM, checkpoint: str) -> None:
        """Load ``checkpoint`` into ``model`` after a one-line compatibility check."""
        check_checkpoint(checkpoint, model, key="model")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if isinstance(state.get("model"), dict):
            state = state["model"]
        model.load_state_dict(state)

    # ------------------------------------------------------------------------------------------ input

    @property
    def mode(self) -> str:
        """The way edited points are used, one of :data:`MODES`."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {value!r}.")
        self._mode = value
        self._results: OrderedDict[int, SlicePrediction] = OrderedDict()

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, W, D)`` of the current input."""
        if self._volume is None:
            raise RuntimeError("no input: call set_image() or set_volume() first.")
        return tuple(self._volume.shape)

    def set_image(self, image) -> None:
        """
        Set one 2D slice (array, tensor or MetaTensor ``(H, W)`` or ``(1, H, W)``, raw intensities); slice index 0.
        Its embedding is computed at the first prediction and kept until the next input.
        """
        img = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
        if img.ndim == 3 and img.shape[0] == 1:
            img = img[0]
        if img.ndim != 2:
            raise ValueError(f"set_image expects a 2D slice (H, W) or (1, H, W), got shape {tuple(img.shape)}.")
        self.set_volume(img[..., None])

    def set_volume(self, volume) -> None:
        """
        Set a 3D volume: a NIfTI (or other MONAI-readable) file path, or an array/tensor/MetaTensor ``(H, W, D)``
        or ``(1, H, W, D)`` of raw intensities. Slices are taken along the last axis. Intensities are mapped to
        [0, 1] over the whole volume as the bundle's preprocessing does. Clears all cached embeddings and edits.
        """
        if isinstance(volume, (str, os.PathLike)):
            path = os.fspath(volume)
            check_volume_file(path)
            vol = inference_transforms(self.intensity)({"image": path})["image"]
        else:
            vol = volume if isinstance(volume, torch.Tensor) else torch.as_tensor(np.asarray(volume))
            if vol.ndim == 3:
                vol = vol[None]
            if vol.ndim != 4 or vol.shape[0] != 1:
                raise ValueError(f"set_volume expects a volume (H, W, D) or (1, H, W, D), got {tuple(vol.shape)}.")
            vol = inference_transforms(self.intensity, load=False)({"image": vol.float()})["image"]
        self.meta = dict(vol.meta) if isinstance(vol, MetaTensor) else {}
        self._volume = convert_to_tensor(vol, track_meta=False)[0].float().cpu()
        self._embeddings: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._results = OrderedDict()
        self._auto: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._edits: dict[int, _SliceEdits] = {}

    # ------------------------------------------------------------------------------------------ prediction

    def predict(self, slice_index: int | None = None) -> SlicePrediction:
        """The current result of one slice (automatic plus this slice's edits)."""
        z = self._slice(slice_index)
        if z not in self._results:
            self._run([z])
        self._results.move_to_end(z)
        return self._results[z]

    def predict_volume(self) -> torch.Tensor:
        """
        Label map of every slice, ``(H, W, D)`` uint8 (a MetaTensor with the input's metadata when it had one; one
        byte per voxel, as the NIfTI outputs, for up to 256 classes).
        Slices are encoded and decoded ``batch_size`` at a time; memory stays bounded by the caches.
        """
        h, w, depth = self.shape
        out = torch.zeros((h, w, depth), dtype=torch.uint8)
        starts = range(0, depth, self.batch_size)
        for start in tqdm(starts, desc="slices", unit="batch") if self.progress and depth > 1 else starts:
            for z, pred in self.predict_slices(range(start, min(start + self.batch_size, depth))).items():
                out[..., z] = pred.labels
        return MetaTensor(out, meta=self.meta) if self.meta else out

    def predict_slices(self, slice_indices: Iterable[int]) -> dict[int, SlicePrediction]:
        """Results of several slices; the uncached ones are computed ``batch_size`` slices per model call."""
        zs = [self._slice(z) for z in slice_indices]
        preds = {z: self._results[z] for z in zs if z in self._results}
        todo = [z for z in zs if z not in preds]
        if todo:
            preds.update(self._run(todo))
        return {z: preds[z] for z in zs}

    def generated_points(self, slice_index: int | None = None) -> torch.Tensor:
        """The model's own points of a slice, ``(C, Np, 2)`` ``(x, y)`` in slice pixels (before edits)."""
        z = self._slice(slice_index)
        if z not in self._auto:
            self._run([z])
        return self._auto[z][0]

    def presence(self, slice_index: int | None = None) -> torch.Tensor:
        """Classifier presence probabilities ``(C,)`` of a slice (1 for the background)."""
        z = self._slice(slice_index)
        if z not in self._auto:
            self._run([z])
        return self._auto[z][1]

    # ------------------------------------------------------------------------------------------ edits

    def add_point(
        self, x: float, y: float, class_id: int | str, positive: bool = True, slice_index: int | None = None
    ) -> SlicePrediction:
        """
        Add a click for a class at slice pixel ``(x, y)``: positive (the class is there; it also declares the
        class present on this slice) or negative (the class is not there). A positive click of class ``c`` is a
        negative prompt for every other class. The new point's id is the largest in ``point_ids``.
        """
        z = self._slice(slice_index)
        c = self.class_index(class_id)
        self._check_xy(x, y, z)
        edits = self._edits_of(z)
        new_id = max([self.num_classes * self.num_points - 1, *edits.added]) + 1
        edits.added[new_id] = PromptPoint(float(x), float(y), c, bool(positive))
        if positive:
            edits.presence[c] = True
        return self._changed([z])

    def move_point(self, point_id: int, x: float, y: float, slice_index: int | None = None) -> SlicePrediction:
        """Move any point of the slice (a generated point ``c * Np + n`` or a click) to slice pixel ``(x, y)``."""
        z = self._slice(slice_index)
        self._check_xy(x, y, z)
        edits = self._edits_of(z)
        if point_id in edits.added:
            edits.added[point_id] = replace(edits.added[point_id], x=float(x), y=float(y))
        else:
            self._check_generated_id(point_id, z)
            edits.moved[point_id] = (float(x), float(y))
        return self._changed([z])

    def delete_point(self, point_id: int, slice_index: int | None = None) -> SlicePrediction:
        """Delete any point of the slice (a generated point ``c * Np + n`` or a click)."""
        z = self._slice(slice_index)
        edits = self._edits_of(z)
        if edits.added.pop(point_id, None) is None:
            self._check_generated_id(point_id, z)
            edits.moved.pop(point_id, None)
            edits.deleted.add(point_id)
        return self._changed([z])

    def nearest_point(
        self, x: float, y: float, max_distance: float = 3.0, slice_index: int | None = None
    ) -> int | None:
        """Id of the slice's point nearest to ``(x, y)`` within ``max_distance`` pixels (the demo's removal rule)."""
        pred = self.predict(slice_index)
        valid = pred.point_ids >= 0
        if not valid.any():
            return None
        dist = torch.linalg.vector_norm(pred.points[valid] - torch.tensor([float(x), float(y)]), dim=-1)
        best = int(dist.argmin())
        return int(pred.point_ids[valid][best]) if float(dist[best]) <= max_distance else None

    def set_box(
        self, class_id: int | str, box: Sequence[float] | None, slice_index: int | None = None, propagate: int = 0
    ) -> SlicePrediction:
        """
        Restrict a class to an inclusive slice-pixel box ``(x1, y1, x2, y2)`` (``None`` removes the box): its
        points are chosen inside and its mask is removed outside. Declares the class present on this slice.
        With ``propagate=n`` the same box is set on the ``n`` neighbouring slices on each side.
        """
        z = self._slice(slice_index)
        c = self.class_index(class_id)
        if box is not None:
            if len(box) != 4:
                raise ValueError(f"box must be (x1, y1, x2, y2), got {box}.")
            x1, y1, x2, y2 = (float(v) for v in box)
            self._check_xy(x1, y1, z)
            self._check_xy(x2, y2, z)
            if x2 < x1 or y2 < y1:
                raise ValueError("the box is empty (its end lies before its start); declare the class absent instead.")
        targets = self._neighbours(z, propagate)
        for t in targets:
            edits = self._edits_of(t)
            if box is None:
                edits.boxes.pop(c, None)
            else:
                edits.boxes[c] = (x1, y1, x2, y2)
        if box is not None:
            self._edits_of(z).presence[c] = True
        return self._changed(targets, z)

    def set_present_classes(
        self, classes: Iterable[int | str], slice_index: int | None = None, propagate: int = 0
    ) -> SlicePrediction:
        """
        Declare which classes are present on a slice (the background always is); the others are removed.
        With ``propagate=n`` the classes left out are also declared absent on the ``n`` neighbouring slices on
        each side (presence itself is not propagated).
        """
        z = self._slice(slice_index)
        present = {0} | {self.class_index(c) for c in classes}
        targets = self._neighbours(z, propagate)
        for t in targets:
            edits = self._edits_of(t)
            for c in range(1, self.num_classes):
                if c not in present:
                    edits.presence[c] = False
                elif t == z:
                    edits.presence[c] = True
        return self._changed(targets, z)

    def clear_edits(self, slice_index: int | None = None, propagate: int = 0) -> SlicePrediction:
        """Remove every edit of a slice (and of ``propagate`` neighbours on each side): back to the automatic result."""
        z = self._slice(slice_index)
        targets = self._neighbours(z, propagate)
        for t in targets:
            self._edits.pop(t, None)
        return self._changed(targets, z)

    def apply_edits(self, edits: Iterable[Mapping]) -> list[int]:
        """
        Apply a sequence of edits without predicting in between; returns the sorted indices of the slices whose
        results changed (predict them, or the whole volume, afterwards).

        Args:
            edits: mappings ``{"op": name, **arguments}`` where ``name`` is one of :data:`EDIT_OPS` (the edit
                methods of this class) and the arguments are those of that method.

        Raises:
            ValueError: ``edit N (op): reason`` for the first invalid edit (the earlier ones stay applied).
        """
        self._batch = set()
        try:
            for n, edit in enumerate(edits):
                args = dict(edit)
                op = args.pop("op", None)
                try:
                    if op not in EDIT_OPS:
                        raise ValueError(f"unknown op {op!r}; expected one of {EDIT_OPS}.")
                    getattr(self, op)(**args)
                except (TypeError, ValueError) as e:
                    raise ValueError(f"edit {n} ({op}): {e}") from e
            return sorted(self._batch)
        finally:
            self._batch = None

    def check_edits(self, edits: Iterable[Mapping]) -> None:
        """Raise what :meth:`apply_edits` would raise for ``edits``, leaving the current edits untouched."""
        saved = copy.deepcopy(self._edits), self._results.copy()
        try:
            self.apply_edits(edits)
        finally:
            self._edits, self._results = saved

    def edited_slices(self) -> list[int]:
        """Indices of the slices that carry edits."""
        return sorted(z for z, e in self._edits.items() if not e.is_empty())

    def class_index(self, class_id: int | str) -> int:
        """Class index from an index or a name."""
        if isinstance(class_id, str):
            if class_id not in self.class_names:
                raise ValueError(f"unknown class {class_id!r}; classes are {self.class_names}.")
            return self.class_names.index(class_id)
        c = int(class_id)
        if not 0 <= c < self.num_classes:
            raise ValueError(f"class {c} does not exist; the classes are 0..{self.num_classes - 1} {self.class_names}.")
        return c

    # ------------------------------------------------------------------------------------------ internals

    def _slice(self, slice_index: int | None) -> int:
        depth = self.shape[2]
        if slice_index is None:
            if depth != 1:
                raise ValueError(f"slice_index is required for a volume of {depth} slices.")
            return 0
        z = int(slice_index)
        if not 0 <= z < depth:
            raise ValueError(f"slice {z} does not exist; the volume has slices 0..{depth - 1}.")
        return z

    def _check_xy(self, x: float, y: float, z: int) -> None:
        h, w, _ = self.shape
        if not (0 <= float(x) <= w - 1 and 0 <= float(y) <= h - 1):
            raise ValueError(f"point ({x}, {y}) on slice {z} is outside the image (x 0..{w - 1}, y 0..{h - 1}).")

    def _check_generated_id(self, point_id: int, z: int) -> None:
        n = self.num_classes * self.num_points
        if not 0 <= int(point_id) < n or int(point_id) in self._edits_or_none(z).deleted:
            raise ValueError(f"slice {z} has no point with id {point_id}.")

    def _neighbours(self, z: int, propagate: int) -> list[int]:
        if int(propagate) < 0:
            raise ValueError(f"propagate must be >= 0, got {propagate}.")
        return list(range(max(0, z - int(propagate)), min(self.shape[2], z + int(propagate) + 1)))

    def _edits_of(self, z: int) -> _SliceEdits:
        """The edits of slice ``z``, created for editing."""
        return self._edits.setdefault(z, _SliceEdits())

    def _edits_or_none(self, z: int) -> _SliceEdits:
        """The edits of slice ``z`` for reading (an empty record when it has none)."""
        return self._edits.get(z) or _SliceEdits()

    def _changed(self, slices: list[int], z: int | None = None) -> SlicePrediction | None:
        """Invalidate the results of ``slices``; the updated result of slice ``z`` (none while applying a batch)."""
        for t in slices:
            self._results.pop(t, None)
        if self._batch is not None:
            self._batch.update(slices)
            return None
        return self.predict(slices[0] if z is None else z)

    def _model_input(self, zs: list[int]) -> torch.Tensor:
        """Slices ``zs`` -> normalised model input ``(B, 3, S, S)`` on the device."""
        x = self._volume[..., zs].permute(2, 0, 1).unsqueeze(1).to(self.device)
        return sam_input(x, self.model.image_size, self.normalize)

    def _embed(self, zs: list[int]) -> torch.Tensor:
        """Embeddings ``(B, D, h, w)`` of slices ``zs``, encoding the uncached ones in one call."""
        missing = [z for z in zs if z not in self._embeddings]
        if missing:
            with torch.no_grad():
                emb = self.model.encode(self._model_input(missing))
            for z, e in zip(missing, emb):
                self._embeddings[z] = e
        for z in zs:
            self._embeddings.move_to_end(z)
        stacked = torch.stack([self._embeddings[z] for z in zs])
        while len(self._embeddings) > max(self.cache_size, len(zs)):
            self._embeddings.popitem(last=False)
        return stacked

    def _slice_points(self, z: int) -> list[tuple[int, PromptPoint]]:
        """All points of slice ``z`` as ``(id, point)``: generated ones (moved, deleted applied), then clicks."""
        generated = self._auto[z][0]
        edits = self._edits_or_none(z)
        out = []
        for c in range(self.num_classes):
            for n in range(self.num_points):
                pid = c * self.num_points + n
                if pid in edits.deleted:
                    continue
                x, y = edits.moved.get(pid, tuple(generated[c, n].tolist()))
                out.append((pid, PromptPoint(x, y, c, True, True)))
        return out + sorted(edits.added.items())

    def _point_mode(self, z: int) -> str:
        edits = self._edits_or_none(z)
        if self.mode == "generalized" and not (edits.moved or edits.deleted):
            return "generalized"
        return "none"

    def _prompts(self, zs: list[int], point_mode: str) -> tuple[dict, torch.Tensor | None]:
        """
        Model-frame prompts of slices ``zs`` decoded with ``point_mode`` (generated points included as pixel
        points only for ``"none"``), and their boxes in slice pixels ``(B, C, 4)`` (None without boxes).
        """
        h, w, _ = self.shape
        s = self.model.image_size
        keep = (lambda p: True) if point_mode == "none" else (lambda p: not p.generated)
        grouped = [group_points([(i, p) for i, p in self._slice_points(z) if keep(p)], self.num_classes) for z in zs]
        k = max(g[0].shape[1] for g in grouped)
        points = torch.stack([F.pad(g[0], (0, 0, 0, k - g[0].shape[1])) for g in grouped])
        labels = torch.stack([F.pad(g[1], (0, k - g[1].shape[1]), value=-1) for g in grouped])
        boxes = torch.full((len(zs), self.num_classes, 4), -1.0)
        for i, z in enumerate(zs):
            for c, box in self._edits_or_none(z).boxes.items():
                boxes[i, c] = torch.tensor(box)
        prompts = {"point_mode": point_mode}
        if bool((labels >= 0).any()):
            prompts["points"] = pixel_to_model(points, (h, w), s).to(self.device)
            prompts["point_labels"] = labels.to(self.device)
        has_box = bool((boxes >= 0).any())
        if has_box:
            prompts["boxes"] = box_to_model(boxes, (h, w), s).to(self.device)
        return prompts, boxes if has_box else None

    def _run(self, zs: list[int]) -> dict[int, SlicePrediction]:
        """Predict slices ``zs`` (at most ``batch_size`` per model call) and cache the results."""
        done = {}
        for start in range(0, len(zs), self.batch_size):
            chunk = zs[start : start + self.batch_size]
            emb = self._embed(chunk)
            fresh = [i for i, z in enumerate(chunk) if z not in self._auto]
            outputs = {}
            if fresh:
                with torch.no_grad():
                    out = self.model.decode(emb[fresh])
                self._store_auto([chunk[i] for i in fresh], out)
                if self.mode == "generalized":  # an unedited slice's result is the automatic output
                    unedited = [(j, chunk[i]) for j, i in enumerate(fresh) if self._edits_or_none(chunk[i]).is_empty()]
                    outputs.update({z: (out, j, None) for j, z in unedited})
            for point_mode in ("generalized", "none"):
                group = [i for i, z in enumerate(chunk) if z not in outputs and self._point_mode(z) == point_mode]
                if not group:
                    continue
                prompts, pixel_boxes = self._prompts([chunk[i] for i in group], point_mode)
                with torch.no_grad():
                    out = self.model.decode(emb[group], **prompts)
                outputs.update({chunk[i]: (out, j, pixel_boxes) for j, i in enumerate(group)})
            for z in chunk:
                out, j, pixel_boxes = outputs[z]
                done[z] = self._finish(z, out, j, None if pixel_boxes is None else pixel_boxes[j])
        for z, pred in done.items():
            self._results[z] = pred
        while len(self._results) > self.cache_size:
            self._results.popitem(last=False)
        return done

    def _store_auto(self, zs: list[int], out: dict) -> None:
        h, w, _ = self.shape
        points = model_to_pixel(out["points"].float().cpu(), (h, w), self.model.image_size)
        if out.get("class_logits") is None:
            presence = torch.ones(len(zs), self.num_classes)
        else:
            presence = torch.sigmoid(out["class_logits"].float().cpu())
            presence[:, 0] = 1.0
        for i, z in enumerate(zs):
            self._auto[z] = (points[i], presence[i])

    def _finish(self, z: int, out: dict, j: int, pixel_boxes: torch.Tensor | None) -> SlicePrediction:
        """Slice ``z``'s prediction from entry ``j`` of a decoder output, on the slice's pixel grid."""
        h, w, _ = self.shape
        logits = resize_logits(out["logits"][j : j + 1], (h, w)).cpu()  # (1, C, H, W)
        if pixel_boxes is not None:
            logits = logits.masked_fill(~box_mask(pixel_boxes[None], (h, w)), BOX_FILL)
        class_logits = out.get("class_logits")
        gate = "hard" if self.mode == "generalized" else "none"
        class_logits = None if class_logits is None else class_logits[j : j + 1].cpu()
        present = class_gate(class_logits, self.num_classes, gate, self.threshold).bool()[0]
        for c, flag in self._edits_or_none(z).presence.items():
            present[c] = flag
        present[0] = True
        if self.mode == "generalized":
            labels = combine_class_masks(logits, class_labels=present[None].float())[0, 0]
            masks = F.one_hot(labels, self.num_classes).permute(2, 0, 1).bool()
        else:
            fg = (logits[0, 1:] > 0) & present[1:, None, None]
            labels = torch.where(fg.any(0), logits[0, 1:].masked_fill(~fg, float("-inf")).argmax(0) + 1, 0)
            masks = torch.cat([(labels == 0)[None], fg])
        points, point_labels, point_ids, generated = group_points(self._slice_points(z), self.num_classes)
        return SlicePrediction(labels, masks, self._auto[z][1], present, points, point_labels, point_ids, generated)


def group_points(
    points: list[tuple[int, PromptPoint]], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    ``(id, point)`` pairs -> class-grouped, padded ``points (C, K, 2)``, ``labels (C, K)`` (1/0, -1 padding),
    ``ids (C, K)`` (-1 padding) and ``generated (C, K)``; ``K`` is the largest count of one class (at least 1).
    """
    counts = [0] * num_classes
    for _, p in points:
        counts[p.class_id] += 1
    k = max([1, *counts])
    xy = torch.zeros(num_classes, k, 2)
    labels = torch.full((num_classes, k), -1, dtype=torch.int64)
    ids = torch.full((num_classes, k), -1, dtype=torch.int64)
    generated = torch.zeros(num_classes, k, dtype=torch.bool)
    fill = [0] * num_classes
    for pid, p in points:
        c, n = p.class_id, fill[p.class_id]
        xy[c, n] = torch.tensor([p.x, p.y])
        labels[c, n], ids[c, n], generated[c, n] = int(p.positive), pid, p.generated
        fill[c] += 1
    return xy, labels, ids, generated
