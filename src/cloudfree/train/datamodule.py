"""Data for training: datasets from a config, deterministic resumable loaders, the DataModule.

Decisions:

* **Randomness is a function of (seed, epoch, sample index).** The order of an epoch is a
  permutation seeded by ``(seed, epoch)`` (:class:`EpochSampler`), and the random crop and the
  flips / rotations of a sample are drawn from a generator seeded by ``(seed, epoch, index)``
  (:class:`TrainSampleDataset`). No global random state is read, so the batches of a run do
  not depend on the number of loader workers, and a resumed run sees exactly the batches the
  uninterrupted run would have seen. The training crop is therefore taken here
  (:class:`~cloudfree.train.augment.SampleAugment`) rather than by the dataset's own
  ``crop="random"``, whose crop is either unseeded or the same in every epoch; the dataset
  computes its cloud masks on the whole patch either way.
* **Sharding for DDP is done by the sampler** (rank ``r`` of ``W`` takes every W-th index of
  the padded permutation, as :class:`torch.utils.data.DistributedSampler`), so Lightning's
  automatic sampler replacement is switched off (``use_distributed_sampler=False``) and the
  same code runs on one or many processes. Padding repeats the first indices so that every
  rank gets the same number of batches (validation metrics then count a few samples twice
  when the split size is not a multiple of the world size).
* **Mid-epoch resume**: :class:`ResumableDataLoader` implements Lightning's stateful-loader
  protocol (``state_dict`` / ``load_state_dict``): it records the epoch and the number of
  batches handed out, and after a restore skips exactly those.
* The loaders get their own :class:`torch.Generator`, so creating an iterator does not
  consume the global torch random stream (which the model's stochastic layers, e.g.
  DropPath, use and which the checkpoint saves and restores).
* **The dataset is raw; normalisation is a training concern.** The datasets are built through
  the registry (:func:`cloudfree.data.build_dataset`, ``data.dataset``) with ``protocol=None``,
  all 13 bands and whole patches; the model's protocol and band subset
  (``data.protocol`` / ``data.bands``, resolved from the model) are applied per sample by
  :class:`~cloudfree.data.transforms.NormalizeSample`, on the whole patch and *before* any
  crop, as the dataset's own ``protocol=`` path does (the ``nanmean`` fill of ``glf_cr`` /
  ``dsen2cr`` depends on the whole patch), so the tensors are bit-identical to
  ``SEN12MSCR(protocol=..., bands=...)``. Validation's centre crop is therefore taken here too
  (:class:`EvalSampleDataset`).
* **Cloud masks** are computed only when something reads them (:func:`masks_needed`):
  ``data.masks: null`` (the default) runs the cloud detector when the loss declares
  ``cloud_mask`` / ``shadow_mask`` among its
  :meth:`~cloudfree.losses.CloudRemovalLoss.batch_keys` (CARL, CARF); the validation metrics
  read only ``valid_mask``, so L1 / MSE / SSIM runs skip the detector. ``true`` / ``false``
  force it (``false`` with a loss that reads the masks is an error before any data is read).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cloudfree.data.temporal import SingleDateView
from cloudfree.errors import ConfigError, DatasetError
from cloudfree.train.augment import SampleAugment
from cloudfree.train.config import TrainConfig, model_info, resolve_config

__all__ = [
    "CloudRemovalDataModule",
    "EpochSampler",
    "EvalSampleDataset",
    "ResumableDataLoader",
    "TrainSampleDataset",
    "build_datasets",
    "collate_samples",
    "sample_normalizer",
]

# domain tags of the seed sequences, so that the permutation and the per-sample draws of the
# same (seed, epoch) never share a stream
_PERMUTATION_TAG = 0
_SAMPLE_TAG = 1


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of sample dicts into a batch; other values (``id``) become lists.

    Every sample must have the same keys and, per key, tensors of the same shape.
    """
    if not samples:
        raise DatasetError("cannot collate an empty batch")
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = list(values)
    return batch


