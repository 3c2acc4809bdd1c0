"""The demo's second part: a time series with surface changes (``cloudfree demo``, step 6).

1. **Data**: the simulator's SEN12MS-CR-TS layout (``OUT/time_series/data``: series of
   ``ts_dates`` dates with surface changes between them) and one scene of six dated GeoTIFF
   pairs on one grid (``OUT/time_series/scene_input``: S2 cloudy, S1, truth and cloud mask per
   date), of which three consecutive dates ending on the cloudiest are used
   (:func:`_scene_window`).
2. **Training**: a compact CA-MTCR (paper 002), the synthetic benchmark's compact model and its
   overrides (``demo/resources/synthetic_benchmark.yaml``: no VQ-VAE stage, L1 instead of the
   VGG terms, whose ImageNet weights nothing may download), on CA-MTCR's sampler (target = the
   last date, two auxiliary dates), ``ts_steps`` steps of 4 whole patches, Adam at the demo's
   learning rate with a per-step cosine decay, the demo's seed.
3. **Evaluation** on the test series, one draw of the same sampler, next to the identity (the
   cloudy target date) and the composites ``least_cloudy`` and ``mosaic`` (which see the same
   three dates): inside the clouds of the target date, overall and split by whether the
   auxiliary dates' surface changed (the simulator's ``aux_changed`` flag).
4. **Scene**: ``cloudfree predict``'s time-series path (:func:`cloudfree.predict.
   predict_time_series`) composites the three dates into one clean image of the last date, with
   CA-MTCR and with each composite; metrics and graininess inside the target date's true clouds.

The part writes ``OUT/time_series.json`` (the report's time-series section: the dates, each
method's image, the truth, a table of the methods) and returns the ``time_series`` entry of the
demo's ``summary.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TS_BASELINES", "TS_LABELS", "TS_MODEL", "TimeSeriesPart", "run_time_series_part"]

#: The temporal model of the demo (a family of the synthetic benchmark's YAML).
TS_MODEL = "ca_mtcr"
#: The baselines it is compared with.
TS_BASELINES: tuple[str, ...] = ("identity", "least_cloudy", "mosaic")
TS_LABELS: dict[str, str] = {
    "identity": "Identity (cloudy target date)",
    "least_cloudy": "Least-cloudy date",
    "mosaic": "Mosaic of clear pixels",
    "ca_mtcr": "CA-MTCR (dates + SAR)",
}
#: Dates of the time-series scene given to every method (CA-MTCR's target date and two
#: auxiliary dates), chosen from ``SCENE_SIMULATED`` simulated dates (see :func:`_scene_window`).
SCENE_DATES = 3
SCENE_SIMULATED = 6


@dataclass
class TimeSeriesPart:
    """What the time-series part measured: the ``summary.json`` entry, the report section
    (``time_series.json``), the scene outputs and the wall time of its steps."""

    summary: dict[str, Any]
    doc: dict[str, Any]
    outputs: dict[str, Path]
    timings: dict[str, float] = field(default_factory=dict)


def _scene_window(covers: list[float]) -> slice:
    """The ``SCENE_DATES`` consecutive dates that end on the cloudiest date which has
    ``SCENE_DATES - 1`` dates before it (**Decision**: the simulator draws each date's cover at
    random, and a clear target date would show nothing to remove; the rule depends on the
    covers only, never on any method's result)."""
    first = SCENE_DATES - 1
    target = max(range(first, len(covers)), key=lambda i: (covers[i], -i))
    return slice(target - first, target + 1)


def _fmt(v: Any, digits: int) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) else "n/a"


