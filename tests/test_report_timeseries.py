"""Report panels of a time-series evaluation: `cloudfree evaluate --dataset sen12mscr_ts` of a
temporal and a mono-temporal model, then `cloudfree report RUN --panels N`."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cloudfree.cli import main
from cloudfree.data import SEN12MSCRTS, collate_time_series, single_date_sample
from cloudfree.data.transforms import normalize_sample
from cloudfree.errors import ConfigError
from cloudfree.evaluate import load_model_for_evaluation, predict_samples
from cloudfree.models import ModelBatch, create_model, run_model, save_pretrained
from cloudfree.normalization import to_reflectance
from cloudfree.synth.temporal_writers import write_sen12mscr_ts_synthetic

OPTIONS = {"sampler": "random"}
KEYS = ["input_1", "input_2", "input_3", "cloudy", "sar", "t", "t_std", "m", "m_std"]
KEYS += ["target", "mask"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The brief's reproduction: 6 synthetic series of 6 dates, a tiny UnCRtainTS (``t``) and
    its mono-temporal variant (``m``), evaluated with the random sampler on the train split."""
    d = tmp_path_factory.mktemp("tsreport")
    write_sen12mscr_ts_synthetic(d / "ts", patches=6, size=32, seed=1, dates=6)
    torch.manual_seed(0)
    tiny = {"width": 16, "decoder_blocks": 1}
    save_pretrained(create_model("uncrtaints", num_heads=4, d_model=16, **tiny), d / "w")
    save_pretrained(create_model("uncrtaints_mono", **tiny), d / "m")
    res = CliRunner().invoke(main, [
        "evaluate", "--checkpoint", f"t={d / 'w'}", "--checkpoint", f"m={d / 'm'}",
        "--data", str(d / "ts"), "--dataset", "sen12mscr_ts", "--sampler", "random",
        "--split", "train", "--out", str(d / "ev"),
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    return {"root": d / "ts", "t": d / "w", "m": d / "m", "ev": d / "ev"}


def _copy(run: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the evaluated run (each test writes its own report)."""
    return Path(shutil.copytree(run["ev"], tmp_path / "ev"))


def test_report_panels_of_a_time_series_evaluation(run: dict[str, Path], tmp_path: Path) -> None:
    ev = _copy(run, tmp_path)
    res = CliRunner().invoke(main, ["report", str(ev), "--panels", "2"])
    assert res.exit_code == 0, res.output
    assert "rendered 2 of 2 panels into" in res.output
    manifest = json.loads((ev / "panels" / "panels.json").read_text())
    assert [c["key"] for c in manifest["columns"]] == KEYS
    assert [c.get("kind") for c in manifest["columns"][:4]] == ["input_date"] * 3 + [None]
    assert manifest["columns"][3]["label"] == "Cloudy input (last date)"
    assert "in the order the model sees it" in manifest["input_dates"]
    with open(ev / "per_image.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    by_id = {r["id"]: r for r in table}
    series = SEN12MSCRTS(run["root"], "train", **OPTIONS)
    ids = [p.id for p in series.patches]
    covers = [s["cloud_cover"] for s in manifest["samples"]]
    # the clearest and the cloudiest of the 4 evaluated series, in that order
    assert covers == [
        min(float(r["cloud_cover"]) for r in table),
        max(float(r["cloud_cover"]) for r in table),
    ]
    for s in manifest["samples"]:
        assert set(s["images"]) == set(KEYS)
        for key, name in s["images"].items():
            img = Image.open(ev / "panels" / name)
            assert img.size == ((96, 96) if key.startswith("input_") else (192, 192)), key
        # each input date is labelled with its day: the mean of its S1 and S2 acquisition days
        index = ids.index(s["id"])
        patch, raw = series.patches[index], series[index]
        assert list(s["input_dates"]) == ["input_1", "input_2", "input_3"]
        for label, t in zip(s["input_dates"].values(), raw["input_idx"].tolist()):
            s1, s2 = patch.s1_dates[t], patch.s2_dates[t]
            assert min(s1, s2) <= dt.date.fromisoformat(label) <= max(s1, s2)
        # captions are the metrics table's per-image values (identity: the last date)
        for key in ("identity", "t", "m"):
            assert s["metrics"][key]["psnr"] == pytest.approx(
                float(by_id[s["id"]][f"{key}_inside_clouds_psnr"]), rel=1e-5
            )
        # the cloudy panel is the last input date, drawn in the same stretch
        last = np.asarray(Image.open(ev / "panels" / s["images"]["input_3"]))
        cloudy = np.asarray(Image.open(ev / "panels" / s["images"]["cloudy"]))
        np.testing.assert_array_equal(cloudy[::2, ::2], last)
    text = (ev / "report.html").read_text()
    # cover-bin plot, uncertainty plot, 2 x 11 panels, the colour bar
    assert text.count("data:image/png;base64,") == 2 + 2 * 11 + 1
    assert text.count('<img class="date"') == 6 and "Input date 3</th>" in text
    for s in manifest["samples"]:
        for day in s["input_dates"].values():
            assert f'">{day}</td>' in text


def test_mono_model_gets_the_last_date_and_the_temporal_one_the_series(
    run: dict[str, Path],
) -> None:
    series = SEN12MSCRTS(run["root"], "train", **OPTIONS)
    t = load_model_for_evaluation(run["t"])
    m = load_model_for_evaluation(run["m"])
    got = predict_samples({"t": t, "m": m}, series, [1, 0])
    assert [s["id"] for s in got.samples] == [series.patches[i].id for i in (1, 0)]
    for k, index in enumerate((1, 0)):
        raw = series[index]
        s = got.samples[k]
        norm = normalize_sample(raw, "uncrtaints")
        # drawn: the last input date; the stack: every date, the last one the cloudy input
        assert s["optical"].shape == (13, 32, 32) and s["sar"].shape == (2, 32, 32)
        assert len(s["input_dates"]) == raw["optical"].shape[0] == len(s["date_labels"]) == 3
        np.testing.assert_array_equal(s["input_dates"][-1], s["optical"])
        for i, image in enumerate(s["input_dates"]):
            np.testing.assert_array_equal(
                image, to_reflectance(norm["optical"][i].numpy(), "uncrtaints")
            )
        # the mono model: its prediction on single_date_sample, normalised here
        one = normalize_sample(single_date_sample(raw), "uncrtaints")
        with torch.no_grad():
            mine = run_model(m, optical=one["optical"][None], sar=one["sar"][None]).pred[0]
            first = run_model(m, optical=norm["optical"][:1], sar=norm["sar"][:1]).pred[0]
        np.testing.assert_allclose(
            got.predictions["m"][k],
            to_reflectance(mine.numpy(), "uncrtaints"),
            rtol=1e-6,
            atol=1e-7,
        )
        assert not np.allclose(
            got.predictions["m"][k], to_reflectance(first.numpy(), "uncrtaints"), atol=1e-4
        )
        # the temporal model: the whole series with its dates (other dates, another output)
        batch = ModelBatch.from_sample(collate_time_series([norm]))
        with torch.no_grad():
            whole = run_model(t, batch).pred[0]
            later = ModelBatch(batch.optical, batch.sar, batch.dates + 200, batch.time_mask)
            shifted = run_model(t, later).pred[0]
        np.testing.assert_allclose(
            got.predictions["t"][k],
            to_reflectance(whole.numpy(), "uncrtaints"),
            rtol=1e-6,
            atol=1e-7,
        )
        assert not np.allclose(whole.numpy(), shifted.numpy(), atol=1e-5)
        assert set(s["uncertainty"]) == {"t", "m"} and s["uncertainty"]["t"].shape == (32, 32)


def test_input_date_panels_from_plain_arrays(tmp_path: Path) -> None:
    """Series of different lengths; a date without a label; the report's cells."""
    from cloudfree.report.html import _panels_section
    from cloudfree.report.panels import render_sample_panels

    rng = np.random.default_rng(3)
    names = ["B02", "B03", "B04"]
    samples: list[dict[str, Any]] = []
    for i, n_dates in enumerate((3, 2)):
        stack = [rng.uniform(0, 0.3, (3, 12, 12)).astype(np.float32) for _ in range(n_dates)]
        samples.append(
            {
                "id": f"s{i}",
                "cloud_cover": 0.2 * i,
                "optical": stack[-1],
                "target": rng.uniform(0, 0.3, (3, 12, 12)).astype(np.float32),
                "sar": rng.uniform(-25, 0, (2, 12, 12)).astype(np.float32),
                "cloud_mask": np.zeros((12, 12), dtype=np.float32),
                "input_dates": stack,
                "date_labels": ["2018-01-0" + str(d + 1) for d in range(n_dates - 1)] + [None],
            }
        )
    preds = {"net": [s["target"] for s in samples]}
    manifest = render_sample_panels(samples, preds, tmp_path / "panels", band_names=names)
    keys = [c["key"] for c in manifest["columns"]]
    assert keys == ["input_1", "input_2", "input_3", "cloudy", "sar", "net", "target", "mask"]
    assert manifest["columns"][0]["label"] == "Input date 1"
    short = manifest["samples"][1]
    assert "input_3" not in short["images"] and "input_2" in short["images"]
    assert short["input_dates"] == {"input_1": "2018-01-01", "input_2": None}
    img = Image.open(tmp_path / "panels" / short["images"]["input_1"])
    assert img.size == (96, 96)  # 12 px enlarged x8: half the other panels' 192
    text = _panels_section(manifest, tmp_path, {"protocol": "uncrtaints"})
    assert "(missing)" not in text  # the shorter series leaves an empty cell
    assert text.count('<img class="date"') == 5 and "2018-01-02</td>" in text
    row = text[text.index("<b>s1</b>") :]
    assert re.search(r'alt="input_2 s1"></td><td></td><td><img src', row)
    with pytest.raises(ConfigError, match="input date 2 of sample 's0' has shape"):
        bad = {**samples[0], "input_dates": [samples[0]["optical"], np.zeros((3, 4, 4))]}
        render_sample_panels([bad], {}, tmp_path / "x", band_names=names, labels=None)
    with pytest.raises(ConfigError, match="1 date label"):
        render_sample_panels(
            [{**samples[0], "date_labels": ["x"]}], {}, tmp_path / "x", band_names=names
        )


def test_panel_covers_from_the_run_directory_or_the_samples(run: dict[str, Path]) -> None:
    from cloudfree.cli.report_cmd import _panel_covers

    series = SEN12MSCRTS(run["root"], "train", **OPTIONS)
    with open(run["ev"] / "per_image.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    n = len(series)
    covers, ids = _panel_covers(series, rows, n)
    assert ids == [p.id for p in series.patches]
    read = [float(series[i]["cloud_cover"]) for i in range(n)]
    assert covers == pytest.approx(read, rel=1e-6)
    # a table of another length, or without covers: the samples are read instead
    assert _panel_covers(series, rows[:2], n) == (read, None)
    assert _panel_covers(series, [{"id": r["id"]} for r in rows], n) == (read, None)
    # a dataset with a cover index (SEN12MS-CR) uses it, for the evaluated samples only

    class Indexed:
        def cloud_covers(self, progress: bool = True) -> np.ndarray:
            return np.array([0.5, 0.25, 0.75])

    assert _panel_covers(Indexed(), rows, 2) == ([0.5, 0.25], None)


def test_panels_refuse_other_data_than_the_evaluated(run: dict[str, Path], tmp_path: Path) -> None:
    ev = _copy(run, tmp_path)
    with open(ev / "per_image.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for r in rows:
        r["id"] = "other_" + r["id"]
    with open(ev / "per_image.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    res = CliRunner().invoke(main, ["report", str(ev), "--panels", "1"])
    assert res.exit_code == 1 and "not the evaluated data" in res.output


def test_the_dataset_is_rebuilt_from_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    import cloudfree.data
    from cloudfree.cli.report_cmd import _evaluated_dataset

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(cloudfree.data, "build_dataset", lambda *a, **k: calls.append((a, k)))
    _evaluated_dataset(
        {"dataset_name": "sen12mscr_ts", "dataset_options": OPTIONS, "split": "val"}, "R"
    )
    _evaluated_dataset({"split": "unknown"}, "R")  # a summary from before dataset_name
    _evaluated_dataset({"dataset_name": "sen12mscr", "dataset_options": {"crop": "random"}}, "R")
    assert calls == [
        (("sen12mscr_ts", "R"), {"split": "val", "sampler": "random"}),
        (("sen12mscr", "R"), {"split": "test", "crop": "center"}),
        (("sen12mscr", "R"), {"split": "test", "crop": "random"}),
    ]
