"""CA-MTCR's two-stage training (paper 002): the SAR pre-training network (VQ-VAE, Noise2Noise,
``ca_mtcr_sar_vqvae``), its ``vqvae`` loss and ``sar_pretrain`` task, the ``target_sar`` sample
key, and the engine features of stage 2 (``model.sar_encoder_init``, ``optimizer.param_groups``,
the ``multistep`` schedule) with both recipes.

Tiny runs train on a simulated SEN12MS-CR-TS (6 series of 5 dates, 32 px) with widths of a few
channels; stage 2 starts from the stage-1 run of the module fixture.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cloudfree.errors import ConfigError
from cloudfree.losses import build_loss
from cloudfree.models import ModelOutput, create_model, get_model_info, list_models, run_model
from cloudfree.models.ca_mtcr_pretrain import VectorQuantizer
from cloudfree.synth.temporal_writers import write_sen12mscr_ts_synthetic
from cloudfree.train import build_config, load_recipe, prepare_run, train
from cloudfree.train.config import set_dotted
from cloudfree.train.module import CloudRemovalModule, parameter_groups

pytestmark = pytest.mark.usefixtures("quiet_lightning", "one_torch_thread")

#: the SAR encoder's widths, the same in both stages
TINY_SAR = {"sar_width": 4, "sar_channels": 8, "patch_size": 4}
TINY_VQVAE = {**TINY_SAR, "num_codes": 16, "dead_code_steps": 2}
TINY_CA_MTCR = {
    **TINY_SAR,
    **dict(embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0, stem_width=8, stem_blocks=1),
    **dict(weight_width=8, ltae_heads=4, ltae_d_model=16, decoder_widths=(8, 8)),
}
SMOKE = {
    "data.batch_size": 2,
    "data.num_workers": 0,
    "trainer.max_steps": 2,
    "trainer.accelerator": "cpu",
    "trainer.log_every_n_steps": 1,
    "trainer.val_check_interval": 2,
    "trainer.enable_progress_bar": False,
}


@pytest.fixture(scope="module")
def ts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ca_mtcr_ts") / "sen12mscr_ts"
    write_sen12mscr_ts_synthetic(root, patches=6, size=32, seed=3, dates=5, change_rate=1.0)
    return root


def stage1_config(root: Path, out: Path | None, **overrides: Any):
    base = {**SMOKE, "model.kwargs": TINY_VQVAE}
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return build_config(load_recipe("ca_mtcr_sar_pretrain"), base, data_root=root, out=out)


def stage2_config(root: Path, out: Path | None, init: str, **overrides: Any):
    base = {
        **SMOKE,
        "model.kwargs": TINY_CA_MTCR,
        "model.sar_encoder_init": init,
        "loss.name": "l1",  # the ca_mtcr loss needs the VGG16 file (tests/test_losses_vgg.py)
        "loss.kwargs": {},
    }
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return build_config(load_recipe("ca_mtcr"), base, data_root=root, out=out)


@pytest.fixture(scope="module")
def stage1(ts_root: Path, tmp_path_factory: pytest.TempPathFactory):
    return train(stage1_config(ts_root, tmp_path_factory.mktemp("stage1") / "run"))


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- the codebook
def test_straight_through_gradient_reaches_the_encoder_not_the_codebook() -> None:
    torch.manual_seed(0)
    model = create_model("ca_mtcr_sar_vqvae", **TINY_VQVAE).eval()
    sar = torch.rand(2, 2, 16, 16)
    out = model(sar=sar)
    z_e = model.sar_encoder(sar)
    vq = model.codebook(z_e)
    # forward value: the chosen codes
    codes = model.codebook.weight[vq.codes].permute(0, 3, 1, 2)
    torch.testing.assert_close(vq.quantized, codes, rtol=0, atol=1e-6)
    out.pred.square().mean().backward()
    enc = [p.grad for p in model.sar_encoder.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in enc)
    assert model.codebook.weight.grad is None  # codes learn from the codebook term only
    model.zero_grad()
    model(sar=sar).extras["vq_codebook"].backward()
    assert model.codebook.weight.grad is not None
    assert all(p.grad is None for p in model.sar_encoder.parameters())


def test_vq_terms_and_their_gradients_by_hand() -> None:
    vq = VectorQuantizer(num_codes=3, dim=2, dead_code_steps=0)
    with torch.no_grad():
        vq.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.5]]))
    z = torch.tensor([[[[0.9, -1.5]], [[1.2, 0.4]]]], requires_grad=True)  # [1, 2, 1, 2]
    res = vq(z)
    # position (0, 0): z = (0.9, 1.2): nearest (1, 1); position (0, 1): z = (-1.5, 0.4): code 2
    assert res.codes.tolist() == [[[1, 2]]]
    e = torch.tensor([[1.0, 1.0], [-2.0, 0.5]])
    zz = torch.tensor([[0.9, 1.2], [-1.5, 0.4]])
    expected = ((zz - e) ** 2).sum() / 4  # mean over B * D * h * w = 4 elements
    torch.testing.assert_close(res.codebook_loss, expected)
    torch.testing.assert_close(res.commitment_loss, expected)
    (1.0 * res.codebook_loss + 0.1 * res.commitment_loss).backward()
    # d/de of mean (e - z)^2 = 2 (e - z) / 4 for the codes used; code 0 untouched
    grad_e = torch.zeros(3, 2)
    grad_e[1], grad_e[2] = 2 * (e[0] - zz[0]) / 4, 2 * (e[1] - zz[1]) / 4
    torch.testing.assert_close(vq.weight.grad, grad_e)
    # d/dz: only the commitment term, 0.1 * 2 (z - e) / 4, in the [B, D, h, w] layout
    grad_z = (0.1 * 2 * (zz - e) / 4).t().reshape(1, 2, 1, 2)
    torch.testing.assert_close(z.grad, grad_z)
    assert float(res.codes_used) == 2 and float(res.perplexity) == pytest.approx(2.0)


def test_dead_code_guard_reseeds_unused_codes_from_the_batch() -> None:
    vq = VectorQuantizer(num_codes=4, dim=3, dead_code_steps=2)
    with torch.no_grad():
        vq.weight.copy_(torch.tensor([[0.0, 0, 0], [50, 50, 50], [60, 60, 60], [70, 70, 70]]))
    torch.manual_seed(0)
    z = torch.randn(2, 3, 4, 4) * 0.1  # every position picks code 0
    before = vq.weight.detach().clone()
    vq.eval()
    for _ in range(3):
        vq(z)  # eval mode never touches the codebook
    assert torch.equal(vq.weight, before) and int(vq.steps_unused.sum()) == 0
    vq.train()
    vq(z)
    assert torch.equal(vq.weight, before) and vq.steps_unused.tolist() == [0, 1, 1, 1]
    vq(z)  # the second forward without them: codes 1..3 are re-seeded
    assert torch.equal(vq.weight[0], before[0])
    rows = z.permute(0, 2, 3, 1).reshape(-1, 3)
    new = vq.weight.detach()[1:]
    for row in new:  # each is an encoder output of the batch, all different ones
        assert bool((rows == row).all(dim=1).any())
    assert len({tuple(r.tolist()) for r in new}) == 3
    assert vq.steps_unused.tolist() == [0, 0, 0, 0]
    # deterministic under the seed
    again = VectorQuantizer(num_codes=4, dim=3, dead_code_steps=2)
    with torch.no_grad():
        again.weight.copy_(before)
    torch.manual_seed(0)
    torch.randn(2, 3, 4, 4)
    again(z)
    again(z)
    assert torch.equal(again.weight, vq.weight)
    off = VectorQuantizer(num_codes=4, dim=3, dead_code_steps=0)
    w = off.weight.detach().clone()
    for _ in range(3):
        off(z)
    assert torch.equal(off.weight, w)


def test_vqvae_network_contract_and_registry() -> None:
    info = get_model_info("ca_mtcr_sar_vqvae")
    assert info.is_pretrain and info.default_recipe == "ca_mtcr_sar_pretrain"
    assert "ca_mtcr_sar_vqvae" not in list_models()  # not a cloud-removal model
    assert "ca_mtcr_sar_vqvae" in list_models(include_pretrain=True)
    model = create_model("ca_mtcr_sar_vqvae", **TINY_VQVAE).eval()
    spec = model.cloudfree_spec
    assert spec.tasks == {"sar_pretrain"} and not spec.inputs.needs_optical
    assert spec.out_channels == 2 and spec.inputs.spatial_multiple == 4
    sar = torch.rand(2, 2, 18, 22)  # padded to 20 x 24 inside, cropped back
    out = run_model(model, optical=torch.rand(2, 13, 18, 22), sar=sar)
    assert out.pred.shape == (2, 2, 18, 22) and out.extras["codes"].shape == (2, 5, 6)
    other = run_model(model, optical=torch.zeros(2, 13, 18, 22), sar=sar)
    assert torch.equal(out.pred, other.pred)  # the optical input is ignored
    keys = set(model.state_dict())
    assert {k.split(".")[0] for k in keys} == {"sar_encoder", "codebook", "decoder"}
    assert "codebook.steps_unused" in keys
    # the encoder is the ca_mtcr model's own: same keys and shapes
    ca = create_model("ca_mtcr", **TINY_CA_MTCR)
    mine = {k: v.shape for k, v in model.state_dict().items() if k.startswith("sar_encoder.")}
    theirs = {k: v.shape for k, v in ca.state_dict().items() if k.startswith("sar_encoder.")}
    assert mine == theirs
    with pytest.raises(ConfigError, match="at least 2 \\* patch_size = 8"):
        model(sar=torch.rand(1, 2, 6, 8))


# --------------------------------------------------------------------------- the loss
def _vq_output(pred: torch.Tensor, codebook: float, commitment: float) -> ModelOutput:
    extras = {"vq_codebook": torch.tensor(codebook), "vq_commitment": torch.tensor(commitment)}
    return ModelOutput(pred=pred, extras=extras)


def test_vqvae_loss_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 2, 4, 5, generator=g), torch.rand(2, 2, 4, 5, generator=g)
    valid = torch.ones(2, 1, 4, 5, dtype=torch.bool)
    valid[1, 0, :2] = False  # 10 of sample 1's 20 pixels
    batch = {"target": target, "valid_mask": valid}
    out = _vq_output(pred, 0.3, 0.7)
    d2 = (pred - target) ** 2
    per = [d2[0].sum().sqrt(), (d2[1] * valid[1]).sum().sqrt()]
    rmse = (per[0] / 40**0.5 + per[1] / 20**0.5) / 2
    loss = build_loss("vqvae")
    torch.testing.assert_close(loss(out, batch), rmse + 1.0 * 0.3 + 0.1 * 0.7)
    assert set(loss.last_terms) == {"reconstruction", "vq_codebook", "vq_commitment"}
    literal = build_loss("vqvae", alpha=2.0, beta=0.0, reconstruction="l2_norm")
    torch.testing.assert_close(literal(out, batch), (per[0] + per[1]) / 2 + 2.0 * 0.3)
    # zero error: finite gradient (eps under the root)
    p = target.clone().requires_grad_(True)
    loss(_vq_output(p, 0.0, 0.0), batch).backward()
    assert torch.isfinite(p.grad).all()
    with pytest.raises(ConfigError, match="needs the network's VQ terms .* bare prediction"):
        loss(pred, batch)
    with pytest.raises(ConfigError, match="reconstruction must be one of rmse, l2_norm"):
        build_loss("vqvae", reconstruction="l2")


# --------------------------------------------------------------------------- target_sar
def test_target_sar_is_the_reference_dates_s1(ts_root: Path) -> None:
    from cloudfree.data import SEN12MSCRTS, NormalizeSample
    from cloudfree.io import read_raster

    plain = SEN12MSCRTS(ts_root, "train", sampler="ca_mtcr", n_aux=0)[0]
    assert "target_sar" not in plain  # optional: other samples are unchanged
    ds = SEN12MSCRTS(ts_root, "train", sampler="ca_mtcr", n_aux=0, target_sar=True)
    sample = ds[0]
    t = int(sample["target_idx"])
    assert int(sample["input_idx"][-1]) != t  # N and its reference are different dates
    s1 = read_raster(ds.patches[0].s1[t]).array.astype(np.float32)
    np.testing.assert_array_equal(sample["target_sar"].numpy(), s1)
    assert sample["target_sar"].shape == (2, 32, 32)
    for key in ("optical", "sar", "target"):
        torch.testing.assert_close(sample[key], plain[key], rtol=0, atol=0, equal_nan=True)
    # normalised with the SAR rule (uncrtaints: clip [-25, 0] to [0, 1]); a missing value
    # makes the pixel invalid
    raw = dict(sample)
    raw["target_sar"] = sample["target_sar"].clone()
    raw["target_sar"][1, 3, 4] = float("nan")
    norm = NormalizeSample("uncrtaints")(raw)
    expected = np.clip((s1 + 25.0) / 25.0, 0.0, 1.0)
    expected[1, 3, 4] = 0.0  # uncrtaints fills NaN with 0
    np.testing.assert_allclose(norm["target_sar"].numpy(), expected, atol=1e-6)
    assert not bool(norm["valid_mask"][0, 3, 4]) and bool(norm["valid_mask"][0, 3, 5])
    with pytest.raises(ConfigError, match="target_sar must be true or false"):
        SEN12MSCRTS(ts_root, "train", sampler="ca_mtcr", target_sar="yes")


# --------------------------------------------------------------------------- stage 1
def test_pretraining_run_logs_sar_metrics_and_exports(stage1) -> None:
    assert stage1.global_step == 2
    rows = _rows(stage1.run_dir)
    train_rows = [r for r in rows if r.get("train/loss")]
    assert len(train_rows) == 2
    for key in ("train/reconstruction", "train/vq_codebook", "train/vq_perplexity"):
        assert all(np.isfinite(float(r[key])) for r in train_rows), key
    m = stage1.val_metrics
    assert {"val/loss", "val/sar_psnr", "val/sar_mae", "val/vq_perplexity"} <= set(m)
    assert not {"val/psnr", "val/ssim", "val/mae"} & set(m)  # no optical metric
    assert 0.0 < m["val/sar_mae"] < 1.0
    weights = load_file(str(stage1.best_weights / "model.safetensors"))
    assert any(k.startswith("codebook.") for k in weights)
    cfg = stage1.module.config
    assert cfg.data.options == {"sampler": "ca_mtcr", "n_aux": 0, "target_sar": True}
    assert cfg.loss.name == "vqvae" and cfg.loss.kwargs["beta"] == 0.1


def test_predict_and_evaluate_refuse_a_stage1_run(stage1) -> None:
    """A stage-1 run holds no cloud-removal model: predict and evaluate say so in one line."""
    from cloudfree.evaluate import load_model_for_evaluation
    from cloudfree.predict import load_model

    for load in (load_model_for_evaluation, load_model):
        with pytest.raises(ConfigError, match="pre-training network.*sar_encoder_init"):
            load(stage1.run_dir)


def test_pretraining_needs_target_sar_and_a_sar_loss(ts_root: Path, tmp_path: Path) -> None:
    cfg = stage1_config(ts_root, tmp_path / "a", data__options={"sampler": "ca_mtcr"})
    with pytest.raises(ConfigError, match="training data: the sar_pretrain task needs batch "
                       "key 'target_sar'.*data.options.target_sar: true"):  # fmt: skip
        prepare_run(cfg)
    cfg = stage1_config(ts_root, tmp_path / "b", loss__name="carl", loss__kwargs={})
    with pytest.raises(ConfigError, match="SAR pre-training network .* reads cloud_mask"):
        prepare_run(cfg)


# --------------------------------------------------------------------------- stage 2
def test_stage2_starts_from_the_stage1_encoder(stage1, ts_root: Path, tmp_path: Path) -> None:
    prepared = prepare_run(stage2_config(ts_root, tmp_path / "s2", str(stage1.run_dir)))
    first = load_file(str(stage1.best_weights / "model.safetensors"))  # weights/best is read
    encoder = {k: v for k, v in first.items() if k.startswith("sar_encoder.")}
    state = prepared.model.state_dict()
    assert encoder and all(torch.equal(state[k], v) for k, v in encoder.items())
    assert not any(k.startswith("codebook.") for k in state)  # the codebook is dropped
    fresh = create_model("ca_mtcr", **TINY_CA_MTCR).state_dict()
    assert not all(torch.equal(fresh[k], v) for k, v in encoder.items())
    # the two learning rates: the SAR encoder 1e-5, the rest 1e-4
    module = CloudRemovalModule(prepared.config, model=prepared.model)
    opt = module.configure_optimizers()["optimizer"]
    main, sar = opt.param_groups
    assert (main["lr"], sar["lr"], sar["name"]) == (1e-4, 1e-5, "sar_encoder.")
    ids = {id(p) for p in prepared.model.sar_encoder.parameters()}
    assert {id(p) for p in sar["params"]} == ids
    assert not ids & {id(p) for p in main["params"]}
    assert len(main["params"]) + len(sar["params"]) == len(list(prepared.model.parameters()))
    # a few steps over three epochs, decaying both groups at the milestones
    overrides = dict(trainer__max_epochs=3, trainer__max_steps=6, scheduler__milestones=[1, 2])
    result = train(stage2_config(ts_root, tmp_path / "s2b", str(stage1.run_dir), **overrides))
    rows = [r for r in _rows(result.run_dir) if r.get("train/lr")]
    lrs = sorted(
        {(int(r["epoch"]), float(r["train/lr"]), float(r["train/lr_sar_encoder"])) for r in rows}
    )
    assert [e for e, _, _ in lrs] == [0, 1, 2]
    want = [[1e-4, 1e-5], [5e-5, 5e-6], [2.5e-5, 2.5e-6]]
    np.testing.assert_allclose([[a, b] for _, a, b in lrs], want, rtol=1e-6)
    assert result.val_metrics["val/psnr"] > 0


def test_paper_schedule_per_epoch() -> None:
    """The recipe's reading of "x0.5 every 5 epochs following the initial 10": epochs 1-10 at
    the initial rates, halved from epochs 11, 16, 21 and 26 (counting from 1), both groups."""
    cfg = build_config(load_recipe("ca_mtcr"))
    assert cfg.scheduler.milestones == [10, 15, 20, 25] and cfg.trainer.max_epochs == 30
    from cloudfree.train.module import build_optimizer, build_scheduler

    net = torch.nn.ModuleDict({"sar_encoder": torch.nn.Linear(2, 2), "rest": torch.nn.Linear(2, 2)})
    opt = build_optimizer(cfg, parameter_groups(cfg.optimizer, net))
    sched = build_scheduler(cfg, opt)["scheduler"]
    per_epoch = []
    for _ in range(30):  # Lightning steps an epoch schedule after each epoch
        per_epoch.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    factor = [1.0] * 10 + [0.5] * 5 + [0.25] * 5 + [0.125] * 5 + [0.0625] * 5
    np.testing.assert_allclose(per_epoch, [[1e-4 * f, 1e-5 * f] for f in factor], rtol=1e-12)


def test_sar_encoder_init_errors(stage1, ts_root: Path, tmp_path: Path) -> None:
    hint = "run the ca_mtcr_sar_pretrain recipe first .* --set model.sar_encoder_init=none"
    for value, problem in (
        ("REQUIRED", "not set \\(the recipe's placeholder REQUIRED\\)"),
        (str(tmp_path / "nope"), "does not exist"),
        (str(tmp_path), "holds no model weights"),
    ):
        cfg = stage2_config(ts_root, tmp_path / "x", value)
        with pytest.raises(ConfigError, match=f"^model.sar_encoder_init: .*{problem}.*{hint}"):
            prepare_run(cfg)
    # stage-1 weights of other widths: the message names the shapes and the stage-1 kwargs
    wide = {**TINY_CA_MTCR, "sar_channels": 12}
    cfg = stage2_config(ts_root, tmp_path / "y", str(stage1.run_dir), model__kwargs=wide)
    with pytest.raises(ConfigError, match="do not fit model 'ca_mtcr' .* shape mismatch"):
        prepare_run(cfg)
    # weights of a model without a SAR encoder
    no_sar = {**TINY_CA_MTCR, "use_sar": False, "change_aware": False}
    run = str(stage1.run_dir)
    cfg = stage2_config(
        ts_root, tmp_path / "z", run, model__name="ca_mtcr_no_sar", model__kwargs=no_sar
    )
    with pytest.raises(ConfigError, match="model 'ca_mtcr_no_sar' has no submodule 'sar_encoder'"):
        prepare_run(cfg)
    with pytest.raises(ConfigError, match="sar_encoder_init and model.init_submodules.sar_encoder"):
        stage2_config(ts_root, None, "none", model__init_submodules={"sar_encoder": "x"})


def test_sar_encoder_init_none_and_the_generic_spelling(stage1, ts_root: Path, tmp_path) -> None:
    first = load_file(str(stage1.best_weights / "model.safetensors"))
    scratch = prepare_run(stage2_config(ts_root, tmp_path / "a", "none")).model.state_dict()
    same = prepare_run(stage2_config(ts_root, tmp_path / "b", "NONE")).model.state_dict()
    assert all(torch.equal(v, same[k]) for k, v in scratch.items())  # the seed's own init
    encoder = [k for k in first if k.startswith("sar_encoder.")]
    assert not all(torch.equal(scratch[k], first[k]) for k in encoder)
    generic = stage2_config(
        ts_root,
        tmp_path / "c",
        "none",
        model__sar_encoder_init=None,
        model__init_submodules={"sar_encoder": str(stage1.best_weights)},  # a weights dir
    )
    state = prepare_run(generic).model.state_dict()
    assert all(torch.equal(state[k], first[k]) for k in encoder)


def test_param_groups_errors_and_the_discriminator(ts_root: Path, tmp_path: Path) -> None:
    cfg = stage2_config(
        ts_root,
        tmp_path / "a",
        "none",
        optimizer__param_groups=[{"prefix": "sar_encodr.", "lr": 1}],
    )
    with pytest.raises(ConfigError, match="'sar_encodr.' matches no trainable parameter .*"
                       "sar_encoder\\."):  # fmt: skip
        prepare_run(cfg)
    with pytest.raises(ConfigError, match="prefix 'a.' is given twice"):
        build_config(
            load_recipe("ca_mtcr"), {"optimizer.param_groups": [{"prefix": "a.", "lr": 1}] * 2}
        )
    # GAN training: the discriminator's optimizer copied from the generator's takes no groups
    from cloudfree.models import spec_of
    from cloudfree.train.tasks import resolve_task
    from train_helpers import tiny_config

    gan = tiny_config(
        ts_root,
        None,
        {"model.name": "standin_generator", "model.kwargs": {"width": 4}},
        loss__name="l1",
        loss__kwargs={},
        adversarial={"discriminator_kwargs": {"width": 4, "num_layers": 2}},
        optimizer__param_groups=[{"prefix": "head.", "lr": 1e-5}],
    )
    plan = resolve_task(gan, spec_of(create_model("standin_generator", width=4)))
    assert plan.adversarial.optimizer.param_groups == []
    assert gan.optimizer.param_groups[0].prefix == "head."


def test_dotted_overrides_index_lists() -> None:
    raw = {"optimizer": {"param_groups": [{"prefix": "a.", "lr": 1.0}]}, "s": {"m": [1, 2]}}
    set_dotted(raw, "optimizer.param_groups.0.lr", 2e-5)
    set_dotted(raw, "s.m.1", 7)
    assert raw == {
        "optimizer": {"param_groups": [{"prefix": "a.", "lr": 2e-5}]},
        "s": {"m": [1, 7]},
    }
    with pytest.raises(ConfigError, match="is a list of 2 entries, and '2' is not one of its"):
        set_dotted(raw, "s.m.2", 0)
    with pytest.raises(ConfigError, match="'s.m.0' is a value, not a section"):
        set_dotted(raw, "s.m.0.x", 0)


def test_recipes_parse_with_the_papers_settings() -> None:
    s1 = build_config(load_recipe("ca_mtcr_sar_pretrain"))
    assert (s1.optimizer.lr, s1.trainer.max_epochs, s1.data.batch_size) == (2e-4, 50, 6)
    assert (s1.loss.kwargs["alpha"], s1.loss.kwargs["beta"]) == (1.0, 0.1)
    s2 = build_config(load_recipe("ca_mtcr"))
    assert (s2.optimizer.lr, s2.optimizer.param_groups[0].lr) == (1e-4, 1e-5)
    assert (s2.data.batch_size, s2.trainer.max_epochs, s2.data.options["n_aux"]) == (6, 30, 2)
    assert s2.model.sar_encoder_init == "REQUIRED" and s2.loss.kwargs["vgg_weights"] is None
    assert (s2.scheduler.name, s2.scheduler.gamma) == ("multistep", 0.5)
