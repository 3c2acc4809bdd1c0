"""One test base every registered model passes (the segmentation_models_pytorch idea).

The inputs of every test are built from the model's own input spec (``spec_of(model)``):
mono-temporal models get ``[B, C, H, W]``, temporal ones ``[B, T, C, H, W]`` with ``dates``
and one padded date (``time_mask`` False for the last date of the last sample); SAR only where
the spec has SAR channels. Outputs are checked against the output spec (``pred`` shape,
variance present and positive where declared, number of stages). The base runs over the
stand-ins too (``list_models(include_standins=True)``), so the temporal, uncertainty and
multi-stage paths are exercised before the real families exist. Every call goes through
:func:`cloudfree.models.run_model`.

Each registered name needs an entry in ``SMALL_KWARGS`` (small widths keep the suite fast); a
newly registered model without one fails ``test_every_model_has_small_test_kwargs``.
"""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from torch import nn

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.models import (
    InputSpec,
    ModelBatch,
    ModelOutput,
    ModelSpec,
    OutputSpec,
    _registry,
    create_model,
    get_model_info,
    list_models,
    load_pretrained,
    register_model,
    run_model,
    save_pretrained,
    spec_of,
)
from model_helpers import small_kwargs, small_model

MODELS = list_models(include_standins=True)
TEMPORAL = [n for n in MODELS if get_model_info(n).temporal]
NO_SAR = [n for n in MODELS if not get_model_info(n).resolve_spec().inputs.needs_sar]
#: dates T of the temporal inputs (at most the model's max_dates)
NUM_DATES = 3


def batch_for(spec: ModelSpec, h: int, w: int, batch: int = 1, seed: int = 0) -> ModelBatch:
    """Random inputs that fit ``spec``: ``[B, C, H, W]`` or ``[B, T, C, H, W]`` with sorted
    dates and the last date of the last sample padded (``time_mask`` False; its frame holds
    random values like any other); SAR only where the spec has SAR channels."""
    g = torch.Generator().manual_seed(seed)
    i = spec.inputs
    lead = (batch,)
    dates = time_mask = None
    if i.temporal:
        t = min(NUM_DATES, i.max_dates or NUM_DATES)
        assert t >= 2, "a padded date needs a second, real one"
        lead = (batch, t)
        steps = torch.randint(5, 40, (batch, t), generator=g)
        dates = (torch.randint(0, 3000, (batch, 1), generator=g) + steps.cumsum(1)).float()
        time_mask = torch.ones(batch, t, dtype=torch.bool)
        time_mask[-1, -1] = False
    optical = torch.rand(*lead, i.optical_channels or 13, h, w, generator=g)
    sar = None
    if i.needs_sar and (i.sar_channels is None or i.sar_channels > 0):
        sar = torch.rand(*lead, i.sar_channels or 2, h, w, generator=g)
    return ModelBatch(optical, sar, dates, time_mask)


def model_and_batch(name: str, h: int, w: int, batch: int = 1, seed: int = 0, **overrides):
    model = small_model(name, **overrides)
    return model, batch_for(spec_of(model), h, w, batch, seed)


def sample(b: ModelBatch, i: int) -> ModelBatch:
    """Sample ``i`` of a batch, as a batch of one."""

    def pick(x):
        return None if x is None else x[i : i + 1]

    return ModelBatch(pick(b.optical), pick(b.sar), pick(b.dates), pick(b.time_mask))


def check_output(spec: ModelSpec, out: ModelOutput, b: ModelBatch) -> None:
    """``out`` against the output spec, independently of run_model's own checks."""
    x = b.optical
    want = (x.shape[0], spec.out_channels or x.shape[-3], *x.shape[-2:])
    assert tuple(out.pred.shape) == want
    assert torch.isfinite(out.pred).all()
    if spec.outputs.has_variance:
        assert out.variance is not None and tuple(out.variance.shape) == want
        assert torch.isfinite(out.variance).all() and (out.variance > 0).all()
    else:
        assert out.variance is None
    assert len(out.stages) == spec.outputs.num_stages
    for stage in out.stages:
        assert tuple(stage.shape) == want and torch.isfinite(stage).all()


def all_outputs(out: ModelOutput) -> list[torch.Tensor]:
    return [out.pred, *([] if out.variance is None else [out.variance]), *out.stages]


def assert_outputs_equal(a: ModelOutput, b: ModelOutput, **tol) -> None:
    tol = tol or dict(rtol=0, atol=0)
    for x, y in zip(all_outputs(a), all_outputs(b), strict=True):
        torch.testing.assert_close(x, y, **tol)


