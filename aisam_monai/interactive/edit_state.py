# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""The edits of an interactive session: points, boxes and class declarations per slice, with no model.

The interactive use of AI-SAM (arXiv 2312.03119): generated points a person can move, delete or add to
(docs/interactive.md). Every edit method returns the slices whose result it changed, so that
:class:`~aisam_monai.interactive.AISAMPredictor` reruns the decoder on those alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch

__all__ = ["EDIT_OPS", "EditState", "PromptPoint", "SliceEdits", "class_index", "group_points", "nearest_point"]

EDIT_OPS = ("add_point", "move_point", "delete_point", "set_box", "set_present_classes", "clear_edits")
"""Names of the edit methods, usable in :meth:`EditState.apply` and :meth:`AISAMPredictor.apply_edits`."""


@dataclass(frozen=True)
class PromptPoint:
    """One prompt point of a slice: ``(x, y)`` = (column, row) in slice pixels, its class and role."""

    x: float
    y: float
    class_id: int
    positive: bool = True
    generated: bool = False


@dataclass
class SliceEdits:
    """User edits of one slice; generated points are referred to by id ``c * Np + n``."""

    added: dict[int, PromptPoint] = field(default_factory=dict)
    moved: dict[int, tuple[float, float]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    presence: dict[int, bool] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.added or self.moved or self.deleted or self.boxes or self.presence)


def class_index(class_names: Sequence[str], class_id: int | str) -> int:
    """Index of a class given by index or name among ``class_names`` (background first)."""
    if isinstance(class_id, str):
        if class_id not in class_names:
            raise ValueError(f"unknown class {class_id!r}; classes are {list(class_names)}.")
        return list(class_names).index(class_id)
    c = int(class_id)
    if not 0 <= c < len(class_names):
        raise ValueError(f"class {c} does not exist; the classes are 0..{len(class_names) - 1} {list(class_names)}.")
    return c


