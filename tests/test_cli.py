# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import unittest
from unittest import mock

import nibabel as nib
import numpy as np
import torch
import yaml

from aisam_monai.cli import main
from aisam_monai.interactive import AISAMPredictor, slice_points_from_record
from tests.interactive.tiny_model import CONFIG, disks, trained_model

H, W, D = 96, 160, 4
LEFT, RIGHT = (0.3 * W, 0.45 * H), (0.72 * W, 0.6 * H)  # (x, y)
AFFINE = np.array([[0.0, -1.5, 0.0, 40.0], [1.5, 0.0, 0.0, -20.0], [0.0, 0.0, 8.0, 5.0], [0.0, 0.0, 0.0, 1.0]])


def run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


class TestCommandLine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.image = os.path.join(d, "case.nii.gz")
        volume = np.stack([disks(H, W, LEFT, RIGHT, 9.0)] * D, -1) * 300.0 + 50.0  # raw intensities
        nib.save(nib.Nifti1Image(volume.astype(np.float32), AFFINE), cls.image)
        cls.checkpoint = os.path.join(d, "model.pt")
        torch.save({"model": trained_model().state_dict()}, cls.checkpoint)
        cls.config = os.path.join(d, "model.yaml")
        with open(cls.config, "w") as f:
            yaml.safe_dump(
                {
                    "network_def": {"_target_": "aisam_monai.networks.AISAM", **CONFIG},
                    "class_names": ["disk"],
                    "intensity": {"kind": "range", "a_min": 50.0, "a_max": 350.0},
                },
                f,
            )
        cls.model_args = ["--config", cls.config, "--checkpoint", cls.checkpoint, "--no-progress"]
        cls.seg = os.path.join(d, "seg.nii.gz")
        cls.points = os.path.join(d, "points.json")
        code, err = run("segment", cls.image, *cls.model_args, "--out", cls.seg, "--points-out", cls.points)
        assert code == 0, err

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name: str) -> str:
        return os.path.join(self.tmp.name, name)

    def write_edits(self, name: str, edits) -> str:
        with open(self.path(name), "w") as f:
            json.dump(edits, f)
        return self.path(name)

    def assert_aligned(self, path: str) -> np.ndarray:
        out = nib.load(path)
        self.assertEqual(out.shape, (H, W, D))
        np.testing.assert_allclose(out.affine, AFFINE, atol=1e-5)
        self.assertEqual(out.get_data_dtype(), np.uint8)
        return np.asarray(out.dataobj)

    def test_round_trip(self):
        automatic = self.assert_aligned(self.seg)
        with open(self.points) as f:
            record = json.load(f)
        self.assertEqual(record["classes"], ["background", "disk"])
        self.assertEqual(len(record["slices"]), D)
        self.assertEqual(len(record["slices"][1]["points"]["disk"]), 4)

        box = [10, 20, 70, 75]  # [i1, j1, i2, j2] around the left disk
        edits = [
            {"op": "delete_point", "slice": 1, "class": c, "index": n} for c in ("background", "disk") for n in range(4)
        ]
        edits += [
            {"op": "add_point", "slice": 1, "class": "background", "at": [3, 3]},
            {"op": "add_point", "slice": 1, "class": "disk", "at": [RIGHT[1], RIGHT[0]]},
            {"op": "set_present_classes", "slice": 3, "classes": ["background"]},
            {"op": "set_box", "slice": 0, "class": 1, "box": box},
        ]
        edits_file = self.write_edits("edits.json", {"edits": edits})
        refined_path, refined_points = self.path("refined.nii.gz"), self.path("refined_points.json")
        code, err = run("refine", self.image, *self.model_args, "--edits", edits_file, "--out", refined_path,
                        "--points-out", refined_points)  # fmt: skip
        self.assertEqual(code, 0, err)
        refined = self.assert_aligned(refined_path)
        np.testing.assert_array_equal(refined[..., 2], automatic[..., 2])  # unedited slice
        self.assertEqual(int(refined[..., 3].sum()), 0)  # class declared absent
        outside = np.ones((H, W), dtype=bool)
        outside[box[0] : box[2] + 1, box[1] : box[3] + 1] = False
        self.assertFalse(bool(refined[..., 0][outside].any()))  # box
        right = disks(H, W, RIGHT, RIGHT, 9.0) > 0
        left = disks(H, W, LEFT, LEFT, 9.0) > 0
        self.assertGreater(refined[..., 1][right].mean(), 0.6)  # the click's disk only
        self.assertLess(refined[..., 1][left].mean(), 0.1)
        with open(refined_points) as f:
            record = json.load(f)
        prompts = record["slices"][1]["prompts"]
        self.assertEqual([(p["class"], p["generated"]) for p in prompts], [("background", False), ("disk", False)])
        self.assertEqual(record["slices"][3]["present"], ["background"])
        points, labels = slice_points_from_record(record, 3)  # the absent class's points are not drawn
        self.assertEqual(tuple(points.shape), (2, 4, 2))
        self.assertTrue(bool((labels[1] == -1).all()) and bool((labels[0] == 1).all()))

        # with the earlier segmentation only the edited slices are recomputed, with the same result
        again = self.path("refined_again.nii.gz")
        code, err = run(
            "refine", self.image, *self.model_args, "--edits", edits_file, "--out", again, "--seg", self.seg
        )
        self.assertEqual(code, 0, err)
        np.testing.assert_array_equal(self.assert_aligned(again), refined)

        figure = self.path("fig.png")
        code, err = run("show", self.image, "--seg", refined_path, "--points", refined_points, "--slices", "0", "1",
                        "--out", figure)  # fmt: skip
        self.assertEqual(code, 0, err)
        with open(figure, "rb") as f:
            self.assertEqual(f.read(4), b"\x89PNG")

    def test_bad_edits_fail_with_one_line(self):
        cases = [
            ({"op": "add_point", "slice": 0, "class": "liver", "at": [3, 3]}, "unknown class 'liver'"),
            ({"op": "add_point", "slice": 9, "class": "disk", "at": [3, 3]}, "slice 9 does not exist"),
            ({"op": "add_point", "slice": 0, "class": "disk", "at": [3, 200]}, "outside the image"),
            ({"op": "move_point", "slice": 0, "class": "disk", "index": 7, "to": [3, 3]}, "index must be"),
            ({"op": "add_point", "slice": 0, "class": "disk", "at": [3, 3], "size": 2}, "unexpected \\['size'\\]"),
            ({"op": "paint", "slice": 0}, "unknown op 'paint'"),
        ]
        for n, (edit, message) in enumerate(cases):
            edits = self.write_edits(f"bad{n}.json", [{"op": "clear", "slice": 0}, edit])
            code, err = run("refine", self.image, *self.model_args, "--edits", edits, "--out", self.path("x.nii.gz"))
            self.assertEqual(code, 2)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertRegex(err, f"{edits}: edit 1 .*{message}")
        self.assertFalse(os.path.exists(self.path("x.nii.gz")))

    def test_bad_files(self):
        broken = self.path("broken.nii.gz")
        with open(broken, "w") as f:
            f.write("not an image")
        code, err = run("segment", broken, *self.model_args, "--out", self.path("y.nii.gz"))
        self.assertEqual(code, 2)
        self.assertIn(broken, err)
        code, err = run("segment", self.image, "--config", self.config, "--checkpoint", self.path("none.pt"),
                        "--out", self.path("y.nii.gz"))  # fmt: skip
        self.assertEqual(code, 2)
        self.assertIn("none.pt", err)
        code, err = run("show", self.image, "--seg", self.seg, "--slices", "7", "--out", self.path("f.png"))
        self.assertEqual(code, 2)
        self.assertIn("slice 7 does not exist", err)

    def test_show_picks_slices_from_the_label(self):
        """Without --slices, the slices shown are those with foreground in --label (else --seg)."""
        label, seg = np.zeros((H, W, D), np.uint8), np.zeros((H, W, D), np.uint8)
        label[2:5, 2:5, [1, 2]] = 1
        seg[2:5, 2:5, [3]] = 1
        for name, vol in (("gt.nii.gz", label), ("pred.nii.gz", seg)):
            nib.save(nib.Nifti1Image(vol, AFFINE), self.path(name))
        shown = {}
        with mock.patch("aisam_monai.cli.plot_slices", side_effect=lambda images, **kw: shown.update(kw)):
            for args, expected in (
                (("--label", self.path("gt.nii.gz"), "--seg", self.path("pred.nii.gz")), ["slice 1", "slice 2"]),
                (("--seg", self.path("pred.nii.gz")), ["slice 3"]),
            ):
                self.assertEqual(run("show", self.image, *args, "--out", self.path("g.png"))[0], 0)
                self.assertEqual(shown["titles"], expected)

    def test_plain_config(self):
        predictor = AISAMPredictor.from_checkpoint(self.checkpoint, dict(CONFIG), progress=False)
        self.assertEqual(predictor.class_names, ["class_0", "class_1"])
        predictor.set_volume(self.image)
        self.assertEqual(tuple(predictor.predict_volume().shape), (H, W, D))


if __name__ == "__main__":
    unittest.main()
