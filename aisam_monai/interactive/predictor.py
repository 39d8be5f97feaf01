# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""Interactive AI-SAM: cached image embeddings, automatic points, and the model rerun on edited slices.

The interactive use of AI-SAM (arXiv 2312.03119): generated points a person can move, delete or add to. The edits
themselves live in :mod:`aisam_monai.interactive.edit_state` and the decode paths in
:mod:`aisam_monai.interactive.slice_decoding`; this module runs the model on what the edits change. It is longer
than most (about 460 lines) because :class:`AISAMPredictor` is the one public object of interactive use: the thin
edit methods that forward to the edit state, with their docstrings, are a third of it, and splitting them off would
only split the API a user reads.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import convert_to_tensor, optional_import

from aisam_monai.interactive.edit_state import EditState, class_index, nearest_point
from aisam_monai.interactive.slice_decoding import (
    DECODE_PATHS,
    AutoResult,
    SlicePrediction,
    decoder_prompts,
    slice_point_mode,
    slice_prediction,
)
from aisam_monai.io.checks import check_image_array, check_nonfinite_policy
from aisam_monai.io.model_loading import LoadedModel, model_from_bundle, model_from_config
from aisam_monai.io.nifti_slabs import NiftiSlabReader
from aisam_monai.networks import AISAM
from aisam_monai.transforms import inference_transforms, to_model_input
from aisam_monai.transforms.slice_geometry import model_to_pixel

tqdm, _ = optional_import("tqdm", name="tqdm")

__all__ = ["AISAMPredictor", "DEFAULT_INTENSITY"]

DEFAULT_INTENSITY = {"kind": "per_volume", "lower": 0.5, "upper": 99.5}
"""Intensity mapping to [0, 1] when neither the caller nor the bundle gives one (see
:func:`aisam_monai.transforms.intensity_transform`)."""


