# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os
import re
import tempfile
import unittest

import nibabel as nib
import numpy as np
import torch

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


class TestReadme(unittest.TestCase):
    def test_python_example_runs(self):
        """The README's Python example (automatic, interactive, training and file-to-file calls) runs as written."""
        torch.set_num_threads(1)
        with open(README) as f:
            code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
        scope: dict = {}
        cwd = os.getcwd()
        with tempfile.TemporaryDirectory() as d:
            os.chdir(d)  # the example writes its NIfTI files where it runs
            try:
                exec(compile(code, README, "exec"), scope)
                seg = nib.load("scan_seg.nii.gz")
                self.assertEqual((seg.shape, seg.get_data_dtype()), ((96, 80, 12), np.uint8))
            finally:
                os.chdir(cwd)
        mask = scope["model"].mask_size  # S/4 for the SAM backbones, S/2 for tiny
        self.assertEqual(scope["labels"].shape, (2, 1, *mask))
        self.assertEqual(scope["out"]["logits"].shape, (2, 4, *mask))
        self.assertTrue(torch.isfinite(scope["parts"]["loss"]))
        self.assertEqual(tuple(scope["result"]["points"].shape[:2]), (12, 4))


if __name__ == "__main__":
    unittest.main()
