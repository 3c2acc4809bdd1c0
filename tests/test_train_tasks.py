"""Training tasks chosen from the model's spec: uncertainty, multi-stage, adversarial.

The stand-in networks (``standin_uncertainty``, ``standin_multistage``, ``standin_generator``,
width 4) train for a few steps on 16 px crops of a generated SEN12MS-CR-style dataset of 10
patches (epochs of 3 batches of 2 crops), with the dsen2cr recipe's settings otherwise.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from cloudfree.errors import ConfigError
from cloudfree.losses import build_loss
from cloudfree.models import (
    ModelOutput,
    create_discriminator,
    create_model,
    list_discriminators,
    load_pretrained,
)
from cloudfree.models.discriminators import PatchGANDiscriminator, discriminator_min_size
from cloudfree.synth import write_sen12mscr_synthetic
from cloudfree.train import CloudRemovalModule, prepare_run, train
from cloudfree.train.config import TrainConfig
from train_helpers import tiny_config as shared_tiny_config

pytestmark = pytest.mark.usefixtures("quiet_lightning", "one_torch_thread")

UNCERTAINTY = {"model.name": "standin_uncertainty", "model.kwargs": {"width": 4}}
MULTISTAGE = {"model.name": "standin_multistage", "model.kwargs": {"width": 4}}
GENERATOR = {"model.name": "standin_generator", "model.kwargs": {"width": 4}}
SMALL_D = {"discriminator_kwargs": {"width": 4, "num_layers": 2}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task_data") / "sen12mscr"
    write_sen12mscr_synthetic(root, patches=10, size=32, seed=0)
    return root


def tiny_config(
    data_root: Path, out: Path | None, model: dict[str, Any], **overrides: Any
) -> TrainConfig:
    """The shared smoke configuration with the L1 loss (the stand-ins need no mask)."""
    return shared_tiny_config(
        data_root, out, model, **{"loss__name": "l1", "loss__kwargs": {}, **overrides}
    )


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _column(run: Path, key: str) -> list[float]:
    return [float(r[key]) for r in _rows(run) if r.get(key)]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _batch(seed: int = 0, b: int = 2, hw: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(b, 1, hw, hw, dtype=torch.bool)
    valid[0, 0, :3, :5] = False
    return {
        "optical": torch.rand(b, 13, hw, hw, generator=g),
        "sar": torch.rand(b, 2, hw, hw, generator=g),
        "target": torch.rand(b, 13, hw, hw, generator=g),
        "valid_mask": valid,
    }


def _module(data_root: Path, model: dict[str, Any], **overrides: Any) -> CloudRemovalModule:
    torch.manual_seed(0)
    return CloudRemovalModule(tiny_config(data_root, None, model, **overrides))


def _discriminator_state(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("discriminator.")}


# --------------------------------------------------------------------------- uncertainty
def test_uncertainty_loss_is_the_hand_computed_nll(data_root: Path) -> None:
    """The module hands the whole output (mean and variance) to the loss: on a fixed output
    the task loss is 0.5 (log var + (y - mu)^2 / var) averaged over valid pixels and bands."""
    module = _module(data_root, UNCERTAINTY, loss__name="gaussian_nll")
    batch = _batch()
    g = torch.Generator().manual_seed(1)
    mean = torch.rand(2, 13, 16, 16, generator=g)
    var = torch.rand(2, 13, 16, 16, generator=g) + 0.1
    loss, extra = module.task_loss(ModelOutput(pred=mean, variance=var), batch)
    per = 0.5 * (var.log() + (batch["target"] - mean) ** 2 / var)
    valid = batch["valid_mask"].expand_as(per)
    assert extra == {}
    torch.testing.assert_close(loss, per[valid].mean(), rtol=1e-6, atol=0)


def test_uncertainty_training_lowers_the_nll_and_logs_it(data_root: Path, tmp_path: Path) -> None:
    module = _module(data_root, UNCERTAINTY, loss__name="gaussian_nll")
    batch = _batch()
    opt = torch.optim.Adam(module.model.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        loss, _ = module.task_loss(module(batch), batch)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(module.task_loss(module(batch), batch)[0]) < first - 0.1
    run = train(tiny_config(data_root, tmp_path / "u", UNCERTAINTY, loss__name="gaussian_nll"))
    rows = _rows(run.run_dir)
    assert {"train/loss", "train/nll", "train/variance", "val/loss", "val/nll", "val/psnr"} <= set(
        rows[0]
    )
    assert _column(run.run_dir, "train/loss") == _column(run.run_dir, "train/nll")
    assert _column(run.run_dir, "val/nll") == _column(run.run_dir, "val/loss")  # same loss
    assert all(v > 0 for v in _column(run.run_dir, "train/variance"))
    loaded = load_pretrained(run.final_weights)
    assert _same(loaded.state_dict(), run.module.model.state_dict())


def test_uncertainty_model_with_a_mean_only_loss(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trained for uncertainty .* loss 'l1' ignores the var"):
        prepare_run(tiny_config(data_root, tmp_path / "r", UNCERTAINTY))
    assert not (tmp_path / "r").exists()
    module = _module(data_root, UNCERTAINTY, task__allow_loss_without_variance=True)
    batch = _batch()
    out = module(batch)
    loss, _ = module.task_loss(out, batch)
    torch.testing.assert_close(loss, build_loss("l1")(out.pred, batch))
    # the variance still shows in validation as val/nll
    assert module.task_plan.uncertainty and module.task_plan.loss_takes_output


def test_variance_loss_for_a_model_without_variance(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'gaussian_nll' needs a variance output, but model"):
        prepare_run(tiny_config(data_root, tmp_path / "r", GENERATOR, loss__name="gaussian_nll"))
    with pytest.raises(ConfigError, match="allow_loss_without_variance applies to uncertainty"):
        prepare_run(
            tiny_config(data_root, tmp_path / "r", MULTISTAGE, task__allow_loss_without_variance=1)
        )


# --------------------------------------------------------------------------- multi-stage
def test_multistage_loss_is_the_weighted_sum_of_stage_losses(data_root: Path) -> None:
    module = _module(data_root, MULTISTAGE, task__stage_weights=[0.25, 2.0])
    batch = _batch()
    out = module(batch)
    assert len(out.stages) == 1
    loss, extra = module.task_loss(out, batch)
    valid = batch["valid_mask"].expand_as(out.pred)

    def l1(x: torch.Tensor) -> torch.Tensor:
        return (x - batch["target"]).abs()[valid].mean()

    expected = 0.25 * l1(out.stages[0]) + 2.0 * l1(out.pred)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(extra["loss_stage0"], l1(out.stages[0]).detach())
    torch.testing.assert_close(extra["loss_stage1"], l1(out.pred).detach())
    default = _module(data_root, MULTISTAGE)  # all weights 1
    assert default.task_plan.stage_weights == (1.0, 1.0)


def test_multistage_training_logs_each_stage(data_root: Path, tmp_path: Path) -> None:
    run = train(tiny_config(data_root, tmp_path / "m", MULTISTAGE, task__stage_weights=[0.5, 1]))
    rows = [r for r in _rows(run.run_dir) if r["train/loss"]]
    assert len(rows) == 5
    for r in rows:
        weighted = 0.5 * float(r["train/loss_stage0"]) + float(r["train/loss_stage1"])
        assert float(r["train/loss"]) == pytest.approx(weighted, rel=1e-6)
        assert r["train/l1"] == r["train/loss_stage1"]  # terms of the final prediction
    assert len(_column(run.run_dir, "val/loss_stage0")) == 2


def test_stage_weights_errors(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs 2 weights \(num_stages \+ 1.*got 3"):
        prepare_run(tiny_config(data_root, tmp_path / "r", MULTISTAGE, task__stage_weights=[1] * 3))
    with pytest.raises(ConfigError, match="stage_weights applies to multi-stage models only"):
        prepare_run(tiny_config(data_root, tmp_path / "r", GENERATOR, task__stage_weights=[1, 1]))
    with pytest.raises(ConfigError, match="task.stage_weights: needs at least one weight > 0"):
        tiny_config(data_root, tmp_path / "r", MULTISTAGE, task__stage_weights=[0, 0])
    with pytest.raises(ConfigError, match="unknown key 'task.weights'.*stage_weights"):
        tiny_config(data_root, tmp_path / "r", MULTISTAGE, task__weights=[1, 1])
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- adversarial
def _adversarial(data_root: Path, out: Path, steps: int, **overrides: Any) -> TrainConfig:
    """Adversarial run with both schedulers active: the generator's halves its lr every 2
    steps, the discriminator's (own optimizer) every epoch."""
    return tiny_config(
        data_root,
        out,
        GENERATOR,
        trainer__max_steps=steps,
        trainer__gradient_clip_val=1.0,
        optimizer__name="adam",
        optimizer__lr=1e-3,
        scheduler__name="step",
        scheduler__step_size=2,
        scheduler__interval="step",
        adversarial={
            **SMALL_D,
            "gan_loss": "lsgan",
            "weight": 0.1,
            "optimizer": {"name": "adam", "lr": 2e-3, "betas": [0.5, 0.999]},
            "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5, "interval": "epoch"},
        },
        **overrides,
    )


