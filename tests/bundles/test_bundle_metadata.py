# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Offline checks of the bundles' metadata.json (MONAI's verify_metadata downloads its schema)."""

from __future__ import annotations

import json
import os
import unittest

import yaml
from parameterized import parameterized

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLES = ["acdc", "synapse"]
REQUIRED = (
    "schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version", "name", "task",
    "description", "authors", "copyright", "data_source", "data_type", "image_classes", "label_classes",
    "pred_classes", "eval_metrics", "intended_use", "references", "network_data_format",
)  # fmt: skip
TENSOR_FIELDS = (
    "type",
    "format",
    "num_channels",
    "spatial_shape",
    "dtype",
    "value_range",
    "is_patch_data",
    "channel_def",
)


def _configs(bundle: str) -> str:
    return os.path.join(REPO, "bundles", bundle, "configs")


class TestBundleMetadata(unittest.TestCase):
    @parameterized.expand([[b] for b in BUNDLES])
    def test_required_fields(self, bundle):
        with open(os.path.join(_configs(bundle), "metadata.json")) as f:
            meta = json.load(f)
        missing = [k for k in REQUIRED if k not in meta]
        self.assertEqual(missing, [], f"{bundle}/metadata.json lacks {missing}")
        self.assertIn(meta["version"], meta["changelog"])
        self.assertTrue(meta["schema"].startswith("https://") and meta["schema"].endswith(".json"))
        fmt = meta["network_data_format"]
        for tensor in (fmt["inputs"]["image"], fmt["outputs"]["pred"]):
            self.assertEqual([k for k in TENSOR_FIELDS if k not in tensor], [])
            self.assertEqual(len(tensor["channel_def"]), tensor["num_channels"])
        with open(os.path.join(_configs(bundle), "train.yaml")) as f:
            train = yaml.safe_load(f)
        channels = fmt["outputs"]["pred"]["channel_def"]
        self.assertEqual(len(channels), train["num_classes"])
        self.assertEqual(channels["0"], "background")
        self.assertEqual(len(train["class_names"]), train["num_classes"] - 1)


if __name__ == "__main__":
    unittest.main()
