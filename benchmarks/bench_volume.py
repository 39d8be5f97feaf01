# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Question 4: whole-volume inference from NIfTI to NIfTI: wall time and peak host / GPU memory.

An ACDC-size (256 x 216 x 10) and a Synapse-size (512 x 512 x 150) volume of random intensities are written to
a temporary folder, then segmented by the project's two inference paths (``--paths``):

* ``streaming`` (the bundles' ``inference.yaml``): ``StreamingEvaluator`` + ``StreamingNiftiInferer``, which
  reads, segments and writes ``--slab-slices`` slices at a time;
* ``whole``: ``transforms.inference_transforms`` -> ``AISAMEvaluator`` with a ``SliceVolumeInferer`` ->
  ``PredictionWriter``, the whole volume in memory (the path of ``evaluate.yaml``), with its wall time split into
  load / infer / write.

Peak host memory is the process's ``VmHWM`` during the run (reset first), reported beside the resident size
before it (the model and the libraries). ``--depths`` replaces the Synapse depth (e.g. ``50 150 450``) to show
how memory follows depth.

    python -m benchmarks.bench_volume                           # CPU: tiny, 256
    python -m benchmarks.bench_volume --cases synapse --depths 50 150 450 --threads 1
    python -m benchmarks.bench_volume --device cuda --sam-type vit_b --size 1024 --sw-batch-size 32 --out volume.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines.utils import IterationEvents

from aisam_monai.engines import AISAMEvaluator, StreamingEvaluator
from aisam_monai.handlers import PredictionWriter
from aisam_monai.inferers import SliceVolumeInferer, StreamingNiftiInferer
from aisam_monai.transforms import inference_transforms
from benchmarks._common import (
    add_common_arguments,
    environment,
    gpu_peak_mb,
    peak_rss_mb,
    print_table,
    reset_peaks,
    rss_mb,
    setup,
    synchronize,
    write_json,
)
from benchmarks.bench_forward import build_model

__all__ = ["CASES", "attach_phase_timer", "main", "write_volume"]

INTENSITY = {"kind": "range", "a_min": -125, "a_max": 275}
"""Abdominal CT window of the Synapse recipe, used for both volumes."""

CASES = {"acdc": (256, 216, 10), "synapse": (512, 512, 150)}
"""Spatial shapes ``(H, W, D)`` of the two benchmark volumes (slices along the last axis)."""


def write_volume(path: str, shape: Sequence[int], seed: int = 0) -> None:
    """A CT-like int16 NIfTI of ``shape`` with 1.5 mm in-plane, 5 mm slice spacing."""
    rng = np.random.default_rng(seed)
    data = rng.integers(-1000, 1000, size=tuple(shape), dtype=np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 5.0, 1.0])), path)


