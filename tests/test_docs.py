# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
``docs/interactive.md`` runs as written: its shell commands (the ```bash blocks, in order, in one shell) and its
first Python example, from a folder laid out like the repository root after ``python -m aisam_monai.quickstart``.

The quickstart itself (its own block, about 8 minutes; ``tests/test_quickstart.py`` runs it with a minimal setting)
is replaced by a fixture that writes the files the page reads: the quickstart's prepared synthetic dataset (the same
seed gives the same ``patient002``) and a checkpoint of the tiny model at the quickstart's image size, with random
weights. The commands are checked for running and writing their files, not for the quality of the result.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import torch

from aisam_monai.data.prepare import prepare
from aisam_monai.data.synthetic import write_phantoms
from aisam_monai.networks import AISAM
from aisam_monai.quickstart import RECIPES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(REPO, "docs", "interactive.md")
QUICKSTART = "python -m aisam_monai.quickstart"
IMAGE_SIZE = RECIPES["tiny"]["image_size"]  # the default quickstart's
# the files the page's commands write, relative to the folder they run in
WRITTEN = [
    "quickstart_out/interactive/auto.nii.gz",
    "quickstart_out/interactive/auto_points.json",
    "quickstart_out/interactive/edits.json",
    "quickstart_out/interactive/refined.nii.gz",
    "quickstart_out/interactive/refined_points.json",
    "docs/figures/interactive_auto.png",
    "docs/figures/interactive_refined.png",
]


def _blocks(language: str) -> list[str]:
    with open(PAGE) as f:
        return re.findall(rf"```{language}\n(.*?)```", f.read(), re.S)


def _quickstart_output(root: str) -> None:
    """The files of ``python -m aisam_monai.quickstart`` that the page reads, under ``root/quickstart_out``."""
    out = os.path.join(root, "quickstart_out")
    raw = os.path.join(out, "synthetic_acdc")
    write_phantoms("acdc", raw, cases=2, seed=0, log=lambda *_: None)
    prepare("acdc", raw, os.path.join(out, "data", "acdc"))
    torch.manual_seed(0)
    model = AISAM(num_classes=4, sam_type="tiny", image_size=IMAGE_SIZE)
    os.makedirs(os.path.join(out, "acdc"))
    torch.save({"model": model.state_dict()}, os.path.join(out, "acdc", "model.pt"))


class TestInteractiveDoc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.root = cls._tmp.name
        os.symlink(os.path.join(REPO, "bundles"), os.path.join(cls.root, "bundles"))
        os.makedirs(os.path.join(cls.root, "docs", "figures"))
        _quickstart_output(cls.root)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def test_quickstart_block(self):
        """The page starts from the quickstart, at the image size the quickstart trains at."""
        blocks = _blocks("bash")
        self.assertEqual(blocks[0].split("#")[0].strip(), QUICKSTART)
        self.assertIn(f"--override image_size={IMAGE_SIZE}", blocks[1])

    def test_shell_commands_run(self):
        script = "\n".join(_blocks("bash")[1:])
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
            "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=self.root, env=env, capture_output=True, text=True
        )
        self.assertEqual(proc.returncode, 0, proc.stdout[-2000:] + proc.stderr[-2000:])
        paths = {p: os.path.join(self.root, p) for p in WRITTEN}
        missing = [p for p, path in paths.items() if not (os.path.isfile(path) and os.path.getsize(path) > 0)]
        self.assertEqual(missing, [])

    def test_python_example_runs(self):
        torch.set_num_threads(1)
        cwd = os.getcwd()
        os.chdir(self.root)
        try:
            scope: dict = {}
            exec(compile(_blocks("python")[0], PAGE, "exec"), scope)
        finally:
            os.chdir(cwd)
        self.assertEqual(tuple(scope["refined"].shape), tuple(scope["labels"].shape))


class TestEditorCommand(unittest.TestCase):
    """The ``aisam serve`` command of the README and docs/editor.md, as written (plus a free port), serves the
    quickstart's volumes."""

    def _command(self, path: str) -> str:
        with open(path) as f:
            blocks = re.findall(r"```bash\n(.*?)```", f.read(), re.S)
        (block,) = [b for b in blocks if "aisam serve" in b]
        command = block.replace("\\\n", " ")
        return command.split("&&")[-1].strip()  # after the README's install step

    def test_readme_and_editor_page_commands_serve(self):
        commands = {
            self._command(os.path.join(REPO, "README.md")),
            self._command(os.path.join(REPO, "docs", "editor.md")),
        }
        self.assertEqual(len(commands), 1, commands)  # the README and the page show the same command
        with tempfile.TemporaryDirectory() as root:
            os.symlink(os.path.join(REPO, "bundles"), os.path.join(root, "bundles"))
            _quickstart_output(root)
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            env = {
                **os.environ,
                "OMP_NUM_THREADS": "1",
                "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
            }
            server = subprocess.Popen(
                ["bash", "-c", f"exec {commands.pop()} --port {port}"], cwd=root, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            try:
                deadline, listing = time.monotonic() + 120, None
                while listing is None:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/volumes", timeout=2) as answer:
                            listing = json.loads(answer.read())
                    except OSError:
                        if server.poll() is not None or time.monotonic() > deadline:
                            self.fail(f"aisam serve did not start: {server.stdout.read()}")
                        time.sleep(0.3)
                self.assertIn("patient002_ED.nii.gz", listing["volumes"])
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/open", data=json.dumps({"path": "patient002_ED.nii.gz"}).encode(),
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip
                with urllib.request.urlopen(request, timeout=120) as answer:
                    info = json.loads(answer.read())
                self.assertEqual(info["classes"], ["background", "RV", "Myo", "LV"])
            finally:
                server.terminate()
                server.wait(timeout=30)
                server.stdout.close()


if __name__ == "__main__":
    unittest.main()
