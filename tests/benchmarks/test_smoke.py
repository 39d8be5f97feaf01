# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Smoke run of every benchmark script on the tiny model (not a timed test: results are only checked for shape)."""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import shlex
import tempfile
import unittest

import torch

from benchmarks import bench_cache, bench_editor, bench_flops, bench_forward, bench_train_step, bench_volume
from benchmarks.reference import reference_forward

torch.set_num_threads(1)
PAGE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "benchmarks.md"
)


class TestDocumentedCommands(unittest.TestCase):
    def test_every_command_of_the_page_parses(self):
        """docs/benchmarks.md's commands (minutes to hours each; the smoke runs below run every script) are valid:
        optional parts in brackets included, the placeholders S and E given values."""
        with open(PAGE) as f:
            commands = re.findall(r"python -m benchmarks\.(\w+)([^`\n]*)", f.read())
        self.assertGreaterEqual(len(commands), 10)
        for module, args in commands:
            argv = [{"S": "128", "E": "2"}.get(a, a) for a in shlex.split(args.replace("[", "").replace("]", ""))]
            with self.subTest(module=module, argv=argv):
                importlib.import_module(f"benchmarks.{module}").parse_args(argv)


class TestBenchmarkSmoke(unittest.TestCase):
    def _run(self, module, name: str) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, f"{name}.json")
            record = module.main(["--smoke", "--threads", "1", "--out", out])
            with open(out) as f:
                self.assertEqual(json.load(f), json.loads(json.dumps(record)))
        self.assertEqual(record["benchmark"], name)
        self.assertEqual(record["env"]["device"], "cpu")
        return record

    def test_cache(self):
        record = self._run(bench_cache, "cache")
        self.assertEqual([r["path"] for r in record["rows"]], ["images", "cache"])
        self.assertTrue(all(r["first_epoch_s"] > 0 and r["later_epochs_mean_s"] > 0 for r in record["rows"]))
        self.assertGreater(record["summary"]["epoch_speedup"], 0)

    def test_editor(self):
        (row,) = self._run(bench_editor, "editor")["rows"]
        self.assertEqual((row["sam_type"], row["image_size"]), ("tiny", 64))
        self.assertTrue(row["edit_add_ms"] > 0 and row["edit_move_ms"] > 0)

    def test_forward(self):
        record = self._run(bench_forward, "forward")
        paths = {(r["path"], r["batch"]) for r in record["rows"]}
        self.assertEqual(paths, {("aisam", 1), ("aisam", 2), ("reference", 1)})
        (summary,) = record["summary"]
        self.assertGreater(summary["best_slices_per_s"], 0)
        self.assertAlmostEqual(
            summary["ratio_vs_baseline"], summary["best_slices_per_s"] / summary["baseline_slices_per_s"]
        )
        (reference,) = [r for r in record["rows"] if r["path"] == "reference"]
        self.assertLess(reference["max_logit_diff"], 1e-4)  # fp32: the fast path equals the reference recipe
        self.assertEqual(reference["label_agreement"], 1.0)

    def test_train_step(self):
        record = self._run(bench_train_step, "train_step")
        self.assertEqual([r["path"] for r in record["rows"]], ["aisam", "loop"])
        self.assertTrue(all(r["samples_per_s"] > 0 for r in record["rows"]))
        self.assertGreater(record["summary"]["trainable_parameters"], 0)

    def test_train_step_from_embeddings(self):
        """--from-embeddings: the decoder-only step, the frozen encoder without LoRA, no loop step."""
        with tempfile.TemporaryDirectory() as tmp:
            record = bench_train_step.main(["--smoke", "--threads", "1", "--from-embeddings", "--out", f"{tmp}/t.json"])
        self.assertEqual([(r["path"], r["input"]) for r in record["rows"]], [("aisam", "embedding")])
        self.assertGreater(record["rows"][0]["samples_per_s"], 0)
        with_lora = bench_train_step.main(["--smoke", "--threads", "1", "--no-baseline"])
        self.assertLess(record["summary"]["trainable_parameters"], with_lora["summary"]["trainable_parameters"])

    def test_volume(self):
        record = self._run(bench_volume, "volume")
        cases = [(r["case"], r["path"]) for r in record["rows"]]
        self.assertEqual(cases, [(c, p) for c in ("acdc", "synapse") for p in ("streaming", "whole")])
        for row in record["rows"]:
            self.assertGreater(row["seconds"], 0)
            self.assertGreaterEqual(row["peak_rss_mb"], row["rss_before_mb"] - 1)

    def test_flops(self):
        record = self._run(bench_flops, "flops")
        (row,) = record["rows"]
        self.assertGreater(row["encoder_gflop"], 0)
        self.assertGreater(row["decoder_gflop"], 0)
        self.assertTrue(math.isclose(row["total_gflop"], row["encoder_gflop"] + row["decoder_gflop"]))

    def test_reference_forward_matches_batched_in_eval(self):
        """The baseline's per-class loop computes what the batched model computes (eval: no noise)."""
        torch.manual_seed(0)
        model = bench_forward.build_model("tiny", 64, 3, torch.device("cpu")).eval()
        image = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            loop = reference_forward(model, image)
            batched = model(image)
        for key in ("logits", "class_logits", "point_weights", "point_features"):
            torch.testing.assert_close(loop[key], batched[key], atol=1e-5, rtol=1e-5, msg=key)


if __name__ == "__main__":
    unittest.main()
