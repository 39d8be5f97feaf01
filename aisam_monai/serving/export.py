# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Export a trained AI-SAM into a self-contained bundle folder, the layout MONAI Label and the Model Zoo load.

    python -m aisam_monai.serving.export bundles/acdc --checkpoint runs/acdc/model.pt --out apps/aisam/model/acdc \\
        [--sam_type vit_b] [--image_size 1024] [--use_lora false] [--num_points 4] [--dataset_dir data/acdc]

The folder gets the bundle's files (``LICENSE``, ``large_files.yml``, ``docs/``, ``configs/``), the network weights
as ``models/model.pt`` (``{"model": state_dict}``, the optimizer and the rest of a training checkpoint dropped) and
``configs/inference.json``: the bundle's ``inference.yaml`` with the model's hyperparameters and the training data's
intensity mapping and slice axis written in, so that it needs neither the dataset nor command-line overrides
(MONAI Label reads ``inference.json`` before ``inference.yaml`` and takes no overrides). The weights are checked
against the network that config builds before anything is written (docs/monailabel.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping, Sequence

import torch
from monai.bundle import ConfigParser

from aisam_monai.data.datalist import dataset_info
from aisam_monai.io.atomic import atomic_write_bytes, atomic_write_json
from aisam_monai.io.checkpoint import check_checkpoint

__all__ = ["export_bundle", "main"]

NETWORK_KEYS = ("sam_type", "image_size", "use_lora", "num_points")
"""Top-level keys of ``inference.yaml`` that must match the training run (``num_classes`` is the bundle's)."""


def export_bundle(
    bundle_dir: str,
    checkpoint: str,
    out_dir: str,
    overrides: Mapping | None = None,
    dataset_dir: str | None = None,
) -> str:
    """
    Write a servable bundle to ``out_dir`` (see the module docstring); returns the path of its ``model.pt``.

    Args:
        bundle_dir: the source bundle (``bundles/acdc`` or ``bundles/synapse``).
        checkpoint: a training checkpoint (``model.pt`` of the best epoch or an epoch checkpoint) or a state dict.
        out_dir: the bundle folder to write (files of a previous export there are replaced).
        overrides: top-level values of ``inference.yaml`` as in the training run, e.g. ``{"sam_type": "tiny"}``.
        dataset_dir: the prepared training dataset, whose intensity mapping is written in (default: the config's).

    Raises:
        FileNotFoundError: no ``configs/inference.yaml`` in ``bundle_dir`` or no checkpoint file.
        ValueError: the checkpoint does not fit the network of the config (another backbone, size or class count).
    """
    source = os.path.join(bundle_dir, "configs", "inference.yaml")
    if not os.path.isfile(source):
        raise FileNotFoundError(f"{bundle_dir}: no configs/inference.yaml; expected an aisam-monai bundle folder.")
    out_dir = os.path.abspath(out_dir)
    config = ConfigParser.load_config_file(source)
    config.update(dict(overrides or {}))
    config["bundle_root"] = out_dir
    default = dict(config["default_intensity"])
    if dataset_dir:  # the training data's mapping and slice axis, so that the served bundle needs no dataset
        info = dataset_info(dataset_dir)
        config["intensity"] = dict(info.get("intensity", default))
        config["slice_axis"] = info.get("slice_axis", config["slice_axis"])
    else:
        config["intensity"] = default
    network = ConfigParser(config).get_parsed_content("network_def")
    check_checkpoint(checkpoint, network, key="model")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = state["model"] if isinstance(state.get("model"), dict) else state

    shutil.copytree(bundle_dir, out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("outputs", "models"))
    os.remove(os.path.join(out_dir, "configs", "inference.yaml"))  # inference.json replaces it
    atomic_write_json(os.path.join(out_dir, "configs", "inference.json"), config)
    model_path = os.path.join(out_dir, "models", "model.pt")
    atomic_write_bytes(model_path, lambda tmp: torch.save({"model": state}, tmp))
    return model_path


def _value(text: str):
    """A command-line value as YAML reads it (``64`` -> int, ``false`` -> bool, ``vit_b`` -> str)."""
    import yaml

    return yaml.safe_load(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aisam_monai.serving.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="source bundle folder, e.g. bundles/acdc")
    parser.add_argument("--checkpoint", required=True, help="trained checkpoint (the training run's model.pt)")
    parser.add_argument("--out", required=True, help="bundle folder to write, e.g. apps/aisam/model/acdc")
    parser.add_argument("--dataset_dir", default=None, help="the prepared training dataset (its intensity mapping)")
    for key in NETWORK_KEYS:
        parser.add_argument(f"--{key}", type=_value, default=None, help="as in the training run")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in NETWORK_KEYS if getattr(args, k) is not None}
    try:
        path = export_bundle(args.bundle, args.checkpoint, args.out, overrides, args.dataset_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
