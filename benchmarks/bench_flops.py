# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Question 5: FLOPs per slice (``torch.utils.flop_counter.FlopCounterMode``), split into the image encoder and the
rest (prompter + classifier + decoder), and the achieved fraction of the device's peak.

FLOPs are counted on one slice with the math attention backend (so that attention matmuls are counted on every
device); the achieved rate is FLOPs per slice x the measured slices/s of the batched forward at ``--batch``.

    python -m benchmarks.bench_flops                                # CPU: tiny, 256, C = 4 and 9
    python -m benchmarks.bench_flops --device cuda --sam-types vit_b vit_h --sizes 512 1024 --classes 4 9 \
        --batch 32 --dtype bf16 --peak-tflops 790 --out flops.json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from aisam_monai.networks import AISAM
from benchmarks._common import (
    add_common_arguments,
    autocast,
    dtype_supported,
    environment,
    print_table,
    setup,
    time_call,
    write_json,
)
from benchmarks.bench_forward import build_model

__all__ = ["count_flops", "main"]


def count_flops(model: AISAM, image_size: int, device: torch.device) -> dict[str, int]:
    """FLOPs of one slice: ``encoder``, ``decoder`` (prompter + classifier + prompts + mask decoder), ``total``."""
    image = torch.randn(1, 3, image_size, image_size, device=device)
    with sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as encoder:
            embedding = model.encode(image)
        with FlopCounterMode(display=False) as decoder:
            model.decode(embedding)
    e, d = encoder.get_total_flops(), decoder.get_total_flops()
    return {"encoder": e, "decoder": d, "total": e + d}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--sam-types", nargs="+", default=["tiny"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256])
    parser.add_argument("--classes", nargs="+", type=int, default=[4, 9])
    parser.add_argument("--batch", type=int, default=4, help="batch of the timed forward (0: count only)")
    parser.add_argument("--dtype", default="fp32", help="fp32 or bf16 autocast for the timed forward")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak TFLOP/s for the dtype")
    parser.add_argument(
        "--stock-encoder", action="store_true", help="segment-anything's encoder attention (default: SDPA)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.sam_types, args.sizes, args.classes, args.batch = ["tiny"], [64], [3], 2
        args.warmup, args.repeats = 0, 1
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    if not dtype_supported(args.dtype, device):
        raise SystemExit(f"--dtype {args.dtype} is not supported on {device}.")
    rows = []
    for sam_type in args.sam_types:
        for size in args.sizes:
            for num_classes in args.classes:
                model = build_model(sam_type, size, num_classes, device, args.stock_encoder).eval()
                flops = count_flops(model, size, device)
                row = {
                    "sam_type": sam_type,
                    "image_size": size,
                    "num_classes": num_classes,
                    "encoder_gflop": flops["encoder"] / 1e9,
                    "decoder_gflop": flops["decoder"] / 1e9,
                    "total_gflop": flops["total"] / 1e9,
                }
                if args.peak_tflops:
                    row["flop_limited_slices_per_s"] = args.peak_tflops * 1e12 / flops["total"]
                if args.batch > 0:
                    image = torch.randn(args.batch, 3, size, size, device=device)

                    def run(image=image, model=model):
                        with torch.inference_mode(), autocast(args.dtype, device):
                            return AISAM.predict_labels(model(image))

                    seconds = time_call(run, device, args.warmup, args.repeats)
                    row["slices_per_s"] = args.batch / seconds
                    row["achieved_tflops"] = flops["total"] * row["slices_per_s"] / 1e12
                    if args.peak_tflops:
                        row["fraction_of_peak"] = row["achieved_tflops"] / args.peak_tflops
                rows.append(row)
                del model
    print_table(
        rows,
        [
            "sam_type",
            "image_size",
            "num_classes",
            "encoder_gflop",
            "decoder_gflop",
            "total_gflop",
            "slices_per_s",
            "achieved_tflops",
            "fraction_of_peak",
            "flop_limited_slices_per_s",
        ],
        f"FLOPs per slice; achieved rate at batch {args.batch}, {args.dtype}",
    )
    options = {k: getattr(args, k) for k in ("batch", "dtype", "peak_tflops", "stock_encoder", "warmup", "repeats")}
    record = {"benchmark": "flops", "env": environment(device), "options": options, "rows": rows}
    write_json(args.out, record)
    return record


if __name__ == "__main__":
    main()