class EditState:
    """
    The edits of every slice of an ``(H, W, D)`` input: added, moved and deleted points, boxes and the classes
    declared present or absent. Edits are checked against the input's shape and classes (one-line
    ``ValueError``) and each edit method returns the sorted indices of the slices whose result it changed.

    Propagation to neighbouring slices (``propagate=n`` on :meth:`set_box`, :meth:`set_present_classes` and
    :meth:`clear_edits`: the ``n`` slices on each side): a box is carried over unchanged (same pixel grid), and
    classes left out of a presence declaration become absent on the neighbours (a declared presence is not
    forced there). Points are never propagated: a click marks anatomy of its own slice, and every slice has its
    own generated points.

    Args:
        shape: ``(H, W, D)`` of the input; slices are ``volume[:, :, k]``, points ``(x, y)`` = (column, row).
        class_names: ``C`` names, background first.
        num_points: generated points per class ``Np`` (ids ``c * Np + n``; clicks get larger ids).
    """

    def __init__(self, shape: tuple[int, int, int], class_names: Sequence[str], num_points: int) -> None:
        self.shape = tuple(shape)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.num_points = num_points
        self._edits: dict[int, SliceEdits] = {}

    # ------------------------------------------------------------------------------------------ edits

    def add_point(
        self, x: float, y: float, class_id: int | str, positive: bool = True, slice_index: int | None = None
    ) -> list[int]:
        """
        Add a click for a class at slice pixel ``(x, y)``: positive (the class is there; it also declares the
        class present on this slice) or negative (the class is not there). A positive click of class ``c`` is a
        negative prompt for every other class. The new point's id is the largest of the slice.
        """
        z = self.slice_index(slice_index)
        c = class_index(self.class_names, class_id)
        self._check_xy(x, y, z)
        edits = self._edits.setdefault(z, SliceEdits())
        new_id = max([self.num_classes * self.num_points - 1, *edits.added]) + 1
        edits.added[new_id] = PromptPoint(float(x), float(y), c, bool(positive))
        if positive:
            edits.presence[c] = True
        return [z]

    def move_point(self, point_id: int, x: float, y: float, slice_index: int | None = None) -> list[int]:
        """Move any point of the slice (a generated point ``c * Np + n`` or a click) to slice pixel ``(x, y)``."""
        z = self.slice_index(slice_index)
        self._check_xy(x, y, z)
        edits = self._edits.setdefault(z, SliceEdits())
        if point_id in edits.added:
            edits.added[point_id] = replace(edits.added[point_id], x=float(x), y=float(y))
        else:
            self._check_generated_id(point_id, z)
            edits.moved[point_id] = (float(x), float(y))
        return [z]

    def delete_point(self, point_id: int, slice_index: int | None = None) -> list[int]:
        """Delete any point of the slice (a generated point ``c * Np + n`` or a click)."""
        z = self.slice_index(slice_index)
        edits = self._edits.setdefault(z, SliceEdits())
        if edits.added.pop(point_id, None) is None:
            self._check_generated_id(point_id, z)
            edits.moved.pop(point_id, None)
            edits.deleted.add(point_id)
        return [z]

    def set_box(
        self, class_id: int | str, box: Sequence[float] | None, slice_index: int | None = None, propagate: int = 0
    ) -> list[int]:
        """
        Restrict a class to an inclusive slice-pixel box ``(x1, y1, x2, y2)`` (``None`` removes the box): its
        points are chosen inside and its mask is removed outside. Declares the class present on this slice.
        With ``propagate=n`` the same box is set on the ``n`` neighbouring slices on each side.
        """
        z = self.slice_index(slice_index)
        c = class_index(self.class_names, class_id)
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
            edits = self._edits.setdefault(t, SliceEdits())
            if box is None:
                edits.boxes.pop(c, None)
            else:
                edits.boxes[c] = (x1, y1, x2, y2)
        if box is not None:
            self._edits[z].presence[c] = True
        return targets

    def set_present_classes(
        self, classes: Iterable[int | str], slice_index: int | None = None, propagate: int = 0
    ) -> list[int]:
        """
        Declare which classes are present on a slice (the background always is); the others are removed.
        With ``propagate=n`` the classes left out are also declared absent on the ``n`` neighbouring slices on
        each side (presence itself is not propagated).
        """
        z = self.slice_index(slice_index)
        present = {0} | {class_index(self.class_names, c) for c in classes}
        targets = self._neighbours(z, propagate)
        for t in targets:
            edits = self._edits.setdefault(t, SliceEdits())
            for c in range(1, self.num_classes):
                if c not in present:
                    edits.presence[c] = False
                elif t == z:
                    edits.presence[c] = True
        return targets

    def clear_edits(self, slice_index: int | None = None, propagate: int = 0) -> list[int]:
        """Remove every edit of a slice (and of ``propagate`` neighbours on each side): back to the automatic result."""
        targets = self._neighbours(self.slice_index(slice_index), propagate)
        for t in targets:
            self._edits.pop(t, None)
        return targets

    def apply(self, edits: Iterable[Mapping]) -> list[int]:
        """
        Apply a sequence of edits; returns the sorted indices of the slices they changed.

        Args:
            edits: mappings ``{"op": name, **arguments}`` where ``name`` is one of :data:`EDIT_OPS` (the edit
                methods of this class) and the arguments are those of that method.

        Raises:
            ValueError: ``edit N (op): reason`` for the first invalid edit (the earlier ones stay applied).
        """
        changed: set[int] = set()
        for n, edit in enumerate(edits):
            args = dict(edit)
            op = args.pop("op", None)
            try:
                if op not in EDIT_OPS:
                    raise ValueError(f"unknown op {op!r}; expected one of {EDIT_OPS}.")
                changed.update(getattr(self, op)(**args))
            except (TypeError, ValueError) as e:
                raise ValueError(f"edit {n} ({op}): {e}") from e
        return sorted(changed)

    def copy(self) -> EditState:
        """An independent copy (e.g. to try edits on: ``state.copy().apply(edits)``)."""
        return copy.deepcopy(self)

    # ------------------------------------------------------------------------------------------ reading

    def of(self, slice_index: int) -> SliceEdits:
        """The edits of a slice (an empty record when it has none); for reading."""
        return self._edits.get(slice_index) or SliceEdits()

    def edited_slices(self) -> list[int]:
        """Indices of the slices that carry edits."""
        return sorted(z for z, e in self._edits.items() if not e.is_empty())

    def slice_points(self, slice_index: int, generated: torch.Tensor) -> list[tuple[int, PromptPoint]]:
        """
        All points of a slice as ``(id, point)``: its generated points ``(C, Np, 2)`` (slice pixels ``(x, y)``)
        with the moves and deletions applied, then its clicks.
        """
        edits = self.of(slice_index)
        out = []
        for c in range(self.num_classes):
            for n in range(self.num_points):
                pid = c * self.num_points + n
                if pid in edits.deleted:
                    continue
                x, y = edits.moved.get(pid, tuple(generated[c, n].tolist()))
                out.append((pid, PromptPoint(x, y, c, True, True)))
        return out + sorted(edits.added.items())

    def slice_index(self, slice_index: int | None) -> int:
        """A checked slice index (``None`` only for a single slice)."""
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
        if not 0 <= int(point_id) < n or int(point_id) in self.of(z).deleted:
            raise ValueError(f"slice {z} has no point with id {point_id}.")

    def _neighbours(self, z: int, propagate: int) -> list[int]:
        if int(propagate) < 0:
            raise ValueError(f"propagate must be >= 0, got {propagate}.")
        return list(range(max(0, z - int(propagate)), min(self.shape[2], z + int(propagate) + 1)))


def nearest_point(points: list[tuple[int, PromptPoint]], x: float, y: float, max_distance: float = 3.0) -> int | None:
    """
    Id of the point nearest to slice pixel ``(x, y)`` among ``(id, point)`` pairs (e.g.
    :meth:`EditState.slice_points`), or None when none lies within ``max_distance`` pixels (the demo's removal rule).
    """
    if not points:
        return None
    pid, p = min(points, key=lambda item: math.hypot(item[1].x - float(x), item[1].y - float(y)))
    return pid if math.hypot(p.x - float(x), p.y - float(y)) <= max_distance else None


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