def attach_phase_timer(evaluator: AISAMEvaluator, device: torch.device) -> dict[str, float]:
    """
    Record the wall time of the phases of each iteration: ``load`` (reading + preprocessing the NIfTI), ``infer``
    (the inferer) and ``write`` (the handlers attached before this one: the prediction writer), and the host memory:
    the peak of the load phase (``load_peak_rss``), the RSS once loaded (``loaded_rss``), and the peaks of inference
    (``infer_peak_rss``) and writing (``write_peak_rss``); the peak is reset between phases. Returns the dict that
    the events fill.
    """
    marks: dict[str, float] = {}

    def mark(name: str):
        def handler(_engine) -> None:
            synchronize(device)
            marks[name] = time.perf_counter()
            if name == "batch_completed":
                marks["load_peak_rss"] = peak_rss_mb()
                marks["loaded_rss"] = rss_mb()
                reset_peaks()
            if name == "forward_completed":
                marks["infer_peak_rss"] = peak_rss_mb()
                reset_peaks()
            if name == "iteration_completed":
                marks["write_peak_rss"] = peak_rss_mb()

        return handler

    evaluator.add_event_handler(Events.GET_BATCH_STARTED, mark("batch_started"))
    evaluator.add_event_handler(Events.GET_BATCH_COMPLETED, mark("batch_completed"))
    evaluator.add_event_handler(IterationEvents.FORWARD_COMPLETED, mark("forward_completed"))
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, mark("iteration_completed"))
    return marks


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--sam-type", default="tiny")
    parser.add_argument("--size", type=int, default=256, help="model input side S")
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--sw-batch-size", type=int, default=8, help="slices per forward pass")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--depths", nargs="+", type=int, default=None, help="Synapse-size depths (default 150)")
    parser.add_argument("--paths", nargs="+", default=["streaming", "whole"], choices=["streaming", "whole"])
    parser.add_argument("--slab-slices", type=int, default=32, help="slices per slab of the streaming path")
    parser.add_argument(
        "--resample", default="bilinear", choices=["bilinear", "nearest"], help="back to the slice grid"
    )
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only; default on for CUDA)")
    parser.add_argument(
        "--stock-encoder", action="store_true", help="segment-anything's encoder attention (default: SDPA)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.sam_type, args.size, args.classes, args.sw_batch_size = "tiny", 64, 3, 4
    return args


def _volumes(args) -> list[tuple[str, tuple[int, int, int]]]:
    """``(case, shape)`` pairs to measure."""
    if args.smoke:
        shapes = {"acdc": (32, 24, 3), "synapse": (48, 48, 6)}
        return [(case, shapes[case]) for case in args.cases]
    volumes = []
    for case in args.cases:
        h, w, d = CASES[case]
        depths = args.depths if case == "synapse" and args.depths else [d]
        volumes += [(case, (h, w, depth)) for depth in depths]
    return volumes


def _timed_run(evaluator, device: torch.device) -> tuple[float, float | None]:
    """Run ``evaluator`` with the host and GPU peaks reset first; return its wall time and the RSS before it."""
    before = rss_mb()
    reset_peaks(device)
    start = time.perf_counter()
    evaluator.run()
    synchronize(device)
    return time.perf_counter() - start, before


def _run_whole(args, model, device, amp, image, out_dir, names) -> dict:
    """The whole-volume path; its phases and their peaks."""
    loader = DataLoader(Dataset([{"image": image}], inference_transforms(INTENSITY)), batch_size=1, num_workers=0)
    writer = PredictionWriter(out_dir, names)
    inferer = SliceVolumeInferer(args.size, sw_batch_size=args.sw_batch_size, resample=args.resample)
    evaluator = AISAMEvaluator(
        device=device, val_data_loader=loader, network=model, inferer=inferer, val_handlers=[writer], amp=amp
    )
    marks = attach_phase_timer(evaluator, device)
    seconds, before = _timed_run(evaluator, device)
    peak = max(marks["load_peak_rss"], marks["infer_peak_rss"], marks["write_peak_rss"])
    return {
        "seconds": seconds,
        "written": writer.written[-1],
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "load_s": marks["batch_completed"] - marks["batch_started"],
        "infer_s": marks["forward_completed"] - marks["batch_completed"],
        "write_s": marks["iteration_completed"] - marks["forward_completed"],
        "load_peak_beyond_before_mb": marks["load_peak_rss"] - before,
        "loaded_beyond_before_mb": marks["loaded_rss"] - before,
        "infer_peak_beyond_before_mb": marks["infer_peak_rss"] - before,
        "write_peak_beyond_before_mb": marks["write_peak_rss"] - before,
    }


def _run_streaming(args, model, device, amp, image, out_dir, names) -> dict:
    """The slab-streamed path (read, infer and write interleaved): wall time and peak."""
    inferer = SliceVolumeInferer(args.size, sw_batch_size=args.sw_batch_size, resample=args.resample)
    streamer = StreamingNiftiInferer(inferer, INTENSITY, slab_slices=args.slab_slices)
    evaluator = StreamingEvaluator(device, [{"image": image}], model, streamer, out_dir, names, amp=amp)
    seconds, before = _timed_run(evaluator, device)
    return {
        "seconds": seconds,
        "written": evaluator.state.output["pred"],
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    amp = args.amp or device.type == "cuda"
    model = build_model(args.sam_type, args.size, args.classes, device, args.stock_encoder).eval()
    names = ["background"] + [f"class{i}" for i in range(1, args.classes)]
    runners = {"streaming": _run_streaming, "whole": _run_whole}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        warmup = os.path.join(tmp, "warmup.nii.gz")  # first calls (kernels, thread pools, lazy imports) off the record
        write_volume(warmup, (64, 64, 2 * args.sw_batch_size))
        for path in args.paths:
            runners[path](args, model, device, amp, warmup, os.path.join(tmp, "warmup"), names)
        for case, shape in _volumes(args):
            image = os.path.join(tmp, f"{case}_{shape[2]}.nii.gz")
            write_volume(image, shape)
            for path in args.paths:
                run = runners[path](args, model, device, amp, image, os.path.join(tmp, path), names)
                written = nib.load(run.pop("written"))
                if tuple(written.shape) != tuple(shape):
                    raise RuntimeError(f"{path}: written shape {written.shape}, expected {shape}.")
                before, peak = run["rss_before_mb"], run["peak_rss_mb"]
                rows.append(
                    {
                        "case": case,
                        "path": path,
                        "shape": "x".join(map(str, shape)),
                        "sam_type": args.sam_type,
                        "image_size": args.size,
                        "num_classes": args.classes,
                        "sw_batch_size": args.sw_batch_size,
                        "slab_slices": args.slab_slices if path == "streaming" else None,
                        "amp": amp,
                        "slices_per_s": shape[2] / run["seconds"],
                        "peak_beyond_before_mb": None if peak is None or before is None else peak - before,
                        "input_float32_mb": float(np.prod(shape)) * 4 / 2**20,
                        "gpu_peak_mb": gpu_peak_mb(device),
                        **run,
                    }
                )
    print_table(
        rows,
        [
            "case",
            "path",
            "shape",
            "sam_type",
            "image_size",
            "sw_batch_size",
            "seconds",
            "load_s",
            "infer_s",
            "write_s",
            "rss_before_mb",
            "load_peak_beyond_before_mb",
            "loaded_beyond_before_mb",
            "infer_peak_beyond_before_mb",
            "write_peak_beyond_before_mb",
            "peak_rss_mb",
            "peak_beyond_before_mb",
            "input_float32_mb",
            "gpu_peak_mb",
        ],
        "whole volume NIfTI -> NIfTI (streaming: slab by slab; whole: load, infer, write)",
    )
    options = {k: getattr(args, k) for k in ("stock_encoder", "sw_batch_size", "slab_slices", "paths", "resample")}
    record = {"benchmark": "volume", "env": environment(device), "options": options, "rows": rows}
    write_json(args.out, record)
    return record


if __name__ == "__main__":
    main()
