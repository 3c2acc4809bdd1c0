"""The demo smoke run (`cloudfree demo`) on a tiny synthetic dataset."""

import json

from click.testing import CliRunner

from cloudfree.cli import main


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("cloudmask", "data", "demo", "evaluate"):
        assert command in result.output


def test_demo_runs_end_to_end_and_can_run_again(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--patches", "8", "--size", "32", "--seed", "1"]
    for _ in range(2):  # a second run regenerates its own data instead of failing
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "uncrtaints"
    identity = summary["models"]["identity"]
    assert set(identity) == {"overall", "inside_clouds", "outside_clouds"}
    assert set(identity["overall"]) == {"psnr", "ssim", "sam", "mae", "rmse"}
    assert 0 < identity["overall"]["ssim"] < 1
    # per-image CSV of the identity over all generated patches: header + 8 rows
    assert len((out / "identity_per_image.csv").read_text().strip().splitlines()) == 9
    assert len(list((out / "cloudmasks").glob("*.tif"))) == summary["n_images"] > 0