class AISAMPredictor:
    """
    Automatic and interactive segmentation with a trained :class:`~aisam_monai.networks.AISAM`.

    ``set_image`` / ``set_volume`` take the input; each slice's image embedding is computed once and cached
    (least recently used slices beyond ``cache_size`` are dropped and recomputed on demand), so that an edit
    reruns only the prompter and mask decoder, on the slices the edit changed. :meth:`predict` gives, per slice,
    the label map and per-class masks on the input's own pixel grid, the class presence and the prompt points
    (generated ones first) in input pixels. Edits (:meth:`add_point`, :meth:`move_point`, :meth:`delete_point`,
    :meth:`set_box`, :meth:`set_present_classes`, :meth:`clear_edits`; see
    :class:`~aisam_monai.interactive.edit_state.EditState`, also for propagation to neighbouring slices) each
    return the updated :class:`SlicePrediction` of the edited slice; neighbours are recomputed when next predicted.

    Coordinates: a slice is ``volume[:, :, k]`` of the ``(H, W, D)`` input (for a file, the voxel array as
    stored); ``(x, y)`` = (column, row) = (index along axis 1, index along axis 0), continuous, pixel centres
    at integers. The slice is resized to the model's ``S x S`` without keeping the aspect ratio; the model input,
    points, boxes and masks are mapped as in the bundles' :class:`~aisam_monai.inferers.SliceVolumeInferer`
    (:mod:`aisam_monai.transforms.slice_geometry`, :func:`~aisam_monai.transforms.to_model_input`), so unedited
    volumes get the bundles' labels voxel for voxel.

    The two :data:`DECODE_PATHS` for edited points: on ``generalized``, user clicks are appended to the generated
    tokens and the labels are those of :func:`~aisam_monai.networks.combine_class_masks` on the slice grid; once a
    generated point of a slice is moved or deleted, that slice's generated points are passed as pixel points
    (their cell centres) instead, which equals the generalized tokens exactly for the one-hot points of a
    deterministic (hard-point) model. On ``point``, every point always goes through the point encoder (the demo
    path). On both a positive click or a box for a class declares it present on that slice, and classes declared
    absent are removed.

    Args:
        model: a trained AISAM (its ``image_size`` is the model grid ``S``).
        class_names: ``C`` names, background first (default ``class_0 ...``).
        intensity: mapping of raw intensities to [0, 1] as the bundle's preprocessing does
            (an :func:`aisam_monai.transforms.intensity_transform` entry), applied to whole volumes with the bundles'
            :func:`aisam_monai.transforms.inference_transforms`.
        normalize: SAM pixel mean/std normalisation of the [0, 1] slices (as the bundle's training); None: as the
            model's backbone expects (``model.pixel_normalization == "sam"``).
        decode_path: one of :data:`DECODE_PATHS`.
        threshold: presence threshold of the classifier gate (``generalized``).
        device: where the model runs (default: the model's device).
        batch_size: slices per encoder/decoder call on volumes.
        cache_size: number of slices whose embeddings and results are kept.
        progress: progress bar over the batches of :meth:`predict_volume`.
        nonfinite: what NaN and infinite input intensities do, one of
            :data:`~aisam_monai.io.checks.NONFINITE_POLICIES` (``error``: one line; ``fill``: the volume's finite
            extremes, with a warning).

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
        normalize: bool | None = None,
        decode_path: str = "generalized",
        threshold: float = 0.5,
        device: str | torch.device | None = None,
        batch_size: int = 8,
        cache_size: int = 32,
        progress: bool = True,
        nonfinite: str = "error",
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
        self.normalize = normalize if normalize is not None else model.pixel_normalization == "sam"
        self.threshold = threshold
        self.batch_size = batch_size
        self.cache_size = max(1, cache_size)
        self.progress = progress
        self.decode_path = decode_path
        self.nonfinite = check_nonfinite_policy(nonfinite)
        self._volume: torch.Tensor | None = None
        self._edits: EditState | None = None
        self.meta: dict = {}

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def from_checkpoint(cls, checkpoint: str, config: str | Mapping, **kwargs) -> AISAMPredictor:
        """
        A predictor of the model built from ``config`` with ``checkpoint`` loaded
        (:func:`aisam_monai.io.model_loading.model_from_config`: AISAM arguments or a bundle config);
        ``kwargs``: further :class:`AISAMPredictor` arguments, before those of the config.
        """
        return cls._of(model_from_config(config, checkpoint), kwargs)

    @classmethod
    def from_bundle(
        cls, bundle_dir: str, checkpoint: str | None = None, overrides: Mapping | None = None, **kwargs
    ) -> AISAMPredictor:
        """
        A predictor of a bundle folder's model, class names and intensity mapping
        (:func:`aisam_monai.io.model_loading.model_from_bundle`; ``checkpoint`` overrides the bundle's,
        ``overrides`` its config entries); ``kwargs``: further :class:`AISAMPredictor` arguments, before the bundle's.
        """
        return cls._of(model_from_bundle(bundle_dir, checkpoint, overrides), kwargs)

    @classmethod
    def _of(cls, loaded: LoadedModel, kwargs: dict) -> AISAMPredictor:
        for key in ("class_names", "intensity"):
            if getattr(loaded, key) is not None:
                kwargs.setdefault(key, getattr(loaded, key))
        return cls(loaded.model, **kwargs)

    def fresh(self) -> AISAMPredictor:
        """A new predictor with the same model (shared, not copied) and settings, and no input yet."""
        return type(self)(
            self.model,
            class_names=self.class_names,
            intensity=self.intensity,
            normalize=self.normalize,
            decode_path=self.decode_path,
            threshold=self.threshold,
            device=self.device,
            batch_size=self.batch_size,
            cache_size=self.cache_size,
            progress=False,
            nonfinite=self.nonfinite,
        )

    # ------------------------------------------------------------------------------------------ input

    @property
    def decode_path(self) -> str:
        """How edited points reach the decoder, one of :data:`DECODE_PATHS`."""
        return self._decode_path

    @decode_path.setter
    def decode_path(self, value: str) -> None:
        if value not in DECODE_PATHS:
            raise ValueError(f"decode_path must be one of {DECODE_PATHS}, got {value!r}.")
        self._decode_path = value
        self._results: OrderedDict[int, SlicePrediction] = OrderedDict()

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, W, D)`` of the current input."""
        return self.edits.shape

    @property
    def edits(self) -> EditState:
        """The edits of the current input."""
        if self._edits is None:
            raise RuntimeError("no input: call set_image() or set_volume() first.")
        return self._edits

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
        Set a 3D volume: a NIfTI file path, or an array/tensor/MetaTensor ``(H, W, D)`` or ``(1, H, W, D)`` of raw
        intensities. Slices are taken along the last axis. Intensities are mapped to [0, 1] over the whole volume as
        the bundle's preprocessing does: a file is read by the bundles' reader
        (:class:`~aisam_monai.io.nifti_slabs.NiftiSlabReader`, with its checks and exact per-volume percentiles), so
        the predictor and the bundles' inference see the same values. Clears all cached embeddings and edits.

        Raises:
            FileNotFoundError, ValueError: a bad input (one line naming the file, :mod:`aisam_monai.io.checks`).
        """
        if isinstance(volume, (str, os.PathLike)):
            reader = NiftiSlabReader(volume, self.intensity, slice_axis=2, nonfinite=self.nonfinite)
            vol = torch.from_numpy(np.concatenate([slab for _, slab in reader], axis=-1))
            self.meta = {"filename_or_obj": reader.path, "affine": torch.as_tensor(reader.affine)}
        else:
            vol = volume if isinstance(volume, torch.Tensor) else torch.as_tensor(np.asarray(volume))
            meta = dict(vol.meta) if isinstance(vol, MetaTensor) else {}
            vol = convert_to_tensor(vol, track_meta=False)
            vol = vol[0] if vol.ndim == 4 and vol.shape[0] == 1 else vol
            array = vol.detach().cpu().numpy()
            filled = check_image_array(array, "set_volume", self.nonfinite, what="volume (H, W, D)")
            vol = inference_transforms(self.intensity, load=False)({"image": torch.as_tensor(filled)[None].float()})
            vol, self.meta = convert_to_tensor(vol["image"], track_meta=False)[0], meta
        self._volume = vol.float().cpu()
        # per slice: the image embedding and what the prompter computes from it alone (AISAM.prompter_logits)
        self._embeddings: OrderedDict[int, tuple[torch.Tensor, dict]] = OrderedDict()
        self._results = OrderedDict()
        self._auto: dict[int, AutoResult] = {}
        self._edits = EditState(tuple(self._volume.shape), self.class_names, self.num_points)

    # ------------------------------------------------------------------------------------------ prediction

    def slice_image(self, slice_index: int | None = None) -> torch.Tensor:
        """``(H, W)`` intensities of a slice mapped to [0, 1] (the model's input before resizing)."""
        return self._volume[..., self.edits.slice_index(slice_index)]

    def predict(self, slice_index: int | None = None) -> SlicePrediction:
        """The current result of one slice (automatic plus this slice's edits)."""
        z = self.edits.slice_index(slice_index)
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
        zs = [self.edits.slice_index(z) for z in slice_indices]
        preds = {z: self._results[z] for z in zs if z in self._results}
        todo = [z for z in zs if z not in preds]
        if todo:
            preds.update(self._run(todo))
        return {z: preds[z] for z in zs}

    def generated_points(self, slice_index: int | None = None) -> torch.Tensor:
        """The model's own points of a slice, ``(C, Np, 2)`` ``(x, y)`` in slice pixels (before edits)."""
        return self._auto_result(slice_index).points

    def presence(self, slice_index: int | None = None) -> torch.Tensor:
        """Classifier presence probabilities ``(C,)`` of a slice (1 for the background)."""
        return self._auto_result(slice_index).presence

    def nearest_point(
        self, x: float, y: float, max_distance: float = 3.0, slice_index: int | None = None
    ) -> int | None:
        """Id of the slice's point nearest to ``(x, y)`` within ``max_distance`` pixels (the demo's removal rule)."""
        z = self.edits.slice_index(slice_index)
        return nearest_point(self.edits.slice_points(z, self.generated_points(z)), x, y, max_distance)

    # ------------------------------------------------------------------------------------------ edits

    def add_point(
        self, x: float, y: float, class_id: int | str, positive: bool = True, slice_index: int | None = None
    ) -> SlicePrediction:
        """Add a click (:meth:`~aisam_monai.interactive.edit_state.EditState.add_point`); the slice's new result."""
        return self._edited(self.edits.add_point(x, y, class_id, positive, slice_index), slice_index)

    def move_point(self, point_id: int, x: float, y: float, slice_index: int | None = None) -> SlicePrediction:
        """Move a point (:meth:`~aisam_monai.interactive.edit_state.EditState.move_point`); the slice's new result."""
        return self._edited(self.edits.move_point(point_id, x, y, slice_index), slice_index)

    def delete_point(self, point_id: int, slice_index: int | None = None) -> SlicePrediction:
        """Delete a point (:meth:`~aisam_monai.interactive.edit_state.EditState.delete_point`); the new result."""
        return self._edited(self.edits.delete_point(point_id, slice_index), slice_index)

    def set_box(
        self, class_id: int | str, box: Sequence[float] | None, slice_index: int | None = None, propagate: int = 0
    ) -> SlicePrediction:
        """Set a class's box (:meth:`~aisam_monai.interactive.edit_state.EditState.set_box`); the slice's new result."""
        return self._edited(self.edits.set_box(class_id, box, slice_index, propagate), slice_index)

    def set_present_classes(
        self, classes: Iterable[int | str], slice_index: int | None = None, propagate: int = 0
    ) -> SlicePrediction:
        """Declare the present classes (:meth:`~aisam_monai.interactive.edit_state.EditState.set_present_classes`);
        the slice's new result."""
        return self._edited(self.edits.set_present_classes(classes, slice_index, propagate), slice_index)

    def clear_edits(self, slice_index: int | None = None, propagate: int = 0) -> SlicePrediction:
        """Clear edits (:meth:`~aisam_monai.interactive.edit_state.EditState.clear_edits`); the slice's new result."""
        return self._edited(self.edits.clear_edits(slice_index, propagate), slice_index)

    def apply_edits(self, edits: Iterable[Mapping]) -> list[int]:
        """
        Apply a sequence of edits without predicting (:meth:`EditState.apply
        <aisam_monai.interactive.edit_state.EditState.apply>`: ``{"op": name, **arguments}`` with ``name`` one of
        :data:`EDIT_OPS`); returns the sorted indices of the slices whose results changed (predict them, or the
        whole volume, afterwards).

        Raises:
            ValueError: ``edit N (op): reason`` for the first invalid edit (the earlier ones stay applied).
        """
        try:
            return self._forget(self.edits.apply(edits))
        except ValueError:
            self._results.clear()  # the edits before the invalid one are applied
            raise

    def check_edits(self, edits: Iterable[Mapping]) -> None:
        """Raise what :meth:`apply_edits` would raise for ``edits``: they are applied to a copy of the edits."""
        self.edits.copy().apply(edits)

    def edited_slices(self) -> list[int]:
        """Indices of the slices that carry edits."""
        return self.edits.edited_slices()

    def class_index(self, class_id: int | str) -> int:
        """Class index from an index or a name."""
        return class_index(self.class_names, class_id)

    # ------------------------------------------------------------------------------------------ internals

    def _forget(self, slices: list[int]) -> list[int]:
        """Drop the cached results of ``slices`` (returned)."""
        for z in slices:
            self._results.pop(z, None)
        return slices

    def _edited(self, slices: list[int], slice_index: int | None) -> SlicePrediction:
        """Drop the results the edit changed; the new result of the edited slice."""
        self._forget(slices)
        return self.predict(slice_index)

    def _auto_result(self, slice_index: int | None) -> AutoResult:
        z = self.edits.slice_index(slice_index)
        if z not in self._auto:
            self._run([z])
        return self._auto[z]

    def _model_input(self, zs: list[int]) -> torch.Tensor:
        """Slices ``zs`` -> normalised model input ``(B, 3, S, S)`` on the device."""
        slices = self._volume[..., zs].permute(2, 0, 1).unsqueeze(1).to(self.device)
        return to_model_input(slices, self.model.image_size, self.normalize)

    def _embed(self, zs: list[int]) -> tuple[torch.Tensor, dict]:
        """
        Embeddings ``(B, D, h, w)`` of slices ``zs`` and their prompter logits (:meth:`AISAM.prompter_logits`),
        encoding the uncached ones in one call; an edit then reruns neither the encoder nor the prompter's
        transformer and classifier.
        """
        missing = [z for z in zs if z not in self._embeddings]
        if missing:
            with torch.no_grad():
                emb = self.model.encode(self._model_input(missing))
                logits = self.model.prompter_logits(emb)
            for i, z in enumerate(missing):
                self._embeddings[z] = (emb[i], {k: None if v is None else v[i] for k, v in logits.items()})
        for z in zs:
            self._embeddings.move_to_end(z)
        cached = [self._embeddings[z] for z in zs]
        stacked = torch.stack([e for e, _ in cached])
        keys = cached[0][1]
        logits = {k: None if keys[k] is None else torch.stack([c[k] for _, c in cached]) for k in keys}
        while len(self._embeddings) > max(self.cache_size, len(zs)):
            self._embeddings.popitem(last=False)
        return stacked, logits

    def _run(self, zs: list[int]) -> dict[int, SlicePrediction]:
        """Predict slices ``zs`` (at most ``batch_size`` per model call) and cache the results."""
        done = {}
        for start in range(0, len(zs), self.batch_size):
            chunk = zs[start : start + self.batch_size]
            emb, logits = self._embed(chunk)
            fresh = [i for i, z in enumerate(chunk) if z not in self._auto]
            outputs = {}
            if fresh:
                with torch.no_grad():
                    out = self.model.decode(emb[fresh], prompter_logits=_rows(logits, fresh))
                self._store_auto([chunk[i] for i in fresh], out)
                if self.decode_path == "generalized":  # an unedited slice's result is the automatic output
                    unedited = [(j, chunk[i]) for j, i in enumerate(fresh) if self.edits.of(chunk[i]).is_empty()]
                    outputs.update({z: (out, j, None) for j, z in unedited})
            todo = {
                i: slice_point_mode(self.decode_path, self.edits, z) for i, z in enumerate(chunk) if z not in outputs
            }
            for point_mode in ("generalized", "none"):
                group = [i for i, m in todo.items() if m == point_mode]
                if not group:
                    continue
                zs_group = [chunk[i] for i in group]
                size = self.model.image_size
                prompts, boxes = decoder_prompts(self.edits, zs_group, self._auto, point_mode, size, self.device)
                with torch.no_grad():
                    out = self.model.decode(emb[group], prompter_logits=_rows(logits, group), **prompts)
                outputs.update({z: (out, j, None if boxes is None else boxes[j]) for j, z in enumerate(zs_group)})
            for z in chunk:
                out, j, boxes = outputs[z]
                done[z] = slice_prediction(
                    out, j, self.edits, z, self._auto[z], self.decode_path, self.threshold, boxes
                )
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
            self._auto[z] = AutoResult(points[i], presence[i])


def _rows(logits: dict, rows: list[int]) -> dict:
    """The ``rows`` of a batch of prompter logits (None entries stay None)."""
    return {k: None if v is None else v[rows] for k, v in logits.items()}
