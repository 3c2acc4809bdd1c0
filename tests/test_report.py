"""Reports (`cloudfree report RUN_DIR`): from a fake summary, from a real evaluation with
panels, and rendered by headless Chromium when it is installed."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from chromium_helpers import chromium, render_page
from cloudfree.cli import main
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.report import build_report, load_report_inputs, select_by_cover
from cloudfree.report.panels import mask_image, percentile_stretch, rgb_image, sar_image
from cloudfree.report.plots import cover_bin_table

BINS = ["0-20", "20-40", "40-60", "60-80", "80-100"]
TINY = {"width": 16, "num_blocks": 1, "layers_per_block": 1, "growth": 8}


def _metrics(psnr: float, mae: float) -> dict[str, float]:
    return {"psnr": psnr, "ssim": 0.5 + psnr / 100, "sam": 40 - psnr, "mae": mae, "rmse": 2 * mae}


def _entry(base: float) -> dict[str, Any]:
    per_bin = {b: {"n": 2, **_metrics(base + 5 - i, 0.01 * (i + 1))} for i, b in enumerate(BINS)}
    per_bin["40-60"] = {"n": 0, **{k: math.nan for k in ("psnr", "ssim", "sam", "mae", "rmse")}}
    return {
        "overall": _metrics(base + 4, 0.02),
        "inside_clouds": _metrics(base, 0.05),
        "outside_clouds": _metrics(base + 10, 0.01),
        "per_cover_bin": per_bin,
    }


def _fake_run(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    summary = {
        "protocol": "uncrtaints",
        "protocol_description": "UnCRtainTS img_metrics",
        "split": "test",
        "n_images": 8,
        "sam_units": "degrees",
        "cover_bins": BINS,
        "models": {"identity": _entry(15.0), "no_sar": _entry(24.0), "glf_cr": _entry(26.5)},
    }
    summary["models"]["identity"]["inside_clouds"]["sam"] = math.nan  # a NaN cell
    (d / "summary.json").write_text(json.dumps(summary, allow_nan=True))
    cols = ["id", "cloud_cover", "cover_bin"] + [
        f"{m}_{r}_{k}"
        for m in ("identity", "no_sar", "glf_cr")
        for r in ("overall", "inside_clouds", "outside_clouds")
        for k in ("psnr", "ssim", "sam", "mae", "rmse")
    ]
    with open(d / "per_image.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(8):
            cover = i / 8
            row = [f"p{i}", cover, BINS[min(4, int(cover * 5))]]
            row += [20.0 + i if c.endswith("psnr") else 0.1 for c in cols[3:]]
            w.writerow(row)
    return d


def test_report_from_a_fake_summary(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "run")
    path = build_report(run)
    assert path == run / "report.html"
    text = path.read_text()
    assert "uncrtaints" in text and "UnCRtainTS img_metrics" in text
    for label in ("Identity (cloudy input)", "GLF-CR w/o SAR", "GLF-CR"):
        assert label in text
    assert "26.50" in text and "15.00" in text  # inside-clouds PSNR, 2 decimals
    assert "&ndash;" in text  # the NaN cell
    assert "Uncertainty calibration" not in text  # no model with a variance output
    assert not (run / "report_files" / "uncertainty_calibration.png").exists()
    assert 'class="best">26.50' in text  # best inside-clouds PSNR in bold
    assert "Inside clouds" in text and "Outside clouds" in text
    assert "better</b> inside clouds" in text  # GLF-CR vs no-SAR sentence
    # self-contained: the plot is embedded, nothing is fetched from the network
    assert text.count("data:image/png;base64,") == 1
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    plot = run / "report_files" / "psnr_per_cover_bin.png"  # side files: a folder after it
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cover_bin_table_overall_and_inside() -> None:
    run_summary = {"cover_bins": BINS, "models": {"a": _entry(10.0)}}
    labels, counts, values = cover_bin_table(run_summary)
    assert labels == BINS and counts == [2, 2, 0, 2, 2]
    assert values["a"][0] == 15.0 and values["a"][2] is None
    rows = [{"cover_bin": "0-20", "a_inside_clouds_psnr": "12"}, {"cover_bin": "0-20"}]
    _, counts, values = cover_bin_table(run_summary, rows, "inside_clouds")
    assert counts[0] == 2 and values["a"][0] == 12.0 and values["a"][1] is None


def test_report_needs_a_summary(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="cloudfree evaluate --checkpoint"):
        load_report_inputs(tmp_path)
    (tmp_path / "summary.json").write_text('{"protocol": "x"}')
    with pytest.raises(InputFileError, match="models"):
        load_report_inputs(tmp_path)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "not found" in result.output


def test_report_cli(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "run")
    out = tmp_path / "elsewhere" / "r.html"
    result = CliRunner().invoke(main, ["report", str(run), "--out", str(out), "--title", "T1"])
    assert result.exit_code == 0, result.output
    assert str(out.resolve()) in result.output
    assert "<title>T1</title>" in out.read_text()
    bad = CliRunner().invoke(main, ["report", str(run), "--data", str(tmp_path)])
    assert bad.exit_code == 2 and "--panels" in bad.output


def test_panel_helpers() -> None:
    assert select_by_cover([0.5, 0.1, 0.9, 0.3, 0.7], 3) == [1, 0, 2]
    assert select_by_cover([0.2, 0.1], 5) == [1, 0]
    assert select_by_cover([0.2], 0) == []
    img = np.random.default_rng(0).uniform(0, 1, (13, 8, 8))
    names = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10"]
    names += ["B11", "B12"]
    rgb = rgb_image(img, names, percentile_stretch(img[[3, 2, 1]]))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8 and rgb.max() == 255
    assert sar_image(np.stack([img[0] - 10, img[1] - 20])).shape == (8, 8, 3)
    m = mask_image(np.eye(4, dtype=bool), np.ones((4, 4), dtype=bool))
    assert tuple(m[0, 0]) == (245, 245, 245) and tuple(m[0, 1]) == (59, 130, 246)


def test_report_of_an_evaluation_with_panels(tmp_path: Path) -> None:
    """`cloudfree evaluate --checkpoint` output + `cloudfree report --panels N`."""
    from cloudfree.models import create_model, save_pretrained
    from cloudfree.synth import write_sen12mscr_synthetic

    data = tmp_path / "data"
    write_sen12mscr_synthetic(data, patches=12, size=32, seed=4)
    weights = save_pretrained(create_model("glf_cr", **TINY), tmp_path / "weights")
    ev = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(weights), "--data", str(data), "--out", str(ev)]
    assert CliRunner().invoke(main, args).exit_code == 0
    result = CliRunner().invoke(main, ["report", str(ev), "--panels", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((ev / "panels" / "panels.json").read_text())
    assert [c["key"] for c in manifest["columns"]] == ["cloudy", "sar", "glf_cr", "target", "mask"]
    # the captions are the metrics table's per-image values (same crop: the whole patch here)
    assert manifest["metrics_area"] == "the whole patch (as in the metrics table)"
    with open(ev / "per_image.csv", newline="") as fh:
        table = {r["id"]: r for r in csv.DictReader(fh)}
    for s in manifest["samples"]:
        for key in ("identity", "glf_cr"):
            m, row = s["metrics"][key], table[s["id"]]
            if m is None:
                assert math.isnan(float(row[f"{key}_inside_clouds_psnr"]))
            else:
                assert m["psnr"] == pytest.approx(float(row[f"{key}_inside_clouds_psnr"]), 1e-5)
    covers = [s["cloud_cover"] for s in manifest["samples"]]
    assert len(covers) == 2 and covers == sorted(covers)
    text = (ev / "report.html").read_text()
    assert "Test patches, from low to high cloud cover" in text
    assert text.count("data:image/png;base64,") == 1 + 2 * 5
    assert "rendered 2 of 2 panels into" in result.output
    # asking for more panels than the split has says how many were rendered
    n_test = len(table)
    more = CliRunner().invoke(main, ["report", str(ev), "--panels", "50", "--overwrite"])
    assert more.exit_code == 0, more.output
    assert f"rendered {n_test} of 50 panels (the split has {n_test} samples)" in more.output


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (/usr/bin/chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    """A person's view: the page renders with its images (no broken image, no blank page)."""
    run = _fake_run(tmp_path / "run")
    report = build_report(run)
    dom, img = render_page(report, tmp_path / "shot.png")
    assert "GLF-CR w/o SAR" in dom and "PSNR per cloud-cover bin" in dom
    assert img.shape[:2] == (1400, 1200)
    # not blank: text and the table's shading, and the plot's blue GLF-CR bars
    assert (img.min(axis=2) < 128).mean() > 0.005
    blue = (img[..., 2] > 180) & (img[..., 0] < 80) & (img[..., 1] < 140)
    assert blue.sum() > 3000, "the embedded plot did not render"
    shutil.rmtree(tmp_path / "run")


