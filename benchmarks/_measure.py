"""Measurement helpers shared by the benchmark scripts (CPU latency and peak memory).

Peak memory is measured per process on Linux: the peak resident set size (``VmHWM``) is reset
through ``/proc/self/clear_refs`` just before the measured call, and the increase of the peak
over the resident size before the call is reported. Run every configuration in a fresh process
(see the scripts) so that allocator caches of one configuration do not hide another's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path


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
