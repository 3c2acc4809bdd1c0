"""UnCRtainTS: parameter counts, official keys, inputs, outputs (parity: test_parity_generic)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cloudfree.models import create_model, run_model, spec_of
from cloudfree.models.layers.pooling import adaptive_max_pool2d_gather
from cloudfree.models.uncrtaints import _official_keys


@pytest.mark.parametrize(
    ("name", "kwargs", "count"),
    [
        ("uncrtaints", {}, 570_010),
        ("uncrtaints_mono", {}, 520_218),
        ("uncrtaints", {"covmode": None}, 568_333),
    ],
)
def test_parameter_counts_of_the_readme_configuration(name, kwargs, count) -> None:
    model = create_model(name, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == count


def test_old_official_key_names_are_renamed() -> None:
    old = ("in_block1.conv.norm.weight", "out_block3.conv.fn.0.weight",
           "out_block.1.conv.norm.bias", "out_conv.conv.conv.0.bias")  # fmt: skip
    assert set(_official_keys({k: torch.ones(1) for k in old})) == {
        "in_block.0.conv.norm.weight",
        "out_block.2.conv.fn.0.weight",
        "out_block.1.conv.norm.bias",
        "out_conv.conv.conv.0.bias",
    }


@pytest.mark.parametrize("size", [(16, 16), (32, 32), (33, 47), (96, 96), (100, 70), (255, 64)])
def test_the_traceable_adaptive_max_pool_equals_torchs(size) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, *size)
    want = F.adaptive_max_pool2d(x, (32, 32))
    assert torch.equal(adaptive_max_pool2d_gather(x, (32, 32)), want)
    assert torch.equal(adaptive_max_pool2d_gather(x, (7, 3)), F.adaptive_max_pool2d(x, (7, 3)))


def _small(**kw):
    torch.manual_seed(0)
    return create_model(
        "uncrtaints", width=16, num_heads=4, d_model=32, decoder_blocks=1, **kw
    ).eval()


def test_outputs_mean_in_0_1_and_positive_variance_any_size() -> None:
    model = _small()
    assert spec_of(model).outputs.has_variance and "uncertainty" in spec_of(model).tasks
    for h, w in ((17, 23), (40, 40), (64, 48)):
        opt, sar = torch.rand(2, 3, 13, h, w), torch.rand(2, 3, 2, h, w)
        with torch.no_grad():
            out = run_model(model, optical=opt, sar=sar, dates=torch.rand(2, 3) * 100)
        assert out.pred.shape == out.variance.shape == (2, 13, h, w)
        assert (out.pred >= 0).all() and (out.pred <= 1).all() and (out.variance > 0).all()


def test_zero_frames_are_padding_without_a_time_mask_as_officially() -> None:
    """The official pad_mask (frames that are all 0) and an explicit time_mask agree."""
    model = _small()
    opt, sar = torch.rand(1, 3, 13, 32, 32), torch.rand(1, 3, 2, 32, 32)
    opt[:, 2] = 0
    sar[:, 2] = 0
    dates = torch.tensor([[10.0, 20.0, 0.0]])
    with torch.no_grad():
        a = model(opt, sar, dates)
        b = model(opt, sar, dates, torch.tensor([[True, True, False]]))
    torch.testing.assert_close(a.pred, b.pred, rtol=0, atol=0)


def test_the_mono_model_takes_one_date() -> None:
    torch.manual_seed(0)
    mono = create_model("uncrtaints_mono", width=16, num_heads=4, d_model=32, decoder_blocks=1)
    assert not spec_of(mono).inputs.temporal
    with torch.no_grad(), pytest.raises(ValueError, match="takes one date"):
        mono(torch.rand(1, 2, 13, 8, 8), torch.rand(1, 2, 2, 8, 8))


@pytest.mark.parametrize("case_name", ["uncrtaints", "uncrtaints_mono"])
def test_mgnll_reproduces_the_official_loss(shared_dir, shared_path, case_name) -> None:
    """The official loss (log-det summed over the batch: the mono case has B = 2) with
    official_batch_logdet=True; the per-sample default differs by (B - 1)/2 * mean log-det."""
    from cloudfree.losses import build_loss
    from cloudfree.models import ModelOutput
    from parity import load_case

    shared_path(f"parity/{case_name}/case.json")
    case = load_case(shared_dir, case_name)
    t = case.tensors
    out = ModelOutput(pred=t["output.mean"][:, 0], variance=t["output.variance"][:, 0])
    batch = {"target": t["input.target"][:, 0]}
    tol = case.meta["tolerance_per_output"]["mgnll_loss"]

    def value(loss) -> torch.Tensor:
        res = loss(out, batch)
        return res if isinstance(res, torch.Tensor) else res[0]

    official = value(build_loss("mgnll", scale=10.0, official_batch_logdet=True))
    torch.testing.assert_close(official, t["output.mgnll_loss"], atol=tol["atol"], rtol=tol["rtol"])
    per_sample = value(build_loss("mgnll", scale=10.0))
    b = out.pred.shape[0]
    logdet = torch.log(out.variance * 100).sum(dim=1).mean()
    torch.testing.assert_close(official - per_sample, 0.5 * (b - 1) * logdet, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------------------- predict
def test_predict_writes_the_standard_deviation_in_reflectance(tmp_path) -> None:
    """One tile covering the scene: the std file is sqrt(variance) of the direct forward."""
    import numpy as np

    from cloudfree.io import read_raster
    from cloudfree.models import save_pretrained
    from cloudfree.normalization import normalize_optical, normalize_sar
    from cloudfree.predict import PredictOptions, load_model, predict_scene
    from cloudfree.synth import write_scene_pair

    scene = write_scene_pair(tmp_path / "s", height=40, width=48, seed=2, cloud_cover=0.5)
    torch.manual_seed(0)
    mono = create_model("uncrtaints_mono", width=16, num_heads=4, d_model=32, decoder_blocks=1)
    weights = save_pretrained(mono, tmp_path / "w")
    loaded = load_model(weights)
    opts = PredictOptions(tile_size=64, overlap=0, progress=False)
    r = predict_scene(loaded, scene.cloudy, scene.s1, tmp_path / "o.tif", opts)
    assert r.std_path == tmp_path / "o_std.tif"
    std = read_raster(r.std_path)
    assert std.array.dtype == np.float32 and std.descriptions[0] == "B01_std"
    opt = normalize_optical(read_raster(scene.cloudy).array.astype(np.float32), "uncrtaints")
    sar = normalize_sar(read_raster(scene.s1).array, "uncrtaints", bands=("VV", "VH"))
    with torch.no_grad():
        out = run_model(loaded.model, optical=torch.from_numpy(opt.array)[None],
                        sar=torch.from_numpy(sar.array)[None])  # fmt: skip
    np.testing.assert_allclose(std.array, out.variance[0].sqrt().numpy(), rtol=1e-5, atol=1e-7)
    # the std file follows the output rules: kept without --overwrite, skipped on request
    (tmp_path / "p_std.tif").write_bytes(b"mine")
    from cloudfree.errors import InputFileError

    with pytest.raises(InputFileError, match="--overwrite"):
        predict_scene(loaded, scene.cloudy, scene.s1, tmp_path / "p.tif", opts)
    assert (tmp_path / "p_std.tif").read_bytes() == b"mine" and not (tmp_path / "p.tif").exists()
    no_std = PredictOptions(tile_size=64, overlap=0, progress=False, write_std=False)
    r2 = predict_scene(loaded, scene.cloudy, scene.s1, tmp_path / "q.tif", no_std)
    assert r2.std_path is None and not (tmp_path / "q_std.tif").exists()


def test_time_series_predict_with_uncrtaints_writes_its_std(tmp_path) -> None:
    from cloudfree.io import read_raster
    from cloudfree.models import save_pretrained
    from cloudfree.predict import PredictOptions, load_model
    from cloudfree.predict.timeseries import dated_inputs, predict_time_series
    from cloudfree.synth.temporal_writers import write_time_series_scene

    recs = write_time_series_scene(tmp_path / "ts", height=40, width=40, n_dates=3, seed=1)
    items, _ = dated_inputs([r["s2"] for r in recs], [r["s1"] for r in recs])
    weights = save_pretrained(_small(), tmp_path / "w")
    r = predict_time_series(load_model(weights, temporal=True), items, tmp_path / "o.tif",
                            PredictOptions(tile_size=64, progress=False))  # fmt: skip
    std = read_raster(r.std_path).array
    assert std.shape == (13, 40, 40) and (std > 0).all()


def test_the_mono_recipe_trains_with_mgnll(tmp_path) -> None:
    from cloudfree.synth import write_sen12mscr_synthetic
    from cloudfree.train import build_config, load_recipe, train

    root = tmp_path / "data"
    write_sen12mscr_synthetic(root, patches=8, size=32, seed=0)
    small = {"width": 16, "num_heads": 4, "d_model": 32, "decoder_blocks": 1}
    cfg = build_config(
        load_recipe("uncrtaints_mono"),
        {"model.kwargs": small, "trainer.max_steps": 2, "trainer.val_check_interval": 2,
         "trainer.accelerator": "cpu", "data.num_workers": 0, "trainer.enable_progress_bar": False},
        data_root=root,
        out=tmp_path / "run",
    )  # fmt: skip
    assert cfg.loss.name == "mgnll" and cfg.loss.kwargs["official_batch_logdet"] is True
    res = train(cfg)
    assert res.global_step == 2 and "val/nll" in res.val_metrics
    model = load_pretrained_model(res.final_weights)
    assert spec_of(model).outputs.has_variance


def load_pretrained_model(path):
    from cloudfree.models import load_pretrained

    return load_pretrained(path)
