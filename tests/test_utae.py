"""L-TAE and U-TAE: parity with utae-paps (the shared fixtures), padded dates, registry."""

from __future__ import annotations

import pytest
import torch

from cloudfree.models import create_model, get_model_info, list_models, load_official_checkpoint
from cloudfree.models.layers.ltae import LTAE2d, PositionalEncoder
from cloudfree.models.utae import UTAE
from parity import load_case


def _tol(case, name: str) -> dict:
    per = case.meta.get("tolerance_per_output", {}).get(name, case.meta["tolerance"])
    return {"atol": per["atol"], "rtol": per["rtol"]}


@pytest.mark.parametrize("name", ["ltae2d", "utae"])
def test_parity_with_the_official_outputs(shared_dir, shared_path, name: str) -> None:
    shared_path(f"parity/{name}/case.json")
    case = load_case(shared_dir, name)
    model = load_official_checkpoint(name, case.checkpoint_path, **case.kwargs)
    assert not model.training
    t = case.tensors
    with torch.no_grad():
        if name == "ltae2d":
            out, attn = model(t["input.x"], batch_positions=t["input.batch_positions"],
                              pad_mask=t["input.pad_mask"])  # fmt: skip
        else:
            out = model(t["input.x"], batch_positions=t["input.batch_positions"])
            out2, attn = model(t["input.x"], batch_positions=t["input.batch_positions"],
                               return_att=True)  # fmt: skip
            torch.testing.assert_close(out2, out, rtol=0, atol=0)
    torch.testing.assert_close(out, t["output.out"], **_tol(case, "out"))
    torch.testing.assert_close(attn, t["output.attn"], **_tol(case, "attn"))


def test_utae_parameter_count_and_registry() -> None:
    model = create_model("utae")  # input_dim 15 as UnCRtainTS's U-TAE baseline
    assert sum(p.numel() for p in model.parameters()) == 1_090_140
    assert "utae" not in list_models() and "utae" in list_models(include_blocks=True)
    assert get_model_info("ltae2d").is_block


def test_padded_dates_change_nothing_but_are_written_as_zero() -> None:
    """A zero-padded date: the result equals the one without it (attention weight 0, shared
    blocks not run on it), except through the L-TAE's input GroupNorm, which sees it."""
    torch.manual_seed(0)
    model = UTAE(input_dim=4, encoder_widths=[8, 8, 16], decoder_widths=[8, 8, 16],
                 out_conv=[8, 3], n_head=4, d_model=16).eval()  # fmt: skip
    x = torch.rand(1, 3, 4, 32, 32) + 0.1
    pos = torch.tensor([[0.0, 10.0, 20.0]])
    padded = torch.cat([x, torch.zeros(1, 1, 4, 32, 32)], dim=1)
    pos_p = torch.tensor([[0.0, 10.0, 20.0, 0.0]])
    with torch.no_grad():
        _, attn = model(padded, batch_positions=pos_p, return_att=True)
        assert torch.allclose(attn[:, :, 3], torch.zeros_like(attn[:, :, 3]), atol=1e-6)
        frames = model.in_conv(padded)
        assert (frames[:, 3] == 0).all() and (frames[:, :3] != 0).any()
        # without padding the GroupNorm statistics differ, so outputs are close, not equal
        a = model(x, batch_positions=pos)
        b = model(padded, batch_positions=pos_p)
    assert a.shape == b.shape == (1, 3, 32, 32)


def test_positional_encoder_is_the_sinusoid_table() -> None:
    enc = PositionalEncoder(4, T=1000, repeat=2)
    out = enc(torch.tensor([[0.0, 100.0]]))
    assert out.shape == (1, 2, 8)
    d = torch.tensor([1.0, 1.0, 1000**0.5, 1000**0.5])
    want = torch.stack([torch.sin(100 / d[0]), torch.cos(100 / d[1]),
                        torch.sin(100 / d[2]), torch.cos(100 / d[3])])  # fmt: skip
    torch.testing.assert_close(out[0, 1, :4], want)
    torch.testing.assert_close(out[0, 1, 4:], want)
    with pytest.raises(ValueError, match="mlp\\[0\\] must equal d_model"):
        LTAE2d(in_channels=16, d_model=32, mlp=[16, 16], n_head=4)
