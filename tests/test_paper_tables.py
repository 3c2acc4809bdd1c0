"""The shipped paper tables (cloudfree/evaluate/resources/paper_tables.yaml) and their layout next
to measured results (cloudfree.evaluate.paper_tables)."""

from __future__ import annotations

import csv
import fnmatch
import io
import math
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudfree.errors import ConfigError
from cloudfree.evaluate import list_baselines
from cloudfree.evaluate.paper_tables import (
    CSV_COLUMNS,
    PAPER_TABLES_RESOURCE,
    OurProtocol,
    layout_paper_table,
    list_paper_tables,
    load_paper_table,
    paper_table_csv,
    parse_paper_tables,
)
from cloudfree.models import list_models

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "glf_cr_table1",
    "glf_cr_table2",
    "carf_table1",
    "carf_ablation",
    "mmcanet_table1",
    "mmcanet_table2",
    "mmcanet_table3",
    "mmcanet_table4",
    "mmcanet_table5",
    "mmcanet_table6",
    "ca_mtcr_table1",
    "ca_mtcr_table2",
    "ca_mtcr_table3",
    "sgbaf_table1",
    "sgbaf_table2",
    "sgbaf_table3",
    "sgbaf_gee",
}
OURS = OurProtocol(dataset="sen12mscr", split="test", protocol="glf_cr", bands="all", size=256)


def _raw() -> dict[str, Any]:
    text = resources.files("cloudfree.evaluate").joinpath(PAPER_TABLES_RESOURCE).read_text("utf-8")
    return yaml.safe_load(text)


def _md_rows(markdown: str) -> dict[str, list[str]]:
    """The body lines of a Markdown layout, keyed by 'method|ours' (cells stripped)."""
    rows: dict[str, list[str]] = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| Method"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[f"{cells[0]}|{cells[1]}"] = cells
    return rows


# ------------------------------------------------------------------------------ loading
def test_every_shipped_table_loads_with_valid_names() -> None:
    names = list_paper_tables()
    assert set(names) == EXPECTED
    assert names == sorted(names)
    known = set(list_models()) | set(list_baselines())
    for name in names:
        t = load_paper_table(name)
        assert t.name == name
        assert t.rows and all(len(r.values) == len(t.columns) for r in t.rows)
        for row in t.rows:
            assert row.model is None or row.model in known, (name, row.method, row.model)
            assert row.source.startswith(f"paper {t.paper.id}, {t.table_ref}, row ")
        assert t.protocol_notes, f"{name} states no protocol difference"


def test_the_yaml_is_package_data() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["cloudfree"]
    assert any(fnmatch.fnmatch("evaluate/" + PAPER_TABLES_RESOURCE, p) for p in patterns)
    assert resources.files("cloudfree.evaluate").joinpath(PAPER_TABLES_RESOURCE).is_file()


def test_unknown_table_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="did you mean 'glf_cr_table1'") as err:
        load_paper_table("glf_cr_tabel1")
    assert all(name in str(err.value) for name in EXPECTED)
    with pytest.raises(ConfigError, match="unknown paper table 'nope'"):
        layout_paper_table("nope", {})


# ------------------------------------------------------------------------------ numbers
def test_hard_coded_spot_checks_per_paper() -> None:
    t = load_paper_table("glf_cr_table1")  # paper 001 Table 1
    assert t.published("GLF-CR (Ours)", "psnr") == 29.0793
    assert t.published("DSen2-CR (Meraner et al., 2020)", "sam") == 8.5073
    assert load_paper_table("glf_cr_table2").published("w/o DF", "mae") == 0.0297
    t = load_paper_table("carf_table1")  # paper 004 Table I
    assert t.published("Proposed Method", "psnr") == 31.01
    assert t.published("UnCRtainTS [19]", "mae") == 0.023
    t = load_paper_table("mmcanet_table2")  # paper 000
    assert t.published("MMCANet_L (Ours)", "psnr", "spring") == 39.8871
    assert load_paper_table("mmcanet_table1").published("Winter", "sam", "winter") == 4.5639
    assert load_paper_table("mmcanet_table3").published("Uformer", "sam", "winter") == 5.3681
    assert load_paper_table("mmcanet_table4").published("MPIR2", "ssim", "fall") == 0.9413
    assert load_paper_table("mmcanet_table6").published("L1", "psnr", "spring") == 37.5102
    t = load_paper_table("ca_mtcr_table1")  # paper 002
    assert t.published("DSen2-CR [39]", "macs") == 1241.18
    assert t.published("UnCRtainTS [25]", "params") == 0.57
    assert t.published("CA-MTCR (ours)", "psnr", "allclear") == 34.21
    assert load_paper_table("ca_mtcr_table2").published("w/o CA", "sam") == 6.668
    t = load_paper_table("sgbaf_table1")  # paper 003, SSIM and MAE x100
    assert t.published("ours", "ssim") == 90.618
    assert t.published_in_our_units("ours", "ssim") == pytest.approx(0.90618)
    assert t.published_in_our_units("DSen2-CR", "mae") == pytest.approx(0.02216)
    assert load_paper_table("sgbaf_table3").published("base + DFIN", "mae") == 5.266
    assert load_paper_table("sgbaf_gee").published("SpA GAN", "sam") == 11.289


