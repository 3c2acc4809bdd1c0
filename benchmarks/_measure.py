"""Measurement helpers shared by the benchmark scripts (CPU latency and peak memory).

Peak memory is measured per process on Linux (:mod:`cloudfree.models.complexity`, the one place
of these helpers): the peak resident set size (``VmHWM``) is reset through
``/proc/self/clear_refs`` just before the measured calls, and the increase of the peak over the
resident size before them is reported. Run every configuration in a fresh process
(see the scripts) so that allocator caches of one configuration do not hide another's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from cloudfree.models.complexity import measure_call


def measure(
    fn: Callable[[], object], repeats: int = 3, warmup: int = 1, device: str = "cpu"
) -> dict[str, float]:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs, and the peak
    extra memory (MiB) of those runs: :func:`cloudfree.models.complexity.measure_call` (resident
    memory on the CPU, the allocator's peak on CUDA)."""
    return measure_call(fn, repeats=repeats, warmup=warmup, device=device)


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
