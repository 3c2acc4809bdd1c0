"""`cloudfree models export NAME --weights DIR --format onnx OUT`: onnxruntime equals PyTorch on
random inputs at two sizes, the metadata travels with the file, and what cannot be exported is
refused without a file. Skipped when the optional packages (`cloudfree[onnx]`) are absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.errors import ConfigError
from cloudfree.models import create_model, get_model_info, save_pretrained
from cloudfree.models.onnx_export import export_onnx

pytest.importorskip("onnx", reason="optional package onnx (cloudfree[onnx]) not installed")
pytest.importorskip("onnxscript", reason="optional package onnxscript not installed")
ort = pytest.importorskip("onnxruntime", reason="optional package onnxruntime not installed")

#: compact settings of the exportable families (the export itself is what is tested)
EXPORTABLE = {
    "dsen2cr": {"width": 16, "num_blocks": 2},
    "glf_cr": {"width": 16, "num_blocks": 1, "layers_per_block": 1, "growth": 8},
    "sar_opt_cgan": {"ngf": 8, "num_downs": 5},
}


@pytest.mark.parametrize("name", sorted(EXPORTABLE))
def test_onnxruntime_equals_torch_at_two_sizes(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **EXPORTABLE[name]).eval()
    weights = tmp_path / "weights"
    save_pretrained(model, weights)
    out = tmp_path / f"{name}.onnx"
    args = ["models", "export", name, str(out), "--weights", str(weights), "--format", "onnx"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"{name} exported to onnx" in result.output

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["cloudfree.name"] == name
    assert meta["cloudfree.protocol"] == get_model_info(name).protocol
    assert len(json.loads(meta["cloudfree.bands"])) == model.cloudfree_spec.inputs.optical_channels

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    spec = model.cloudfree_spec.inputs
    gen = torch.Generator().manual_seed(1)
    for batch, size in ((1, 64), (2, 96)):  # batch, height and width are all dynamic
        optical = torch.rand(batch, spec.optical_channels, size, size, generator=gen)
        sar = torch.rand(batch, spec.sar_channels, size, size, generator=gen)
        with torch.no_grad():
            want = model(optical, sar)
        got = session.run(None, {"optical": optical.numpy(), "sar": sar.numpy()})[0]
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=0)

    again = CliRunner().invoke(main, args)  # an existing file is never replaced silently
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_a_network_torch_export_cannot_trace_is_refused_without_a_file(tmp_path: Path) -> None:
    # it returns a ModelOutput (mean and variance), which torch.export cannot take as an output
    model = create_model("uncrtaints_mono")
    out = tmp_path / "uncrtaints_mono.onnx"
    with pytest.raises(ConfigError, match="uncrtaints_mono cannot be exported to ONNX here"):
        export_onnx(model, out, name="uncrtaints_mono")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary
    assert model.training  # the caller's mode is restored


def test_temporal_networks_and_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="temporal networks is not supported yet"):
        export_onnx(create_model("utae_cr"), tmp_path / "u.onnx", name="utae_cr")
    with pytest.raises(ConfigError, match="size must be >= 16"):
        export_onnx(create_model("dsen2cr", width=8, num_blocks=1), tmp_path / "d.onnx", size=8)
    assert list(tmp_path.iterdir()) == []
