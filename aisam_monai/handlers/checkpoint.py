# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Checkpoint loading with an upfront compatibility check, and automatic resume from the last checkpoint."""

from __future__ import annotations

import glob
import logging
import os
import re

import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader

__all__ = ["check_checkpoint", "find_last_checkpoint", "CheckedCheckpointLoader", "ResumeHandler"]

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
        raise FileNotFoundError(f"{path}: checkpoint file not found.")
    model = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
    state = _model_state(torch.load(path, map_location="cpu", weights_only=True), key)
    expected = model.state_dict()
    num_classes = getattr(model, "num_classes", None)
    for name, value in expected.items():
        if name not in state:
            raise ValueError(f"{path}: checkpoint has no parameter {name!r}; it was saved from another network.")
        found = tuple(state[name].shape)
        if found != tuple(value.shape):
            if num_classes is not None and len(found) == value.ndim and found[0] != num_classes == value.shape[0]:
                raise ValueError(
                    f"{path}: checkpoint is for {found[0]} classes but the network has num_classes={num_classes} "
                    f"({name}: {found} vs {tuple(value.shape)})."
                )
            raise ValueError(f"{path}: parameter {name} has shape {found}, the network expects {tuple(value.shape)}.")


def find_last_checkpoint(folder: str) -> str | None:
    """The ``*checkpoint_epoch=N.pt`` file with the largest ``N`` in ``folder``, or ``None``."""
    found = [(int(m.group(1)), p) for p in glob.glob(os.path.join(folder, "*checkpoint_epoch=*.pt")) if (m := _EPOCH.search(p))]
    return max(found)[1] if found else None


class CheckedCheckpointLoader(CheckpointLoader):
    """
    MONAI ``CheckpointLoader`` that checks, when it is built, that the file exists and fits the network
    (:func:`check_checkpoint`), so that a wrong checkpoint fails in one line before any data is loaded.

    Args:
        load_path: checkpoint file.
        load_dict: objects to restore, e.g. ``{"model": network}``; the network is the ``"model"`` entry.
        kwargs: other ``CheckpointLoader`` arguments.
    """

    def __init__(self, load_path: str, load_dict: dict, **kwargs) -> None:
        if "model" in load_dict:
            check_checkpoint(load_path, load_dict["model"], key="model" if len(load_dict) > 1 else None)
        kwargs.setdefault("map_location", "cpu")
        super().__init__(load_path=load_path, load_dict=load_dict, **kwargs)


class ResumeHandler:
    """
    Resume training from the last ``checkpoint_epoch=N.pt`` in ``checkpoint_dir`` when one exists: the network,
    optimiser, scheduler and trainer state (epoch and iteration counters) are restored when the trainer starts,
    so the epoch counter continues. With ``best_saver`` (a ``CheckpointSaver`` saving the best model with
    ``key_metric_save_state=True``) and an existing ``best_filename``, the best-metric tracking is restored too,
    so a worse model after the restart does not replace the best one.

    Args:
        checkpoint_dir: folder of the interval checkpoints (``CheckpointSaver(save_interval=...)``).
        load_dict: objects to restore, e.g. ``{"model": net, "optimizer": opt, "lr_scheduler": s, "trainer": t}``.
        best_saver: optional best-model ``CheckpointSaver`` whose tracking state is restored.
        best_filename: file name of the best model in ``checkpoint_dir``.
        map_location: where tensors are loaded.
    """

    def __init__(
        self,
        checkpoint_dir: str,
        load_dict: dict,
        best_saver=None,
        best_filename: str = "model.pt",
        map_location: str | dict | None = "cpu",
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.load_dict = load_dict
        self.best_saver = best_saver
        self.best_filename = best_filename
        self.map_location = map_location
        self.logger = logging.getLogger("aisam_monai.resume")
        self.path = find_last_checkpoint(checkpoint_dir)
        if self.path is not None and "model" in load_dict:
            check_checkpoint(self.path, load_dict["model"], key="model")

    def attach(self, engine: Engine) -> None:
        if self.path is None:
            return
        CheckpointLoader(self.path, self.load_dict, map_location=self.map_location).attach(engine)
        best = os.path.join(self.checkpoint_dir, self.best_filename)
        if self.best_saver is not None and os.path.isfile(best):
            state = torch.load(best, map_location="cpu", weights_only=True)
            if "checkpointer" in state:
                self.best_saver.load_state_dict(state["checkpointer"])
        engine.add_event_handler(Events.STARTED, self._announce)

    def _announce(self, engine: Engine) -> None:
        self.logger.info(f"resumed from {self.path} at epoch {engine.state.epoch} of {engine.state.max_epochs}")
