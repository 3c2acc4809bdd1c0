"""`cloudfree predict` run through the CLI in tests (not a test module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cloudfree.cli import main
from cloudfree.io import read_raster


def predict_float32(out_dir: Path, scene: Any, weights: Path, name: str, *args: str) -> Any:
    """Predict ``scene`` (a :class:`cloudfree.synth.ScenePairPaths`) with ``weights`` into
    ``out_dir/<name>.tif`` as float32 reflectance (more options in ``args``); assert success
    and return the raster read back."""
    out = out_dir / f"{name}.tif"
    cmd = ["predict", "--optical", str(scene.cloudy), "--sar", str(scene.s1), "--weights",
           str(weights), "--out", str(out), "--dtype", "float32", *args]  # fmt: skip
    result = CliRunner().invoke(main, cmd)
    assert result.exit_code == 0, result.output
    return read_raster(out)
