"""Peak memory of time-series prediction, 1024 x 1024 vs 4096 x 4096 x 4 dates, same settings.

Each run is a fresh process reporting its peak resident set size (``VmHWM``: Python, torch,
GDAL, the model and the pipeline together). Inputs: a 512 x 512 synthetic series of 4 dates
(:func:`cloudfree.synth.temporal_writers.write_time_series_scene`) tiled 2 x 2 and 8 x 8 into
1024 and 4096 px dated GeoTIFFs (written window by window), S1 on the S2 grid. Predictors: the
temporal stand-in network (``standin_temporal``, random weights: the network's own memory
depends on the tile, not the scene) and the ``mosaic`` composite, whose default rule-based masks
hold one whole 13-band date and the per-date masks in memory (documented in
:mod:`cloudfree.predict.timeseries`).

Usage::

    python benchmarks/predict_series_memory.py [--workdir DIR] [--sizes 1024,4096] [--json F]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATES = 4


def _peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("VmHWM not in /proc/self/status (Linux only)")


def _make_inputs(workdir: Path, sizes: list[int]) -> None:
    import rasterio
    import torch

    from cloudfree.io import RasterWriter
    from cloudfree.models import create_model, save_pretrained
    from cloudfree.synth.temporal_writers import write_time_series_scene

    base = workdir / "base"
    if not base.exists():
        write_time_series_scene(base, height=512, width=512, n_dates=DATES, seed=0)
    if not (workdir / "net").exists():
        torch.manual_seed(0)
        save_pretrained(create_model("standin_temporal"), workdir / "net")
    for size in sizes:
        folder = workdir / str(size)
        for src_path in sorted(base.glob("scene_s[12]_*.tif")):
            dst = folder / src_path.name
            if dst.exists():
                continue
            with rasterio.open(src_path) as src:
                arr = src.read()
                prof = dict(
                    count=src.count, height=size, width=size, dtype=src.dtypes[0],
                    crs=src.crs, transform=src.transform, nodata=src.nodata,
                    descriptions=list(src.descriptions), tags=src.tags(),
                )  # fmt: skip
            with RasterWriter(dst, **prof) as w:
                for r in range(0, size, 512):
                    for c in range(0, size, 512):
                        w.write(arr, rasterio.windows.Window(c, r, 512, 512))
            del arr


def worker(workdir: str, size: int, predictor: str) -> None:
    from cloudfree.predict import PredictOptions, load_model
    from cloudfree.predict.timeseries import CompositePredictor, dated_inputs, predict_time_series

    folder = Path(workdir) / str(size)
    s2 = sorted(folder.glob("scene_s2_*.tif"))
    s1 = sorted(folder.glob("scene_s1_*.tif"))
    items, _ = dated_inputs(s2, s1)
    if predictor == "mosaic":
        pred = CompositePredictor("mosaic")
    else:
        pred = load_model(Path(workdir) / "net", temporal=True)
    before = _peak_kib()
    t0 = time.perf_counter()
    out = Path(workdir) / f"out_{size}_{predictor}.tif"
    predict_time_series(pred, items, out, PredictOptions(progress=False, overwrite=True))
    row = {
        "size": size,
        "predictor": predictor,
        "peak_mib": _peak_kib() / 1024,
        "before_mib": before / 1024,
        "seconds": time.perf_counter() - t0,
    }
    print(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--sizes", default="1024,4096")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.worker[2])
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="series_mem_"))
    _make_inputs(workdir, sizes)
    results = []
    for predictor in ("network", "mosaic"):
        for size in sizes:
            cmd = [sys.executable, __file__, "--worker", str(workdir), str(size), predictor]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(res.stdout.strip().splitlines()[-1])
            results.append(row)
            print(json.dumps(row))
    by = {(r["predictor"], r["size"]): r["peak_mib"] for r in results}
    if len(sizes) == 2:
        for p in ("network", "mosaic"):
            ratio = by[(p, sizes[1])] / by[(p, sizes[0])]
            print(f"{p}: peak {sizes[1]} / {sizes[0]} = {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
