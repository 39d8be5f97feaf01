# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Checkpoint files: an upfront check that a checkpoint fits a network (one clear line instead of a long load
error), and the epoch checkpoints of a resumable training."""

from __future__ import annotations

import glob
import os
import re

import torch

from aisam_monai.io.errors import reported

__all__ = ["check_checkpoint", "epoch_checkpoints", "find_last_checkpoint"]

_EPOCH = re.compile(r"checkpoint_epoch=(\d+)\.pt$")


def _model_state(obj: dict, key: str | None) -> dict:
    """The network's state dict inside a checkpoint: ``obj[key]`` when given and present, else ``obj`` itself."""
    if key is not None and key in obj and isinstance(obj[key], dict):
        return obj[key]
    return obj


def check_checkpoint(path: str, network: torch.nn.Module, key: str | None = "model") -> None:
    """
    Raise one clear line when ``path`` cannot be loaded into ``network`` (missing file, other class count, other
    architecture); do nothing when every parameter matches.

    Args:
        path: checkpoint file (a state dict, or a dict holding it under ``key``).
        network: the network (a ``DistributedDataParallel`` wrapper is unwrapped).
        key: entry of the network's state dict in the checkpoint.

    Raises:
        FileNotFoundError: missing file.
        ValueError: a shape mismatch (naming the class count when that is the difference) or missing keys.
    """
    if not os.path.isfile(path):
        raise reported(FileNotFoundError(f"{path}: checkpoint file not found."))
    model = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
    try:
        state = _model_state(torch.load(path, map_location="cpu", weights_only=True), key)
    except Exception as e:  # noqa: BLE001 - truncated, corrupt or not a weights-only file: one line for the user
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise reported(ValueError(f"{path}: not a readable checkpoint ({reason}).")) from None
    expected = model.state_dict()
    num_classes = getattr(model, "num_classes", None)
    for name, value in expected.items():
        if name not in state:
            raise reported(
                ValueError(f"{path}: checkpoint has no parameter {name!r}; it was saved from another network.")
            )
        found = tuple(state[name].shape)
        if found != tuple(value.shape):
            if num_classes is not None and len(found) == value.ndim and found[0] != num_classes == value.shape[0]:
                raise reported(
                    ValueError(
                        f"{path}: checkpoint is for {found[0]} classes but the network has num_classes={num_classes} "
                        f"({name}: {found} vs {tuple(value.shape)})."
                    )
                )
            raise reported(
                ValueError(f"{path}: parameter {name} has shape {found}, the network expects {tuple(value.shape)}.")
            )


def epoch_checkpoints(folder: str) -> list[tuple[int, str]]:
    """``(N, path)`` of every ``*checkpoint_epoch=N.pt`` file in ``folder`` (the files of ``ResumeHandler``)."""
    return [
        (int(m.group(1)), p)
        for p in glob.glob(os.path.join(folder, "*checkpoint_epoch=*.pt"))
        if (m := _EPOCH.search(p))
    ]


def find_last_checkpoint(folder: str) -> str | None:
    """The ``*checkpoint_epoch=N.pt`` file with the largest ``N`` in ``folder``, or ``None``."""
    found = epoch_checkpoints(folder)
    return max(found)[1] if found else None
