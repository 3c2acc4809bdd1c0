"""Peak memory of MMCANet: one training step per batch size at 128 px, and inference at 256 px.

Each configuration runs in a fresh process (peak resident memory, ``_measure.py``): a training
step (forward, L1 loss, backward) at the paper's 128 x 128 for the given batch sizes, and an
eval-mode forward at 256 x 256. The per-sample slope of the training peak extrapolates to the
paper's batch 32 (the activations grow linearly with the batch; the weights, gradients and
Adam state, about 16 bytes per parameter, do not). The low-level cross-attention is chunked and
recomputed (``attention_chunk``), so no 4,096 x 4,096 map is ever held whole; compare
``--chunk 4096`` (whole maps).

    python benchmarks/mmcanet_memory.py --batches 1,2,4 --chunk 1024
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


def worker(mode: str, batch: int, size: int, chunk: int, threads: int) -> dict:
    from cloudfree.models import create_model, run_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model("mmcanet", attention_chunk=chunk)
    optical, sar = torch.rand(batch, 3, size, size), torch.rand(batch, 2, size, size)
    if mode == "train":
        model.train()

        def step() -> None:
            model.zero_grad(set_to_none=True)
            out = run_model(model, optical=optical, sar=sar).pred
            (out - optical).abs().mean().backward()

        return measure(step, repeats=1, warmup=0)  # the first step: its allocations count
    model.eval()
    with torch.no_grad():
        return measure(lambda: run_model(model, optical=optical, sar=sar), repeats=1, warmup=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="1,2,4")
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", nargs=3, metavar=("MODE", "BATCH", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        mode, batch, size = args.worker
        print(json.dumps(worker(mode, int(batch), int(size), args.chunk, args.threads)))
        return
    runs = [("train", int(b), 128) for b in args.batches.split(",")] + [("infer", 1, 256)]
    results = {}
    for mode, batch, size in runs:
        cmd = [sys.executable, __file__, "--worker", mode, str(batch), str(size),
               "--chunk", str(args.chunk), "--threads", str(args.threads)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{mode} batch {batch} @ {size}: failed: {proc.stderr.strip()[-300:]}")
            continue
        results[(mode, batch, size)] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"MMCANet (defaults), CPU, attention_chunk {args.chunk}")
    for (mode, batch, size), r in results.items():
        print(f"{mode:6} batch {batch:3} @ {size}: peak extra {r['peak_extra_mib']:8.0f} MiB, "
              f"{r['median_s']:.2f} s")  # fmt: skip
    train = sorted((b, r["peak_extra_mib"]) for (m, b, _), r in results.items() if m == "train")
    if len(train) >= 2:
        (b0, m0), (b1, m1) = train[0], train[-1]
        slope = (m1 - m0) / (b1 - b0)
        at_32 = (m0 + slope * (32 - b0)) / 1024
        print(f"training: {slope:.0f} MiB per sample at 128 px; batch 32 ~ {at_32:.1f} GiB")


if __name__ == "__main__":
    main()
