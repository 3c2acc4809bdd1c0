"""The benchmark's ``report.html``: content, ranking, plots, panels, ``report: null``,
self-containment and a headless-Chromium render (skipped without Chromium)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from chromium_helpers import chromium, render_page
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.evaluate.benchmark import build_benchmark_config, run_benchmark
from cloudfree.models import create_model, save_pretrained
from cloudfree.report.benchmark_page import rank_by_psnr, render_benchmark_html


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny world of tests/test_benchmark.py: 6 synthetic SEN12MS-CR patches, two tiny
    DSen2-CR weights directories."""
    from cloudfree.synth import write_sen12mscr_synthetic

    root = tmp_path_factory.mktemp("bench_report")
    write_sen12mscr_synthetic(root / "s", patches=6, size=32, seed=0)
    torch.manual_seed(0)
    for k in ("a", "b"):
        save_pretrained(create_model("dsen2cr", width=8, num_blocks=1), root / f"w_{k}")
    return {"s": root / "s", "a": root / "w_a", "b": root / "w_b"}


def _run(world: dict[str, Path], out: Path, **extra: object):
    raw = {
        "models": [
            {"key": "model_a", "weights": str(world["a"])},
            {"key": "model_b", "weights": str(world["b"])},
        ],
        "dataset": {"root": str(world["s"]), "split": "all"},
        "protocols": ["uncrtaints", "glf_cr"],
        "bootstrap": {"samples": 50, "seed": 0},
        "complexity": {"size": 16, "repeats": 1, "warmup": 0},
        "report": {"panels": 2},
    }
    raw.update(extra)
    return run_benchmark(build_benchmark_config(raw), out_dir=out, progress=False)


