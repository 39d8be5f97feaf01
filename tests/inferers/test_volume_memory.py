# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Whole-volume inference memory does not grow with depth: the in-memory inferer beyond its (integer) outputs,
the slab-streamed NIfTI -> NIfTI path at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

import nibabel as nib
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Peak RSS growth of a call in MiB: VmHWM (reset through /proc/self/clear_refs) minus VmRSS before it.
PEAK_GROWTH = textwrap.dedent(
    """
    def status(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))

    def peak_growth(fn):
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        result = fn()
        return status("VmHWM") - before, result
    """
)

# Runs in a fresh process per depth: peak RSS (VmHWM, reset through /proc/self/clear_refs) of one inferer call on a
# (1, 256, 256, D) volume, minus the RSS before it; then the same probe around a float32 (D, C, H, W) tensor, the
# allocation that bounded inference must never make (it calibrates that the probe sees such growth).
PROBE = PEAK_GROWTH + textwrap.dedent(
    """
    import json, sys
    import torch
    from aisam_monai.inferers import SliceVolumeInferer
    from aisam_monai.networks import AISAM

    torch.set_num_threads(1)
    depth, classes, size = int(sys.argv[1]), 4, 256
    torch.manual_seed(0)
    model = AISAM(classes, sam_type="tiny", image_size=64).eval()
    inferer = SliceVolumeInferer(image_size=64, sw_batch_size=8)
    volume = torch.rand(1, size, size, depth)
    inferer(torch.rand(1, size, size, 8), model)  # warm-up: kernels, thread pools, lazy imports
    grown, result = peak_growth(lambda: inferer(volume, model))
    outputs = sum(v.numel() * v.element_size() for v in result.values() if isinstance(v, torch.Tensor)) / 2**20
    del result
    full, _ = peak_growth(lambda: torch.ones(depth, classes, size, size))
    print(json.dumps({"grown_mb": grown, "outputs_mb": outputs, "full_float_mb": full}))
    """
)

# The same probe around StreamingNiftiInferer: the whole file-to-file run (read, intensity window, inference,
# gzip-compressed write) of an int16 (512, 512, D) NIfTI, against a float32 (D, 512, 512) volume held in memory.
STREAMING_PROBE = PEAK_GROWTH + textwrap.dedent(
    """
    import json, sys
    import torch
    from aisam_monai.inferers import SliceVolumeInferer, StreamingNiftiInferer
    from aisam_monai.networks import AISAM

    torch.set_num_threads(1)
    image, warmup, out, depth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.manual_seed(0)
    model = AISAM(4, sam_type="tiny", image_size=64).eval()
    intensity = {"kind": "per_volume", "lower": 0.5, "upper": 99.5}
    streamer = StreamingNiftiInferer(SliceVolumeInferer(image_size=64, sw_batch_size=8), intensity, slab_slices=16)
    streamer(warmup, out, model)  # warm-up: kernels, thread pools, lazy imports
    grown, _ = peak_growth(lambda: streamer(image, out, model))
    full, _ = peak_growth(lambda: torch.ones(depth, 512, 512))
    print(json.dumps({"grown_mb": grown, "full_float_mb": full}))
    """
)


@unittest.skipUnless(os.path.exists("/proc/self/clear_refs"), "needs Linux /proc peak-RSS reset")
class TestVolumeMemory(unittest.TestCase):
    def test_memory_does_not_grow_with_depth(self):
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        runs = {
            depth: subprocess.Popen(
                [sys.executable, "-c", PROBE, str(depth)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for depth in (50, 150)
        }
        result = {}
        for depth, proc in runs.items():
            out, err = proc.communicate(timeout=120)
            self.assertEqual(proc.returncode, 0, err.decode()[-2000:])
            result[depth] = json.loads(out.decode().strip().splitlines()[-1])
        # working memory = peak growth minus the outputs (int64 labels, grows with depth by contract)
        work = {d: r["grown_mb"] - r["outputs_mb"] for d, r in result.items()}
        forbidden = result[150]["full_float_mb"] - result[50]["full_float_mb"]  # what a (D, C, H, W) float adds
        self.assertGreater(forbidden, 80, f"the probe must see a float32 (D, C, H, W) tensor: {result}")
        self.assertLess(work[150] - work[50], 0.25 * forbidden, f"inference memory grows with depth: {result}")

    def test_streamed_file_inference_does_not_grow_with_depth(self):
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        rng = np.random.default_rng(0)
        with tempfile.TemporaryDirectory() as d:

            def volume(depth):
                path = os.path.join(d, f"ct_{depth}.nii")
                nib.save(nib.Nifti1Image(rng.integers(-1000, 1000, (512, 512, depth), dtype=np.int16), np.eye(4)), path)
                return path

            files = {depth: volume(depth) for depth in (8, 50, 150)}
            result = {}
            for depth in (50, 150):  # one after the other: the reads and the gzip writes would compete
                args = [files[depth], files[8], os.path.join(d, f"seg_{depth}.nii.gz"), str(depth)]
                proc = subprocess.run(
                    [sys.executable, "-c", STREAMING_PROBE, *args], cwd=ROOT, env=env, capture_output=True, timeout=300
                )
                self.assertEqual(proc.returncode, 0, proc.stderr.decode()[-2000:])
                result[depth] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
            self.assertEqual(nib.load(os.path.join(d, "seg_150.nii.gz")).shape, (512, 512, 150))
        forbidden = result[150]["full_float_mb"] - result[50]["full_float_mb"]  # 100 slices of float32: 100 MB
        self.assertGreater(forbidden, 80, f"the probe must see a float32 volume: {result}")
        # the whole-volume path grows by ~2 MB per 512 x 512 slice (200 MB here); streaming holds one slab of 16
        # (measured: 52-64 MB at both depths, the spread being the allocator's)
        self.assertLess(
            result[150]["grown_mb"] - result[50]["grown_mb"], 0.25 * forbidden, f"grows with depth: {result}"
        )


if __name__ == "__main__":
    unittest.main()
