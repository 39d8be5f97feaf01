# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Question 1: automatic forward throughput (slices/s) of AI-SAM, against the reference per-class loop.

For every backbone x image size x class count: the batched model (``AISAM.forward`` + label combination) at
each batch size and dtype, and the baseline path (:func:`~benchmarks.reference.reference_forward`:
per-image, per-class loop, batch 1, segment-anything's own encoder attention) in the same run, with the largest
mask-logit difference and the label agreement between the two paths on the same image. Random weights; the input is
random noise.

    python -m benchmarks.bench_forward                         # CPU: tiny, 256, C = 4 and 9
    python -m benchmarks.bench_forward --device cuda --sam-types vit_b vit_h --sizes 1024 \
        --classes 9 --batches 1 8 16 32 --dtypes fp32 bf16 --out forward.json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from aisam_monai.networks import AISAM, combine_class_masks
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
from benchmarks.reference import reference_forward

__all__ = ["agreement", "build_model", "main"]


def build_model(
    sam_type: str,
    image_size: int,
    num_classes: int,
    device: torch.device,
    stock_encoder: bool = False,
    channels_last: bool = False,
    **kwargs,
) -> AISAM:
    """
    A randomly initialised AISAM on ``device`` with the requested speed options (``kwargs`` go to AISAM):
    ``stock_encoder`` switches the encoder back to segment-anything's own attention (default: SDPA).
    """
    torch.manual_seed(0)
    with device:  # initialise the weights where they will live (fast for ViT-H on a GPU)
        model = AISAM(num_classes, sam_type=sam_type, image_size=image_size, **kwargs)
    use_sdpa_encoder_attention(model.sam.image_encoder, not stock_encoder)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def agreement(batched: dict, reference: dict) -> dict[str, float]:
    """
    How far the batched output is from the reference path's on the same image: ``max_logit_diff`` (largest absolute
    mask-logit difference) and ``label_agreement`` (fraction of equal pixels of the hard-gated label maps).
    """
    diff = (batched["logits"].float() - reference["logits"].float()).abs().max().item()
    labels = combine_class_masks(batched["logits"], batched["class_logits"])
    reference_labels = combine_class_masks(reference["logits"], reference["class_logits"])
    return {"max_logit_diff": diff, "label_agreement": (labels == reference_labels).float().mean().item()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--sam-types", nargs="+", default=["tiny"], help="tiny vit_b vit_l vit_h")
    parser.add_argument("--sizes", nargs="+", type=int, default=[256], help="image sizes S")
    parser.add_argument("--classes", nargs="+", type=int, default=[4, 9], help="class counts C (background included)")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8], help="batch sizes; the best is reported")
    parser.add_argument("--dtypes", nargs="+", default=None, help="fp32 bf16 (default: fp32 on CPU, fp32 bf16 on CUDA)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the reference per-class loop")
    parser.add_argument("--baseline-repeats", type=int, default=None, help="timed baseline calls (default --repeats)")
    parser.add_argument(
        "--stock-encoder", action="store_true", help="segment-anything's encoder attention (default: SDPA)"
    )
    parser.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile the batched model")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sam_types, args.sizes, args.classes, args.batches = ["tiny"], [64], [3], [1, 2]
        args.warmup, args.repeats = 0, 1
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    dtypes = args.dtypes or (["fp32", "bf16"] if device.type == "cuda" else ["fp32"])
    dtypes = [d for d in dtypes if dtype_supported(d, device)]
    rows, summary = [], []
    options = {k: getattr(args, k) for k in ("stock_encoder", "channels_last", "compile", "warmup", "repeats")}
    record = {"benchmark": "forward", "env": environment(device), "options": options, "rows": rows, "summary": summary}
    for sam_type in args.sam_types:
        for size in args.sizes:
            for num_classes in args.classes:
                model = build_model(sam_type, size, num_classes, device, args.stock_encoder, args.channels_last).eval()
                forward = torch.compile(model) if args.compile else model
                config = {"sam_type": sam_type, "image_size": size, "num_classes": num_classes}
                best_base, best = None, None
                for dtype in dtypes:
                    for batch in args.batches:
                        image = torch.randn(batch, 3, size, size, device=device)
                        if args.channels_last:
                            image = image.contiguous(memory_format=torch.channels_last)

                        def run(image=image, dtype=dtype, forward=forward):
                            with torch.inference_mode(), autocast(dtype, device):
                                return AISAM.predict_labels(forward(image))

                        reset_peaks(device)
                        try:
                            seconds = time_call(run, device, args.warmup, args.repeats)
                        except torch.OutOfMemoryError:
                            rows.append(
                                {**config, "path": "aisam", "dtype": dtype, "batch": batch, "status": "out of memory"}
                            )
                            torch.cuda.empty_cache()
                            break
                        row = {
                            **config,
                            "path": "aisam",
                            "dtype": dtype,
                            "batch": batch,
                            "ms_per_batch": 1e3 * seconds,
                            "ms_per_slice": 1e3 * seconds / batch,
                            "slices_per_s": batch / seconds,
                            "gpu_peak_mb": gpu_peak_mb(device),
                        }
                        rows.append(row)
                        if best is None or row["slices_per_s"] > best["slices_per_s"]:
                            best = row
                    if not args.no_baseline:
                        image = torch.randn(1, 3, size, size, device=device)

                        def run_baseline(image=image, dtype=dtype, model=model):
                            with torch.inference_mode(), autocast(dtype, device):
                                return reference_forward(model, image)

                        reset_peaks(device)
                        use_sdpa_encoder_attention(model.sam.image_encoder, False)  # the reference recipe's encoder
                        seconds = time_call(run_baseline, device, args.warmup, args.baseline_repeats or args.repeats)
                        reference = run_baseline()
                        use_sdpa_encoder_attention(model.sam.image_encoder, not args.stock_encoder)
                        with torch.inference_mode(), autocast(dtype, device):
                            batched = forward(image)
                        row = {
                            **config,
                            "path": "reference",
                            "dtype": dtype,
                            "batch": 1,
                            "ms_per_batch": 1e3 * seconds,
                            "ms_per_slice": 1e3 * seconds,
                            "slices_per_s": 1 / seconds,
                            "gpu_peak_mb": gpu_peak_mb(device),
                            **agreement(batched, reference),
                        }
                        rows.append(row)
                        if best_base is None or row["slices_per_s"] > best_base["slices_per_s"]:
                            best_base = row
                batch1 = min(
                    (
                        r["ms_per_slice"]
                        for r in rows
                        if r.get("batch") == 1
                        and r["path"] == "aisam"
                        and r.get("ms_per_slice")
                        and all(r[k] == v for k, v in config.items())
                    ),
                    default=None,
                )
                summary.append(
                    {
                        **config,
                        "best_slices_per_s": best and best["slices_per_s"],
                        "best_batch": best and best["batch"],
                        "best_dtype": best and best["dtype"],
                        "batch1_ms": batch1,
                        "baseline_slices_per_s": best_base and best_base["slices_per_s"],
                        "ratio_vs_baseline": best_base and best and best["slices_per_s"] / best_base["slices_per_s"],
                        "max_logit_diff": max(
                            (
                                r["max_logit_diff"]
                                for r in rows
                                if r["path"] == "reference" and all(r[k] == v for k, v in config.items())
                            ),
                            default=None,
                        ),
                    }
                )
                write_json(args.out, record)  # after every configuration: a run cut short keeps what it measured
                del model, forward
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    print_table(
        rows,
        [
            "sam_type",
            "image_size",
            "num_classes",
            "path",
            "dtype",
            "batch",
            "ms_per_slice",
            "slices_per_s",
            "gpu_peak_mb",
            "max_logit_diff",
            "label_agreement",
            "status",
        ],
        "automatic forward (median of repeats)",
    )
    print_table(
        summary,
        [
            "sam_type",
            "image_size",
            "num_classes",
            "best_slices_per_s",
            "best_batch",
            "best_dtype",
            "batch1_ms",
            "baseline_slices_per_s",
            "ratio_vs_baseline",
            "max_logit_diff",
        ],
        "summary (ratio = best batched / best reference, same run; max_logit_diff = batched vs reference, batch 1)",
    )
    write_json(args.out, record)
    return record


if __name__ == "__main__":
    main()
