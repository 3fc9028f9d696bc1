"""Training data: load a dataset once, cache motions as one float32 array, and build reproducible batches.

Sources (:func:`load_training_data`): any spec of :func:`motionpatch_processing.loading.parse_spec`, the grammar
that evaluation shares (``synthetic``, ``bandai-namco[:PATH]``, ``embedded[:PARTS]``, a folder written by
``motionpatch-prepare``, a Hub dataset id). Every source is a ``DatasetDict`` in the schema of
:mod:`motionpatch_processing.schema`.

Preprocessing happens once, before the first epoch: each split's ``motion`` column is read from Arrow in one
vectorised pass into a :class:`MotionStore` (one contiguous float32 ``(frames, joints, 3)`` array plus offsets;
clips are zero-copy views), and the normalisation statistics are computed once over the training split
(unless the dataset ships its own). Nothing is recomputed per epoch.

Reproducibility: which caption a motion gets in an epoch, whether it is mirrored, and where it is cropped
depend only on ``(seed, epoch, index)`` - never on a running random state - so a run resumed mid-epoch sees
exactly the batches of an uninterrupted run. :class:`EpochSampler` shuffles with ``(seed, epoch)`` and yields
``(index, epoch)`` keys, so the epoch reaches DataLoader worker processes with every item.
"""

from __future__ import annotations

import logging
import math
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import Dataset, Sampler

from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchProcessor, Skeleton, get_skeleton
from modeling_motionpatch.apps.motion_statistics import compute_statistics
from modeling_motionpatch.motion_patches import PATCH_ROWS, MotionInputWarning, resample_fps, to_body_frame
from modeling_motionpatch.skeletons import SkeletonError, available_skeletons
from motionpatch_processing.loading import LOADERS, load_source, parse_spec
from motionpatch_processing.mirror import mirror_motion, mirror_text
from motionpatch_processing.sources import SOURCES, source_info

logger = logging.getLogger(__name__)

#: the sources ``--dataset`` names directly (anything else is a prepared folder or a Hub id)
KNOWN_SOURCES = tuple(LOADERS)


# ---------------------------------------------------------------------------
# deterministic per-sample randomness
# ---------------------------------------------------------------------------
_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_uniform(seed: int, epoch: int, index: int, stream: int) -> float:
    """A uniform number in ``[0, 1)`` that depends only on ``(seed, epoch, index, stream)`` (SplitMix64 hash)."""
    h = _splitmix64(int(seed) & _MASK64)
    for v in (epoch, index, stream):
        h = _splitmix64(h ^ (int(v) & _MASK64))
    return (h >> 11) * (1.0 / (1 << 53))


