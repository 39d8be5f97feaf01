# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""End-to-end bundle tests through ``python -m monai.bundle run ...`` on tiny synthetic volumes (tiny model, S=64)."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from aisam_monai.data import SYNAPSE_LABELS
from aisam_monai.networks import AISAM

torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = {"sam_type": "tiny", "image_size": 64, "sw_batch_size": 16, "progress": False, "batch_size": 2}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _configs(bundle: str, *names: str) -> str:
    files = [f"bundles/{bundle}/configs/{n}" for n in names]
    return files[0] if len(files) == 1 else str(files)


def _cmd(run_id: str, config_file: str, **overrides) -> list[str]:
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config_file]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def _run(cmd: list[str], timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def _prepare(root: str, dataset: str, layout_args: list[str]) -> str:
    raw, out = os.path.join(root, f"{dataset}_raw"), os.path.join(root, dataset)
    for cmd in (
        [sys.executable, "-m", "aisam_monai.data.synthetic", "--out", raw, "--seed", "0", *layout_args],
        [sys.executable, "-m", "aisam_monai.data.prepare", dataset, "--source", raw, "--out", out],
    ):
        subprocess.run(cmd, cwd=REPO, env=ENV, check=True, capture_output=True)
    return out


class _BundleCase(unittest.TestCase):
    bundle = "acdc"
    layout_args = ["--layout", "acdc", "--cases", "5", "--size", "40"]
    num_classes = 4
    csv_classes = {"RV", "Myo", "LV"}
    eval_mode = "gt_label"

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp()
        cls.data = _prepare(cls.root, cls.bundle, cls.layout_args)
        cls.out = os.path.join(cls.root, "out")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def _check(self, result: subprocess.CompletedProcess) -> str:
        text = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, text[-3000:])
        return text

    def _train_evaluate_infer(self):
        common = {"dataset_dir": self.data, "output_dir": self.out, **FAST}
        train = _cmd(
            "training", _configs(self.bundle, "train.yaml"), epochs=1, val_interval=1, tracking="mlflow", **common
        )
        text = self._check(_run(train))
        self.assertIn("val_mean_dice", text)
        self._check_mlflow(os.path.join(self.out, "mlruns.db"))
        for name in ("model.pt", "checkpoint_epoch=1.pt"):
            self.assertTrue(os.path.isfile(os.path.join(self.out, name)), name)
        self.assertTrue(glob.glob(os.path.join(self.out, "events.out.tfevents.*")))

        config = _configs(self.bundle, "train.yaml", "evaluate.yaml")
        self._check(_run(_cmd("evaluating", config, eval_mode=self.eval_mode, **common)))
        folder = os.path.join(self.out, f"eval_{self.eval_mode}")
        with open(os.path.join(folder, "metrics_per_case.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(list(rows[0]), ["case", "protocol", "class", "dice", "hd95", "hd95_mm"])
        self.assertEqual({r["class"] for r in rows}, self.csv_classes)
        self.assertEqual({r["protocol"] for r in rows}, {"aisam", "transunet"})
        with open(os.path.join(folder, "metrics_summary.json")) as f:
            summary = json.load(f)
        self.assertEqual(summary["eval_mode"], self.eval_mode)
        self.assertEqual(len(rows), 2 * summary["protocols"]["aisam"]["num_cases"] * (self.num_classes - 1))

        with open(os.path.join(self.data, "datalist.json")) as f:
            case = json.load(f)["test"][0]
        image = os.path.join(self.data, case["image"])
        checkpoint = os.path.join(self.out, "model.pt")  # the run's best model (the bundle's default is models/)
        config = _configs(self.bundle, "inference.yaml")
        self._check(_run(_cmd("inference", config, input_image=image, checkpoint=checkpoint, **common)))
        pred = nib.load(os.path.join(self.out, "predictions", f"{case['case']}_seg.nii.gz"))
        source = nib.load(image)
        self.assertEqual(pred.shape, source.shape)
        np.testing.assert_allclose(pred.affine, source.affine, atol=1e-5)
        self.assertLess(int(np.asanyarray(pred.dataobj).max()), self.num_classes)
        with open(os.path.join(self.out, "predictions", f"{case['case']}_points.json")) as f:
            points = json.load(f)
        self.assertEqual(len(points["slices"]), source.shape[2])
        self.assertEqual(len(points["classes"]), self.num_classes)

    def _check_mlflow(self, db: str):
        """``--tracking mlflow`` (MONAI's default settings) recorded the training loss and the validation Dice."""
        import mlflow

        client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{db}")
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        metrics = set().union(*(r.data.metrics for r in runs))
        self.assertTrue({"train_loss", "val_mean_dice", "train_loss_seg"} <= metrics, metrics)

    def _check_properties(self):
        """MONAI's property checks (the zoo's naming rules) of the train and inference configs."""
        folder = os.path.join(REPO, "bundles", self.bundle, "configs")
        checkpoint = os.path.join(self.root, "properties", "model.pt")
        os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
        net = AISAM(num_classes=self.num_classes, sam_type="tiny", image_size=FAST["image_size"])
        torch.save(net.state_dict(), checkpoint)
        for kind, name in (("train", "train.yaml"), ("infer", "inference.yaml")):
            workflow = ConfigWorkflow(
                config_file=os.path.join(folder, name),
                workflow_type=kind,
                meta_file=os.path.join(folder, "metadata.json"),
                init_id="no_such_id",  # parse only
                dataset_dir=self.data,
                output_dir=os.path.dirname(checkpoint),
                **({"checkpoint": checkpoint} if kind == "infer" else {}),  # inference reads models/model.pt by default
                **FAST,
            )
            workflow.initialize()
            self.assertFalse(workflow.check_properties(), f"{self.bundle} {kind}")  # None or [] when all pass


class TestACDCBundle(_BundleCase):
    def test_train_evaluate_infer(self):
        self._train_evaluate_infer()

    def test_config_properties(self):
        self._check_properties()

    def test_decoder_learning_rate(self):
        """``--decoder_learning_rate`` gives SAM's mask decoder its own learning rate in the bundle's optimizer."""

        def train_config(**overrides) -> ConfigParser:
            parser = ConfigParser()
            parser.read_config(os.path.join(REPO, "bundles", self.bundle, "configs", "train.yaml"))
            parser.update({"dataset_dir": self.data, "output_dir": self.out, **FAST, **overrides})
            return parser

        parser = train_config()
        (group,) = parser.get_parsed_content("optimizer").param_groups
        self.assertEqual(group["lr"], parser.get_parsed_content("learning_rate"))
        parser = train_config(decoder_learning_rate=1e-5)
        rest, decoder = parser.get_parsed_content("optimizer").param_groups
        self.assertEqual((rest["lr"], decoder["lr"]), (parser.get_parsed_content("learning_rate"), 1e-5))
        network = parser.get_parsed_content("network")
        self.assertEqual({id(p) for p in decoder["params"]}, {id(p) for p in network.sam.mask_decoder.parameters()})

    def test_killed_training_resumes(self):
        out = os.path.join(self.root, "resume")
        common = {"dataset_dir": self.data, "output_dir": out, **FAST, "val_interval": 5}
        cmd = _cmd("training", _configs(self.bundle, "train.yaml"), epochs=50, **common)
        proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 150
            while time.time() < deadline and not glob.glob(os.path.join(out, "checkpoint_epoch=*.pt")):
                time.sleep(0.5)
            time.sleep(1.0)  # let the first checkpoint finish its atomic write
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        saved = glob.glob(os.path.join(out, "checkpoint_epoch=*.pt"))
        self.assertTrue(saved, "no checkpoint before the kill")
        epoch = max(int(p.rsplit("=", 1)[1][:-3]) for p in saved)
        self.assertLess(epoch, 50)
        text = self._check(_run(_cmd("training", _configs(self.bundle, "train.yaml"), epochs=epoch + 1, **common)))
        files = sorted(os.listdir(out))
        self.assertIn(f"at epoch {epoch} of", text, f"files {files}, log tail:\n{text[-2000:]}")
        self.assertIn(f"checkpoint_epoch={epoch + 1}.pt", files)
        self.assertNotIn(f"checkpoint_epoch={epoch}.pt", files)

    def test_two_process_gloo_training(self):
        out = os.path.join(self.root, "ddp")
        config = _configs(self.bundle, "train.yaml", "multi_gpu_train.yaml")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
        cmd += _cmd("training", config, epochs=1, val_interval=1, dataset_dir=self.data, output_dir=out, **FAST)[1:]
        text = self._check(_run(cmd, timeout=240))
        self.assertIn("val_mean_dice", text)
        self.assertTrue(os.path.isfile(os.path.join(out, "checkpoint_epoch=1.pt")))
        with open(os.path.join(out, "val", "metrics_summary.json")) as f:
            summary = json.load(f)
        self.assertEqual(summary["protocols"]["aisam"]["num_cases"], 2)  # both validation volumes, gathered


class TestSynapseBundle(_BundleCase):
    bundle = "synapse"
    layout_args = ["--layout", "synapse", "--cases", "5", "--size", "40", "--slices", "5", "7"]
    num_classes = 9
    csv_classes = set(list(SYNAPSE_LABELS.values())[1:])  # the bundle's class_names
    eval_mode = "gt_box"

    def test_train_evaluate_infer(self):
        self._train_evaluate_infer()

    def test_config_properties(self):
        self._check_properties()


if __name__ == "__main__":
    unittest.main()
