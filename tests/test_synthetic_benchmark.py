"""`cloudfree benchmark --synthetic`: every registered family has an entry, every entry trains
and is benchmarked (tiny data, one step), the outputs are complete and rerunnable, and bad
requests get one-line errors. A pipeline check, not a measure of model quality."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.demo.synthetic_benchmark import load_synthetic_spec, run_synthetic_benchmark
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.evaluate.benchmark import load_benchmark_config
from cloudfree.models import create_model, get_model_info, list_models


def _tiny_spec() -> dict[str, Any]:
    spec = copy.deepcopy(load_synthetic_spec())
    spec["budget"].update(steps=1, batch_size=2, crop=32)
    spec["data"]["mono"].update(patches=12, size=32)
    spec["data"]["time_series"].update(patches=9, size=32, dates=4)
    spec["benchmark"].update(
        bootstrap={"samples": 50, "seed": 0},
        complexity={"size": 32, "dates": 2, "repeats": 1, "warmup": 0},
        report={"panels": 1},
    )
    return spec


def test_every_family_has_an_entry() -> None:
    spec = load_synthetic_spec()
    infos = [get_model_info(n) for n in list_models()]
    shipped = [i for i in infos if (i.model_class or i.builder).__module__.startswith("cloudfree.")]
    registered = {i.family for i in shipped}  # (other tests register models of their own)
    assert set(spec["families"]) == registered
    for family, entry in spec["families"].items():
        info = get_model_info(entry["model"])
        assert info.family == family and info.default_recipe
        create_model(entry["model"], **entry.get("kwargs", {}))  # the compact kwargs build
    budget = spec["budget"]
    assert budget["steps"] >= 100 and budget["crop"] <= spec["data"]["mono"]["size"]


@pytest.fixture(scope="module")
def every_family(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synthetic") / "out"
    lines: list[str] = []
    result = run_synthetic_benchmark(
        out, spec=_tiny_spec(), threads=1, progress=False, echo=lines.append
    )
    return result, lines


def test_every_family_trains_and_is_benchmarked(every_family) -> None:
    result, lines = every_family
    spec = load_synthetic_spec()
    models = {e["model"] for e in spec["families"].values()}
    assert set(result.facts) == models
    assert all(f["steps"] == 1 for f in result.facts.values())
    mono = result.parts["mono"].summary["protocols"]["uncrtaints"]["models"]
    series = result.parts["time_series"].summary["protocols"]["uncrtaints"]["models"]
    temporal = {m for m in models if get_model_info(m).temporal}
    assert set(mono) == (models - temporal) | {"identity"}
    assert set(series) == temporal | {"identity", "least_cloudy", "mosaic", "most_recent_clear"}
    for part in ("mono", "time_series"):
        folder = result.out / part
        for name in ("per_image.csv", "tables.md", "complexity.csv", "report.html"):
            assert (folder / name).stat().st_size > 0, (part, name)
    assert "aux_change" in result.parts["time_series"].summary["strata"]
    assert "season" in result.parts["mono"].summary["strata"]
    record = json.loads((result.out / "synthetic_benchmark.json").read_text())
    assert record["budget"]["steps"] == 1 and record["timings_s"]["total"] > 0
    assert set(record["models"]) == models
    assert lines[0].startswith("[1/13] synthetic data") and "[13/13]" in lines[-1]


def test_written_config_reruns_the_benchmark(every_family, tmp_path: Path) -> None:
    from cloudfree.evaluate.benchmark import run_benchmark

    result, _ = every_family
    config = load_benchmark_config(result.out / "mono" / "benchmark.yaml")
    config.complexity = None
    config.report = None
    again = run_benchmark(config, out_dir=tmp_path / "again", progress=False)
    assert (tmp_path / "again" / "per_image.csv").read_bytes() == (
        result.out / "mono" / "per_image.csv"
    ).read_bytes()
    assert again.cells_scored > 0


def test_refusals_and_errors(every_family, tmp_path: Path) -> None:
    result, _ = every_family
    with pytest.raises(InputFileError, match="pass --overwrite"):
        run_synthetic_benchmark(result.out, spec=_tiny_spec(), families=["dsen2cr"])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputFileError, match="holds no earlier synthetic benchmark"):
        run_synthetic_benchmark(foreign, spec=_tiny_spec(), families=["dsen2cr"])
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="unknown family 'glf'; the families are glf_cr"):
        run_synthetic_benchmark(tmp_path / "x", families=["glf"])
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        run_synthetic_benchmark(tmp_path / "x", steps=0)
    assert not (tmp_path / "x").exists()


def test_one_family_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "o"
    spec = _tiny_spec()
    first = run_synthetic_benchmark(out, spec=spec, families=["dsen2cr"], progress=False,
                                    echo=lambda _: None)  # fmt: skip
    assert set(first.parts) == {"mono"} and not (out / "time_series").exists()
    again = run_synthetic_benchmark(out, spec=spec, families=["utae"], overwrite=True,
                                    progress=False, echo=lambda _: None)  # fmt: skip
    assert set(again.parts) == {"time_series"}
    assert not (out / "mono").exists() and not (out / "runs" / "dsen2cr").exists()


def test_cli() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["benchmark", "--synthetic", "--families", "list"])
    assert res.exit_code == 0 and "pix2pix: sar_opt_cgan" in res.output
    res = runner.invoke(main, ["benchmark", "--steps", "3"])
    assert res.exit_code == 2 and "go with --synthetic" in res.output
    res = runner.invoke(main, ["benchmark", "x.yaml", "--synthetic"])
    assert res.exit_code == 2 and "takes no CONFIG.yaml" in res.output
    res = runner.invoke(main, ["benchmark"])
    assert res.exit_code == 2 and "or --synthetic" in res.output
    res = runner.invoke(main, ["benchmark", "--synthetic", "--families", "nope", "--out", "n"])
    assert res.exit_code == 1 and "unknown family 'nope'" in res.output
