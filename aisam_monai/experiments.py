# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
The experiments of AI-SAM's paper (arXiv 2312.03119) as one command per table, run through a bundle:

* ``table1``: one model with the default settings, evaluated with the automatic prompts and the three label-driven
  prompts (ground-truth class presence, one random ground-truth point per class, ground-truth box): Table 1's rows.
* ``table2``: one model per number of generated points per class ``Np``, evaluated automatically: Table 2.
* ``table3``: one model per prompt heuristic loss (full, without diversity, without diversity and sharpness, without
  the heuristic loss), each evaluated with generalized points (``softmax W``) and one-hot points
  (``onehot(argmax W)``): Table 3.

Every training and evaluation is the bundle command a user would type (printed before it runs). A training goes to
``<out>/runs/<name>``, its name spelling its settings, and is shared by the tables: a finished one is reused, an
interrupted one resumes (the bundle's ``ResumeHandler``). Each table is written as ``<out>/<table>.md`` and
``<out>/<table>.json``. See docs/paper_tables.md.

Usage (from the repository root)::

    python -m aisam_monai.experiments {table1,table2,table3} --dataset_dir DIR --out DIR [--sam_type litemedsam]
        [--image_size 128] [--epochs 40] [--points 1 2 4 8 16] [--rows full none] [--override KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence

import yaml

from aisam_monai.data.cases import DATALIST_NAME
from aisam_monai.io.atomic import atomic_write_bytes, atomic_write_json
from aisam_monai.io.checkpoint import find_last_checkpoint
from aisam_monai.metrics import TABLE_COLUMNS
from aisam_monai.quickstart import _bundle_cmd, _run, _val_interval

__all__ = ["LOSS_ROWS", "TABLE1_MODES", "TABLE3_EVALS", "Experiments", "RunSettings", "main"]

TABLE1_MODES = {
    "auto": "automatic (generated points, classifier gate)",
    "gt_label": "ground-truth class presence replaces the gate",
    "random_points": "+ 1 random ground-truth point per class",
    "gt_box": "ground-truth box per class",
}
"""Table 1's evaluation modes (the bundle's ``--eval_mode``) and what each gives the model."""

LOSS_ROWS = {
    "full": ("full loss", {}),
    "no_diversity": ("w/o diversity", {"diversity_weight": 0.0}),
    "no_diversity_sharpness": ("w/o diversity & sharpness", {"diversity_weight": 0.0, "sharpness_weight": 0.0}),
    "none": ("w/o heuristic loss", {"prompt_heuristic_loss": False}),
}
"""Table 3's trainings: the row name, its label and the bundle overrides of its loss."""

TABLE3_EVALS = {"generalized": ("soft_points", "softmax"), "one_hot": ("one_hot_points", "onehot(argmax)")}
"""Table 3's two evaluations of each model: the bundle's ``--eval_mode`` and the ``W`` the points are built from."""

# keys the tables set themselves (each has its own option, or is the table's variable)
_RESERVED = ("dataset_dir", "output_dir", "eval_mode", "sam_type", "image_size", "epochs", "learning_rate",
             "num_points", "prompt_heuristic_loss", "sharpness_weight", "diversity_weight", "cache_embeddings",
             "cache_augmentations", "progress")  # fmt: skip
DONE = "experiment_run.json"
"""A training's settings and whether it finished, in its folder (a finished run is reused when they match)."""


def _bool(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise SystemExit(f"--override hard_points={value}: give true or false.")
    return value.lower() == "true"


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """
    The settings of one training, and their bundle overrides.

    Args:
        bundle: the bundle's folder name (``acdc`` or ``synapse``).
        sam_type, image_size, epochs: the bundle's keys.
        num_points: ``Np``.
        hard_points: straight-through Gumbel one-hot ``W`` in training (else softmax ``W``).
        loss: a key of :data:`LOSS_ROWS`.
        learning_rate: None: the bundle's.
        cache_embeddings, cache_augmentations: the bundle's caching keys, passed only when set.
        overrides: further bundle keys, ``(key, value)`` pairs as given.
    """

    bundle: str = "acdc"
    sam_type: str = "litemedsam"
    image_size: int = 128
    epochs: int = 40
    num_points: int = 4
    hard_points: bool = True
    loss: str = "full"
    learning_rate: float | None = None
    cache_embeddings: bool = False
    cache_augmentations: int | None = None
    overrides: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.loss not in LOSS_ROWS:
            raise ValueError(f"loss must be one of {tuple(LOSS_ROWS)}, got {self.loss!r}.")

    @property
    def name(self) -> str:
        """
        The run's folder name, e.g. ``acdc_litemedsam_s128_e40_np4_hard_full``; settings beyond these
        (learning rate, caching, overrides) add a digest of them, e.g. ``..._full_3f2a9c1e``.
        """
        name = (
            f"{self.bundle}_{self.sam_type}_s{self.image_size}_e{self.epochs}_np{self.num_points}_"
            f"{'hard' if self.hard_points else 'soft'}_{self.loss}"
        )
        extra = {
            "learning_rate": self.learning_rate,
            "cache_embeddings": self.cache_embeddings,
            "cache_augmentations": self.cache_augmentations,
            "overrides": [list(o) for o in self.overrides],
        }
        defaults = {"learning_rate": None, "cache_embeddings": False, "cache_augmentations": None, "overrides": []}
        if extra == defaults:
            return name
        return f"{name}_{hashlib.sha1(json.dumps(extra, sort_keys=True).encode()).hexdigest()[:8]}"

    def train_overrides(self) -> dict:
        """The bundle overrides of the training (the output folder and dataset excepted)."""
        overrides = {
            "sam_type": self.sam_type,
            "image_size": self.image_size,
            "epochs": self.epochs,
            "val_interval": _val_interval(self.epochs, target=5),  # the last epoch is validated
            "num_points": self.num_points,
            "hard_points": self.hard_points,
            **LOSS_ROWS[self.loss][1],
        }
        if self.learning_rate is not None:
            overrides["learning_rate"] = self.learning_rate
        if self.cache_embeddings:
            overrides["cache_embeddings"] = True
        if self.cache_augmentations is not None:
            overrides["cache_augmentations"] = self.cache_augmentations
        return {**overrides, **dict(self.overrides), "progress": False}

    def eval_overrides(self, eval_mode: str) -> dict:
        """The bundle overrides of an evaluation of the trained model (the training's, without its caching)."""
        keep = {k: v for k, v in self.train_overrides().items() if k not in ("cache_embeddings", "cache_augmentations")}
        return {**keep, "eval_mode": eval_mode}


def scores(summary: dict, columns: Sequence[str]) -> dict:
    """
    The table cells of a ``metrics_summary.json`` (aisam protocol): ``DICE`` (mean foreground Dice), ``HD95`` and
    the Dice of each class, as fractions (HD95 in pixels of the evaluation grid).

    Args:
        summary: the bundle's evaluation summary.
        columns: ``DICE``, ``HD95``, then one name per foreground class (in class order).
    """
    aisam = summary["protocols"]["aisam"]
    per_class = list(aisam["per_class"].values())
    class_columns = [c for c in columns if c not in ("DICE", "HD95")]
    if len(per_class) != len(class_columns):
        raise ValueError(f"the summary has {len(per_class)} classes, the table {len(class_columns)}.")
    return {
        "DICE": aisam["mean_dice"],
        "HD95": aisam["mean_hd95"],
        **{c: v["dice"] for c, v in zip(class_columns, per_class)},
    }


def format_cells(values: dict, columns: Sequence[str], signed: bool = False) -> list[str]:
    """Markdown cells of :func:`scores` (or their differences): Dice in percent, HD95 as is, two decimals; None
    (an HD95 undefined in every case) as ``n/a``."""
    spec = "+.2f" if signed else ".2f"
    return [
        "n/a" if values[c] is None else format(values[c] if c == "HD95" else 100 * values[c], spec) for c in columns
    ]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of string cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


class Experiments:
    """
    Trains (or reuses) and evaluates the runs of the paper's tables through a bundle, from the repository root.

    Args:
        dataset_dir: the prepared dataset (``python -m aisam_monai.data.prepare``).
        out: output folder: ``runs/<name>`` per training, ``<table>.md`` and ``<table>.json``.
        base: the settings every run shares (``num_points`` and ``loss`` are the tables' variables).
    """

    def __init__(self, dataset_dir: str, out: str, base: RunSettings) -> None:
        self.dataset_dir = dataset_dir
        self.out = out
        self.base = base
        self.bundle_dir = os.path.join("bundles", base.bundle)
        self._trained: set[str] = set()  # the runs trained or found finished in this session
        columns = list(TABLE_COLUMNS[base.bundle])
        self.columns = columns if "HD95" in columns else ["DICE", "HD95", *columns[1:]]

    def check_dataset(self) -> None:
        """One line and exit when the dataset or its training or test list is missing (before any training)."""
        if not os.path.isdir(self.dataset_dir):
            raise SystemExit(
                f"{self.dataset_dir}: dataset folder not found; prepare it with `python -m aisam_monai.data.prepare`."
            )
        path = os.path.join(self.dataset_dir, DATALIST_NAME)
        if not os.path.isfile(path):
            raise SystemExit(f"{path}: not found; prepare the dataset with `python -m aisam_monai.data.prepare`.")
        with open(path) as f:
            datalist = json.load(f)
        missing = [split for split in ("training", "test") if not datalist.get(split)]
        if missing:
            raise SystemExit(f"{path}: no {' or '.join(missing)} cases.")

    def run_dir(self, settings: RunSettings) -> str:
        return os.path.join(self.out, "runs", settings.name)

    def train(self, settings: RunSettings) -> str:
        """Train ``settings`` into :meth:`run_dir` unless finished there (an interrupted run resumes); its folder."""
        run_dir = self.run_dir(settings)
        if settings.name in self._trained:
            return run_dir
        record = {
            "settings": dataclasses.asdict(settings),
            "dataset_dir": os.path.abspath(self.dataset_dir),
            "overrides": settings.train_overrides(),
        }
        record = json.loads(json.dumps(record))  # as read back from the file (tuples become lists)
        done, model = os.path.join(run_dir, DONE), os.path.join(run_dir, "model.pt")
        if os.path.isfile(done):
            with open(done) as f:
                stored = json.load(f)
            if {k: v for k, v in stored.items() if k != "finished"} != record:
                raise SystemExit(f"{done}: the run was started with other settings; use another --out.")
            if stored["finished"] and os.path.isfile(model):
                print(f"reusing {settings.name} (trained)", flush=True)
                self._trained.add(settings.name)
                return run_dir
        last = find_last_checkpoint(run_dir) if os.path.isdir(run_dir) else None
        print(f"{'resuming from ' + last if last else 'training'} {settings.name}", flush=True)
        atomic_write_json(done, {**record, "finished": False})  # creates run_dir
        overrides = {"dataset_dir": self.dataset_dir, "output_dir": run_dir, **settings.train_overrides()}
        if settings.cache_embeddings:  # one cache for every run (its manifest rebuilds it if the encoder differs)
            overrides["cache_dir"] = os.path.join(self.out, "embedding_cache")
        _run(_bundle_cmd("training", ["train.yaml"], overrides, self.bundle_dir), os.path.join(run_dir, "train.log"))
        if not os.path.isfile(model):
            raise SystemExit(f"{model}: the training wrote no model (no validation ran); see {run_dir}/train.log.")
        atomic_write_json(done, {**record, "finished": True})
        self._trained.add(settings.name)
        return run_dir

    def evaluate(self, settings: RunSettings, eval_mode: str) -> dict:
        """Evaluate the trained ``settings`` with ``eval_mode`` (reused when newer than the model); return its row."""
        run_dir = self.train(settings)
        path = os.path.join(run_dir, f"eval_{eval_mode}", "metrics_summary.json")
        fresh = os.path.isfile(path) and os.path.getmtime(path) >= os.path.getmtime(os.path.join(run_dir, "model.pt"))
        if fresh:
            print(f"reusing {settings.name} eval_{eval_mode}", flush=True)
        else:
            overrides = {"dataset_dir": self.dataset_dir, "output_dir": run_dir, **settings.eval_overrides(eval_mode)}
            cmd = _bundle_cmd("evaluating", ["train.yaml", "evaluate.yaml"], overrides, self.bundle_dir)
            _run(cmd, os.path.join(run_dir, f"eval_{eval_mode}.log"))
        with open(path) as f:
            values = scores(json.load(f), self.columns)
        cells = ", ".join(f"{c} {v}" for c, v in zip(self.columns, format_cells(values, self.columns)))
        print(f"  {settings.name} {eval_mode}: {cells}", flush=True)
        return {"run": settings.name, "eval_mode": eval_mode, "summary": path, "scores": values}

    def table1(self) -> tuple[dict, str]:
        """Table 1: the default model under each of :data:`TABLE1_MODES`."""
        rows = [{**self.evaluate(self.base, mode), "prompts": text} for mode, text in TABLE1_MODES.items()]
        md = [[r["eval_mode"], r["prompts"], *format_cells(r["scores"], self.columns)] for r in rows]
        return {"rows": rows}, markdown_table(["eval mode", "prompts", *self.columns], md)

    def table2(self, points: Sequence[int]) -> tuple[dict, str]:
        """Table 2: one model per ``Np`` in ``points``, automatic evaluation."""
        rows = [
            {"num_points": n, **self.evaluate(dataclasses.replace(self.base, num_points=n), "auto")} for n in points
        ]
        md = [[str(r["num_points"]), *format_cells(r["scores"], self.columns)] for r in rows]
        return {"rows": rows}, markdown_table(["Np", *self.columns], md)

    def table3(self, losses: Sequence[str]) -> tuple[dict, str]:
        """Table 3: one model per loss of :data:`LOSS_ROWS`, evaluated with generalized and with one-hot points."""
        rows, md = [], []
        train_w = "onehot (straight-through Gumbel)" if self.base.hard_points else "softmax"
        for loss in losses:
            settings = dataclasses.replace(self.base, loss=loss)
            row = {"loss": loss, "label": LOSS_ROWS[loss][0], "run": settings.name, "W in training": train_w}
            for key, (mode, w) in TABLE3_EVALS.items():
                row[key] = {**self.evaluate(settings, mode), "W at inference": w}
                md.append([row["label"], train_w, w, *format_cells(row[key]["scores"], self.columns)])
            generalized, one_hot = row["generalized"]["scores"], row["one_hot"]["scores"]
            row["delta"] = {
                c: None if None in (generalized[c], one_hot[c]) else generalized[c] - one_hot[c] for c in self.columns
            }
            md.append(
                [row["label"], train_w, "Δ generalized - one-hot", *format_cells(row["delta"], self.columns, True)]
            )
            rows.append(row)
        return {"rows": rows}, markdown_table(["training loss", "W in training", "W at inference", *self.columns], md)

    def write(self, table: str, result: dict, markdown: str) -> None:
        """``<out>/<table>.json`` and ``<out>/<table>.md``, atomically."""
        settings = dataclasses.asdict(self.base)
        header = (
            f"# {table}: AI-SAM (arXiv 2312.03119) {table.replace('table', 'Table ')}\n\n"
            f"Settings: {json.dumps(settings)}; dataset `{self.dataset_dir}`. Dice in percent, HD95 in pixels of the "
            f"evaluation grid (aisam protocol).\n\n"
        )
        atomic_write_json(
            os.path.join(self.out, f"{table}.json"),
            {"table": table, "settings": settings, "dataset_dir": self.dataset_dir, "columns": self.columns, **result},
        )

        def _write(tmp: str) -> None:
            with open(tmp, "w") as f:
                f.write(header + markdown + "\n")

        atomic_write_bytes(os.path.join(self.out, f"{table}.md"), _write, suffix=".md")


def _bundle_default(bundle: str, key: str):
    """``key`` of the bundle's ``train.yaml`` (a plain value)."""
    with open(os.path.join("bundles", bundle, "configs", "train.yaml")) as f:
        return yaml.safe_load(f)[key]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m aisam_monai.experiments", description=__doc__.split("\n\n")[0])
    parser.add_argument("table", choices=("table1", "table2", "table3"))
    parser.add_argument("--dataset_dir", required=True, help="the prepared dataset")
    parser.add_argument("--out", required=True, help="output folder (runs/ and the tables)")
    parser.add_argument("--bundle", default="acdc", choices=("acdc", "synapse"))
    parser.add_argument("--sam_type", default="litemedsam")
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--learning_rate", type=float, default=None, help="default: the bundle's")
    parser.add_argument("--points", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="table2: the Np values")
    parser.add_argument("--rows", nargs="+", choices=tuple(LOSS_ROWS), default=list(LOSS_ROWS), help="table3")
    parser.add_argument("--cache_embeddings", action="store_true", help="the bundle's embedding cache")
    parser.add_argument("--cache_augmentations", type=int, default=None, metavar="K", help="the bundle's key")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="any bundle key")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """The shared :class:`RunSettings` of the parsed options; ``--override hard_points=...`` sets ``hard_points``."""
    overrides = []
    hard_points = None
    for item in args.override:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--override {item}: give KEY=VALUE.")
        if key in _RESERVED:
            raise SystemExit(f"--override {key}: set by the tables or by its own option.")
        if key == "hard_points":
            hard_points = _bool(value)
        else:
            overrides.append((key, value))
    if hard_points is None:
        hard_points = bool(_bundle_default(args.bundle, "hard_points"))
    return RunSettings(
        bundle=args.bundle,
        sam_type=args.sam_type,
        image_size=args.image_size,
        epochs=args.epochs,
        num_points=int(_bundle_default(args.bundle, "num_points")),
        hard_points=hard_points,
        learning_rate=args.learning_rate,
        cache_embeddings=args.cache_embeddings,
        cache_augmentations=args.cache_augmentations,
        overrides=tuple(overrides),
    )


def main(argv: Sequence[str] | None = None) -> dict:
    """Run one table (see the module's docstring); return its JSON."""
    args = parse_args(argv)
    bundle_config = os.path.join("bundles", args.bundle, "configs", "train.yaml")
    if not os.path.isfile(bundle_config):
        raise SystemExit(f"{bundle_config}: not found; run the experiments from the repository root.")
    experiments = Experiments(args.dataset_dir, args.out, settings_from_args(args))
    experiments.check_dataset()
    print(f"{args.table}: runs in {os.path.join(args.out, 'runs')}", flush=True)
    if args.table == "table1":
        result, markdown = experiments.table1()
    elif args.table == "table2":
        result, markdown = experiments.table2(args.points)
    else:
        result, markdown = experiments.table3(args.rows)
    experiments.write(args.table, result, markdown)
    print(f"\n{markdown}\n\nwritten: {os.path.join(args.out, args.table)}.md and .json", flush=True)
    return result


if __name__ == "__main__":
    main()