class TrainSampleDataset(Dataset):
    """Training view of a dataset: a subset of its samples, normalised, randomly cropped and
    augmented.

    ``dataset[(i, epoch)]`` returns sample ``indices[i]`` of ``base``, passed through
    ``normalize`` (whole patch) and then ``augment`` with a generator seeded by
    ``(seed, epoch, indices[i])``; ``dataset[i]`` is ``dataset[(i, 0)]``. :class:`EpochSampler`
    yields such pairs. A base dataset with ``set_epoch`` (SEN12MS-CR-TS, whose ``random``
    sampler draws the dates from ``(seed, epoch, index)``) is set to the pair's epoch before
    each read, so its draws too are a function of (seed, epoch, index) in any worker.
    """

    def __init__(
        self,
        base: Dataset,
        augment: SampleAugment,
        seed: int,
        indices: Sequence[int] | None = None,
        normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.base = base
        self.augment = augment
        self.seed = int(seed)
        self.indices = list(range(len(base))) if indices is None else list(indices)  # type: ignore[arg-type]
        self.normalize = normalize

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        base_index = self.indices[index]
        set_epoch = getattr(self.base, "set_epoch", None)
        if set_epoch is not None:  # e.g. SEN12MS-CR-TS's random sampler draws per epoch
            set_epoch(int(epoch))
        sample = self.base[base_index]
        if self.normalize is not None:
            sample = self.normalize(sample)
        if self.augment.is_identity:
            return sample
        rng = np.random.default_rng([self.seed, int(epoch), _SAMPLE_TAG, int(base_index)])
        return self.augment(sample, rng)


class EvalSampleDataset(Dataset):
    """Validation view of a dataset: samples ``indices`` of ``base`` (all by default), passed
    through ``normalize`` (whole patch), then centre-cropped to ``crop_size`` (None: whole
    patches)."""

    def __init__(
        self,
        base: Dataset,
        normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        crop_size: int | None = None,
        indices: Sequence[int] | None = None,
    ) -> None:
        self.base = base
        self.normalize = normalize
        self.crop_size = crop_size
        self.indices = list(range(len(base))) if indices is None else list(indices)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from cloudfree.data.transforms import center_crop_sample

        sample = self.base[self.indices[index]]
        if self.normalize is not None:
            sample = self.normalize(sample)
        if self.crop_size is not None:
            sample = center_crop_sample(sample, self.crop_size)
        return sample


class EpochSampler(Sampler):
    """Deterministic, shardable, resumable sampler.

    Args:
        length: number of samples.
        shuffle: permute each epoch with a generator seeded by ``(seed, epoch)``.
        seed: the run's seed.
        num_replicas, rank: DDP world size and this process's rank.
        with_epoch: yield ``(index, epoch)`` pairs (for :class:`TrainSampleDataset`) instead
            of plain indices.

    ``set_epoch`` selects the epoch (Lightning calls it at every epoch start); ``skip``
    makes the next iteration start after that many of this rank's samples (resume).
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        with_epoch: bool = False,
    ) -> None:
        if length < 1:
            raise DatasetError("cannot sample from an empty dataset")
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} is outside a world of {num_replicas} processes")
        self.length = int(length)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.with_epoch = with_epoch
        self.epoch = 0
        self.skip = 0
        self.last_epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.length / self.num_replicas)

    def indices(self, epoch: int) -> list[int]:
        """This rank's sample indices of ``epoch`` (padded to an equal share per rank)."""
        if self.shuffle:
            rng = np.random.default_rng([self.seed, int(epoch), _PERMUTATION_TAG])
            order = rng.permutation(self.length).tolist()
        else:
            order = list(range(self.length))
        total = len(self) * self.num_replicas
        while len(order) < total:  # pad by repeating from the start (DistributedSampler)
            order += order[: total - len(order)]
        return order[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[Any]:
        epoch, skip = self.epoch, self.skip
        self.skip = 0
        self.last_epoch = epoch
        chosen = self.indices(epoch)[skip:]
        if self.with_epoch:
            return iter([(i, epoch) for i in chosen])
        return iter(chosen)


class ResumableDataLoader(DataLoader):
    """A :class:`DataLoader` over an :class:`EpochSampler` that Lightning can save and restore.

    ``state_dict()`` is ``{"epoch", "batches"}``: the epoch being iterated and how many batches
    of it were handed out. ``load_state_dict`` makes the next iteration continue right after
    them (or start the next epoch when that one was complete). Batches are counted where they
    leave the loader, in the main process, so prefetching workers do not skew the count.
    """

    def __init__(self, dataset: Dataset, *, sampler: EpochSampler, **kwargs: Any) -> None:
        if not isinstance(sampler, EpochSampler):
            raise TypeError("ResumableDataLoader needs an EpochSampler")
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._batches = 0
        self._skip_batches = 0

    @property
    def epoch_sampler(self) -> EpochSampler:
        return self.sampler  # type: ignore[return-value]

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        skip = self._skip_batches
        self._skip_batches = 0
        self.epoch_sampler.skip = skip * int(self.batch_size or 1)
        self._batches = skip
        return self._counting(super().__iter__())

    def _counting(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for batch in iterator:
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch_sampler.last_epoch, "batches": self._batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):
            epoch, batches = epoch + 1, 0
        self.epoch_sampler.set_epoch(epoch)
        self._skip_batches = batches


# --------------------------------------------------------------------------- datasets
#: Batch keys that only the cloud detector provides.
MASK_KEYS = frozenset({"cloud_mask", "shadow_mask"})


def loss_reads_masks(config: TrainConfig) -> bool:
    """Whether the config's loss reads the cloud or shadow mask (its declared
    :meth:`~cloudfree.losses.CloudRemovalLoss.batch_keys`)."""
    from cloudfree.losses import build_loss

    keys = build_loss(config.loss.name, **config.loss.kwargs).batch_keys()
    return bool(keys & MASK_KEYS)


def masks_needed(config: TrainConfig) -> bool:
    """``data.masks`` when set, else (null, the default) whether the loss reads the masks:
    the validation metrics use ``valid_mask`` only, so L1 / MSE / SSIM training never runs the
    cloud detector.

    Raises:
        ConfigError: ``data.masks: false`` with a loss that reads the masks.
    """
    reads = loss_reads_masks(config)
    if config.data.masks is None:
        return reads
    if not config.data.masks and reads:
        raise ConfigError(
            f"data.masks is false (no cloud masks are computed), but loss "
            f"{config.loss.name!r} reads them; set data.masks: true or leave it null"
        )
    return config.data.masks


def _dataset_kwargs(config: TrainConfig, split_options: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor options of the (raw) dataset of ``config`` for one split.

    Mono-temporal datasets get the common options always and the SEN12MS-CR layout options
    (``seasons``, ``layout``, ``csv_path``) only when set, so that a dataset without them is not
    handed options it does not take. Time-series datasets (which yield raw samples and compute
    the cloud masks their samplers need themselves) get, where their constructor takes them,
    ``cloud_masks`` = ``data.cloud_mask_method``, ``cloud_threshold``, ``skip_incomplete`` and
    ``seed`` = the run's seed (the ``random`` sampler's draws). ``data.options`` and then
    ``split_options`` are added on top.
    """
    from cloudfree.cloudmask.dispatch import DEFAULT_THRESHOLDS
    from cloudfree.data import get_dataset

    d = config.data
    if d.root is None:
        raise ConfigError("data.root is not set; pass --data ROOT (or set data.root)")
    threshold = d.cloud_threshold
    info = get_dataset(d.dataset)
    if info.temporal:
        accepted = info.options()
        candidates = {
            "cloud_masks": d.cloud_mask_method,
            "cloud_threshold": threshold,
            "skip_incomplete": d.skip_incomplete,
            "seed": config.seed,
        }
        kwargs = {k: v for k, v in candidates.items() if k in accepted and v is not None}
        return {**kwargs, **d.options, **split_options}
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS.get(d.cloud_mask_method, 0.2)
    kwargs: dict[str, Any] = {
        "protocol": None,
        "bands": None,
        "masks": masks_needed(config),
        "cloud_mask_method": d.cloud_mask_method,
        "cloud_threshold": threshold,
    }
    for key, value, default in (
        ("seasons", d.seasons, None),
        ("layout", d.layout, "auto"),
        ("csv_path", d.csv_path, None),
        ("skip_incomplete", d.skip_incomplete, False),
    ):
        if value != default:
            kwargs[key] = value
    return {**kwargs, **d.options, **split_options}


def sample_normalizer(config: TrainConfig) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The per-sample normalisation of ``config`` (``data.protocol`` and ``data.bands``, the
    model's by default): a :class:`~cloudfree.data.transforms.NormalizeSample`."""
    from cloudfree.data import NormalizeSample

    d = resolve_config(config).data
    return NormalizeSample(str(d.protocol), d.bands)


def _single_date_view(config: TrainConfig) -> bool:
    """A mono-temporal model on a time-series dataset: it sees each series' last real input
    date (:class:`~cloudfree.data.SingleDateView`)."""
    from cloudfree.data import get_dataset

    temporal_data = get_dataset(config.data.dataset).temporal
    return temporal_data and not model_info(config.model.name).temporal


def build_datasets(config: TrainConfig) -> tuple[TrainSampleDataset, Dataset]:
    """The training and validation datasets of a config (model defaults resolved first).

    Both read ``data.dataset`` (a registered dataset, see :func:`cloudfree.data.build_dataset`)
    as raw, whole patches and normalise each sample with :func:`sample_normalizer`.
    Training: ``data.train_split`` wrapped in :class:`TrainSampleDataset` (random
    ``data.patch_size`` crop and ``data.augment`` after normalisation), limited to the first
    ``data.limit_train`` samples. Validation: the ``data.val_split`` in
    :class:`EvalSampleDataset` with a centre ``data.val_patch_size`` crop (or whole patches),
    limited to the first ``data.limit_val`` samples. A mono-temporal model on a time-series
    dataset sees the last real input date of each series (:class:`~cloudfree.data.SingleDateView`).

    Raises:
        DatasetError: a missing root or an empty split.
        ConfigError: bad data settings.
    """
    from cloudfree.data import build_dataset

    config = resolve_config(config)
    d = config.data
    root = Path(d.root)  # type: ignore[arg-type]
    normalize = sample_normalizer(config)
    train_kwargs = _dataset_kwargs(config, d.train_options)
    val_kwargs = _dataset_kwargs(config, d.val_options)
    train_base = build_dataset(d.dataset, root, split=d.train_split, **train_kwargs)
    val_base = build_dataset(d.dataset, root, split=d.val_split, **val_kwargs)
    if _single_date_view(config):
        train_base, val_base = SingleDateView(train_base), SingleDateView(val_base)
    augment = SampleAugment(
        crop_size=d.patch_size, hflip=d.augment.hflip, vflip=d.augment.vflip, rot90=d.augment.rot90
    )
    n_train = len(train_base) if d.limit_train is None else min(d.limit_train, len(train_base))  # type: ignore[arg-type]
    train = TrainSampleDataset(
        train_base, augment, config.seed, indices=range(n_train), normalize=normalize
    )
    n_val = len(val_base) if d.limit_val is None else min(d.limit_val, len(val_base))  # type: ignore[arg-type]
    val = EvalSampleDataset(val_base, normalize, crop_size=d.val_patch_size, indices=range(n_val))
    return train, val


# --------------------------------------------------------------------------- DataModule
class CloudRemovalDataModule(pl.LightningDataModule):
    """Training and validation loaders of a :class:`~cloudfree.train.config.TrainConfig`.

    Datasets built beforehand (by :func:`cloudfree.train.run.prepare_run`, which validates
    them before training) can be passed in; otherwise :meth:`setup` builds them. Loaders are
    sharded over ``trainer.world_size`` ranks by :class:`EpochSampler`; the trainer must be
    created with ``use_distributed_sampler=False``.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        train_dataset: TrainSampleDataset | None = None,
        val_dataset: Dataset | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is None or self.val_dataset is None:
            self.train_dataset, self.val_dataset = build_datasets(self.config)

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader_kwargs(self) -> dict[str, Any]:
        from cloudfree.data import collate_time_series, get_dataset

        workers = self.config.data.num_workers
        accel = self.config.trainer.accelerator
        temporal = get_dataset(self.config.data.dataset).temporal
        temporal = temporal and not _single_date_view(self.config)
        return {
            "num_workers": workers,
            "collate_fn": collate_time_series if temporal else collate_samples,
            "pin_memory": torch.cuda.is_available() and accel != "cpu",
            "persistent_workers": workers > 0,
            "generator": torch.Generator().manual_seed(self.config.seed),
        }

    def train_dataloader(self) -> ResumableDataLoader:
        if self.train_dataset is None:
            self.setup("fit")
        assert self.train_dataset is not None
        world, rank = self._world()
        sampler = EpochSampler(
            len(self.train_dataset),
            shuffle=True,
            seed=self.config.seed,
            num_replicas=world,
            rank=rank,
            with_epoch=True,
        )
        return ResumableDataLoader(
            self.train_dataset,
            sampler=sampler,
            batch_size=self.config.data.batch_size,
            drop_last=False,
            **self._loader_kwargs(),
        )

    def val_dataloader(self) -> DataLoader:
        if self.val_dataset is None:
            self.setup("validate")
        assert self.val_dataset is not None
        world, rank = self._world()
        sampler = EpochSampler(
            len(self.val_dataset),  # type: ignore[arg-type]
            shuffle=False,
            num_replicas=world,
            rank=rank,
        )
        return DataLoader(
            self.val_dataset,
            sampler=sampler,
            batch_size=self.config.data.val_batch_size or self.config.data.batch_size,
            drop_last=False,
            **self._loader_kwargs(),
        )
