# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Ignite trainer that knows the AI-SAM forward signature and its dictionary loss."""

from __future__ import annotations

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils.enums import CommonKeys as Keys

from aisam_monai.engines.embedding_cache import EMBEDDING_KEY

__all__ = ["AISAMTrainer"]


class AISAMTrainer(SupervisedTrainer):
    """
    ``SupervisedTrainer`` for :class:`~aisam_monai.networks.AISAM` and :class:`~aisam_monai.losses.AISAMLoss`.

    One iteration: ``out = network(image)`` on a batch of 2D slices, ``parts = loss_function(out, label,
    presence)``, back-propagation of ``parts["loss"]``. A batch with an ``embedding`` key ``(B, D, h, w)`` (cached
    image embeddings of a frozen encoder, :class:`~aisam_monai.engines.EmbeddingCacheDataset`) skips the encoder:
    ``out = network.decode(embedding)`` (the AI-Prompter, the classifier and the mask decoder). With ``amp=True`` on
    a CUDA device the forward pass and the loss run under ``torch.autocast`` with ``amp_dtype`` (bfloat16 by
    default, which needs no gradient scaler). ``engine.state.output`` holds ``image`` (or ``embedding``),
    ``label``, ``pred`` (the mask logits ``(B, C, S/4, S/4)``) and ``loss``; ``engine.state.loss_parts`` every entry
    of the loss dictionary, detached, read by :class:`~aisam_monai.handlers.LossPartsHandler`. As in MONAI, the
    output is decollated into a list of per-sample dicts by default (read the loss with
    ``monai.handlers.from_engine(["loss"], first=True)``, which MONAI's ``--tracking mlflow`` settings also use);
    ``decollate=False`` keeps the batched dict.

    Args:
        args, kwargs: those of ``monai.engines.SupervisedTrainer``.
        presence_key: optional batch key of the ``(B, C)`` multi-hot presence target; when absent from the batch
            the loss derives presence from the label.
        amp_dtype: autocast dtype on CUDA.
        max_grad_norm: when given, the gradients of the optimised parameters are clipped to this total L2 norm
            (``torch.nn.utils.clip_grad_norm_``) before each optimizer step; the norm before clipping is kept on
            ``engine.state.grad_norm``.
    """

    def __init__(
        self,
        *args,
        presence_key: str | None = "multi_hot",
        amp_dtype: torch.dtype = torch.bfloat16,
        max_grad_norm: float | None = None,
        **kwargs,
    ) -> None:
        amp = kwargs.pop("amp", False)
        super().__init__(*args, **kwargs)  # MONAI's amp path (float16 + gradient scaler) stays off
        if max_grad_norm is not None and max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm}.")
        self.autocast = amp
        self.presence_key = presence_key
        self.amp_dtype = amp_dtype
        self.max_grad_norm = max_grad_norm

    def _iteration(self, engine: AISAMTrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        device = torch.device(engine.state.device)
        if isinstance(batchdata, dict) and EMBEDDING_KEY in batchdata:  # cached embeddings: no encoder
            inputs = batchdata[EMBEDDING_KEY].to(device, torch.float32, non_blocking=engine.non_blocking)
            label = batchdata[Keys.LABEL].to(device, non_blocking=engine.non_blocking)
            forward, input_key = engine.network.decode, EMBEDDING_KEY
        else:
            inputs, label = engine.prepare_batch(
                batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs
            )[:2]
            forward, input_key = engine.network, Keys.IMAGE
        presence = batchdata.get(self.presence_key) if self.presence_key and isinstance(batchdata, dict) else None
        if presence is not None:
            presence = presence.to(engine.state.device, non_blocking=engine.non_blocking)
        engine.state.output = {input_key: inputs, Keys.LABEL: label}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.autocast(device.type, dtype=self.amp_dtype, enabled=engine.autocast and device.type == "cuda"):
            out = forward(inputs)
            engine.state.output[Keys.PRED] = out["logits"]
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            parts = engine.loss_function(out, label, presence)
        loss = parts["loss"]
        engine.state.output[Keys.LOSS] = loss
        engine.state.loss_parts = {k: v.detach().float() for k, v in parts.items()}
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if self.max_grad_norm is not None:
            params = [p for group in engine.optimizer.param_groups for p in group["params"]]
            engine.state.grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm))
        engine.optimizer.step()
        engine.state.output[Keys.LOSS] = loss.detach()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
