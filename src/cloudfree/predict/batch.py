"""Many scenes: a CSV list, resumable, shared between ``torchrun`` processes.

CSV format (header row required, column names case-insensitive)::

    optical,sar,out,mask,quicklook
    cloudy/T32TQM_20230611.tif,s1/T32TQM_20230610.tif,,,
    ...

``optical`` is required; ``sar``, ``out``, ``mask`` (used with ``--keep-clear``) and
``quicklook`` are optional (the columns may be absent or the cells empty). A scene without
``sar`` is predicted from its optical image alone, which only a model that uses no SAR (its
spec's ``needs_sar`` is False, e.g. ``spa_gan``) accepts: :func:`predict_many` refuses the
whole list up front, naming the lines, when the model needs SAR and a row has none.

Decisions:

* **Paths.** Relative ``optical``, ``sar`` and ``mask`` paths are relative to the CSV's folder;
  relative ``out`` and ``quicklook`` paths are relative to the output directory. An empty
  ``out`` becomes ``<out_dir>/<optical stem>_cloudfree.tif``. Two rows writing the same output
  are an error naming the CSV and both lines.
* **Outputs never replace inputs.** An ``out`` or ``quicklook`` that is any row's optical, SAR
  or mask file (or the CSV) is an error naming the line, even with ``overwrite``; each scene
  also runs :func:`cloudfree.io.outputs.check_output` on its output and quicklook.
* **Resume.** A scene whose output file exists is skipped (outputs are written atomically, so an
  existing file is a finished one); ``overwrite=True`` recomputes it.
* **Sharding.** Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the environment;
  SLURM and Lightning launches likewise, read by :func:`cloudfree.distributed.launch_env`)
  process ``rank`` takes scenes ``i`` with ``i % world_size == rank`` (``i`` = 0-based data row);
  no process group is created, so processes never wait for each other. The device
  ``cuda`` becomes ``cuda:LOCAL_RANK``.
* **Failures.** A scene that fails with a cloudfree error (bad or missing file, no overlap, ...)
  is reported and skipped, the others still run; the caller gets the list of failures (the CLI
  then exits with status 1). No partial output is left for a failed scene.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cloudfree.distributed import launch_env
from cloudfree.errors import CloudfreeError, ConfigError, InputFileError
from cloudfree.io.atomic import remove_stale_temporaries
from cloudfree.predict.scene import (
    PredictOptions,
    PredictResult,
    check_sar_given,
    predict_scene,
    sar_coverage_warning,
)
from cloudfree.predict.weights import LoadedModel

__all__ = [
    "BatchResult",
    "SceneJob",
    "distributed_rank",
    "predict_many",
    "read_scene_list",
    "shard",
]

_REQUIRED = ("optical",)
#: ``sar`` may be absent (optical-only models); it comes first in messages about the header
_OPTIONAL = ("sar", "out", "mask", "quicklook")


@dataclass(frozen=True)
class SceneJob:
    """One row of the scene list."""

    index: int
    line: int
    optical: Path
    #: None: no S1 for this scene (a model that uses no SAR only)
    sar: Path | None
    out: Path
    mask: Path | None = None
    quicklook: Path | None = None


@dataclass
class BatchResult:
    """What :func:`predict_many` did for this process's share of the scenes."""

    rank: int
    world_size: int
    assigned: int
    done: list[PredictResult] = field(default_factory=list)
    skipped: list[SceneJob] = field(default_factory=list)
    failed: list[tuple[SceneJob, str]] = field(default_factory=list)


def distributed_rank(environ: Mapping[str, str] | None = None) -> tuple[int, int, int | None]:
    """``(rank, world_size, local_rank)`` of this process by its launcher's environment
    (torchrun, SLURM or Lightning: :func:`cloudfree.distributed.launch_env`); ``(0, 1, None)``
    for a single process, whose device is then left as given."""
    env = launch_env(environ)
    return env.rank, env.world_size, env.local_rank if env.launcher else None


def shard(jobs: list[SceneJob], rank: int, world_size: int) -> list[SceneJob]:
    """The jobs of process ``rank``: scene ``i`` goes to rank ``i % world_size``."""
    return [j for j in jobs if j.index % world_size == rank]


def _resolve(base: Path, cell: str) -> Path:
    p = Path(cell).expanduser()
    return p if p.is_absolute() else base / p


