# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Interactive editing: latency of one edit with a cached image embedding (:class:`AISAMPredictor`), against the
first prediction of the slice (image encoder included).

For every backbone x image size: ``set_image`` on one slice, the first ``predict()`` (encoder + prompter +
decoder + mapping to the slice grid), then the median latency of one edit (moving a positive click of class 1,
which reruns only the prompter and decoder) on both predictor decode paths. Random weights; the slice is noise of
``--slice-size`` pixels.

    python -m benchmarks.bench_interactive_edit                    # CPU: tiny@256, vit_b@256, vit_b@1024
    python -m benchmarks.bench_interactive_edit --device cuda --out edit.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch

from aisam_monai.interactive import DECODE_PATHS, AISAMPredictor
from aisam_monai.networks import AISAM
from benchmarks._common import add_common_arguments, environment, print_table, setup, synchronize, time_call, write_json

__all__ = ["main"]

DEFAULT_CONFIGS = ("tiny:256", "vit_b:256", "vit_b:1024")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="SAM_TYPE:SIZE entries")
    parser.add_argument("--classes", type=int, default=4, help="class count C (background included)")
    parser.add_argument("--slice-size", type=int, nargs=2, default=(224, 256), metavar=("H", "W"), help="slice shape")
    args = parser.parse_args(argv)
    args.repeats = max(args.repeats, 5)
    if args.smoke:
        args.configs, args.warmup, args.repeats = ["tiny:64"], 0, 2
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    h, w = args.slice_size
    rng = np.random.default_rng(0)
    rows = []
    for entry in args.configs:
        sam_type, size = entry.split(":")
        torch.manual_seed(0)
        model = AISAM(args.classes, sam_type=sam_type, image_size=int(size)).to(device)
        for decode_path in DECODE_PATHS:
            predictor = AISAMPredictor(model, decode_path=decode_path, device=device, progress=False)
            predictor.set_image(rng.random((h, w)).astype(np.float32))
            start = time.perf_counter()
            predictor.predict()
            synchronize(device)
            first = time.perf_counter() - start
            predictor.add_point(w / 2, h / 2, 1)
            click = int(predictor.predict().point_ids.max())
            positions = iter(rng.uniform(0, min(h, w) - 1, size=(10_000, 2)))

            def edit(predictor=predictor, click=click, positions=positions):
                x, y = next(positions)
                return predictor.move_point(click, float(x), float(y))

            seconds = time_call(edit, device, args.warmup, args.repeats)
            rows.append(
                {
                    "sam_type": sam_type,
                    "image_size": int(size),
                    "num_classes": args.classes,
                    "decode_path": decode_path,
                    "first_predict_s": first,
                    "edit_ms": 1e3 * seconds,
                    "speedup": first / seconds,
                }
            )
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    columns = ["sam_type", "image_size", "num_classes", "decode_path", "first_predict_s", "edit_ms", "speedup"]
    print_table(rows, columns, f"one edit with a cached embedding, slice {h}x{w} (median of {args.repeats})")
    record = {"benchmark": "interactive_edit", "env": environment(device), "slice_size": [h, w], "rows": rows}
    write_json(args.out, record)
    return record


if __name__ == "__main__":
    main()