# ------------------------------------------------------------------------------ the base
def test_stand_ins_cover_every_contract_path():
    """The base exercises temporal inputs, variance, stages and no-SAR models."""
    specs = [get_model_info(n).resolve_spec() for n in MODELS]
    assert any(s.inputs.temporal and s.inputs.needs_dates for s in specs)
    assert any(s.outputs.has_variance for s in specs)
    assert any(s.outputs.num_stages for s in specs)
    assert NO_SAR and TEMPORAL
    assert not set(list_models()) & {n for n in MODELS if get_model_info(n).is_standin}


@pytest.mark.parametrize("name", MODELS)
def test_every_model_has_small_test_kwargs(name):
    small_kwargs(name)


@pytest.mark.parametrize("name", MODELS)
def test_spec_follows_the_small_kwargs(name):
    model = small_model(name)
    info = get_model_info(name)
    assert spec_of(model) == info.resolve_spec(model.cloudfree_config["kwargs"])
    assert model.cloudfree_config["protocol"] == info.protocol


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("size", [(50, 70), (17, 33)])
def test_any_input_size(name, size):
    torch.manual_seed(0)
    model, b = model_and_batch(name, *size, batch=2)
    with torch.no_grad():
        out = run_model(model.eval(), b)
    check_output(spec_of(model), out, b)


@pytest.mark.parametrize("name", MODELS)
def test_batch_independence(name):
    """Sample i of a batch equals the same sample run alone (no cross-sample leakage; with a
    padded date in the last sample)."""
    torch.manual_seed(3)
    model, b = model_and_batch(name, 24, 40, batch=3, seed=3)
    model.eval()
    with torch.no_grad():
        together = run_model(model, b)
        for i in range(b.batch_size):
            alone = run_model(model, sample(b, i))
            for x, y in zip(all_outputs(together), all_outputs(alone), strict=True):
                torch.testing.assert_close(x[i : i + 1], y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", TEMPORAL)
def test_padded_dates_do_not_change_the_output(name):
    """Whatever the padded frame holds (NaN, garbage, another date), the output is the same;
    for a padding-invariant spec it equals the one of the sample without that date."""
    torch.manual_seed(4)
    model, b = model_and_batch(name, 20, 28, batch=2, seed=4)
    model.eval()
    with torch.no_grad():
        ref = run_model(model, b)
        for fill in (float("nan"), 1e6):
            sar = None if b.sar is None else b.sar.clone()
            garbage = ModelBatch(b.optical.clone(), sar, b.dates.clone(), b.time_mask)
            garbage.optical[-1, -1] = fill
            if garbage.sar is not None:
                garbage.sar[-1, -1] = fill
            garbage.dates[-1, -1] = 99999.0
            assert_outputs_equal(run_model(model, garbage), ref)
        if not spec_of(model).inputs.padding_invariant:
            return  # documented: normalises over all dates, padded ones included
        last = sample(b, b.batch_size - 1)
        cut_sar = None if last.sar is None else last.sar[:, :-1]
        cut = ModelBatch(last.optical[:, :-1], cut_sar, last.dates[:, :-1], None)
        for x, y in zip(all_outputs(ref), all_outputs(run_model(model, cut)), strict=True):
            torch.testing.assert_close(x[-1:], y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", TEMPORAL)
def test_dates_matter_to_a_temporal_model(name):
    """A temporal model that needs dates uses them (shifting the season changes the output)."""
    torch.manual_seed(5)
    model, b = model_and_batch(name, 16, 16, seed=5)
    for p in model.parameters():  # stand-ins start with zero date weights
        nn.init.normal_(p, std=0.5)
    model.eval()
    with torch.no_grad():
        a = run_model(model, b).pred
        shifted = ModelBatch(b.optical, b.sar, b.dates + 120.0, b.time_mask)
        assert not torch.allclose(a, run_model(model, shifted).pred)


@pytest.mark.parametrize("name", NO_SAR)
def test_a_model_without_sar_ignores_sar(name):
    model, b = model_and_batch(name, 24, 24, batch=2, seed=6)
    assert b.sar is None
    lead = b.optical.shape[:-3]
    sar = torch.rand(*lead, 2, 24, 24)
    model.eval()
    with torch.no_grad():
        without = run_model(model, b)
        with_sar = run_model(model, ModelBatch(b.optical, sar, b.dates, b.time_mask))
    assert_outputs_equal(with_sar, without)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("change", [{"in_optical": 3}, {"in_sar": 0}])
def test_channel_variation(name, change):
    """Where the constructor allows other channel counts, the spec follows the kwargs and the
    model runs on inputs of those counts; where it refuses them, the error names the argument."""
    ((arg, value),) = change.items()
    info = get_model_info(name)
    params = inspect.signature(info.model_class or info.builder).parameters
    if arg not in params:
        pytest.skip(f"{name} has no {arg} argument")
    try:
        model = small_model(name, **change)
    except ConfigError as exc:
        assert arg in str(exc)
        return
    spec = spec_of(model)
    if arg == "in_optical":
        assert spec.inputs.optical_channels == value and spec.out_channels == value
    else:
        assert spec.inputs.sar_channels == 0 and not spec.inputs.needs_sar
    b = batch_for(spec, 20, 20, batch=2)
    with torch.no_grad():
        check_output(spec, run_model(model.eval(), b), b)


@pytest.mark.parametrize("name", MODELS)
def test_no_size_tied_state(name):
    model, b = model_and_batch(name, 32, 48)
    keys_before = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    crop = ModelBatch(
        b.optical[..., :24, :40],
        None if b.sar is None else b.sar[..., :24, :40],
        b.dates,
        b.time_mask,
    )
    with torch.no_grad():
        run_model(model.eval(), b)
        run_model(model, crop)
    keys_after = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert keys_before == keys_after
    assert not [k for k in keys_after if "attn_mask" in k or "relative_position_index" in k]


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(1)
    model, b = model_and_batch(name, 32, 32, batch=2)
    model.eval()
    save_pretrained(model, tmp_path / name)
    cfg = json.loads((tmp_path / name / "config.json").read_text())
    assert cfg["name"] == name and cfg["protocol"] == get_model_info(name).protocol
    loaded = load_pretrained(tmp_path / name)
    assert not loaded.training
    assert spec_of(loaded) == spec_of(model)
    with torch.no_grad():
        assert_outputs_equal(run_model(loaded, b), run_model(model, b))


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(2)
    model, b = model_and_batch(name, 32, 32, batch=2)
    model.train()
    out = run_model(model, b)
    sum(t.square().mean() for t in all_outputs(out)).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:10]}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", MODELS)
