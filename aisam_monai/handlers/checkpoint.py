# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Checkpoint handlers: loading with an upfront compatibility check
(:func:`~aisam_monai.io.checkpoint.check_checkpoint`), atomic checkpoint writing, and automatic resume from the last
checkpoint."""

from __future__ import annotations

import logging
import os
import re

import ignite.distributed as idist
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

from aisam_monai.io.checkpoint import check_checkpoint, epoch_checkpoints, find_last_checkpoint

__all__ = [
    "AtomicDiskSaver",
    "AtomicCheckpointSaver",
    "CheckedCheckpointLoader",
    "ResumeHandler",
]

_TEMPORARY = re.compile(r"tmp[a-z0-9_]{8}")  # the temporary name of ignite's atomic DiskSaver (tempfile)


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
        for _, path in epoch_checkpoints(self.checkpoint_dir):
            if path != newest:
                os.remove(path)

    def _announce(self, engine: Engine) -> None:
        self.logger.info(f"resumed from {self.path} at epoch {engine.state.epoch} of {engine.state.max_epochs}")
