# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Epoch means of the loss parts of a dictionary loss, published as engine metrics."""

from __future__ import annotations

from collections import defaultdict

import torch
from ignite.engine import Engine, Events

__all__ = ["LossPartsHandler"]


class LossPartsHandler:
    """
    Average every entry of ``engine.state.<state_key>`` (a dict of scalar tensors, e.g. the parts of
    :class:`~aisam_monai.losses.AISAMLoss` set by :class:`~aisam_monai.engines.AISAMTrainer`) over each epoch and
    store the means as ``engine.state.metrics[prefix + name]`` (the total ``loss`` as ``prefix + "total"``), where
    ``StatsHandler``, ``TensorBoardStatsHandler`` and the MLflow handler log them. Attach it before those handlers.

    Args:
        state_key: attribute of ``engine.state`` holding the loss dictionary of the iteration.
        prefix: metric name prefix.
    """

    def __init__(self, state_key: str = "loss_parts", prefix: str = "train_loss_") -> None:
        self.state_key = state_key
        self.prefix = prefix
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._publish)

    def _reset(self, engine: Engine) -> None:
        self._sums.clear()
        self._count = 0

    def _accumulate(self, engine: Engine) -> None:
        parts = getattr(engine.state, self.state_key, None)
        if not parts:
            return
        for name, value in parts.items():
            self._sums[name] += float(torch.as_tensor(value).float().mean())
        self._count += 1

    def _publish(self, engine: Engine) -> None:
        for name, total in self._sums.items():
            engine.state.metrics[f"{self.prefix}{'total' if name == 'loss' else name}"] = total / max(self._count, 1)
