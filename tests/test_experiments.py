# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""``python -m aisam_monai.experiments``: the run names and bundle overrides, bad input, and table3 + table2 end to end
on a tiny synthetic dataset (tiny model, S=64, one epoch; nine bundle runs, about two minutes on two cores)."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

from aisam_monai.experiments import (
    LOSS_ROWS,
    Experiments,
    RunSettings,
    format_cells,
    main,
    parse_args,
    scores,
    settings_from_args,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {"OMP_NUM_THREADS": "1", "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
TABLES = ("table1", "table2", "table3")
FAST = ["--sam_type", "tiny", "--image_size", "64", "--epochs", "1", "--override", "batch_size=2"]


def _settings_of(*argv: str) -> RunSettings:
    cwd = os.getcwd()
    os.chdir(REPO)  # the bundle's train.yaml gives the defaults of num_points and hard_points
    try:
        return settings_from_args(parse_args(["table1", "--dataset_dir", "d", "--out", "o", *argv]))
    finally:
        os.chdir(cwd)


def _main(*argv: str) -> str:
    """Run the command from the repository root; its printed output."""
    cwd, out = os.getcwd(), io.StringIO()
    os.chdir(REPO)
    try:
        with mock.patch.dict(os.environ, ENV), contextlib.redirect_stdout(out):
            main(list(argv))
    finally:
        os.chdir(cwd)
    return out.getvalue()


class TestRunSettings(unittest.TestCase):
    def test_names_spell_the_settings(self):
        self.assertEqual(RunSettings().name, "acdc_litemedsam_s128_e40_np4_hard_full")
        self.assertEqual(_settings_of().name, "acdc_litemedsam_s128_e40_np4_hard_full")  # the bundle's defaults
        soft = RunSettings(bundle="synapse", sam_type="tiny", image_size=64, epochs=2, num_points=8, hard_points=False)
        self.assertEqual(
            [dataclasses.replace(soft, loss=loss).name for loss in LOSS_ROWS],
            [f"synapse_tiny_s64_e2_np8_soft_{loss}" for loss in LOSS_ROWS],
        )
        extra = [RunSettings(learning_rate=1e-3), RunSettings(learning_rate=2e-3), RunSettings(cache_embeddings=True)]
        extra.append(RunSettings(overrides=(("batch_size", "2"),)))
        names = [s.name for s in extra]
        self.assertEqual(len(set(names)), len(names))
        for name in names:
            self.assertRegex(name, r"^acdc_litemedsam_s128_e40_np4_hard_full_[0-9a-f]{8}$")
        with self.assertRaises(ValueError):
            RunSettings(loss="most")

    def test_bundle_overrides(self):
        train = RunSettings(sam_type="tiny", epochs=10, loss="no_diversity_sharpness").train_overrides()
        self.assertEqual(
            train,
            {"sam_type": "tiny", "image_size": 128, "epochs": 10, "val_interval": 5, "num_points": 4,
             "hard_points": True, "diversity_weight": 0.0, "sharpness_weight": 0.0, "progress": False},
        )  # fmt: skip
        self.assertFalse(RunSettings(loss="none").train_overrides()["prompt_heuristic_loss"])
        self.assertEqual(RunSettings(loss="no_diversity").train_overrides()["diversity_weight"], 0.0)
        # the caching keys go to the training only, and only when given
        cached = RunSettings(cache_embeddings=True, cache_augmentations=3, overrides=(("seed", "1"),))
        self.assertEqual(
            {k: v for k, v in cached.train_overrides().items() if k.startswith("cache") or k == "seed"},
            {"cache_embeddings": True, "cache_augmentations": 3, "seed": "1"},
        )
        evaluation = cached.eval_overrides("soft_points")
        self.assertNotIn("cache_embeddings", evaluation)
        self.assertNotIn("cache_augmentations", evaluation)
        self.assertEqual((evaluation["eval_mode"], evaluation["seed"]), ("soft_points", "1"))

    def test_cells(self):
        values = {"DICE": 0.5, "HD95": 3.25, "RV": 0.123456, "Myo": 1.0, "LV": None}
        self.assertEqual(format_cells(values, list(values)), ["50.00", "3.25", "12.35", "100.00", "n/a"])
        self.assertEqual(format_cells({"DICE": 0.01, "HD95": -1.0}, ["DICE", "HD95"], signed=True), ["+1.00", "-1.00"])

    def test_options(self):
        settings = _settings_of("--override", "hard_points=false", "--override", "seed=3", "--cache_embeddings")
        self.assertEqual(
            (settings.hard_points, settings.overrides, settings.cache_embeddings), (False, (("seed", "3"),), True)
        )
        for bad in ("num_points=2", "epochs=3", "seed", "hard_points=maybe"):
            with self.assertRaises(SystemExit, msg=bad):
                _settings_of("--override", bad)


class TestPaperTablesPage(unittest.TestCase):
    def test_commands_parse(self):
        """The page's commands (hours each) are valid: tables and options parse; TestTablesEndToEnd runs them small."""
        with open(os.path.join(REPO, "docs", "paper_tables.md")) as f:
            blocks = re.findall(r"```bash\n(.*?)```", f.read(), re.S)
        commands = [shlex.split(line) for block in blocks for line in block.splitlines() if line.strip()]
        self.assertEqual([c[:4] for c in commands], [["python", "-m", "aisam_monai.experiments", t] for t in TABLES])
        for command in commands:  # the page's --dataset_dir and --out come after the helper's
            self.assertEqual(_settings_of(*command[4:]).name, "acdc_litemedsam_s128_e40_np4_hard_full")
        self.assertEqual(parse_args(commands[1][3:]).points, [1, 2, 4, 8, 16])

    def test_recorded_runs_parse(self):
        """The page's records of the measured runs (text blocks, half an hour of CPU each) name valid tables and
        options: the three tables with LiteMedSAM's current prompter (24 epochs)."""
        with open(os.path.join(REPO, "docs", "paper_tables.md")) as f:
            blocks = re.findall(r"```text\n(python -m aisam_monai.data.synthetic.*?)```", f.read(), re.S)
        recorded = []
        for block in blocks:
            lines = [line for line in block.splitlines() if "aisam_monai.experiments" in line]
            runs = [parse_args(shlex.split(line)[3:]) for line in lines]
            recorded.append([(args.table, args.epochs) for args in runs])
            for args in runs:
                self.assertEqual((args.sam_type, args.image_size, args.cache_embeddings), ("litemedsam", 128, True))
        self.assertEqual(recorded, [[("table1", 24), ("table3", 24), ("table2", 24)]])


class TestBadInput(unittest.TestCase):
    def test_missing_dataset_is_one_line_before_training(self):
        with tempfile.TemporaryDirectory() as d:
            empty = os.path.join(d, "empty")
            os.makedirs(empty)
            for dataset, expected in ((os.path.join(d, "nothing"), "dataset folder not found"), (empty, "datalist")):
                with self.assertRaises(SystemExit) as caught:
                    _main("table1", "--dataset_dir", dataset, "--out", os.path.join(d, "out"))
                self.assertIn(expected, str(caught.exception))
                self.assertEqual(len(str(caught.exception).splitlines()), 1)
            self.assertFalse(os.path.exists(os.path.join(d, "out")))


class TestTablesEndToEnd(unittest.TestCase):
    """table3 (full loss and none) then table2 (Np 1 and 4: Np 4 is table3's full-loss model), then both again."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp()
        raw, cls.data, cls.out = (os.path.join(cls.root, d) for d in ("raw", "acdc", "out"))
        for cmd in (
            [sys.executable, "-m", "aisam_monai.data.synthetic", "--layout", "acdc", "--out", raw, "--cases", "3",
             "--size", "40", "--seed", "0"],
            [sys.executable, "-m", "aisam_monai.data.prepare", "acdc", "--source", raw, "--out", cls.data],
        ):  # fmt: skip
            subprocess.run(cmd, cwd=REPO, env={**os.environ, **ENV}, check=True, capture_output=True)
        common = ["--dataset_dir", cls.data, "--out", cls.out, *FAST]
        cls.argv = {
            "table3": ["table3", *common, "--rows", "full", "none"],
            "table2": ["table2", *common, "--points", "1", "4"],
        }
        cls.first = {t: _main(*cls.argv[t]) for t in ("table3", "table2")}
        cls.models = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(cls.out, "runs", "*", "model.pt"))}
        cls.second = {t: _main(*cls.argv[t]) for t in ("table3", "table2")}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def _read(self, table: str) -> tuple[dict, list[list[str]], list[str]]:
        with open(os.path.join(self.out, f"{table}.json")) as f:
            result = json.load(f)
        with open(os.path.join(self.out, f"{table}.md")) as f:
            lines = [line for line in f.read().splitlines() if line.startswith("|")]
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
        return result, cells[2:], cells[0]

    def _check_scores(self, row: dict, cells: list[str], columns: list[str]) -> None:
        """The row's scores and Markdown cells are those of its run's metrics_summary.json."""
        with open(row["summary"]) as f:
            expected = scores(json.load(f), columns)
        self.assertEqual(row["scores"], expected)
        self.assertEqual(cells[-len(columns) :], format_cells(expected, columns))

    def test_table3(self):
        result, rows, header = self._read("table3")
        columns = result["columns"]
        self.assertEqual(columns, ["DICE", "HD95", "RV", "Myo", "LV"])
        self.assertEqual(header, ["training loss", "W in training", "W at inference", *columns])
        self.assertEqual([r["loss"] for r in result["rows"]], ["full", "none"])
        self.assertTrue(result["settings"]["hard_points"])
        self.assertEqual([r[:3] for r in rows], [
            ["full loss", "onehot (straight-through Gumbel)", "softmax"],
            ["full loss", "onehot (straight-through Gumbel)", "onehot(argmax)"],
            ["full loss", "onehot (straight-through Gumbel)", "Δ generalized - one-hot"],
            ["w/o heuristic loss", "onehot (straight-through Gumbel)", "softmax"],
            ["w/o heuristic loss", "onehot (straight-through Gumbel)", "onehot(argmax)"],
            ["w/o heuristic loss", "onehot (straight-through Gumbel)", "Δ generalized - one-hot"],
        ])  # fmt: skip
        for row, (generalized, one_hot, delta) in zip(result["rows"], (rows[0:3], rows[3:6])):
            self.assertEqual(
                (row["generalized"]["eval_mode"], row["one_hot"]["eval_mode"]), ("soft_points", "one_hot_points")
            )
            self._check_scores(row["generalized"], generalized, columns)
            self._check_scores(row["one_hot"], one_hot, columns)
            g, o = row["generalized"]["scores"], row["one_hot"]["scores"]
            self.assertEqual(row["delta"], {c: g[c] - o[c] for c in columns})
            self.assertEqual(delta[3:], format_cells(row["delta"], columns, signed=True))
        self.assertIn("| full loss |", self.first["table3"])  # the table is printed at the end

    def test_table2_shares_the_runs(self):
        result, rows, header = self._read("table2")
        self.assertEqual(header, ["Np", *result["columns"]])
        self.assertEqual([r[0] for r in rows], ["1", "4"])
        for row, cells in zip(result["rows"], rows):
            self.assertEqual(row["eval_mode"], "auto")
            self._check_scores(row, cells, result["columns"])
        with open(os.path.join(self.out, "table3.json")) as f:
            full = json.load(f)["rows"][0]["run"]
        self.assertEqual(result["rows"][1]["run"], full)  # Np = 4 is table3's full-loss model
        self.assertIn(f"reusing {full} (trained)", self.first["table2"])
        self.assertEqual(len(self.models), 3)  # full, none, Np = 1
        for run in os.listdir(os.path.join(self.out, "runs")):
            with open(os.path.join(self.out, "runs", run, "experiment_run.json")) as f:
                record = json.load(f)
            self.assertEqual((record["finished"], record["settings"]["epochs"]), (True, 1))

    def test_second_invocation_reuses_every_run(self):
        for table, printed in self.second.items():
            self.assertNotIn("$ ", printed, table)  # no bundle command ran
            self.assertEqual(len(re.findall(r"^reusing \S+ \(trained\)$", printed, re.M)), 2, table)
        self.assertEqual(
            self.models, {p: os.path.getmtime(p) for p in glob.glob(os.path.join(self.out, "runs", "*", "model.pt"))}
        )

    def test_a_finished_run_with_other_settings_stops(self):
        settings = RunSettings(sam_type="tiny", image_size=64, epochs=1, overrides=(("batch_size", "2"),))
        other = Experiments(os.path.join(self.root, "elsewhere"), self.out, settings)  # another dataset
        self.assertTrue(os.path.isdir(other.run_dir(settings)))
        with self.assertRaisesRegex(SystemExit, "started with other settings"):
            other.train(settings)


if __name__ == "__main__":
    unittest.main()
