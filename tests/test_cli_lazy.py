"""`cloudfree --help` lists every command without importing any (fast start, no torch)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from cloudfree.cli import COMMANDS, load_command, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_stored_help_line_is_the_commands_own(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    assert COMMANDS[name][2] == command.get_short_help_str(limit=10_000)


def test_help_lists_every_command_without_importing_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from cloudfree.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'rasterio', 'scipy', 'numpy', 'lightning') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    for name in COMMANDS:
        assert f"  {name} " in out


def test_commands_still_run_and_unknown_ones_are_refused() -> None:
    result = CliRunner().invoke(main, ["recipes", "list"])
    assert result.exit_code == 0 and "glf_cr" in result.output
    result = CliRunner().invoke(main, ["nope"])
    assert result.exit_code == 2 and "No such command 'nope'" in result.output
