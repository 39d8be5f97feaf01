# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""A trained :class:`~aisam_monai.networks.AISAM` from a bundle folder, or from a config and a checkpoint.

Used by :class:`~aisam_monai.interactive.AISAMPredictor` (``from_bundle`` / ``from_checkpoint``) and so by the
``aisam`` tool (docs/interactive.md). Along with the model come the settings a bundle config gives for using it:
the class names and the intensity mapping of its training data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

import torch
from monai.bundle import ConfigParser

from aisam_monai.io.checkpoint import check_checkpoint
from aisam_monai.io.checks import check_model_settings
from aisam_monai.networks import AISAM

__all__ = ["LoadedModel", "load_weights", "model_from_bundle", "model_from_config"]


class LoadedModel(NamedTuple):
    """
    A model with its weights loaded and the settings of its config (None where the config gives none).

    Attributes:
        model: the AISAM.
        class_names: ``C`` names, background first: the config's ``class_names`` (foreground) after ``background``.
        intensity: the ``intensity`` entry (see :func:`aisam_monai.transforms.intensity_transform`).
    """

    model: AISAM
    class_names: list[str] | None
    intensity: dict | None


def load_weights(model: AISAM, checkpoint: str) -> None:
    """
    Load ``checkpoint`` into ``model`` after a one-line compatibility check
    (:func:`~aisam_monai.handlers.check_checkpoint`).

    Args:
        model: the network to fill.
        checkpoint: state dict file, or a dict holding it under ``"model"`` (as the bundles save it).
    """
    check_checkpoint(checkpoint, model, key="model")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state.get("model"), dict):
        state = state["model"]
    model.load_state_dict(state)


def model_from_config(config: str | Mapping, checkpoint: str) -> LoadedModel:
    """
    Build the model from ``config`` and load ``checkpoint`` into it.

    Args:
        config: AISAM keyword arguments, as a dict or a YAML/JSON file; a file with a ``network_def`` entry is read
            as a MONAI bundle config (its ``class_names``, the foreground classes as in the bundles, and ``intensity``
            are taken from it when given).
        checkpoint: state dict file (see :func:`load_weights`).

    Raises:
        FileNotFoundError: ``config`` is a path that does not exist.
    """
    if isinstance(config, Mapping):
        content = dict(config)
    else:
        if not os.path.isfile(config):
            raise FileNotFoundError(f"{config}: model config not found.")
        content = ConfigParser.load_config_file(config)
    if "network_def" in content:
        return _from_parser(ConfigParser(content), checkpoint)
    check_model_settings(content.get("sam_type", "vit_b"), content.get("image_size", 1024))
    model = AISAM(**content)
    load_weights(model, checkpoint)
    return LoadedModel(model, None, None)


def model_from_bundle(bundle_dir: str, checkpoint: str | None = None, overrides: Mapping | None = None) -> LoadedModel:
    """
    Load a bundle folder through its ``configs/inference.yaml`` (or ``.json``): ``network_def``, the class names
    (``class_names``, without the background), the ``intensity`` mapping and the
    ``checkpoint`` entry (the bundle's trained model) unless ``checkpoint`` is given.

    Args:
        bundle_dir: bundle folder, e.g. ``bundles/acdc``.
        checkpoint: checkpoint file overriding the bundle's.
        overrides: config entries to override, e.g. ``{"image_size": 256, "sam_type": "vit_b"}``.

    Raises:
        FileNotFoundError: no inference config in ``bundle_dir``.
        ValueError: no checkpoint given and none in the config.
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
    return _from_parser(parser, checkpoint)


def _from_parser(parser: ConfigParser, checkpoint: str) -> LoadedModel:
    """Model from ``network_def`` with its weights, and the class names and intensity of the config."""
    check_model_settings(
        parser.get_parsed_content("network_def#sam_type", default="vit_b"),
        parser.get_parsed_content("network_def#image_size", default=1024),
    )
    model = parser.get_parsed_content("network_def")
    class_names = None
    if "class_names" in parser:
        class_names = ["background", *parser.get_parsed_content("class_names")]
    intensity = dict(parser.get_parsed_content("intensity")) if "intensity" in parser else None
    load_weights(model, checkpoint)
    return LoadedModel(model, class_names, intensity)