def run_time_series_part(
    settings: Any,
    out: Path,
    *,
    echo: Callable[[str], None],
    scene_metrics: Callable[..., dict[str, dict[str, float | None]]],
    scene_graininess: Callable[..., dict[str, dict[str, float | None]]],
    compare: Callable[..., dict[str, Any]],
) -> TimeSeriesPart:
    """Run the part (module docstring) for the demo settings ``settings`` into ``out``; the
    scene metrics, graininess and comparison helpers are the demo's own (one definition)."""
    from cloudfree.data import SEN12MSCRTS
    from cloudfree.demo.common import budget_overrides, load_synthetic_spec, quiet_training
    from cloudfree.evaluate import evaluate_models
    from cloudfree.io.atomic import atomic_write_json, json_compatible
    from cloudfree.models import create_model, get_model_info
    from cloudfree.models import load_model as load_weights
    from cloudfree.predict import PredictOptions, load_model
    from cloudfree.predict.timeseries import (
        CompositePredictor,
        dated_inputs,
        predict_time_series,
    )
    from cloudfree.report.panels import render_scene_images
    from cloudfree.synth.temporal_writers import (
        write_sen12mscr_ts_synthetic,
        write_time_series_scene,
    )
    from cloudfree.train import build_config, load_recipe, train

    s = settings
    timings: dict[str, float] = {}
    spec = load_synthetic_spec()
    entry = spec["families"][TS_MODEL]
    ts_options = dict(spec["data"]["time_series_options"])
    folder = out / "time_series"

    t = time.perf_counter()
    root = folder / "data"
    records = write_sen12mscr_ts_synthetic(
        root, patches=s.ts_series, size=s.ts_size, dates=s.ts_dates, change_rate=0.5,
        seed=s.seed + 7,
    )  # fmt: skip
    splits = {sp: sum(r["split"] == sp for r in records) for sp in ("train", "val", "test")}
    simulated = write_time_series_scene(
        folder / "scene_input", height=s.ts_scene_size, width=s.ts_scene_size,
        n_dates=SCENE_SIMULATED, seed=s.seed + 3000, change_rate=0.5,
    )  # fmt: skip
    scene = simulated[_scene_window([r["cover"] for r in simulated])]
    echo(
        f"      {s.ts_series} series of {s.ts_dates} dates, {s.ts_size} px (train "
        f"{splits['train']} / val {splits['val']} / test {splits['test']}) + a "
        f"{s.ts_scene_size} px scene of {SCENE_DATES} dates -> {folder}"
    )
    timings["ts_data"] = time.perf_counter() - t

    t = time.perf_counter()
    name = entry["model"]
    info = get_model_info(name)
    kwargs = dict(entry.get("kwargs") or {})
    params = sum(p.numel() for p in create_model(name, **kwargs).parameters())
    echo(
        f"      training {name} ({params / 1e6:.2f} M parameters): {s.ts_steps} steps of 4 "
        f"whole {s.ts_size} px series (target + 2 auxiliary dates), Adam {s.lr:g} (cosine)"
    )
    budget = {"steps": s.ts_steps, "batch_size": 4, "crop": None, "lr": s.lr, "seed": s.seed}
    overrides = budget_overrides(budget, entry, True, ts_options, s.device, s.progress)
    with quiet_training(s.threads):
        cfg = build_config(
            load_recipe(info.default_recipe or name), overrides, data_root=root,
            out=out / "runs" / TS_MODEL,
        )  # fmt: skip
        run = train(cfg)
    train_seconds = time.perf_counter() - t
    timings["ts_train"] = train_seconds

    t = time.perf_counter()
    model = load_weights(run.final_weights).model
    test = SEN12MSCRTS(root, "test", seed=s.seed, **ts_options)
    evaluation = evaluate_models(
        {TS_MODEL: model}, test, baselines=TS_BASELINES, protocol=s.protocol,
        progress=s.progress, device=s.device,
    )  # fmt: skip
    models = {
        k: {
            "inside_clouds": v["inside_clouds"],
            "overall": v["overall"],
            "per_aux_change": {
                stratum: {"n": m["n"], "inside_clouds": m["inside_clouds"]}
                for stratum, m in (v.get("per_aux_change") or {}).items()
            },
        }
        for k, v in evaluation.summary["models"].items()
    }
    timings["ts_evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    items, _ = dated_inputs([r["s2"] for r in scene], [r["s1"] for r in scene])
    target = scene[-1]
    outputs = {key: folder / f"scene_{key}.tif" for key in (TS_MODEL, "least_cloudy", "mosaic")}
    opts = PredictOptions(overwrite=True, progress=False, tile_size=128, overlap=16)
    predictors: dict[str, Any] = {
        TS_MODEL: load_model(run.final_weights, device=s.device, temporal=True),
        "least_cloudy": CompositePredictor("least_cloudy"),
        "mosaic": CompositePredictor("mosaic"),
    }
    for key, predictor in predictors.items():
        predict_time_series(predictor, items, outputs[key], opts)
    scored = {"identity": Path(target["s2"]), **outputs}
    metrics = scene_metrics(scored, Path(target["truth"]), Path(target["mask"]), s.protocol)
    grain = scene_graininess(outputs, Path(target["truth"]), Path(target["mask"]))
    images = render_scene_images(
        {
            **{f"date{i}": r["s2"] for i, r in enumerate(scene)},
            **outputs,
            "truth": target["truth"],
        },
        folder / "images",
        reference="truth",
        max_side=256,
        prefix="ts",
    )
    timings["ts_scene"] = time.perf_counter() - t

    comparison = compare(models, TS_MODEL, tuple(b for b in TS_BASELINES))
    strata = ("all", "changed", "unchanged")

    def psnr(key: str, stratum: str) -> Any:
        if stratum == "all":
            return models[key]["inside_clouds"].get("psnr")
        return models[key]["per_aux_change"].get(stratum, {}).get("inside_clouds", {}).get("psnr")

    counts = {st: models[TS_MODEL]["per_aux_change"].get(st, {}).get("n", 0) for st in strata[1:]}
    rows = [
        [TS_LABELS[k], *(_fmt(psnr(k, st), 2) for st in strata),
         _fmt(metrics.get(k, {}).get("psnr"), 2)]
        for k in (TS_MODEL, "mosaic", "least_cloudy", "identity")
    ]  # fmt: skip
    dates = [r["date"] for r in scene]
    doc = {
        "title": "Time series: three dates composited into one clean image",
        "text": (
            f"A second synthetic area seen on {SCENE_DATES} dates ({', '.join(dates)}); the "
            "surface changed between some of them. CA-MTCR restores the last date from all "
            "three dates and their SAR; the composites take each pixel from a clear date "
            "(least-cloudy: the one least cloudy date; mosaic: per pixel). All through "
            "`cloudfree predict` on the dated GeoTIFFs; one stretch, set by the truth."
        ),
        "images": [
            *(
                {
                    "file": f"time_series/images/{images[f'date{i}']}",
                    "label": f"{r['date']} ({100 * r['cover']:.0f} % cloud)"
                    + (" - target" if i == len(scene) - 1 else ""),
                }
                for i, r in enumerate(scene)
            ),
            *({"file": f"time_series/images/{images[k]}", "label": TS_LABELS[k]} for k in outputs),
            {"file": f"time_series/images/{images['truth']}", "label": "Cloud-free truth"},
        ],  # fmt: skip
        "table": {
            "columns": [
                "method",
                f"test series: inside clouds, all ({len(test)})",
                f"aux changed ({counts['changed']})",
                f"aux unchanged ({counts['unchanged']})",
                "scene: inside clouds",
            ],
            "rows": rows,
            "note": (
                f"PSNR (dB) inside the clouds of the target date, protocol {s.protocol}; "
                "test series: one draw of CA-MTCR's sampler (target + 2 auxiliary dates), the "
                "composites see the same dates; 'aux changed': the surface of an auxiliary "
                "date differs from the target's."
            ),
        },
        "facts": {
            "CA-MTCR": f"{name}, {params:,} parameters, {s.ts_steps} steps, "
            f"trained in {train_seconds:.0f} s",
            "beats the mosaic inside clouds": str(comparison.get("beats_mosaic")),
            "beats the least-cloudy date inside clouds": str(comparison.get("beats_least_cloudy")),
            **{
                f"graininess: {TS_LABELS[k]}": f"{_fmt(g.get('inside_clouds'), 2)} inside clouds, "
                f"{_fmt(g.get('clear'), 2)} in clear areas"
                for k, g in grain.items()
            },
        },
    }
    atomic_write_json(out / "time_series.json", json_compatible(doc, nonfinite_as_none=True))
    summary = {
        "model": TS_MODEL,
        "registry_name": name,
        "parameters": params,
        "steps": run.global_step,
        "n_test": len(test),
        "splits": splits,
        "models": models,
        "comparison": comparison,
        "scene": {"dates": dates, "metrics_inside_clouds": metrics, "graininess": grain},
        "labels": dict(TS_LABELS),
    }
    return TimeSeriesPart(json_compatible(summary, nonfinite_as_none=True), doc, outputs, timings)
