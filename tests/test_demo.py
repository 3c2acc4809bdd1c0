"""The demo (`cloudfree demo`) as a quick smoke run: every step, the outputs and their schema.

The numbers of a 3-step training mean nothing; tests/test_demo_slow.py checks the default
demo's claim (GLF-CR beats the identity and the no-SAR model inside clouds).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.io import raster_info

REGIONS = ("overall", "inside_clouds", "outside_clouds")
METRICS = ("psnr", "ssim", "sam", "mae")


def _strict_json(path: Path) -> dict:
    def refuse(value: str) -> None:
        raise ValueError(f"non-standard JSON constant {value}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("cloudmask", "data", "demo", "evaluate", "predict", "report", "train"):
        assert command in result.output
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0 and "--quick" in result.output and "--steps" in result.output


def test_quick_demo_end_to_end_and_again(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--quick", "--out", str(out), "--seed", "1", "--quiet"]
    for _ in range(2):  # a second run replaces the first one's output
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    text = result.output
    for k in range(1, 9):
        assert f"[{k}/8]" in text
    assert f"report:  {(out / 'report.html').resolve()}" in text
    closing = [line for line in text.splitlines() if "inside clouds: PSNR" in line]
    assert [line.split()[0] for line in closing] == [
        *("identity", "no_sar", "glf_cr"),
        *("ca_mtcr", "identity", "least_cloudy", "mosaic"),  # the time series
    ]

    summary = _strict_json(out / "summary.json")
    assert summary["protocol"] == "uncrtaints"
    assert list(summary["models"]) == ["identity", "no_sar", "glf_cr"]
    for entry in summary["models"].values():
        assert set(REGIONS) <= set(entry)
        for region in REGIONS:
            for metric in METRICS:
                assert isinstance(entry[region][metric], float), (region, metric)
        assert set(entry["per_cover_bin"]) == {"0-20", "20-40", "40-60", "60-80", "80-100"}
    assert set(summary["comparison"]) >= {"beats_identity", "beats_no_sar"}
    assert summary["demo"]["models"]["glf_cr"]["steps"] == 3
    # both mono-temporal models train with the demo's loss (module docstring: L1 + SSIM)
    assert summary["demo"]["settings"]["loss"] == "l1_ssim"
    for key in ("glf_cr", "no_sar"):
        config = yaml.safe_load((out / "runs" / key / "config.yaml").read_text())
        assert config["loss"]["name"] == "l1_ssim", key
    assert summary["demo"]["models"]["no_sar"]["model"] == "glf_cr_no_sar"
    assert summary["demo"]["timings_s"]["total"] > 0

    # the time-series part: CA-MTCR, the baselines, strata per auxiliary change, the scene
    ts = summary["time_series"]
    assert ts["model"] == "ca_mtcr" and ts["steps"] == 2 and ts["n_test"] >= 1
    assert list(ts["models"]) == ["ca_mtcr", "identity", "least_cloudy", "mosaic"]
    for entry in ts["models"].values():
        assert isinstance(entry["inside_clouds"]["psnr"], float)
        assert set(entry["per_aux_change"]) <= {"changed", "unchanged"}
    assert set(ts["comparison"]) >= {"beats_mosaic", "beats_least_cloudy", "beats_identity"}
    assert set(ts["scene"]["metrics_inside_clouds"]) == {"identity", "ca_mtcr", "least_cloudy",
                                                        "mosaic"}  # fmt: skip
    doc = json.loads((out / "time_series.json").read_text())
    assert len(doc["images"]) == 3 + 3 + 1  # the dates, the three methods, the truth
    for image in doc["images"]:
        assert (out / image["file"]).stat().st_size > 0
    assert len(doc["table"]["rows"]) == 4
    for key in ("ca_mtcr", "least_cloudy", "mosaic"):  # on the target date's grid
        pred = raster_info(out / "time_series" / f"scene_{key}.tif")
        assert pred.count == 13 and pred.height == 64

    # per-image table, panels, scene outputs on the optical grid
    header = (out / "per_image.csv").read_text().splitlines()[0].split(",")
    assert {
        "glf_cr_inside_clouds_psnr",
        "no_sar_inside_clouds_mae",
        "identity_overall_ssim",
    } <= set(header)
    # one N-model evaluation (OUT/eval) behind OUT/per_image.csv: same values, identity first
    with open(out / "eval" / "per_image.csv", newline="") as fh:
        merged = list(csv.DictReader(fh))
    with open(out / "per_image.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert header[3].startswith("identity_") and list(merged[0])[3].startswith("no_sar_")
    assert [{k: r[k] for k in header} for r in merged] == table
    panels = json.loads((out / "panels" / "panels.json").read_text())
    assert len(panels["samples"]) == 2
    assert [c["key"] for c in panels["columns"]] == [
        "cloudy",
        "sar",
        "glf_cr",
        "no_sar",
        "target",
        "mask",
    ]
    cloudy = raster_info(out / "scene_input" / "scene_s2_cloudy.tif")
    s1 = raster_info(out / "scene_input" / "scene_s1.tif")
    assert s1.crs != cloudy.crs  # the S1 input really needs the warp
    for name in ("scene_cloudfree.tif", "scene_cloudfree_no_sar.tif"):
        pred = raster_info(out / name)
        assert (pred.height, pred.width, pred.crs) == (cloudy.height, cloudy.width, cloudy.crs)
        assert pred.count == 13
    assert (out / "scene_quicklook.png").stat().st_size > 0
    scene = json.loads((out / "scene.json").read_text())
    assert len(scene["images"]) == 5
    grain = summary["graininess"]["scene"]
    assert set(grain) == {"glf_cr", "no_sar"} and scene["graininess"] == grain
    for ratios in grain.values():  # finite, positive texture ratios in both regions
        assert set(ratios) == {"inside_clouds", "clear"}
        assert all(isinstance(v, float) and 0 < v < 1e3 for v in ratios.values())
    assert "graininess: GLF-CR (optical + SAR)" in scene["facts"]

    # the report: metrics table with the protocol, plot, panels, scene; self-contained
    html = (out / "report.html").read_text()
    for needle in (
        "uncrtaints",
        "Identity (cloudy input)",
        "GLF-CR w/o SAR",
        "GLF-CR (optical + SAR)",
        "Inside clouds",
        "Outside clouds",
        "PSNR per cloud-cover bin",
        "Test patches, from low to high cloud cover",
        "Whole scene: before and after",
        "Time series: three dates composited into one clean image",
        "Mosaic of clear pixels",
        "In: a cloudy Sentinel-2 image",
    ):
        assert needle in html, needle
    assert html.count("data:image/png;base64,") == 3 + 1 + 2 * 6 + 5 + 7  # overview first
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)

    # `cloudfree report` rebuilds it from the demo's directory
    again = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "r.html")])
    assert again.exit_code == 0, again.output
    assert "Whole scene: before and after" in (tmp_path / "r.html").read_text()


def test_demo_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "not empty" in result.output
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--crop", "64"], 1, "the crop (64 px) is larger than the patches (32)"),
        (["--patches", "2"], 2, "Invalid value for '--patches': 2 is not in the range x>=3"),
        (["--loss", "l3"], 1, "unknown loss 'l3'; registered losses: "),
    ],
)
def test_demo_rejects_bad_settings(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = CliRunner().invoke(main, ["demo", "--quick", "--out", str(tmp_path / "d"), *args])
    assert result.exit_code == code and message in result.output
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_demo_device_cuda(tmp_path: Path) -> None:
    """`--device cuda`: a clear error without CUDA (before any output), a full run with it."""
    import torch

    out = tmp_path / "d"
    args = ["demo", "--quick", "--quiet", "--out", str(out), "--device", "cuda"]
    result = CliRunner().invoke(main, args)
    if not torch.cuda.is_available():
        assert result.exit_code == 1 and "CUDA is not available" in result.output
        assert not out.exists()
        pytest.skip("no CUDA device here: the GPU run itself is not exercised")
    assert result.exit_code == 0, result.output
    summary = _strict_json(out / "summary.json")
    assert "CUDA" in summary["setup"]["training (both)"]


def test_time_series_scene_window_ends_on_the_cloudiest_date_with_two_before() -> None:
    from cloudfree.demo.time_series import _scene_window

    assert _scene_window([0.9, 0.8, 0.1, 0.5, 0.3, 0.0]) == slice(1, 4)  # date 0 has none before
    assert _scene_window([0.0, 0.0, 0.2, 0.2, 0.1, 0.2]) == slice(0, 3)  # ties: the earliest
    assert _scene_window([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == slice(3, 6)
