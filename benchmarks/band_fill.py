"""What the L2A adapter ``--fill-band B10`` costs: a 13-band model and the cloud detector with
B10 replaced by a constant, against the true B10, on the same samples in one run.

The data are a SEN12MS-CR-layout dataset with a cloudy input whose B10 is known (the simulator's
``make demo`` data, or real SEN12MS-CR); the model a 13-band network trained on it (the demo's
GLF-CR). For each fill value the test split is evaluated with the true B10 and with B10 set to
the value in every pixel (the evaluation regions, i.e. the cloud masks, always come from the true
image); the rule-based cloud mask of each cloudy input is computed both ways and compared::

    make demo                                  # trains demo_output/runs/glf_cr
    python benchmarks/band_fill.py --data demo_output/data \\
        --weights demo_output/runs/glf_cr/weights/final [--real ../shared/data/sen12mscr]

Prints one JSON document (metrics per fill value and their differences to the true B10, mask
agreement); the figures quoted in docs/sentinel2_inputs.md come from it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

B10 = 10  # position of B10 in the 13 L1C bands


def fill_b10(value: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def transform(sample: dict[str, Any]) -> dict[str, Any]:
        optical = sample["optical"].clone()
        optical[B10] = float(value)
        return {**sample, "optical": optical}

    return transform


def mask_agreement(dn: np.ndarray, value: float) -> dict[str, float]:
    from cloudfree.cloudmask import compute_cloud_mask

    true = compute_cloud_mask(dn, "rule_based")
    filled_dn = dn.copy()
    filled_dn[B10] = value
    filled = compute_cloud_mask(filled_dn, "rule_based")
    return {
        "agreement": float((true == filled).mean()),
        "cloud_true": float((true == 1).mean()),
        "cloud_filled": float((filled == 1).mean()),
        "cloud_intersection": float(((true == 1) & (filled == 1)).sum()),
        "cloud_union": float(((true == 1) | (filled == 1)).sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--fills", default="10,20,40", help="B10 values (DN), comma-separated")
    ap.add_argument("--real", type=Path, default=None, help="real SEN12MS-CR root (masks only)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from cloudfree.data import SEN12MSCR
    from cloudfree.evaluate import evaluate_models
    from cloudfree.models import load_pretrained

    model = load_pretrained(args.weights, map_location="cpu")
    fills = [float(v) for v in args.fills.split(",")]
    out: dict[str, Any] = {"data": str(args.data), "weights": str(args.weights), "runs": {}}
    for label, value in [("true_b10", None), *((f"b10={v:g}", v) for v in fills)]:
        ds = SEN12MSCR(
            args.data, split=args.split, transform=None if value is None else fill_b10(value)
        )
        res = evaluate_models({"model": model}, ds, baselines=(), progress=False)
        m = res.summary["models"]["model"]
        out["runs"][label] = {
            region: {k: m[region][k] for k in ("psnr", "ssim", "sam", "mae")}
            for region in ("overall", "inside_clouds", "outside_clouds")
        }
        out["n_images"] = res.summary["n_images"]
    ref = out["runs"]["true_b10"]
    out["difference_to_true_b10"] = {
        label: {region: {k: run[region][k] - ref[region][k] for k in run[region]} for region in run}
        for label, run in out["runs"].items()
        if label != "true_b10"
    }
    raw = SEN12MSCR(args.data, split=args.split, masks=False)
    agree: dict[str, list[dict[str, float]]] = {f"b10={v:g}": [] for v in fills}
    for i in range(len(raw)):
        dn = raw[i]["optical"].numpy().astype(np.float32)
        for v in fills:
            agree[f"b10={v:g}"].append(mask_agreement(dn, v))
    out["mask_agreement"] = {
        k: {
            "pixel_agreement": float(np.mean([r["agreement"] for r in rows])),
            "cloud_cover_true": float(np.mean([r["cloud_true"] for r in rows])),
            "cloud_cover_filled": float(np.mean([r["cloud_filled"] for r in rows])),
            "cloud_iou_pooled": sum(r["cloud_intersection"] for r in rows)
            / max(1.0, sum(r["cloud_union"] for r in rows)),
        }
        for k, rows in agree.items()
    }
    if args.real is not None:
        real = SEN12MSCR(args.real, split="test", masks=False)
        out["real_mask_agreement"] = {
            real[i]["id"]: {
                f"b10={v:g}": mask_agreement(real[i]["optical"].numpy().astype(np.float32), v)
                for v in fills
            }
            for i in range(len(real))
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
