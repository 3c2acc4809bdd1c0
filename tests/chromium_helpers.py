"""Headless Chromium for the report tests: find the browser, render a page (not a test module)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np


def chromium() -> str | None:
    """The Chromium binary, or None where it is not installed."""
    for name in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(name).exists():
            return name
    return None


def render_page(page: Path, shot: Path) -> tuple[str, np.ndarray]:
    """Render ``page`` headless at 1200 x 1400: its DOM after load, and the screenshot
    (written to ``shot``) as an RGB array."""
    from PIL import Image

    uri = page.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            str(chromium()),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
        ]
        subprocess.run(
            [*cmd, f"--screenshot={shot}", "--window-size=1200,1400", uri],
            check=True,
            capture_output=True,
            timeout=120,
        )
        dom = subprocess.run(
            [*cmd, "--dump-dom", uri], check=True, capture_output=True, timeout=120, text=True
        ).stdout
    return dom, np.asarray(Image.open(shot).convert("RGB"))
