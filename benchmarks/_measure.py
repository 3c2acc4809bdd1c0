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
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from cloudfree.models.complexity import measure_call

#: what the ``*_vs_official`` scripts time: the forward and one training step
MODES = ("forward", "train")


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
    p.add_argument(
        "--conv-share",
        action="store_true",
        help="also profile one more call per side and report the share of its time spent in "
        "convolutions (forward and backward)",
    )
    p.add_argument("--worker", choices=["official", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    return p


def worker_command(
    script: str | Path,
    args: argparse.Namespace,
    who: str,
    mode: str,
    weights: str | Path,
    output: str | Path,
    *extra: str,
) -> list[str]:
    """The command of one ``*_vs_official`` worker process: ``script`` run again as worker
    ``who`` in ``mode``, with the options of :func:`side_by_side_parser` taken from ``args``
    and the script's own ``extra`` options."""
    return [
        sys.executable, str(script), "--worker", who, "--mode", mode,
        "--weights", str(weights), "--output", str(output),
        "--official-repo", args.official_repo, "--size", str(args.size),
        "--batch", str(args.batch), "--repeats", str(args.repeats),
        "--threads", str(args.threads), *(["--conv-share"] if args.conv_share else []), *extra,
    ]  # fmt: skip


def convolution_share(fn: Callable[[], object]) -> dict[str, float]:
    """One call of ``fn`` under :mod:`torch.profiler` (CPU): ``profiled_s``, the summed self time
    of every operator, and ``conv_s``, that of the convolution kernels (forward and backward:
    ATen operators whose name contains ``conv``). The profiler slows the call down a little, so
    compare the two numbers with each other, not with the timed medians."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(
        e.self_cpu_time_total for e in events if e.key.startswith("aten::") and "conv" in e.key
    )
    return {"profiled_s": total / 1e6, "conv_s": conv / 1e6}


def time_worker_mode(
    train: bool,
    step: Callable[[], object] | None,
    forward: Callable[[], torch.Tensor] | None,
    repeats: int,
    output: str | Path,
    train_output: Callable[[], torch.Tensor] | None = None,
    conv_share: bool = False,
) -> None:
    """A ``*_vs_official`` worker's measurement: ``step`` (a training step; then
    ``train_output()``, if given, is saved to ``output``) or ``forward`` (under
    ``torch.no_grad()``; one more call's result is saved to ``output``), timed by
    :func:`measure` (1 warm-up); the result is printed as the JSON line :func:`run_worker`
    reads. The networks' train/eval mode is the caller's to set; only the function of the
    mode measured needs to be given. ``conv_share``: one more call, profiled
    (:func:`convolution_share`), after the timed ones."""
    if train:
        assert step is not None
        result = measure(step, repeats=repeats, warmup=1)
        if conv_share:
            result.update(convolution_share(step))
        if train_output is not None:
            torch.save(train_output(), output)
    else:
        assert forward is not None
        with torch.no_grad():
            result = measure(forward, repeats=repeats, warmup=1)
            if conv_share:
                result.update(convolution_share(forward))
            torch.save(forward(), output)
    print(json.dumps(result))


def print_side_by_side(
    results: Mapping[tuple[str, str], Mapping[str, float]],
    row_labels: Mapping[str, str] | None = None,
) -> None:
    """The table of a ``*_vs_official`` script: per mode (forward, train) the official and
    cloudfree median seconds and peak extra MiB (``results[(mode, "official" | "ours")]``), then
    the ratios official / cloudfree. ``row_labels`` names a mode's rows (default: the mode)."""
    labels = {mode: (row_labels or {}).get(mode, mode) for mode in MODES}
    width = max(len(label) for label in labels.values()) + 12
    print(f"{'':{width}}{'median s':>10}{'peak MiB':>10}")
    for mode in MODES:
        for who, name in (("official", "official"), ("ours", "cloudfree")):
            r = results[(mode, who)]
            row = f"{labels[mode]} {name}"
            print(f"{row:{width}}{r['median_s']:10.3f}{r['peak_extra_mib']:10.0f}")
        o, c = results[(mode, "official")], results[(mode, "ours")]
        print(
            f"{labels[mode]}: speed-up x{o['median_s'] / c['median_s']:.2f}, "
            f"memory x{o['peak_extra_mib'] / max(c['peak_extra_mib'], 1e-9):.2f} less"
        )
        if "conv_s" in o and "conv_s" in c:
            print(
                f"{labels[mode]}: convolutions (profiled) official {o['conv_s']:.3f} s of "
                f"{o['profiled_s']:.3f} s ({o['conv_s'] / o['profiled_s']:.0%}), cloudfree "
                f"{c['conv_s']:.3f} s of {c['profiled_s']:.3f} s "
                f"({c['conv_s'] / c['profiled_s']:.0%}); the speed-up if cloudfree spent "
                f"nothing outside its convolutions: x{o['profiled_s'] / c['conv_s']:.2f}"
            )