def test_panel_captions_say_when_a_patch_has_no_cloud(tmp_path: Path) -> None:
    from cloudfree.report.html import _panels_section

    manifest = {
        "columns": [{"key": "cloudy", "label": "Cloudy"}, {"key": "glf_cr", "label": "GLF-CR"}],
        "samples": [
            {
                "id": "clear",
                "cloud_cover": 0.0,
                "images": {},
                "metrics": {"identity": None, "glf_cr": None},
            },
            {
                "id": "cloudy",
                "cloud_cover": 0.8,
                "images": {},
                "metrics": {
                    "identity": {"psnr": 12.0, "mae": 0.2},
                    "glf_cr": {"psnr": 30.25, "mae": 0.02},
                },
            },
        ],
    }
    text = _panels_section(manifest, tmp_path, {"protocol": "uncrtaints"})
    assert text.count("no pixel inside clouds") == 2
    assert "30.2 dB, MAE 0.020" in text and "12.0 dB, MAE 0.200" in text
    assert text.index("clear") < text.index("cloudy</b>")


def test_sample_panels_from_plain_arrays(tmp_path: Path) -> None:
    """The report draws given predictions: plain arrays, no model, no dataset."""
    from PIL import Image

    from cloudfree.report.panels import render_sample_panels

    rng = np.random.default_rng(2)
    names = ["B02", "B03", "B04", "B08"]
    samples, preds = [], []
    for i in range(2):
        cloud = np.zeros((12, 12), dtype=np.float32)
        cloud[:6] = 1
        samples.append(
            {
                "id": f"s{i}",
                "cloud_cover": 0.5,
                "optical": rng.uniform(0, 1, (4, 12, 12)).astype(np.float32),
                "target": rng.uniform(0, 0.3, (4, 12, 12)).astype(np.float32),
                "sar": rng.uniform(-25, 0, (2, 12, 12)).astype(np.float32),
                "cloud_mask": cloud,
                "metrics": {"identity": {"psnr": 11.0, "mae": 0.2}, "net": None},
            }
        )
        preds.append(samples[-1]["target"] * 0.5)
    manifest = render_sample_panels(
        samples,
        {"net": preds},
        tmp_path / "panels",
        band_names=names,
        labels={"net": "Net"},
        metric_protocol="glf_cr",
        metrics_crop=8,
    )
    assert [c["key"] for c in manifest["columns"]] == ["cloudy", "sar", "net", "target", "mask"]
    assert manifest["columns"][2]["label"] == "Net"
    assert manifest["metrics_area"].startswith("the central 8 x 8 px")
    assert manifest["samples"][0]["metrics"] == samples[0]["metrics"]
    assert json.loads((tmp_path / "panels" / "panels.json").read_text()) == manifest
    files = manifest["samples"][1]["images"]
    net = np.asarray(Image.open(tmp_path / "panels" / files["net"]))
    assert net.shape == (192, 192, 3)  # 12 px enlarged x16 (nearest) to >= 192
    mask = np.asarray(Image.open(tmp_path / "panels" / files["mask"]))
    assert tuple(mask[0, 0]) == (245, 245, 245) and tuple(mask[-1, -1]) == (40, 44, 52)
    # the prediction is half the target: darker under the one shared stretch
    target = np.asarray(Image.open(tmp_path / "panels" / files["target"]))
    assert net.mean() < target.mean()
    with pytest.raises(ConfigError, match="1 prediction"):
        render_sample_panels(samples, {"net": preds[:1]}, tmp_path / "x", band_names=names)
    with pytest.raises(ConfigError, match="needs bands B04,B03,B02"):
        render_sample_panels(samples, {}, tmp_path / "x", band_names=["B08"] * 4)


