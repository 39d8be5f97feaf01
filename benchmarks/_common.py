# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Shared pieces of the benchmark scripts: arguments, timing, memory probes, tables and JSON output."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from aisam_monai.io.atomic import atomic_write_json

__all__ = [
    "CLOCKS",
    "DTYPES",
    "add_common_arguments",
    "autocast",
    "dtype_supported",
    "environment",
    "gpu_peak_mb",
    "peak_rss_mb",
    "print_table",
    "reset_peaks",
    "rss_mb",
    "setup",
    "synchronize",
    "time_call",
    "write_json",
]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
_clock = {"name": "wall"}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--out``, ``--smoke``, ``--warmup``, ``--repeats``, ``--threads``."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--out", default=None, help="JSON result file (written atomically)")
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run of the tiny model (CI)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default="wall",
        help="wall: elapsed time; process: CPU time of this process (CPU only, with --threads 1 a contention-robust "
        "measure on a shared machine)",
    )


def setup(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and ``--clock``, check ``--device``; returns the device."""
    if getattr(args, "clock", "wall") == "process" and args.device != "cpu":
        raise SystemExit("--clock process measures CPU time and needs --device cpu.")
    _clock["name"] = getattr(args, "clock", "wall")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available on this machine.")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def dtype_supported(name: str, device: torch.device) -> bool:
    """fp32 everywhere; bf16 autocast on CUDA cards that support it and on CPU (slow there, so opt-in)."""
    if name == "fp32":
        return True
    if name == "bf16":
        return device.type == "cpu" or torch.cuda.is_bf16_supported()
    raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(DTYPES)}.")


def autocast(name: str, device: torch.device):
    """Autocast context for ``name`` (``fp32``: none)."""
    if name == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[name])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, warmup: int = 1, repeats: int = 3) -> float:
    """Median seconds (the ``--clock`` given to :func:`setup`) of ``fn()`` over ``repeats`` calls after ``warmup``."""
    clock = CLOCKS[_clock["name"]]
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(max(1, repeats)):
        start = clock()
        fn()
        synchronize(device)
        times.append(clock() - start)
    return statistics.median(times)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    """Current resident set size of this process in MiB (Linux ``VmRSS``), None elsewhere."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float | None:
    """Peak resident set size since the last :func:`reset_peaks` in MiB (Linux ``VmHWM``), None elsewhere."""
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024


def reset_peaks(device: torch.device | None = None) -> bool:
    """
    Reset the peak RSS (writing 5 to ``/proc/self/clear_refs``) and the CUDA peak allocation; returns whether
    the host peak could be reset (when not, :func:`peak_rss_mb` is the peak of the whole process).
    """
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def gpu_peak_mb(device: torch.device) -> float | None:
    """Peak CUDA memory allocated by tensors since the last reset in MiB (None on CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def environment(device: torch.device) -> dict:
    """Hardware and software of the run, recorded in every JSON file."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    env = {
        "torch": torch.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "clock": _clock["name"],
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return env


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_table(rows: Sequence[dict], columns: Sequence[str], title: str | None = None) -> None:
    """Print ``rows`` as a Markdown table of ``columns`` (missing values as ``-``)."""
    if title:
        print(f"\n{title}")
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |")


def write_json(path: str | None, record: dict) -> None:
    """Write ``record`` to ``path`` atomically (nothing when ``path`` is empty)."""
    if path:
        atomic_write_json(path, record)