@pytest.fixture(scope="module")
def adversarial_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return train(_adversarial(data_root, tmp_path_factory.mktemp("adv") / "full", 6))


def test_adversarial_both_networks_train(adversarial_run: Any, data_root: Path) -> None:
    run = adversarial_run.run_dir
    assert adversarial_run.global_step == 6  # one step per batch, not per optimizer
    prepared = prepare_run(_adversarial(data_root, None, 6), run_dir=run.parent / "fresh")
    module0 = CloudRemovalModule(prepared.config, model=prepared.model)  # initial weights
    generator0 = module0.model.state_dict()
    d0 = {f"discriminator.{k}": v for k, v in module0.discriminator.state_dict().items()}
    generator = load_file(str(run / "weights" / "final" / "model.safetensors"))
    d = _discriminator_state(run / "checkpoints" / "last.ckpt")
    assert d.keys() == d0.keys() and generator.keys() == generator0.keys()
    assert all(not torch.equal(generator[k], generator0[k]) for k in generator)
    assert all(not torch.equal(d[k], d0[k]) for k in d)
    rows = [r for r in _rows(run) if r["train/loss"]]
    for r in rows:
        total = float(r["train/loss_reconstruction"]) + 0.1 * float(r["train/loss_adversarial"])
        assert float(r["train/loss"]) == pytest.approx(total, rel=1e-6)
        assert float(r["train/loss_discriminator"]) > 0
    assert _column(run, "train/lr") == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])
    assert _column(run, "train/lr_discriminator") == pytest.approx([2e-3] * 3 + [1e-3] * 3)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert len(ckpt["optimizer_states"]) == 2 and len(ckpt["lr_schedulers"]) == 2


