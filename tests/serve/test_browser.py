# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
The editor in a real headless Chromium (Debian's ``chromium``, driven by Playwright), against ``aisam serve``.

The checks read the page's state (``window.aisam``) and the files on disk, not pixels. With
``AISAM_EDITOR_SCREENSHOTS=DIR`` the test also writes the screenshots of docs/editor.md and the measured
click-to-repaint times to ``DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import nibabel as nib
import numpy as np

from tests.serve.editor_fixture import AFFINE, LEFT, RIGHT, D, H, W, disk_mask, write_editor_folder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sync_playwright = None
HINT = 'needs a browser: apt-get update && apt-get install -y chromium; pip install -e ".[test]" (playwright)'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless((CHROMIUM and sync_playwright) or os.environ.get("CI") == "true", HINT)
class TestEditorInChromium(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.files = write_editor_folder(cls.tmp.name)
        cls.out = os.path.join(cls.tmp.name, "out")
        port = _free_port()
        cls.url = f"http://127.0.0.1:{port}/"
        cmd = [sys.executable, "-m", "aisam_monai.cli", "serve", "--root", cls.files["root"],
               "--config", cls.files["config"], "--checkpoint", cls.files["checkpoint"], "--port", str(port),
               "--out-dir", cls.out, "--no-progress"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cls.server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(cls.url + "api/volumes", timeout=2).read()
                break
            except OSError:
                if cls.server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"aisam serve did not start: {cls.server.stdout.read()}") from None
                time.sleep(0.3)
        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        cls.shots = os.environ.get("AISAM_EDITOR_SCREENSHOTS")

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        cls.server.terminate()
        cls.server.wait(timeout=30)
        cls.server.stdout.close()
        cls.tmp.cleanup()

    def state(self, page, expr: str):
        return page.evaluate(f"() => {{ const S = window.aisam; return {expr}; }}")

    def labels(self, page) -> np.ndarray:
        return np.array(self.state(page, "Array.from(S.slices[S.z].labels)"), dtype=np.uint8).reshape(H, W)

    def screen(self, page, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of slice pixel ``(x, y)``."""
        return tuple(
            self.state(
                page,
                f"(() => {{ const r = document.getElementById('canvas').getBoundingClientRect();"
                f" return [r.left + S.panX + ({x} + 0.5) * S.scale, r.top + S.panY + ({y} + 0.5) * S.scale]; }})()",
            )
        )

    def wait_edits(self, page, count: int) -> None:
        page.wait_for_function(f"() => window.aisam.repaintMs.length >= {count} && window.aisam.busy === 0")

    def open_page(self, path: str, width: int, height: int):
        """A new page with the volume ``path`` opened and its current slice shown."""
        page = self.browser.new_page(viewport={"width": width, "height": height})
        page.goto(self.url)
        page.click(f"#volumes li[data-path='{path}']")
        page.wait_for_function(
            "() => { const S = window.aisam; return S.sid && S.slices[S.z] && S.slices[S.z].labels; }"
        )
        return page

    def shot(self, page, name: str) -> None:
        if self.shots:
            os.makedirs(self.shots, exist_ok=True)
            page.screenshot(path=os.path.join(self.shots, name))

    def test_click_drag_box_undo_save(self):
        page = self.open_page("case.nii.gz", 1200, 760)
        page.wait_for_function("() => window.aisam.progress.done === window.aisam.progress.total", timeout=120_000)
        z = self.state(page, "S.z")
        self.assertEqual(self.state(page, "S.info.shape"), [H, W, D])
        auto = self.labels(page)
        self.shot(page, "editor_auto.png")
        right, left = disk_mask(RIGHT), disk_mask(LEFT)

        # 1. a click inside the disk the model missed: the class grows there
        page.mouse.click(*self.screen(page, *RIGHT))
        self.wait_edits(page, 1)
        clicked = self.labels(page)
        self.assertGreater(int((clicked[right] == 1).sum()), int((auto[right] == 1).sum()))

        # 2. drag a generated point of the disk class: the mask changes
        point = self.state(page, "S.slices[S.z].points.find(p => p.generated && p.class === 1)")
        page.mouse.move(*self.screen(page, point["x"], point["y"]))
        page.mouse.down()
        target = (W - 1 - point["x"] * 0.5, H - 1 - point["y"] * 0.5)
        page.mouse.move(*self.screen(page, *target), steps=5)
        page.mouse.up()
        self.wait_edits(page, 2)
        dragged = self.labels(page)
        self.assertFalse(np.array_equal(dragged, clicked))
        points = self.state(page, "S.slices[S.z].points.filter(p => p.class === 1)")
        near = [p for p in points if abs(p["x"] - target[0]) <= 1 and abs(p["y"] - target[1]) <= 1]
        self.assertEqual(len(near), 1)  # the dragged point (of those stacked on one cell, the page takes one)
        self.shot(page, "editor_click.png")

        # 3. a box around the left disk: the class disappears outside it
        page.check("input[name=tool][value=box]")
        x1, y1, x2, y2 = LEFT[0] - 14, LEFT[1] - 14, LEFT[0] + 14, LEFT[1] + 14
        page.mouse.move(*self.screen(page, x1, y1))
        page.mouse.down()
        page.mouse.move(*self.screen(page, x2, y2), steps=5)
        page.mouse.up()
        self.wait_edits(page, 3)
        boxed = self.labels(page)
        yy, xx = np.mgrid[:H, :W]
        inside = (xx >= round(x1) - 1) & (xx <= round(x2) + 1) & (yy >= round(y1) - 1) & (yy <= round(y2) + 1)
        self.assertFalse(bool((boxed[~inside] == 1).any()))
        self.assertTrue(bool((boxed[left] == 1).any()))
        self.shot(page, "editor_box.png")

        # 4. undo: the previous mask is back
        page.click("#undo")
        page.wait_for_function(
            "() => window.aisam.busy === 0 && document.getElementById('status').textContent === 'undone'"
        )
        np.testing.assert_array_equal(self.labels(page), dragged)

        # 5. save: the NIfTI on disk has the input's shape and affine and the page's labels
        page.click("#save")
        page.wait_for_function("() => window.aisam.saved !== null")
        saved = self.state(page, "S.saved")
        seg = nib.load(saved["labels"])
        self.assertEqual((seg.shape, seg.get_data_dtype()), ((H, W, D), np.uint8))
        np.testing.assert_allclose(seg.affine, AFFINE, atol=1e-5)
        np.testing.assert_array_equal(np.asarray(seg.dataobj)[..., z], dragged)
        with open(saved["edits"]) as f:
            self.assertEqual([e["op"] for e in json.load(f)["edits"]], ["add_point", "move_point"])
        self.assertEqual(self.state(page, "S.lastError"), "")

        repaint = self.state(page, "S.repaintMs")
        print(f"\nclick-to-repaint in Chromium (ms): {[round(t, 1) for t in repaint]}")
        if self.shots:
            with open(os.path.join(self.shots, "repaint_ms.json"), "w") as f:
                json.dump(repaint, f)
        page.close()

    def test_a_refused_edit_shows_a_message_and_the_page_stays_usable(self):
        page = self.open_page("sub/other.nii.gz", 1000, 700)
        page.keyboard.press("Control+z")  # nothing to undo yet: the API answers 400
        page.wait_for_function("() => document.getElementById('status').className === 'error'")
        self.assertIn("nothing to undo", page.inner_text("#status"))
        page.mouse.click(*self.screen(page, *RIGHT))  # still editable
        self.wait_edits(page, 1)
        self.assertEqual(page.get_attribute("#status", "class"), "")
        page.close()


if __name__ == "__main__":
    unittest.main()