_NUMBER = re.compile(r"\d+\.\d+")
#: OCR damage in the paper texts, repaired before comparing: paper 000 Table IV prints MPIR2's
#: italic fall SSIM as "60.9413", and splits "0.9322" as "0\t.9322" (handled by _normalise).
_OCR_REPAIRS = {("mmcanet_table4", "MPIR2"): ("60.9413", "0.9413")}


def _normalise(line: str) -> str:
    return re.sub(r"(?<![\d.])0\s+\.(\d)", r"0.\1", line)


def _paper_text(shared_path: Callable[[str], Path], paper_id: str) -> str:
    files = sorted(shared_path("papers").glob(f"{paper_id}_*.txt"))
    if not files:
        pytest.skip(f"papers/{paper_id}_*.txt not in the shared folder")
    return files[0].read_text("utf-8")


@pytest.mark.parametrize("name", sorted(EXPECTED - {"carf_ablation"}))
def test_every_published_row_is_on_one_line_of_the_paper_text(
    name: str, shared_path: Callable[[str], Path]
) -> None:
    """Each row's values, printed with the table's decimals, occur in order on one line of the
    paper's text (so no number is mistyped, dropped or swapped between columns)."""
    t = load_paper_table(name)
    text = _paper_text(shared_path, t.paper.id)
    for row in t.rows:
        old, new = _OCR_REPAIRS.get((name, row.method), ("", ""))
        lines = [
            _NUMBER.findall(_normalise(line.replace(old, new) if old else line))
            for line in text.splitlines()
        ]
        want = [
            f"{v:.{t.metric(c.metric).decimals}f}"
            for c, v in zip(t.columns, row.values, strict=True)
        ]
        found = False
        for numbers in lines:
            rest = iter(numbers)
            if all(any(w == n for n in rest) for w in want):
                found = True
                break
        assert found, f"{name} row {row.method!r}: {want} not on one line of paper {t.paper.id}"


def test_carf_text_ablation_against_the_ocr_text(shared_path: Callable[[str], Path]) -> None:
    """Paper 004 states its ablation in damaged running text ("31:01 to 29:58dB", MAE "to 0:021",
    SSIM "0:918 0 0891"): checked by its printed fragments."""
    text = _paper_text(shared_path, "004")
    t = load_paper_table("carf_ablation")
    row = t.rows[0]
    assert row.values == (29.58, 0.891, 0.021)
    assert "31:01 to 29:58dB" in text and "to 0:021" in text and "0891" in text


# ------------------------------------------------------------------------------ layout
def test_layout_puts_published_and_ours_in_the_right_cells() -> None:
    measured = {
        "glf_cr": {"psnr": 28.5, "ssim": 0.87, "sam": 8.25, "mae": 0.03},
        "glf_run2": {"psnr": 28.0},
        "identity": {"psnr": 20.125, "ssim": 0.5},
        "dsen2cr": {"psnr": 27.0, "ssim": float("nan")},
    }
    md = layout_paper_table(
        "glf_cr_table1", measured, {"glf_run2": "glf_cr"}, ours=OURS, condition=None
    )
    rows = _md_rows(md)
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header.split("|")[3].strip() == "PSNR [dB] ↑ paper"
    assert header.split("|")[4].strip() == "PSNR [dB] ↑ ours"
    # published row with ours: Method, Ours, then (paper, ours) per metric PSNR, SSIM, SAM, MAE
    assert rows["GLF-CR (Ours)|glf_cr"] == [
        "GLF-CR (Ours)", "glf_cr", "29.0793", "28.5000", "0.8855", "0.8700",
        "7.6455", "8.2500", "0.0266", "0.0300",
    ]  # fmt: skip
    # a second run of the same registry model: a continuation line, published cells blank
    assert rows["↳|glf_run2"] == ["↳", "glf_run2", "", "28.0000", "", "-", "", "-", "", "-"]
    # a published row without ours, and one with a NaN
    assert rows["SAR2OPT (Bermudez et al., 2018)|-"][2:4] == ["25.7223", "-"]
    assert rows["DSen2-CR (Meraner et al., 2020)|dsen2cr"][2:6] == [
        "27.3780",
        "27.0000",
        "0.8705",
        "nan",
    ]
    # a measured model the paper lacks: an extra row after the published ones
    assert rows["identity (not in the paper)|identity"][2:6] == ["", "20.1250", "", "0.5000"]
    body = [line for line in md.splitlines() if line.startswith("| ") and "Method" not in line]
    assert body[-1].startswith("| identity (not in the paper)")
    assert len(body) == 7 + 2  # seven published rows, one continuation, one extra
    # footnote: the paper's protocol differences and ours
    assert "Protocol difference: GLF-CR's official metric code scores the centre 128x128" in md
    ours_line = "Ours: dataset sen12mscr, split test, metric protocol glf_cr, bands all, 256x256 px"
    assert ours_line in md
    assert "paper 001, Xu et al. (ISPRS Journal" in md


