# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os
import shutil
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@unittest.skipUnless(
    shutil.which("ruff") or os.environ.get("CI") == "true", "ruff is not installed: pip install -e '.[test]'"
)
class TestStyle(unittest.TestCase):
    """The tree is ruff-clean (lint and format, line length 120; settings in pyproject.toml)."""

    def _ruff(self, *args: str) -> None:
        run = subprocess.run(["ruff", *args], cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_lint(self):
        self._ruff("check", ".")

    def test_format(self):
        self._ruff("format", "--check", ".")


if __name__ == "__main__":
    unittest.main()
