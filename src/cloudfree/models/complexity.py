"""Model complexity: parameters, multiply-accumulates (MACs), forward latency and peak memory.

One place for what ``benchmarks/models.py`` and ``cloudfree benchmark`` measure.

Decisions:

* **Inputs from the spec.** :func:`spec_batch` builds a batch of uniform random inputs shaped
  as the model's :class:`~cloudfree.models.api.InputSpec` says (optical channels, SAR when it
  needs SAR, ``dates`` real dates 10 days apart for a temporal model); the model is called
  through :func:`cloudfree.models.run_model`, so the contract's checks are part of the call.
* **MACs** are the total FLOPs of :class:`torch.utils.flop_counter.FlopCounterMode` divided
  by 2 (one multiply-accumulate = 2 FLOPs, the unit paper 002 calls "FLOPs"), counted with the
  **math** scaled-dot-product-attention backend (:func:`torch.nn.attention.sdpa_kernel`): the
  counter sees its matmuls, while it counts nothing for the fused CPU attention kernel.
  Element-wise operations (activations, norms, additions) are not counted, as in the papers.
* **Latency** is the median wall time of ``repeats`` forward passes after ``warmup`` passes,
  batch 1, in eval mode under ``torch.no_grad()``, with the thread count in force
  (``torch.get_num_threads()``, recorded); on CUDA each pass is followed by
  ``torch.cuda.synchronize``.
* **Peak memory** of the timed passes: on CUDA ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``, minus the memory allocated before (the activations, not the
  weights); on the CPU the peak resident set size (Linux ``VmHWM``, reset through
  ``/proc/self/clear_refs``) minus the resident size before. Python's ``tracemalloc`` is not
  used: it does not see the tensors torch allocates. Where ``/proc`` is not available (not
  Linux) the CPU peak is NaN. Measured in the running process, the CPU figure can be lowered
  by memory the allocator kept from an earlier, larger call; ``benchmarks/models.py`` runs
  every configuration in a fresh process for that reason.
* **Throughput** (:func:`throughput_km2_per_s`): the ground area of one ``size x size`` tile of
  a 10 m product, ``(size * 10 m)^2``, divided by the latency.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cloudfree.errors import ConfigError

__all__ = [
    "ModelComplexity",
    "count_macs",
    "count_parameters",
    "measure_call",
    "measure_complexity",
    "reset_peak_rss",
    "spec_batch",
    "status_kib",
    "throughput_km2_per_s",
]

#: Ground sampling distance of the product the throughput is stated for (Sentinel-2 10 m).
GSD_M = 10.0


def status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``); None where absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS counter (Linux ``/proc/self/clear_refs``); False where
    unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return int(sum(p.numel() for p in model.parameters()))


def spec_batch(
    model: nn.Module,
    size: int,
    *,
    dates: int = 3,
    batch: int = 1,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> Any:
    """Random inputs for ``model`` built from its spec (see the module docstring): a
    :class:`~cloudfree.models.api.ModelBatch` of ``batch`` samples of ``size x size``.

    Raises:
        ConfigError: ``size``, ``dates`` or ``batch`` below 1.
    """
    from cloudfree.models.api import ModelBatch, spec_of

    for name, value in (("size", size), ("dates", dates), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    spec = spec_of(model).inputs
    gen = torch.Generator().manual_seed(seed)
    lead = (batch, dates) if spec.temporal else (batch,)
    optical = torch.rand(*lead, spec.optical_channels or 13, size, size, generator=gen)
    sar = (
        torch.rand(*lead, spec.sar_channels or 2, size, size, generator=gen)
        if spec.needs_sar
        else None
    )
    days = (
        (torch.arange(dates, dtype=torch.float32) * 10).expand(batch, dates).clone()
        if spec.temporal
        else None
    )
    return ModelBatch(optical, sar, days).to(torch.device(device))


def count_macs(model: nn.Module, batch: Any) -> int:
    """Multiply-accumulates of one forward of ``model`` on ``batch`` (through
    :func:`~cloudfree.models.run_model`, ``torch.no_grad()``, math attention backend; see
    the module docstring)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from cloudfree.models.api import run_model

    with (
        torch.no_grad(),
        sdpa_kernel(SDPBackend.MATH),
        FlopCounterMode(display=False) as counter,
    ):
        run_model(model, batch)
    return int(counter.get_total_flops()) // 2


def measure_call(
    fn: Callable[[], object],
    *,
    repeats: int = 3,
    warmup: int = 1,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Median and minimum wall time (s) of ``fn()`` over ``repeats`` calls after ``warmup``
    calls, and the peak extra memory (MiB) of those calls (CUDA allocator or CPU RSS, see the
    module docstring; NaN where it cannot be measured)."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        fn()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
        base_bytes = torch.cuda.memory_allocated(dev)
    else:
        base = status_kib("VmRSS")
        peak_ok = reset_peak_rss()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    if cuda:
        extra = (torch.cuda.max_memory_allocated(dev) - base_bytes) / 2**20
    else:
        peak = status_kib("VmHWM")
        ok = peak_ok and peak is not None and base is not None
        extra = (peak - base) / 1024 if ok else math.nan  # type: ignore[operator]
    return {
        "median_s": float(statistics.median(times)),
        "min_s": float(min(times)),
        "peak_extra_mib": float(extra),
    }


def throughput_km2_per_s(size: int, latency_s: float) -> float:
    """Ground area per second of ``size x size`` tiles of a 10 m product:
    ``(size * 10 m)^2 / latency`` in km^2/s (NaN for a non-positive latency)."""
    if not latency_s > 0:
        return math.nan
    side_km = size * GSD_M / 1000.0
    return side_km * side_km / latency_s


@dataclass(frozen=True)
class ModelComplexity:
    """What :func:`measure_complexity` measured for one model (units in the names)."""

    params: int
    macs: int
    size: int
    dates: int | None
    latency_s: float
    latency_min_s: float
    peak_memory_mib: float
    throughput_km2_per_s: float
    threads: int
    device: str
    repeats: int

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


def measure_complexity(
    model: nn.Module,
    *,
    size: int = 256,
    dates: int = 3,
    repeats: int = 3,
    warmup: int = 1,
    device: str | torch.device = "cpu",
) -> ModelComplexity:
    """Parameters, MACs, latency, peak memory and throughput of ``model`` at ``size`` (batch 1;
    ``dates`` dates for a temporal model), on ``device``. The model is put in eval mode on
    ``device`` and its train/eval mode restored afterwards. MACs are counted after the timing
    (the counter slows the call down)."""
    from cloudfree.models.api import run_model, spec_of

    dev = torch.device(device)
    was_training = model.training
    model.to(dev).eval()
    try:
        batch = spec_batch(model, size, dates=dates, device=dev)
        with torch.no_grad():
            timing = measure_call(
                lambda: run_model(model, batch), repeats=repeats, warmup=warmup, device=dev
            )
        macs = count_macs(model, batch)
    finally:
        model.train(was_training)
    temporal = spec_of(model).inputs.temporal
    return ModelComplexity(
        params=count_parameters(model),
        macs=macs,
        size=int(size),
        dates=int(dates) if temporal else None,
        latency_s=timing["median_s"],
        latency_min_s=timing["min_s"],
        peak_memory_mib=timing["peak_extra_mib"],
        throughput_km2_per_s=throughput_km2_per_s(size, timing["median_s"]),
        threads=int(torch.get_num_threads()),
        device=str(dev),
        repeats=int(max(1, repeats)),
    )