# ---------------------------------------------------------------------------
# motions cached once
# ---------------------------------------------------------------------------
@dataclass
class MotionStore:
    """Every motion of a split in one contiguous float32 array; ``store[i]`` is a zero-copy ``(T_i, J, 3)`` view."""

    flat: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        o = int(self.offsets[i])
        return self.flat[o : o + int(self.lengths[i])]

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())

    @classmethod
    def from_dataset(cls, dataset: datasets.Dataset, column: str = "motion", batch_size: int = 1024) -> "MotionStore":
        """Read ``column`` once. Arrow list storage is flattened without Python loops over frames or joints."""
        if column not in dataset.column_names:
            raise ValueError(f"dataset has no {column!r} column (columns: {dataset.column_names}).")
        if len(dataset) == 0:
            return cls(np.zeros((0, 1, 3), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
        try:
            return cls._from_arrow(dataset, column)
        except Exception as e:  # unusual storage: fall back to the numpy formatter, batch by batch
            logger.debug("arrow fast path failed (%s); using with_format('numpy')", e)
        motions: list[np.ndarray] = []
        for batch in dataset.with_format("numpy", columns=[column]).iter(batch_size=batch_size):
            motions.extend(np.asarray(m, dtype=np.float32) for m in batch[column])
        return cls.from_list(motions)

    @classmethod
    def _from_arrow(cls, dataset: datasets.Dataset, column: str) -> "MotionStore":
        # an Arrow table with any select()/shuffle() index mapping applied (zero-copy without one)
        col = dataset.with_format("arrow", columns=[column])[:].column(column)
        flats, lengths = [], []
        joints = None
        for chunk in col.chunks:
            storage = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
            if storage.null_count:
                raise ValueError(f"{storage.null_count} null motions")
            lengths.append(pc.list_value_length(storage).to_numpy(zero_copy_only=False).astype(np.int64))
            frames = storage.flatten()  # list<list<float>> per frame
            joint_lists = frames.flatten()  # list<float> per joint
            values = joint_lists.flatten().to_numpy(zero_copy_only=False)
            j = len(joint_lists) // max(len(frames), 1)
            if len(frames) and (len(joint_lists) != j * len(frames) or len(values) != 3 * len(joint_lists)):
                raise ValueError("ragged joints")
            joints = j if joints is None or len(frames) == 0 else joints
            flats.append(values.astype(np.float32, copy=False).reshape(-1, j or 1, 3))
        flat = np.ascontiguousarray(np.concatenate(flats)) if len(flats) > 1 else np.ascontiguousarray(flats[0])
        lengths_arr = np.concatenate(lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths_arr)[:-1]]).astype(np.int64)
        return cls(flat, offsets, lengths_arr)

    def to_body_frame(self, skeleton: Skeleton) -> "MotionStore":
        """Every clip in the body frame (:func:`~modeling_motionpatch.motion_patches.to_body_frame`), in one pass."""
        if len(self) == 0:
            return self
        clips = to_body_frame([self[i] for i in range(len(self))], skeleton.facing_joints(), skeleton.pelvis)
        return MotionStore(np.concatenate(clips), self.offsets, self.lengths)

    @classmethod
    def from_list(cls, motions: Sequence[np.ndarray]) -> "MotionStore":
        lengths = np.fromiter((len(m) for m in motions), dtype=np.int64, count=len(motions))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = np.concatenate([np.asarray(m, dtype=np.float32) for m in motions]) if motions else np.zeros((0, 1, 3))
        return cls(np.ascontiguousarray(flat, dtype=np.float32), offsets, lengths)


# ---------------------------------------------------------------------------
# loading sources
# ---------------------------------------------------------------------------
@dataclass
class TrainingData:
    """A loaded dataset, its skeleton, statistics and provenance (what the model card reports)."""

    dataset: datasets.DatasetDict
    skeleton: Skeleton
    mean: np.ndarray | None
    std: np.ndarray | None
    fps: float
    name: str
    pretty_name: str
    license: str | None = None
    captions_kind: str = "human-written captions"
    hub_id: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def source(self):
        """The :class:`motionpatch_processing.sources.SourceInfo` of the data (licence text, citation, restrictions)."""
        return source_info(self.name)


def load_training_data(data_args, seed: int = 0) -> TrainingData:
    """Load the dataset named by ``data_args.dataset`` (see :class:`~.arguments.DataArguments`): a spec of
    :func:`motionpatch_processing.loading.parse_spec` (``--dataset_dir`` is the folder of a ``bandai-namco`` spec
    that names none)."""
    spec = parse_spec(data_args.dataset, folder=data_args.dataset_dir)
    if data_args.dataset_dir and (spec.source is None or SOURCES[spec.source].arg != "PATH"):
        logger.warning("--dataset_dir %r is not used: dataset %r reads no folder.", data_args.dataset_dir, spec.text)
    sizes = {"train": data_args.synthetic_num_train, "validation": data_args.synthetic_num_validation,
             "test": data_args.synthetic_num_test}
    loaded = load_source(spec, synthetic_sizes=sizes, synthetic_seed=data_args.synthetic_seed,
                         options=data_args.dataset_kwargs, revision=data_args.dataset_revision)
    data = TrainingData(
        loaded.dataset, loaded.skeleton, loaded.mean, loaded.std, loaded.fps, loaded.name, loaded.pretty_name,
        loaded.license, loaded.captions_kind, hub_id=loaded.hub_id, notes=loaded.notes,
    )
    _check_data(data, data_args)
    return data


