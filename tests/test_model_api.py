"""The model contract module itself (:mod:`cloudfree.models.api`): spec validation, dates,
the batch and output types, and ``run_model`` on modules that were not built by the registry."""

from __future__ import annotations

import datetime as dt

import pytest
import torch
from torch import nn

from cloudfree.errors import ConfigError
from cloudfree.models import (
    DATE_EPOCH,
    InputSpec,
    ModelBatch,
    ModelOutput,
    ModelSpec,
    OutputSpec,
    days_since_epoch,
    run_model,
    spec_of,
)
from cloudfree.models.api import check_int, with_spec


# ------------------------------------------------------------------------------ specs
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(tasks={"regression", "denoising"}), r"unknown task kind\(s\) \['denoising'\]"),
        (dict(tasks={"regression", "uncertainty"}), "either for regression or for uncertainty"),
        (dict(tasks={"adversarial"}), "either for regression or for uncertainty"),
        (dict(tasks={"uncertainty"}), "uncertainty task needs an output spec with has_variance"),
        (dict(tasks={"regression", "multi_stage"}), "multi_stage task needs .* num_stages >= 1"),
    ],
)
def test_model_spec_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelSpec(**kwargs)


def test_model_spec_accepts_valid_combinations_and_freezes_tasks():
    spec = ModelSpec(
        outputs=OutputSpec(has_variance=True, num_stages=2),
        tasks={"uncertainty", "multi_stage", "adversarial"},  # type: ignore[arg-type]
    )
    assert spec.tasks == frozenset({"uncertainty", "multi_stage", "adversarial"})
    assert isinstance(spec.tasks, frozenset)
    assert hash(spec) == hash(ModelSpec(spec.inputs, spec.outputs, frozenset(spec.tasks)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(needs_dates=True), "needs_dates requires temporal=True"),
        (dict(max_dates=4), "max_dates needs temporal=True"),
        (dict(temporal=True, max_dates=0), "a value >= 1"),
        (dict(spatial_multiple=0), "spatial_multiple must be >= 1"),
    ],
)
def test_input_spec_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        InputSpec(**kwargs)


def test_out_channels_and_describe():
    default = ModelSpec()
    assert default.out_channels == 13
    assert default.describe() == "mono-temporal, SAR; regression"
    assert ModelSpec(outputs=OutputSpec(channels=3)).out_channels == 3
    assert ModelSpec(InputSpec(optical_channels=None)).out_channels is None
    temporal = ModelSpec(
        InputSpec(temporal=True, max_dates=6, needs_dates=True),
        OutputSpec(has_variance=True, num_stages=2),
        frozenset({"uncertainty", "multi_stage"}),
    )
    assert temporal.describe() == (
        "temporal (T <= 6), SAR, dates, variance, 2 stages; multi_stage+uncertainty"
    )
    assert ModelSpec(InputSpec(needs_sar=False)).describe().startswith("mono-temporal, no SAR;")
    one = ModelSpec(
        outputs=OutputSpec(num_stages=1), tasks=frozenset({"regression", "multi_stage"})
    )
    assert one.describe() == "mono-temporal, SAR, 1 stage; multi_stage+regression"


def test_with_spec_changes_input_fields_only():
    spec = ModelSpec(outputs=OutputSpec(channels=4))
    changed = with_spec(spec, optical_channels=3, needs_sar=False)
    assert changed.inputs.optical_channels == 3 and not changed.inputs.needs_sar
    assert changed.outputs == spec.outputs and spec.inputs.optical_channels == 13


def test_check_int():
    assert check_int("Net", "width", 4, 1) == 4
    for bad in (0, True, 2.0, "3"):
        with pytest.raises(ConfigError, match=r"Net: width must be an integer >= 1, got"):
            check_int("Net", "width", bad, 1)


# ------------------------------------------------------------------------------ dates
def test_days_since_epoch():
    assert DATE_EPOCH == dt.date(2014, 4, 3)
    assert days_since_epoch(dt.date(2014, 4, 3)) == 0
    assert days_since_epoch("2014-04-03") == 0
    assert days_since_epoch("2014-04-04") == 1
    assert days_since_epoch("2014-04-02") == -1
    assert days_since_epoch("2015-04-03") == 365
    assert days_since_epoch("2018-03-14T10:25:31Z") == days_since_epoch(dt.date(2018, 3, 14))
    assert days_since_epoch(dt.datetime(2014, 4, 3, 23, 59)) == 0
    assert days_since_epoch("2020-01-01") == (dt.date(2020, 1, 1) - dt.date(2014, 4, 3)).days


@pytest.mark.parametrize("bad", ["yesterday", "2014-13-01", "", "03/04/2014"])
def test_days_since_epoch_bad_strings(bad):
    with pytest.raises(ConfigError, match=r"not an ISO date \(YYYY-MM-DD\)"):
        days_since_epoch(bad)


