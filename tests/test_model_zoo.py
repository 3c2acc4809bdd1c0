"""The model zoo page (``cloudfree.models.zoo``, ``cloudfree models zoo``): the committed
``docs/model_zoo.md`` is the generator's output, every registered model appears, parameter
counts equal real instances, meta-device MAC counts equal real CPU counts and a hand formula,
the shipped facts (parity figures, weights) are checked and match the parity fixtures, and the
convert commands fit the ``cloudfree models convert`` CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.cli.models_cmd import models as models_group
from cloudfree.errors import ConfigError
from cloudfree.models import create_model, get_model_info, list_models
from cloudfree.models.zoo import (
    ZOO_DATES,
    ZOO_SIZE,
    convert_command,
    count_registered_macs,
    count_registered_parameters,
    counts_path,
    kwargs_digest,
    load_counts,
    load_zoo_facts,
    model_zoo_markdown,
    stale_counts,
    zoo_models,
)
from parity import case_names, load_case

PAGE = Path(__file__).resolve().parents[1] / "docs" / "model_zoo.md"
REGENERATE = "run `cloudfree models zoo --overwrite --out docs/model_zoo.md`"
RECOUNT = "run `cloudfree models zoo --update-counts --overwrite --out docs/model_zoo.md`"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The page as the CLI writes it now."""
    out = tmp_path_factory.mktemp("zoo") / "model_zoo.md"
    result = CliRunner().invoke(main, ["models", "zoo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text()


def _row(page: str, name: str, section: str = "Cloud-removal models") -> list[str]:
    """The cells of the table row of ``name`` in the page's section ``section``."""
    text = page.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    for line in text.splitlines():
        if line.startswith(f"| `{name}` |"):
            return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    raise AssertionError(f"no row for {name} in section {section!r}")


# ------------------------------------------------------------------------ page is current


def test_count_cache_is_current() -> None:
    stale = stale_counts()
    assert not stale, f"stale MAC counts for {stale}: {RECOUNT}"
    counts = load_counts()
    assert (counts["size"], counts["dates"]) == (ZOO_SIZE, ZOO_DATES)


def test_committed_page_is_the_generators_output(page: str) -> None:
    assert PAGE.is_file(), f"docs/model_zoo.md is missing: {REGENERATE}"
    assert PAGE.read_text() == page, f"docs/model_zoo.md is out of date: {REGENERATE}"


def test_every_registered_model_appears_and_stand_ins_do_not(page: str) -> None:
    sections = zoo_models()
    assert sections["models"] == list_models()
    for section, names in (
        ("Cloud-removal models", sections["models"]),
        ("Building blocks", sections["blocks"]),
        ("Pre-training networks", sections["pretrain"]),
    ):
        for name in names:
            assert get_model_info(name).paper in _row(page, name, section)
    assert {n for names in sections.values() for n in names} == set(
        list_models(include_blocks=True, include_pretrain=True)
    )
    for name in set(list_models(include_standins=True)) - set(list_models()):
        assert f"`{name}`" not in page
    assert page.count('<a id="weights-glf_cr">') == 1


def test_page_cells_for_known_models(page: str) -> None:
    glf = _row(page, "glf_cr")
    assert glf[2] == "`glf_cr`" and glf[3] == "all"
    assert "xufangchn/GLF-CR" in glf[7]
    assert glf[8].startswith("`glf_cr` 3e-07 (atol 8e-06)")
    assert glf[9].startswith("published, convertible")
    assert _row(page, "mmcanet")[7] == "none (paper only)"
    assert _row(page, "mmcanet")[9] == "none (no official code)"
    assert _row(page, "carf")[9].startswith("none published")
    assert _row(page, "dsen2cr_no_sar")[9].startswith("published, not convertible")
    assert _row(page, "dsen2cr")[9].startswith("published, not convertible")  # Keras .h5
    assert _row(page, "utae_cr")[9].startswith("not stated")
    assert "`cloudfree models convert glf_cr CR_net.pth weights/glf_cr`" in page
    assert (
        "`cloudfree models convert spa_gan gen_model_epoch_200.pth weights/spa_gan_rice1`" in page
    )


# ------------------------------------------------------------------------------ counting


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("spa_gan", {}),
        ("sgbaf_base", {}),
        ("uncrtaints_mono", {"width": 16}),
        ("dsen2cr", {"width": 8, "num_blocks": 2}),
        ("glf_cr", {"width": 16, "num_blocks": 1, "layers_per_block": 1, "growth": 8}),
    ],
)
def test_parameter_counts_equal_real_instances(name: str, kwargs: dict) -> None:
    """glf_cr cannot be built on meta (it falls back to a CPU build)."""
    real = sum(p.numel() for p in create_model(name, **kwargs).parameters())
    assert count_registered_parameters(name, kwargs) == real