def _check_data(data: TrainingData, data_args) -> None:
    dd = data.dataset
    if data_args.skeleton and data_args.skeleton != data.skeleton.name:  # same name: the dataset's own skeleton
        try:
            expected = get_skeleton(data_args.skeleton)
        except (SkeletonError, KeyError, ValueError) as e:
            raise ValueError(
                f"skeleton {data_args.skeleton!r} is unknown ({e}); registered skeletons: {available_skeletons()}."
            ) from None
        if expected.num_joints != data.skeleton.num_joints or expected.name != data.skeleton.name:
            raise ValueError(
                f"the config expects skeleton {expected.name!r} ({expected.num_joints} joints) but dataset "
                f"{data_args.dataset!r} has skeleton {data.skeleton.name!r} ({data.skeleton.num_joints} joints)."
            )
    if data_args.train_split not in dd:
        raise ValueError(f"dataset {data_args.dataset!r} has no split {data_args.train_split!r}; it has {list(dd)}.")
    for what in ("validation_split", "test_split"):
        split = getattr(data_args, what)
        if split and split not in dd:
            raise ValueError(
                f"dataset {data_args.dataset!r} has no {what.split('_')[0]} split {split!r} (splits: {list(dd)}); "
                f"name an existing split with --{what} or pass --{what} '' to skip it."
            )
    col = data_args.caption_column
    if col not in dd[data_args.train_split].column_names:
        raise ValueError(
            f"dataset {data_args.dataset!r} has no caption column {col!r} (columns: "
            f"{dd[data_args.train_split].column_names}); set --caption_column."
        )


def select_rows(dataset: datasets.Dataset, limit: int | None, what: str) -> datasets.Dataset:
    """The first ``limit`` rows (logged, never silent)."""
    if limit is not None and limit < len(dataset):
        logger.warning("%s: using the first %d of %d rows (max_*_samples).", what, limit, len(dataset))
        return dataset.select(range(limit))
    return dataset


def captioned_rows(dataset: datasets.Dataset, column: str, split: str) -> tuple[datasets.Dataset, list[list[str]], int]:
    """Drop rows without any non-empty caption (a warning gives the count and first ids); error if none are left."""
    captions = [[c for c in (caps or []) if isinstance(c, str) and c.strip()] for caps in dataset[column]]
    keep = [i for i, c in enumerate(captions) if c]
    dropped = len(captions) - len(keep)
    if not keep:
        raise ValueError(
            f"split {split!r} has no captions: all {len(captions)} rows have an empty {column!r} list. Motion-text "
            "training needs captions; prepare the dataset with captions (or captions from labels) first."
        )
    if dropped:
        ids = dataset["id"] if "id" in dataset.column_names else list(range(len(captions)))
        missing = [str(ids[i]) for i, c in enumerate(captions) if not c][:10]
        logger.warning(
            "split %r: %d of %d rows have no caption and are left out of training/evaluation (first: %s).",
            split, dropped, len(captions), ", ".join(missing),
        )
        dataset = dataset.select(keep)
        captions = [captions[i] for i in keep]
    return dataset, captions, dropped


def split_fps(dataset: datasets.Dataset, default: float) -> float:
    """The single frame rate of a split (``fps`` column); mixed rates are an error."""
    if "fps" not in dataset.column_names or len(dataset) == 0:
        return float(default)
    values = np.unique(np.asarray(dataset.data.column("fps").to_numpy(), dtype=np.float64))
    if len(values) > 1:
        raise ValueError(
            f"the split mixes frame rates {values.tolist()}; resample it to one rate when preparing it."
        )
    return float(values[0])


# ---------------------------------------------------------------------------
# torch datasets, sampler and collator
# ---------------------------------------------------------------------------
class EpochSampler(Sampler):
    """Shuffles ``range(n)`` with ``torch.randperm`` seeded by ``(seed, epoch)``; yields ``(index, epoch)`` keys.

    The epoch is set with :meth:`start_epoch` (not ``set_epoch``, which Accelerate calls with its own
    iteration counter). ``shuffle=False`` yields the natural order.
    """

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True):
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def start_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = range(self.num_samples)
        epoch = self.epoch
        return iter([(i, epoch) for i in order])


