"""Parameters, multiply-accumulates, CPU forward latency and peak memory of every registered
model, in one run.

Each (model, size) runs in a fresh process (so one configuration's allocator cache cannot hide
another's peak), batch 1, eval mode, ``torch.no_grad()``, the given number of threads, through
``run_model`` with inputs built from the model's spec (so the contract's checks are included):

    python benchmarks/models.py                      # all models, sizes 128 and 256
    python benchmarks/models.py --models 'glf_cr,dsen2cr' --sizes 128 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measure  # noqa: E402


def worker(name: str, size: int, repeats: int, threads: int, dates: int) -> dict:
    """One forward of ``name`` through :func:`cloudfree.models.run_model`, inputs built from
    the model's spec (temporal models get ``dates`` dates, all real); parameters, MACs and
    inputs as :mod:`cloudfree.models.complexity` defines them."""
    from cloudfree.models import create_model, run_model
    from cloudfree.models.complexity import count_macs, count_parameters, spec_batch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(name).eval()
    batch = spec_batch(model, size, dates=dates)
    with torch.no_grad():
        result = measure(lambda: run_model(model, batch), repeats=repeats, warmup=1)
    # after the timing (it slows the call down); math attention backend (see count_macs)
    result["params"] = count_parameters(model)
    result["gmacs"] = count_macs(model, batch) / 1e9  # multiply-accumulates (paper 002's FLOPs)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="", help="comma-separated names (default: all)")
    p.add_argument("--sizes", default="128,256")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dates", type=int, default=3, help="dates T of temporal models (3)")
    p.add_argument("--worker", nargs=2, metavar=("NAME", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        name, size = args.worker
        print(json.dumps(worker(name, int(size), args.repeats, args.threads, args.dates)))
        return

    from cloudfree.models import list_models

    names = [n for n in args.models.split(",") if n] or list_models()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"CPU, {args.threads} threads, batch 1, median of {args.repeats} forward passes")
    print(f"{'model':18}{'params':>13}{'size':>6}{'GMACs':>9}{'median s':>10}{'peak MiB':>10}")
    for name in names:
        for size in sizes:
            cmd = [sys.executable, __file__, "--worker", name, str(size),
                   "--repeats", str(args.repeats), "--threads", str(args.threads),
                   "--dates", str(args.dates)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{name:18}{'':>13}{size:>6}  failed: {proc.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"{name:18}{r['params']:>13,}{size:>6}{r['gmacs']:>9.2f}{r['median_s']:>10.3f}"
                f"{r['peak_extra_mib']:>10.0f}"
            )


if __name__ == "__main__":
    main()
