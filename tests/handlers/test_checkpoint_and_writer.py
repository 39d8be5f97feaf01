# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import json
import os
import pickle
import tempfile
import unittest
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from aisam_monai.handlers import AtomicCheckpointSaver, CheckedCheckpointLoader, PredictionWriter, ResumeHandler
from aisam_monai.io.checkpoint import check_checkpoint
from aisam_monai.networks import AISAM

torch.set_num_threads(1)


class TestCheckpointChecks(unittest.TestCase):
    def test_other_num_classes_and_missing(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.pt")
            torch.save(AISAM(num_classes=3, sam_type="tiny", image_size=64).state_dict(), path)
            net = AISAM(num_classes=4, sam_type="tiny", image_size=64)
            with self.assertRaisesRegex(
                ValueError, r"model.pt: checkpoint is for 3 classes but the network has num_classes=4"
            ):
                check_checkpoint(path, net)
            with self.assertRaisesRegex(ValueError, "for 3 classes"):
                CheckedCheckpointLoader(path, {"model": net})
            with self.assertRaisesRegex(FileNotFoundError, "nothere.pt: checkpoint file not found"):
                check_checkpoint(os.path.join(d, "nothere.pt"), net)
            torch.save({"model": net.state_dict(), "optimizer": {}}, path)
            check_checkpoint(path, net)  # a training checkpoint holding the state under "model" fits
            CheckedCheckpointLoader(path, {"model": net})

    def test_atomic_saver_keeps_the_last_good_file(self):
        class Boom:  # a save_dict entry whose state fails to serialise half-way through the file
            def state_dict(self):
                return {"ok": torch.zeros(1000), "bad": lambda: None}

        with tempfile.TemporaryDirectory() as d:
            net = torch.nn.Linear(3, 2)
            trainer = Engine(lambda e, b: None)
            saver = AtomicCheckpointSaver(d, {"model": net, "boom": Boom()}, save_interval=1, n_saved=1)
            saver.attach(trainer)
            trainer.state.epoch = 1
            saver._interval_checkpoint.to_save["boom"] = torch.nn.Linear(1, 1)  # epoch 1 saves fine
            saver.interval_completed(trainer)
            self.assertEqual(sorted(os.listdir(d)), ["checkpoint_epoch=1.pt"])
            saver._interval_checkpoint.to_save["boom"] = Boom()
            trainer.state.epoch = 2
            with self.assertRaises((AttributeError, pickle.PicklingError)):  # the lambda cannot be pickled
                saver.interval_completed(trainer)
            self.assertEqual(sorted(os.listdir(d)), ["checkpoint_epoch=1.pt"])  # intact; no partial or temporary file
            state = torch.load(os.path.join(d, "checkpoint_epoch=1.pt"), weights_only=True)
            torch.testing.assert_close(state["model"]["weight"], net.weight.detach())
            saver._interval_checkpoint.to_save["boom"] = torch.nn.Linear(1, 1)
            trainer.state.epoch = 3
            saver.interval_completed(trainer)
            self.assertEqual(
                sorted(os.listdir(d)), ["checkpoint_epoch=3.pt"]
            )  # the older file goes once this is written

    def test_resume_removes_temporaries_of_a_killed_save(self):
        with tempfile.TemporaryDirectory() as d:
            net = torch.nn.Linear(3, 2)
            torch.save({"model": net.state_dict()}, os.path.join(d, "checkpoint_epoch=1.pt"))
            for name in ("tmpa1b2_c3d", "tmp_notes.txt", "model.pt"):  # a killed save's leftover, two user files
                open(os.path.join(d, name), "w").close()
            ResumeHandler(d, {"model": net}).attach(Engine(lambda e, b: None))
            self.assertEqual(sorted(os.listdir(d)), ["checkpoint_epoch=1.pt", "model.pt", "tmp_notes.txt"])


class TestPredictionWriter(unittest.TestCase):
    def test_nifti_and_points(self):
        affine = torch.tensor(
            [[0.0, -1.5, 0, 10], [-1.5, 0, 0, 20], [0, 0, 5.0, -3], [0, 0, 0, 1]], dtype=torch.float64
        )
        pred = MetaTensor(
            torch.randint(0, 4, (1, 1, 12, 10, 3)), affine=affine[None], meta={"filename_or_obj": ["/d/case7.nii.gz"]}
        )
        pred.is_batch = True
        points = torch.rand(3, 4, 2, 3)
        state = SimpleNamespace(
            output={"pred": pred, "points": points, "class_probs": torch.full((3, 4), 0.9)},
            batch={"image": pred},
            iteration=1,
        )
        with tempfile.TemporaryDirectory() as d:
            writer = PredictionWriter(d, ["background", "RV", "Myo", "LV"])
            writer(SimpleNamespace(state=state))
            img = nib.load(os.path.join(d, "case7_seg.nii.gz"))
            self.assertEqual(img.shape, (12, 10, 3))
            np.testing.assert_allclose(img.affine, affine.numpy(), atol=1e-6)
            np.testing.assert_array_equal(np.asanyarray(img.dataobj), pred[0, 0].numpy())
            with open(os.path.join(d, "case7_points.json")) as f:
                record = json.load(f)
            self.assertEqual(os.listdir(d).__len__(), 2)  # no temporary files left
        self.assertEqual(record["shape"], [12, 10, 3])
        self.assertEqual(len(record["slices"]), 3)
        np.testing.assert_allclose(record["slices"][1]["points"]["Myo"], points[1, 2].numpy(), atol=1e-3)


if __name__ == "__main__":
    unittest.main()