@dataclass(frozen=True)
class Augmentation:
    """What differs between capture sources, simulated on training clips that are already in the body frame.

    ``speed``: playback-speed factor log-uniform in ``[1/speed, speed]`` (linear resampling; frame rate and tempo);
    ``crop_probability``: keep a random window of 50-100 % of the clip (at least one patch row) and put it back in
    the body frame from its own first frame (clip length, where a clip starts); ``heading_degrees``: turn the clip
    about the vertical axis by up to that angle (the facing estimate of other rigs); ``scale``: body size factor
    uniform in ``[1 - scale, 1 + scale]``. Global offsets need no augmentation: the body frame removes them.
    ``frames_per_patch``: one patch row of the model (``MotionPatchConfig.frames_per_patch``), the shortest clip
    the crop and the speed change leave.
    """

    speed: float = 1.0
    scale: float = 0.0
    heading_degrees: float = 0.0
    crop_probability: float = 0.0
    frames_per_patch: int = PATCH_ROWS

    @classmethod
    def from_args(cls, data_args, frames_per_patch: int = PATCH_ROWS) -> "Augmentation":
        return cls(data_args.augment_speed, data_args.augment_scale, data_args.augment_heading_degrees,
                   data_args.augment_crop_probability, frames_per_patch)

    @property
    def active(self) -> bool:
        return self.speed > 1.0 or self.scale > 0 or self.heading_degrees > 0 or self.crop_probability > 0

    def __call__(self, motion: np.ndarray, skeleton: Skeleton, u) -> np.ndarray:
        """Augment one ``(T, J, 3)`` clip; ``u(stream)`` gives the sample's uniform numbers (streams 2 to 7)."""
        n, row = len(motion), self.frames_per_patch
        if self.crop_probability and u(2) < self.crop_probability and n > 2 * row:
            keep = max(row, int(round(n * (0.5 + 0.5 * u(3)))))
            start = min(int(u(4) * (n - keep + 1)), n - keep)
            motion = to_body_frame([motion[start : start + keep]], skeleton.facing_joints(), skeleton.pelvis)[0]
        if self.speed > 1.0:
            factor = self.speed ** (2.0 * u(5) - 1.0)
            faster = resample_fps(motion, 20.0 * factor, 20.0, "linear")
            motion = faster if len(faster) >= min(n, row) else motion  # never below one patch row
        if self.heading_degrees:
            angle = np.radians(self.heading_degrees * (2.0 * u(6) - 1.0))
            c, s = np.cos(angle), np.sin(angle)
            rotation = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=np.float32)  # about +Y
            motion = motion @ rotation.T
        if self.scale:
            motion = motion * np.float32(1.0 + self.scale * (2.0 * u(7) - 1.0))
        return np.ascontiguousarray(motion, dtype=np.float32)


class MotionTextTrainDataset(Dataset):
    """Training pairs: item ``(index, epoch)`` -> a motion view and one of its captions, maybe augmented and mirrored.

    The caption is ``captions[index][floor(u * K)]`` with ``u = sample_uniform(seed, epoch, index, 0)``; the
    sample is mirrored (motion via :func:`motionpatch_processing.mirror.mirror_motion`, caption side words via
    ``mirror_text``) when ``sample_uniform(seed, epoch, index, 1) < mirror_probability``; ``augmentation`` (an
    :class:`Augmentation`) draws from streams 2 to 7. Items also carry the reference (first) caption, whose equality
    across pairs marks positives for the loss.
    """

    def __init__(
        self,
        store: MotionStore,
        captions: Sequence[Sequence[str]],
        seed: int,
        skeleton: Skeleton,
        mirror_probability: float = 0.0,
        augmentation: Augmentation | None = None,
    ):
        if len(store) != len(captions):
            raise ValueError(f"{len(store)} motions but {len(captions)} caption lists.")
        self.store = store
        self.captions = [list(c) for c in captions]
        self.seed = int(seed)
        self.skeleton = skeleton
        self.mirror_probability = float(mirror_probability)
        self.augmentation = augmentation if augmentation is not None and augmentation.active else None
        self._skeleton_spec = skeleton.to_dict()

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), 0)
        caps = self.captions[index]
        caption = caps[min(int(sample_uniform(self.seed, epoch, index, 0) * len(caps)), len(caps) - 1)]
        reference = caps[0]
        motion = self.store[index]
        if self.augmentation is not None:
            motion = self.augmentation(motion, self.skeleton, lambda stream: sample_uniform(self.seed, epoch, index, stream))
        mirrored = self.mirror_probability > 0 and sample_uniform(self.seed, epoch, index, 1) < self.mirror_probability
        if mirrored:
            motion = mirror_motion(motion, self.skeleton)
            caption = mirror_text(caption)
            reference = mirror_text(reference)
        return {"motion": motion, "caption": caption, "reference": reference, "index": index, "epoch": epoch}


