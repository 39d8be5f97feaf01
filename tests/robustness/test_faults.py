# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Faults while writing: a SIGKILL at any moment of ``aisam segment``, the bundle inference or ``prepare`` leaves
the old output or the complete new one (``prepare`` re-run completes the rest without redoing finished cases);
a full disk gives one line and no partial file.

Each run is a forked child of this process (the imports are already done, so a run takes a fraction of a second
instead of a fresh interpreter's many seconds), killed with SIGKILL when its temporary output appears (inside a
write) or after a fraction of the uninterrupted run's time. The full disk is a file size limit (``RLIMIT_FSIZE``,
``SIGXFSZ`` ignored) set in the child: its writes beyond the limit fail (``EFBIG``) through the same code path as
``ENOSPC``, without the root-only tmpfs mount.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import nibabel as nib
import numpy as np
import torch
import yaml
from monai.bundle import run as bundle_run

from aisam_monai.cli import main as aisam_main
from aisam_monai.data.prepare import main as prepare_main
from aisam_monai.data.synthetic import write_phantoms
from aisam_monai.networks import AISAM
from tests.robustness.inputs import save, volume

torch.set_num_threads(1)  # no thread pool in the parent: the forked children run torch safely

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLE = os.path.join(REPO, "bundles", "acdc")
OLD = b"an earlier output, to be left as it is"
SIZE = 32


def _temporary_in(folder: str):
    """A kill condition: a temporary output in ``folder`` (the child is inside a write)."""
    return lambda: os.path.isdir(folder) and any(".tmp" in n for n in os.listdir(folder))


def _fork(run, until=None, after: float | None = None, limit: int | None = None):
    """
    Run ``run()`` (returning an exit status) in a forked child; SIGKILL it once ``until()`` is true or ``after``
    seconds have passed. Returns ``(status or None when killed, stdout, stderr)``.
    """
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            sys.stdout = open(1, "w", closefd=False)  # not the test runner's capture
            sys.stderr = open(2, "w", closefd=False)
            if limit is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            code = run()
        except BaseException as e:  # noqa: BLE001 - what the process would end with
            sys.excepthook(type(e), e, e.__traceback__)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    chunks = {out_r: [], err_r: []}

    def drain():
        for fd in chunks:
            with contextlib.suppress(BlockingIOError):
                while data := os.read(fd, 65536):
                    chunks[fd].append(data)

    start, killed = time.monotonic(), False
    while True:
        drain()
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if (until is not None and until()) or (after is not None and time.monotonic() - start >= after):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            killed = True
            break
        time.sleep(0.0005)
    drain()
    for fd in chunks:
        os.close(fd)
    text = [b"".join(chunks[fd]).decode(errors="replace") for fd in (out_r, err_r)]
    return (None if killed else os.waitstatus_to_exitcode(status)), text[0], text[1]


def _array(path: str) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


class _Faults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        model = AISAM(num_classes=4, sam_type="tiny", image_size=SIZE)
        cls.checkpoint = os.path.join(cls.tmp.name, "model.pt")
        torch.save({"model": model.state_dict()}, cls.checkpoint)
        cls.config = os.path.join(cls.tmp.name, "model.yaml")
        with open(cls.config, "w") as f:
            network = {"_target_": "aisam_monai.networks.AISAM", "num_classes": 4, "sam_type": "tiny"}
            yaml.safe_dump({"network_def": {**network, "image_size": SIZE}}, f)
        cls.image = save(os.path.join(cls.tmp.name, "in", "case.nii.gz"), volume(shape=(96, 80, 24)))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def segment(self, out: str):
        argv = ["segment", self.image, "--config", self.config, "--checkpoint", self.checkpoint, "--out", out]
        return lambda: aisam_main([*argv, "--no-progress"])

    def inference(self, output_dir: str):
        def run() -> int:
            bundle_run(
                "inference",
                config_file=os.path.join(BUNDLE, "configs", "inference.yaml"),
                bundle_root=BUNDLE,
                input_image=self.image,
                checkpoint=self.checkpoint,
                output_dir=output_dir,
                dataset_dir=self.tmp.name,
                sam_type="tiny",
                image_size=SIZE,
                slab_slices=8,
                progress=False,
                device="$torch.device('cpu')",
            )
            return 0

        return run

    def prepare(self, source: str, out: str):
        return lambda: prepare_main(["acdc", "--source", source, "--out", out])

    def visible(self, folder: str) -> list[str]:
        return sorted(n for n in os.listdir(folder) if not n.startswith(".")) if os.path.isdir(folder) else []


