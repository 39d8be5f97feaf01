# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Ignite engines for AI-SAM: slice-batch training (from images or from cached embeddings), whole-volume evaluation
and slab-streamed inference, and the helpers of the multi-GPU (DDP) bundle overlays."""

from __future__ import annotations

from aisam_monai.engines.distributed import LOGGING_HANDLERS, ddp_backend, ddp_device, handlers_for_rank
from aisam_monai.engines.embedding_cache import (
    EMBEDDING_KEY,
    EmbeddingCache,
    EmbeddingCacheDataset,
    check_cache_settings,
)
from aisam_monai.engines.evaluator import AISAMEvaluator
from aisam_monai.engines.streaming import StreamingEvaluator
from aisam_monai.engines.trainer import AISAMTrainer

__all__ = [
    "AISAMTrainer",
    "EMBEDDING_KEY",
    "EmbeddingCache",
    "EmbeddingCacheDataset",
    "check_cache_settings",
    "AISAMEvaluator",
    "StreamingEvaluator",
    "LOGGING_HANDLERS",
    "ddp_backend",
    "ddp_device",
    "handlers_for_rank",
]
