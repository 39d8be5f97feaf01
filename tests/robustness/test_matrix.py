# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Every entry point against every bad-input class (``inputs.py``): one line naming the file, no traceback, nothing
written and existing outputs untouched; the unusual inputs that should work give correct outputs (and warnings)."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import logging
import os
import sys
import tempfile
import unittest
from unittest import mock

import nibabel as nib
import numpy as np
import torch
import yaml
from monai.bundle import run as bundle_run
from parameterized import parameterized

from aisam_monai.cli import main as aisam_main
from aisam_monai.data.prepare import main as prepare_main
from aisam_monai.interactive import AISAMPredictor
from aisam_monai.io.errors import LOGGER_NAME, reported_cause
from aisam_monai.networks import AISAM
from tests.robustness.inputs import IMAGE_CASES, LABEL_CASES, NUM_CLASSES, SHAPE, Case, label, save, volume

try:
    from fastapi.testclient import TestClient

    from aisam_monai.serve import create_app
except ImportError:  # the serve extra
    TestClient = None

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLE = os.path.join(REPO, "bundles", "acdc")
SIZE = 32
OLD = b"an earlier output, to be left as it is"
CLASS_NAMES = ["background", "RV", "Myo", "LV"]


class _Logs(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def lines(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@contextlib.contextmanager
def _captured():
    """stdout/stderr text and the records of the input checks' logger."""
    out, err, logs = io.StringIO(), io.StringIO(), _Logs()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(logs)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err, logs
    finally:
        logger.removeHandler(logs)


class _Matrix(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        cls.model = AISAM(num_classes=NUM_CLASSES, sam_type="tiny", image_size=SIZE).eval()
        cls.checkpoint = os.path.join(cls.tmp.name, "model.pt")
        torch.save({"model": cls.model.state_dict()}, cls.checkpoint)
        cls.config = os.path.join(cls.tmp.name, "model.yaml")
        with open(cls.config, "w") as f:
            network = {"_target_": "aisam_monai.networks.AISAM", "num_classes": NUM_CLASSES, "sam_type": "tiny"}
            yaml.safe_dump({"network_def": {**network, "image_size": SIZE}, "class_names": CLASS_NAMES[1:]}, f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def folder(self, name: str) -> str:
        path = tempfile.mkdtemp(prefix=f"{name}_", dir=self.tmp.name)
        return path

    def input_file(self, case: Case, folder: str, name: str = "case.nii.gz") -> str:
        return case.make(os.path.join(folder, name))

    def assert_one_error_line(self, lines: list[str], path: str, case: Case):
        named = [ln for ln in lines if os.path.basename(path.rstrip("/")) in ln]
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(len(named), 1, f"the error line does not name {path}: {lines}")
        self.assertRegex(lines[0], case.error)

    def assert_no_traceback(self, *texts: str):
        for text in texts:
            self.assertNotIn("Traceback", text)

    def assert_warning(self, lines: list[str], case: Case):
        if case.warning:
            self.assertEqual(len([ln for ln in lines if case.warning in ln]), 1, lines)  # once, not per check

    def assert_labels(self, path: str, image: str):
        out = nib.load(path)
        self.assertEqual(out.shape[:3], SHAPE)
        self.assertEqual(out.get_data_dtype(), np.uint8)
        np.testing.assert_allclose(out.affine, nib.load(image).affine, atol=1e-5)
        labels = np.asarray(out.dataobj)
        self.assertLess(int(labels.max()), NUM_CLASSES)
        return labels


def _image_cases(entry: str) -> list:
    return [(c.name, c) for c in IMAGE_CASES if entry not in c.not_for]


class TestCommandLine(_Matrix):
    def _run(self, command: str, case: Case):
        folder = self.folder(f"{command}_{case.name}")
        image = self.input_file(case, folder)
        out = os.path.join(folder, "out", "seg.nii.gz")
        os.makedirs(os.path.dirname(out))
        with open(out, "wb") as f:
            f.write(OLD)
        argv = [command, image, "--config", self.config, "--checkpoint", self.checkpoint, "--out", out]
        argv += ["--no-progress", "--nonfinite", case.nonfinite]
        if command == "refine":
            edits = os.path.join(folder, "edits.json")
            with open(edits, "w") as f:
                json.dump([{"op": "add_point", "slice": 2, "at": [5, 6], "class": "LV"}], f)
            argv += ["--edits", edits]
        with _captured() as (stdout, stderr, _):
            code = aisam_main(argv)
        err = stderr.getvalue().splitlines()
        self.assert_no_traceback(stderr.getvalue())
        if case.error is not None:
            self.assertEqual(code, 2)
            self.assert_one_error_line([ln for ln in err if ": error:" in ln], image, case)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), OLD)
            self.assertEqual(os.listdir(os.path.dirname(out)), ["seg.nii.gz"])
        else:
            self.assertEqual(code, 0, err)
            self.assertEqual([ln for ln in err if ": error:" in ln], [])
            self.assert_warning(err, case)
            self.assert_labels(out, image)

    @parameterized.expand(
        [
            ("point_outside", {"op": "add_point", "slice": 2, "at": [SHAPE[0] + 5, 3], "class": "LV"}, "outside"),
            ("unknown_class", {"op": "add_point", "slice": 2, "at": [5, 6], "class": "liver"}, "unknown class"),
            ("unknown_slice", {"op": "add_point", "slice": SHAPE[2], "at": [5, 6], "class": "LV"}, "slice"),
            ("box_outside", {"op": "set_box", "slice": 1, "class": 1, "box": [0, 0, 99, 99]}, "outside"),
        ]
    )
    def test_refine_prompts(self, _, edit: dict, error: str):
        folder = self.folder("prompts")
        image = save(os.path.join(folder, "case.nii.gz"), volume())
        edits = os.path.join(folder, "edits.json")
        with open(edits, "w") as f:
            json.dump([edit], f)
        out = os.path.join(folder, "seg.nii.gz")
        argv = ["refine", image, "--config", self.config, "--checkpoint", self.checkpoint, "--out", out]
        with _captured() as (_, stderr, _):
            code = aisam_main([*argv, "--edits", edits, "--no-progress"])
        self.assertEqual(code, 2)
        self.assert_no_traceback(stderr.getvalue())
        self.assert_one_error_line(stderr.getvalue().splitlines(), edits, Case("prompt", None, error))
        self.assertFalse(os.path.exists(out))

    @parameterized.expand(_image_cases("segment"))
    def test_segment(self, _, case: Case):
        self._run("segment", case)

    @parameterized.expand(_image_cases("refine"))
    def test_refine(self, _, case: Case):
        self._run("refine", case)


class TestPermissions(_Matrix):
    def test_unreadable_file(self):
        """A file this user may not read. The tests run as root, which reads a ``chmod 000`` file anyway (and this
        Python lives under a 0700 ``/root``, so no unprivileged child can run it): the ``PermissionError`` the
        kernel would give is injected where nibabel opens the file."""
        folder = self.folder("permissions")
        image = save(os.path.join(folder, "case.nii.gz"), volume())
        out = os.path.join(folder, "seg.nii.gz")
        denied = PermissionError(13, "Permission denied", image)
        argv = ["segment", image, "--config", self.config, "--checkpoint", self.checkpoint, "--out", out]
        with mock.patch("aisam_monai.io.nifti.nib.load", side_effect=denied), _captured() as (_, stderr, _):
            code = aisam_main(argv)
        self.assertEqual(code, 2)
        self.assert_no_traceback(stderr.getvalue())
        self.assert_one_error_line(stderr.getvalue().splitlines(), image, Case("denied", None, "Permission denied"))
        self.assertFalse(os.path.exists(out))


class TestPredictorAndEditor(_Matrix):
    @parameterized.expand(_image_cases("predictor"))
    def test_set_volume(self, _, case: Case):
        folder = self.folder(f"predictor_{case.name}")
        image = self.input_file(case, folder)
        predictor = AISAMPredictor(self.model, CLASS_NAMES, progress=False, nonfinite=case.nonfinite)
        with _captured() as (_, _, logs):
            if case.error is not None:
                with self.assertRaises((ValueError, FileNotFoundError)) as ctx:
                    predictor.set_volume(image)
                self.assert_one_error_line(str(ctx.exception).splitlines(), image, case)
                return
            predictor.set_volume(image)
            labels = predictor.predict_volume()
        self.assert_warning(logs.lines(logging.WARNING), case)
        self.assertEqual(tuple(labels.shape), SHAPE)

    @parameterized.expand(_image_cases("serve"))
    @unittest.skipIf(TestClient is None, 'pip install -e ".[serve]"')
    def test_editor_open(self, _, case: Case):
        root = self.folder(f"serve_{case.name}")
        image = self.input_file(case, root)
        base = AISAMPredictor(self.model, CLASS_NAMES, progress=False, nonfinite=case.nonfinite)
        client = TestClient(create_app(base.fresh, root))
        with _captured():
            reply = client.post("/api/open", json={"path": os.path.relpath(image, root)})
        if case.error is not None:
            self.assertIn(reply.status_code, (400, 404), reply.text)
            detail = reply.json()["detail"]
            self.assert_one_error_line(detail.splitlines(), image, case)
        else:
            self.assertEqual(reply.status_code, 200, reply.text)
            self.assertEqual(reply.json()["shape"], list(SHAPE))
        self.assertEqual([f for f in os.listdir(root) if "_seg" in f or "_edits" in f], [])


class TestBundles(_Matrix):
    def _bundle(self, run_id: str, configs: list[str], case: Case, path: str, **overrides):
        """Run a bundle in this process; the error case checks what the process would print: the one logged
        ERROR line and, through ``sys.excepthook``, no traceback."""
        with _captured() as (stdout, stderr, logs):
            try:
                bundle_run(
                    run_id,
                    config_file=[os.path.join(BUNDLE, "configs", c) for c in configs],
                    bundle_root=BUNDLE,
                    checkpoint=self.checkpoint,
                    sam_type="tiny",
                    image_size=SIZE,
                    device="$torch.device('cpu')",
                    progress=False,
                    amp=False,
                    **overrides,
                )
                error = None
            except Exception as e:  # noqa: BLE001 - what the process would end with
                error = e
                sys.excepthook(type(e), e, e.__traceback__)
        if case.error is None:
            self.assertIsNone(error, logs.lines(logging.ERROR))
            self.assert_warning(logs.lines(logging.WARNING), case)
            return
        self.assertIsNotNone(error)
        self.assertIsNotNone(reported_cause(error), f"an unreported error: {error!r}")
        self.assert_no_traceback(stderr.getvalue())
        self.assert_one_error_line(logs.lines(logging.ERROR), path, case)

    @parameterized.expand(_image_cases("inference"))
    def test_inference(self, _, case: Case):
        folder = self.folder(f"inference_{case.name}")
        image = self.input_file(case, folder)
        predictions = os.path.join(folder, "out", "predictions")
        os.makedirs(predictions)
        old = os.path.join(predictions, "case_seg.nii.gz")
        with open(old, "wb") as f:
            f.write(OLD)
        self._bundle(
            "inference", ["inference.yaml"], case, image,
            input_image=image, output_dir=os.path.join(folder, "out"), dataset_dir=folder, nonfinite=case.nonfinite,
        )  # fmt: skip
        if case.error is not None:
            with open(old, "rb") as f:
                self.assertEqual(f.read(), OLD)
            self.assertEqual(os.listdir(predictions), ["case_seg.nii.gz"])
        else:
            found = glob.glob(os.path.join(predictions, "*_seg.nii.gz"))
            (seg,) = [p for p in found if open(p, "rb").read() != OLD]  # the old output replaced when it is its name
            self.assert_labels(seg, image)

    def _evaluate(self, case: Case, image: str, lab: str, folder: str, bad: str):
        with open(os.path.join(folder, "datalist.json"), "w") as f:
            item = {"image": image, "label": lab}
            json.dump({"num_classes": NUM_CLASSES, "labels": {}, "training": [item], "validation": [item],
                       "test": [item], "intensity": {"kind": "per_volume"}}, f)  # fmt: skip
        out = os.path.join(folder, "out")
        self._bundle(
            "evaluating", ["train.yaml", "evaluate.yaml"], case, bad,
            dataset_dir=folder, output_dir=out, eval_mode="auto",
        )  # fmt: skip
        written = glob.glob(os.path.join(out, "eval_auto", "*"))
        if case.error is not None:
            self.assertEqual(written, [])
        else:
            self.assertIn(os.path.join(out, "eval_auto", "metrics_summary.json"), written)

    @parameterized.expand(_image_cases("evaluate"))
    def test_evaluate_image(self, _, case: Case):
        folder = self.folder(f"evaluate_{case.name}")
        image = self.input_file(case, folder)
        self._evaluate(case, image, save(os.path.join(folder, "label.nii.gz"), label()), folder, image)

    @parameterized.expand([(c.name, c) for c in LABEL_CASES])
    def test_evaluate_label(self, _, case: Case):
        folder = self.folder(f"evaluate_{case.name}")
        lab = self.input_file(case, folder, "label.nii.gz")
        self._evaluate(case, save(os.path.join(folder, "case.nii.gz"), volume()), lab, folder, lab)


class TestSettings(_Matrix):
    """Model settings and checkpoints: one line before any model is built or any volume read."""

    def _checkpoint(self, name: str, content) -> str:
        path = os.path.join(self.folder(name), "model.pt")
        if isinstance(content, bytes):
            with open(path, "wb") as f:
                f.write(content)
        else:
            torch.save({"model": content.state_dict()}, path)
        return path

    @parameterized.expand(
        [
            ("image_size_100", ["--override", "image_size=100"], None, "image_size: must be a positive multiple of 16"),
            ("sam_type_unknown", ["--override", "sam_type=vit_x"], None, "unknown sam_type"),
            ("random_bytes_checkpoint", [], b"\x00\x01 not a checkpoint", "not a readable checkpoint"),
            ("other_class_count", [], "classes", "checkpoint is for 9 classes"),
        ]
    )
    def test_cli_and_bundle(self, name: str, override: list, checkpoint, error: str):
        if checkpoint == "classes":
            checkpoint = self._checkpoint(name, AISAM(num_classes=9, sam_type="tiny", image_size=SIZE))
        elif checkpoint is not None:
            checkpoint = self._checkpoint(name, checkpoint)
        else:
            checkpoint = self.checkpoint
        folder = self.folder(f"settings_{name}")
        image = save(os.path.join(folder, "case.nii.gz"), volume())
        out = os.path.join(folder, "seg.nii.gz")
        argv = ["segment", image, "--bundle", BUNDLE, "--checkpoint", checkpoint, "--out", out, "--no-progress"]
        argv += ["--override", "sam_type=tiny", "--override", f"image_size={SIZE}", *override]
        with _captured() as (_, stderr, _):
            code = aisam_main(argv)
        self.assertEqual(code, 2)
        self.assert_no_traceback(stderr.getvalue())
        lines = stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(error, lines[0])
        self.assertFalse(os.path.exists(out))
        key, _, value = (override[1] if override else "image_size=32").partition("=")
        overrides = {key: int(value) if value.isdigit() else value} if override else {}
        with _captured() as (_, stderr, logs):
            try:
                bundle_run(
                    "inference",
                    config_file=os.path.join(BUNDLE, "configs", "inference.yaml"),
                    bundle_root=BUNDLE,
                    input_image=image,
                    checkpoint=checkpoint,
                    output_dir=os.path.join(folder, "out"),
                    dataset_dir=folder,
                    device="$torch.device('cpu')",
                    **{"sam_type": "tiny", "image_size": SIZE, **overrides},
                )
                error_raised = None
            except Exception as e:  # noqa: BLE001
                error_raised = e
                sys.excepthook(type(e), e, e.__traceback__)
        self.assertIsNotNone(reported_cause(error_raised), repr(error_raised))
        self.assert_no_traceback(stderr.getvalue())
        errors = logs.lines(logging.ERROR)
        self.assertEqual(len(errors), 1, errors)
        self.assertIn(error, errors[0])
        self.assertFalse(os.path.exists(os.path.join(folder, "out", "predictions")))

    def test_nonfinite_policy_value(self):
        with self.assertRaisesRegex(ValueError, "nonfinite: must be one of"):
            AISAMPredictor(self.model, CLASS_NAMES, nonfinite="zero")


class TestPrepare(_Matrix):
    def _prepare(self, case: Case, image_make, label_make, bad: str):
        root = self.folder(f"prepare {case.name} ✓")
        source = os.path.join(root, "source", "RawData", "Training")
        for sub in ("img", "label"):
            os.makedirs(os.path.join(source, sub))
        image = image_make(os.path.join(source, "img", "img0001.nii.gz"))
        lab = label_make(os.path.join(source, "label", "label0001.nii.gz"))
        out = os.path.join(root, "out")
        argv = ["synapse", "--source", os.path.join(root, "source"), "--out", out, "--nonfinite", case.nonfinite]
        argv += ["--split", "ratio", "--ratios", "1", "0", "0"]
        with _captured() as (stdout, stderr, logs):
            code = prepare_main(argv)
        self.assert_no_traceback(stdout.getvalue(), stderr.getvalue())
        path = image if bad == "image" else lab
        if case.error is not None:
            self.assertEqual(code, 1, stderr.getvalue())
            with open(os.path.join(out, "prepare_report.json")) as f:
                failed = json.load(f)["failed"]
            self.assertEqual(len(failed), 1)
            self.assertEqual(failed[0]["file"], path)
            self.assertRegex(failed[0]["reason"], case.error)
            self.assertEqual(glob.glob(os.path.join(out, "*", "*.nii*")), [])
            self.assertEqual(logs.lines(logging.ERROR), [])  # the report, not a logged error, lists the case
        else:
            self.assertEqual(code, 0, stdout.getvalue() + stderr.getvalue())
            self.assert_warning(logs.lines(logging.WARNING), case)
            prepared = nib.load(os.path.join(out, "images", "case0001.nii.gz"))
            self.assertEqual(prepared.shape, SHAPE)
            self.assertTrue(np.isfinite(np.asarray(prepared.dataobj)).all())

    @parameterized.expand(
        [(c.name, c) for c in IMAGE_CASES if not c.not_for & {"prepare"} and c.name != "unicode_space_path"]
    )
    def test_image(self, _, case: Case):
        self._prepare(case, case.make, lambda p: save(p, label()), "image")

    @parameterized.expand([(c.name, c) for c in LABEL_CASES])
    def test_label(self, _, case: Case):
        self._prepare(case, lambda p: save(p, volume()), case.make, "label")


if __name__ == "__main__":
    unittest.main()