class MotionTextEvalDataset(Dataset):
    """Evaluation pairs: every motion with its first caption (the paper's protocol), no augmentation."""

    def __init__(self, store: MotionStore, captions: Sequence[Sequence[str]]):
        if len(store) != len(captions):
            raise ValueError(f"{len(store)} motions but {len(captions)} caption lists.")
        self.store = store
        self.first_captions = [c[0] for c in captions]

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"motion": self.store[index], "caption": self.first_captions[index], "index": int(index), "epoch": 0}


class MotionTextCollator:
    """Collates items into model inputs with a :class:`MotionPatchProcessor`.

    Training batches are cropped at random (the feature extractor's ``training=True``) with a generator seeded
    by ``(seed, epoch, indices of the batch)``, so a batch is identical whenever it is rebuilt. Their motions are
    already in the body frame (the training data is put in it once, then augmented), so the processor's own body
    frame is skipped for them (``body_frame=False``); items with a ``reference`` caption get a ``caption_key``
    (CRC-32 of that caption) for the loss's same-caption positives.
    """

    def __init__(self, processor: MotionPatchProcessor, max_length: int, training: bool, seed: int = 0,
                 body_frame_done: bool = False):
        self.processor = processor
        self.max_length = int(max_length)
        self.training = training
        self.seed = int(seed)
        self.body_frame_done = bool(body_frame_done)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        generator = None
        if self.training:
            generator = np.random.default_rng([self.seed, int(items[0]["epoch"])] + [int(i["index"]) for i in items])
        with warnings.catch_warnings():  # short clips are counted once when the splits load, not in every batch
            warnings.simplefilter("ignore", MotionInputWarning)
            batch = self.processor(
                text=[i["caption"] for i in items],
                motions=[i["motion"] for i in items],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
                training=self.training,
                generator=generator,
                body_frame=False if self.body_frame_done else None,
            )
        out = dict(batch)
        out["sample_index"] = torch.tensor([i["index"] for i in items], dtype=torch.long)
        if "reference" in items[0]:
            out["caption_key"] = torch.tensor([zlib.crc32(i["reference"].encode()) for i in items], dtype=torch.long)
        return out


def build_feature_extractor(
    data: TrainingData, train_store: MotionStore | None, statistics: str, model_config,
    fps: float | None, input_fps: float, body_frame: bool = True,
) -> tuple[MotionPatchFeatureExtractor, str]:
    """The feature extractor with the dataset's skeleton and statistics, and a note on where they came from.

    Its patch geometry (``max_frames``, ``points_per_part``, ``frames_per_patch``, ``points_per_patch``) is the
    model config's (``model_config``, a :class:`~modeling_motionpatch.MotionPatchConfig`), so that its
    ``motion_attention_mask`` has one entry per patch of the model's motion tower."""
    mean = std = None
    if statistics in ("auto", "dataset") and data.mean is not None:
        mean, std, note = data.mean, data.std, "statistics saved with the dataset"
    elif statistics == "dataset":
        raise ValueError(
            f"statistics='dataset' but dataset {data.name!r} ships no statistics.json; use 'train' or 'auto'."
        )
    elif statistics == "none":
        note = "no normalisation (statistics='none')"
    else:
        if train_store is None or len(train_store) == 0:
            raise ValueError("cannot compute statistics: the training split is empty.")
        # one vectorised pass over every training frame (the flat array is a single "motion")
        mean, std = compute_statistics([train_store.flat])
        note = f"statistics computed once over the {len(train_store)} training motions ({train_store.num_frames} frames)"
    model_fps = float(fps) if fps else float(input_fps)
    fe = MotionPatchFeatureExtractor(
        skeleton=data.skeleton.to_dict(), mean=mean, std=std, max_frames=model_config.max_frames,
        points_per_part=model_config.points_per_part, frames_per_patch=model_config.frames_per_patch,
        points_per_patch=model_config.points_per_patch, fps=model_fps, input_fps=None if math.isclose(model_fps, input_fps) else float(input_fps),
        body_frame=body_frame,
    )
    return fe, note


__all__ = [
    "Augmentation",
    "EpochSampler",
    "MotionStore",
    "MotionTextCollator",
    "MotionTextEvalDataset",
    "MotionTextTrainDataset",
    "TrainingData",
    "build_feature_extractor",
    "captioned_rows",
    "load_training_data",
    "sample_uniform",
    "select_rows",
    "split_fps",
]
