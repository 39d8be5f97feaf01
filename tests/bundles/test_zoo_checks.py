# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The Model Zoo's checks and exports on an exported bundle (tiny model): ``verify_metadata`` against the schema
shipped offline, ``verify_net_in_out``, ``ckpt_export`` (traced TorchScript) and ``onnx_export`` as docs/monailabel.md
runs them, with the exported graphs compared to PyTorch."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
import torch
from monai.bundle import ConfigParser, verify_metadata
from monai.utils import optional_import
from parameterized import parameterized

from aisam_monai.networks import AISAM
from aisam_monai.serving.export import export_bundle
from tests.bundles.test_bundle_workflows import ENV, FAST, REPO
from tests.bundles.test_monailabel_server import CI, doc_block

ort, has_ort = optional_import("onnxruntime")
SCHEMA = os.path.join(REPO, "tests", "testdata", "meta_schema_20240725.json")
INPUT_SHAPE = (1, 1, 40, 32, 6)  # the --input_shape of the docs' export commands


def _verify(meta: dict, folder: str) -> None:
    path = os.path.join(folder, "metadata.json")
    with open(path, "w") as f:
        json.dump(meta, f)
    verify_metadata(meta_file=path, filepath=SCHEMA)


class TestZooMetadata(unittest.TestCase):
    @parameterized.expand([["acdc"], ["synapse"]])
    def test_verify_metadata(self, bundle):
        with open(os.path.join(REPO, "bundles", bundle, "configs", "metadata.json")) as f:
            meta = json.load(f)
        with tempfile.TemporaryDirectory() as d:
            _verify(meta, d)
            for broken in ("task", "optional_packages_version"):
                bad = {k: v for k, v in meta.items() if k != broken}
                with self.assertRaisesRegex(ValueError, broken):
                    _verify(bad, d)
            bad = copy.deepcopy(meta)
            bad["network_data_format"]["outputs"]["pred"]["num_channels"] = "four"
            with self.assertRaises(ValueError):
                _verify(bad, d)
        image = meta["network_data_format"]["inputs"]["image"]
        self.assertEqual(len(image["spatial_shape"]), 3)  # a 3D model for MONAI Label (dimension 3)
        for name in ("LICENSE", "large_files.yml", os.path.join("docs", "data_license.txt")):
            self.assertTrue(os.path.isfile(os.path.join(REPO, "bundles", bundle, name)), name)


@unittest.skipUnless(has_ort or CI, 'needs onnx and onnxruntime: pip install "aisam-monai[onnx]"')
class TestZooExports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp()
        torch.manual_seed(0)
        checkpoint = os.path.join(cls.root, "trained.pt")
        network = AISAM(num_classes=4, sam_type=FAST["sam_type"], image_size=FAST["image_size"])
        with torch.no_grad():  # the initial decoder gives all classes equal logits almost everywhere: no labels
            for p in network.sam.mask_decoder.parameters():
                if p.ndim > 1:
                    p.normal_(0.0, 0.2)
        torch.save({"model": network.state_dict()}, checkpoint)
        app = os.path.join(cls.root, "app")
        overrides = {"sam_type": FAST["sam_type"], "image_size": FAST["image_size"]}
        export_bundle(os.path.join(REPO, "bundles", "acdc"), checkpoint, os.path.join(app, "model", "acdc"), overrides)
        cls.bundle = os.path.join(app, "model", "acdc")
        env = {**ENV, "APP": app, "SCHEMA": SCHEMA}
        cls.zoo = subprocess.run(["bash", "-euo", "pipefail", "-c", doc_block("zoo")], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
        parser = ConfigParser()
        parser.read_config(os.path.join(cls.bundle, "configs", "inference.json"))
        cls.net = parser.get_parsed_content("network_def").eval()
        cls.net.load_state_dict(torch.load(os.path.join(cls.bundle, "models", "model.pt"), weights_only=True)["model"])
        cls.image = torch.rand(INPUT_SHAPE, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            cls.expected = cls.net(cls.image)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def _same(self, probs: np.ndarray):
        """Probabilities within 1e-4 and the same labels wherever the top two classes are more than 1e-4 apart."""
        expected = self.expected.numpy()
        self.assertEqual(probs.shape, expected.shape)
        np.testing.assert_allclose(probs, expected, atol=1e-4)
        top2 = np.sort(expected, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 1e-4
        np.testing.assert_array_equal(probs.argmax(1)[clear], expected.argmax(1)[clear])
        self.assertGreater(clear.mean(), 0.05)  # about 13% of the voxels with this random model

    def test_zoo_commands_pass(self):
        text = self.zoo.stdout + self.zoo.stderr
        self.assertEqual(self.zoo.returncode, 0, text[-3000:])
        self.assertIn("metadata is verified with no error", text)
        self.assertIn("data shape of network is verified with no error", text)

    def test_torchscript_matches_pytorch(self):
        self.assertEqual(self.zoo.returncode, 0)
        traced = torch.jit.load(os.path.join(self.bundle, "models", "model.ts"))
        with torch.no_grad():
            self._same(traced(self.image).numpy())

    def test_onnx_matches_pytorch(self):
        self.assertEqual(self.zoo.returncode, 0)
        session = ort.InferenceSession(
            os.path.join(self.bundle, "models", "model.onnx"), providers=["CPUExecutionProvider"]
        )
        (probs,) = session.run(None, {session.get_inputs()[0].name: self.image.numpy()})
        self._same(probs)


if __name__ == "__main__":
    unittest.main()
