# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os
import tempfile
import unittest

import torch

from aisam_monai.io.checkpoint import check_checkpoint, find_last_checkpoint
from aisam_monai.networks import AISAM

torch.set_num_threads(1)


class TestCheckpointFiles(unittest.TestCase):
    def test_truncated_checkpoint_is_one_line(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "checkpoint_epoch=3.pt")
            net = AISAM(num_classes=4, sam_type="tiny", image_size=64)
            torch.save({"model": net.state_dict()}, path)
            with open(path, "r+b") as f:  # what a kill during a non-atomic write leaves
                f.truncate(os.path.getsize(path) // 2)
            with self.assertRaisesRegex(ValueError, r"checkpoint_epoch=3.pt: not a readable checkpoint"):
                check_checkpoint(path, net)

    def test_find_last(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertIsNone(find_last_checkpoint(d))
            for n in (2, 10, 9):
                open(os.path.join(d, f"checkpoint_epoch={n}.pt"), "w").close()
            self.assertTrue(find_last_checkpoint(d).endswith("checkpoint_epoch=10.pt"))


if __name__ == "__main__":
    unittest.main()
