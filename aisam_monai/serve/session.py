# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
One open volume of the browser editor: an :class:`~aisam_monai.interactive.AISAMPredictor`, the edit log and its
undo/redo history.

The edit log is kept in the format of ``aisam refine``'s edits file (voxel indices ``[i, j]`` of the slice, classes
by name; see :mod:`aisam_monai.interactive.edit_file`), so that saving the log and running ``aisam refine`` on it
reproduces the saved labels exactly: the predictor's edit state is always the log applied to the automatic result.
Appending an edit applies it alone; an edit that rewrites the log (undo, redo, moving or deleting a click) clears the
predictor's edits and applies the whole log again, which reruns only the mask decoder of the edited slices, from the
cached embeddings.
"""

from __future__ import annotations

import base64
import copy
import threading
from collections.abc import Mapping

import numpy as np
import torch

from aisam_monai.interactive.edit_file import translate_edit
from aisam_monai.interactive.predictor import AISAMPredictor
from aisam_monai.io.atomic import atomic_write_json

__all__ = ["EditorSession", "EditError"]

EDITOR_OPS = ("add_point", "move_point", "delete_point", "set_box", "set_present_classes", "clear")
"""Edit requests: the ops of the edits file; ``move_point`` / ``delete_point`` may name any point by ``id``."""


class EditError(ValueError):
    """An edit request that cannot be applied (the message is one line, for the page and the API answer)."""


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


class EditorSession:
    """
    The editor state of one volume.

    Args:
        predictor: a predictor for this volume alone (its own caches and edits; the model may be shared).
        image: path of the volume (NIfTI); read once, checked by ``predictor.set_volume``.
        batch_size: slices per model call while the automatic result of the whole volume is computed.
    """

    def __init__(self, predictor: AISAMPredictor, image: str, batch_size: int = 8) -> None:
        self.predictor = predictor
        self.image = image
        self.batch_size = batch_size
        self.lock = threading.RLock()
        predictor.set_volume(image)
        self.log: list[dict] = []
        self._undo: list[list[dict]] = []
        self._redo: list[list[dict]] = []
        self.done: set[int] = set()

    # ------------------------------------------------------------------------------------------ automatic result

    @property
    def depth(self) -> int:
        return self.predictor.shape[2]

    def compute_next(self, around: int = 0) -> bool:
        """Compute the automatic result of the next batch of slices, nearest ``around`` first; False when done."""
        with self.lock:
            todo = sorted(set(range(self.depth)) - self.done, key=lambda z: (abs(z - around), z))[: self.batch_size]
            if not todo:
                return False
            self.predictor.predict_slices(todo)
            self.done.update(todo)
            return True

    def progress(self) -> dict:
        return {"done": len(self.done), "total": self.depth}

    # ------------------------------------------------------------------------------------------ payloads

    def info(self) -> dict:
        h, w, d = self.predictor.shape
        return {
            "image": self.image,
            "shape": [h, w, d],
            "classes": list(self.predictor.class_names),
            "decode_path": self.predictor.decode_path,
            "num_points": self.predictor.num_points,
            **self.progress(),
        }

    def slice_payload(self, z: int, with_image: bool = True) -> dict:
        """
        Everything the page draws for slice ``z``: the image in ``[0, 1]`` (float32, base64, row-major ``H x W``,
        the intensity mapping of the model's input), the labels (uint8, base64), the points with their ids, classes,
        roles and origin, the classifier's presence and the classes present in the result.
        """
        with self.lock:
            pred = self.predictor.predict(z)
            self.done.add(z)
            valid = pred.point_ids >= 0
            cls = torch.arange(pred.points.shape[0]).view(-1, 1).expand_as(valid)
            points = [
                {
                    "id": int(pid),
                    "class": int(c),
                    "x": float(xy[0]),
                    "y": float(xy[1]),
                    "positive": bool(lab == 1),
                    "generated": bool(gen),
                }
                for pid, c, xy, lab, gen in zip(
                    pred.point_ids[valid],
                    cls[valid],
                    pred.points[valid],
                    pred.point_labels[valid],
                    pred.point_generated[valid],
                )
            ]
            out = {
                "slice": z,
                "labels": _b64(pred.labels.numpy().astype(np.uint8)),
                "points": points,
                "presence": [round(float(p), 4) for p in pred.presence],
                "present": [bool(p) for p in pred.present],
                "edited": z in self.predictor.edited_slices(),
                "can_undo": bool(self._undo),
                "can_redo": bool(self._redo),
            }
            if with_image:
                out["image"] = _b64(self.predictor.slice_image(z).numpy().astype(np.float32))
            return out

    # ------------------------------------------------------------------------------------------ edits

    def edit(self, request: Mapping) -> list[int]:
        """
        Apply one edit request; returns the slices whose result changed.

        ``request`` is an edit of the edits file (``{"op": "add_point", "slice": 4, "class": "LV", "at": [i, j],
        "positive": true}``, ...), except that ``move_point`` and ``delete_point`` may name the point by ``"id"``
        (any point of the slice, generated or clicked) instead of ``"class"`` + ``"index"``.
        """
        request = dict(request)
        with self.lock:
            op = request.get("op")
            if op not in EDITOR_OPS:
                raise EditError(f"unknown op {op!r}; expected one of {list(EDITOR_OPS)}.")
            if op in ("move_point", "delete_point") and "id" in request:
                return self._point_by_id(request)
            return self._append(request)

    def undo(self) -> list[int]:
        with self.lock:
            if not self._undo:
                raise EditError("nothing to undo.")
            self._redo.append(self.log)
            return self._replay(self._undo.pop())

    def redo(self) -> list[int]:
        with self.lock:
            if not self._redo:
                raise EditError("nothing to redo.")
            self._undo.append(self.log)
            return self._replay(self._redo.pop())

    def set_decode_path(self, decode_path: str) -> None:
        with self.lock:
            try:
                self.predictor.decode_path = decode_path
            except ValueError as e:
                raise EditError(str(e)) from None

    def edits_record(self) -> dict:
        """The edit log as an edits file of ``aisam refine``."""
        return {"mode": self.predictor.decode_path, "edits": copy.deepcopy(self.log)}

    def labels(self) -> torch.Tensor:
        """``(H, W, D)`` uint8 labels of the whole volume with the current edits."""
        with self.lock:
            return self.predictor.predict_volume()

    def save_edits(self, path: str) -> None:
        atomic_write_json(path, self.edits_record())

    # ------------------------------------------------------------------------------------------ internals

    def _translate(self, edit: Mapping) -> dict:
        try:
            return translate_edit(edit, self.predictor)
        except ValueError as e:
            raise EditError(f"{edit.get('op')}: {e}") from None

    def _append(self, edit: dict) -> list[int]:
        args = self._translate(edit)
        try:
            changed = self.predictor.apply_edits([args])
        except ValueError as e:
            raise EditError(str(e).removeprefix("edit 0 ")) from None
        self._push()
        self.log = [*self.log, edit]
        return changed

    def _point_by_id(self, request: dict) -> list[int]:
        """Move or delete a point named by id: a generated one by a log entry, a click by rewriting its entry."""
        z, pid = request.get("slice"), request.pop("id")
        if not isinstance(z, int) or not isinstance(pid, int):
            raise EditError("slice and id must be integers.")
        n_generated = self.predictor.num_classes * self.predictor.num_points
        if 0 <= pid < n_generated:
            c, n = divmod(pid, self.predictor.num_points)
            return self._append({**request, "class": self.predictor.class_names[c], "index": n})
        entry = self._click_entries(z).get(pid)
        if entry is None:
            raise EditError(f"slice {z} has no point with id {pid}.")
        log = copy.deepcopy(self.log)
        if request["op"] == "delete_point":
            del log[entry]
        else:
            if set(request) - {"op", "slice", "to"}:
                raise EditError(f"move_point takes slice, id and to; got {sorted(request)}.")
            log[entry]["at"] = request.get("to")
        self._push()
        return self._replay(log, keep_on_error=True)

    def _click_entries(self, z: int) -> dict[int, int]:
        """Point id -> log index of the clicks on slice ``z`` (ids are given in order after the last clear of z)."""
        entries: list[int] = []
        for k, e in enumerate(self.log):
            if e["op"] == "clear" and abs(e["slice"] - z) <= int(e.get("propagate", 0)):
                entries = []
            elif e["op"] == "add_point" and e["slice"] == z:
                entries.append(k)
        first = self.predictor.num_classes * self.predictor.num_points
        return {first + n: k for n, k in enumerate(entries)}

    def _push(self) -> None:
        self._undo.append(self.log)
        self._redo.clear()

    def _replay(self, log: list[dict], keep_on_error: bool = False) -> list[int]:
        """Make ``log`` the edit log: clear the predictor's edits, apply ``log``; returns the slices that changed."""
        args = [self._translate(e) for e in log]
        before = self.predictor.edited_slices()
        clear = [{"op": "clear_edits", "slice_index": z} for z in before]
        try:
            changed = self.predictor.apply_edits(clear + args)
        except ValueError as e:
            self.predictor.apply_edits(
                [{"op": "clear_edits", "slice_index": z} for z in self.predictor.edited_slices()]
                + [self._translate(x) for x in self.log]
            )
            if keep_on_error:
                self._undo.pop()
            raise EditError(str(e).split(": ", 1)[-1]) from None
        self.log = log
        return sorted(set(before) | set(changed))
