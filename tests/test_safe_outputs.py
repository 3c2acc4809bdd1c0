"""No command destroys a user's file (issue 11, "Data loss to fix").

Every output is checked by :func:`cloudfree.io.outputs.check_output` (never an input of the run,
never an existing file without ``--overwrite``); every write is atomic and a failed write is a
one-line error naming the file with nothing left under the final name, tested on a real full
and a real read-only file system (a small tmpfs; skipped where it cannot be mounted); SIGTERM
cleans up like Ctrl-C and stale temporaries of our naming pattern are removed by the next run.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.errors import InputFileError
from cloudfree.io import write_raster
from cloudfree.io.atomic import remove_stale_temporaries, temporary_sibling
from cloudfree.io.outputs import check_output
from cloudfree.models import create_model, save_pretrained
from cloudfree.synth import write_scene_pair
from disk_helpers import fill_disk, remount_read_only, tmpfs

TILE = ["--tile-size", "32", "--overlap", "8", "--quiet"]
REPO = Path(__file__).resolve().parents[1]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle.lower() in lines[0].lower(), result.output


def _no_temporaries(directory: Path) -> bool:
    return not [p for p in directory.rglob(".*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("dsen2cr", width=8, num_blocks=1)
    return save_pretrained(model, tmp_path_factory.mktemp("w") / "tiny")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    return write_scene_pair(tmp_path_factory.mktemp("scene"), height=40, width=56, seed=3)


# --------------------------------------------------------------------------- the one check
def test_check_output_rules(tmp_path: Path) -> None:
    src = tmp_path / "input.tif"
    src.write_bytes(b"data")
    link = tmp_path / "link.tif"
    link.symlink_to(src)
    roundabout = tmp_path / "sub" / ".." / "input.tif"
    for alias in (src, link, roundabout):
        with pytest.raises(InputFileError, match="would overwrite the input"):
            check_output(alias, inputs=[src], overwrite=True)
    with pytest.raises(InputFileError, match="already exists; pass --overwrite"):
        check_output(src, inputs=[])
    assert check_output(src, inputs=[], overwrite=True) == src
    assert check_output(tmp_path / "new.tif", inputs=[src]) == tmp_path / "new.tif"
    with pytest.raises(InputFileError, match="is a directory"):
        check_output(tmp_path, overwrite=True)
    assert src.read_bytes() == b"data"


# --------------------------------------------------------------------------------- predict
@pytest.mark.parametrize("victim", ["optical", "sar", "mask", "weights"])
def test_quicklook_never_replaces_an_input(tmp_path: Path, weights: Path, scene, victim: str):
    files = {
        "optical": scene.cloudy,
        "sar": scene.s1,
        "mask": scene.mask,
        "weights": weights / "model.safetensors",
    }
    before = _digest(files[victim])
    out = tmp_path / "out.tif"
    res = _run(
        "predict", "--optical", str(scene.cloudy), "--sar", str(scene.s1), "--out", str(out),
        "--weights", str(weights), "--keep-clear", "--mask", str(scene.mask),
        "--quicklook", str(files[victim]), "--overwrite", *TILE,
    )  # fmt: skip
    _one_line_error(res, str(files[victim]), "would overwrite the input")
    assert _digest(files[victim]) == before
    assert not out.exists() and _no_temporaries(tmp_path)


def test_quicklook_keeps_an_existing_file_without_overwrite(tmp_path, weights, scene) -> None:
    out, png = tmp_path / "out.tif", tmp_path / "mine.png"
    png.write_bytes(b"my own picture")
    args = ["predict", "--optical", str(scene.cloudy), "--sar", str(scene.s1), "--out", str(out),
            "--weights", str(weights), "--quicklook", str(png), *TILE]  # fmt: skip
    _one_line_error(_run(*args), str(png), "--overwrite")
    assert png.read_bytes() == b"my own picture" and not out.exists()
    res = _run(*args, "--overwrite")
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.is_file()


def test_list_quicklook_column_never_replaces_an_input(tmp_path, weights, scene) -> None:
    before = _digest(scene.s1)
    csv = tmp_path / "scenes.csv"
    csv.write_text(f"optical,sar,quicklook\n{scene.cloudy},{scene.s1},{scene.s1}\n")
    res = _run("predict", "--list", str(csv), "--out-dir", str(tmp_path / "o"),
               "--weights", str(weights), "--overwrite", *TILE)  # fmt: skip
    _one_line_error(res, str(csv), "line 2", "'quicklook'")
    assert _digest(scene.s1) == before


# ------------------------------------------------------------------- evaluate, report, convert
def _geotiff(path: Path, seed: int) -> Path:
    arr = np.random.default_rng(seed).integers(0, 5000, (13, 16, 16)).astype(np.uint16)
    return write_raster(path, arr, crs="EPSG:32632", transform=rasterio.Affine(10, 0, 0, 0, -10, 0))


def test_evaluate_out_never_replaces_a_reference(tmp_path: Path) -> None:
    pred, target = tmp_path / "pred", tmp_path / "target"
    _geotiff(pred / "a.tif", 0)
    ref = _geotiff(target / "a.tif", 1)
    before = _digest(ref)
    args = ["evaluate", "--pred", str(pred), "--target", str(target), "--out", str(ref)]
    _one_line_error(_run(*args, "--overwrite"), str(ref), "would overwrite the input")
    assert _digest(ref) == before
    old = tmp_path / "old.csv"
    old.write_text("previous results\n")
    args[-1] = str(old)
    _one_line_error(_run(*args), str(old), "--overwrite")
    assert old.read_text() == "previous results\n"


def _run_dir(d: Path) -> Path:
    import json

    d.mkdir(parents=True)
    metrics = {"psnr": 20.0, "ssim": 0.5, "sam": 5.0, "mae": 0.05, "rmse": 0.1}
    entry = {"overall": metrics, "inside_clouds": metrics, "outside_clouds": metrics}
    (d / "summary.json").write_text(json.dumps({"protocol": "uncrtaints", "models": {"m": entry}}))
    return d


def test_report_never_replaces_its_summary(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run")
    before = _digest(run / "summary.json")
    res = _run("report", str(run), "--out", str(run / "summary.json"), "--overwrite")
    _one_line_error(res, "summary.json", "would overwrite the input")
    assert _digest(run / "summary.json") == before
    assert sorted(p.name for p in run.iterdir()) == ["summary.json"]


def test_report_side_files_go_into_a_folder_named_after_it(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run")
    mine = tmp_path / "psnr_per_cover_bin.png"
    mine.write_bytes(b"not the report's")
    out = tmp_path / "X.html"
    res = _run("report", str(run), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert mine.read_bytes() == b"not the report's"
    assert (tmp_path / "X_files" / "psnr_per_cover_bin.png").read_bytes()[:4] == b"\x89PNG"
    html = out.read_text()
    _one_line_error(_run("report", str(run), "--out", str(out)), str(out), "--overwrite")
    assert out.read_text() == html
    assert _run("report", str(run), "--out", str(out), "--overwrite").exit_code == 0


def test_models_convert_keeps_existing_weights(tmp_path: Path, weights: Path) -> None:
    target = save_pretrained(create_model("dsen2cr", width=8, num_blocks=1), tmp_path / "w")
    before = {p.name: _digest(p) for p in target.iterdir()}
    checkpoint = tmp_path / "official.pth"
    checkpoint.write_bytes(b"never read: refused before")
    res = _run("models", "convert", "glf_cr", str(checkpoint), str(target))
    _one_line_error(res, str(target / "model.safetensors"), "--overwrite")
    assert {p.name: _digest(p) for p in target.iterdir()} == before


# ------------------------------------------------------------------ full and read-only disks
@pytest.fixture(scope="module")
def big_scene(tmp_path_factory: pytest.TempPathFactory):
    """A scene whose cloud mask (compressed) does not fit in a few kB."""
    return write_scene_pair(tmp_path_factory.mktemp("big"), height=256, width=256, seed=5)


@pytest.mark.parametrize("case", ["full", "read-only"])
def test_cloudmask_on_a_full_or_read_only_disk(
    tmp_path: Path, big_scene, case: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        (fill_disk if case == "full" else remount_read_only)(disk)
        before = sorted(p.name for p in disk.iterdir())
        out = disk / "mask.tif"
        capfd.readouterr()
        res = _run("cloudmask", str(big_scene.cloudy), str(out))
        reason = "no space left on device" if case == "full" else "read-only file system"
        _one_line_error(res, str(out), reason)
        assert sorted(p.name for p in disk.iterdir()) == before  # not even 0 bytes, no temp
        # libtiff's and GDAL's own lines (printed on descriptor 2) give way to our one line
        err = capfd.readouterr().err
        assert "_tiff" not in err and "ERROR 1" not in err, err


def test_c_level_stderr_is_held_and_passed_on_only_on_success(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from cloudfree.io.cstderr import CStderrHold

    for succeed in (True, False):
        hold = CStderrHold()
        with hold.held():
            os.write(2, b"libtiff: something\n")
        assert capfd.readouterr().err == ""
        (hold.release if succeed else hold.close)()
        assert capfd.readouterr().err == ("libtiff: something\n" if succeed else "")


@pytest.mark.parametrize("case", ["full", "read-only"])
def test_data_synth_on_a_full_or_read_only_disk(tmp_path: Path, case: str) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        if case == "read-only":
            remount_read_only(disk)
        out = disk / "synth"
        res = _run("data", "synth", str(out), "-n", "3", "-s", "64")
        reason = "no space left on device" if case == "full" else "read-only file system"
        _one_line_error(res, reason)
        tifs = list(disk.rglob("*.tif"))
        for tif in tifs:  # what is there is complete: every pixel reads back
            with rasterio.open(tif) as src:
                assert src.read().size == src.count * src.height * src.width
        assert _no_temporaries(disk)
        if case == "read-only":
            assert not out.exists()


def test_predict_on_a_full_disk(tmp_path: Path, weights: Path, big_scene) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        fill_disk(disk)
        out = disk / "pred.tif"
        res = _run("predict", "--optical", str(big_scene.cloudy), "--sar", str(big_scene.s1),
                   "--out", str(out), "--weights", str(weights), *TILE)  # fmt: skip
        _one_line_error(res, str(out), "no space left on device")
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


# ---------------------------------------------------------------- SIGTERM, stale temporaries
def test_stale_temporaries_of_our_pattern_only_are_removed(tmp_path, weights, scene) -> None:
    out = tmp_path / "out.tif"
    ours = [tmp_path / ".out.tif.k1lld_9x.tmp.tif", tmp_path / ".out.tif.abcdefgh.tmp"]
    others = [
        tmp_path / ".out.tif.notes",  # not our pattern
        tmp_path / ".other.tif.abcdefgh.tmp.tif",  # another output's
        tmp_path / ".out.tif.abc.tmp.tif",  # wrong random part
    ]
    for p in ours + others:
        p.write_bytes(b"left by a killed run")
    res = _run("predict", "--optical", str(scene.cloudy), "--sar", str(scene.s1),
               "--out", str(out), "--weights", str(weights), *TILE)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not any(p.exists() for p in ours)
    assert all(p.read_bytes() == b"left by a killed run" for p in others)
    # the helper itself: only regular files of the pattern, for that final name
    planted = tmp_path / ".x.png.zzzzzzzz.tmp.png"
    planted.write_bytes(b"")
    (tmp_path / ".x.png.yyyyyyyy.tmp.png").mkdir()
    assert remove_stale_temporaries(tmp_path / "x.png") == [planted]
    live = temporary_sibling(tmp_path / "x.png", ".tmp.png")
    assert live.exists() and live.name.startswith(".x.png.")


def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path, weights: Path) -> None:
    big = write_scene_pair(tmp_path / "in", height=384, width=384, seed=1)
    out = tmp_path / "out" / "pred.tif"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "cloudfree", "predict", "--optical", str(big.cloudy),
           "--sar", str(big.s1), "--out", str(out), "--weights", str(weights),
           "--tile-size", "16", "--overlap", "4", "--batch-size", "1", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".pred.tif.*.tmp*")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no temporary appeared: {proc.communicate()[0].decode()[-2000:]}")
        time.sleep(0.01)
    time.sleep(0.3)  # inside the writer's block (the run takes seconds more)
    if proc.poll() is not None:
        pytest.fail(f"the run ended before SIGTERM: {proc.communicate()[0].decode()[-2000:]}")
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output
    assert list(out.parent.iterdir()) == []  # no output, no temporary
