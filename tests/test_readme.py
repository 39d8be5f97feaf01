# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os
import re
import unittest

import torch

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


class TestReadme(unittest.TestCase):
    def test_python_example_runs(self):
        """The README's Python example (automatic, interactive and training calls) runs as written."""
        torch.set_num_threads(1)
        with open(README) as f:
            code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
        scope: dict = {}
        exec(compile(code, README, "exec"), scope)
        mask = scope["model"].mask_size  # S/4 for the SAM backbones, S/2 for tiny
        self.assertEqual(scope["labels"].shape, (2, 1, *mask))
        self.assertEqual(scope["out"]["logits"].shape, (2, 4, *mask))
        self.assertTrue(torch.isfinite(scope["parts"]["loss"]))


if __name__ == "__main__":
    unittest.main()
