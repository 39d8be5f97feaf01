# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Question 2: training step throughput (samples/s) with LoRA, against a training step whose forward is the
reference per-image, per-class loop.

One step = forward + :class:`~aisam_monai.losses.AISAMLoss` + backward + AdamW update of the trainable
parameters (LoRA of the encoder, prompter, classifier, mask decoder). bf16 autocast is the default on CUDA. The
loop step uses segment-anything's own encoder attention, as the reference recipe does.

    python -m benchmarks.bench_train_step                      # CPU: tiny, 256, C = 4, batch 2
    python -m benchmarks.bench_train_step --device cuda --sam-type vit_b --size 1024 --classes 9 \
        --batches 1 4 8 --out train.json
    python -m benchmarks.bench_train_step --sam-type litemedsam --size 128 --from-embeddings --batches 2 4 8

``--from-embeddings`` times the step of training from cached embeddings (``cache_embeddings`` in the bundles): the
encoder frozen, without LoRA, the step runs the prompter, classifier and mask decoder on precomputed embeddings.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from aisam_monai.losses import AISAMLoss
from aisam_monai.networks.encoder_attention import use_sdpa_encoder_attention
from benchmarks._common import (
    add_common_arguments,
    autocast,
    dtype_supported,
    environment,
    gpu_peak_mb,
    print_table,
    reset_peaks,
    setup,
    time_call,
    write_json,
)
from benchmarks.bench_forward import build_model
from benchmarks.reference import reference_forward

__all__ = ["main"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--sam-type", default="tiny")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--batches", nargs="+", type=int, default=[2], help="batch sizes; the best is reported")
    parser.add_argument("--dtype", default=None, help="fp32 or bf16 autocast (default: bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--no-baseline", action="store_true", help="skip the per-class loop step")
    parser.add_argument(
        "--baseline-batch", type=int, default=None, help="batch of the loop step (default: the smallest)"
    )
    parser.add_argument(
        "--stock-encoder", action="store_true", help="segment-anything's encoder attention (default: SDPA)"
    )
    parser.add_argument(
        "--from-embeddings", action="store_true", help="train from cached embeddings (frozen encoder, no loop step)"
    )
    args = parser.parse_args(argv)
    args.no_baseline = args.no_baseline or args.from_embeddings
    if args.smoke:
        args.size, args.classes, args.batches, args.sam_type = 32, 2, [1], "tiny"
        args.warmup, args.repeats = 0, 1
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    if not dtype_supported(dtype, device):
        raise SystemExit(f"--dtype {dtype} is not supported on {device}.")
    model = build_model(
        args.sam_type,
        args.size,
        args.classes,
        device,
        args.stock_encoder,
        use_lora=not args.from_embeddings,
        lora_rank=args.lora_rank,
    )
    model.train()
    loss_fn = AISAMLoss(args.classes)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    config = {"sam_type": args.sam_type, "image_size": args.size, "num_classes": args.classes, "dtype": dtype}
    config["input"] = "embedding" if args.from_embeddings else "image"
    paths = [("aisam", model.decode if args.from_embeddings else model, b) for b in args.batches]
    if not args.no_baseline:
        paths.append(("loop", lambda image: reference_forward(model, image), args.baseline_batch or min(args.batches)))
    rows = []
    for path, forward, batch in paths:
        g = torch.Generator().manual_seed(0)
        image = torch.randn(batch, 3, args.size, args.size, generator=g).to(device)
        target = torch.randint(0, args.classes, (batch, 1, args.size, args.size), generator=g).to(device)
        if args.from_embeddings:
            with torch.no_grad():
                image = model.encode(image)

        def step(forward=forward, image=image, target=target):
            optimizer.zero_grad(set_to_none=True)
            with autocast(dtype, device):
                loss = loss_fn(forward(image), target)["loss"]
            loss.backward()
            optimizer.step()

        reset_peaks(device)
        use_sdpa_encoder_attention(model.sam.image_encoder, path == "aisam" and not args.stock_encoder)
        try:
            seconds = time_call(step, device, args.warmup, args.repeats)
        except torch.OutOfMemoryError:
            rows.append({**config, "path": path, "batch": batch, "status": "out of memory"})
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            continue
        rows.append(
            {
                **config,
                "path": path,
                "batch": batch,
                "ms_per_step": 1e3 * seconds,
                "samples_per_s": batch / seconds,
                "gpu_peak_mb": gpu_peak_mb(device),
            }
        )
    best = max(
        (r for r in rows if r["path"] == "aisam" and "samples_per_s" in r),
        key=lambda r: r["samples_per_s"],
        default=None,
    )
    base = next((r for r in rows if r["path"] == "loop" and "samples_per_s" in r), None)
    summary = {
        **config,
        "trainable_parameters": trainable,
        "best_samples_per_s": best and best["samples_per_s"],
        "best_batch": best and best["batch"],
        "best_gpu_peak_mb": best and best["gpu_peak_mb"],
        "baseline_samples_per_s": base and base["samples_per_s"],
        "ratio_vs_baseline": best and base and best["samples_per_s"] / base["samples_per_s"],
    }
    print_table(
        rows,
        [
            "sam_type",
            "image_size",
            "num_classes",
            "dtype",
            "input",
            "path",
            "batch",
            "ms_per_step",
            "samples_per_s",
            "gpu_peak_mb",
            "status",
        ],
        f"training step {'from cached embeddings' if args.from_embeddings else 'with LoRA'} (median of repeats)",
    )
    print_table(
        [summary],
        ["best_samples_per_s", "best_batch", "baseline_samples_per_s", "ratio_vs_baseline", "trainable_parameters"],
        "summary (ratio = best batched / loop step, same run)",
    )
    options = {k: getattr(args, k) for k in ("stock_encoder", "lora_rank", "from_embeddings", "warmup", "repeats")}
    record = {
        "benchmark": "train_step",
        "env": environment(device),
        "options": options,
        "rows": rows,
        "summary": summary,
    }
    write_json(args.out, record)
    return record


if __name__ == "__main__":
    main()
