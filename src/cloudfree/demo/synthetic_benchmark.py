"""``cloudfree benchmark --synthetic``: a compact model of every registered family, trained on the
simulator under one small budget, then benchmarked with the baselines, with no data, weights or
network.

Steps (:func:`run_synthetic_benchmark`):

1. **Data**: the simulator's SEN12MS-CR layout (``OUT/data/mono``) and its SEN12MS-CR-TS layout
   with surface changes (``OUT/data/time_series``), sized by the shipped
   ``demo/resources/synthetic_benchmark.yaml``.
2. **Training**: one model per family (:attr:`cloudfree.models.ModelInfo.family`; the YAML names
   the family's representative and its compact constructor arguments) with its own recipe's
   loss, optimizer kind and GAN set-up, under one **budget** for all: the same steps, batch,
   crop, learning rate (cosine decay per step), seed, no validation. Mono-temporal families on
   the mono data, temporal families on the time series with one sampler for all (the YAML's
   ``time_series_options``). What a budget this small cannot keep is listed per family
   (``overrides``: e.g. CA-MTCR without its VQ-VAE stage and with L1, because the VGG16 of its
   perceptual loss needs ImageNet weights that nothing may download). Runs: ``OUT/runs/<model>``.
3. **Benchmarks** (:func:`cloudfree.evaluate.benchmark.run_benchmark`, the code path of
   ``cloudfree benchmark CONFIG.yaml``): the mono models with the identity on the mono test
   split (``OUT/mono``), the temporal ones with the identity and the composites on the test
   series, split by changed / unchanged auxiliary dates (``OUT/time_series``); each writes its
   tables, ``complexity.csv`` and ``report.html``. The two configurations are written beside
   them as ``benchmark.yaml``, so ``cloudfree benchmark OUT/mono/benchmark.yaml`` reruns one.
4. ``OUT/synthetic_benchmark.json``: the settings, the families, per-model facts and the wall
   time of every step.

The numbers show the pipeline working, not the papers' quality: compact networks, a few
hundred steps on synthetic scenes. ``families`` picks a subset. The output directory is refused
when it holds anything but an earlier synthetic benchmark (marked by
``.cloudfree-synthetic-benchmark``), which is replaced only with ``overwrite``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cloudfree.demo.common import (
    budget_overrides,
    load_synthetic_spec,
    quiet_training,
    remove_owned,
)
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io.atomic import atomic_write_text

__all__ = [
    "SyntheticBenchmarkResult",
    "load_synthetic_spec",
    "run_synthetic_benchmark",
]

_MARKER = ".cloudfree-synthetic-benchmark"
_OWNED = ("data", "runs", "mono", "time_series", "synthetic_benchmark.json")


@dataclass
class SyntheticBenchmarkResult:
    """Where the synthetic benchmark wrote its outputs.

    Attributes:
        out: the output directory.
        parts: ``mono`` / ``time_series`` -> the :class:`cloudfree.evaluate.benchmark.
            BenchmarkResult` of that part (a part without a selected family is absent).
        facts: model -> its family, parameters, run directory, steps and training seconds.
        timings: step -> wall seconds (and ``total``).
    """

    out: Path
    parts: dict[str, Any]
    facts: dict[str, dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)


def _select(spec: Mapping[str, Any], families: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    known = dict(spec["families"])
    if families is None:
        return known
    unknown = [f for f in families if f not in known]
    if unknown:
        raise ConfigError(
            f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}"
            f"; the families are {', '.join(known)}"
        )
    if not families:
        raise ConfigError("give at least one family")
    return {f: known[f] for f in known if f in families}


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "is a file; the synthetic benchmark writes a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / _MARKER).is_file():
            raise InputFileError(
                out, "is not empty and holds no earlier synthetic benchmark; choose another --out"
            )
        if not overwrite:
            raise InputFileError(
                out, "holds an earlier synthetic benchmark; pass --overwrite to replace it"
            )
        remove_owned(out, _OWNED)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / _MARKER, "written by `cloudfree benchmark --synthetic`\n")


def _benchmark_config(
    part: str,
    models: Mapping[str, Path],
    root: Path,
    ts_options: Mapping[str, Any],
    device: str,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    temporal = part == "time_series"
    dataset: dict[str, Any] = {
        "name": "sen12mscr_ts" if temporal else "sen12mscr",
        "root": str(root),
        "split": "test",
    }
    if temporal:
        dataset["options"] = dict(ts_options)
    return {
        "models": [{"key": k, "weights": str(w)} for k, w in models.items()],
        "dataset": dataset,
        "strata": {
            "cover_bins": ["glf_cr", "mmcanet"],
            "season": not temporal,
            "aux_change": temporal,
        },
        "device": device,
        **dict(settings),
    }


def run_synthetic_benchmark(
    out: str | Path = "benchmark_synthetic",
    *,
    families: Sequence[str] | None = None,
    steps: int | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    spec: Mapping[str, Any] | None = None,
) -> SyntheticBenchmarkResult:
    """Run the synthetic benchmark (module docstring) into ``out``.

    ``steps`` replaces the budget's steps (e.g. a smoke run); ``spec`` replaces the shipped
    YAML (tests shrink the data); ``threads`` sets torch's threads while training (None:
    torch's default).

    Raises:
        ConfigError: an unknown family, bad steps, an unavailable device.
        InputFileError: ``out`` holds other files, or an earlier run without ``overwrite``.
    """
    import torch

    from cloudfree import __version__
    from cloudfree.devices import resolve_device
    from cloudfree.evaluate.benchmark import build_benchmark_config, run_benchmark
    from cloudfree.io.atomic import atomic_write_json
    from cloudfree.models import create_model, get_model_info
    from cloudfree.synth import write_sen12mscr_synthetic
    from cloudfree.synth.temporal_writers import write_sen12mscr_ts_synthetic
    from cloudfree.train import build_config, load_recipe, train

    spec = dict(spec or load_synthetic_spec())
    chosen = _select(spec, families)
    budget = dict(spec["budget"])
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        budget["steps"] = steps
    resolve_device(device)
    out = Path(out)
    _prepare_out(out, overwrite)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    temporal = {f: get_model_info(e["model"]).temporal for f, e in chosen.items()}
    parts = [p for p, want in (("mono", False), ("time_series", True)) if want in temporal.values()]
    total_steps = 1 + len(chosen) + len(parts)
    counter = iter(range(1, total_steps + 1))

    def step(text: str) -> float:
        echo(f"[{next(counter)}/{total_steps}] {text}")
        return time.perf_counter()

    data_cfg = spec["data"]
    ts_options = dict(data_cfg.get("time_series_options") or {})
    roots = {"mono": out / "data" / "mono", "time_series": out / "data" / "time_series"}
    t = step("synthetic data: " + " and ".join(
        f"{data_cfg[p]['patches']} {'series' if p == 'time_series' else 'patches'} of "
        f"{data_cfg[p]['size']} px" for p in parts
    ))  # fmt: skip
    if "mono" in parts:
        write_sen12mscr_synthetic(roots["mono"], **data_cfg["mono"])
    if "time_series" in parts:
        write_sen12mscr_ts_synthetic(roots["time_series"], **data_cfg["time_series"])
    timings["data"] = time.perf_counter() - t

    facts: dict[str, dict[str, Any]] = {}
    weights: dict[str, dict[str, Path]] = {p: {} for p in parts}
    n_threads = threads if threads is not None else torch.get_num_threads()
    with quiet_training(n_threads):
        for family, entry in chosen.items():
            name = entry["model"]
            info = get_model_info(name)
            kwargs = dict(entry.get("kwargs") or {})
            params = sum(p.numel() for p in create_model(name, **kwargs).parameters())
            part = "time_series" if temporal[family] else "mono"
            t = step(
                f"training {name} ({family}, {params / 1e6:.2f} M parameters, recipe "
                f"{info.default_recipe}): {budget['steps']} steps of {budget['batch_size']} x "
                f"{budget['crop']} px crops"
            )
            settings = budget_overrides(
                budget, entry, temporal[family], ts_options, device, progress
            )
            cfg = build_config(
                load_recipe(info.default_recipe or name),
                settings,
                data_root=roots[part],
                out=out / "runs" / name,
            )
            result = train(cfg)
            weights[part][name] = result.final_weights
            seconds = time.perf_counter() - t
            facts[name] = {
                "family": family,
                "part": part,
                "recipe": info.default_recipe,
                "parameters": params,
                "kwargs": kwargs,
                "overrides": dict(entry.get("overrides") or {}),
                "run_dir": str(result.run_dir),
                "steps": result.global_step,
                "train_seconds": round(seconds, 1),
            }
            timings[f"train_{name}"] = seconds

    results: dict[str, Any] = {}
    for part in parts:
        t = step(f"benchmark of the {part.replace('_', ' ')} models with the baselines")
        raw = _benchmark_config(
            part, weights[part], roots[part], ts_options, device, spec.get("benchmark") or {}
        )
        (out / part).mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / part / "benchmark.yaml", yaml.safe_dump(raw, sort_keys=False))
        config = build_benchmark_config(raw)
        results[part] = run_benchmark(config, out_dir=out / part, progress=progress)
        timings[f"benchmark_{part}"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    atomic_write_json(
        out / "synthetic_benchmark.json",
        {
            "budget": budget,
            "data": {p: data_cfg[p] for p in parts},
            "time_series_options": ts_options,
            "families": {f: e["model"] for f, e in chosen.items()},
            "models": facts,
            "threads": n_threads,
            "device": device,
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "cloudfree_version": __version__,
        },
    )
    return SyntheticBenchmarkResult(out, results, facts, timings)
