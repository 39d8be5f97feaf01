# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import json
import os
import stat
import tempfile
import unittest

from aisam_monai.io.atomic import atomic_write_bytes, atomic_write_json


class TestAtomicWrites(unittest.TestCase):
    def test_written_file_has_the_usual_permissions(self):
        old = os.umask(0o022)
        try:
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "out", "summary.json")
                atomic_write_json(path, {"dice": 0.8})
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)  # not mkstemp's 0o600
                with open(path) as f:
                    self.assertEqual(json.load(f), {"dice": 0.8})
                self.assertEqual(os.listdir(os.path.dirname(path)), ["summary.json"])
        finally:
            os.umask(old)

    def test_failed_write_leaves_the_previous_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "a.bin")
            atomic_write_bytes(path, lambda tmp: open(tmp, "wb").write(b"first"))

            def fail(tmp: str) -> None:
                with open(tmp, "wb") as f:
                    f.write(b"half")
                raise OSError("disk full")

            with self.assertRaises(OSError):
                atomic_write_bytes(path, fail)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), b"first")
            self.assertEqual(os.listdir(d), ["a.bin"])


if __name__ == "__main__":
    unittest.main()
