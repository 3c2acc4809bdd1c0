"""Training engine: early errors, run directory, exported weights, resume, reproducibility.

Runs are tiny (DSen2-CR width 8 with one block, or GLF-CR width 16 with one block of two
layers, 16 px crops, a few steps) on a generated SEN12MS-CR-style dataset of 10 patches.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from cloudfree.cli import main
from cloudfree.errors import ConfigError, DatasetError
from cloudfree.models import create_model, load_pretrained, save_pretrained
from cloudfree.synth import write_sen12mscr_synthetic
from cloudfree.train import build_config, prepare_run, train
from cloudfree.train.config import TrainConfig
from train_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("quiet_lightning", "one_torch_thread")

TINY_GLF_CR = {
    "model.name": "glf_cr",
    "model.kwargs": {"width": 16, "num_blocks": 1, "layers_per_block": 2, "growth": 8},
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train_data") / "sen12mscr"
    records = write_sen12mscr_synthetic(root, patches=10, size=32, seed=0)
    assert {r["split"] for r in records} == {"train", "val", "test"}
    return root


def _weights(run: Path, which: str = "final") -> dict[str, torch.Tensor]:
    return load_file(str(run / "weights" / which / "model.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- early errors
def test_unknown_model_fails_before_anything(data_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(data_root, tmp_path / "run", model={"model.name": "glf_crr"})
    with pytest.raises(ConfigError, match="unknown model 'glf_crr'; registered models: .*glf_cr"):
        prepare_run(cfg)
    assert not (tmp_path / "run").exists()


def test_missing_data_root(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "nowhere", tmp_path / "run")
    with pytest.raises(ConfigError, match="data.root: .*nowhere does not exist"):
        prepare_run(cfg)


def test_unknown_loss_and_bad_loss_kwargs(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loss: unknown loss 'l3'"):
        prepare_run(tiny_config(data_root, tmp_path / "r", loss__name="l3"))
    with pytest.raises(ConfigError, match="loss: .*'gamma'"):
        prepare_run(tiny_config(data_root, tmp_path / "r", loss__kwargs={"gamma": 1}))


def test_bad_cloud_mask_method_and_metric_protocol(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.cloud_mask_method: unknown method 'fmask'"):
        prepare_run(tiny_config(data_root, tmp_path / "r", data__cloud_mask_method="fmask"))
    with pytest.raises(ConfigError, match="metrics.protocol"):
        prepare_run(tiny_config(data_root, tmp_path / "r", metrics__protocol="psnr_only"))


def test_empty_split_from_season_filter(data_root: Path, tmp_path: Path) -> None:
    manifest = json.loads((data_root / "synthetic_manifest.json").read_text())
    records = manifest["samples"]
    present = {r["season"] for r in records}
    absent = [s for s in ("spring", "summer", "fall", "winter") if not any(s in p for p in present)]
    if not absent:
        pytest.skip("the generated data covers every season")
    cfg = tiny_config(data_root, tmp_path / "r", data__seasons=[absent[0]])
    with pytest.raises(DatasetError, match="split is empty"):
        prepare_run(cfg)


def test_root_without_validation_roi(data_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "no_val"
    shutil.copytree(data_root, root)
    manifest = json.loads((root / "synthetic_manifest.json").read_text())
    records = manifest["samples"]
    for rec in records:
        if rec["split"] == "val":  # the whole triplet (a missing S1 alone is an error)
            for path in rec["paths"]["official"].values():
                (root / path).unlink()
    with pytest.raises(DatasetError, match="'val' split is empty"):
        prepare_run(tiny_config(root, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_validation_interval_longer_than_an_epoch_is_named(data_root: Path, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"trainer.val_check_interval: 999 steps is more than"):
        prepare_run(tiny_config(data_root, tmp_path / "r", trainer__val_check_interval=999))


def test_crop_larger_than_patches(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="training data: .*patch_size 64 is larger than"):
        prepare_run(tiny_config(data_root, tmp_path / "r", data__patch_size=64))
    with pytest.raises(ConfigError, match="validation data: crop_size 64"):
        prepare_run(tiny_config(data_root, tmp_path / "r", data__val_patch_size=64))


def test_band_count_must_match_model(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"data.bands: .* takes 13 optical channels but the band set has 3 .*in_optical=3",
    ):
        prepare_run(tiny_config(data_root, tmp_path / "r", data__bands="rgb"))
    cfg = tiny_config(
        data_root,
        tmp_path / "r",
        data__bands="rgb",
        model={"model.kwargs": {"width": 8, "num_blocks": 1, "in_optical": 3}},
    )
    assert prepare_run(cfg).model.in_optical == 3


def test_init_weights_of_another_model(data_root: Path, tmp_path: Path) -> None:
    other = save_pretrained(create_model("glf_cr", width=16, num_blocks=1), tmp_path / "glf")
    cfg = tiny_config(data_root, tmp_path / "r", model__init_weights=str(other))
    with pytest.raises(ConfigError, match="holds weights of model 'glf_cr', but model.name is"):
        prepare_run(cfg)


def test_init_weights_official_checkpoint_that_does_not_convert(
    data_root: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "net_CR.pth"
    torch.save({"network": create_model("glf_cr", width=16, num_blocks=1).state_dict()}, ckpt)
    cfg = tiny_config(data_root, tmp_path / "r", model__init_weights=str(ckpt))
    with pytest.raises(ConfigError, match="model.init_weights: .*not usable for model 'dsen2cr'"):
        prepare_run(cfg)


def test_init_weights_wraps_every_loader_error(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loader's ConfigError is wrapped with the path and model whatever its text says (the
    wrapping does not depend on the message; it used to pass through one starting with
    "model.init_weights" unwrapped)."""
    import cloudfree.models
    from cloudfree.train.run import load_init_weights

    def fails(*args: Any, **kwargs: Any) -> None:
        raise ConfigError("model.init_weights looks like ours but comes from the loader")

    monkeypatch.setattr(cloudfree.models, "load_official_checkpoint", fails)
    ckpt = tmp_path / "net.pth"
    ckpt.write_bytes(b"x")
    cfg = tiny_config(data_root, tmp_path / "r", model__init_weights=str(ckpt))
    with pytest.raises(
        ConfigError,
        match=r"model.init_weights: .*net\.pth is not usable for model 'dsen2cr': "
        "model.init_weights looks like ours",
    ):
        load_init_weights(create_model("dsen2cr", width=8, num_blocks=1), cfg)
    missing = tiny_config(data_root, tmp_path / "r", model__init_weights=str(tmp_path / "no"))
    with pytest.raises(ConfigError, match=r"model.init_weights: .*no does not exist"):
        load_init_weights(create_model("dsen2cr", width=8, num_blocks=1), missing)