@pytest.mark.parametrize("name", ["spa_gan", "sgbaf_base", "uncrtaints_mono"])
def test_page_parameters_equal_real_instances(page: str, name: str) -> None:
    real = sum(p.numel() for p in create_model(name).parameters())
    assert _row(page, name)[5] == f"{real:,}"


def test_meta_mac_count_equals_the_formula_and_a_cpu_count() -> None:
    """DSen2-CR is all 3x3 convolutions: H W 9 (15 F + 2 B F^2 + 13 F) MACs."""
    f, b, h = 8, 2, 32
    kwargs = {"width": f, "num_blocks": b}
    meta = count_registered_macs("dsen2cr", size=h, kwargs=kwargs)
    assert meta.method == "meta"
    assert meta.macs == h * h * 9 * (15 * f + 2 * b * f * f + 13 * f)
    assert count_registered_macs("dsen2cr", size=h, kwargs=kwargs, device="cpu").macs == meta.macs


@pytest.mark.parametrize("name", ["spa_gan", "sgbaf_base"])
def test_meta_mac_count_equals_a_cpu_count(name: str) -> None:
    meta = count_registered_macs(name, size=32)
    cpu = count_registered_macs(name, size=32, device="cpu")
    assert meta.method == "meta" and cpu.method == "cpu"
    assert meta.macs == cpu.macs > 0


def test_temporal_model_falls_back_to_the_cpu() -> None:
    """The contract's time-mask check reads a value, which meta tensors cannot give."""
    kwargs = {"width": 16, "d_model": 32, "num_heads": 4}
    got = count_registered_macs("uncrtaints", size=32, dates=2, kwargs=kwargs)
    assert got.method == "cpu" and "meta" in got.note
    assert (
        got.macs
        == count_registered_macs("uncrtaints", size=32, dates=2, kwargs=kwargs, device="cpu").macs
    )
    more = count_registered_macs("uncrtaints", size=32, dates=3, kwargs=kwargs, device="cpu").macs
    assert more > got.macs


def test_count_registered_macs_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="size must be a positive integer"):
        count_registered_macs("spa_gan", size=0)
    with pytest.raises(ConfigError, match="device must be"):
        count_registered_macs("spa_gan", size=8, device="cuda")


def test_a_changed_entry_is_stale() -> None:
    name = "spa_gan"
    params = {n: 1 for n in [*zoo_models()["models"], *zoo_models()["pretrain"]]}
    entry = {"kwargs_digest": kwargs_digest(name), "params": 1, "macs": 5, "method": "meta"}
    counts = {"size": ZOO_SIZE, "dates": ZOO_DATES, "models": {name: entry}}
    assert name not in stale_counts(counts, params)
    assert name in stale_counts({**counts, "size": 128}, params)
    assert name in stale_counts(counts, {**params, name: 2})  # the architecture changed
    assert kwargs_digest(name, {"width": 8}) != kwargs_digest(name)


# ------------------------------------------------------------------------------- facts