class TestKill(_Faults):
    def _kills(self, run, outputs: list[str]) -> None:
        """SIGKILL ``run`` inside its write and at fractions of its time; each output is old or whole."""
        folder = os.path.dirname(outputs[0])
        start = time.monotonic()
        self.assertEqual(_fork(run)[0], 0)
        seconds = time.monotonic() - start
        reference = [_array(p) for p in outputs]
        for when in (None, 0.3 * seconds, 0.6 * seconds, 0.9 * seconds):
            for path in outputs:
                with open(path, "wb") as f:
                    f.write(OLD)
            status = _fork(run, until=_temporary_in(folder) if when is None else None, after=when)[0]
            if when is None:
                self.assertIsNone(status, "not killed inside the write")
            for path, ref in zip(outputs, reference):
                with open(path, "rb") as f:
                    if f.read() != OLD:  # replaced: then by the whole new file
                        np.testing.assert_array_equal(_array(path), ref)
        self.assertEqual(_fork(run)[0], 0)  # a run after the kills
        for path, ref in zip(outputs, reference):
            np.testing.assert_array_equal(_array(path), ref)
        self.assertEqual([n for n in os.listdir(folder) if ".tmp" in n], [])  # the killed runs' temporaries removed

    def test_segment(self):
        out = os.path.join(self.tmp.name, "segment", "seg.nii.gz")
        self._kills(self.segment(out), [out])

    def test_bundle_inference(self):
        output_dir = os.path.join(self.tmp.name, "bundle")
        self._kills(self.inference(output_dir), [os.path.join(output_dir, "predictions", "case_seg.nii.gz")])

    def test_prepare_resumes(self):
        source, out, reference = (os.path.join(self.tmp.name, n) for n in ("src", "prep", "prep_reference"))
        write_phantoms("acdc", source, cases=4, seed=1, size=64, slices=(6, 8), log=lambda *_: None)
        self.assertEqual(_fork(self.prepare(source, reference))[0], 0)
        images = os.path.join(out, "images")
        # after three of the eight cases, then inside the write of another
        for until in (lambda: len(self.visible(os.path.join(out, "labels"))) >= 3, _temporary_in(images)):
            self.assertIsNone(_fork(self.prepare(source, out), until=until)[0], "the run ended before the kill")
            for kind in ("images", "labels"):
                for name in self.visible(os.path.join(out, kind)):  # every visible file is whole
                    expected = _array(os.path.join(reference, kind, name))
                    np.testing.assert_array_equal(_array(os.path.join(out, kind, name)), expected)
        done = {
            n[: -len(".nii.gz")]: os.stat(os.path.join(images, n)).st_mtime_ns
            for n in self.visible(images)
            if os.path.exists(os.path.join(out, "labels", n))
        }
        self.assertTrue(done, "the kills came before any finished case: the resume is not tested")
        self.assertLess(len(done), 8, "the kills came after the last case: the resume is not tested")
        self.assertEqual(_fork(self.prepare(source, out))[0], 0)
        with open(os.path.join(out, "prepare_report.json")) as f:
            report = json.load(f)
        self.assertEqual(set(report["skipped_existing"]), set(done))  # finished cases are not redone
        self.assertEqual(set(report["written"]) | set(done), {n[:-7] for n in self.visible(images)})
        for case, mtime in done.items():
            self.assertEqual(os.stat(os.path.join(images, f"{case}.nii.gz")).st_mtime_ns, mtime)
        for kind in ("images", "labels"):
            self.assertEqual(self.visible(os.path.join(out, kind)), self.visible(os.path.join(reference, kind)))
            for name in self.visible(os.path.join(out, kind)):
                np.testing.assert_array_equal(
                    _array(os.path.join(out, kind, name)), _array(os.path.join(reference, kind, name))
                )
        with open(os.path.join(out, "datalist.json")) as f, open(os.path.join(reference, "datalist.json")) as g:
            mine, ref = json.load(f), json.load(g)
        self.assertEqual(
            mine["training"] + mine["validation"] + mine["test"], ref["training"] + ref["validation"] + ref["test"]
        )