def test_cuda_matches_cpu(name):
    model, b = model_and_batch(name, 32, 48, batch=2)
    model.eval()
    with torch.no_grad():
        cpu = run_model(model, b)
        gpu = run_model(model.cuda(), b.to("cuda"))
    for x, y in zip(all_outputs(gpu), all_outputs(cpu), strict=True):
        torch.testing.assert_close(x.cpu(), y, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------- run_model errors
def _dsen2cr():
    return small_model("dsen2cr").eval()


def _temporal():
    return small_model("standin_temporal", max_dates=4).eval()


def _temporal_batch(t: int = 3) -> ModelBatch:
    b = batch_for(spec_of(_temporal()), 8, 8, batch=2)
    return ModelBatch(
        b.optical[:, :1].repeat(1, t, 1, 1, 1),
        b.sar[:, :1].repeat(1, t, 1, 1, 1),
        torch.arange(2 * t, dtype=torch.float32).view(2, t),
        None,
    )


def test_run_model_wrong_optical_channels():
    with pytest.raises(
        ConfigError,
        match=r"model 'dsen2cr' \(mono-temporal\) expects optical \[B, 13, H, W\], "
        r"got \(1, 12, 8, 8\)",
    ):
        run_model(_dsen2cr(), optical=torch.rand(1, 12, 8, 8), sar=torch.rand(1, 2, 8, 8))


def test_run_model_time_series_to_a_mono_model():
    with pytest.raises(ConfigError, match="a time series given to a mono-temporal model"):
        run_model(_dsen2cr(), optical=torch.rand(1, 2, 13, 8, 8), sar=torch.rand(1, 2, 2, 8, 8))


def test_run_model_one_date_to_a_temporal_model():
    b = _temporal_batch()
    with pytest.raises(
        ConfigError,
        match=r"expects optical \[B, T, 13, H, W\], got \(2, 13, 8, 8\) \(one date given to a "
        r"temporal model: add the T axis",
    ):
        run_model(_temporal(), optical=b.optical[:, 0], sar=b.sar[:, 0], dates=b.dates)


def test_run_model_missing_dates():
    b = _temporal_batch()
    with pytest.raises(
        ConfigError, match=r"needs dates \[B, T\] = \[2, 3\] \(days since 2014-04-03"
    ):
        run_model(_temporal(), optical=b.optical, sar=b.sar)


def test_run_model_missing_and_misshapen_sar():
    b = _temporal_batch()
    with pytest.raises(ConfigError, match=r"needs a SAR input \[B, T, 2, H, W\], got none"):
        run_model(_temporal(), optical=b.optical, dates=b.dates)
    with pytest.raises(ConfigError, match=r"needs a SAR input \[B, 2, H, W\], got none"):
        run_model(_dsen2cr(), optical=torch.rand(1, 13, 8, 8))
    with pytest.raises(ConfigError, match=r"expects sar \[1, 2, 8, 8\] .* got \(1, 2, 8, 6\)"):
        run_model(_dsen2cr(), optical=torch.rand(1, 13, 8, 8), sar=torch.rand(1, 2, 8, 6))


def test_run_model_too_many_dates():
    b = _temporal_batch(t=5)
    with pytest.raises(ConfigError, match=r"takes at most 4 dates, got T=5"):
        run_model(_temporal(), b)


def test_run_model_bad_dates_and_time_mask():
    b = _temporal_batch()
    model = _temporal()
    with pytest.raises(ConfigError, match=r"expects dates of shape \[2, 3\], got \(2, 2\)"):
        run_model(model, ModelBatch(b.optical, b.sar, b.dates[:, :2]))
    with pytest.raises(ConfigError, match=r"expects time_mask of shape \[2, 3\], got \(3,\)"):
        run_model(model, ModelBatch(b.optical, b.sar, b.dates, torch.ones(3, dtype=torch.bool)))
    empty = torch.ones(2, 3, dtype=torch.bool)
    empty[1] = False
    with pytest.raises(ConfigError, match="every sample needs at least one real date"):
        run_model(model, ModelBatch(b.optical, b.sar, b.dates, empty))


def test_run_model_integer_optical():
    with pytest.raises(ConfigError, match="optical must be a float tensor, got torch.int64"):
        run_model(_dsen2cr(), optical=torch.ones(1, 13, 4, 4, dtype=torch.long))


def test_run_model_batch_or_tensors():
    b = ModelBatch(torch.rand(1, 13, 4, 4), torch.rand(1, 2, 4, 4))
    with pytest.raises(ConfigError, match="a ModelBatch or tensors, not both"):
        run_model(_dsen2cr(), b, optical=b.optical)
    with pytest.raises(ConfigError, match="needs a ModelBatch or optical="):
        run_model(_dsen2cr())


class _Toy(nn.Module):
    """Returns whatever it was told to (for the output checks)."""

    def __init__(self, spec: ModelSpec, make) -> None:
        super().__init__()
        self.cloudfree_spec = spec
        self.make = make

    def forward(self, optical, sar=None):
        return self.make(optical)


_MONO = InputSpec(optical_channels=4, sar_channels=0, needs_sar=False)


@pytest.mark.parametrize(
    ("outputs", "tasks", "make", "message"),
    [
        (
            OutputSpec(),
            {"regression"},
            lambda x: x[:, :3],
            r"returned pred of shape \(1, 3, 6, 6\), "
            r"expected \[1, 4, 6, 6\] for optical input \(1, 4, 6, 6\)",
        ),
        (OutputSpec(), {"regression"}, lambda x: x[..., :5], r"pred of shape \(1, 4, 6, 5\)"),
        (OutputSpec(channels=2), {"regression"}, lambda x: x, r"expected \[1, 2, 6, 6\]"),
        (
            OutputSpec(has_variance=True),
            {"uncertainty"},
            lambda x: ModelOutput(x),
            "declares a variance output but returned none",
        ),
        (
            OutputSpec(has_variance=True),
            {"uncertainty"},
            lambda x: ModelOutput(x, variance=x[:, :1]),
            r"returned variance of shape \(1, 1, 6, 6\)",
        ),
        (
            OutputSpec(num_stages=2),
            {"regression", "multi_stage"},
            lambda x: ModelOutput(x, stages=(x,)),
            r"declares 2 stage output\(s\) but returned 1",
        ),
        (
            OutputSpec(num_stages=1),
            {"regression", "multi_stage"},
            lambda x: ModelOutput(x, stages=(x[:, :, :3],)),
            r"returned stages\[0\] of shape",
        ),
        (
            OutputSpec(),
            {"regression"},
            lambda x: (x, x),
            "returned tuple; a network returns a tensor",
        ),
    ],
)
def test_run_model_checks_the_output(outputs, tasks, make, message):
    toy = _Toy(ModelSpec(_MONO, outputs, frozenset(tasks)), make)
    with pytest.raises(ConfigError, match=message):
        run_model(toy, optical=torch.rand(1, 4, 6, 6))


def test_run_model_accepts_a_declared_output_channel_count():
    toy = _Toy(ModelSpec(_MONO, OutputSpec(channels=2)), lambda x: x[:, :2])
    assert run_model(toy, optical=torch.rand(3, 4, 6, 6)).pred.shape == (3, 2, 6, 6)


# ------------------------------------------------------------------------- registry errors
@pytest.fixture
def toy_registry():
    """Register toy models under unique names; removed from the registry afterwards."""
    added: list[str] = []

    def register(name: str, builder, **kwargs):
        unique = f"_test_toy_{name}"
        register_model(unique, paper="none", protocol="glf_cr", **kwargs)(builder)
        added.append(unique)
        return unique

    yield register
    for name in added:
        _registry._REGISTRY.pop(name, None)


class _RaisesTypeError(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        raise TypeError("an internal bug of the network")


def test_unknown_model_and_bad_kwargs():
    with pytest.raises(ConfigError, match="unknown model 'nope'.*glf_cr"):
        create_model("nope")
    with pytest.raises(
        ConfigError,
        match=r"bad arguments for model 'dsen2cr': .*not_an_argument.*; valid arguments: "
        r"in_optical, in_sar, width, num_blocks, res_scale",
    ):
        create_model("dsen2cr", not_an_argument=3)
    assert list_models("glf_cr*") and all(n.startswith("glf_cr") for n in list_models("glf_cr*"))
    assert list_models("standin_*") == []
    assert "standin_temporal" in list_models("standin_*", include_standins=True)


def test_type_error_inside_a_builder_propagates(toy_registry):
    name = toy_registry("raises", lambda **kw: _RaisesTypeError(**kw), model_class=_RaisesTypeError)
    with pytest.raises(TypeError, match="an internal bug of the network"):
        create_model(name, width=3)
    with pytest.raises(
        ConfigError, match=rf"bad arguments for model '{name}'.*valid arguments: width"
    ):
        create_model(name, depth=3)
    # a plain builder (no model_class) is checked against its own signature
    plain = toy_registry("plain", lambda width=4: _RaisesTypeError(width))
    with pytest.raises(TypeError, match="an internal bug"):
        create_model(plain)
    with pytest.raises(ConfigError, match="bad arguments"):
        create_model(plain, depth=1)


def test_toy_registration_is_removed(toy_registry):
    assert not [n for n in list_models(include_standins=True) if n.startswith("_test_toy_")]


def test_registering_a_name_twice_and_a_failing_spec(toy_registry):
    name = toy_registry("twice", lambda: nn.Identity())
    with pytest.raises(ConfigError, match="already registered"):
        register_model(name, paper="x", protocol="glf_cr")(lambda: nn.Identity())

    def bad_spec(kwargs):
        return ModelSpec(tasks=frozenset({"nonsense"}))

    with pytest.raises(ConfigError, match="unknown task kind"):
        toy_registry("badspec", lambda: nn.Identity(), spec=bad_spec)
    assert "_test_toy_badspec" not in list_models(include_standins=True)  # not left behind


def test_save_pretrained_needs_a_registry_model(tmp_path):
    with pytest.raises(ConfigError, match="create_model"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path)


def test_load_pretrained_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match=r"config\.json: file not found"):
        load_pretrained(tmp_path / "empty")
    # weights of one configuration under the config of another
    a = create_model("dsen2cr", width=8, num_blocks=1)
    save_pretrained(a, tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    cfg["kwargs"]["width"] = 16
    (tmp_path / "a" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputFileError, match="do not fit model 'dsen2cr'"):
        load_pretrained(tmp_path / "a")


def test_load_pretrained_keeps_the_saved_data_conventions(tmp_path):
    model = create_model("dsen2cr", width=8, num_blocks=1)
    model.cloudfree_config["bands"] = "rgb"  # e.g. trained on a band subset
    model.cloudfree_config["protocol"] = "uncrtaints"
    save_pretrained(model, tmp_path / "w")
    loaded = load_pretrained(tmp_path / "w")
    assert loaded.cloudfree_config["bands"] == "rgb"
    assert loaded.cloudfree_config["protocol"] == "uncrtaints"
