# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Checkpoint loading with an upfront compatibility check, atomic checkpoint writing, and automatic resume from the
last checkpoint."""

from __future__ import annotations

import glob
import logging
import os
import re

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = [
    "check_checkpoint",
    "find_last_checkpoint",
    "AtomicDiskSaver",
    "AtomicCheckpointSaver",
    "CheckedCheckpointLoader",
    "ResumeHandler",
]

_LOGGER = logging.getLogger("aisam_monai.inputs")
_EPOCH = re.compile(r"checkpoint_epoch=(\d+)\.pt$")
_TEMPORARY = re.compile(r"tmp[a-z0-9_]{8}")  # the temporary name of ignite's atomic DiskSaver (tempfile)


def _reported(error: Exception) -> Exception:
    """Log ``error`` as one ERROR line (visible above the config parser's traceback) and return it for raising."""
    _LOGGER.error(str(error))
    return error


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
        raise _reported(FileNotFoundError(f"{path}: checkpoint file not found."))
    model = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
    try:
        state = _model_state(torch.load(path, map_location="cpu", weights_only=True), key)
    except Exception as e:  # noqa: BLE001 - truncated, corrupt or not a weights-only file: one line for the user
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise _reported(ValueError(f"{path}: not a readable checkpoint ({reason}).")) from None
    expected = model.state_dict()
    num_classes = getattr(model, "num_classes", None)
    for name, value in expected.items():
        if name not in state:
            raise _reported(
                ValueError(f"{path}: checkpoint has no parameter {name!r}; it was saved from another network.")
            )
        found = tuple(state[name].shape)
        if found != tuple(value.shape):
            if num_classes is not None and len(found) == value.ndim and found[0] != num_classes == value.shape[0]:
                raise _reported(
                    ValueError(
                        f"{path}: checkpoint is for {found[0]} classes but the network has num_classes={num_classes} "
                        f"({name}: {found} vs {tuple(value.shape)})."
                    )
                )
            raise _reported(
                ValueError(f"{path}: parameter {name} has shape {found}, the network expects {tuple(value.shape)}.")
            )


def find_last_checkpoint(folder: str) -> str | None:
    """The ``*checkpoint_epoch=N.pt`` file with the largest ``N`` in ``folder``, or ``None``."""
    found = [
        (int(m.group(1)), p)
        for p in glob.glob(os.path.join(folder, "*checkpoint_epoch=*.pt"))
        if (m := _EPOCH.search(p))
    ]
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
            check_checkpoint(load_path, load_dict["model"], key="model")
        kwargs.setdefault("map_location", "cpu")
        super().__init__(load_path=load_path, load_dict=load_dict, **kwargs)


class _BestTracking:
    """State of a best-model ``CheckpointSaver`` (its kept files and their scores) as a checkpointable object;
    on loading, the best score is also restored in the ``validator``'s state (its "new best" bookkeeping)."""

    def __init__(self, saver: CheckpointSaver, validator: Engine | None = None) -> None:
        self.saver = saver
        self.validator = validator

    def state_dict(self) -> dict:
        tracker = self.saver._key_metric_checkpoint  # the ignite Checkpoint behind save_key_metric
        return tracker.state_dict() if tracker is not None else {"saved": []}

    def load_state_dict(self, state: dict) -> None:
        self.saver.load_state_dict(state)
        saved = state.get("saved", [])
        if self.validator is not None and saved:  # scores are the key metric (a saver without negative sign)
            self.validator.state.best_metric = max(float(item[0]) for item in saved)


class AtomicDiskSaver(DiskSaver):
    """
    ignite's ``DiskSaver`` that never leaves a folder without its last good file: every file is written through a
    temporary file in the same folder and ``os.replace`` (a process killed mid-write leaves the previous file intact,
    not a truncated one), and the removal of an older file, which ignite's ``Checkpoint`` asks for *before* writing
    the new one, is deferred until the new one is written.

    Args:
        dirname: folder of the files.
        filename: optional fixed file name (as MONAI's ``CheckpointSaver`` allows, e.g. ``model.pt``); each save
            replaces that file, so nothing is ever removed.
    """

    def __init__(self, dirname: str, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename = filename
        self._pending: list[str] = []

    def __call__(self, checkpoint, filename: str, metadata=None) -> None:
        name = self.filename or filename
        super().__call__(checkpoint, name, metadata)
        pending, self._pending = self._pending, []
        for old in pending:  # a file ignite gave up on (its save failed) may not exist
            if old != name and os.path.exists(os.path.join(self.dirname, old)):
                super().remove(old)

    def remove(self, filename: str) -> None:
        if self.filename is None:
            self._pending.append(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """
    MONAI's ``CheckpointSaver`` (same arguments, same file names) whose files are written atomically with
    :class:`AtomicDiskSaver` (MONAI writes them in place, so a kill during a save leaves a truncated file).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                fixed = getattr(checkpoint.save_handler, "filename", None)
                checkpoint.save_handler = AtomicDiskSaver(self.save_dir, fixed)


class ResumeHandler:
    """
    Resumable training: save the last checkpoint every ``save_interval`` epochs (``checkpoint_epoch=N.pt`` in
    ``checkpoint_dir``, only the newest kept) and, when one exists at start, restore it, so a re-run into the same
    folder continues the epoch counter. The trainer itself is added to ``save_dict`` when the handler is attached
    (which keeps configs free of a trainer <-> handler reference cycle).

    With ``best_saver`` (the best-model ``CheckpointSaver``), its tracking state (best score and file) is saved
    and restored too, so that a worse model after the restart does not replace the best one; attach this handler
    after the ``ValidationHandler`` so that each saved state includes that epoch's validation.

    Args:
        checkpoint_dir: folder of the checkpoints.
        save_dict: objects to save and restore besides the trainer, e.g.
            ``{"model": net, "optimizer": opt, "lr_scheduler": sched}``; ``"model"`` is checked against the file.
        best_saver: optional best-model ``CheckpointSaver`` whose tracking state is saved and restored.
        validator: optional evaluator whose ``best_metric`` is restored with the tracking state.
        save_interval: epochs between saves.
        map_location: where loaded tensors go.
    """

    def __init__(
        self,
        checkpoint_dir: str,
        save_dict: dict,
        best_saver: CheckpointSaver | None = None,
        validator: Engine | None = None,
        save_interval: int = 1,
        map_location: str | dict | None = "cpu",
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.save_dict = dict(save_dict)
        if best_saver is not None:
            self.save_dict["best_tracking"] = _BestTracking(best_saver, validator)
        self.save_interval = save_interval
        self.map_location = map_location
        self.logger = logging.getLogger("aisam_monai.resume")
        self.path = find_last_checkpoint(checkpoint_dir)
        if self.path is not None and "model" in self.save_dict:
            check_checkpoint(self.path, self.save_dict["model"], key="model")

    def attach(self, engine: Engine) -> None:
        self._remove_stale_temporaries()
        objects = {**self.save_dict, "trainer": engine}
        if self.path is not None:
            CheckpointLoader(self.path, objects, map_location=self.map_location).attach(engine)
            engine.add_event_handler(Events.STARTED, self._announce)
        AtomicCheckpointSaver(self.checkpoint_dir, objects, save_interval=self.save_interval, n_saved=1).attach(engine)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._prune)

    def _remove_stale_temporaries(self) -> None:
        """Remove the temporary files (``tmpXXXXXXXX``) of saves that a killed run left half-written."""
        if idist.get_rank() != 0 or not os.path.isdir(self.checkpoint_dir):
            return
        stale = [n for n in os.listdir(self.checkpoint_dir) if _TEMPORARY.fullmatch(n)]
        for name in stale:
            os.remove(os.path.join(self.checkpoint_dir, name))
        if stale:
            self.logger.info(
                f"removed {len(stale)} temporary file(s) of an interrupted save from {self.checkpoint_dir}"
            )

    def _prune(self, engine: Engine) -> None:
        """Remove checkpoints older than the newest (those of a previous run are unknown to the new saver)."""
        if idist.get_rank() != 0:
            return
        newest = find_last_checkpoint(self.checkpoint_dir)
        for path in glob.glob(os.path.join(self.checkpoint_dir, "*checkpoint_epoch=*.pt")):
            if path != newest and _EPOCH.search(path):
                os.remove(path)

    def _announce(self, engine: Engine) -> None:
        self.logger.info(f"resumed from {self.path} at epoch {engine.state.epoch} of {engine.state.max_epochs}")