def test_report_never_imports_models_predict_train() -> None:
    """The report package draws and writes; models run in evaluate / the CLI."""
    import ast

    import cloudfree.report

    root = Path(cloudfree.report.__file__).parent
    forbidden = ("cloudfree.models", "cloudfree.predict", "cloudfree.train", "cloudfree.evaluate")
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"


# ----------------------------------------------------------------------------- uncertainty
def _with_uncertainty(run: Path) -> dict[str, Any]:
    """Add the uncertainty entry of a variance model (made from seeded per-image statistics)
    to the fake run's GLF-CR entry."""
    from cloudfree.metrics import UNCERTAINTY_DEFINITIONS, uncertainty_summary

    u = np.random.default_rng(0).random((3, 40))
    var = 1e-4 + 4e-3 * u[0] ** 2
    stats = {"mean_var": var, "mean_se": var * (0.5 + u[1]), "mean_error": (u[2] - 0.5) / 20}
    summary = json.loads((run / "summary.json").read_text())
    summary["models"]["glf_cr"]["uncertainty"] = uncertainty_summary(stats)
    summary["uncertainty_definitions"] = UNCERTAINTY_DEFINITIONS
    (run / "summary.json").write_text(json.dumps(summary, allow_nan=True))
    return summary["models"]["glf_cr"]["uncertainty"]


