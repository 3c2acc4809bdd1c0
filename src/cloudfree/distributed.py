"""Which process of a multi-process job this is, and the little synchronisation the sharded
jobs need (``cloudfree benchmark`` under ``torchrun``): the one place that reads the launchers'
environment variables.

Decisions:

* **Launchers.** ``torchrun`` (its ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``) first, then a
  SLURM job step with several tasks (``SLURM_PROCID`` / ``SLURM_NTASKS`` / ``SLURM_LOCALID``),
  else Lightning's own launcher's ``NODE_RANK`` / ``LOCAL_RANK`` (set in the processes it
  starts; ``WORLD_SIZE`` / ``LOCAL_WORLD_SIZE`` when set, else the world is taken as just
  large enough to hold the rank: only rank 0 or not matters there). Anything else is one
  process.
* **Rendezvous.** :func:`barrier` joins the default process group when it is not joined yet,
  with the ``gloo`` backend (it runs on CPUs and GPUs alike; the jobs synchronise only
  once, so its speed does not matter) and ``env://`` (``MASTER_ADDR`` / ``MASTER_PORT``: torchrun
  sets them; under SLURM export them, e.g. the first node of ``scontrol show hostnames`` and a
  free port). The timeout is long (``CLOUDFREE_DIST_TIMEOUT_S``, default 24 h), because ranks
  wait there for the slowest one to finish its shards.
* **Shards** are consecutive index ranges of a fixed size, dealt to the ranks round-robin
  (shard ``i`` to rank ``i mod world``), so what a shard holds does not depend on the number of
  processes, and a sharded run computes exactly what one process does.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cloudfree.errors import ConfigError

__all__ = [
    "LaunchEnv",
    "barrier",
    "global_rank",
    "launch_env",
    "rank_shards",
    "shard_ranges",
]

TIMEOUT_ENV = "CLOUDFREE_DIST_TIMEOUT_S"


@dataclass(frozen=True)
class LaunchEnv:
    """This process's place in its job: global ``rank``, ``world_size``, ``local_rank`` (its
    GPU on the node) and the ``launcher`` that started it (``torchrun``, ``slurm``,
    ``lightning`` or None for a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str | None = None

    @property
    def is_main(self) -> bool:
        """Global rank 0: the process that writes a job's shared outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Several processes share the job."""
        return self.world_size > 1


def _int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    text = (os.environ if environ is None else environ).get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not an integer") from None


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv:
    """This process's :class:`LaunchEnv`, read from the launcher's environment (module
    docstring); ``environ`` replaces ``os.environ`` (tests, callers that hold a copy).

    Raises:
        ConfigError: a rank variable that is not an integer, or a rank outside the world.
    """
    e = os.environ if environ is None else environ

    def get(name: str, default: int) -> int:
        return _int(name, default, e)

    if "RANK" in e and "WORLD_SIZE" in e:
        env = LaunchEnv(get("RANK", 0), get("WORLD_SIZE", 1), get("LOCAL_RANK", 0), "torchrun")
    elif get("SLURM_NTASKS", 1) > 1 and "SLURM_PROCID" in e:
        env = LaunchEnv(
            get("SLURM_PROCID", 0), get("SLURM_NTASKS", 1), get("SLURM_LOCALID", 0), "slurm"
        )
    elif "NODE_RANK" in e or "LOCAL_RANK" in e:
        local = get("LOCAL_RANK", 0)
        rank = get("NODE_RANK", 0) * get("LOCAL_WORLD_SIZE", local + 1) + local
        env = LaunchEnv(rank, max(get("WORLD_SIZE", rank + 1), rank + 1), local, "lightning")
    else:
        return LaunchEnv()
    if env.world_size < 1 or not 0 <= env.rank < env.world_size:
        raise ConfigError(
            f"{env.launcher} environment gives rank {env.rank} of a world of {env.world_size}"
        )
    return env


def global_rank() -> int:
    """The global rank by the launcher's environment (0 for a single process), before any
    process group exists."""
    return launch_env().rank


def barrier(env: LaunchEnv | None = None) -> None:
    """Wait until every process of the job is here (nothing for a single process); joins the
    default ``gloo`` process group first when needed (module docstring).

    Raises:
        ConfigError: a multi-process job without ``MASTER_ADDR`` / ``MASTER_PORT``.
    """
    import torch.distributed as dist

    env = env or launch_env()
    if not env.distributed:
        return
    if not dist.is_initialized():
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ConfigError(
                f"{env.world_size} processes ({env.launcher}) but {' and '.join(missing)} "
                "is not set; torchrun sets them, under SLURM export them (the first node's "
                "host name and a free port)"
            )
        timeout = dt.timedelta(seconds=_int(TIMEOUT_ENV, 24 * 3600))
        dist.init_process_group(
            "gloo",
            init_method="env://",
            rank=env.rank,
            world_size=env.world_size,
            timeout=timeout,
        )
    dist.barrier()


def shard_ranges(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of consecutive shards of ``size`` items covering ``range(n)``."""
    if size < 1:
        raise ConfigError(f"shard size must be at least 1, got {size}")
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def rank_shards(n_shards: int, env: LaunchEnv | None = None) -> list[int]:
    """The shard indices this process takes: ``rank, rank + world, ...``."""
    env = env or launch_env()
    return list(range(env.rank, n_shards, env.world_size))
