"""Measurement helpers shared by the benchmark scripts (CPU latency and peak memory).

Peak memory is measured per process on Linux: the peak resident set size (``VmHWM``) is reset
through ``/proc/self/clear_refs`` just before the measured call, and the increase of the peak
over the resident size before the call is reported. Run every configuration in a fresh process
(see the scripts) so that allocator caches of one configuration do not hide another's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS counter (Linux); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> dict[str, float]:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs, and the peak
    extra resident memory (MiB) of one run."""
    for _ in range(warmup):
        fn()
    base = _status_kib("VmRSS")
    peak_ok = reset_peak_rss()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    peak = _status_kib("VmHWM")
    extra = (
        (peak - base) / 1024
        if (peak_ok and peak is not None and base is not None)
        else float("nan")
    )
    return {"median_s": statistics.median(times), "min_s": min(times), "peak_extra_mib": extra}


def run_worker(cmd: list[str], label: str) -> dict:
    """Run one benchmark worker process (``cmd``) and return the JSON object it prints on its
    last line; exit with the worker's stderr, named by ``label``, if it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{label} worker failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def max_abs_difference(a: str | Path, b: str | Path) -> float:
    """Largest absolute difference between the tensors two workers saved with ``torch.save``."""
    return float((torch.load(a) - torch.load(b)).abs().max())


def side_by_side_parser(description: str, repo_help: str) -> argparse.ArgumentParser:
    """The command line shared by the ``*_vs_official`` scripts: the official checkout, input
    size, batch, repeats and threads, and the hidden options of their worker processes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--official-repo", required=True, help=repo_help)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", choices=["official", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    return p
