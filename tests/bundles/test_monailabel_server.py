# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""A real MONAI Label server (127.0.0.1 only) with an ACDC bundle trained here on synthetic volumes (tiny model):
the command blocks of docs/monailabel.md, then automatic, click and bad-input requests checked on the answers."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid

import nibabel as nib
import numpy as np

from tests.bundles.test_bundle_workflows import ENV, FAST, REPO, _cmd, _prepare

DOC = os.path.join(REPO, "docs", "monailabel.md")
CI = os.environ.get("CI", "").lower() == "true"
_VENV_BIN = os.path.join(os.environ.get("MONAILABEL_VENV", "/nonexistent"), "bin")
MONAILABEL_BIN = _VENV_BIN if os.path.isfile(os.path.join(_VENV_BIN, "monailabel")) else None
if MONAILABEL_BIN is None and shutil.which("monailabel"):
    MONAILABEL_BIN = os.path.dirname(shutil.which("monailabel"))
INSTALL_HINT = "needs MONAI Label: set MONAILABEL_VENV to an environment made as in docs/monailabel.md, section 1"


def doc_block(name: str) -> str:
    """The ``bash`` block of docs/monailabel.md marked ``<!-- run: name -->``."""
    with open(DOC) as f:
        found = re.search(rf"<!-- run: {name} -->\n```bash\n(.*?)```", f.read(), re.S)
    if found is None:
        raise ValueError(f"{DOC}: no bash block marked '<!-- run: {name} -->'.")
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, image: bytes, params: dict, timeout: float = 120) -> tuple[int, bytes]:
    """POST ``image`` (as ``file``) and ``params`` as multipart/form-data; returns (status, body)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{json.dumps(params)}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="image.nii.gz"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + image
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    request = urllib.request.Request(url, data=b"".join(parts), method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _labels(body: bytes) -> nib.Nifti1Image:
    with tempfile.NamedTemporaryFile(suffix=".nii.gz") as f:
        f.write(body)
        f.flush()
        image = nib.load(f.name)
        return nib.Nifti1Image(np.asanyarray(image.dataobj).copy(), image.affine)


class _Server:
    """A ``monailabel start_server`` block of the docs in its own process group, stopped by its id."""

    def __init__(self, block: str, env: dict, log: str):
        self.port = int(env["PORT"])
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                ["bash", "-c", block], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_info(self, timeout: float = 150) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"monailabel exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/info/", timeout=5) as answer:
                    return json.loads(answer.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        raise TimeoutError(f"no /info/ from monailabel within {timeout} s:\n{self.tail()}")

    def tail(self) -> str:
        with open(self.log) as f:
            return f.read()[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class TestDocCommands(unittest.TestCase):
    def test_every_command_block_is_run(self):
        """Each bash block of docs/monailabel.md is marked and run: ``install`` by .ci/run (word for word), ``zoo``
        by test_zoo_checks.py, the others by the server test below."""
        with open(DOC) as f:
            text = f.read()
        self.assertEqual(text.count("```bash"), len(re.findall(r"<!-- run: \w+ -->\n```bash", text)))
        names = set(re.findall(r"<!-- run: (\w+) -->", text))
        self.assertEqual(names, {"install", "export", "serve", "stock_app", "stock_serve", "requests", "zoo"})
        with open(os.path.join(REPO, ".ci", "run")) as f:
            self.assertIn(doc_block("install"), f.read())


@unittest.skipUnless(MONAILABEL_BIN or CI, INSTALL_HINT)
class TestMonaiLabelServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if MONAILABEL_BIN is None:
            raise RuntimeError(f"CI=true but no monailabel found: {INSTALL_HINT}")
        cls.start = time.time()
        cls.root = tempfile.mkdtemp()
        data = _prepare(cls.root, "acdc", ["--layout", "acdc", "--cases", "5", "--size", "40"])
        run = os.path.join(cls.root, "run")
        train = _cmd("training", "bundles/acdc/configs/train.yaml", dataset_dir=data, output_dir=run, epochs=3,
                     val_interval=3, **FAST)  # fmt: skip
        subprocess.run(train, cwd=REPO, env=ENV, check=True, capture_output=True, timeout=240)
        cls.app = os.path.join(cls.root, "app")  # a copy of apps/aisam, so that the export does not touch the repo
        os.makedirs(cls.app)
        shutil.copy(os.path.join(REPO, "apps", "aisam", "main.py"), cls.app)
        with open(os.path.join(data, "datalist.json")) as f:
            case = json.load(f)["test"][0]
        cls.image_path = os.path.join(data, case["image"])
        cls.label = np.asanyarray(nib.load(os.path.join(data, case["label"])).dataobj)
        with open(cls.image_path, "rb") as f:
            cls.image = f.read()
        studies = os.path.join(cls.root, "studies")
        os.makedirs(studies)
        cls.env = {
            **ENV,
            "PATH": MONAILABEL_BIN + os.pathsep + os.environ.get("PATH", ""),
            "RUN": run, "APP": cls.app, "DATA": data, "STUDIES": studies, "WORK": cls.root, "IMAGE": cls.image_path,
            "SAM_TYPE": FAST["sam_type"], "IMAGE_SIZE": str(FAST["image_size"]), "PORT": str(_free_port()),
        }  # fmt: skip
        subprocess.run(["bash", "-euo", "pipefail", "-c", doc_block("export")], cwd=REPO, env=cls.env, check=True,
                       capture_output=True, timeout=240)  # fmt: skip
        cls.prepared = time.time()
        cls.server = _Server(doc_block("serve"), cls.env, os.path.join(cls.root, "server.log"))
        cls.info = cls.server.wait_info()
        cls.url = f"http://127.0.0.1:{cls.env['PORT']}"
        cls.up = time.time()

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "server"):
            cls.server.stop()
            print(
                f"\nmonailabel test: data + training + export {cls.prepared - cls.start:.0f} s, server start "
                f"{cls.up - cls.prepared:.0f} s, total {time.time() - cls.start:.0f} s",
                file=sys.stderr,
            )
        shutil.rmtree(cls.root, ignore_errors=True)

    def _infer(self, model: str, params: dict | None = None, image: bytes | None = None) -> tuple[int, bytes]:
        params = {"device": "cpu", **(params or {})}
        return _post(f"{self.url}/infer/{model}?output=image", self.image if image is None else image, params)

    def _auto(self) -> np.ndarray:
        status, body = self._infer("acdc_seg")
        self.assertEqual(status, 200, body[:500])
        return np.asanyarray(_labels(body).dataobj)

    def test_info_lists_models_and_labels(self):
        models = self.info["models"]
        self.assertEqual(set(models), {"acdc", "acdc_seg"})
        self.assertEqual(models["acdc_seg"]["labels"], {"rv": 1, "myo": 2, "lv": 3})
        self.assertEqual(models["acdc"]["labels"], {"background": 0, "rv": 1, "myo": 2, "lv": 3})
        self.assertEqual(models["acdc"]["type"], "deepedit")
        self.assertEqual(models["acdc_seg"]["dimension"], 3)  # 3D Slicer sends 3D clicks, not the current slice's

    def test_automatic_returns_labels_on_the_input_grid(self):
        status, body = self._infer("acdc_seg")
        self.assertEqual(status, 200, body[:500])
        pred, source = _labels(body), nib.load(self.image_path)
        self.assertEqual(pred.shape, source.shape)
        np.testing.assert_allclose(pred.affine, source.affine, atol=1e-4)
        values = set(np.unique(np.asanyarray(pred.dataobj)).tolist())
        self.assertTrue(values <= {0, 1, 2, 3} and len(values) > 1, values)

    def test_click_on_a_missed_structure_changes_that_slice(self):
        auto = self._auto()
        worst = None  # the class and slice with the largest ground-truth area the automatic result misses
        for z in range(self.label.shape[2]):
            for c in (1, 2, 3):
                missed = (self.label[..., z] == c) & (auto[..., z] != c)
                if worst is None or missed.sum() > worst[0].sum():
                    worst = (missed, z, c)
        missed, z, c = worst
        self.assertGreater(int(missed.sum()), 5, "the automatic result misses nothing to click on")
        rows, cols = np.nonzero(missed)
        i, j = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
        name = {1: "rv", 2: "myo", 3: "lv"}[c]
        status, body = self._infer("acdc", {name: [[i, j, z]]})  # DeepEdit style, as 3D Slicer sends it
        self.assertEqual(status, 200, body[:500])
        clicked = np.asanyarray(_labels(body).dataobj)
        self.assertEqual(int(clicked[i, j, z]), c)
        self.assertGreater(int(((clicked[..., z] == c) & missed).sum()), 0)
        np.testing.assert_array_equal(np.delete(clicked, z, 2), np.delete(auto, z, 2))  # only that slice changes
        status, body = self._infer("acdc", {"label": name, "foreground": [[i, j]], "slice": z})  # Deepgrow style
        self.assertEqual(status, 200, body[:500])
        np.testing.assert_array_equal(np.asanyarray(_labels(body).dataobj), clicked)

    def test_bad_input_is_a_clear_4xx_and_the_server_keeps_serving(self):
        status, body = self._infer("acdc_seg", image=self.image[: len(self.image) // 3])  # truncated gzip
        self.assertEqual(status, 422, body[:500])
        self.assertIn("bad input", json.loads(body)["detail"])
        status, body = self._infer("acdc", {"label": "spleen", "foreground": [[2, 2, 2]]})
        self.assertEqual(status, 422, body[:500])
        detail = json.loads(body)["detail"]
        self.assertIn("'spleen'", detail)
        self.assertIn("LV", detail)
        status, body = self._infer("acdc", {"lv": [[999, 2, 2]]})
        self.assertEqual(status, 422, body[:500])
        self.assertIn("outside the image", json.loads(body)["detail"])
        self.assertEqual(self._auto().shape, self.label.shape)  # still serving

    def test_documented_requests_and_the_stock_monaibundle_app(self):
        text = subprocess.run(["bash", "-euo", "pipefail", "-c", doc_block("requests")], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        self.assertEqual(text.returncode, 0, text.stderr[-2000:])
        results = {n: np.asanyarray(nib.load(os.path.join(self.root, f"{n}.nii.gz")).dataobj) for n in
                   ("auto", "deepedit", "sam")}  # fmt: skip
        np.testing.assert_array_equal(results["auto"], self._auto())
        for name in ("deepedit", "sam"):  # the clicks of the docs are on slice 5 only
            np.testing.assert_array_equal(np.delete(results[name], 5, 2), np.delete(results["auto"], 5, 2))

        subprocess.run(["bash", "-euo", "pipefail", "-c", doc_block("stock_app")], cwd=REPO, env=self.env,
                       check=True, capture_output=True, timeout=180)  # fmt: skip
        env = {**self.env, "PORT": str(_free_port())}
        stock = _Server(doc_block("stock_serve"), env, os.path.join(self.root, "stock.log"))
        try:
            models = stock.wait_info()["models"]
            self.assertEqual(models["aisam_acdc_deepedit_seg"]["labels"], {"rv": 1, "myo": 2, "lv": 3})
            url = f"http://127.0.0.1:{env['PORT']}/infer"
            status, body = _post(f"{url}/aisam_acdc_deepedit_seg?output=image", self.image, {"device": "cpu"})
            self.assertEqual(status, 200, body[:500])
            np.testing.assert_array_equal(np.asanyarray(_labels(body).dataobj), results["auto"])
            params = {"device": "cpu", "lv": [[17, 20, 5]], "background": [[2, 2, 5]]}
            status, body = _post(f"{url}/aisam_acdc_deepedit?output=image", self.image, params)
            self.assertEqual(status, 200, body[:500])
            np.testing.assert_array_equal(np.asanyarray(_labels(body).dataobj), results["deepedit"])
        finally:
            stock.stop()


if __name__ == "__main__":
    unittest.main()
