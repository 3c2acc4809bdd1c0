"""Training configuration: schema, error messages, dotted overrides, shipped recipes."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.cli.models_cmd import parse_assignments
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.train.config import (
    DataConfig,
    TrainConfig,
    apply_overrides,
    build_config,
    config_to_yaml,
    describe_keys,
    list_recipes,
    load_recipe,
    load_yaml_config,
    recipe_text,
    resolve_config,
    set_dotted,
)

MINIMAL = {"model": {"name": "dsen2cr"}, "trainer": {"max_steps": 10}}
PAPER_RECIPES = ("glf_cr", "carf", "carf_code", "dsen2cr")


def test_minimal_config_defaults() -> None:
    cfg = build_config(MINIMAL)
    assert cfg.model.kwargs == {} and cfg.model.init_weights is None
    assert cfg.data.root is None and cfg.data.protocol is None and cfg.data.bands is None
    assert cfg.data.patch_size == 128 and cfg.data.val_patch_size is None
    assert cfg.loss.name == "l1" and cfg.optimizer.name == "adam"
    assert cfg.scheduler.name == "none" and cfg.seed == 0
    assert cfg.run_name == "dsen2cr"


@pytest.mark.parametrize(
    ("raw_key", "section_keys"),
    [
        ("bogus", set(TrainConfig.model_fields)),
        ("data.patch_szie", set(DataConfig.model_fields)),
        ("data.augment.flip", {"hflip", "vflip", "rot90"}),
        ("trainer.max_step", {"max_steps", "max_epochs", "devices", "accelerator"}),
    ],
)
def test_unknown_key_lists_valid_keys_of_its_section(raw_key: str, section_keys: set) -> None:
    raw = apply_overrides(MINIMAL, {raw_key: 1})
    with pytest.raises(ConfigError) as info:
        build_config(raw, source="my.yaml")
    msg = str(info.value)
    assert msg.startswith("my.yaml: invalid training configuration")
    assert f"unknown key '{raw_key}'" in msg
    listed = msg.split("valid keys", 1)[1]
    for key in section_keys:
        assert key in listed, (key, msg)
    assert "\n" not in msg


def test_unknown_key_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match="did you mean 'patch_size'"):
        build_config(MINIMAL, {"data.patch_szie": 64})
    with pytest.raises(ConfigError, match="top level: (adversarial, )?data, description"):
        build_config(MINIMAL, {"seeed": 1})


def test_all_problems_reported_in_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        build_config(MINIMAL, {"optimizer.lr": -1, "data.batch_size": 0, "foo": 1})
    msg = str(info.value)
    assert "optimizer.lr" in msg and "data.batch_size" in msg and "unknown key 'foo'" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"optimizer.name": "rmsprop"}, "optimizer.name"),
        ({"scheduler.interval": "batch"}, "scheduler.interval"),
        ({"trainer.precision": "8-bit"}, "trainer.precision"),
        ({"trainer.max_steps": None}, "set trainer.max_steps or trainer.max_epochs"),
        ({"optimizer.betas": [0.9, 1.5]}, "each beta must be in [0, 1)"),
        ({"data.cloud_threshold": 2}, "data.cloud_threshold"),
        ({"data.num_workers": -1}, "data.num_workers"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_values(overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace(")", r"\)")):
        build_config(MINIMAL, overrides)


def test_missing_model_is_reported() -> None:
    with pytest.raises(ConfigError, match="'model' is required"):
        build_config({"trainer": {"max_steps": 1}})


def test_dotted_overrides_create_model_kwargs_and_parse_yaml_scalars() -> None:
    overrides = parse_assignments(
        (
            "model.kwargs.width=32",
            "model.kwargs.res_scale=0.2",
            "optimizer.lr=5e-4",
            "data.augment.hflip=true",
            "data.bands=[B04, B03, B02]",
            "trainer.max_epochs=3",
        )
    )
    cfg = build_config(MINIMAL, overrides, data_root="/data", out="runs/x")
    assert cfg.model.kwargs == {"width": 32, "res_scale": 0.2}
    assert cfg.optimizer.lr == pytest.approx(5e-4)
    assert cfg.data.augment.hflip is True and cfg.data.augment.vflip is False
    assert cfg.data.bands == ["B04", "B03", "B02"]
    assert cfg.trainer.max_epochs == 3 and cfg.trainer.max_steps == 10
    assert cfg.data.root == "/data" and cfg.out == "runs/x"


def test_overrides_do_not_modify_the_input() -> None:
    raw = {"model": {"name": "dsen2cr", "kwargs": {"width": 8}}, "trainer": {"max_steps": 1}}
    out = apply_overrides(raw, {"model.kwargs.width": 16})
    assert raw["model"]["kwargs"]["width"] == 8 and out["model"]["kwargs"]["width"] == 16


def test_set_dotted_errors() -> None:
    raw = {"seed": 1}
    with pytest.raises(ConfigError, match="'seed' is a value, not a section"):
        set_dotted(raw, "seed.x", 2)
    with pytest.raises(ConfigError, match="bad configuration key"):
        set_dotted(raw, "a..b", 2)


def test_data_root_flag_wins_over_set() -> None:
    cfg = build_config(MINIMAL, {"data.root": "/from/set"}, data_root="/from/flag")
    assert cfg.data.root == "/from/flag"


def test_yaml_round_trip(tmp_path) -> None:
    cfg = build_config(load_recipe("dsen2cr"), {"model.kwargs.width": 8}, data_root="/d")
    path = tmp_path / "c.yaml"
    path.write_text(config_to_yaml(cfg))
    again = build_config(load_yaml_config(path))
    assert again == cfg
    text = path.read_text()
    assert text.index("model:") < text.index("data:") < text.index("trainer:")


def test_load_yaml_config_errors(tmp_path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        load_yaml_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(InputFileError, match="must be a YAML mapping"):
        load_yaml_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: {name: [\n")
    with pytest.raises(InputFileError, match="not valid YAML"):
        load_yaml_config(broken)


def test_describe_keys() -> None:
    keys = describe_keys()
    for key in ("model.name", "model.kwargs", "data.augment.rot90", "optimizer.lr", "seed"):
        assert key in keys
    assert describe_keys("data.augment") == [
        "data.augment.hflip",
        "data.augment.vflip",
        "data.augment.rot90",
    ]


# --------------------------------------------------------------------------- recipes
def test_recipes_are_listed_with_descriptions() -> None:
    recipes = list_recipes()
    assert set(PAPER_RECIPES) <= set(recipes)
    assert all(desc and "\n" not in desc for desc in recipes.values())


@pytest.mark.parametrize("name", sorted(list_recipes()))
def test_every_recipe_validates_and_needs_data(name: str) -> None:
    raw = load_recipe(name)
    assert raw["data"]["root"] is None
    cfg = build_config(raw, data_root="/somewhere")
    assert cfg.name == name and cfg.description
    text = recipe_text(name)
    assert text.lstrip().startswith("#")  # the source is stated in a comment


def test_unknown_recipe() -> None:
    with pytest.raises(ConfigError, match="unknown recipe 'glfcr'.*did you mean 'glf_cr'"):
        load_recipe("glfcr")


def _recipe(name: str) -> TrainConfig:
    return build_config(load_recipe(name), data_root="/d")


def test_glf_cr_recipe_paper_settings() -> None:
    c = _recipe("glf_cr")
    assert c.model.name == "glf_cr" and c.model.kwargs == {}
    assert c.loss.name == "l1"
    assert (c.optimizer.name, c.optimizer.lr) == ("adam", 1e-4)
    assert (c.scheduler.name, c.scheduler.step_size, c.scheduler.gamma) == ("step", 5, 0.5)
    assert c.scheduler.interval == "epoch"
    assert c.trainer.max_epochs == 30 and c.trainer.max_steps is None
    assert (c.data.patch_size, c.data.batch_size) == (128, 12)
    assert c.data.protocol is None and resolve_config(c).data.protocol == "glf_cr"
    assert not (c.data.augment.hflip or c.data.augment.vflip or c.data.augment.rot90)


def test_carf_recipe_paper_settings() -> None:
    c = _recipe("carf")
    assert c.model.name == "carf"
    assert c.loss.name == "carf" and c.data.cloud_mask_method == "carf"
    assert c.loss.kwargs["alpha"] == 0.8
    assert (c.optimizer.name, c.optimizer.lr) == ("adam", 1e-5)
    assert (c.scheduler.name, c.scheduler.step_size, c.scheduler.gamma) == ("step", 5, 0.5)
    assert c.trainer.max_epochs == 30
    assert (c.data.patch_size, c.data.batch_size) == (128, 12)


def test_carf_code_recipe_settings() -> None:
    c = _recipe("carf_code")
    assert c.model.name == "carf"
    assert c.loss.name == "carf_code" and c.data.cloud_mask_method == "rule_based"
    assert (c.optimizer.name, c.optimizer.lr) == ("adam", 1e-4)
    assert (c.scheduler.name, c.scheduler.step_size, c.scheduler.gamma) == ("step", 5, 0.5)
    assert c.trainer.max_epochs == 30
    assert (c.data.patch_size, c.data.batch_size) == (128, 1)


def test_dsen2cr_recipe_settings() -> None:
    c = _recipe("dsen2cr")
    assert c.model.name == "dsen2cr" and c.loss.name == "carl"
    assert (c.optimizer.name, c.optimizer.lr) == ("nadam", 7e-5)
    assert c.optimizer.momentum_decay == 0.004
    assert c.optimizer.betas == (0.9, 0.999) and c.optimizer.eps == 1e-8
    assert c.scheduler.name == "none"
    assert c.trainer.max_epochs == 8
    assert (c.data.patch_size, c.data.batch_size) == (128, 16)
    assert c.data.augment.hflip and c.data.augment.vflip and c.data.augment.rot90
    assert c.seed == 42 and resolve_config(c).data.protocol == "dsen2cr"


def test_recipe_losses_and_models_exist() -> None:
    from cloudfree.losses import build_loss
    from cloudfree.models import get_model_info, list_models

    for name in list_recipes():
        c = _recipe(name)
        info = get_model_info(c.model.name)
        # a published model (or pre-training network), not a stand-in
        assert c.model.name in list_models(include_pretrain=True)
        # the model's default recipe exists and trains that model
        assert info.default_recipe in list_recipes(), (name, info.default_recipe)
        assert _recipe(info.default_recipe).model.name == c.model.name
        tasks = info.resolve_spec(c.model.kwargs).tasks
        if info.is_pretrain:  # ca_mtcr_sar_vqvae: not a cloud-removal model
            assert tasks == {"sar_pretrain"} and c.model.name not in list_models()
        else:
            assert {"regression", "uncertainty"} & tasks
        if c.loss.kwargs.get("vgg_weights", "") is None:  # the user supplies the VGG16 file
            with pytest.raises(ConfigError, match="vgg_weights"):
                build_loss(c.loss.name, **c.loss.kwargs)
            continue
        build_loss(c.loss.name, **c.loss.kwargs)


# --------------------------------------------------------------------------- data section
def test_dataset_must_be_registered() -> None:
    assert build_config(MINIMAL).data.dataset == "sen12mscr"
    with pytest.raises(ConfigError) as info:
        build_config(MINIMAL, {"data.dataset": "sen12mcr"}, source="my.yaml")
    msg = str(info.value)
    assert msg.startswith("my.yaml: invalid training configuration: data.dataset: ")
    assert "unknown dataset 'sen12mcr' (did you mean 'sen12mscr'?)" in msg
    assert "registered datasets: allclear, sen12mscr, sen12mscr_ts" in msg and "\n" not in msg


def test_temporal_model_needs_a_time_series_dataset(tmp_path) -> None:
    from cloudfree.train.run import check_config

    cfg = build_config(MINIMAL, {"model.name": "uncrtaints", "data.root": str(tmp_path)})
    with pytest.raises(ConfigError, match="'uncrtaints' is a multi-temporal model, but "
                       "data.dataset 'sen12mscr' holds single dates"):  # fmt: skip
        check_config(cfg)


def test_dataset_options_reach_the_time_series_dataset(tmp_path) -> None:
    from cloudfree.train.datamodule import _dataset_kwargs

    cfg = build_config(load_recipe("uncrtaints"), data_root=tmp_path, out=None)
    assert _dataset_kwargs(cfg, cfg.data.train_options) == {
        "cloud_masks": "rule_based",
        "cloud_threshold": 0.2,
        "skip_incomplete": False,
        "seed": cfg.seed,
        "n_input_t": 3,
        "sampler": "random",
    }
    assert _dataset_kwargs(cfg, cfg.data.val_options)["sampler"] == "fixed"
    # mono-temporal datasets: the options are added to the usual ones
    mono = build_config(MINIMAL, {"data.options": {"seasons": ["spring"]}, "data.root": "/d"})
    assert _dataset_kwargs(mono, {})["seasons"] == ["spring"]


def test_masks_key_defaults_to_null() -> None:
    assert build_config(MINIMAL).data.masks is None
    assert build_config(MINIMAL, {"data.masks": False}).data.masks is False
    assert "data.masks" in describe_keys("data")


@pytest.mark.parametrize("name", sorted(list_recipes()))
def test_recipes_leave_protocol_and_bands_to_the_model(name: str) -> None:
    """Recipes set data.protocol / data.bands to null; the comment names what the model uses,
    which is what resolve_config fills in (so the comment cannot go stale)."""
    raw = load_recipe(name)
    assert raw["data"]["protocol"] is None and raw["data"]["bands"] is None
    resolved = resolve_config(build_config(raw, data_root="/d")).data
    data_lines = recipe_text(name).split("\ndata:\n", 1)[1].split("\nloss:", 1)[0]
    lines = {ln.split(":")[0].strip(): ln for ln in data_lines.splitlines()}
    assert f"# the model's: {resolved.protocol} (" in lines["protocol"]
    assert f"# the model's: {resolved.bands} (" in lines["bands"]


def test_replaced_model_brings_its_protocol_unless_set() -> None:
    recipe = load_recipe("dsen2cr")
    assert resolve_config(build_config(recipe)).data.protocol == "dsen2cr"
    swapped = resolve_config(build_config(recipe, {"model.name": "glf_cr"}))
    assert (swapped.data.protocol, swapped.data.bands) == ("glf_cr", "all")
    kept = resolve_config(
        build_config(recipe, {"model.name": "glf_cr", "data.protocol": "dsen2cr"})
    )
    assert kept.data.protocol == "dsen2cr"  # an explicit --set wins
    user_file = {**MINIMAL, "data": {"protocol": "uncrtaints", "bands": "rgb"}}
    mine = resolve_config(build_config(user_file)).data
    assert (mine.protocol, mine.bands) == ("uncrtaints", "rgb")
    # the resolved values are what a run stores, and they survive a round trip
    again = build_config(yaml.safe_load(config_to_yaml(swapped)))
    assert (again.data.protocol, again.data.bands) == ("glf_cr", "all")


# --------------------------------------------------------------------------- CLI
def test_cli_recipes_list_and_show() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["recipes", "list"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == sorted(list_recipes())
    res = runner.invoke(main, ["recipes", "show", "dsen2cr"])
    assert res.exit_code == 0
    assert yaml.safe_load(res.output)["optimizer"]["name"] == "nadam"
    assert "# DSen2-CR" in res.output
    res = runner.invoke(main, ["recipes", "show", "nope"])
    assert res.exit_code == 1 and "Error: unknown recipe 'nope'" in res.output


def test_cli_train_reports_config_errors_in_one_line(tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        main, ["train", "--recipe", "glf_cr", "--data", str(tmp_path), "--set", "data.pach=1"]
    )
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "unknown key 'data.pach'" in res.output
    res = runner.invoke(main, ["train", "--data", str(tmp_path)])
    assert res.exit_code == 1 and "give --recipe NAME or --config FILE" in res.output
    res = runner.invoke(main, ["train", "--recipe", "glf_cr", "--config", str(tmp_path / "x.yaml")])
    assert res.exit_code == 1 and "not both" in res.output
    res = runner.invoke(main, ["train", "--recipe", "glf_cr"])
    assert res.exit_code == 1 and "data.root is not set; pass --data ROOT" in res.output
