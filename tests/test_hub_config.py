"""``save_pretrained``'s config.json: reserved keys and the data conventions it records."""

from __future__ import annotations

import json

import pytest

from cloudfree.errors import ConfigError
from cloudfree.models import create_model, load_pretrained, save_pretrained
from cloudfree.models.hub import RESERVED_CONFIG_KEYS

SMALL = {"width": 8, "num_blocks": 1}


@pytest.mark.parametrize("key", [*sorted(RESERVED_CONFIG_KEYS), "format_whatever"])
def test_extra_may_not_overwrite_a_reserved_key(tmp_path, key):
    model = create_model("dsen2cr", **SMALL)
    with pytest.raises(ConfigError, match=rf"may not set the reserved config key\(s\) \['{key}'\]"):
        save_pretrained(model, tmp_path / "w", extra={key: "x", "note": 1})
    assert not (tmp_path / "w").exists()  # rejected before anything is written


def test_reserved_key_set_is_what_save_pretrained_writes(tmp_path):
    """Every key save_pretrained writes itself is reserved, and nothing else is."""
    config = json.loads(
        (save_pretrained(create_model("dsen2cr", **SMALL), tmp_path) / "config.json").read_text()
    )
    assert set(config) == RESERVED_CONFIG_KEYS


def test_protocol_and_bands_are_recorded_and_applied_on_load(tmp_path):
    model = create_model("dsen2cr", in_optical=3, **SMALL)
    out = save_pretrained(model, tmp_path / "w", bands="rgb", protocol="allclear", extra={"n": 2})
    config = json.loads((out / "config.json").read_text())
    assert (config["bands"], config["protocol"], config["n"]) == ("rgb", "allclear", 2)
    assert config["kwargs"]["in_optical"] == 3 and config["name"] == "dsen2cr"
    assert model.cloudfree_config["bands"] == "all"  # the model itself is not changed
    loaded = load_pretrained(out)
    assert loaded.cloudfree_config["bands"] == "rgb"
    assert loaded.cloudfree_config["protocol"] == "allclear"
