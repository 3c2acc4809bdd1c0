"""DDP on CPU (two processes, gloo backend), in the two launch forms that run on one machine:

* ``python -m cloudfree train --devices 2``: Lightning re-launches the command line for rank 1
  (``python -m cloudfree.__main__ ...``);
* ``torchrun --standalone --nproc_per_node 2 -m cloudfree train --devices 2``: torchrun starts
  both ranks and Lightning reads its environment (``TorchElasticEnvironment``).

Each run must finish with exit code 0, and only rank 0 writes the run directory and prints the
weights paths. (SLURM, Lightning's ``SLURMEnvironment``, is the third form; it needs a cluster.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist

from cloudfree.models import load_pretrained
from cloudfree.synth import write_sen12mscr_synthetic

#: the launcher variables a parent process (a test runner under torchrun or SLURM) may leave
LAUNCH_VARS = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK",
    "TORCHELASTIC_RUN_ID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_ID",
    "MASTER_ADDR", "MASTER_PORT", "CLOUDFREE_TRAIN_RUN_DIR",
)  # fmt: skip
LAUNCHERS = {
    "lightning": [sys.executable, "-m", "cloudfree"],
    "torchrun": [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "cloudfree",
    ],
}  # fmt: skip


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_ddp_two_cpu_processes(tmp_path: Path, launcher: str) -> None:
    data = tmp_path / "data"
    write_sen12mscr_synthetic(data, patches=10, size=32, seed=1)
    run = tmp_path / "run"
    cmd = [
        *LAUNCHERS[launcher], "train", "--recipe", "dsen2cr",
        "--data", str(data), "--out", str(run), "--devices", "2",
        "--set", "trainer.accelerator=cpu", "--set", "model.kwargs.width=8",
        "--set", "model.kwargs.num_blocks=1", "--set", "data.patch_size=16",
        "--set", "data.batch_size=2", "--set", "data.num_workers=0",
        "--set", "trainer.max_steps=4", "--set", "trainer.log_every_n_steps=1",
        "--set", "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    elapsed = time.monotonic() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "processes: 2 (distributed data parallel)" in proc.stdout  # really two processes
    assert proc.stdout.count("final weights:") == 1, proc.stdout  # printed by rank 0 only
    assert [ln for ln in proc.stdout.splitlines() if ln.startswith("run directory:")] == [
        f"run directory: {run}"
    ]
    assert "finished at step 4" in proc.stdout
    for rel in ("config.yaml", "metrics.csv", "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (run / rel).is_file(), rel
    for which in ("best", "final"):
        files = sorted(p.name for p in (run / "weights" / which).iterdir())
        assert files == ["config.json", "model.safetensors"]  # written once, no leftovers
        load_pretrained(run / "weights" / which)
    entries = {p.name for p in run.iterdir()} - {"tensorboard"}  # tensorboard: if installed
    assert entries == {"checkpoints", "config.yaml", "metrics.csv", "weights"}
    print(f"DDP run ({launcher}) took {elapsed:.1f} s")