def test_init_weights_with_other_kwargs(data_root: Path, tmp_path: Path) -> None:
    wide = save_pretrained(create_model("dsen2cr", width=16, num_blocks=1), tmp_path / "wide")
    cfg = tiny_config(data_root, tmp_path / "r", model__init_weights=str(wide))
    with pytest.raises(ConfigError, match="do not fit model 'dsen2cr'"):
        prepare_run(cfg)


def test_init_weights_loaded(data_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(123)
    source = create_model("dsen2cr", width=8, num_blocks=1)
    saved = save_pretrained(source, tmp_path / "src")
    prepared = prepare_run(tiny_config(data_root, tmp_path / "r", model__init_weights=str(saved)))
    state = prepared.model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in source.state_dict().items())


def test_cli_error_before_training_is_one_line(data_root: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main,
        [
            "train",
            "--recipe",
            "dsen2cr",
            "--data",
            str(data_root),
            "--out",
            str(tmp_path / "r"),
            "--set",
            "model.name=nope",
        ],
    )
    assert res.exit_code == 1
    assert res.output.startswith("Error: model.name: unknown model 'nope'")
    assert not (tmp_path / "r").exists()


def _cli_overrides(
    monkeypatch: pytest.MonkeyPatch, data_root: Path, tmp_path: Path, *args: str
) -> tuple[Any, TrainConfig | None]:
    """Invoke ``cloudfree train`` with ``args``; return the result and the config it built
    (prepare_run is replaced by a stub that records the config and stops before training)."""
    import cloudfree.train.run

    seen: list[TrainConfig] = []

    def stop(config: TrainConfig, resume: bool = False) -> None:
        seen.append(config)
        raise ConfigError("stopped before training")

    monkeypatch.setattr(cloudfree.train.run, "prepare_run", stop)
    base = ["train", "--recipe", "dsen2cr", "--data", str(data_root), "--out", str(tmp_path)]
    res = CliRunner().invoke(main, [*base, *args])
    return res, (seen[0] if seen else None)


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "optimizer.lr=1e-3", "model.kwargs.width=4", "data.batch_size=3"],
        [
            "--set",
            "optimizer.lr=1e-3",
            "--set",
            "model.kwargs.width=4",
            "--set",
            "data.batch_size=3",
        ],
        ["--set", "optimizer.lr=1e-3", "model.kwargs.width=4", "--set", "data.batch_size=3"],
    ],
)
def test_cli_several_pairs_after_one_set(
    monkeypatch: pytest.MonkeyPatch, data_root: Path, tmp_path: Path, args: list[str]
) -> None:
    res, cfg = _cli_overrides(monkeypatch, data_root, tmp_path, *args)
    assert res.output.startswith("Error: stopped before training"), res.output
    assert cfg is not None
    assert (cfg.optimizer.lr, cfg.model.kwargs["width"], cfg.data.batch_size) == (1e-3, 4, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "optimizer.lr=1e-3", "width"], "unexpected argument 'width': the arguments"),
        (["--set", "width", "optimizer.lr=1e-3"], "expected key=value, got 'width'"),
        (["--set", "a.b=1", "a.b=2"], r"a\.b given more than once"),
    ],
)
def test_cli_set_arguments_without_equals_are_named(
    monkeypatch: pytest.MonkeyPatch, data_root: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    res, cfg = _cli_overrides(monkeypatch, data_root, tmp_path, *args)
    assert res.exit_code == 1 and cfg is None
    assert re.match(rf"Error: {message}", res.output), res.output


# --------------------------------------------------------------------------- a short run
@pytest.fixture(scope="module")
def short_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("runs") / "short"
    return train(tiny_config(data_root, out, model=TINY_GLF_CR))


def test_run_directory_layout(short_run: Any) -> None:
    run = short_run.run_dir
    for rel in (
        "config.yaml",
        "metrics.csv",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "weights/best/model.safetensors",
        "weights/best/config.json",
        "weights/final/model.safetensors",
        "weights/final/config.json",
    ):
        assert (run / rel).is_file(), rel
    assert short_run.global_step == 5
    assert short_run.best_weights == run / "weights" / "best"
    assert short_run.final_weights == run / "weights" / "final"
    # the loader reads the layout the trainer wrote (one RunLayout for both)
    from cloudfree.models import RunLayout, load_model, resolve_weights_dir

    layout = RunLayout(run)
    assert layout.config_file.is_file() and layout.last_checkpoint.is_file()
    assert resolve_weights_dir(run) == layout.best_weights
    assert load_model(run).weights_path == layout.best_weights


def test_resolved_config_written(short_run: Any, data_root: Path) -> None:
    saved = yaml.safe_load((short_run.run_dir / "config.yaml").read_text())
    # the dsen2cr recipe leaves data.protocol to the model: glf_cr replaced dsen2cr, so the
    # run normalises as GLF-CR does (an explicit data.protocol would win)
    assert saved["data"]["protocol"] == "glf_cr"
    assert saved["data"]["bands"] == "all"
    assert saved["data"]["root"] == str(data_root.resolve())
    assert saved["model"]["name"] == "glf_cr" and saved["model"]["kwargs"]["width"] == 16
    assert saved["out"] == str(short_run.run_dir)
    assert build_config(saved).trainer.max_steps == 5


def test_exported_weights_reproduce_the_module(short_run: Any, data_root: Path) -> None:
    from cloudfree.data import SEN12MSCR

    ds = SEN12MSCR(data_root, split="val", protocol="glf_cr")
    sample = ds[0]
    net = short_run.module.model.eval()
    loaded = load_pretrained(short_run.final_weights)
    with torch.no_grad():
        expected = net(optical=sample["optical"][None], sar=sample["sar"][None])
        got = loaded(optical=sample["optical"][None], sar=sample["sar"][None])
    assert torch.equal(expected, got)
    cfg = json.loads((short_run.final_weights / "config.json").read_text())
    assert cfg["name"] == "glf_cr" and cfg["kwargs"]["width"] == 16
    assert cfg["protocol"] == "glf_cr" and cfg["bands"] == "all"
    assert cfg["training"]["selection"] == "final" and cfg["training"]["global_step"] == 5
    assert cfg["training"]["config"]["optimizer"]["name"] == "nadam"
    best = json.loads((short_run.best_weights / "config.json").read_text())
    assert best["training"]["selection"] == "best val/loss"
    val_losses = [float(r["val/loss"]) for r in _rows(short_run.run_dir) if r["val/loss"]]
    assert best["training"]["val_loss"] == pytest.approx(min(val_losses))
    load_pretrained(short_run.best_weights)


def test_metrics_csv(short_run: Any) -> None:
    rows = _rows(short_run.run_dir)
    keys = set(rows[0])
    assert {"step", "epoch", "train/loss", "val/loss", "val/psnr", "val/ssim", "val/mae"} <= keys
    train_steps = [int(r["step"]) for r in rows if r["train/loss"]]
    assert train_steps == list(range(5))
    assert sum(1 for r in rows if r["val/loss"]) == 2  # after steps 2 and 4


def test_lightning_checkpoint_loads_into_module(short_run: Any) -> None:
    from cloudfree.train import CloudRemovalModule

    ckpt = short_run.run_dir / "checkpoints" / "last.ckpt"
    module = CloudRemovalModule.load_from_checkpoint(ckpt, map_location="cpu")
    assert _same(module.model.state_dict(), _weights(short_run.run_dir))
    assert torch.load(ckpt, weights_only=True)["global_step"] == 5


def test_refuses_to_overwrite_a_run(short_run: Any, data_root: Path) -> None:
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        prepare_run(tiny_config(data_root, short_run.run_dir, model=TINY_GLF_CR))


def test_resume_needs_last_checkpoint(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--resume: .*last.ckpt not found"):
        prepare_run(tiny_config(data_root, tmp_path / "r"), resume=True)


def test_resume_refuses_another_model(short_run: Any, data_root: Path) -> None:
    with pytest.raises(ConfigError, match="--resume: .* trained model 'glf_cr'"):
        prepare_run(tiny_config(data_root, short_run.run_dir), resume=True)


# --------------------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def full_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An uninterrupted 8-step GLF-CR run (the reference of the resume tests)."""
    out = tmp_path_factory.mktemp("runs") / "full"
    return train(tiny_config(data_root, out, model=TINY_GLF_CR, trainer__max_steps=8))


@pytest.mark.parametrize("stop", [3, 4])  # at an epoch boundary (3 batches) and mid-epoch
def test_resume_continues_exactly(data_root: Path, tmp_path: Path, full_run: Any, stop: int):
    """A run stopped after ``stop`` steps and resumed to 8 equals an uninterrupted 8-step run:
    same global step, bit-identical weights, same metrics rows. GLF-CR's DropPath makes the
    model random, so the random state must be restored too."""
    first = train(
        tiny_config(data_root, tmp_path / "cut", model=TINY_GLF_CR, trainer__max_steps=stop)
    )
    assert first.global_step == stop
    at_stop = _weights(first.run_dir)
    resumed = train(
        tiny_config(data_root, tmp_path / "cut", model=TINY_GLF_CR, trainer__max_steps=8),
        resume=True,
    )
    assert resumed.global_step == 8
    assert not _same(at_stop, _weights(resumed.run_dir))
    assert _same(_weights(full_run.run_dir), _weights(resumed.run_dir))
    assert _rows(full_run.run_dir) == _rows(resumed.run_dir)


def test_cli_resume_from_run_config(data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    train(tiny_config(data_root, run, trainer__max_steps=2))
    res = CliRunner().invoke(
        main, ["train", "--out", str(run), "--resume", "--set", "trainer.max_steps=4"]
    )
    assert res.exit_code == 0, res.output
    assert f"resuming dsen2cr in run directory: {run}" in res.output
    assert "finished at step 4" in res.output
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == 4


def test_killed_run_metrics_are_truncated_on_resume(data_root: Path, tmp_path: Path) -> None:
    """Rows logged after the last checkpoint (as a killed run leaves them) are dropped."""
    run = tmp_path / "r"
    train(tiny_config(data_root, run, trainer__max_steps=4))
    rows = _rows(run)
    with open(run / "metrics.csv", "a", newline="") as fh:  # the killed run's later rows
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writerow({**rows[-1], "step": "4", "train/loss": "123"})
    train(tiny_config(data_root, run, trainer__max_steps=6), resume=True)
    after = _rows(run)
    assert "123" not in {r["train/loss"] for r in after}
    assert [int(r["step"]) for r in after if r["train/loss"]] == list(range(6))


# --------------------------------------------------------------------------- reproducibility
def test_same_seed_same_weights_other_seed_other_weights(
    data_root: Path, tmp_path: Path, short_run: Any
) -> None:
    """Five GLF-CR steps (DropPath active) twice with the recipe's seed, the second with two
    loader workers: bit-identical weights; another seed: different weights."""
    b = train(tiny_config(data_root, tmp_path / "b", model=TINY_GLF_CR, data__num_workers=2))
    c = train(tiny_config(data_root, tmp_path / "c", model=TINY_GLF_CR, seed=43))
    assert _same(_weights(short_run.run_dir), _weights(b.run_dir))
    assert not _same(_weights(short_run.run_dir), _weights(c.run_dir))


def test_cli_train_with_config_file(data_root: Path, tmp_path: Path) -> None:
    from cloudfree.train import config_to_yaml

    cfg = tiny_config(data_root, None, trainer__max_steps=2)
    path = tmp_path / "cfg.yaml"
    path.write_text(config_to_yaml(cfg))
    run = tmp_path / "cli_run"
    res = CliRunner().invoke(
        main,
        [
            "train",
            "--config",
            str(path),
            "--data",
            str(data_root),
            "--out",
            str(run),
            "--set",
            "optimizer.lr=1e-3",
            "--set",
            "model.kwargs.width=4",
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"run directory: {run}" in res.output
    assert f"best weights:  {run / 'weights' / 'best'}" in res.output
    assert f"final weights: {run / 'weights' / 'final'}" in res.output
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["optimizer"]["lr"] == 1e-3 and saved["model"]["kwargs"]["width"] == 4
    assert load_pretrained(run / "weights" / "final").cloudfree_config["kwargs"]["width"] == 4


def test_no_validation_still_exports_best(data_root: Path, tmp_path: Path) -> None:
    run = train(
        tiny_config(data_root, tmp_path / "r", trainer__limit_val_batches=0, trainer__max_steps=2)
    )
    best = json.loads((run.best_weights / "config.json").read_text())
    assert best["training"]["selection"] == "final (no validation)"
    assert _same(_weights(run.run_dir, "best"), _weights(run.run_dir, "final"))


def test_schedulers_and_optimizers(data_root: Path, tmp_path: Path) -> None:
    """StepLR per step halves the lr every 2 steps; cosine and the other optimizers run."""
    run = train(
        tiny_config(
            data_root,
            tmp_path / "step",
            optimizer__name="adam",
            optimizer__lr=1e-3,
            scheduler__name="step",
            scheduler__step_size=2,
            scheduler__interval="step",
        )
    )
    lrs = [float(r["train/lr"]) for r in _rows(run.run_dir) if r["train/lr"]]
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])
    for opt in ("adamw", "sgd"):
        train(
            tiny_config(
                data_root,
                tmp_path / opt,
                optimizer__name=opt,
                scheduler__name="cosine",
                trainer__max_steps=2,
            )
        )


# --------------------------------------------------------------------------- building blocks
def test_epoch_sampler_shards_and_is_deterministic() -> None:
    from cloudfree.train.datamodule import EpochSampler

    shards = [
        EpochSampler(7, shuffle=True, seed=3, num_replicas=2, rank=r, with_epoch=True)
        for r in range(2)
    ]
    for s in shards:
        s.set_epoch(5)
    got = [list(s) for s in shards]
    assert [len(g) for g in got] == [4, 4]  # padded to an equal share
    assert {i for g in got for i, _ in g} == set(range(7))
    assert all(e == 5 for g in got for _, e in g)
    again = EpochSampler(7, shuffle=True, seed=3, num_replicas=2, rank=0, with_epoch=True)
    again.set_epoch(5)
    assert list(again) == got[0]
    again.set_epoch(6)
    assert list(again) != got[0]
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_resumable_loader_skips_consumed_batches() -> None:
    from cloudfree.train.datamodule import EpochSampler, ResumableDataLoader

    def loader() -> ResumableDataLoader:
        sampler = EpochSampler(10, shuffle=True, seed=0)
        return ResumableDataLoader(
            list(range(10)), sampler=sampler, batch_size=3, collate_fn=lambda items: items
        )

    full = loader()
    full.epoch_sampler.set_epoch(2)
    batches = list(full)
    assert full.state_dict() == {"epoch": 2, "batches": 4}
    cut = loader()
    cut.epoch_sampler.set_epoch(2)
    it = iter(cut)
    first = [next(it), next(it)]
    state = cut.state_dict()
    assert state == {"epoch": 2, "batches": 2} and first == batches[:2]
    restored = loader()
    restored.load_state_dict(state)
    assert list(restored) == batches[2:]
    assert restored.state_dict() == {"epoch": 2, "batches": 4}
    restored.load_state_dict({"epoch": 2, "batches": 4})  # a finished epoch: the next one
    assert restored.epoch_sampler.epoch == 3 and len(list(restored)) == 4


def test_augment_applies_one_transform_to_every_image_and_mask() -> None:
    import numpy as np

    from cloudfree.train.augment import SampleAugment

    img = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 8, 8)
    sample = {
        "optical": img,
        "target": img + 1000,
        "cloud_mask": img[:1] % 2,
        "valid_mask": img[:1] > 3,
        "cloud_cover": torch.tensor(0.5),
        "id": "x",
    }
    aug = SampleAugment(crop_size=4, hflip=True, vflip=True, rot90=True)
    seen = set()
    for seed in range(40):
        out = aug(sample, np.random.default_rng(seed))
        assert out["optical"].shape == (2, 4, 4) and out["valid_mask"].dtype == torch.bool
        assert torch.equal(out["target"], out["optical"] + 1000)
        assert torch.equal(out["cloud_mask"], out["optical"][:1] % 2)
        assert torch.equal(out["valid_mask"], out["optical"][:1] > 3)
        assert out["id"] == "x" and out["cloud_cover"] is sample["cloud_cover"]
        seen.add(tuple(out["optical"][0].flatten().tolist()))
        again = aug(sample, np.random.default_rng(seed))
        assert torch.equal(again["optical"], out["optical"])
    assert len(seen) > 20  # crops and orientations vary
    plain = SampleAugment(crop_size=None)
    assert plain.is_identity
    assert torch.equal(plain(sample, np.random.default_rng(0))["optical"], img)


def test_training_batches_do_not_depend_on_workers(data_root: Path) -> None:
    from cloudfree.train.datamodule import CloudRemovalDataModule

    def batches(workers: int) -> list[dict[str, Any]]:
        cfg = tiny_config(
            data_root,
            None,
            data__num_workers=workers,
            data__augment={"hflip": True, "vflip": True, "rot90": True},
        )
        cfg = prepare_run_config(cfg)
        dm = CloudRemovalDataModule(cfg)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.epoch_sampler.set_epoch(1)
        return list(loader)

    a, b = batches(0), batches(2)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert x["id"] == y["id"] and isinstance(x["id"][0], str)
        for key in ("optical", "sar", "target", "cloud_mask", "valid_mask"):
            assert torch.equal(x[key], y[key])
        assert x["optical"].shape == (2, 13, 16, 16)


def prepare_run_config(cfg: TrainConfig) -> TrainConfig:
    from cloudfree.train.run import resolve_config

    return resolve_config(cfg)


def test_cli_train_output_is_quiet_and_ends_with_validation_and_run_dir(
    data_root: Path, tmp_path: Path
) -> None:
    """A real process (Lightning's log handlers hold the real stderr): no tips, device lines,
    Lightning-internal deprecations or duplicated loader warnings; the final validation
    metrics and the run directory at the end."""
    import subprocess
    import sys

    run = tmp_path / "quiet"
    cmd = [
        sys.executable,
        "-m",
        "cloudfree",
        "train",
        "--recipe",
        "dsen2cr",
        "--data",
        str(data_root),
        "--out",
        str(run),
        "--set",
        "model.kwargs.width=8",
        "model.kwargs.num_blocks=1",
        "data.patch_size=16",
        "data.val_patch_size=16",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    for noise in (
        "Tip",
        "GPU available",
        "TPU available",
        "LeafSpec",
        "logging interval",
        "worker processes",
        "Trainable params",
    ):
        assert noise not in text, noise
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == f"run directory: {run}"
    final = next(line for line in lines if line.startswith("final validation:"))
    assert "val/loss" in final and "val/psnr" in final
    assert any(line.startswith("model dsen2cr: ") and "parameters" in line for line in lines)
