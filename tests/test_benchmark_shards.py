"""`cloudfree benchmark` in shards: a killed run resumes and skips the stored (entry, shard)
cells, a new model or new weights re-score only their cells, a broken cell is scored again,
and under torchrun (2 CPU processes, gloo) the merged result equals a single-process run
byte for byte. Also the launcher environment of `cloudfree.distributed`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cloudfree.distributed import LaunchEnv, barrier, launch_env, rank_shards, shard_ranges
from cloudfree.errors import ConfigError
from cloudfree.evaluate import evaluate_protocols
from cloudfree.evaluate.benchmark import build_benchmark_config, run_benchmark
from cloudfree.evaluate.benchmark_cells import CELLS_DIR, CellStore
from cloudfree.evaluate.model_eval import ImageScores, results_from_scores, score_images
from cloudfree.models import create_model, save_pretrained

OUTPUTS = ("per_image.csv", "tables.md", "tables.csv")
LAUNCH_VARS = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "MASTER_ADDR", "MASTER_PORT",
)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from cloudfree.synth import write_sen12mscr_synthetic

    root = tmp_path_factory.mktemp("shards")
    write_sen12mscr_synthetic(root / "s", patches=10, size=32, seed=3)
    torch.manual_seed(1)
    for k in ("a", "b"):
        save_pretrained(create_model("dsen2cr", width=8, num_blocks=1), root / f"w_{k}")
    return {"root": root, "s": root / "s", "a": root / "w_a", "b": root / "w_b"}


def _raw(world: dict[str, Path], keys: tuple[str, ...] = ("a", "b"), **extra: object) -> dict:
    raw = {
        "models": [{"key": k, "weights": str(world[k])} for k in keys],
        "dataset": {"root": str(world["s"]), "split": "all"},
        "protocols": ["uncrtaints", "glf_cr"],
        "batch_size": 2,
        "shard_size": 4,
        "bootstrap": {"samples": 100, "seed": 0},
        "complexity": None,
        "report": None,
    }
    raw.update(extra)
    return raw


def _run(world: dict[str, Path], out: Path, keys: tuple[str, ...] = ("a", "b"), **kw: object):
    overwrite = bool(kw.pop("overwrite", False))
    config = build_benchmark_config(_raw(world, keys, **kw))
    return run_benchmark(config, out_dir=out, overwrite=overwrite, progress=False)


def _same_outputs(one: Path, two: Path) -> None:
    for name in OUTPUTS:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_killed_run_resumes_and_equals_uninterrupted(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _run(world, tmp_path / "ref")
    n_images = reference.summary["dataset"]["n_images"]
    shards = -(-n_images // 4)
    entries = 3  # a, b, identity
    assert reference.cells_scored == shards * entries and reference.cells_reused == 0

    written: list[int] = []
    real_write = CellStore.write

    def killed_after_first_shard(self: CellStore, shard: int, scores: ImageScores, **kw):
        if written:
            raise KeyboardInterrupt  # the process dies while scoring the second shard
        written.append(shard)
        return real_write(self, shard, scores, **kw)

    monkeypatch.setattr(CellStore, "write", killed_after_first_shard)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        _run(world, out)
    assert not (out / "tables.md").exists()  # no output of a run that did not finish
    assert len(list((out / CELLS_DIR).rglob("*.json"))) == entries
    monkeypatch.setattr(CellStore, "write", real_write)

    resumed = _run(world, out)
    assert resumed.cells_reused == entries
    assert resumed.cells_scored == (shards - 1) * entries
    _same_outputs(tmp_path / "ref", out)


def test_new_model_and_new_weights_rescore_only_their_cells(
    world: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "o"
    first = _run(world, out, keys=("a",))
    shards = first.cells_scored // 2  # a and identity
    both = _run(world, out, keys=("a", "b"), overwrite=True)
    assert both.cells_reused == 2 * shards and both.cells_scored == shards  # b only
    _run(world, tmp_path / "ref")
    _same_outputs(tmp_path / "ref", out)

    changed = tmp_path / "w_b2"
    torch.manual_seed(7)
    save_pretrained(create_model("dsen2cr", width=8, num_blocks=1), changed)
    raw_b = world | {"b": changed}
    again = _run(raw_b, out, keys=("a", "b"), overwrite=True)
    assert again.cells_scored == shards and again.cells_reused == 2 * shards


def test_broken_or_foreign_cell_is_scored_again(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o"
    first = _run(world, out)
    cell = sorted((out / CELLS_DIR).rglob("a.json"))[0]
    cell.write_text(cell.read_text()[:40])  # truncated (a crash outside our atomic writes)
    other = sorted((out / CELLS_DIR).rglob("b.json"))[-1]
    payload = json.loads(other.read_text())
    payload["fingerprint"] = "0" * 64  # written by another configuration
    other.write_text(json.dumps(payload))
    again = _run(world, out, overwrite=True)
    assert again.cells_scored == 2 and again.cells_reused == first.cells_scored - 2
    _run(world, tmp_path / "ref")
    _same_outputs(tmp_path / "ref", out)


def test_scores_in_parts_equal_one_pass(world: dict[str, Path]) -> None:
    from torch.utils.data import Subset

    from cloudfree.data import build_dataset

    ds = build_dataset("sen12mscr", world["s"], split="all", protocol=None)
    torch.manual_seed(0)
    models = {"m": create_model("dsen2cr", width=8, num_blocks=1)}
    kw = {"protocols": ["uncrtaints"], "baselines": ("identity",), "batch_size": 2}
    whole = evaluate_protocols(models, ds, progress=False, **kw)["uncrtaints"]
    n = len(ds)
    parts = [
        ImageScores.combine(
            [
                score_images(models, Subset(ds, range(a, b)), entries=[e], progress=False, **kw)
                for e in ("identity", "m")  # one entry at a time, baseline first
            ]
        )
        for a, b in shard_ranges(n, 4)  # shard and batch boundaries agree
    ]
    joined = ImageScores.join(parts)
    assert joined.entries == ("identity", "m") and len(joined.ids) == n
    kw.pop("batch_size")
    rebuilt = results_from_scores(models, ds, joined, **kw)["uncrtaints"]
    assert json.dumps(rebuilt.rows) == json.dumps(whole.rows)  # NaN-aware, exact floats
    assert json.dumps(rebuilt.summary["models"]) == json.dumps(whole.summary["models"])
    with pytest.raises(ConfigError, match="no model or baseline called 'x'"):
        score_images(models, ds, entries=["x"], progress=False, **kw)
    with pytest.raises(ConfigError, match="no values for uncrtaints/m"):
        results_from_scores(models, ds, parts[0].only("identity"), **kw)


def test_torchrun_two_processes_equal_one(world: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(yaml.safe_dump(_raw(world)))
    single = tmp_path / "single"
    _run(world, single)
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "cloudfree", "benchmark", str(cfg), "--out", str(tmp_path / "two"), "--quiet",
    ]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("wrote tables.md") == 1  # rank 0 reports, rank 1 does not
    _same_outputs(single, tmp_path / "two")
    for cell in (tmp_path / "two" / CELLS_DIR).rglob("*.json"):  # shard i scored by rank i % 2
        shard = int(cell.parent.name.split("_")[1])
        assert json.loads(cell.read_text())["scored_by_rank"] == shard % 2
    one = json.loads((single / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert one["protocols"] == two["protocols"]


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in LAUNCH_VARS:
        monkeypatch.delenv(k, raising=False)


def test_launch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    assert launch_env() == LaunchEnv()
    barrier()  # one process: nothing to wait for
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    env = launch_env()
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (1, 3, 1, "torchrun")
    assert not env.is_main and env.distributed
    assert rank_shards(8, env) == [1, 4, 7]
    with pytest.raises(ConfigError, match="MASTER_ADDR and MASTER_PORT is not set"):
        barrier(env)
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ConfigError, match="rank 3 of a world of 3"):
        launch_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="RANK='x' is not an integer"):
        launch_env()
    _clear(monkeypatch)
    monkeypatch.setenv("SLURM_PROCID", "2")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_LOCALID", "0")
    assert launch_env() == LaunchEnv(2, 4, 0, "slurm")
    _clear(monkeypatch)
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "1")  # one task: not a distributed job
    assert launch_env() == LaunchEnv()
    _clear(monkeypatch)
    monkeypatch.setenv("LOCAL_RANK", "1")  # a child of Lightning's own launcher
    assert launch_env().rank == 1 and not launch_env().is_main


def test_shard_ranges() -> None:
    assert shard_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_ranges(0, 4) == []
    assert rank_shards(3, LaunchEnv()) == [0, 1, 2]
    with pytest.raises(ConfigError, match="at least 1"):
        shard_ranges(3, 0)
