# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Loading and checking a prepared dataset (``datalist.json``) and inference inputs, before any long work."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from monai.data import load_decathlon_datalist

from aisam_monai.data.cases import DATALIST_NAME
from aisam_monai.io.checks import check_label_file, check_volume_file
from aisam_monai.io.errors import reported

__all__ = ["load_datalist", "dataset_info", "dataset_intensity", "inference_items"]

_PREPARE_HINT = "prepare it with `python -m aisam_monai.data.prepare` or run `python -m aisam_monai.quickstart`"


def _datalist_path(dataset_dir: str) -> str:
    if not os.path.isdir(dataset_dir):
        raise reported(FileNotFoundError(f"{dataset_dir}: dataset folder not found; {_PREPARE_HINT}."))
    path = os.path.join(dataset_dir, DATALIST_NAME)
    if not os.path.isfile(path):
        raise reported(FileNotFoundError(f"{path}: no {DATALIST_NAME} in the dataset folder; {_PREPARE_HINT}."))
    return path


def dataset_info(dataset_dir: str) -> dict:
    """Every non-list entry of the datalist (``labels``, ``num_classes``, ``intensity``, ``slice_axis``, ...)."""
    with open(_datalist_path(dataset_dir)) as f:
        content = json.load(f)
    return {k: v for k, v in content.items() if not isinstance(v, list)}


def dataset_intensity(dataset_dir: str, default: Mapping) -> dict:
    """The datalist's ``intensity`` entry when ``dataset_dir`` holds a datalist (the mapping used in training),
    else ``default`` (inference on files without a prepared dataset)."""
    if os.path.isfile(os.path.join(dataset_dir, DATALIST_NAME)):
        return dict(dataset_info(dataset_dir).get("intensity", default))
    return dict(default)


def load_datalist(
    dataset_dir: str,
    split: str = "training",
    num_classes: int | None = None,
    check_splits: Sequence[str] = (),
    check_contents: bool = True,
) -> list[dict]:
    """
    Items of one split of ``dataset_dir/datalist.json`` with absolute ``image``/``label`` paths.

    Every file of ``split`` and of ``check_splits`` must exist and pass the input checks (images:
    :func:`~aisam_monai.io.checks.check_volume_file`, finite intensities; labels:
    :func:`~aisam_monai.io.checks.check_label_file`, the image's grid and values below ``num_classes``), and the
    datalist's ``num_classes`` must match; otherwise one line names the file and what was expected.

    Args:
        dataset_dir: folder written by ``python -m aisam_monai.data.prepare``.
        split: ``"training"``, ``"validation"`` or ``"test"``.
        num_classes: expected number of classes (background included), checked when given.
        check_splits: further splits whose files are checked as well (e.g. the validation split at training).
        check_contents: read every listed file through the checks (False: only their existence; for callers that
            check the files themselves).

    Raises:
        FileNotFoundError: missing folder, datalist or listed file.
        ValueError: unknown or empty split, other class count.
    """
    path = _datalist_path(dataset_dir)
    info = dataset_info(dataset_dir)
    if num_classes is not None and info.get("num_classes", num_classes) != num_classes:
        raise reported(
            ValueError(f"{path}: the dataset has {info['num_classes']} classes, the bundle expects {num_classes}.")
        )
    with open(path) as f:
        content = json.load(f)
    items = {}
    for name in dict.fromkeys([split, *check_splits]):
        if not isinstance(content.get(name), list):
            raise reported(ValueError(f"{path}: no {name!r} list."))
        if not content[name]:
            raise reported(ValueError(f"{path}: the {name!r} list is empty."))
        items[name] = load_decathlon_datalist(path, is_segmentation=True, data_list_key=name, base_dir=dataset_dir)
        for item in items[name]:
            for key in ("image", "label"):
                if key in item and not os.path.isfile(item[key]):
                    raise reported(FileNotFoundError(f"{item[key]}: listed in {path} ({name}) but missing."))
        for item in items[name] if check_contents else ():
            shape = check_volume_file(item["image"]).shape
            if "label" in item:
                check_label_file(item["label"], num_classes or info.get("num_classes", 256), shape)
    return items[split]


def inference_items(
    dataset_dir: str, input_image: str | Sequence[str] | None = None, split: str = "test", nonfinite: str = "error"
) -> list[dict]:
    """
    Inference inputs: ``input_image`` (one path or a list) when given, else the ``split`` list of the dataset;
    every file passes :func:`~aisam_monai.io.checks.check_volume_file` (with the ``nonfinite`` policy) before
    inference starts.
    """
    if input_image:
        paths = [input_image] if isinstance(input_image, str) else list(input_image)
        items = [{"image": os.path.abspath(p)} for p in paths]
    else:
        items = [{"image": item["image"]} for item in load_datalist(dataset_dir, split, check_contents=False)]
    for item in items:
        check_volume_file(item["image"], nonfinite, warn=False)  # the reader warns when it reads the file
    return items