@pytest.fixture(scope="module")
def page(world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench_report_out") / "o"
    result = _run(world, out)
    return out / "report.html", result.summary


def test_report_has_every_model_ranked_by_psnr(page: tuple[Path, dict]) -> None:
    path, summary = page
    text = path.read_text(encoding="utf-8")
    for key in ("model_a", "model_b", "identity"):
        assert key in text
    cells = summary["protocols"]["uncrtaints"]["models"]
    psnr = {e: cells[e]["overall"]["all"]["all"]["psnr"]["mean"] for e in summary["entries"]}
    expected = sorted(psnr, key=lambda e: -psnr[e])
    first_table = text.split('<table class="metrics ranked">', 2)[1]
    ranked = re.findall(r'<tr data-model="([^"]+)">', first_table)
    assert ranked == expected
    # the first screen: dataset, images, protocols, then the first protocol's table
    head = text.split('<table class="metrics ranked">', 1)[0]
    assert "sen12mscr" in head and "<dt>images</dt><dd>6" in head
    assert "<b>uncrtaints</b>, <b>glf_cr</b>" in head
    assert text.index('id="ranking"') < text.index('id="plots"') < text.index("cloud cover</h2>")
    assert text.index("cloud cover</h2>") < text.index('id="complexity"')
    # an interval is printed next to the mean of the winner
    best = cells[expected[0]]["overall"]["all"]["all"]["psnr"]
    assert f'{best["mean"]:.2f} <span class="ci">[{best["lo"]:.2f}, {best["hi"]:.2f}]' in text


def test_report_plots_panels_and_self_contained(page: tuple[Path, dict]) -> None:
    path, summary = page
    text = path.read_text(encoding="utf-8")
    plots = re.findall(r'<img src="data:image/png;base64,[^"]+" alt="PSNR', text)
    # cover_glf_cr, cover_mmcanet, season, PSNR vs MACs
    families = [f for f in summary["strata"] if f != "all"]
    assert set(families) >= {"cover_glf_cr", "cover_mmcanet", "season"}
    assert len(plots) == len(families) + 1
    assert 'id="plot-macs"' in text
    # 2 panels x (cloudy, SAR, 2 models, target, mask)
    panel_imgs = re.findall(r"<img src=\"data:image/png;base64,[^\"]+\" alt=\"(?:cloudy|sar|"
                            r"model_a|model_b|target|mask) ", text)  # fmt: skip
    assert len(panel_imgs) == 2 * 6
    assert text.count("<img") == len(plots) + len(panel_imgs)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert all(s.startswith("data:") for s in re.findall(r'src="([^"]*)"', text))
    assert not (path.parent / "panels").exists()  # panels embedded, no side files


def test_no_panels_with_zero_and_no_page_with_null(world: dict[str, Path], tmp_path: Path) -> None:
    result = _run(world, tmp_path / "z", report={"panels": 0}, complexity=None)
    text = (tmp_path / "z" / "report.html").read_text(encoding="utf-8")
    assert "from low to high cloud cover" not in text and 'alt="cloudy ' not in text
    assert 'id="complexity"' not in text and 'id="plot-macs"' not in text
    assert "report.html" in result.files
    none = _run(world, tmp_path / "n", report=None, complexity=None)
    assert not (tmp_path / "n" / "report.html").exists() and "report.html" not in none.files
    # an earlier page is refused without overwrite, removed (stale) with it
    with pytest.raises(InputFileError, match="already exists"):
        _run(world, tmp_path / "z", report=None, complexity=None)
    config = build_benchmark_config(
        {
            "models": [{"key": "model_a", "weights": str(world["a"])}],
            "dataset": {"root": str(world["s"]), "split": "all"},
            "bootstrap": {"samples": 20},
            "complexity": None,
            "report": None,
        }
    )
    run_benchmark(config, out_dir=tmp_path / "z", overwrite=True, progress=False)
    assert not (tmp_path / "z" / "report.html").exists()


def test_report_config_errors(world: dict[str, Path]) -> None:
    base = {"models": [{"weights": str(world["a"])}], "dataset": {"root": str(world["s"])}}
    with pytest.raises(ConfigError, match="report.panels"):
        build_benchmark_config({**base, "report": {"panels": -1}})
    with pytest.raises(ConfigError, match="report.pannels"):
        build_benchmark_config({**base, "report": {"pannels": 2}})


def test_rank_by_psnr_nan_last_ties_in_order() -> None:
    psnr = {"a": 20.0, "b": math.nan, "c": 25.0, "d": 20.0, "e": math.inf, "f": None}
    assert rank_by_psnr(list(psnr), psnr) == ["e", "c", "a", "d", "b", "f"]


def test_render_without_complexity_or_strata() -> None:
    """A minimal summary: one protocol, one model, no strata: a table and no plot."""
    cell = {"mean": 21.5, "lo": 20.0, "hi": 23.0, "n": 3}
    metrics = {m: dict(cell) for m in ("psnr", "ssim", "sam", "mae", "rmse")}
    summary = {
        "dataset": {"name": "x", "split": "test", "n_images": 3},
        "entries": ["m", "identity"],
        "baselines": ["identity"],
        "metrics": ["psnr", "ssim", "sam", "mae", "rmse"],
        "regions": ["overall"],
        "strata": {"all": ["all"]},
        "protocols": {
            "uncrtaints": {
                "description": "d",
                "center_crop": None,
                "models": {
                    "m": {"overall": {"all": {"all": metrics}}},
                    "identity": {"overall": {"all": {"all": {**metrics, "psnr": None}}}},
                },
            }
        },
    }
    text = render_benchmark_html(summary)
    assert "<img" not in text and 'id="plots"' not in text
    assert re.findall(r'<tr data-model="([^"]+)">', text) == ["m", "identity"]
    assert "21.50 <span" in text and "(baseline)" in text


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (/usr/bin/chromium)")
def test_report_renders_in_headless_chromium(page: tuple[Path, dict], tmp_path: Path) -> None:
    """A person's view: the page renders with its tables, plots and panels."""
    path, _ = page
    copy = tmp_path / "report.html"
    shutil.copy(path, copy)
    dom, img = render_page(copy, tmp_path / "shot.png")
    assert "model_a" in dom and "Ranking: protocol uncrtaints" in dom
    assert img.shape[:2] == (1400, 1200)
    assert (img.min(axis=2) < 128).mean() > 0.005  # not blank: text and table shading


def test_summary_json_unchanged_by_the_page(page: tuple[Path, dict]) -> None:
    """The page is an extra file: summary.json still parses and names no page field."""
    path, _ = page
    summary = json.loads((path.parent / "summary.json").read_text())
    assert summary["config"]["report"] == {"panels": 2}