def test_report_uncertainty_section(tmp_path: Path) -> None:
    from PIL import Image

    run = _fake_run(tmp_path / "run")
    u = _with_uncertainty(run)
    text = build_report(run).read_text()
    assert '<h2 id="uncertainty">Uncertainty calibration</h2>' in text
    section = text[text.index('id="uncertainty"') :]
    assert "GLF-CR" in section and "Identity" not in section.split("</table>")[0]
    for key in ("uce", "auce", "uce_clean", "auce_clean", "rms_std", "rmse"):
        assert f"<td>{u[key]:.4f}</td>" in section
    assert f"<td>{u['spearman_var_error']:.3f}</td>" in section
    assert "signed</i> mean error" in section and "definitions" in section
    assert text.count("data:image/png;base64,") == 2  # cover-bin plot + uncertainty plot
    png = run / "report_files" / "uncertainty_calibration.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape[1] > 800 and img.shape[0] > 300
    blue = (img[..., 2] > 180) & (img[..., 0] < 80) & (img[..., 1] < 140)  # GLF-CR's colour
    assert blue.sum() > 200, "no GLF-CR markers in the uncertainty plot"
    # the side file is checked like the others: a second report needs overwrite=True
    (run / "report.html").unlink()
    (run / "report_files" / "psnr_per_cover_bin.png").unlink()
    with pytest.raises(InputFileError, match="uncertainty_calibration.png"):
        build_report(run)