def test_parity_figures_match_the_fixtures(shared_dir: Path) -> None:
    """Every model and block case of the shared fixtures is on the page, with its tolerance."""
    facts = {c["case"]: c for c in load_zoo_facts()["parity"]}
    cases = case_names(shared_dir, "model") + case_names(shared_dir, "block")
    assert sorted(facts) == sorted(cases)
    for name in cases:
        case = load_case(shared_dir, name)
        assert facts[name]["model"] == case.model_name
        assert facts[name]["kind"] == case.kind
        assert case.meta["official"]["commit"].startswith(facts[name]["commit"])
        for output, fig in facts[name]["outputs"].items():
            assert output in case.meta["outputs"]
            tol = case.tolerance(output)
            assert (fig["atol"], fig["rtol"]) == (tol["atol"], tol["rtol"])


def _facts_text(**changes: object) -> str:
    import yaml

    from cloudfree.models import zoo

    data = zoo.load_zoo_facts()
    for key, value in changes.items():
        section, index, field = key.split("__")
        data[section][int(index)][field] = value
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"parity__0__model": "no_such_model"}, "is not registered"),
        ({"weights__0__models": ["glf_cr", "glf_cr"]}, "already in weights"),
        ({"weights__0__colour": "red"}, "unknown keys"),
        ({"weights__4__file": "x.h5"}, "no official converter"),  # dsen2cr_no_sar
        ({"weights__0__status": "maybe"}, "is not one of"),
        ({"weights__0__file": None}, "needs the file"),
        ({"parity__0__outputs": {"pred": {"max_abs_diff": 1.0, "atol": 1e-5, "rtol": 1e-4}}},
         "outside"),
    ],
)  # fmt: skip
def test_bad_facts_are_refused(changes: dict, match: str) -> None:
    assert load_zoo_facts()["weights"][4]["models"] == ["dsen2cr_no_sar"]
    with pytest.raises(ConfigError, match=match):
        load_zoo_facts(_facts_text(**changes))


def test_a_model_with_official_code_needs_a_weights_entry() -> None:
    facts = load_zoo_facts()
    facts = {**facts, "weights": [e for e in facts["weights"] if "glf_cr" not in e["models"]]}
    with pytest.raises(ConfigError, match="no weights entry for glf_cr"):
        model_zoo_markdown(facts=facts)


def test_convert_commands_fit_the_convert_cli() -> None:
    """``cloudfree models convert NAME CHECKPOINT OUTDIR [--arg KEY=VALUE]``, and every
    command names a model with a converter."""
    convert = models_group.commands["convert"]
    positional = [p.name for p in convert.params if p.param_type_name == "argument"]
    assert positional == ["name", "checkpoint", "outdir"]
    commands = []
    for entry in load_zoo_facts()["weights"]:
        for name in entry["models"]:
            command = convert_command(name, entry)
            if command is None:
                continue
            words = command.split()
            assert words[:3] == ["cloudfree", "models", "convert"]
            ctx = convert.make_context("convert", words[3:])
            assert ctx.params["name"] == name
            assert get_model_info(name).official_converter is not None
            commands.append(command)
    assert "cloudfree models convert utae Fold_1/model.pth.tar weights/utae_pastis " \
        "--arg input_dim=10" in commands  # fmt: skip


def test_cli_prints_the_page_without_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudfree.models import zoo

    monkeypatch.setattr(zoo, "model_zoo_markdown", lambda: "# page\n")
    result = CliRunner().invoke(main, ["models", "zoo"])
    assert result.exit_code == 0 and result.output == "# page\n"


def test_cli_refuses_a_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["models", "zoo", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "is a directory" in result.output


def test_shipped_cache_is_json_with_every_listed_model() -> None:
    data = json.loads(counts_path().read_text())
    assert set(data["models"]) == {*zoo_models()["models"], *zoo_models()["pretrain"]}
