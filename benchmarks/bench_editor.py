# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Browser editor: latency of one edit through the HTTP API, from the request to the answer (the slice's new labels and
points), with ``aisam serve``'s application running under uvicorn on the loopback address.

For every backbone x image size: a random-weight model, a volume of noise with two bright disks, the volume opened
and the automatic result of the edited slice computed (so its embedding is cached), then the median latency of one
edit: a positive click added, or a click moved (both rerun only the prompter and decoder of that slice).

    python -m benchmarks.bench_editor --threads 1 [--clock process]   # CPU: tiny@160, vit_b@256
    python -m benchmarks.bench_editor --configs vit_b:1024 --device cuda --out editor.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence

import nibabel as nib
import numpy as np

from aisam_monai.interactive import AISAMPredictor
from aisam_monai.networks import AISAM
from benchmarks._common import CLOCKS, add_common_arguments, environment, print_table, setup, write_json

__all__ = ["main"]

DEFAULT_CONFIGS = ("tiny:160", "vit_b:256")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="SAM_TYPE:SIZE entries")
    parser.add_argument("--classes", type=int, default=4, help="class count C (background included)")
    parser.add_argument("--volume", type=int, nargs=3, default=(224, 256, 8), metavar=("H", "W", "D"))
    return parser.parse_args(argv)


def _request(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as answer:
        return json.loads(answer.read())


def _serve(app) -> tuple[str, object]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/", server


def main(argv: Sequence[str] | None = None) -> dict:
    from aisam_monai.serve import create_app

    args = parse_args(argv)
    device = setup(args)
    configs = ["tiny:64"] if args.smoke else args.configs
    h, w, d = (48, 64, 2) if args.smoke else args.volume
    rows = []
    with tempfile.TemporaryDirectory() as root:
        yy, xx = np.mgrid[:h, :w]
        disk = ((xx - w / 3) ** 2 + (yy - h / 2) ** 2 < (h / 6) ** 2) | (
            (xx - 2 * w / 3) ** 2 + (yy - h / 2) ** 2 < (h / 7) ** 2
        )
        volume = np.random.default_rng(0).normal(100, 10, (h, w, d)) + 200 * disk[..., None]
        nib.save(nib.Nifti1Image(volume.astype(np.float32), np.eye(4)), os.path.join(root, "case.nii.gz"))
        for entry in configs:
            sam_type, size = entry.split(":")
            model = AISAM(num_classes=args.classes, sam_type=sam_type, image_size=int(size)).eval()
            base = AISAMPredictor(model, device=device, progress=False, batch_size=1)
            url, server = _serve(create_app(base.fresh, root, batch_size=1))
            try:
                sid = _request(url + "api/open", {"path": "case.nii.gz"})["id"]
                z = d // 2
                _request(f"{url}api/sessions/{sid}/slices/{z}")  # encodes the slice
                while _request(f"{url}api/sessions/{sid}")["done"] < d:  # let the background fill finish
                    time.sleep(0.1)
                clock = CLOCKS[args.clock]  # process: CPU time of client and server (one process), robust to load
                times = {"add_point": [], "move_point": []}
                for k in range(args.warmup + args.repeats):
                    at = [h / 2 + k % 5, w * 2 / 3]
                    t0 = clock()
                    out = _request(
                        f"{url}api/sessions/{sid}/edit", {"op": "add_point", "slice": z, "class": 1, "at": at}
                    )
                    t1 = clock()
                    pid = max(p["id"] for p in out["slice"]["points"])
                    to = [h / 2 - k % 5, w * 2 / 3 + 1]
                    _request(f"{url}api/sessions/{sid}/edit", {"op": "move_point", "slice": z, "id": pid, "to": to})
                    t2 = clock()
                    if k >= args.warmup:
                        times["add_point"].append(t1 - t0)
                        times["move_point"].append(t2 - t1)
            finally:
                server.should_exit = True
            rows.append(
                {
                    "sam_type": sam_type,
                    "image_size": int(size),
                    "edit_add_ms": 1e3 * statistics.median(times["add_point"]),
                    "edit_move_ms": 1e3 * statistics.median(times["move_point"]),
                }
            )
    print_table(
        rows, ["sam_type", "image_size", "edit_add_ms", "edit_move_ms"], title="one edit, HTTP request to answer"
    )
    record = {"benchmark": "editor", "env": environment(device), "clock": args.clock, "volume": [h, w, d], "rows": rows}
    write_json(args.out, record)
    return record


if __name__ == "__main__":
    main()
