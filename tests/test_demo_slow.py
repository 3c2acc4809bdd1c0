"""The default demo's claim (slow: about seven minutes on two CPU cores).

`cloudfree demo` trains a compact GLF-CR and the same network without SAR on the same budget
and *reports* how they compare; this test runs the default demo and asserts the claim: inside
clouds on the test split, GLF-CR beats the cloudy input (identity) by a wide margin and the
no-SAR model on every metric (higher PSNR and SSIM, lower SAM and MAE).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudfree.demo import DemoSettings, run_demo, summary_lines


@pytest.mark.slow
def test_default_demo_glf_cr_beats_identity_and_no_sar_inside_clouds(tmp_path: Path) -> None:
    result = run_demo(DemoSettings(out=tmp_path / "demo", progress=False))
    summary = result.summary
    print("\n" + "\n".join(summary_lines(summary)))
    print(f"demo: {result.seconds:.0f} s, timings {summary['demo']['timings_s']}")
    inside = {k: v["inside_clouds"] for k, v in summary["models"].items()}
    comparison = summary["comparison"]
    assert comparison["beats_identity"] and comparison["vs_identity"]["all"], comparison
    assert comparison["beats_no_sar"] and comparison["vs_no_sar"]["all"], comparison
    assert inside["glf_cr"]["psnr"] > inside["identity"]["psnr"] + 8.0
    assert inside["glf_cr"]["mae"] < 0.4 * inside["identity"]["mae"]
    assert inside["glf_cr"]["psnr"] > inside["no_sar"]["psnr"] + 0.4
    assert inside["glf_cr"]["mae"] < 0.97 * inside["no_sar"]["mae"]
    assert result.report.is_file() and result.scene_output.is_file()
