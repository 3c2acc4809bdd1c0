"""Every parity case through one generic loader (:mod:`parity`): the fixture files are intact,
and every model case whose model is registered matches the official outputs through
``load_official_checkpoint`` + ``run_model``.

Cases of models not implemented yet are skipped with that reason; blocks, metrics and cloud
masks are compared by their own tests (``test_metrics.py``, ``test_cloudmask.py``, the family
tests). The specific parity tests (``test_glf_cr.py``, ``test_dsen2cr.py``,
``test_official_checkpoints.py``) stay as they are.
"""

from __future__ import annotations

import json

import pytest
import torch

from cloudfree.models import get_model_info, list_models, load_official_checkpoint, run_model
from conftest import find_shared_dir
from parity import case_names, file_sha256, load_case

#: placeholder parameter when the parity folder is absent (shared_dir / shared_path skip)
_ABSENT = ["<no shared parity data>"]
CASES = case_names(find_shared_dir()) or _ABSENT
MODEL_CASES = case_names(find_shared_dir(), kind="model") or _ABSENT


@pytest.mark.parametrize("case_name", CASES)
def test_case_files_match_the_index_and_declarations(shared_dir, shared_path, case_name):
    """The files have the index's size and sha256, ``io.safetensors`` holds exactly the
    declared inputs and outputs with their shapes, and a checkpoint loads with
    ``weights_only=True``."""
    shared_path(f"parity/{case_name}/case.json")  # skips (or fails, in CI) when missing
    index = json.loads(shared_path("parity/index.json").read_text())["cases"][case_name]
    case = load_case(shared_dir, case_name)
    assert case.kind == index["kind"]
    for file_name, entry in index["files"].items():
        path = case.directory / file_name
        assert path.stat().st_size == entry["bytes"], file_name
        assert file_sha256(path) == entry["sha256"], file_name
    declared = {f"input.{k}": v for k, v in case.meta["inputs"].items()}
    declared |= {f"output.{k}": v for k, v in case.meta["outputs"].items()}
    assert {k: list(v.shape) for k, v in case.tensors.items()} == declared
    if case.checkpoint_path is not None:
        assert case.checkpoint()  # plain tensors and containers only


def test_every_indexed_case_has_a_directory(shared_dir, shared_path):
    index = json.loads(shared_path("parity/index.json").read_text())["cases"]
    assert sorted(index) == case_names(shared_dir)
    assert set(MODEL_CASES) == {n for n, c in index.items() if c["kind"] == "model"}


@pytest.mark.parametrize("case_name", MODEL_CASES)
def test_model_case_through_run_model(shared_dir, shared_path, case_name):
    """Blocks, metrics and cloud masks are compared by their own tests."""
    shared_path(f"parity/{case_name}/case.json")
    case = load_case(shared_dir, case_name)
    if (
        case.model_name in list_models(include_blocks=True)
        and get_model_info(case.model_name).is_block
    ):
        pytest.skip(f"{case.model_name} is a building block, called as the official module: "
                    "compared by its family test (test_utae.py)")  # fmt: skip
    if case.model_name not in list_models(include_standins=True):
        pytest.skip(f"model {case.model_name} not implemented yet")
    model = load_official_checkpoint(case.model_name, case.checkpoint_path, **case.kwargs)
    assert not model.training
    with torch.no_grad():
        out = run_model(model, case.model_batch(model))
    compared = case.compare(out)
    assert "pred" in compared or "mean" in compared, f"{case_name}: no prediction compared"
