"""What ``--precision bf16`` and ``--precision 16`` cost in accuracy against float32, on the
simulator's test split, for trained networks (by default the ones ``make demo`` trains).

For each network and precision, every test sample is predicted in float32 and under autocast
(:mod:`cloudfree.models.inference`, as ``cloudfree predict`` / ``evaluate`` run it) through
:func:`cloudfree.evaluate.predict_samples`; reported are the max and mean absolute difference
in reflectance over all pixels and bands, and the change of the inside-cloud PSNR (``PSNR32``:
the mean over the samples with clouds of each one's inside-cloud PSNR, UnCRtainTS protocol).
Speed is measured by ``benchmarks/models.py`` (runtime ``bf16``), not here. Run after
``make demo``:

    python benchmarks/precision_accuracy.py                       # demo_output/ of make demo
    python benchmarks/precision_accuracy.py --demo-dir DIR --threads 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def _mean_psnr(samples: list[dict], key: str) -> float:
    """Mean inside-cloud PSNR over the samples that have clouds."""
    return float(np.mean([s["metrics"][key]["psnr"] for s in samples if s["metrics"].get(key)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--demo-dir", type=Path, default=Path("demo_output"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precisions", default="bf16,16")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from cloudfree.data import SEN12MSCR, SEN12MSCRTS
    from cloudfree.evaluate import predict_samples
    from cloudfree.models import load_model
    from cloudfree.models.inference import InferenceOptions, for_inference

    demo = args.demo_dir
    cases = [  # (key, weights, dataset)
        ("glf_cr", demo / "runs/glf_cr", SEN12MSCR(demo / "data", split="test")),
        ("no_sar", demo / "runs/no_sar", SEN12MSCR(demo / "data", split="test")),
        (
            "ca_mtcr",
            demo / "runs/ca_mtcr",
            SEN12MSCRTS(demo / "time_series/data", "test", sampler="ca_mtcr", n_aux=2),
        ),
    ]
    precisions = [x for x in args.precisions.split(",") if x]
    print(f"torch {torch.__version__}, {args.threads} threads; reflectance differences vs float32")
    print(f"{'model':10}{'prec':>6}{'samples':>9}{'max |d|':>10}{'mean |d|':>11}"
          f"{'PSNR32':>9}{'dPSNR':>8}")  # fmt: skip
    for key, weights, dataset in cases:
        if not Path(weights).exists():
            print(f"{key:10} skipped: {weights} not found (run make demo first)")
            continue
        model = load_model(weights).model
        indices = list(range(len(dataset)))
        ref = predict_samples({key: model}, dataset, indices, metric_protocol="uncrtaints")
        psnr32 = _mean_psnr(ref.samples, key)
        for precision in precisions:
            net = for_inference(model, InferenceOptions(precision=precision))
            low = predict_samples({key: net}, dataset, indices, metric_protocol="uncrtaints")
            diffs = [np.abs(a - b) for a, b in zip(low.predictions[key], ref.predictions[key])]
            worst = max(float(np.nanmax(d)) for d in diffs)
            mean = float(np.nanmean(np.concatenate([d.ravel() for d in diffs])))
            psnr = _mean_psnr(low.samples, key)
            print(f"{key:10}{precision:>6}{len(indices):>9}{worst:>10.4f}{mean:>11.5f}"
                  f"{psnr32:>9.2f}{psnr - psnr32:>+8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