def read_scene_list(
    path: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> list[SceneJob]:
    """Parse the scene CSV (see the module docstring) into jobs, in file order."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "scene list not found" if not p.exists() else "is not a file")
    out_root = Path(out_dir)
    base = p.parent
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [r for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(p, f"not a readable CSV file ({exc})") from None
    nonempty = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not nonempty:
        raise InputFileError(
            p, "is empty; expected a header 'optical,sar[,out]' and one row per scene"
        )
    header_line, header = nonempty[0]
    cols = [c.strip().lower() for c in header]
    missing = [c for c in _REQUIRED if c not in cols]
    unknown = [c for c in cols if c not in _REQUIRED + _OPTIONAL]
    if missing or unknown:
        # an unknown column next to an absent sar is most likely a misspelt sar: say both
        if unknown and "sar" not in cols:
            missing.append("sar")
        problems = [f"missing {','.join(missing)}"] if missing else []
        problems += [f"unknown {','.join(unknown)}"] if unknown else []
        raise InputFileError(
            p,
            f"line {header_line}: header must name the columns optical,sar (sar may be left "
            f"out for a model that uses no SAR) and optionally {','.join(_OPTIONAL[1:])}; "
            + "; ".join(problems),
        )
    if len(set(cols)) != len(cols):
        raise InputFileError(p, f"line {header_line}: duplicate column names in the header")
    jobs: list[SceneJob] = []
    seen: dict[Path, int] = {}
    for line, row in nonempty[1:]:
        if len(row) > len(cols):
            raise InputFileError(p, f"line {line}: {len(row)} fields for {len(cols)} columns")
        cell = {c: (row[i].strip() if i < len(row) else "") for i, c in enumerate(cols)}
        for c in _REQUIRED:
            if not cell[c]:
                raise InputFileError(p, f"line {line}: empty {c!r} path")
        optical = _resolve(base, cell["optical"])
        out = (
            _resolve(out_root, cell["out"])
            if cell.get("out")
            else out_root / f"{optical.stem}_cloudfree.tif"
        )
        key = out.resolve()
        if key in seen:
            raise InputFileError(
                p, f"lines {seen[key]} and {line} both write {out}; give distinct 'out' names"
            )
        seen[key] = line
        jobs.append(
            SceneJob(
                index=len(jobs),
                line=line,
                optical=optical,
                sar=_resolve(base, cell["sar"]) if cell.get("sar") else None,
                out=out,
                mask=_resolve(base, cell["mask"]) if cell.get("mask") else None,
                quicklook=_resolve(out_root, cell["quicklook"]) if cell.get("quicklook") else None,
            )
        )
    if not jobs:
        raise InputFileError(p, "lists no scene (only a header)")
    _check_outputs_are_not_inputs(p, jobs)
    return jobs


def _check_outputs_are_not_inputs(csv_path: Path, jobs: list[SceneJob]) -> None:
    """No row's output or quicklook may be any row's input, the CSV, or another row's output
    (resolved paths): the list is one run, so an output must never replace what it reads."""
    inputs: dict[Path, str] = {csv_path.resolve(): "the scene list itself"}
    for j in jobs:
        for col in ("optical", "sar", "mask"):
            value = getattr(j, col)
            if value is not None:
                inputs.setdefault(value.resolve(), f"the {col!r} input of line {j.line}")
    written: dict[Path, int] = {}
    for j in jobs:
        for col in ("out", "quicklook"):
            value = getattr(j, col)
            if value is None:
                continue
            key = value.resolve()
            if key in inputs:
                raise InputFileError(
                    csv_path,
                    f"line {j.line}: the {col!r} file {value} is {inputs[key]}; an output never "
                    "replaces an input, choose another name",
                )
            if key in written:
                raise InputFileError(
                    csv_path,
                    f"lines {written[key]} and {j.line} both write {value}; give distinct names",
                )
            written[key] = j.line


def predict_many(
    loaded: LoadedModel,
    jobs: list[SceneJob],
    options: PredictOptions,
    *,
    rank: int = 0,
    world_size: int = 1,
    quicklooks: bool = False,
    on_message: Callable[[str], None] | None = None,
) -> BatchResult:
    """Predict this process's share of ``jobs`` (see :func:`shard`), skipping finished ones.

    ``options`` apply to every scene (its ``mask`` and ``quicklook`` are replaced by the row's);
    ``quicklooks=True`` writes ``<out stem>.png`` next to each output whose row names none.
    ``on_message`` receives one line per skipped or failed scene, and per scene whose S1
    covers only part of it (:func:`~cloudfree.predict.scene.sar_coverage_warning`); the CLI
    prints them.
    """
    from tqdm.auto import tqdm

    say = on_message or (lambda _m: None)
    if not options.keep_clear and any(j.mask is not None for j in jobs):
        raise ConfigError("the scene list names masks; they are only used with --keep-clear")
    no_sar = [j.line for j in jobs if j.sar is None]
    if no_sar:
        more = f" and {len(no_sar) - 5} more" if len(no_sar) > 5 else ""
        shown = ", ".join(str(n) for n in no_sar[:5])
        check_sar_given(loaded, None, f"a sar path on every line (none on line(s) {shown}{more})")

    mine = shard(jobs, rank, world_size)
    result = BatchResult(rank=rank, world_size=world_size, assigned=len(mine))
    bar = tqdm(
        mine,
        unit="scene",
        desc=f"scenes (rank {rank}/{world_size})" if world_size > 1 else "scenes",
        disable=not options.progress,
        position=0,
        dynamic_ncols=True,
    )
    try:
        for job in bar:
            if job.out.exists() and not options.overwrite:
                remove_stale_temporaries(job.out)  # of a killed --overwrite run
                result.skipped.append(job)
                say(f"skip {job.out} (exists)")
                continue
            ql = job.quicklook
            if ql is None and quicklooks:
                ql = job.out.with_suffix(".png")
            opts = dataclasses.replace(
                options, mask=job.mask, quicklook=ql, overwrite=options.overwrite
            )
            try:
                res = predict_scene(
                    loaded, job.optical, job.sar, job.out, opts, progress_position=1
                )
            except CloudfreeError as exc:
                result.failed.append((job, str(exc)))
                say(f"FAILED line {job.line}: {exc}")
                continue
            result.done.append(res)
            warning = sar_coverage_warning(res, job.sar)
            if warning is not None:
                say(f"line {job.line}: {warning}")
    finally:
        bar.close()
    return result