def test_sgbaf_layout_scales_ssim_and_mae_by_100() -> None:
    measured = {"sgbaf": {"psnr": 30.5, "ssim": 0.9, "mae": 0.0212, "sam": 5.5}}
    md = layout_paper_table("sgbaf_table1", measured, ours=OURS)
    cells = _md_rows(md)["ours|sgbaf"]
    assert cells == [
        "ours", "sgbaf", "31.050", "30.500", "90.618", "90.000", "1.929", "2.120", "4.912", "5.500",
    ]  # fmt: skip
    assert "SSIM x100, MAE x100" in md
    lines = list(csv.DictReader(io.StringIO(paper_table_csv("sgbaf_table1", measured, ours=OURS))))
    ssim = next(x for x in lines if x["measured_key"] == "sgbaf" and x["metric"] == "ssim")
    assert float(ssim["ours"]) == pytest.approx(90.0)
    assert ssim["published"] == "90.618" and ssim["scale"] == "100.0"


def test_conditions_read_prefixed_keys_and_the_plain_ones_for_the_given_condition() -> None:
    measured = {"mmcanet": {"summer/psnr": 30.0, "psnr": 36.0, "winter/sam": 4.0}}
    md = layout_paper_table("mmcanet_table3", measured, ours=OURS, condition="fall")
    cells = _md_rows(md)["MMCANet (Ours)|mmcanet"]
    # columns: summer psnr/ssim/mae/sam, fall psnr/..., winter psnr/...; (paper, ours) each
    assert cells[2:4] == ["30.8009", "30.0000"]  # summer PSNR from "summer/psnr"
    assert cells[10:12] == ["36.2944", "36.0000"]  # fall PSNR from the plain key
    assert cells[24:26] == ["4.5639", "4.0000"]  # winter SAM
    assert cells[18:20] == ["33.8424", "-"]  # winter PSNR: not measured
    assert "read as 'Fall'" in md
    # rows under conditions (Table I: one MMCANet row per season)
    md = layout_paper_table(
        "mmcanet_table1", {"mmcanet": {"psnr": 39.0, "summer/psnr": 30.5}}, ours=OURS
    )
    rows = _md_rows(md)
    assert rows["Summer|mmcanet"][2:4] == ["30.8009", "30.5000"]
    assert rows["Spring|mmcanet"][2:4] == ["39.3497", "-"]  # no condition given: no fallback
    with pytest.raises(ConfigError, match="no condition 'autumn'"):
        layout_paper_table("mmcanet_table3", measured, ours=OURS, condition="autumn")
    with pytest.raises(ConfigError, match="it has no conditions"):
        layout_paper_table("glf_cr_table1", measured, ours=OURS, condition="spring")


def test_complexity_columns_and_dsen2cr_units_are_converted() -> None:
    measured = {"ca_mtcr": {"params": 7_450_000, "macs": 456.57e9, "sen12mscr_ts/psnr": 31.0}}
    cells = _md_rows(layout_paper_table("ca_mtcr_table1", measured, ours=OURS))
    row = cells["CA-MTCR (ours)|ca_mtcr"]
    assert row[2:4] == ["31.79", "31.00"] and row[-4:] == ["7.45", "7.45", "456.57", "456.57"]
    # a dsen2cr-protocol measurement: SAM in radians, MAE on the /2000 scale (x5)
    ours = {"dataset": "sen12mscr", "protocol": "dsen2cr"}
    measured = {"dsen2cr": {"sam": math.radians(8.0), "mae": 0.15}}
    md = layout_paper_table("glf_cr_table1", measured, ours=ours)
    row = _md_rows(md)["DSen2-CR (Meraner et al., 2020)|dsen2cr"]
    assert row[6:10] == ["8.5073", "8.0000", "0.0319", "0.0300"]
    assert "SAM from radians to degrees" in md
    assert "follow our metric protocol 'glf_cr' most closely; ours used 'dsen2cr'" in md


