"""Training multi-temporal models on time series (SEN12MS-CR-TS layout, simulator data)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from cloudfree.errors import ConfigError
from cloudfree.synth.temporal_writers import write_sen12mscr_ts_synthetic
from cloudfree.train import build_config, load_recipe, prepare_run, train
from cloudfree.train.datamodule import CloudRemovalDataModule, build_datasets

#: UnCRtainTS small enough for a CPU smoke run (4 heads of the tiny L-TAE, one decoder block)
TINY_UNCRTAINTS = {"width": 16, "num_heads": 4, "d_model": 16, "d_k": 4, "decoder_blocks": 1}


pytestmark = pytest.mark.usefixtures("quiet_lightning", "one_torch_thread")


@pytest.fixture(scope="module")
def ts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train_ts") / "sen12mscr_ts"
    write_sen12mscr_ts_synthetic(root, patches=8, size=32, seed=3, dates=6, change_rate=1.0)
    return root


def _config(root: Path, out: Path | None, **overrides: Any):
    base: dict[str, Any] = {
        "model.kwargs": TINY_UNCRTAINTS,
        "data.batch_size": 2,
        "data.num_workers": 0,
        "trainer.max_steps": 4,
        "trainer.accelerator": "cpu",
        "trainer.log_every_n_steps": 1,
        "trainer.val_check_interval": 2,
        "trainer.checkpoint_every_n_steps": 2,
        "trainer.enable_progress_bar": False,
    }
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return build_config(load_recipe("uncrtaints"), base, data_root=root, out=out)


def test_time_series_batches_follow_the_samplers(ts_root: Path) -> None:
    cfg = _config(ts_root, None)
    train_ds, val_ds = build_datasets(cfg)
    assert train_ds.base.sampler == "random" and val_ds.base.sampler == "fixed"
    assert train_ds.base.n_input_t == 3 and train_ds.base.seed == cfg.seed
    dm = CloudRemovalDataModule(cfg, train_dataset=train_ds, val_dataset=val_ds)
    batch = next(iter(dm.train_dataloader()))
    assert batch["optical"].shape == (2, 3, 13, 32, 32)
    assert batch["sar"].shape == (2, 3, 2, 32, 32)
    assert batch["target"].shape == (2, 13, 32, 32)
    assert batch["dates"].shape == (2, 3) and batch["time_mask"].all()
    # normalised with the model's protocol (uncrtaints: S2 / 10000, SAR [-25, 0] -> [0, 1])
    assert 0.0 <= float(batch["sar"].min()) and float(batch["sar"].max()) <= 1.0
    assert float(batch["optical"].max()) <= 1.0
    # the random sampler's draws are a function of (seed, epoch, index), in any order
    a = train_ds[(1, 0)]
    train_ds[(0, 5)]
    b = train_ds[(1, 0)]
    assert torch.equal(a["optical"], b["optical"]) and a["target_idx"] == b["target_idx"]
    draws = {int(train_ds[(i, e)]["target_idx"]) for i in range(len(train_ds)) for e in range(4)}
    assert len(draws) > 1  # different epochs draw other target dates
    # validation (fixed sampler) is the same whatever the epoch
    v0 = val_ds[0]
    assert torch.equal(v0["optical"], val_ds[0]["optical"])


def test_uncrtaints_trains_on_time_series_and_exports(ts_root: Path, tmp_path: Path) -> None:
    from cloudfree.models import load_model

    result = train(_config(ts_root, tmp_path / "run"))
    assert result.global_step == 4
    with open(result.run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 4 and all(map(torch.isfinite, torch.tensor(losses)))
    val = [r for r in rows if r.get("val/psnr")]
    assert val and all(float(r["val/psnr"]) > 0 for r in val)
    assert "val/nll" in result.val_metrics  # the uncertainty task's extra validation metric
    weights = load_file(str(result.final_weights / "model.safetensors"))
    model = load_model(result.final_weights).model
    assert set(model.state_dict()) == set(weights)
    # the exported model restores a series through the contract (mean and variance)
    _, val_ds = build_datasets(result.module.config)
    sample = val_ds[0]
    from cloudfree.models import run_model

    out = run_model(
        model,
        optical=sample["optical"][None],
        sar=sample["sar"][None],
        dates=sample["dates"][None],
    )
    assert out.pred.shape == (1, 13, 32, 32) and out.variance is not None
    assert bool((out.variance > 0).all())


def test_l1_trains_the_mean_of_a_time_series_model(ts_root: Path, tmp_path: Path) -> None:
    cfg = _config(
        ts_root,
        tmp_path / "run",
        model__kwargs={**TINY_UNCRTAINTS, "covmode": None},
        loss__name="l1",
        loss__kwargs={},
        trainer__max_steps=2,
    )
    assert train(cfg).global_step == 2


def test_unknown_dataset_option_is_named(ts_root: Path, tmp_path: Path) -> None:
    cfg = _config(ts_root, tmp_path / "run", data__train_options={"samplr": "random"})
    with pytest.raises(ConfigError, match="samplr"):
        prepare_run(cfg)


def test_mono_model_trains_on_the_last_date_of_each_series(ts_root: Path, tmp_path) -> None:
    from cloudfree.data import SEN12MSCRTS, single_date_sample

    cfg = _config(
        ts_root,
        tmp_path / "mono",
        model__name="uncrtaints_mono",
        model__kwargs={k: v for k, v in TINY_UNCRTAINTS.items() if k != "num_heads"},
        trainer__max_steps=2,
    )
    train_ds, val_ds = build_datasets(cfg)
    sample = val_ds[0]
    assert sample["optical"].shape == (13, 32, 32) and "time_mask" not in sample
    series = SEN12MSCRTS(ts_root, "val", sampler="fixed", n_input_t=3)[0]
    raw = single_date_sample(series)
    assert torch.equal(raw["optical"], series["optical"][-1])
    assert torch.equal(raw["cloud_mask"], series["cloud_mask"])  # the region is the series'
    assert train(cfg).global_step == 2


def test_last_real_date_skips_padding() -> None:
    from cloudfree.data import last_real_date, single_date_sample

    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert last_real_date(mask, 3).tolist() == [1, 2]
    sample = {
        "optical": torch.arange(3.0)[:, None, None, None].expand(3, 2, 4, 4),
        "time_mask": torch.tensor([True, True, False]),
        "target": torch.zeros(2, 4, 4),
    }
    assert float(single_date_sample(sample)["optical"].mean()) == 1.0
    with pytest.raises(ConfigError, match="without any real date"):
        last_real_date(torch.zeros(1, 3, dtype=torch.bool), 3)
    with pytest.raises(ConfigError, match="needs a time-series sample"):
        single_date_sample({"optical": torch.zeros(2, 4, 4)})


def test_utae_cr_recipe_trains(ts_root: Path, tmp_path: Path) -> None:
    tiny = {"encoder_widths": [8, 16], "decoder_widths": [8, 16], "n_head": 4, "d_model": 16}
    overrides = {
        "model.kwargs": tiny,
        "data.batch_size": 2,
        "data.num_workers": 0,
        "trainer.max_steps": 2,
        "trainer.accelerator": "cpu",
        "trainer.val_check_interval": 2,
        "trainer.enable_progress_bar": False,
    }
    cfg = build_config(load_recipe("utae_cr"), overrides, data_root=ts_root, out=tmp_path / "u")
    assert cfg.loss.name == "l2" and cfg.data.train_options == {"sampler": "random"}
    result = train(cfg)
    assert result.global_step == 2 and result.val_metrics["val/psnr"] > 0
