# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Training from cached image embeddings (frozen encoder): the cache's content, its reuse and invalidation, one training
step against the image path, the bundle option end to end (tiny model, S = 64, synthetic ACDC phantoms)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader

from aisam_monai.data.datalist import dataset_info, load_datalist
from aisam_monai.data.prepare import prepare
from aisam_monai.data.synthetic import write_phantoms
from aisam_monai.engines import AISAMTrainer, EmbeddingCache, check_cache_settings
from aisam_monai.io.errors import InputError
from aisam_monai.losses import AISAMLoss
from aisam_monai.networks import AISAM
from aisam_monai.transforms import train_transforms

torch.set_num_threads(1)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
S, C = 64, 4
LOGGER = "aisam_monai.embedding_cache"


def _network(seed: int = 0, image_size: int = S) -> AISAM:
    torch.manual_seed(seed)
    return AISAM(C, sam_type="tiny", image_size=image_size, train_encoder=False)


class TestEmbeddingCache(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp()
        raw, cls.dataset = os.path.join(cls.root, "raw"), os.path.join(cls.root, "acdc")
        write_phantoms("acdc", raw, cases=3, seed=0, size=40, log=lambda *_: None)
        prepare("acdc", raw, cls.dataset)
        cls.data = load_datalist(cls.dataset, "training", C)  # two volumes of 10 slices
        cls.intensity = dataset_info(cls.dataset)["intensity"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def _cache(self, name: str, network: AISAM | None = None, **kwargs) -> EmbeddingCache:
        folder = os.path.join(self.root, name)
        network = network or _network()
        return EmbeddingCache(network, self.data, folder, "tiny", self.intensity, progress=False, **kwargs)

    def test_one_step_from_cache_equals_one_step_from_images(self):
        """Same seed, no augmentation: the same slices and labels are drawn, and the loss agrees to fp16 storage.

        The cache stores the embedding in float16 (relative rounding <= 2**-11 per value); the decoder is smooth in
        it, so the loss moves by about that much (measured: 1e-5 relative), far inside the 1e-3 asserted here.
        """
        net = _network()
        datasets = {
            "image": CacheDataset(
                self.data, train_transforms(S, C, self.intensity, slices_per_volume=2, augment=False), progress=False
            ),
            "cache": self._cache("step", net).dataset(slices_per_volume=2),
        }
        batches, losses = {}, {}
        for path, dataset in datasets.items():
            torch.manual_seed(0)
            loader = DataLoader(dataset, batch_size=2, shuffle=True)
            model = copy.deepcopy(net)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
            trainer = AISAMTrainer(
                device="cpu",
                max_epochs=1,
                epoch_length=1,
                train_data_loader=loader,
                network=model,
                optimizer=optimizer,
                loss_function=AISAMLoss(C),
                decollate=False,
            )
            trainer.add_event_handler(
                Events.ITERATION_STARTED, lambda e, path=path: batches.update({path: e.state.batch})
            )
            torch.manual_seed(1)  # the Gumbel noise of the hard points
            trainer.run()
            losses[path] = trainer.state.output["loss"].item()
        image, cache = batches["image"], batches["cache"]
        self.assertNotIn("image", cache)
        self.assertEqual(cache["embedding"].shape, (4, 64, 8, 8))  # (B, D, S/8, S/8) for tiny
        self.assertEqual(image["slice_index"].tolist(), cache["slice_index"].tolist())
        self.assertEqual(cache["copy"].tolist(), [0] * 4)
        torch.testing.assert_close(cache["label"], image["label"], atol=0, rtol=0)
        torch.testing.assert_close(cache["multi_hot"], image["multi_hot"], atol=0, rtol=0)
        with torch.no_grad():
            embedding = net.eval().encode(image["image"])
        torch.testing.assert_close(cache["embedding"], embedding, rtol=1e-3, atol=1e-3)
        self.assertLess(abs(losses["cache"] - losses["image"]), 1e-3 * abs(losses["image"]), losses)

    def test_augmented_copies(self):
        cache = self._cache("copies", num_augmentations=2, seed=3)
        files = cache.build()
        record = torch.load(files[0], mmap=True, weights_only=True)
        n = 3 * 10
        self.assertEqual(record["embedding"].shape, (n, 64, 8, 8))
        self.assertEqual(record["embedding"].dtype, torch.float16)
        self.assertEqual((record["label"].shape, record["label"].dtype), ((n, S, S), torch.uint8))
        self.assertEqual(record["copy"].tolist(), [k for k in range(3) for _ in range(10)])
        self.assertEqual(record["slice_index"].tolist(), list(range(10)) * 3)
        labels = record["label"].long()
        presence = torch.stack([(labels == c).flatten(1).any(1) for c in range(C)], 1)
        self.assertTrue(torch.equal(record["presence"].bool(), presence))
        self.assertTrue(torch.equal(record["foreground"][10:], labels[10:].flatten(1).any(1)))
        self.assertFalse(torch.equal(labels[:10], labels[10:20]))  # the copies are augmented, not the originals
        entries = [e for item in cache.dataset(slices_per_volume=8)[0:2] for e in item]
        self.assertEqual(len(entries), 16)
        self.assertTrue({e["copy"] for e in entries} - {0})  # the copies are drawn too

    def test_reuse_resume_and_rebuild(self):
        cache = self._cache("reuse")
        files = cache.build()
        mtimes = [os.stat(f).st_mtime_ns for f in files]
        with self.assertLogs(LOGGER, "INFO") as logs:
            self.assertEqual(self._cache("reuse").build(), files)
        self.assertIn("reusing embedding cache", logs.output[0])
        self.assertIn("(20 slices", logs.output[0])
        self.assertEqual([os.stat(f).st_mtime_ns for f in files], mtimes)  # not rewritten

        os.remove(files[1])  # a build killed after the first volume
        with self.assertLogs(LOGGER, "INFO") as logs:
            self._cache("reuse").build()
        self.assertIn("1 of 2 volumes (1 already written)", "\n".join(logs.output))
        self.assertEqual(os.stat(files[0]).st_mtime_ns, mtimes[0])

        for changed, expected in (
            ({"network": _network(image_size=32)}, "image_size (64 -> 32)"),  # (and the tiny encoder's weights)
            ({"network": _network(seed=1)}, "encoder_sha1"),  # another backbone's weights
            ({"num_augmentations": 1}, "num_augmentations (0 -> 1)"),
            ({"slice_axis": 1}, "slice_axis (2 -> 1)"),
        ):
            with self.subTest(expected), self.assertLogs(LOGGER, "INFO") as logs:
                self._cache("reuse", **changed).build()
                self.assertIn("settings changed: ", logs.output[0])
                self.assertIn(expected, logs.output[0])
                self._cache("reuse").build()  # back to the first settings: rebuilt again
                self.assertEqual(sum("rebuilding" in line for line in logs.output), 2)

    def test_frozen_encoder_required(self):
        for kwargs in ({"use_lora": True, "train_encoder": False}, {"use_lora": False, "train_encoder": True}):
            with self.subTest(**kwargs), self.assertRaisesRegex(InputError, "cache_embeddings: needs a frozen image"):
                check_cache_settings(True, 0, augment=True, **kwargs)
        with self.assertRaisesRegex(InputError, "must be True or False"):
            check_cache_settings("true", 0, False, False, True)
        with self.assertRaisesRegex(InputError, "cache_augmentations: augmented copies need --augment True"):
            check_cache_settings(True, 2, False, False, False)
        check_cache_settings(False, 0, True, True, True)  # no cache: anything goes
        torch.manual_seed(0)
        lora = AISAM(C, sam_type="tiny", image_size=S, use_lora=True)
        with self.assertRaisesRegex(InputError, "needs a frozen image encoder, but .* tensors train"):
            self._cache("lora", lora)

    def test_litemedsam(self):
        """LiteMedSAM (pretrained TinyViT encoder, 256 channels on the S/16 grid): a cache of two slices at S = 128."""
        folder = os.path.join(self.root, "litemedsam_data")
        os.makedirs(folder, exist_ok=True)
        rng = np.random.default_rng(0)
        label = np.zeros((32, 32, 2), np.uint8)
        label[8:20, 10:24, 0] = 1
        item = {}
        for key, array in (("image", rng.random((32, 32, 2), dtype=np.float32)), ("label", label)):
            item[key] = os.path.join(folder, f"{key}.nii.gz")
            nib.save(nib.Nifti1Image(array, np.eye(4)), item[key])
        net = AISAM(C, sam_type="litemedsam", image_size=128)
        cache = EmbeddingCache(net, [item], os.path.join(self.root, "litemedsam"), "litemedsam", self.intensity)
        (entry,) = cache.dataset(slices_per_volume=1, foreground_prob=1.0)[0]
        self.assertEqual(entry["embedding"].shape, (256, *net.grid))
        self.assertEqual(entry["slice_index"], 0)
        out = net.decode(entry["embedding"][None])
        self.assertEqual(out["logits"].shape, (1, C, *net.mask_size))


class TestBundleOption(unittest.TestCase):
    def test_bundle_trains_from_the_cache_and_resumes_with_it(self):
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root, True)
        raw, data, out = (os.path.join(root, n) for n in ("raw", "acdc", "out"))
        write_phantoms("acdc", raw, cases=4, seed=0, size=40, log=lambda *_: None)
        prepare("acdc", raw, data)
        cmd = [sys.executable, "-m", "monai.bundle", "run", "training"]
        cmd += ["--config_file", "bundles/acdc/configs/train.yaml", "--dataset_dir", data, "--output_dir", out]
        cmd += ["--sam_type", "tiny", "--image_size", "64", "--train_encoder", "False", "--progress", "False"]
        cmd += ["--cache_embeddings", "True", "--cache_augmentations", "1", "--batch_size", "2", "--val_interval", "1"]
        texts = []
        for epochs in (1, 2):
            result = subprocess.run(
                cmd + ["--epochs", str(epochs)], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300
            )
            texts.append(result.stdout + result.stderr)
            self.assertEqual(result.returncode, 0, texts[-1][-3000:])
        self.assertIn("building embedding cache", texts[0])
        self.assertIn("val_mean_dice", texts[0])
        self.assertIn("reusing embedding cache", texts[1])
        self.assertNotIn("building embedding cache", texts[1])
        self.assertIn("at epoch 1 of 2", texts[1])
        self.assertTrue(os.path.isfile(os.path.join(out, "checkpoint_epoch=2.pt")))

        result = subprocess.run(
            cmd + ["--epochs", "3", "--use_lora", "True"],
            cwd=REPO,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertNotEqual(result.returncode, 0)
        text = result.stdout + result.stderr
        self.assertIn("cache_embeddings: needs a frozen image encoder", text)
        self.assertNotIn("Traceback", text)


if __name__ == "__main__":
    unittest.main()
