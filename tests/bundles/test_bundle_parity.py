# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
The ACDC and Synapse bundles are kept self-contained (one folder per dataset, as in the MONAI Model Zoo), so the
same settings are written twice. These tests keep the two copies from drifting apart: after the dataset name is
substituted, every key of every config file must be equal in both bundles, except the keys listed in
``ALLOWED``. Keys are compared after parsing, so comments and key order do not count. The class names of each
bundle are one list (``class_names``, foreground only), equal to ``metadata.json``'s ``channel_def`` and to the
names that ``python -m aisam_monai.data.prepare`` writes into the datalist.
"""

from __future__ import annotations

import json
import os
import unittest

import yaml
from parameterized import parameterized

from aisam_monai.data import ACDC_LABELS, SYNAPSE_LABELS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = {"acdc": ACDC_LABELS, "synapse": SYNAPSE_LABELS}

# Keys (dotted paths; a key covers everything below it) allowed to differ between the bundles, with the reason.
ALLOWED = {
    "train.yaml": {
        "dataset_dir": "ACDC defaults to the quickstart's synthetic dataset; Synapse has no quickstart",
        "num_classes": "4 vs 9 classes",
        "class_names": "the dataset's classes",
        "val_split": "the TransUNet split of Synapse has no validation cases",
    },
    "evaluate.yaml": {},
    "inference.yaml": {
        "dataset_dir": "as in train.yaml",
        "num_classes": "as in train.yaml",
        "class_names": "as in train.yaml",
        "default_intensity": "per-volume percentiles (MRI) vs the HU window [-125, 275] (CT)",
    },
    "multi_gpu_train.yaml": {},
    "metadata.json": {
        "name": "the dataset's description",
        "task": "the dataset's description",
        "description": "the dataset's description",
        "data_source": "the dataset's description",
        "image_classes": "MRI vs CT",
        "label_classes": "the dataset's classes",
        "pred_classes": "the dataset's classes",
        "references": "the dataset's paper",
        "network_data_format.inputs.image.format": "magnitude (MRI) vs hounsfield (CT)",
        "network_data_format.inputs.image.modality": "MR vs CT",
        "network_data_format.outputs.pred.num_channels": "4 vs 9 classes",
        "network_data_format.outputs.pred.channel_def": "the dataset's classes",
    },
}
CONFIGS = sorted(ALLOWED)


def _read(bundle: str, name: str, substitute: bool = True):
    """A config file of ``bundle``, parsed, with the dataset name replaced by ``acdc`` when ``substitute``."""
    with open(os.path.join(REPO, "bundles", bundle, "configs", name)) as f:
        text = f.read()
    if substitute:
        text = text.replace("synapse", "acdc").replace("Synapse", "ACDC")
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


def _flatten(value, prefix: str = "") -> dict:
    """``{dotted path: leaf}`` of nested dicts and lists (list items by index)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else None
    if items is None:
        return {prefix: value}
    flat = {}
    for key, item in items:
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat or {prefix: value}


def _allowed(path: str, allowed) -> bool:
    return any(path == key or path.startswith(key + ".") for key in allowed)


class TestBundleParity(unittest.TestCase):
    def test_same_files(self):
        listings = [sorted(os.listdir(os.path.join(REPO, "bundles", b, "configs"))) for b in LABELS]
        self.assertEqual(listings[0], listings[1])
        self.assertEqual(sorted(set(listings[0]) - {"logging.conf"}), CONFIGS)
        with open(os.path.join(REPO, "bundles", "acdc", "configs", "logging.conf")) as a:
            with open(os.path.join(REPO, "bundles", "synapse", "configs", "logging.conf")) as b:
                self.assertEqual(a.read(), b.read())

    @parameterized.expand([[name] for name in CONFIGS])
    def test_configs_differ_only_in_allowed_keys(self, name):
        acdc, synapse = (_flatten(_read(b, name)) for b in LABELS)
        differ = {
            path for path in set(acdc) | set(synapse) if acdc.get(path, "<missing>") != synapse.get(path, "<missing>")
        }
        drifted = sorted(path for path in differ if not _allowed(path, ALLOWED[name]))
        self.assertEqual(drifted, [], f"{name}: keys differ between bundles/acdc and bundles/synapse: {drifted}")
        stale = [key for key in ALLOWED[name] if not any(_allowed(path, [key]) for path in differ)]
        self.assertEqual(stale, [], f"{name}: keys listed as allowed to differ are equal (or gone): {stale}")

    @parameterized.expand([[b] for b in LABELS])
    def test_class_names_are_one_list(self, bundle):
        """``class_names`` of every config equals the metadata's ``channel_def`` and the prepared datalist's labels."""
        meta = _read(bundle, "metadata.json", substitute=False)
        channels = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
        expected = [channels[str(c)] for c in range(len(channels))]
        self.assertEqual(expected, [LABELS[bundle][str(c)] for c in range(len(LABELS[bundle]))])
        for name in ("train.yaml", "inference.yaml"):
            config = _read(bundle, name, substitute=False)
            self.assertEqual(["background", *config["class_names"]], expected, name)
            self.assertEqual(config["num_classes"], len(expected), name)
        for name in CONFIGS:
            self.assertNotIn("channel_names", json.dumps(_read(bundle, name, substitute=False)), name)


if __name__ == "__main__":
    unittest.main()
