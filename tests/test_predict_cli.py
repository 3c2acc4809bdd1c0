"""`cloudfree predict` on bad inputs and in list mode (resume, torchrun sharding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.transform import from_origin

from cloudfree.cli import main
from cloudfree.io import read_raster
from cloudfree.models import create_model, save_pretrained
from cloudfree.predict import distributed_rank, read_scene_list, shard
from cloudfree.predict.batch import SceneJob
from cloudfree.synth import write_scene_pair

TILE = ["--tile-size", "32", "--overlap", "8", "--quiet"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("dsen2cr", width=8, num_blocks=1)
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
    return save_pretrained(model, tmp_path_factory.mktemp("w") / "identity")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("scenes")
    pairs = [
        write_scene_pair(root / "data", height=40, width=56, seed=s, prefix=f"s{s}")
        for s in range(4)
    ]
    return root, pairs


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["predict", *args], env=env)


def _write(path: Path, array: np.ndarray, **kw) -> Path:
    profile = {
        "driver": "GTiff",
        "count": array.shape[0],
        "height": array.shape[1],
        "width": array.shape[2],
        "dtype": array.dtype,
        "crs": kw.pop("crs", "EPSG:32632"),
        "transform": kw.pop("transform", from_origin(399960.0, 5000040.0, 10.0, 10.0)),
        **kw,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)
    return path


def _no_output_left(out: Path) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}*"))


# ------------------------------------------------------------------------------- bad inputs
def _bad_cases(tmp_path: Path, scene) -> dict[str, tuple[list[str], list[str]]]:
    dn = read_raster(scene.cloudy).array
    five = _write(tmp_path / "five_bands.tif", dn[:5])
    l2a = _write(tmp_path / "l2a_12.tif", np.delete(dn, 10, axis=0))
    far = _write(
        tmp_path / "s1_far.tif",
        read_raster(scene.s1).array,
        transform=from_origin(100000.0, 2000000.0, 10.0, 10.0),
    )
    three_s1 = _write(tmp_path / "s1_three.tif", np.zeros((3, 40, 56), np.float32))
    small_mask = _write(tmp_path / "mask_small.tif", np.ones((1, 20, 20), np.uint8))
    junk = tmp_path / "junk.tif"
    junk.write_text("this is not a GeoTIFF")
    whole = _write(tmp_path / "full.tif", dn, compress="deflate", tiled=True, blockxsize=16,
                   blockysize=16)  # fmt: skip
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    opt, sar = str(scene.cloudy), str(scene.s1)
    return {
        "wrong band count": (["--optical", str(five), "--sar", sar], ["five_bands.tif", "5 band"]),
        "l2a without mapping": (
            ["--optical", str(l2a), "--sar", sar],
            ["l2a_12.tif", "12 bands", "13 Sentinel-2 L1C", "--bands", "B10"],
        ),
        "l2a mapped but model needs B10": (
            [
                "--optical",
                str(l2a),
                "--sar",
                sar,
                "--bands",
                "B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B11,B12",
            ],
            ["l2a_12.tif", "lacks band(s) B10"],
        ),  # fmt: skip
        "mapping of the wrong length": (
            ["--optical", str(five), "--sar", sar, "--bands", "B02,B03,B04"],
            ["five_bands.tif", "--bands names 3"],
        ),
        "no overlap": (["--optical", opt, "--sar", str(far)], ["s1_far.tif", "does not overlap"]),
        "s1 band count": (["--optical", opt, "--sar", str(three_s1)], ["s1_three.tif", "3 band"]),
        "unreadable optical": (["--optical", str(junk), "--sar", sar], ["junk.tif", "readable"]),
        "truncated optical": (
            ["--optical", str(truncated), "--sar", sar],
            ["truncated.tif", "read"],
        ),
        "unreadable sar": (["--optical", opt, "--sar", str(junk)], ["junk.tif", "readable"]),
        "missing optical": (
            ["--optical", str(tmp_path / "nope.tif"), "--sar", sar],
            ["nope.tif", "not found"],
        ),
        "missing sar": (
            ["--optical", opt, "--sar", str(tmp_path / "nos1.tif")],
            ["nos1.tif", "not found"],
        ),
        "missing weights": (
            ["--optical", opt, "--sar", sar, "--weights", str(tmp_path / "w")],
            ["w: weights not found"],
        ),
        "mask without keep-clear": (
            ["--optical", opt, "--sar", sar, "--mask", str(scene.mask)],
            ["--keep-clear"],
        ),
        "mask on another grid": (
            ["--optical", opt, "--sar", sar, "--keep-clear", "--mask", str(small_mask)],
            ["mask_small.tif", "not on the optical grid"],
        ),
        "bad overlap": (["--optical", opt, "--sar", sar, "--overlap", "20"], ["overlap"]),
    }


CASES = [
    "wrong band count",
    "l2a without mapping",
    "l2a mapped but model needs B10",
    "mapping of the wrong length",
    "no overlap",
    "s1 band count",
    "unreadable optical",
    "truncated optical",
    "unreadable sar",
    "missing optical",
    "missing sar",
    "missing weights",
    "mask without keep-clear",
    "mask on another grid",
    "bad overlap",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_inputs_are_clear_errors(case: str, scenes, weights: Path, tmp_path: Path) -> None:
    _, pairs = scenes
    args, expected = _bad_cases(tmp_path, pairs[0])[case]
    out = tmp_path / "out" / "pred.tif"
    if "--weights" not in args:
        args = [*args, "--weights", str(weights)]
    res = _run("--out", str(out), *TILE, *args)  # the case's options come last and win
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    message = res.output.strip().splitlines()[-1]
    assert message.startswith("Error: ")
    for text in expected:
        assert text in message, message
    assert _no_output_left(out)


def test_all_nodata_sar_fails_without_output(scenes, weights: Path, tmp_path: Path) -> None:
    _, pairs = scenes
    sar = _write(tmp_path / "s1_nan.tif", np.full((2, 40, 56), np.nan, np.float32))
    out = tmp_path / "o.tif"
    res = _run(
        "--optical", str(pairs[0].cloudy), "--sar", str(sar), "--weights", str(weights),
        "--out", str(out), *TILE,
    )  # fmt: skip
    assert res.exit_code == 1 and "s1_nan.tif" in res.output and "no valid" in res.output
    assert _no_output_left(out)


# ------------------------------------------------------------------------------- list mode
def _csv(root: Path, pairs: list, extra_rows: list[str] = ()) -> Path:  # type: ignore[assignment]
    lines = ["optical,sar,out"]
    for i, p in enumerate(pairs):
        out = "custom_name.tif" if i == 1 else ""
        lines.append(f"data/{p.cloudy.name},data/{p.s1.name},{out}")
    lines.extend(extra_rows)
    path = root / "scenes.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_scene_list_parsing(scenes, tmp_path: Path) -> None:
    root, pairs = scenes
    jobs = read_scene_list(_csv(root, pairs), tmp_path / "o")
    assert [j.index for j in jobs] == [0, 1, 2, 3]
    assert jobs[0].optical == pairs[0].cloudy and jobs[0].sar == pairs[0].s1
    assert jobs[0].out == tmp_path / "o" / "s0_s2_cloudy_cloudfree.tif"
    assert jobs[1].out == tmp_path / "o" / "custom_name.tif"
    assert [j.index for j in shard(jobs, 1, 3)] == [1]
    assert [j.index for j in shard(jobs, 0, 3)] == [0, 3]


def test_scene_list_errors(tmp_path: Path) -> None:
    from cloudfree.errors import InputFileError

    bad = tmp_path / "bad.csv"
    bad.write_text("optical,s1\na.tif,b.tif\n")
    with pytest.raises(InputFileError, match="bad.csv.*missing sar"):
        read_scene_list(bad, tmp_path)
    bad.write_text("optical,sar,out\na.tif,b.tif,x.tif\nc.tif,d.tif,x.tif\n")
    with pytest.raises(InputFileError, match="lines 2 and 3"):
        read_scene_list(bad, tmp_path)


def test_distributed_rank_from_env() -> None:
    assert distributed_rank({}) == (0, 1, None)
    assert distributed_rank({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (3, 4, 1)
    # one parser for every job (cloudfree.distributed): SLURM's srun works as torchrun does
    assert distributed_rank({"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "1"}) == (
        1, 2, 1,
    )  # fmt: skip
    from cloudfree.errors import ConfigError

    with pytest.raises(ConfigError):
        distributed_rank({"RANK": "4", "WORLD_SIZE": "4"})


def test_list_mode_resume(scenes, weights: Path, tmp_path: Path) -> None:
    root, pairs = scenes
    csv = _csv(root, pairs)
    out_dir = tmp_path / "preds"
    args = ["--list", str(csv), "--out-dir", str(out_dir), "--weights", str(weights), *TILE]
    res = _run(*args, "--quicklooks")
    assert res.exit_code == 0, res.output
    assert "4 scene(s) predicted, 0 skipped" in res.output
    outs = [j.out for j in read_scene_list(csv, out_dir)]
    for job_out, pair in zip(outs, pairs):
        with rasterio.open(job_out) as got, rasterio.open(pair.cloudy) as want:
            np.testing.assert_array_equal(got.read(), want.read())
        assert job_out.with_suffix(".png").is_file()
    mtimes = [o.stat().st_mtime_ns for o in outs]
    outs[2].unlink()  # as if the run had been interrupted before scene 2 finished
    res = _run(*args)
    assert res.exit_code == 0, res.output
    assert "1 scene(s) predicted, 3 skipped" in res.output
    assert outs[2].is_file()
    assert [o.stat().st_mtime_ns for i, o in enumerate(outs) if i != 2] == [
        m for i, m in enumerate(mtimes) if i != 2
    ]


@pytest.mark.parametrize("rank", [0, 1])
def test_list_mode_rank_sharding(scenes, weights: Path, tmp_path: Path, rank: int) -> None:
    root, pairs = scenes
    csv = _csv(root, pairs)
    out_dir = tmp_path / "preds"
    env = {"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)}
    res = _run(
        "--list", str(csv), "--out-dir", str(out_dir), "--weights", str(weights), *TILE, env=env
    )
    assert res.exit_code == 0, res.output
    assert f"rank {rank}/2: 2 scene(s) predicted" in res.output
    outs = [j.out for j in read_scene_list(csv, out_dir)]
    assert [o.exists() for o in outs] == [i % 2 == rank for i in range(4)]


def test_list_mode_failure_does_not_stop_others(scenes, weights, tmp_path: Path) -> None:
    root, pairs = scenes
    csv = _csv(root, pairs[:2], ["data/missing.tif,data/s0_s1.tif,broken.tif"])
    out_dir = tmp_path / "preds"
    res = _run("--list", str(csv), "--out-dir", str(out_dir), "--weights", str(weights), *TILE)
    assert res.exit_code == 1
    assert "2 scene(s) predicted" in res.output and "1 failed" in res.output
    assert "line 4" in res.output and "missing.tif" in res.output
    assert _no_output_left(out_dir / "broken.tif")
    assert len(list(out_dir.glob("*.tif"))) == 2


def test_list_mode_option_conflicts(scenes, weights: Path, tmp_path: Path) -> None:
    root, pairs = scenes
    csv = _csv(root, pairs)
    res = _run("--list", str(csv), "--weights", str(weights))
    assert res.exit_code == 1 and "--out-dir" in res.output
    res = _run(
        "--list", str(csv), "--out-dir", str(tmp_path), "--optical", str(pairs[0].cloudy),
        "--weights", str(weights),
    )  # fmt: skip
    assert res.exit_code == 1 and "--list" in res.output
    res = _run("--weights", str(weights), "--optical", str(pairs[0].cloudy))
    assert res.exit_code == 1 and "--sar" in res.output and "--out" in res.output


def test_scene_job_defaults() -> None:
    job = SceneJob(index=0, line=2, optical=Path("a.tif"), sar=Path("b.tif"), out=Path("c.tif"))
    assert job.mask is None and job.quicklook is None
