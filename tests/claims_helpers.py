"""Training and scoring shared by the papers' claims checks (``make test-claims``; not a test
module).

Every claim trains small models on the simulator under one short schedule, so only the factor
a claim compares differs between the models it compares: :func:`train_short` runs a recipe with
the schedule of :data:`SHORT_SCHEDULE` (``steps`` steps of batch 4 on whole images, no
validation, CPU) and returns the trained model loaded for evaluation; :func:`inside_cloud_scores`
scores a set of models (and the identity) on one split of the simulator and prints the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the schedule every claims run shares (recipe keys it overrides)
SHORT_SCHEDULE: dict[str, Any] = {
    "data.options": {"split_source": "standard"},  # the simulator's ROIs
    "data.patch_size": None,
    "data.val_patch_size": None,
    "data.batch_size": 4,
    "data.num_workers": 0,
    "trainer.max_epochs": None,
    "trainer.accelerator": "cpu",
    "trainer.val_check_interval": None,
    "trainer.check_val_every_n_epoch": 1000,
    "trainer.enable_progress_bar": False,
}


def train_short(
    cache: dict[str, Any],
    key: str,
    recipe: str,
    steps: int,
    root: Path,
    out: Path,
    **overrides: Any,
) -> Any:
    """Train ``recipe`` for ``steps`` steps under :data:`SHORT_SCHEDULE` (``overrides`` are
    dotted recipe keys with ``__`` for the dots, applied last) once per ``key`` (kept in
    ``cache``), and return the final weights loaded with ``load_pretrained``."""
    from cloudfree.models import load_pretrained
    from cloudfree.train import build_config, load_recipe, train

    if key not in cache:
        settings = {**SHORT_SCHEDULE, "trainer.max_steps": steps}
        settings.update({k.replace("__", "."): v for k, v in overrides.items()})
        cfg = build_config(load_recipe(recipe), settings, data_root=root, out=out / key)
        cache[key] = load_pretrained(train(cfg).final_weights)
    return cache[key]


def inside_cloud_scores(
    root: Path,
    models: dict[str, Any],
    seasons: list[str],
    split: str = "test",
    metrics: tuple[str, ...] = ("psnr", "ssim"),
) -> dict[str, dict[str, float]]:
    """Mean metrics inside clouds of ``models`` (and the identity) on ``split`` of the
    simulator's SEN12MS-CR layout at ``root`` (whole images), printed and returned per model."""
    from cloudfree.data import SEN12MSCR
    from cloudfree.evaluate import evaluate_models

    data = SEN12MSCR(root, split=split, seasons=seasons, crop="center", split_source="standard")
    res = evaluate_models(models, data, progress=False)
    out = {k: v["inside_clouds"] for k, v in res.summary["models"].items()}
    scores = "; ".join(
        f"{k} " + " ".join(f"{m.upper()} {v[m]:.4f}" for m in metrics) for k, v in out.items()
    )
    print(f"\n{seasons} {split} ({len(data)} images), inside clouds: {scores}")
    return out