class TestFullDisk(_Faults):
    def assert_one_line(self, text: str, path: str) -> None:
        self.assertNotIn("Traceback", text)
        lines = [ln for ln in text.splitlines() if "error" in ln.lower()]
        self.assertEqual(len(lines), 1, text)
        self.assertIn(path, lines[0])
        self.assertIn("File too large", lines[0])

    def test_segment(self):
        out = os.path.join(self.tmp.name, "full", "seg.nii.gz")
        os.makedirs(os.path.dirname(out))
        with open(out, "wb") as f:
            f.write(OLD)
        status, _, err = _fork(self.segment(out), limit=4096)
        self.assertEqual(status, 2, err)
        self.assert_one_line(err, out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), OLD)
        self.assertEqual(os.listdir(os.path.dirname(out)), ["seg.nii.gz"])

    def test_bundle_inference(self):
        output_dir = os.path.join(self.tmp.name, "full_bundle")
        predictions = os.path.join(output_dir, "predictions")
        os.makedirs(predictions)
        old = os.path.join(predictions, "case_seg.nii.gz")
        with open(old, "wb") as f:
            f.write(OLD)
        status, out, err = _fork(self.inference(output_dir), limit=4096)
        self.assertEqual(status, 1)
        self.assert_one_line(out + err, old)
        with open(old, "rb") as f:
            self.assertEqual(f.read(), OLD)
        self.assertEqual(os.listdir(predictions), ["case_seg.nii.gz"])

    def test_prepare(self):
        source, out = os.path.join(self.tmp.name, "full_src"), os.path.join(self.tmp.name, "full_prep")
        write_phantoms("acdc", source, cases=2, seed=2, size=64, slices=(6, 8), log=lambda *_: None)
        status, _, err = _fork(self.prepare(source, out), limit=8192)
        self.assertEqual(status, 2, err)
        self.assert_one_line(err, out)
        for kind in ("images", "labels"):
            folder = os.path.join(out, kind)
            for name in os.listdir(folder) if os.path.isdir(folder) else ():
                self.assertFalse(name.startswith("."), "a temporary left behind")
                nib.load(os.path.join(folder, name)).get_fdata()  # each file that is there is whole


class TestBundleProcess(unittest.TestCase):
    def test_one_line_without_traceback(self):
        """The issue's case in a real process: ``run training`` with a missing ``dataset_dir`` (tiny model); with the
        default ViT-B and no official checkpoint in ``models/``, the missing checkpoint is the one line."""
        for extra, expected in (
            (["--sam_type", "tiny"], "/nowhere: dataset folder not found"),
            ([], "sam_vit_b_01ec64.pth: SAM checkpoint file of sam_type 'vit_b' not found"),
        ):
            with tempfile.TemporaryDirectory() as d:
                cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--bundle_root", BUNDLE]
                cmd += ["--config_file", os.path.join(BUNDLE, "configs", "train.yaml"), "--dataset_dir", d + "/nowhere"]
                env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
                result = subprocess.run(cmd + extra, cwd=d, env=env, capture_output=True, text=True, timeout=300)
            self.assertEqual(result.returncode, 1)
            self.assertNotIn("Traceback", result.stderr)
            errors = [ln for ln in (result.stdout + result.stderr).splitlines() if "ERROR" in ln]
            self.assertEqual(len(errors), 1, result.stdout + result.stderr)
            self.assertIn(expected, errors[0])


if __name__ == "__main__":
    unittest.main()
