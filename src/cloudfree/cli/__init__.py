"""The ``cloudfree`` command line.

Each sub-command lives in its own module of this package; this module only assembles the group
and turns :class:`~cloudfree.errors.CloudfreeError` into a one-line message (exit status 1)
instead of a traceback.

An :class:`OSError` that escapes a command (a read-only or full output directory, a permission
denied when a directory is created or a file opened) is also reported as one line naming the
path and the system's reason (:func:`os_error_message`): these are the user's environment, not
a bug of cloudfree, and a traceback would hide the path. The writers themselves are atomic
(:mod:`cloudfree.io.atomic`), so nothing is left under the final name.
"""

from __future__ import annotations

import errno
import re
import signal
import threading
from typing import Any

import click

from cloudfree import __version__
from cloudfree.errors import CloudfreeError


def os_error_message(exc: OSError) -> str:
    """``PATH: reason`` for an operating-system error (``cannot write ...`` and the fix).

    Uses ``exc.filename`` (and ``filename2``) when the OS names the path; otherwise (for
    example GDAL's "Attempt to create new tiff file ... failed") the exception's own text,
    made one line.
    """
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    if exc.filename is None:
        return reason
    path = str(exc.filename)
    if exc.filename2 is not None:
        path = f"{path} -> {exc.filename2}"
    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = " (choose an output location you can write to)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = " (free some space or choose another output location)"
    elif exc.errno == errno.ENOTDIR:
        hint = " (a part of this path is a file, not a directory)"
    return f"{path}: {reason}{hint}"


_WORKER = re.compile(r"^Caught (\w+) in DataLoader worker process \d+\.\s*\nOriginal Traceback")


def worker_error_message(exc: BaseException) -> str | None:
    """The one-line message of a cloudfree error raised in a DataLoader worker, else ``None``.

    torch re-raises a worker's exception in the main process with the worker's traceback as
    its message (as a ``RuntimeError`` when the type cannot be rebuilt from one string, as
    :class:`~cloudfree.errors.InputFileError` cannot). When the original type is one of
    cloudfree's errors, the last line of that traceback is the message the user must see.
    """
    found = _WORKER.match(str(exc))
    if found is None:
        return None
    names = {cls.__name__ for cls in _subclasses(CloudfreeError)}
    if found.group(1) not in names:
        return None
    last = [line for line in str(exc).splitlines() if line.strip()][-1].strip()
    head, sep, rest = last.partition(": ")
    return rest if sep and head.rsplit(".", 1)[-1] == found.group(1) else last


def _subclasses(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_subclasses(sub))
    return out


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM handler: leave like Ctrl-C, through the ``finally`` blocks of the atomic writers
    (their temporary files are removed), with the conventional exit status 128 + 15."""
    raise SystemExit(128 + signum)


def install_sigterm_handler() -> None:
    """Make SIGTERM unwind the stack like SIGINT (see :func:`_terminate`); only in the main
    thread and only over the default disposition, so an embedding program's handler stays."""
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _terminate)


#: name -> (module of ``cloudfree.cli``, attribute, one-line help as ``cloudfree --help`` shows
#: it). Commands are imported only when run (or asked for their own help), so ``cloudfree
#: --help`` does not import torch, rasterio or scipy; tests/test_cli_lazy.py checks that each
#: line equals the command's own short help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "benchmark": (
        "benchmark_cmd",
        "benchmark",
        "Benchmark models and baselines on a dataset: metrics with intervals, strata, complexity.",
    ),
    "cloudmask": (
        "cloudmask_cmd",
        "cloudmask",
        "Write the cloud/shadow mask of CLOUDY (S2 L1C GeoTIFF, .SAFE or band folder) to OUT.",
    ),
    "data": ("data_cmd", "data", "Dataset tools."),
    "demo": (
        "demo_cmd",
        "demo",
        "Run the built-in demo on synthetic data (no data or weights needed).",
    ),
    "evaluate": (
        "evaluate_cmd",
        "evaluate",
        "Compute PSNR, SSIM, SAM, MAE and RMSE, in one of two modes.",
    ),
    "models": (
        "models_cmd",
        "models",
        "Registered models: list them, convert official checkpoints.",
    ),
    "predict": (
        "predict_cmd",
        "predict",
        "Remove clouds from whole Sentinel-2 scenes, with Sentinel-1 (no target needed).",
    ),
    "recipes": (
        "train_cmd",
        "recipes",
        "Shipped training recipes (paper settings): list them, show one.",
    ),
    "report": (
        "report_cmd",
        "report",
        "Write an HTML report (metrics table, PSNR per cloud-cover bin, panels) of RUN_DIR.",
    ),
    "train": (
        "train_cmd",
        "train",
        "Train a cloud-removal model (Lightning) from a recipe or a config file.",
    ),
}


def load_command(name: str) -> click.Command:
    """Import and return the command ``name`` of :data:`COMMANDS`."""
    import importlib

    module, attr, _ = COMMANDS[name]
    return getattr(importlib.import_module(f"cloudfree.cli.{module}"), attr)


class _Group(click.Group):
    """A click group that reports cloudfree's own errors, and OS errors, as one clear line,
    and imports a sub-command only when it is used (:data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in COMMANDS:
            return load_command(cmd_name)
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the stored one-line helps (no import of any command)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                text = click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)
            else:
                text = self.commands[name].get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        install_sigterm_handler()
        try:
            return super().invoke(ctx)
        except CloudfreeError as exc:
            raise click.ClickException(worker_error_message(exc) or str(exc)) from None
        except RuntimeError as exc:
            message = worker_error_message(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None
        except OSError as exc:
            raise click.ClickException(os_error_message(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cloudfree")
def main() -> None:
    """cloudfree: remove clouds from Sentinel-2 imagery with Sentinel-1 SAR."""
