"""Scene throughput of ``cloudfree predict``: km² per hour for a 10 m, 13-band scene at 1024,
2048 and 4096 px with the full (default-size) GLF-CR and DSen2-CR, whether the time is linear
in area, whether peak memory stays flat, and how much tiling, warping and writing add to the
network's own time.

Each (model, scene) runs in a **fresh process** that loads the network (random weights of the
registry's default size: speed does not depend on the values), times the forward of one tile
(batch 1, ``--tile-size`` px, median of 3 after a warm-up), then predicts the whole scene with
:func:`cloudfree.predict.predict_scene` (tile 256, overlap 32, batch 4 by default) and reports
the wall time and the process's peak resident memory (``VmHWM``, everything included).

* **km²/h** = scene area / scene time x 3600 (1024 px at 10 m = 104.9 km²).
* **linear in area**: ``s/km²`` of each size over that of the smallest (1.00 = linear).
* **overhead**: scene time / (number of tiles x single-tile forward time); tiles overlap, so
  the tile count, not the area, is what the network has to compute.

Scenes are those of ``benchmarks/predict_memory.py`` (:func:`predict_memory.make_scenes`: a
synthetic 1024 px scene and mosaics of it, S1 in EPSG:4326 at about 20 m, so the warp is
included). Usage::

    python benchmarks/predict_throughput.py [--models glf_cr,dsen2cr] [--sizes 1024,2048,4096]
        [--workdir DIR] [--threads 2] [--device cpu] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_memory import _status_kib, make_scenes  # noqa: E402

GSD_M = 10.0


def _child(args: argparse.Namespace) -> None:
    import torch

    from cloudfree.models import create_model, run_model, save_pretrained
    from cloudfree.models.complexity import spec_batch
    from cloudfree.predict import PredictOptions, load_model, predict_scene, resolve_device

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="cloudfree_throughput_w_") as tmp:
        weights = save_pretrained(create_model(args.model), Path(tmp) / args.model)
        loaded = load_model(weights, device=resolve_device(args.device))
    batch = spec_batch(loaded.model, args.tile_size, device=loaded.device)
    times = []
    with torch.inference_mode():
        for i in range(4):
            t0 = time.perf_counter()
            run_model(loaded.model, batch)
            if loaded.device.type == "cuda":
                torch.cuda.synchronize(loaded.device)
            if i:
                times.append(time.perf_counter() - t0)
    before = _status_kib("VmRSS")
    opts = PredictOptions(tile_size=args.tile_size, overlap=args.overlap,
                          batch_size=args.batch_size, overwrite=True, progress=False)  # fmt: skip
    t0 = time.perf_counter()
    res = predict_scene(loaded, args.optical, args.sar, args.out, opts)
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "tiles": res.tiles, "seconds": seconds, "tile_s": statistics.median(times),
        "valid_fraction": res.valid_fraction, "rss_before_predict_mib": before / 1024,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
    }))  # fmt: skip
    Path(args.out).unlink()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="glf_cr,dsen2cr")
    p.add_argument("--sizes", default="1024,2048,4096", help="multiples of 1024")
    p.add_argument("--workdir", type=Path, default=None, help="keep the scenes here")
    p.add_argument("--tile-size", type=int, default=256)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    for hidden in ("--model", "--optical", "--sar", "--out"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(s % 1024 for s in sizes):
        sys.exit("sizes must be multiples of 1024 (mosaics of the 1024 px scene)")
    tmp = tempfile.TemporaryDirectory(prefix="cloudfree_throughput_") if not args.workdir else None
    workdir = Path(tmp.name) if tmp else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    scenes = make_scenes(workdir, sizes)
    print(f"{args.threads} threads, {args.device}, tile {args.tile_size}, overlap "
          f"{args.overlap}, batch {args.batch_size}")  # fmt: skip
    print(f"{'model':9}{'px':>6}{'km2':>8}{'tiles':>7}{'scene s':>9}{'km2/h':>8}"
          f"{'s/km2 vs 1st':>13}{'tile s':>8}{'overhead':>9}{'peak MiB':>9}")  # fmt: skip
    results: list[dict] = []
    try:
        for name in [m for m in args.models.split(",") if m]:
            first = None
            for size in sizes:
                s = scenes[str(size)]
                cmd = [sys.executable, __file__, "--child", "--model", name, "--optical",
                       s["optical"], "--sar", s["sar"], "--out", str(workdir / f"{name}{size}.tif"),
                       "--tile-size", str(args.tile_size), "--overlap", str(args.overlap),
                       "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                       "--device", args.device]  # fmt: skip
                run = subprocess.run(cmd, check=True, capture_output=True, text=True)
                r = json.loads(run.stdout.strip().splitlines()[-1])
                km2 = (size * GSD_M / 1000) ** 2
                per_km2 = r["seconds"] / km2
                first = first or per_km2
                r.update(model=name, size=size, km2=km2, km2_per_h=km2 / r["seconds"] * 3600,
                         linearity=per_km2 / first,
                         overhead=r["seconds"] / (r["tiles"] * r["tile_s"]))  # fmt: skip
                results.append(r)
                print(f"{name:9}{size:>6}{km2:>8.1f}{r['tiles']:>7}{r['seconds']:>9.1f}"
                      f"{r['km2_per_h']:>8.0f}{r['linearity']:>13.2f}{r['tile_s']:>8.2f}"
                      f"{r['overhead']:>9.2f}{r['peak_rss_mib']:>9.0f}", flush=True)  # fmt: skip
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
