"""Official checkpoints through the generic loader, the converter CLI, and the key manifests."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from cloudfree.cli import main
from cloudfree.errors import InputFileError
from cloudfree.models import (
    create_model,
    get_model_info,
    load_official_checkpoint,
    load_pretrained,
    read_official_state_dict,
)

CASES = ["glf_cr", "glf_cr_resize", "carf", "dsen2cr"]
#: parity cases that exercise a registered model under another case name
MODEL_OF_CASE = {"glf_cr_resize": "glf_cr"}


def _case(shared_path, name):
    d = shared_path(f"parity/{name}/case.json").parent
    case = json.loads((d / "case.json").read_text())
    case["model"] = MODEL_OF_CASE.get(case["name"], case["name"])
    return d, case


def _run(model, io):
    with torch.no_grad():
        return model(optical=io["input.cloudy"], sar=io["input.sar"])


@pytest.mark.parametrize("case_name", CASES)
def test_parity_through_load_official_checkpoint(shared_path, case_name):
    d, case = _case(shared_path, case_name)
    model = load_official_checkpoint(case["model"], d / case["checkpoint"], **case["kwargs"])
    assert not model.training
    io = load_file(str(d / "io.safetensors"))
    torch.testing.assert_close(_run(model, io), io["output.pred"], **case["tolerance"])


@pytest.mark.parametrize("case_name", CASES)
def test_full_size_key_manifest_is_covered(shared_path, case_name):
    d, case = _case(shared_path, case_name)
    manifest = json.loads((d / "keys_full.json").read_text())
    fake = {k: torch.zeros(shape) for k, shape in manifest.items()}
    converter = get_model_info(case["model"]).official_converter
    state = converter(fake)
    model = create_model(case["model"])  # the full-size default
    model.load_state_dict(state, strict=True)  # every key mapped, every shape right


def test_convert_cli_round_trip(shared_path, tmp_path):
    d, case = _case(shared_path, "carf")
    args = [f"--arg={k}={v}" for k, v in case["kwargs"].items()]
    out = tmp_path / "carf_converted"
    result = CliRunner().invoke(
        main, ["models", "convert", "carf", str(d / case["checkpoint"]), str(out), *args]
    )
    assert result.exit_code == 0, result.output
    model = load_pretrained(out)
    io = load_file(str(d / "io.safetensors"))
    torch.testing.assert_close(_run(model, io), io["output.pred"], **case["tolerance"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["name"] == "carf" and cfg["protocol"] == "glf_cr"
    assert cfg["converted_from"] == "checkpoint.pth"


def test_checkpoint_of_another_model_is_a_clear_error(shared_path, tmp_path):
    d, case = _case(shared_path, "dsen2cr")
    with pytest.raises(InputFileError, match="not an official glf_cr checkpoint"):
        load_official_checkpoint("glf_cr", d / case["checkpoint"])
    result = CliRunner().invoke(
        main, ["models", "convert", "glf_cr", str(d / case["checkpoint"]), str(tmp_path / "x")]
    )
    assert result.exit_code == 1 and "not an official glf_cr checkpoint" in result.output
    assert not (tmp_path / "x").exists()


def test_wrong_kwargs_are_a_clear_error(shared_path):
    d, case = _case(shared_path, "dsen2cr")
    with pytest.raises(InputFileError, match="do not fit dsen2cr"):
        load_official_checkpoint("dsen2cr", d / case["checkpoint"], width=64, num_blocks=3)


def test_unreadable_and_missing_checkpoint(tmp_path):
    with pytest.raises(InputFileError, match="checkpoint file not found"):
        read_official_state_dict(tmp_path / "none.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(InputFileError, match="not a readable PyTorch checkpoint"):
        load_official_checkpoint("dsen2cr", bad)


def test_wrappers_and_prefixes_are_removed(tmp_path):
    sd = {"module.net_G.head.weight": torch.ones(1)}
    for wrapped in ({"network": sd}, {"model_state_dict": sd, "epoch": 3}, sd):
        torch.save(wrapped, tmp_path / "c.pth")
        assert list(read_official_state_dict(tmp_path / "c.pth")) == ["head.weight"]
    torch.save({"epoch": 1}, tmp_path / "d.pth")
    with pytest.raises(InputFileError, match="no state dict found"):
        read_official_state_dict(tmp_path / "d.pth")


def test_models_list_cli():
    result = CliRunner().invoke(main, ["models", "list", "dsen2cr*"])
    assert result.exit_code == 0, result.output
    assert "18,947,341" in result.output and "dsen2cr" in result.output
    assert "Meraner" in result.output
