# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Question 6: epoch time of the bundle's training from cached image embeddings (``--cache_embeddings True``, frozen
encoder) against training from images.

A synthetic ACDC-layout dataset (``aisam_monai.data.synthetic`` + ``aisam_monai.data.prepare``) is written to a
temporary folder; ``bundles/acdc/configs/train.yaml`` then trains on it twice with the same settings and a frozen
encoder (``train_encoder False``, no LoRA), once from images and once from the cache, validation off. Reported per
path: the setup (instantiating the training data loader: the network, and for the cache path the embedding cache
build, for the image path the volumes' loading), the first epoch, the mean of the later epochs (each epoch with its
checkpoint save) and the slices per epoch.

    python -m benchmarks.bench_cache                                        # CPU: tiny, S = 64, 4 cases, 2 epochs
    python -m benchmarks.bench_cache --device cuda --sam-type litemedsam --size 256 --cases 20 --epochs 5 \
        --cache-augmentations 4 --out cache.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence

from ignite.engine import Events
from monai.bundle import ConfigWorkflow

from aisam_monai.data.prepare import prepare
from aisam_monai.data.synthetic import write_phantoms
from benchmarks._common import add_common_arguments, environment, print_table, setup, synchronize, write_json

__all__ = ["main"]

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bundles", "acdc", "configs")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--sam-type", default="tiny")
    parser.add_argument("--checkpoint", default=None, help="SAM checkpoint (default: the bundle's)")
    parser.add_argument("--size", type=int, default=64, help="image size S")
    parser.add_argument("--cases", type=int, default=4, help="synthetic ACDC patients (two volumes each)")
    parser.add_argument("--volume-size", type=int, default=None, help="phantom matrix width (default: the phantoms')")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cache-augmentations", type=int, default=0, help="augmented copies K per cached slice")
    parser.add_argument("--batch-size", type=int, default=2, help="volumes per step")
    parser.add_argument("--slices-per-volume", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=0)
    args = parser.parse_args(argv)
    if args.smoke:
        args.sam_type, args.size, args.cases, args.volume_size, args.epochs = "tiny", 32, 3, 40, 2
    return args


def _train(args: argparse.Namespace, data: str, out: str, cache: bool) -> dict:
    overrides = {
        "dataset_dir": data,
        "output_dir": out,
        "device": args.device,
        "sam_type": args.sam_type,
        "image_size": args.size,
        "epochs": args.epochs,
        "val_interval": args.epochs + 1,
        "use_lora": False,
        "train_encoder": False,
        "cache_embeddings": cache,
        "cache_augmentations": args.cache_augmentations if cache else 0,
        "batch_size": args.batch_size,
        "slices_per_volume": args.slices_per_volume,
        "num_workers": args.num_workers,
        "progress": False,
    }
    if args.checkpoint:
        overrides["sam_checkpoint"] = args.checkpoint
    workflow = ConfigWorkflow(config_file=os.path.join(CONFIG, "train.yaml"), workflow_type="train", **overrides)
    workflow.initialize()
    start = time.perf_counter()
    loader = workflow.parser.get_parsed_content("train#dataloader")
    setup_s = time.perf_counter() - start
    trainer = workflow.parser.get_parsed_content("train#trainer")
    epochs: list[float] = []
    marks: dict[str, float] = {}

    def started(_):
        synchronize(trainer.state.device)
        marks["start"] = time.perf_counter()

    def completed(_):
        synchronize(trainer.state.device)
        epochs.append(time.perf_counter() - marks["start"])

    trainer.add_event_handler(Events.EPOCH_STARTED, started)
    trainer.add_event_handler(Events.EPOCH_COMPLETED(every=1), completed)
    trainer.run()
    later = epochs[1:]
    return {
        "path": "cache" if cache else "images",
        "sam_type": args.sam_type,
        "image_size": args.size,
        "cache_augmentations": overrides["cache_augmentations"],
        "volumes": len(loader.dataset),
        "slices_per_epoch": len(loader.dataset) * args.slices_per_volume,
        "setup_s": setup_s,
        "first_epoch_s": epochs[0],
        "later_epochs_mean_s": sum(later) / len(later) if later else None,
    }


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    with tempfile.TemporaryDirectory() as tmp:
        raw, data = os.path.join(tmp, "raw"), os.path.join(tmp, "acdc")
        write_phantoms("acdc", raw, cases=args.cases, seed=0, size=args.volume_size, log=lambda *_: None)
        prepare("acdc", raw, data, log=lambda *_: None)
        rows = [
            _train(args, data, os.path.join(tmp, path), cache) for path, cache in (("images", False), ("cache", True))
        ]
    images, cache = rows
    summary = {
        "cache_build_s": cache["setup_s"],
        "images_epoch_s": images["later_epochs_mean_s"] or images["first_epoch_s"],
        "cache_epoch_s": cache["later_epochs_mean_s"] or cache["first_epoch_s"],
    }
    summary["epoch_speedup"] = summary["images_epoch_s"] / summary["cache_epoch_s"]
    columns = ["path", "sam_type", "image_size", "cache_augmentations", "volumes", "slices_per_epoch", "setup_s"]
    print_table(rows, columns + ["first_epoch_s", "later_epochs_mean_s"], "bundle training, seconds (validation off)")
    print_table(
        [summary],
        ["cache_build_s", "images_epoch_s", "cache_epoch_s", "epoch_speedup"],
        "summary (cache build = the cache path's setup; epoch = the later epochs' mean, else the first)",
    )
    options = {k: getattr(args, k) for k in ("cases", "volume_size", "epochs", "batch_size", "slices_per_volume")}
    record = {"benchmark": "cache", "env": environment(device), "options": options, "rows": rows, "summary": summary}
    write_json(args.out, record)
    return record


if __name__ == "__main__":
    main()
