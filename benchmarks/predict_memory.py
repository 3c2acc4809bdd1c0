"""Peak memory of `cloudfree predict` for a 1024 x 1024 and a 4096 x 4096 scene (same settings).

Tiled scene inference must run in memory that does not grow with the scene: the accumulator
holds ``(tile + 256) x width`` values per band, tiles are read window by window (Sentinel-1
through a GDAL warp window) and rows are written as soon as they are finished. This script checks
it: each scene is predicted in a **fresh process**, which reports its peak resident set size
(``VmHWM`` from ``/proc/self/status``, i.e. everything: Python, torch, GDAL, the model and the
pipeline) and, for information, the resident size just before prediction started (after imports
and model loading). The 4096 scene has 16x the pixels; its peak must stay within 1.5x the 1024
scene's.

Scenes: a synthetic 1024 x 1024 scene (:func:`cloudfree.synth.write_scene_pair`) and a 4096 x 4096
mosaic of 4 x 4 copies of it (written window by window), S2 13-band uint16 on a UTM grid, with S1
in **EPSG:4326 at about 20 m** (so the warp path is measured). The model is a small randomly
initialised DSen2-CR (the network's own activation memory depends on the tile size and batch,
not on the scene).

Usage::

    python benchmarks/predict_memory.py [--workdir DIR] [--tile-size 256] [--overlap 32]
        [--batch-size 4] [--width 8] [--blocks 1] [--device cpu] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

SIZES = (1024, 4096)
LIMIT_RATIO = 1.5


def _status_kib(field: str) -> int:
    from cloudfree.models.complexity import status_kib

    value = status_kib(field)
    if value is None:
        raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")
    return value


# ----------------------------------------------------------------------------- data
def _make_inputs(workdir: Path, width: int, blocks: int) -> dict[str, dict[str, str]]:
    """Write the model, the 1024 scene and the 4096 mosaic (skipped when already there)."""
    import torch

    from cloudfree.models import create_model, save_pretrained

    model_dir = workdir / f"model_w{width}_b{blocks}"
    if not (model_dir / "config.json").is_file():
        torch.manual_seed(0)
        save_pretrained(create_model("dsen2cr", width=width, num_blocks=blocks), model_dir)
    return {"model": {"dir": str(model_dir)}, **make_scenes(workdir, SIZES)}


def make_scenes(workdir: Path, sizes: Sequence[int]) -> dict[str, dict[str, str]]:
    """Write (once) a synthetic 1024 px scene and, for each size (a multiple of 1024), a mosaic
    of copies of it with S1 in EPSG:4326 at about 20 m: ``{str(size): {"optical", "sar"}}``."""
    import numpy as np
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import calculate_default_transform
    from rasterio.windows import Window

    from cloudfree.io import RasterWriter
    from cloudfree.synth import write_scene_pair

    base = workdir / "scene1024"
    pair = base / "scene_s2_cloudy.tif"
    if not pair.is_file():
        write_scene_pair(base, height=1024, width=1024, seed=11, cloud_cover=0.4)
    scenes: dict[str, dict[str, str]] = {}
    for size in sizes:
        d = workdir / f"scene{size}"
        opt, s1_utm, s1 = d / "s2_cloudy.tif", d / "s1_utm.tif", d / "s1_4326_20m.tif"
        if not s1.is_file():
            d.mkdir(parents=True, exist_ok=True)
            reps = size // 1024
            transform = from_origin(399960.0, 5000040.0, 10.0, 10.0)
            for src_path, dst_path in ((pair, opt), (base / "scene_s1.tif", s1_utm)):
                with rasterio.open(src_path) as src:
                    tile = src.read()
                    with RasterWriter(
                        dst_path,
                        count=src.count,
                        height=size,
                        width=size,
                        dtype=src.dtypes[0],
                        crs=src.crs,
                        transform=transform,
                        descriptions=src.descriptions,
                    ) as w:
                        for r in range(reps):
                            for c in range(reps):
                                w.write(tile, Window(c * 1024, r * 1024, 1024, 1024))
            with rasterio.open(s1_utm) as src:
                lat = 45.0
                dy = 20.0 / 111_320.0
                res = (dy / np.cos(np.radians(lat)), dy)
                t, w_, h_ = calculate_default_transform(
                    src.crs, "EPSG:4326", src.width, src.height, *src.bounds, resolution=res
                )
                with WarpedVRT(
                    src,
                    crs="EPSG:4326",
                    transform=t,
                    width=w_,
                    height=h_,
                    resampling=Resampling.bilinear,
                    src_nodata=float("nan"),
                    nodata=float("nan"),
                ) as vrt:
                    rasterio.shutil.copy(vrt, s1, driver="GTiff", compress="deflate", tiled=True)
            s1_utm.unlink()
        scenes[str(size)] = {"optical": str(opt), "sar": str(s1)}
    return scenes


# ----------------------------------------------------------------------------- child
def _child(args: argparse.Namespace) -> None:
    from cloudfree.predict import PredictOptions, load_model, predict_scene, resolve_device

    loaded = load_model(args.model_dir, device=resolve_device(args.device))
    before = _status_kib("VmRSS")
    opts = PredictOptions(
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        overwrite=True,
        progress=False,
    )
    t0 = time.perf_counter()
    res = predict_scene(loaded, args.optical, args.sar, args.out, opts)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "height": res.height,
                "width": res.width,
                "tiles": res.tiles,
                "valid_fraction": res.valid_fraction,
                "seconds": seconds,
                "rss_before_predict_mib": before / 1024,
                "peak_rss_mib": _status_kib("VmHWM") / 1024,
            }
        )
    )
    Path(args.out).unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=None, help="keep inputs here (default: temp)")
    p.add_argument("--tile-size", type=int, default=256)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--width", type=int, default=8, help="DSen2-CR width of the test model")
    p.add_argument("--blocks", type=int, default=1, help="DSen2-CR residual blocks")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--optical", help=argparse.SUPPRESS)
    p.add_argument("--sar", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args)
        return 0

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cloudfree_predict_mem_")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        print("preparing inputs (fresh process)...", flush=True)
        prep = subprocess.run(
            [
                sys.executable,
                "-c",
                "import json, sys; sys.path.insert(0, sys.argv[1]); import predict_memory as m; "
                "print(json.dumps(m._make_inputs(__import__('pathlib').Path(sys.argv[2]), "
                "int(sys.argv[3]), int(sys.argv[4]))))",
                str(Path(__file__).resolve().parent),
                str(workdir),
                str(args.width),
                str(args.blocks),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        inputs = json.loads(prep.stdout.strip().splitlines()[-1])
        results = {}
        for size in SIZES:
            s = inputs[str(size)]
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                "--model-dir",
                inputs["model"]["dir"],
                "--optical",
                s["optical"],
                "--sar",
                s["sar"],
                "--out",
                str(workdir / f"pred{size}.tif"),
                "--tile-size",
                str(args.tile_size),
                "--overlap",
                str(args.overlap),
                "--batch-size",
                str(args.batch_size),
                "--device",
                args.device,
            ]
            env = {k: v for k, v in os.environ.items() if k != "GDAL_CACHEMAX"}
            run = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            results[size] = json.loads(run.stdout.strip().splitlines()[-1])
            r = results[size]
            print(
                f"{size} x {size}: peak RSS {r['peak_rss_mib']:.0f} MiB "
                f"(before predict {r['rss_before_predict_mib']:.0f} MiB), {r['tiles']} tiles, "
                f"{r['seconds']:.1f} s, valid {100 * r['valid_fraction']:.1f} %",
                flush=True,
            )
        ratio = results[4096]["peak_rss_mib"] / results[1024]["peak_rss_mib"]
        ok = ratio <= LIMIT_RATIO
        print(
            f"peak ratio 4096 / 1024 = {ratio:.3f} (limit {LIMIT_RATIO}): "
            + ("OK" if ok else "TOO HIGH")
        )
        summary = {
            "settings": {
                "tile_size": args.tile_size,
                "overlap": args.overlap,
                "batch_size": args.batch_size,
                "model": f"dsen2cr width={args.width} num_blocks={args.blocks}",
                "device": args.device,
                "sar": "EPSG:4326, about 20 m (warped window by window)",
            },
            "results": {str(k): v for k, v in results.items()},
            "ratio": ratio,
            "limit": LIMIT_RATIO,
            "ok": ok,
        }
        if args.json is not None:
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
        return 0 if ok else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
