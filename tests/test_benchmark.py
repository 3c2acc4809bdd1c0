"""`cloudfree benchmark`: config, one pass over several protocols, strata, bootstrap, outputs,
reproducibility, overwrite refusal and config errors (tiny synthetic data, tiny models)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.data import build_dataset
from cloudfree.errors import ConfigError, DatasetError, InputFileError
from cloudfree.evaluate import evaluate_models
from cloudfree.evaluate.benchmark import (
    BENCHMARK_FILES,
    StrataConfig,
    bootstrap_means,
    build_benchmark_config,
    run_benchmark,
    sample_strata,
    season_of,
)
from cloudfree.metrics import METRIC_NAMES
from cloudfree.models import create_model, load_pretrained, save_pretrained
from cloudfree.models.complexity import (
    count_macs,
    count_parameters,
    measure_complexity,
    spec_batch,
    throughput_km2_per_s,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from cloudfree.synth import write_sen12mscr_synthetic
    from cloudfree.synth.temporal_writers import write_sen12mscr_ts_synthetic

    root = tmp_path_factory.mktemp("bench")
    write_sen12mscr_synthetic(root / "s", patches=6, size=32, seed=0)
    write_sen12mscr_ts_synthetic(root / "t", patches=6, size=32, dates=4)
    torch.manual_seed(0)
    for k in ("a", "b"):
        save_pretrained(create_model("dsen2cr", width=8, num_blocks=1), root / f"w_{k}")
    return {"root": root, "s": root / "s", "t": root / "t", "a": root / "w_a", "b": root / "w_b"}


def _raw(world: dict[str, Path], **extra: object) -> dict:
    raw = {
        "models": [
            {"key": "a", "weights": str(world["a"])},
            {"key": "b", "weights": str(world["b"])},
        ],
        "dataset": {"root": str(world["s"]), "split": "all"},
        "protocols": ["uncrtaints", "glf_cr"],
        "bootstrap": {"samples": 200, "seed": 0},
        "complexity": None,
    }
    raw.update(extra)
    return raw


def _run(world: dict[str, Path], out: Path, **extra: object):
    return run_benchmark(build_benchmark_config(_raw(world, **extra)), out_dir=out, progress=False)


def test_outputs_exist_parse_and_row_count(world: dict[str, Path], tmp_path: Path) -> None:
    result = _run(world, tmp_path / "o", complexity={"size": 16, "repeats": 1, "warmup": 0})
    for name in BENCHMARK_FILES:
        assert (tmp_path / "o" / name).is_file(), name
    with open(tmp_path / "o" / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # 6 samples x (2 models + identity) x 2 protocols x 3 regions x 5 metrics
    assert len(rows) == 6 * 3 * 2 * 3 * len(METRIC_NAMES)
    assert {r["model"] for r in rows} == {"a", "b", "identity"}
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["threads"] == torch.get_num_threads()
    assert summary["dataset"]["n_images"] == 6
    cell = summary["protocols"]["glf_cr"]["models"]["a"]["overall"]["all"]["all"]["psnr"]
    assert cell["lo"] <= cell["mean"] <= cell["hi"] and cell["n"] == 6
    # the per-image values give the summary's mean
    psnr = [
        float(r["value"])
        for r in rows
        if (r["model"], r["protocol"], r["region"], r["metric"])
        == ("a", "glf_cr", "overall", "psnr")
    ]
    assert cell["mean"] == pytest.approx(np.mean(psnr), rel=1e-12)
    md = (tmp_path / "o" / "tables.md").read_text()
    assert "## Protocol `glf_cr`" in md and "## Complexity" in md
    with open(tmp_path / "o" / "complexity.csv", newline="") as f:
        comp = list(csv.DictReader(f))
    assert [c["model"] for c in comp] == ["a", "b"]
    net = load_pretrained(world["a"])
    assert int(comp[0]["params"]) == count_parameters(net)
    assert result.complexity["a"]["macs"] == count_macs(net, spec_batch(net, 16))
    with open(tmp_path / "o" / "tables.csv", newline="") as f:
        table = list(csv.DictReader(f))
    overall = [
        t
        for t in table
        if (t["protocol"], t["region"], t["stratum"]) == ("uncrtaints", "overall", "all")
    ]
    means = [float(t["psnr_mean"]) for t in overall]
    assert means == sorted(means, reverse=True)  # ranked by PSNR
    assert [t["rank"] for t in overall] == ["1", "2", "3"]


def test_two_protocols_in_one_pass_equal_separate_runs(world: dict[str, Path]) -> None:
    from cloudfree.evaluate import evaluate_protocols

    data = build_dataset("sen12mscr", world["s"], split="all", crop="center")
    models = {"a": load_pretrained(world["a"]), "b": load_pretrained(world["b"])}
    both = evaluate_protocols(models, data, protocols=["uncrtaints", "glf_cr"], progress=False)
    for p in ("uncrtaints", "glf_cr"):
        alone = evaluate_models(models, data, protocol=p, progress=False)
        np.testing.assert_equal(both[p].rows, alone.rows)  # NaN == NaN here, else exact
        np.testing.assert_equal(both[p].summary, alone.summary)
    with pytest.raises(ConfigError, match="twice"):
        evaluate_protocols(models, data, protocols=["glf_cr", "glf_cr"], progress=False)
    with pytest.raises(ConfigError, match="at least one"):
        evaluate_protocols(models, data, protocols=[], progress=False)


def test_bootstrap_contains_mean_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(20.0, 3.0, size=(40, 3))
    values[5, 1] = np.nan
    a = bootstrap_means(values, samples=500, seed=0, stratum="all=all")
    b = bootstrap_means(values, samples=500, seed=0, stratum="all=all")
    for k in ("mean", "lo", "hi", "n"):
        np.testing.assert_array_equal(a[k], b[k])
    assert np.all(a["lo"] < a["mean"]) and np.all(a["mean"] < a["hi"])
    np.testing.assert_array_equal(a["n"], [40, 39, 40])
    assert a["mean"][1] == pytest.approx(np.nanmean(values[:, 1]))
    # an independent reference: the same resamples drawn explicitly
    gen = np.random.default_rng([0, __import__("zlib").crc32(b"all=all")])
    idx = gen.integers(0, 40, size=(500, 40))
    ref = np.percentile(values[:, 0][idx].mean(axis=1), [2.5, 97.5])
    assert (a["lo"][0], a["hi"][0]) == pytest.approx(tuple(ref), rel=1e-12)
    # another seed or stratum draws other resamples; the width is about 2 x 1.96 x SE
    c = bootstrap_means(values, samples=500, seed=1, stratum="all=all")
    assert c["lo"][0] != a["lo"][0]
    se = values[:, 0].std(ddof=1) / math.sqrt(40)
    assert a["hi"][0] - a["lo"][0] == pytest.approx(2 * 1.96 * se, rel=0.25)
    empty = bootstrap_means(np.full((4, 1), np.nan), samples=10, seed=0, stratum="x")
    assert empty["n"][0] == 0 and math.isnan(empty["mean"][0]) and math.isnan(empty["lo"][0])
    inf = bootstrap_means(np.array([1.0, np.inf, 2.0]), samples=50, seed=0, stratum="x")
    assert inf["mean"] == np.inf


def test_strata_labels_cover_sets_and_season() -> None:
    ids = ["ROIs1158_spring_31_p1", "ROIs2017_winter_42_p3", "ROIs1868_36_p0", "ROIs1970_fall_1_p2"]
    covers = [0.05, 0.15, 0.2, 1.0]
    labels, members = sample_strata(ids, covers, None, StrataConfig())
    assert labels["cover_glf_cr"] == ["0-20", "0-20", "20-40", "80-100"]
    assert labels["cover_mmcanet"] == ["0-10", "10-20", "20-40", "80-100"]
    assert labels["season"] == ["spring", "winter", "", "fall"]
    assert list(members["season"]) == ["spring", "fall", "winter"]
    assert members["cover_mmcanet"]["60-80"] == []
    assert "aux_change" not in members and labels["aux_change"] == ["", "", "", ""]
    assert season_of("ROIs1868_summer_132_p65") == "summer" and season_of("x") == ""
    labels, members = sample_strata(ids[:2], covers[:2], [1.0, 0.0], StrataConfig(season=False))
    assert labels["aux_change"] == ["changed", "unchanged"] and "season" not in members
    assert members["aux_change"] == {"changed": [0], "unchanged": [1]}


def test_benchmark_strata_in_outputs(world: dict[str, Path], tmp_path: Path) -> None:
    result = _run(world, tmp_path / "o", protocols=["uncrtaints"])
    s = result.summary
    assert s["strata"]["cover_glf_cr"] == ["0-20", "20-40", "40-60", "60-80", "80-100"]
    assert len(s["strata"]["cover_mmcanet"]) == 6
    seasons = {season_of(r["id"]) for r in result.per_image}
    assert set(s["strata"]["season"]) == seasons
    assert sum(s["stratum_sizes"]["cover_glf_cr"].values()) == 6
    cells = s["protocols"]["uncrtaints"]["models"]["identity"]["overall"]
    for label, size in s["stratum_sizes"]["season"].items():
        assert cells["season"][label]["mae"]["n"] == size
    row = result.per_image[0]
    assert row["season"] == season_of(row["id"]) and row["cover_glf_cr"]


def test_time_series_baselines_and_aux_change(world: dict[str, Path], tmp_path: Path) -> None:
    result = _run(
        world,
        tmp_path / "o",
        dataset={"name": "sen12mscr_ts", "root": str(world["t"]), "split": "all"},
        models=[{"key": "a", "weights": str(world["a"])}],
        protocols=["uncrtaints"],
    )
    s = result.summary
    assert s["baselines"] == ["identity", "least_cloudy", "mosaic", "most_recent_clear"]
    assert set(s["strata"]) >= {"all", "aux_change"} and "season" not in s["strata"]
    sizes = s["stratum_sizes"]["aux_change"]
    assert sum(sizes.values()) == s["dataset"]["n_images"]
    flags = [r["aux_changed"] for r in result.evaluations["uncrtaints"].rows]
    assert sizes["changed"] == sum(f == 1.0 for f in flags)
    assert {r["aux_change"] for r in result.per_image} <= {"changed", "unchanged"}
    assert len(result.per_image) == s["dataset"]["n_images"] * 5 * 3 * len(METRIC_NAMES)


def test_reproducible_tables(world: dict[str, Path], tmp_path: Path) -> None:
    _run(world, tmp_path / "one")
    _run(world, tmp_path / "two")
    for name in ("tables.md", "tables.csv", "per_image.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_refuses_to_overwrite(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o"
    _run(world, out, protocols=["uncrtaints"], complexity={"size": 8, "repeats": 1})
    before = (out / "tables.md").read_bytes()
    with pytest.raises(InputFileError, match="already exists; pass --overwrite"):
        _run(world, out, protocols=["uncrtaints"])
    assert (out / "tables.md").read_bytes() == before
    config = build_benchmark_config(_raw(world, protocols=["glf_cr"]))
    run_benchmark(config, out_dir=out, overwrite=True, progress=False)
    assert "`glf_cr`" in (out / "tables.md").read_text()
    assert not (out / "complexity.csv").exists()  # stale: this run measured none


def test_config_errors(world: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'bootstrap.sample' \(did you mean"):
        build_benchmark_config(_raw(world, bootstrap={"sample": 3}))
    with pytest.raises(ConfigError, match="unknown protocol"):
        build_benchmark_config(_raw(world, protocols=["psnr_only"]))
    with pytest.raises(ConfigError, match="unknown cover bin set"):
        build_benchmark_config(_raw(world, strata={"cover_bins": ["glf"]}))
    with pytest.raises(ConfigError, match="'models' .*at least 1|models: List should have"):
        build_benchmark_config(_raw(world, models=[]))
    with pytest.raises(ConfigError, match="key 'a' given twice"):
        build_benchmark_config(
            _raw(world, models=[{"key": "a", "weights": "x"}, {"key": "a", "weights": "y"}])
        )
    with pytest.raises(ConfigError, match=r"models.0 \(a\): unknown model 'dsen2c' \(did you"):
        _run(world, tmp_path / "o", models=[{"key": "a", "name": "dsen2c", "weights": "x"}])
    with pytest.raises(ConfigError, match="weights .*missing.* not found"):
        _run(world, tmp_path / "o", models=[{"weights": str(tmp_path / "missing")}])
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"x")
    with pytest.raises(ConfigError, match="checkpoint file; give the model's registry name"):
        _run(world, tmp_path / "o", models=[{"weights": str(ckpt)}])
    with pytest.raises(DatasetError, match="does not exist"):
        _run(world, tmp_path / "o", dataset={"root": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="takes no option"):
        _run(world, tmp_path / "o", dataset={"root": str(world["s"]), "options": {"bogus": 1}})
    assert not (tmp_path / "o").exists()  # nothing written on a bad config


def test_cli(world: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(yaml.safe_dump(_raw(world)))
    runner = CliRunner()
    args = ["benchmark", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]
    res = runner.invoke(main, [*args, "--set", "protocols=[carf]", "--set", "dataset.sample=3"])
    assert res.exit_code == 0, res.output
    assert "3 images" in res.output and "wrote tables.md" in res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert list(summary["protocols"]) == ["carf"] and summary["dataset"]["sample"]["n"] == 3
    res = runner.invoke(main, args)
    assert res.exit_code == 1 and "pass --overwrite" in res.output
    res = runner.invoke(main, [*args, "--set", "strata.region=overall"])
    assert res.exit_code == 1
    assert "unknown key 'strata.region' (did you mean 'regions'?)" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_complexity_helpers() -> None:
    model = create_model("dsen2cr", width=8, num_blocks=1)
    batch = spec_batch(model, 16)
    assert batch.optical.shape == (1, 13, 16, 16) and batch.sar.shape == (1, 2, 16, 16)
    # two 3x3 convs of the entry/exit, the block convs: every MAC is a conv MAC here
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    expected = sum(m.weight.numel() * 16 * 16 for m in convs)
    assert count_macs(model, batch) == expected
    figures = measure_complexity(model, size=16, repeats=2, warmup=0)
    assert figures.params == count_parameters(model) and figures.macs == expected
    assert figures.latency_s > 0 and figures.dates is None
    assert figures.throughput_km2_per_s == pytest.approx(0.16**2 / figures.latency_s)
    assert throughput_km2_per_s(256, 2.0) == pytest.approx(2.56**2 / 2)
    assert math.isnan(throughput_km2_per_s(256, 0.0))
    with pytest.raises(ConfigError, match="size must be a positive integer"):
        spec_batch(model, 0)


def test_paper_table_next_to_our_numbers(world: dict[str, Path], tmp_path: Path) -> None:
    """--paper-table lays the benchmark's overall means (under the table's closest protocol)
    next to the published rows; an unknown table fails before the run; files are not
    replaced without --overwrite."""
    from cloudfree.evaluate.paper_tables import load_paper_table

    cfg = {
        "models": [{"key": "dsen2cr", "weights": str(world["a"])}],
        "dataset": {"root": str(world["s"]), "split": "all"},
        "protocols": ["uncrtaints", "glf_cr"],
        "bootstrap": {"samples": 50, "seed": 0},
        "complexity": None,
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "o"
    args = ["benchmark", str(path), "--out", str(out), "--quiet"]
    res = CliRunner().invoke(main, [*args, "--paper-table", "glf_cr_table1"])
    assert res.exit_code == 0, res.output
    text = (out / "paper_glf_cr_table1.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    ours = summary["protocols"]["glf_cr"]["models"]["dsen2cr"]["overall"]["all"]["all"]
    row = next(line for line in text.splitlines() if line.startswith("| DSen2-CR"))
    published = next(r for r in load_paper_table("glf_cr_table1").rows if r.model == "dsen2cr")
    assert f"{published.values[0]:.4f}" in row  # the published PSNR
    assert f"{ours['psnr']['mean']:.4f}" in row  # ours, measured under glf_cr
    assert "glf_cr" in text.strip().split("\n\n")[-1]  # the footnote states our protocol
    again = CliRunner().invoke(main, [*args, "--paper-table", "glf_cr_table1"])
    assert again.exit_code != 0 and "overwrite" in again.output
    bad = CliRunner().invoke(main, [*args, "--overwrite", "--paper-table", "no_such_table"])
    assert bad.exit_code != 0 and "no_such_table" in bad.output
    listed = CliRunner().invoke(main, [*args, "--paper-table", "list"])
    assert listed.exit_code == 0 and "sgbaf_table1" in listed.output.split()
