# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""The JSON files of the ``aisam`` tool: edits to apply (``refine``) and prompt points (``segment``, ``refine``).

Both use the voxel indices of the input volume, like the bundles' points files: a slice is ``k``, a position in
it ``[i, j]`` (index along the first and second axis; the predictor's ``(x, y)`` is ``(j, i)``).

Edits file::

    {
      "mode": "generalized",                      (optional: the decode path, "generalized" or "point")
      "edits": [
        {"op": "add_point", "slice": 4, "class": "LV", "at": [60, 71], "positive": true},
        {"op": "move_point", "slice": 4, "class": "Myo", "index": 2, "to": [55, 80]},
        {"op": "delete_point", "slice": 4, "class": "RV", "index": 0},
        {"op": "set_box", "slice": 4, "class": "LV", "box": [40, 50, 80, 95], "propagate": 2},
        {"op": "set_box", "slice": 4, "class": "LV", "box": null},
        {"op": "set_present_classes", "slice": 9, "classes": ["background", "LV"], "propagate": 1},
        {"op": "clear", "slice": 4}
      ]
    }

``class`` is a name or an index; ``index`` is the position of a generated point in that class's list of the
points file (``slices[k]["points"][class]``); ``box`` is ``[i1, j1, i2, j2]`` with inclusive ends; ``propagate``
(default 0) extends the edit to that many neighbouring slices on each side (see
:class:`~aisam_monai.interactive.predictor.AISAMPredictor` for what propagates).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import torch

from aisam_monai.interactive.edit_state import PromptPoint, group_points
from aisam_monai.interactive.predictor import AISAMPredictor
from aisam_monai.interactive.slice_decoding import DECODE_PATHS
from aisam_monai.io.points_record import points_record

__all__ = ["read_edits", "translate_edit", "prompts_record", "slice_points_from_record"]

_FIELDS = {
    "add_point": ({"slice", "class", "at"}, {"positive"}),
    "move_point": ({"slice", "class", "index", "to"}, set()),
    "delete_point": ({"slice", "class", "index"}, set()),
    "set_box": ({"slice", "class", "box"}, {"propagate"}),
    "set_present_classes": ({"slice", "classes"}, {"propagate"}),
    "clear": ({"slice"}, {"propagate"}),
}


def _ij(value, what: str) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
        raise ValueError(f"{what} must be [i, j] (two numbers), got {value!r}.")
    return float(value[0]), float(value[1])


def translate_edit(edit: Mapping, predictor: AISAMPredictor) -> dict:
    """One edit of the file -> keyword arguments of the predictor's edit method (``op`` included)."""
    op = edit.get("op")
    if op not in _FIELDS:
        raise ValueError(f"unknown op {op!r}; expected one of {sorted(_FIELDS)}.")
    required, optional = _FIELDS[op]
    given = set(edit) - {"op"}
    if required - given:
        raise ValueError(f"missing {sorted(required - given)}.")
    if given - required - optional:
        raise ValueError(f"unexpected {sorted(given - required - optional)}; {op} takes {sorted(required | optional)}.")
    if not isinstance(edit["slice"], int) or isinstance(edit["slice"], bool):
        raise ValueError(f"slice must be an integer, got {edit['slice']!r}.")
    args: dict = {"slice_index": edit["slice"]}
    if "propagate" in edit:
        args["propagate"] = edit["propagate"]
    if op in ("move_point", "delete_point"):
        c = predictor.class_index(edit["class"])
        n = edit["index"]
        if not isinstance(n, int) or not 0 <= n < predictor.num_points:
            raise ValueError(f"index must be a generated point index in 0..{predictor.num_points - 1}, got {n!r}.")
        args["point_id"] = c * predictor.num_points + n
    if op == "add_point":
        i, j = _ij(edit["at"], "at")
        args.update(x=j, y=i, class_id=edit["class"], positive=bool(edit.get("positive", True)))
    elif op == "move_point":
        i, j = _ij(edit["to"], "to")
        args.update(x=j, y=i)
    elif op == "set_box":
        box = edit["box"]
        if box is not None:
            if not (isinstance(box, (list, tuple)) and len(box) == 4):
                raise ValueError(f"box must be [i1, j1, i2, j2] or null, got {box!r}.")
            i1, j1 = _ij(box[:2], "box start")
            i2, j2 = _ij(box[2:], "box end")
            box = (j1, i1, j2, i2)
        args.update(class_id=edit["class"], box=box)
    elif op == "set_present_classes":
        if not isinstance(edit["classes"], list):
            raise ValueError(f"classes must be a list, got {edit['classes']!r}.")
        args["classes"] = edit["classes"]
    return {"op": "clear_edits" if op == "clear" else op, **args}


def read_edits(path: str, predictor: AISAMPredictor) -> tuple[str | None, list[dict]]:
    """
    Read and check an edits file against the predictor's classes and the current input's shape.

    Returns:
        the file's ``mode``: the decode path (one of :data:`~aisam_monai.interactive.slice_decoding.DECODE_PATHS`,
        None when absent), and the edits as arguments of
        :meth:`~aisam_monai.interactive.predictor.AISAMPredictor.apply_edits`.

    Raises:
        FileNotFoundError: missing file.
        ValueError: ``PATH: ...`` for invalid JSON, an unknown op or field, a class, slice or point index that does
            not exist, or a point or box outside the image (the edits are tried on a copy of the predictor's
            :class:`~aisam_monai.interactive.edit_state.EditState`, so nothing is encoded).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: edits file not found.")
    try:
        with open(path) as f:
            content = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}).") from e
    if isinstance(content, list):
        content = {"edits": content}
    if not isinstance(content, dict) or not isinstance(content.get("edits"), list):
        raise ValueError(f'{path}: expected {{"edits": [...]}} or a list of edits.')
    if set(content) - {"edits", "mode"}:
        raise ValueError(f"{path}: unexpected top-level keys {sorted(set(content) - {'edits', 'mode'})}.")
    decode_path = content.get("mode")
    if decode_path is not None and decode_path not in DECODE_PATHS:
        raise ValueError(f"{path}: mode (the decode path) must be one of {DECODE_PATHS}, got {decode_path!r}.")
    edits = []
    for n, edit in enumerate(content["edits"]):
        try:
            if not isinstance(edit, dict):
                raise ValueError(f"expected an object, got {edit!r}.")
            edits.append(translate_edit(edit, predictor))
        except ValueError as e:
            raise ValueError(f"{path}: edit {n} ({edit.get('op') if isinstance(edit, dict) else '?'}): {e}") from e
    try:
        predictor.check_edits(edits)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return decode_path, edits


def prompts_record(predictor: AISAMPredictor, image: str, slices: list[int] | None = None) -> dict:
    """
    JSON-ready points file of the predictor's current input: the bundles' points record (every slice's generated
    points and presence, :func:`aisam_monai.io.points_record.points_record`) plus, for each slice in
    ``slices`` (default: the edited ones), ``"present"``: the classes allowed in its result, and ``"prompts"``:
    every current prompt point as ``{"id", "class", "ijk", "positive", "generated"}``.
    """
    h, w, depth = predictor.shape
    generated = torch.stack([predictor.generated_points(z) for z in range(depth)])  # (D, C, Np, 2) (x, y)
    k = torch.arange(depth, dtype=torch.float32).view(-1, 1, 1).expand(generated.shape[:3])
    ijk = torch.stack([generated[..., 1], generated[..., 0], k], -1)
    probs = torch.stack([predictor.presence(z) for z in range(depth)])
    record = points_record(ijk, probs, predictor.class_names, image, (h, w, depth), slice_axis=2)
    for z in predictor.edited_slices() if slices is None else slices:
        pred = predictor.predict(z)
        record["slices"][z]["present"] = [n for n, flag in zip(predictor.class_names, pred.present.tolist()) if flag]
        valid = pred.point_ids >= 0
        cls = torch.arange(predictor.num_classes).view(-1, 1).expand_as(valid)[valid]
        record["slices"][z]["prompts"] = [
            {
                "id": int(pid),
                "class": predictor.class_names[int(c)],
                "ijk": [round(float(xy[1]), 3), round(float(xy[0]), 3), z],
                "positive": bool(lab == 1),
                "generated": bool(gen),
            }
            for pid, c, xy, lab, gen in zip(
                pred.point_ids[valid], cls, pred.points[valid], pred.point_labels[valid], pred.point_generated[valid]
            )
        ]
    return record


def slice_points_from_record(record: Mapping, slice_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The points of one slice of a points file as ``(C, K, 2)`` ``(x, y)`` with labels ``(C, K)`` (1/0, -1 padding),
    for :func:`aisam_monai.visualize.plot_slices`: the slice's ``"prompts"`` when present, else its generated
    ``"points"`` (all positive for their class). Points of a foreground class absent from the slice (not in its
    ``"present"`` list, or presence probability <= 0.5) get label -1, so that they are not drawn.
    """
    names = list(record["classes"])
    entry = next((s for s in record["slices"] if s["index"] == slice_index), None)
    if entry is None:
        raise ValueError(f"the points file has no slice {slice_index}.")
    if "present" in entry:
        present = set(entry["present"])
    else:
        present = {n for n, prob in entry.get("presence", {}).items() if prob is None or prob > 0.5} | {names[0]}
    if "prompts" in entry:
        items = [(names.index(p["class"]), p["ijk"], 1 if p["positive"] else 0) for p in entry["prompts"]]
    else:
        items = [(names.index(name), ijk, 1) for name, pts in entry["points"].items() for ijk in pts]
    pairs = [(n, PromptPoint(float(ijk[1]), float(ijk[0]), c, lab == 1)) for n, (c, ijk, lab) in enumerate(items)]
    points, labels, _, _ = group_points(pairs, len(names))
    absent = torch.tensor([name not in present for name in names])
    return points, labels.masked_fill(absent[:, None], -1)
