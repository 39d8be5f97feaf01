# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""AI-SAM networks (arXiv 2312.03119): the model, its AI-Prompter and class-presence classifier, the all-class mask
decoding, LoRA, the sparse prompt tokens (:mod:`~aisam_monai.networks.prompt_tokens`) and the SAM builder."""

from __future__ import annotations

from .ai_prompter import AIPrompter
from .aisam import AISAM, AiSam
from .classifier import ClassPresenceClassifier
from .label_combination import GATES, class_gate, class_probabilities, combine_class_masks, resize_logits
from .lora import LoRAQKV, apply_lora
from .mask_decoding import decode_masks
from .prompter_transformer import PrompterTransformer
from .sam_builder import (
    PIXEL_NORMALIZATIONS,
    SAM_CHECKPOINT_FILES,
    SAM_CONFIGS,
    CheckpointError,
    build_sam,
    count_parameters,
    load_sam_checkpoint,
)

__all__ = [
    "AISAM",
    "AiSam",
    "AIPrompter",
    "ClassPresenceClassifier",
    "PrompterTransformer",
    "LoRAQKV",
    "apply_lora",
    "decode_masks",
    "class_gate",
    "combine_class_masks",
    "class_probabilities",
    "resize_logits",
    "GATES",
    "SAM_CONFIGS",
    "SAM_CHECKPOINT_FILES",
    "PIXEL_NORMALIZATIONS",
    "CheckpointError",
    "build_sam",
    "load_sam_checkpoint",
    "count_parameters",
]