@pytest.mark.parametrize("bad", [20140403, None, 3.5])
def test_days_since_epoch_rejects_other_types(bad):
    with pytest.raises(ConfigError, match=r"not a date: .* \(give a date, datetime or ISO"):
        days_since_epoch(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ data types
def test_model_batch_from_sample():
    optical, sar = torch.rand(2, 3, 13, 4, 4), torch.rand(2, 3, 2, 4, 4)
    dates, mask = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    b = ModelBatch.from_sample(
        {"optical": optical, "sar": sar, "dates": dates, "time_mask": mask, "target": optical}
    )
    assert b.optical is optical and b.sar is sar and b.dates is dates and b.time_mask is mask
    assert b.temporal and b.batch_size == 2
    mono = ModelBatch.from_sample({"optical": optical[:, 0]})
    assert mono.sar is None and mono.dates is None and mono.time_mask is None
    assert not mono.temporal
    with pytest.raises(ConfigError, match="a batch needs an 'optical' entry; it has 'sar'"):
        ModelBatch.from_sample({"sar": sar})


def test_model_batch_to():
    b = ModelBatch(torch.rand(1, 13, 2, 2), None, None, None)
    moved = b.to(torch.device("cpu"))
    assert moved is not b and moved.sar is None and moved.dates is None
    assert torch.equal(moved.optical, b.optical)
    half = ModelBatch(torch.rand(1, 2, 13, 2, 2), torch.rand(1, 2, 2, 2, 2), torch.zeros(1, 2))
    moved = half.to("meta")
    assert moved.optical.is_meta and moved.sar.is_meta and moved.dates.is_meta
    assert moved.time_mask is None and half.optical.device.type == "cpu"


def test_model_output_detach():
    w = torch.ones(1, requires_grad=True)
    out = ModelOutput(
        pred=w * 2,
        variance=w * 3,
        stages=(w * 4, w * 5),
        extras={"attn": w * 6, "note": "kept"},
    )
    d = out.detach()
    assert all(not t.requires_grad for t in (d.pred, d.variance, *d.stages, d.extras["attn"]))
    assert d.extras["note"] == "kept" and len(d.stages) == 2
    assert float(d.stages[1]) == 5.0 and out.pred.requires_grad
    assert ModelOutput(pred=w * 1).detach().variance is None


# ------------------------------------------------------------------------------ plain modules
class _Plain(nn.Module):
    """A module without a spec: optical (+ SAR mean) -> optical's channels."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, optical, sar=None):
        out = optical * self.scale
        return out if sar is None else out + sar.mean(dim=1, keepdim=True)


@pytest.mark.parametrize("channels", [1, 3, 13, 20])
def test_plain_module_runs_with_any_channel_count(channels):
    model = _Plain()
    assert spec_of(model).inputs.optical_channels is None
    x = torch.rand(2, channels, 5, 7)
    out = run_model(model, optical=x)
    torch.testing.assert_close(out.pred, 2 * x, rtol=0, atol=0)
    assert out.variance is None and out.stages == ()
    sar = torch.rand(2, 4, 5, 7)  # passed through as given (the plain spec checks no counts)
    with_sar = run_model(model, optical=x, sar=sar).pred
    torch.testing.assert_close(with_sar, 2 * x + sar.mean(dim=1, keepdim=True))


def test_plain_module_checks_the_output_shape():
    class Shrinks(nn.Module):
        def forward(self, optical, sar=None):
            return optical[:, :, 1:]

    with pytest.raises(ConfigError, match=r"model 'Shrinks' returned pred of shape \(1, 3, 3, 4\)"):
        run_model(Shrinks(), optical=torch.rand(1, 3, 4, 4))


def test_module_returning_a_tuple_is_a_clear_error():
    class Pair(nn.Module):
        def forward(self, optical, sar=None):
            return optical, optical

    with pytest.raises(
        ConfigError,
        match=r"model 'Pair' returned tuple; a network returns a tensor or a "
        r"cloudfree\.models\.ModelOutput",
    ):
        run_model(Pair(), optical=torch.rand(1, 3, 4, 4))


def test_spec_of_reads_the_config_of_a_registry_model():
    """A model that lost its ``cloudfree_spec`` (e.g. rebuilt by hand) is resolved from
    ``cloudfree_config``."""
    m = _Plain()
    m.cloudfree_config = {"name": "dsen2cr", "kwargs": {"in_sar": 0, "in_optical": 4}}
    spec = spec_of(m)
    assert spec.inputs.optical_channels == 4 and not spec.inputs.needs_sar
    with pytest.raises(ConfigError, match=r"expects optical \[B, 4, H, W\]"):
        run_model(m, optical=torch.rand(1, 3, 4, 4))
    # an optical-only spec never passes SAR on, whatever the caller gives
    x = torch.rand(1, 4, 3, 3)
    torch.testing.assert_close(run_model(m, optical=x, sar=torch.rand(1, 2, 3, 3)).pred, 2 * x)