def test_uncertainty_panels(tmp_path: Path) -> None:
    from PIL import Image

    from cloudfree.report.html import _panels_section
    from cloudfree.report.panels import colour_bar, render_sample_panels, uncertainty_image

    names = ["B02", "B03", "B04"]
    rng = np.random.default_rng(1)
    samples = []
    for i in range(2):
        std = np.tile(np.linspace(0.0, 0.02 * (i + 1), 12, dtype=np.float32), (12, 1))
        samples.append(
            {
                "id": f"s{i}",
                "cloud_cover": 0.1 * i,
                "optical": rng.uniform(0, 1, (3, 12, 12)).astype(np.float32),
                "target": rng.uniform(0, 0.3, (3, 12, 12)).astype(np.float32),
                "sar": rng.uniform(-25, 0, (2, 12, 12)).astype(np.float32),
                "cloud_mask": np.zeros((12, 12), dtype=np.float32),
                "uncertainty": {"unc": std},
            }
        )
    preds = {"unc": [s["target"] for s in samples], "plain": [s["target"] for s in samples]}
    panels = tmp_path / "panels"
    manifest = render_sample_panels(
        samples, preds, panels, band_names=names, labels={"unc": "UnCRtainTS"}
    )
    keys = [c["key"] for c in manifest["columns"]]
    assert keys == ["cloudy", "sar", "unc", "unc_std", "plain", "target", "mask"]
    assert manifest["columns"][3]["label"] == "UnCRtainTS: uncertainty (std)"
    lo, hi = manifest["uncertainty_range"]
    all_std = np.concatenate([s["uncertainty"]["unc"].ravel() for s in samples])
    assert lo == 0.0 and hi == pytest.approx(float(np.percentile(all_std, 99)))
    assert f"{hi:.4g}" in manifest["uncertainty"] and "magma" in manifest["uncertainty"]
    assert manifest["samples"][1]["uncertainty"]["unc"] == pytest.approx(0.02)
    # the map: dark where certain (left), bright where uncertain (right); one shared scale
    maps = [
        np.asarray(Image.open(panels / s["images"]["unc_std"])).astype(int)
        for s in manifest["samples"]
    ]
    assert maps[0].shape == (192, 192, 3)
    assert maps[1][:, -1].sum() > maps[1][:, 0].sum() + 100 * 192
    assert maps[0][:, -1].sum() < maps[1][:, -1].sum()  # the same std is the same colour
    bar = np.asarray(Image.open(panels / manifest["uncertainty_colourbar"]))
    assert bar.shape == colour_bar().shape and bar[:, 0].sum() < bar[:, -1].sum()
    np.testing.assert_array_equal(uncertainty_image(np.array([[np.nan, 1.0]]), 1.0)[0, 0], 0)
    # the report's panel section: caption with the patch's mean std, the colour bar and range
    text = _panels_section(manifest, tmp_path, {"protocol": "uncrtaints"})
    assert "mean std 0.0200" in text and "mean std 0.0100" in text
    assert "0 <img" in text and f"> {hi:.4g}</p>" in text
    assert text.count("data:image/png;base64,") == 2 * 7 + 1  # 7 columns, the colour bar
    with pytest.raises(ConfigError, match="no predictions"):
        render_sample_panels(samples, {"plain": preds["plain"]}, tmp_path / "x", band_names=names)
    bad = [{**samples[0], "uncertainty": {"unc": np.zeros((3, 3))}}]
    with pytest.raises(ConfigError, match="has shape"):
        render_sample_panels(bad, {"unc": preds["unc"][:1]}, tmp_path / "x", band_names=names)


def test_report_of_a_variance_model_evaluation_with_panels(tmp_path: Path) -> None:
    """`cloudfree evaluate` of the uncertainty stand-in, then `cloudfree report --panels 2`."""
    from cloudfree.models import create_model, save_pretrained
    from cloudfree.synth import write_sen12mscr_synthetic

    data = tmp_path / "data"
    write_sen12mscr_synthetic(data, patches=6, size=32, seed=4)
    weights = save_pretrained(create_model("standin_uncertainty", width=4), tmp_path / "w")
    ev = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(weights), "--data", str(data), "--out", str(ev)]
    res = CliRunner().invoke(main, [*args, "--split", "all"])
    assert res.exit_code == 0, res.output
    result = CliRunner().invoke(main, ["report", str(ev), "--panels", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((ev / "panels" / "panels.json").read_text())
    keys = [c["key"] for c in manifest["columns"]]
    assert keys[2:4] == ["standin_uncertainty", "standin_uncertainty_std"]
    text = (ev / "report.html").read_text()
    assert "Uncertainty calibration" in text and "uncertainty colour bar" in text
    # cover-bin plot, uncertainty plot, 2 x 6 panels, the colour bar
    assert text.count("data:image/png;base64,") == 2 + 2 * 6 + 1
