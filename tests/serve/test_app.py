# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The editor's JSON API through FastAPI's test client, on the tiny click-trained model."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import tempfile
import unittest
from unittest import mock

import nibabel as nib
import numpy as np
import torch

from aisam_monai.cli import main as aisam
from aisam_monai.interactive import AISAMPredictor
from aisam_monai.interactive.edit_file import read_edits
from tests.serve.editor_fixture import AFFINE, RIGHT, D, H, W, disk_mask, write_editor_folder

try:
    from fastapi.testclient import TestClient

    from aisam_monai.serve import create_app
except ImportError:  # the serve and test extras bring them
    TestClient = None


def labels_of(payload: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(payload["labels"]), dtype=np.uint8).reshape(H, W)


@unittest.skipUnless(TestClient is not None or os.environ.get("CI") == "true", 'pip install -e ".[test]"')
class TestEditorAPI(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.files = write_editor_folder(cls.tmp.name)
        cls.base = AISAMPredictor.from_checkpoint(cls.files["checkpoint"], cls.files["config"], progress=False)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def client(self, root: str | None = None, **kwargs) -> TestClient:
        app = create_app(self.base.fresh, root or self.files["root"], **kwargs)
        client = TestClient(app)
        self.addCleanup(client.__exit__, None, None, None)
        client.__enter__()  # runs the lifespan: the worker that fills in the automatic results
        return client

    def open(self, client: TestClient, path: str = "case.nii.gz") -> str:
        answer = client.post("/api/open", json={"path": path})
        self.assertEqual(answer.status_code, 200, answer.text)
        return answer.json()["id"]

    def edit(self, client: TestClient, sid: str, request: dict, status: int = 200) -> dict:
        answer = client.post(f"/api/sessions/{sid}/edit", json=request)
        self.assertEqual(answer.status_code, status, answer.text)
        return answer.json()

    def test_list_open_and_slice(self):
        client = self.client()
        self.assertEqual(
            client.get("/api/volumes").json()["volumes"], ["case.nii.gz", os.path.join("sub", "other.nii.gz")]
        )
        info = client.post("/api/open", json={"path": "case.nii.gz"}).json()
        self.assertEqual((info["shape"], info["classes"]), ([H, W, D], ["background", "disk"]))
        other = self.open(client, os.path.join("sub", "other.nii.gz"))
        self.assertNotEqual(other, info["id"])  # several volumes, each with its own state
        payload = client.get(f"/api/sessions/{info['id']}/slices/1").json()
        image = np.frombuffer(base64.b64decode(payload["image"]), dtype=np.float32).reshape(H, W)
        self.assertAlmostEqual(float(image.max()), 1.0, places=4)  # the [0, 1] model input
        self.assertEqual(len(payload["presence"]), 2)
        self.assertEqual(sum(p["generated"] for p in payload["points"]), 2 * 4)
        self.assertEqual(client.get(f"/api/sessions/{info['id']}/slices/{D}").status_code, 404)
        self.assertIn("editor.js", client.get("/").text)

    def test_every_edit_undo_redo_and_save(self):
        client = self.client()
        sid = self.open(client)
        right = disk_mask(RIGHT)
        auto = labels_of(client.get(f"/api/sessions/{sid}/slices/1").json())
        # a positive click inside the disk the model missed grows the class there
        clicked = self.edit(client, sid, {"op": "add_point", "slice": 1, "class": "disk", "at": [RIGHT[1], RIGHT[0]]})
        self.assertEqual(clicked["changed"], [1])
        after_click = labels_of(clicked["slice"])
        self.assertGreater(int((after_click[right] == 1).sum()), int((auto[right] == 1).sum()))
        click_id = max(p["id"] for p in clicked["slice"]["points"])
        # move the click, then delete it: the log entry is rewritten, then removed
        moved = self.edit(client, sid, {"op": "move_point", "slice": 1, "id": click_id, "to": [RIGHT[1] + 2, RIGHT[0]]})
        self.assertEqual(client.get(f"/api/sessions/{sid}/edits").json()["edits"][0]["at"], [RIGHT[1] + 2, RIGHT[0]])
        self.assertIn(click_id, [p["id"] for p in moved["slice"]["points"]])
        deleted = self.edit(client, sid, {"op": "delete_point", "slice": 1, "id": click_id})
        np.testing.assert_array_equal(labels_of(deleted["slice"]), auto)
        self.assertEqual(client.get(f"/api/sessions/{sid}/edits").json()["edits"], [])
        # drag a generated point of the disk class
        generated = next(p for p in deleted["slice"]["points"] if p["generated"] and p["class"] == 1)
        dragged = self.edit(client, sid, {"op": "move_point", "slice": 1, "id": generated["id"], "to": [5, 5]})
        self.assertFalse(np.array_equal(labels_of(dragged["slice"]), auto))
        # undo brings the previous mask back, redo the dragged one
        undone = client.post(f"/api/sessions/{sid}/undo", json={"slice": 1}).json()
        np.testing.assert_array_equal(labels_of(undone["slice"]), auto)
        redone = client.post(f"/api/sessions/{sid}/redo", json={"slice": 1}).json()
        np.testing.assert_array_equal(labels_of(redone["slice"]), labels_of(dragged["slice"]))
        # a box: the class disappears outside it
        box = [10, 20, 70, 75]
        boxed = labels_of(self.edit(client, sid, {"op": "set_box", "slice": 0, "class": "disk", "box": box})["slice"])
        outside = np.ones((H, W), dtype=bool)
        outside[box[0] : box[2] + 1, box[1] : box[3] + 1] = False
        self.assertFalse(bool((boxed[outside] == 1).any()))
        # absence carried to the neighbours
        absent = self.edit(client, sid, {"op": "set_present_classes", "slice": 2, "classes": [], "propagate": 1})
        self.assertEqual(absent["changed"], [1, 2, 3])
        for z in (2, 3):
            self.assertEqual(int(labels_of(client.get(f"/api/sessions/{sid}/slices/{z}").json()).sum()), 0)
        # reset one slice, and the other point mode
        reset = self.edit(client, sid, {"op": "clear", "slice": 3})
        self.assertFalse(reset["slice"]["edited"])
        answer = client.post(f"/api/sessions/{sid}/decode_path", json={"decode_path": "point"})
        self.assertEqual(answer.json()["decode_path"], "point")
        self.edit(client, sid, {"op": "add_point", "slice": 3, "class": "disk", "at": [RIGHT[1], RIGHT[0]]})
        # save: uint8 NIfTI with the input's shape and affine, and an edits file that refine reproduces exactly
        saved = client.post(f"/api/sessions/{sid}/save").json()
        seg = nib.load(saved["labels"])
        self.assertEqual((seg.shape, seg.get_data_dtype()), ((H, W, D), np.uint8))
        np.testing.assert_allclose(seg.affine, AFFINE, atol=1e-5)
        labels = np.asarray(seg.dataobj)
        check = self.base.fresh()
        check.set_volume(self.files["image"])
        decode_path, edits = read_edits(saved["edits"], check)
        check.decode_path = decode_path
        check.apply_edits(edits)
        np.testing.assert_array_equal(labels, check.predict_volume().numpy())  # the predictor's, same edits
        refined = os.path.join(self.tmp.name, "refined.nii.gz")
        with contextlib.redirect_stdout(io.StringIO()):
            model = ["--config", self.files["config"], "--checkpoint", self.files["checkpoint"], "--no-progress"]
            code = aisam(["refine", self.files["image"], *model, "--edits", saved["edits"], "--out", refined])
        self.assertEqual(code, 0)
        np.testing.assert_array_equal(np.asarray(nib.load(refined).dataobj), labels)

    def test_a_crash_while_saving_keeps_the_previous_output(self):
        out = os.path.join(self.tmp.name, "out")
        client = self.client(out_dir=out)
        sid = self.open(client)
        first = client.post(f"/api/sessions/{sid}/save").json()
        before = {p: open(p, "rb").read() for p in first.values()}
        self.edit(client, sid, {"op": "set_present_classes", "slice": 0, "classes": []})

        def half_written(img, path):
            with open(path, "wb") as f:
                f.write(b"\x1f\x8b partial")
            raise OSError(28, "No space left on device", path)

        with mock.patch("nibabel.save", half_written):
            failed = client.post(f"/api/sessions/{sid}/save")
        self.assertEqual(failed.status_code, 500)
        self.assertIn("No space left", failed.json()["detail"])
        self.assertEqual({p: open(p, "rb").read() for p in first.values()}, before)
        self.assertEqual(sorted(os.listdir(out)), sorted(os.path.basename(p) for p in first.values()))

    def test_bad_input_is_4xx_and_the_session_stays_usable(self):
        root = os.path.join(self.tmp.name, "bad")
        os.makedirs(root, exist_ok=True)
        shutil.copyfile(self.files["image"], os.path.join(root, "case.nii.gz"))
        client = self.client(root, max_bytes=1 << 20)
        outside = os.path.join(self.tmp.name, "secret.nii.gz")
        with open(outside, "wb") as f:
            f.write(b"x")
        link = os.path.join(root, "link.nii.gz")
        if not os.path.lexists(link):
            os.symlink(outside, link)
        with open(os.path.join(root, "corrupt.nii.gz"), "wb") as f:
            f.write(b"not a nifti")
        with open(os.path.join(root, "big.nii.gz"), "wb") as f:
            f.truncate(2 << 20)
        for path, status in (
            ("../secret.nii.gz", 403),
            (outside, 400),
            ("link.nii.gz", 403),
            ("sub/../../secret.nii.gz", 403),
            ("model.yaml", 400),
            ("missing.nii.gz", 404),
            ("big.nii.gz", 413),
            ("corrupt.nii.gz", 400),
        ):
            answer = client.post("/api/open", json={"path": path})
            self.assertEqual(answer.status_code, status, (path, answer.text))
            self.assertNotIn("\n", answer.json()["detail"])
            self.assertNotIn("Traceback", answer.text)
        sid = self.open(client)
        for request in (
            {"op": "explode", "slice": 0},
            {"op": "add_point", "slice": 0, "class": "disk", "at": [H + 5, 3]},
            {"op": "add_point", "slice": 0, "class": "liver", "at": [3, 3]},
            {"op": "add_point", "slice": D, "class": "disk", "at": [3, 3]},
            {"op": "move_point", "slice": 0, "id": 999, "to": [3, 3]},
            {"op": "set_box", "slice": 0, "class": "disk", "box": [5, 5]},
        ):
            detail = self.edit(client, sid, request, status=400)["detail"]
            self.assertTrue(detail and "\n" not in detail, detail)
        self.assertEqual(client.post(f"/api/sessions/{sid}/undo").status_code, 400)
        self.assertEqual(
            client.post(f"/api/sessions/{sid}/decode_path", json={"decode_path": "magic"}).status_code, 400
        )
        self.assertEqual(client.get("/api/sessions/77/slices/0").status_code, 404)
        ok = self.edit(client, sid, {"op": "add_point", "slice": 0, "class": "disk", "at": [3, 3], "positive": False})
        self.assertEqual(ok["changed"], [0])

    def test_token(self):
        client = self.client(token="s3cret")
        self.assertEqual(client.get("/api/volumes").status_code, 401)
        self.assertEqual(client.get("/api/volumes", headers={"X-AISAM-Token": "nope"}).status_code, 401)
        self.assertEqual(client.get("/api/volumes", headers={"X-AISAM-Token": "s3cret"}).status_code, 200)
        page = client.get("/?token=s3cret")
        self.assertEqual(page.status_code, 200)
        self.assertIn("static/editor.js?token=s3cret", page.text)
        self.assertEqual(client.get("/static/editor.js?token=s3cret").status_code, 200)

    def test_cli_refuses_an_open_address_without_token(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = aisam(["serve", "--root", self.files["root"], "--config", self.files["config"], "--checkpoint",
                          self.files["checkpoint"], "--host", "0.0.0.0"])  # fmt: skip
        self.assertEqual(code, 2)
        self.assertIn("--token", err.getvalue())
        self.assertEqual(len(err.getvalue().strip().splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
