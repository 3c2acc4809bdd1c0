"""`cloudfree models list`: the contract column and the stand-ins behind ``--all``."""

from __future__ import annotations

from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.models import get_model_info


def _rows(output: str) -> dict[str, str]:
    lines = output.strip().splitlines()
    assert lines[0].split()[:5] == ["name", "parameters", "protocol", "bands", "contract"]
    return {line.split()[0]: line for line in lines[1:]}


def test_models_list_shows_each_contract():
    result = CliRunner().invoke(main, ["models", "list", "dsen2cr*"])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert sorted(rows) == ["dsen2cr", "dsen2cr_no_sar"]
    assert "mono-temporal, SAR; regression" in rows["dsen2cr"]
    assert "mono-temporal, no SAR; regression" in rows["dsen2cr_no_sar"]
    assert "18,947,341" in rows["dsen2cr"]


def test_models_list_hides_stand_ins_unless_all():
    plain = CliRunner().invoke(main, ["models", "list", "standin_*"])
    assert plain.exit_code == 1
    assert "no registered model matches 'standin_*' (only stand-in networks do: add --all)" in (
        plain.output
    )
    result = CliRunner().invoke(main, ["models", "list", "--all", "standin_*"])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert sorted(rows) == [
        "standin_generator",
        "standin_multistage",
        "standin_temporal",
        "standin_uncertainty",
    ]
    for name, row in rows.items():
        assert get_model_info(name).resolve_spec().describe() in row
    assert "temporal (T <= 8), SAR, dates; regression" in rows["standin_temporal"]
    assert "mono-temporal, SAR, variance; uncertainty" in rows["standin_uncertainty"]
    assert "1 stage; multi_stage+regression" in rows["standin_multistage"]
    assert "adversarial+regression" in rows["standin_generator"]


def test_models_list_unknown_pattern():
    result = CliRunner().invoke(main, ["models", "list", "--all", "nothing*"])
    assert result.exit_code == 1
    assert "no registered model matches 'nothing*'" in result.output
    assert "--all" not in result.output