def test_csv_form_has_one_line_per_cell() -> None:
    measured = {"ca_mtcr": {"sen12mscr_ts/psnr": 31.5}, "mosaic": {"sen12mscr_ts/psnr": 25.0}}
    text = paper_table_csv("ca_mtcr_table1", measured, ours=OURS)
    lines = list(csv.DictReader(io.StringIO(text)))
    assert tuple(lines[0]) == CSV_COLUMNS
    t = load_paper_table("ca_mtcr_table1")
    assert len(lines) == (len(t.rows) + 1) * len(t.columns)  # + the extra 'mosaic' row
    psnr = next(x for x in lines if x["measured_key"] == "ca_mtcr" and x["metric"] == "psnr")
    assert psnr["condition"] == "sen12mscr_ts" and psnr["published"] == "31.79"
    assert float(psnr["ours"]) == 31.5 and psnr["source"] == "paper 002, Table 1, row 8"
    extra = [x for x in lines if x["measured_key"] == "mosaic"]
    assert len(extra) == len(t.columns) and extra[0]["row"] == "" and extra[0]["published"] == ""


def test_layout_refuses_unstated_protocols_and_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="needs 'ours'"):
        layout_paper_table("glf_cr_table1", {"glf_cr": {"psnr": 1.0}})
    with pytest.raises(ConfigError, match="not measured"):
        layout_paper_table("glf_cr_table1", {}, {"x": "glf_cr"}, ours=OURS)
    with pytest.raises(ConfigError, match="must be a number"):
        layout_paper_table("glf_cr_table1", {"glf_cr": {"psnr": "high"}}, ours=OURS)
    with pytest.raises(ConfigError, match="needs 'dataset'"):
        layout_paper_table("glf_cr_table1", {}, ours={"split": "test"})
    # no measurement: the published table alone, saying so
    md = layout_paper_table("glf_cr_table1", {})
    assert "Ours: nothing measured." in md and "| GLF-CR (Ours) | - | 29.0793 | - |" in md


# ------------------------------------------------------------------------------ validation
def _one_table(**changes: Any) -> dict[str, Any]:
    raw = _raw()
    table = dict(next(t for t in raw["tables"] if t["name"] == "glf_cr_table1"))
    table.update(changes)
    return {"schema_version": 1, "tables": [table]}


def test_validation_rejects_bad_tables() -> None:
    tables = parse_paper_tables(_raw())
    assert set(tables) == EXPECTED
    good = _one_table()
    row = dict(good["tables"][0]["rows"][0])
    short = _one_table(rows=[{**row, "values": [24.8688, 0.7533, 16.0454]}])
    with pytest.raises(ConfigError, match=r"has 3 values for 4 columns \(psnr, ssim, sam, mae\)"):
        parse_paper_tables(short)
    with pytest.raises(ConfigError, match="must start with 'paper 001, Table 1, row '"):
        parse_paper_tables(_one_table(rows=[{**row, "source": "paper 000, Table 1, row 1"}]))
    with pytest.raises(ConfigError, match="Extra inputs are not permitted"):
        parse_paper_tables(_one_table(rows=[{**row, "valeus": [1, 2, 3, 4]}]))
    with pytest.raises(ConfigError, match="condition 'spring' is not one of the conditions"):
        parse_paper_tables(_one_table(rows=[{**row, "condition": "spring"}]))
    with pytest.raises(ConfigError, match="column metric 'rmse' is not one of the metrics"):
        parse_paper_tables(_one_table(columns=[{"metric": "rmse"}]))
    with pytest.raises(ConfigError, match="unknown metric_protocol 'glfcr'"):
        parse_paper_tables(_one_table(metric_protocol="glfcr"))
    doubled = _one_table()
    doubled["tables"] = doubled["tables"] * 2
    with pytest.raises(ConfigError, match="appears twice"):
        parse_paper_tables(doubled)
    with pytest.raises(ConfigError, match="schema_version must be 1"):
        parse_paper_tables({**good, "schema_version": 2})
    with pytest.raises(ConfigError, match="unknown top-level keys"):
        parse_paper_tables({**good, "extra": 1})