def test_adversarial_exports_the_generator_only(adversarial_run: Any) -> None:
    run = adversarial_run.run_dir
    for which in ("best", "final"):
        keys = set(load_file(str(run / "weights" / which / "model.safetensors")))
        assert keys == set(create_model("standin_generator", width=4).state_dict())
        load_pretrained(run / "weights" / which)
    module = CloudRemovalModule.load_from_checkpoint(
        run / "checkpoints" / "last.ckpt", map_location="cpu"
    )
    state = {f"discriminator.{k}": v for k, v in module.discriminator.state_dict().items()}
    assert _same(state, _discriminator_state(run / "checkpoints" / "last.ckpt"))


@pytest.mark.parametrize("stop", [3, 4])  # at an epoch boundary (3 batches) and mid-epoch
def test_adversarial_resume_continues_exactly(
    data_root: Path, tmp_path: Path, adversarial_run: Any, stop: int
) -> None:
    """Stopped after ``stop`` steps and resumed to 6: bit-identical generator and
    discriminator weights, optimizer and scheduler states and metrics rows."""
    first = train(_adversarial(data_root, tmp_path / "cut", stop))
    assert first.global_step == stop
    resumed = train(_adversarial(data_root, tmp_path / "cut", 6), resume=True)
    assert resumed.global_step == 6
    full, cut = adversarial_run.run_dir, resumed.run_dir
    assert _same(
        load_file(str(full / "weights/final/model.safetensors")),
        load_file(str(cut / "weights/final/model.safetensors")),
    )
    assert _same(
        _discriminator_state(full / "checkpoints/last.ckpt"),
        _discriminator_state(cut / "checkpoints/last.ckpt"),
    )
    assert _rows(full) == _rows(cut)
    a = torch.load(full / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(cut / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert a["lr_schedulers"] == b["lr_schedulers"]
    for sa, sb in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for k, v in sa["state"].items():
            assert all(torch.equal(v[n], sb["state"][k][n]) for n in v)


def test_adversarial_config_errors(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    with pytest.raises(ConfigError, match="does not declare the adversarial task .*remove"):
        prepare_run(tiny_config(data_root, out, MULTISTAGE, adversarial=SMALL_D))
    with pytest.raises(ConfigError, match="adversarial.gan_loss: unknown GAN loss 'wgan'"):
        prepare_run(tiny_config(data_root, out, GENERATOR, adversarial={"gan_loss": "wgan"}))
    with pytest.raises(ConfigError, match="unknown discriminator 'unet'; registered: patchgan"):
        prepare_run(tiny_config(data_root, out, GENERATOR, adversarial={"discriminator": "unet"}))
    with pytest.raises(ConfigError, match="in_channels is set by the trainer"):
        bad = {"discriminator_kwargs": {"in_channels": 3}}
        prepare_run(tiny_config(data_root, out, GENERATOR, adversarial=bad))
    with pytest.raises(ConfigError, match="bad arguments for discriminator 'patchgan'.*depth"):
        bad = {"discriminator_kwargs": {"depth": 3}}
        prepare_run(tiny_config(data_root, out, GENERATOR, adversarial=bad))
    with pytest.raises(ConfigError, match="needs crops of at least 24 px, but data.patch_size"):
        prepare_run(tiny_config(data_root, out, GENERATOR))  # num_layers 3 on 16 px crops
    optical_only = {"model.name": "standin_generator", "model.kwargs": {"width": 4, "in_sar": 0}}
    with pytest.raises(ConfigError, match="'optical_sar' needs a model that uses SAR"):
        prepare_run(tiny_config(data_root, out, optical_only, adversarial=SMALL_D))
    with pytest.raises(ConfigError, match="unknown key 'adversarial.weigth'.*did you mean"):
        tiny_config(data_root, out, GENERATOR, adversarial={"weigth": 1})
    assert not out.exists()


def test_adversarial_defaults_and_conditions(data_root: Path) -> None:
    """Without an adversarial section an adversarial model gets the defaults (patchgan,
    lsgan, weight 0.01, the generator's optimizer); the condition sets D's input channels."""
    plan = _module(data_root, GENERATOR, data__patch_size=24).task_plan
    assert plan.adversarial is not None and plan.adversarial.weight == 0.01
    assert plan.adversarial.optimizer.name == "nadam"  # the recipe's generator optimizer
    assert plan.discriminator_channels == 13 + 2 + 13
    module = _module(data_root, GENERATOR, adversarial={**SMALL_D, "condition": "none"})
    assert module.task_plan.discriminator_channels == 13
    batch = _batch()
    real, fake, condition = module.discriminator_inputs(batch, batch["optical"])
    assert condition is None
    assert bool((real[0, :, :3, :5] == 0).all()) and bool((fake[0, :, :3, :5] == 0).all())
    assert torch.equal(real[1], batch["target"][1])


# --------------------------------------------------------------------------- discriminator
def test_patchgan_discriminator() -> None:
    assert "patchgan" in list_discriminators()
    torch.manual_seed(0)
    d = create_discriminator("patchgan", in_channels=28)
    assert isinstance(d, PatchGANDiscriminator)
    x, cond = torch.rand(2, 13, 32, 32), torch.rand(2, 15, 32, 32)
    assert d(x, cond).shape == (2, 1, 2, 2)  # 32 -> 16 -> 8 -> 4 -> 3 -> 2
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 3 + [(1, 1)] * 2
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert abs(float(torch.cat([c.weight.detach().flatten() for c in convs]).std()) - 0.02) < 0.002
    assert d.min_size == 24 == discriminator_min_size("patchgan", in_channels=28)
    assert discriminator_min_size("patchgan", in_channels=3, num_layers=2) == 12
    with pytest.raises(ConfigError, match=r"needs inputs of at least 24x24 pixels"):
        d(torch.rand(1, 13, 16, 16), torch.rand(1, 15, 16, 16))
    with pytest.raises(ConfigError, match=r"expects \[B, 28, H, W\]"):
        d(x)
    batch_norm = create_discriminator("patchgan", in_channels=3, width=4, norm="batch")
    convs = [m for m in batch_norm.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].bias is not None and convs[-1].bias is not None  # no norm after these
    assert all(c.bias is None for c in convs[1:-1])  # a batch norm follows
    with pytest.raises(ConfigError, match="norm must be one of instance, batch, none"):
        create_discriminator("patchgan", in_channels=3, norm="layer")
    with pytest.raises(ConfigError, match="in_channels must be an integer >= 1"):
        create_discriminator("patchgan", in_channels=0)
