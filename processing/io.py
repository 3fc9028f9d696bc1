"""Build, save, load and push prepared motion datasets.

A *prepared dataset* is a folder (or a Hub dataset repository) holding:

| file                     | what                                                                  |
|--------------------------|-----------------------------------------------------------------------|
| `dataset_dict.json` + one folder per split | ``DatasetDict.save_to_disk`` output (``format="arrow"``) |
| `data/{split}-00000-of-00001.parquet` | one Parquet file per split (``format="parquet"``, the Hub layout)  |
| `skeleton.json`          | ``Skeleton.to_dict()`` of the motions' skeleton                       |
| `statistics.json`        | per-(joint, axis) mean / std (see :mod:`.statistics`)                 |
| `prepare_report.json`    | source, licence, counts, skipped files (count + first ids), parameters |
| `README.md`              | the dataset card (``hub_cards/dataset_card.md``)                      |

Loaders build splits with :class:`SplitBuilder` (rows are turned into Arrow columns in vectorised chunks,
never one Python list per frame), record what they skip in a :class:`PrepareReport`, and the CLI saves the
result with :func:`save_prepared`. :func:`load_prepared` reads a folder or Hub id back; :func:`push_prepared`
uploads one, refusing public pushes of data whose licence forbids redistribution.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.arrow_writer import ArrowWriter
from datasets.table import InMemoryTable
import huggingface_hub
from huggingface_hub import DatasetCard, HfApi, constants

from modeling_motionpatch import MotionPatchFeatureExtractor, Skeleton, get_skeleton
from modeling_motionpatch.apps.motion_statistics import (
    STATISTICS_FILE,
    MotionStatistics,
    load_statistics,
    save_statistics,
)
from motionpatch_hub_cards.render import markdown_table, render_card

from .schema import SPLITS
from .sources import SourceInfo, source_info
from .statistics import statistics_markdown

from .schema import SPLITS
from .statistics import statistics_markdown

SKELETON_FILE = "skeleton.json"
REPORT_FILE = "prepare_report.json"
CARD_FILE = "README.md"
PARQUET_DIR = "data"
FIRST_IDS = 10  # ids quoted in warnings; the report keeps 20


class SkippedSamplesWarning(UserWarning):
    """Some source files or lines were skipped while preparing a dataset (the message gives counts and ids)."""


class RestrictedDatasetError(ValueError):
    """A dataset whose licence forbids public redistribution was about to be pushed publicly."""


# ---------------------------------------------------------------------------
# counted skips and the preparation report
# ---------------------------------------------------------------------------
@dataclass
class CountedLog:
    """Items grouped by reason (``reason -> ids``), for skipped files/lines and kept-with-remark samples."""

    items: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, item: str) -> None:
        self.items.setdefault(reason, []).append(str(item))

    def extend(self, reason: str, items: Iterable[str]) -> None:
        items = [str(i) for i in items]
        if items:
            self.items.setdefault(reason, []).extend(items)

    def count(self, reason: str | None = None) -> int:
        if reason is None:
            return sum(len(v) for v in self.items.values())
        return len(self.items.get(reason, ()))

    def __bool__(self) -> bool:
        return self.count() > 0

    def summary(self, first: int = FIRST_IDS) -> str:
        """``reason: N (first: a, b, ...)`` per reason, joined by ``; ``."""
        parts = []
        for reason, ids in self.items.items():
            shown = ", ".join(ids[:first]) + (", ..." if len(ids) > first else "")
            parts.append(f"{reason}: {len(ids)} (first: {shown})")
        return "; ".join(parts)

    def to_dict(self, first: int = 20) -> dict[str, dict[str, Any]]:
        return {r: {"count": len(ids), "first_ids": ids[:first]} for r, ids in self.items.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> CountedLog:
        # only the first ids survive a round trip; counts are kept by padding with a marker
        log = cls()
        for reason, entry in data.items():
            ids = list(entry.get("first_ids", []))
            log.items[reason] = ids + ["..."] * (int(entry.get("count", len(ids))) - len(ids))
        return log


@dataclass
class PrepareReport:
    """Everything the dataset card needs to say about how a dataset was made.

    Args:
        source: key of :data:`~.sources.SOURCES` (``"humanml3d"``, ``"kit"``, ``"babel"``, ...).
        root: the source folder.
        skeleton: skeleton of the motions.
        fps: frame rate of the prepared motions.
        skipped: files / lines / segments left out, by reason (each also counted in one warning).
        remarks: samples kept but worth knowing about (no caption file, cropped, ...), by reason.
        messages: free-text notes (absent split files, unit conversion, ...).
        parameters: loader options, for the card.
        class_names: classification labels (BABEL-style sources).
        counts: samples per split, filled by :meth:`finalize`.
        skeleton_rows: rows per skeleton name (the ``skeleton`` column), filled by :meth:`finalize`; a BVH folder
            that mixes rigs has several, ``skeleton`` being the primary one.
        command: the command line that produced the dataset (set by the CLI).
    """

    source: str
    root: str
    skeleton: Skeleton
    fps: float
    skipped: CountedLog = field(default_factory=CountedLog)
    remarks: CountedLog = field(default_factory=CountedLog)
    messages: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    skeleton_rows: dict[str, int] = field(default_factory=dict)
    command: str | None = None
    mirrored_added: int = 0

    @property
    def info(self) -> SourceInfo:
        return source_info(self.source)

    def warn_skipped(self, where: str | None = None, stacklevel: int = 3) -> None:
        """Emit ONE :class:`SkippedSamplesWarning` with the count and first ids of every skip reason."""
        if self.skipped:
            where = where or f"{self.source} ({self.root})"
            warnings.warn(
                f"{where}: skipped {self.skipped.count()} item(s) — {self.skipped.summary()}. "
                "The counts and first ids are written to the dataset card.",
                SkippedSamplesWarning,
                stacklevel=stacklevel,
            )

    def finalize(self, dataset_dict: datasets.DatasetDict) -> None:
        self.counts = {split: len(ds) for split, ds in dataset_dict.items()}
        self.skeleton_rows = skeleton_row_counts(dataset_dict)

    def to_dict(self) -> dict[str, Any]:
        info = self.info
        return {
            "source": self.source,
            "pretty_name": info.pretty_name,
            "root": self.root,
            "skeleton": self.skeleton.name,
            "fps": self.fps,
            "counts": dict(self.counts),
            "skeleton_rows": dict(self.skeleton_rows),
            "skipped": self.skipped.to_dict(),
            "remarks": self.remarks.to_dict(),
            "messages": list(self.messages),
            "parameters": _jsonable(self.parameters),
            "class_names": self.class_names,
            "command": self.command,
            "mirrored_added": self.mirrored_added,
            "license": info.license,
            "redistributable": info.redistributable,
            "restriction": info.restriction,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], skeleton: Skeleton) -> PrepareReport:
        return cls(
            source=data["source"],
            root=data.get("root", ""),
            skeleton=skeleton,
            fps=float(data.get("fps", 20.0)),
            skipped=CountedLog.from_dict(data.get("skipped", {})),
            remarks=CountedLog.from_dict(data.get("remarks", {})),
            messages=list(data.get("messages", [])),
            parameters=dict(data.get("parameters", {})),
            class_names=data.get("class_names"),
            counts=dict(data.get("counts", {})),
            skeleton_rows=dict(data.get("skeleton_rows", {})),
            command=data.get("command"),
            mirrored_added=int(data.get("mirrored_added", 0)),
        )


def skeleton_row_counts(dataset_dict: datasets.DatasetDict) -> dict[str, int]:
    """Rows per value of the ``skeleton`` column over all splits (Arrow ``value_counts``, no Python loop over
    rows), most rows first, ties by name."""
    counts: dict[str, int] = {}
    for ds in dataset_dict.values():
        if "skeleton" not in ds.column_names or not len(ds):
            continue
        for item in pc.value_counts(ds.data.column("skeleton")).to_pylist():
            counts[item["values"]] = counts.get(item["values"], 0) + int(item["counts"])
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def segment_id(clip_id: str, start: float, end: float) -> str:
    """Deterministic id of a caption/label segment: ``{clip}_{start}_{end}``.

    Times (seconds) are rounded to milliseconds and written with at least one and at most three decimals,
    trailing zeros removed: ``segment_id("000001", 1.5, 3.25) == "000001_1.5_3.25"``,
    ``segment_id("x", 2, 10) == "x_2.0_10.0"``.
    """
    return f"{clip_id}_{format_seconds(start)}_{format_seconds(end)}"


def format_seconds(t: float) -> str:
    """``3`` -> ``"3.0"``, ``1.25`` -> ``"1.25"``, ``0.12345`` -> ``"0.123"`` (see :func:`segment_id`)."""
    s = f"{round(float(t), 3):.3f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


# ---------------------------------------------------------------------------
# building Arrow datasets without per-frame Python work
# ---------------------------------------------------------------------------
def motion_storage(motions: Sequence[np.ndarray], num_joints: int) -> pa.Array:
    """``list<list<list<float32>>>`` storage of ``Array3D(shape=(None, J, 3))`` for ragged ``(T_i, J, 3)`` motions.

    Built from one flat float32 buffer (no per-value Python objects). Raises ``ValueError`` naming the motion
    when one is not ``(frames, num_joints, 3)``, and when the batch holds more values than the schema's
    32-bit list offsets address (write it in smaller batches then).
    """
    for i, m in enumerate(motions):
        if np.ndim(m) != 3 or tuple(np.shape(m)[1:]) != (num_joints, 3):
            raise ValueError(
                f"motion {i} of the batch has shape {np.shape(m)}; expected (frames, {num_joints}, 3) for a "
                f"{num_joints}-joint skeleton."
            )
    lengths = np.fromiter((np.shape(m)[0] for m in motions), dtype=np.int64, count=len(motions))
    frames = int(lengths.sum())
    if frames * num_joints * 3 > np.iinfo(np.int32).max:
        raise ValueError(
            f"a batch of {len(motions)} motions holds {frames * num_joints * 3} values, more than one Arrow list "
            "array addresses (2**31 - 1); write it in smaller batches (a lower batch_size / chunk_rows)."
        )
    flat = (
        np.concatenate([np.ascontiguousarray(m, dtype=np.float32).reshape(-1) for m in motions])
        if len(motions)
        else np.zeros(0, np.float32)
    )
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, frames * num_joints * 3 + 1, 3, dtype=np.int32)), pa.array(flat))
    mid = pa.ListArray.from_arrays(pa.array(np.arange(0, frames * num_joints + 1, num_joints, dtype=np.int32)), inner)
    outer_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(outer_offsets), mid)


def rows_table(columns: Mapping[str, Sequence[Any]], features: datasets.Features) -> pa.Table:
    """One Arrow table with exactly ``features`` from one list of values per column (motions via
    :func:`motion_storage`)."""
    schema = features.arrow_schema
    arrays = []
    for k, feature in features.items():
        ftype = schema.field(k).type
        if isinstance(feature, datasets.Array3D):
            arrays.append(pa.ExtensionArray.from_storage(ftype, motion_storage(columns[k], feature.shape[1])))
        else:
            arrays.append(pa.array(columns[k], type=ftype))
    return pa.Table.from_arrays(arrays, schema=schema)


def _output_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is None:
        return Path(tempfile.mkdtemp(prefix="motionpatch_bvh_"))
    out = Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="dataset_", dir=out))


def write_arrow_splits(
    rows: Iterable[tuple[str, Mapping[str, Any]]],
    features: datasets.Features,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
) -> datasets.DatasetDict:
    """Write ``(split, row)`` pairs to one Arrow file per split of ``SPLITS``, ``batch_size`` rows per record
    batch, in a single pass (only one batch per split is ever held), then memory-map them as a DatasetDict.

    The files go into a new folder under ``cache_dir`` (a new temporary folder by default).
    """
    out_dir = _output_dir(cache_dir)
    paths = {split: out_dir / f"{split}.arrow" for split in SPLITS}
    writers = {split: ArrowWriter(features=features, path=str(p)) for split, p in paths.items()}
    batches: dict[str, list[Mapping[str, Any]]] = {split: [] for split in SPLITS}

    def write(split: str) -> None:
        batch = batches[split]
        writers[split].write_table(rows_table({k: [r[k] for r in batch] for k in features}, features))
        batch.clear()

    try:
        for split, row in rows:
            batches[split].append(row)
            if len(batches[split]) >= batch_size:
                write(split)
        for split in SPLITS:
            if batches[split]:
                write(split)
            writers[split].finalize()
    finally:
        for w in writers.values():
            w.close()
    info = datasets.DatasetInfo(features=features)
    return datasets.DatasetDict({s: datasets.Dataset.from_file(str(p), info=info) for s, p in paths.items()})


class SplitBuilder:
    """Accumulates rows of one split and turns them into a :class:`datasets.Dataset` in vectorised chunks.

    ``add(**row)`` takes one value per feature (motions as ``(T, J, 3)`` arrays); every ``chunk_rows`` rows
    the motions are concatenated into one flat float32 buffer and wrapped as Arrow list arrays, so memory
    holds at most one chunk of NumPy arrays plus the compact Arrow data.
    """

    def __init__(self, features: datasets.Features, split: str | None = None, chunk_rows: int = 512):
        self.features = features
        self.split = split
        self.chunk_rows = int(chunk_rows)
        self._rows: dict[str, list] = {k: [] for k in features}
        self._tables: list[pa.Table] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, **row: Any) -> None:
        missing = set(self.features) - set(row)
        extra = set(row) - set(self.features)
        if missing or extra:
            raise ValueError(
                f"row for split {self.split!r} has missing columns {sorted(missing)} / unknown columns "
                f"{sorted(extra)}; expected exactly {list(self.features)} (processing/schema.py)."
            )
        for k in self.features:
            self._rows[k].append(row[k])
        self._n += 1
        if len(self._rows["id"]) >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        rows = self._rows
        n = len(rows["id"])
        if n == 0 and self._tables:
            return
        self._tables.append(rows_table(rows, self.features))
        self._rows = {k: [] for k in self.features}

    def finish(self) -> datasets.Dataset:
        """The split as an in-memory :class:`datasets.Dataset` with exactly ``features``."""
        self._flush()
        table = pa.concat_tables(self._tables) if len(self._tables) > 1 else self._tables[0]
        info = datasets.DatasetInfo(features=self.features)
        split = datasets.NamedSplit(self.split) if self.split else None
        return datasets.Dataset(InMemoryTable(table), info=info, split=split)


def check_not_empty(dataset_dict: datasets.DatasetDict, report: PrepareReport) -> None:
    """Raise a ``ValueError`` naming the skip reasons when a loader produced no sample at all."""
    if sum(len(d) for d in dataset_dict.values()) == 0:
        reasons = report.skipped.summary() or "no ids in the split files"
        raise ValueError(
            f"{report.source}: no sample could be prepared from {report.root}. Skipped: {reasons}. Check that "
            "--root points at the dataset folder and that the source / skeleton match the files."
        )


# ---------------------------------------------------------------------------
# dataset card
# ---------------------------------------------------------------------------
def build_dataset_card(
    report: PrepareReport,
    statistics: Any | None = None,
    splits: Sequence[str] | None = None,
    pretty_name: str | None = None,
):
    """Render ``hub_cards/dataset_card.md`` for a prepared dataset (returns a ``huggingface_hub.DatasetCard``)."""
    info = report.info
    splits = list(splits if splits is not None else report.counts)
    configs = [{"config_name": "default", "data_files": [{"split": s, "path": f"{PARQUET_DIR}/{s}-*"} for s in splits]}]
    card_data = {
        "license": info.license,
        "pretty_name": pretty_name or info.pretty_name,
        "task_categories": list(info.task_categories),
        "tags": sorted(set(info.tags) | {"motionpatch", f"skeleton-{report.skeleton.name}"}),
        "configs": configs,
    }
    if info.license_name:
        card_data["license_name"] = info.license_name
    counts_rows = [[s, str(report.counts.get(s, 0))] for s in splits]
    counts_rows.append(["**total**", str(sum(report.counts.get(s, 0) for s in splits))])

    def table(log: CountedLog) -> str:
        if not log:
            return "None."
        return markdown_table(
            ["reason", "count", "first ids"],
            [[r, str(len(ids)), ", ".join(f"`{i}`" for i in ids[:FIRST_IDS] if i != "...") + (" ..." if len(ids) > FIRST_IDS else "")]
             for r, ids in log.items.items()],
        )

    stats_md = "Not computed."
    if isinstance(statistics, MotionStatistics):
        stats_md = statistics_markdown(statistics, report.skeleton)
    warnings_md = []
    if info.synthetic:
        warnings_md.append("The motions are **synthetic** (generated, not recorded); they contain no real human motion.")
    if info.label_derived_captions:
        warnings_md.append(
            "Captions (when present) are **derived mechanically from labels**, not written by people; do not "
            "report text-retrieval results on them as if they were free text."
        )
    if not info.redistributable:
        warnings_md.append(f"**Do not share this dataset publicly**: {info.restriction}.")
    return render_card(
        "dataset_card.md",
        card_data=card_data,
        card_type="dataset",
        pretty_name=card_data["pretty_name"],
        source=info,
        report=report,
        counts_table=markdown_table(["split", "samples"], counts_rows),
        skipped_table=table(report.skipped),
        remarks_table=table(report.remarks),
        skeleton=report.skeleton,
        skeleton_chains=report.skeleton.chain_names(),
        statistics_md=stats_md,
        warnings=warnings_md,
        parameters=_jsonable(report.parameters),
    )


# ---------------------------------------------------------------------------
# save / load / push
# ---------------------------------------------------------------------------
_OWNED = ("dataset_dict.json", SKELETON_FILE, STATISTICS_FILE, REPORT_FILE, CARD_FILE, PARQUET_DIR) + SPLITS


def save_prepared(
    dataset_dict: datasets.DatasetDict,
    output_dir: str | Path,
    skeleton: Skeleton | str,
    statistics: Any = None,
    card: Any = None,
    format: str = "arrow",
    report: PrepareReport | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a prepared dataset folder (see the module docstring for the files).

    Args:
        dataset_dict: the splits, in the schema of :mod:`.schema`.
        output_dir: target folder; must be empty or absent unless ``overwrite`` (which replaces only the
            files this function writes).
        skeleton: skeleton of the motions (written to ``skeleton.json``).
        statistics: a :class:`~modeling_motionpatch.apps.motion_statistics.MotionStatistics`, a ``(mean, std)`` pair, or ``None``.
        card: a ``DatasetCard`` / markdown string; built from ``report`` when omitted.
        format: ``"arrow"`` (``save_to_disk``, reload with ``datasets.load_from_disk``) or ``"parquet"``
            (``data/{split}-00000-of-00001.parquet``, the Hub layout).
        report: the loader's :class:`PrepareReport` (counts, skips, licence), written to ``prepare_report.json``.
        overwrite: replace an earlier prepared dataset in ``output_dir``.
    """
    if format not in ("arrow", "parquet"):
        raise ValueError(f"format must be 'arrow' or 'parquet', got {format!r}.")
    out = Path(output_dir)
    skeleton = get_skeleton(skeleton)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"output folder {out} is not empty; choose a new folder or pass overwrite=True (--overwrite), "
                "which replaces the files of an earlier prepared dataset."
            )
        for name in _OWNED:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    empty = [split for split, ds in dataset_dict.items() if len(ds) == 0]
    if empty:
        warnings.warn(f"save_prepared: split(s) {empty} have no rows and are not written.", UserWarning, stacklevel=2)
        dataset_dict = datasets.DatasetDict({s: d for s, d in dataset_dict.items() if len(d)})
    out.mkdir(parents=True, exist_ok=True)
    if format == "arrow":
        dataset_dict.save_to_disk(str(out))
    else:
        (out / PARQUET_DIR).mkdir(exist_ok=True)
        for split, ds in dataset_dict.items():
            ds.to_parquet(str(out / PARQUET_DIR / f"{split}-00000-of-00001.parquet"))
    (out / SKELETON_FILE).write_text(json.dumps(skeleton.to_dict(), indent=2))
    if statistics is not None:
        if not isinstance(statistics, MotionStatistics):
            mean, std = statistics
            statistics = MotionStatistics(np.asarray(mean), np.asarray(std), splits=[], num_motions=0, num_frames=0)
        save_statistics(statistics, out)
    if report is not None:
        report.finalize(dataset_dict)
        data = report.to_dict()
        data["format"] = format
        (out / REPORT_FILE).write_text(json.dumps(data, indent=2))
        if card is None:
            card = build_dataset_card(report, statistics, splits=list(dataset_dict))
    if card is not None:
        (out / CARD_FILE).write_text(str(card), encoding="utf-8")
    return out


@dataclass
class PreparedDataset:
    """A prepared dataset read back by :func:`load_prepared`."""

    dataset: datasets.DatasetDict
    skeleton: Skeleton
    mean: np.ndarray | None
    std: np.ndarray | None
    path: Path
    report: dict[str, Any] | None = None
    card: Any = None

    @property
    def fps(self) -> float:
        return float((self.report or {}).get("fps", 20.0))

    @property
    def class_names(self) -> list[str] | None:
        return (self.report or {}).get("class_names")

    def feature_extractor(self, max_frames: int = 224, **kwargs: Any) -> MotionPatchFeatureExtractor:
        """A :class:`MotionPatchFeatureExtractor` with this dataset's skeleton, statistics and frame rate."""
        kwargs.setdefault("fps", self.fps)
        return MotionPatchFeatureExtractor(
            skeleton=self.skeleton.to_dict(), mean=self.mean, std=self.std, max_frames=max_frames, **kwargs
        )


def _load_local(path: Path) -> datasets.DatasetDict:
    if (path / "dataset_dict.json").exists():
        return datasets.load_from_disk(str(path))
    parquet = sorted((path / PARQUET_DIR).glob("*.parquet")) if (path / PARQUET_DIR).is_dir() else []
    if not parquet:
        raise ValueError(
            f"{path} holds neither a saved DatasetDict (dataset_dict.json) nor Parquet files under {PARQUET_DIR}/; "
            "prepare it with `motionpatch-prepare ... --output DIR` first."
        )
    files: dict[str, list[str]] = {}
    for f in parquet:
        split = f.name.split("-")[0]
        files.setdefault(split, []).append(str(f))
    order = [s for s in SPLITS if s in files] + sorted(s for s in files if s not in SPLITS)
    return datasets.load_dataset("parquet", data_files={s: files[s] for s in order})


def load_prepared(path_or_hub_id: str | Path, revision: str | None = None, token: str | None = None) -> PreparedDataset:
    """Read a prepared dataset from a local folder (arrow or parquet) or a Hub dataset repository.

    A Hub id (``"user/name"``) is downloaded with ``huggingface_hub.snapshot_download(repo_type="dataset")``.
    """
    path = Path(path_or_hub_id)
    if not path.exists():
        if str(path_or_hub_id).count("/") != 1:
            raise ValueError(f"{path_or_hub_id!r} is neither an existing folder nor a Hub dataset id 'user/name'.")
        path = Path(huggingface_hub.snapshot_download(str(path_or_hub_id), repo_type="dataset", revision=revision,
                                                      token=token))
    dataset = _load_local(path)
    if not (path / SKELETON_FILE).exists():
        raise ValueError(f"{path} has no {SKELETON_FILE}; it was not written by save_prepared / motionpatch-prepare.")
    skeleton = get_skeleton(json.loads((path / SKELETON_FILE).read_text()))
    mean = std = None
    if (path / STATISTICS_FILE).exists():
        mean, std = load_statistics(path)
    report = json.loads((path / REPORT_FILE).read_text()) if (path / REPORT_FILE).exists() else None
    card = None
    if (path / CARD_FILE).exists():
        card = DatasetCard.load(path / CARD_FILE)
    return PreparedDataset(dataset=dataset, skeleton=skeleton, mean=mean, std=std, path=path, report=report, card=card)


def push_prepared(
    source: str | Path | PreparedDataset,
    repo_id: str,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a prepared dataset to the Hub; returns the repository URL.

    Uploads the splits with ``DatasetDict.push_to_hub(repo_id, private=...)`` (Parquet shards under
    ``data/``), then ``skeleton.json``, ``statistics.json`` and ``prepare_report.json`` with
    ``HfApi.upload_file``, then the card with ``DatasetCard.push_to_hub`` (last, so that it replaces the
    auto-generated README; its YAML ``configs`` point at the same ``data/{split}-*`` files).

    Raises:
        RestrictedDatasetError: the report marks the source as not redistributable (HumanML3D, KIT-ML,
            BABEL, InterHuman) and ``private`` is not ``True``.
    """
    prepared = source if isinstance(source, PreparedDataset) else load_prepared(source)
    report = prepared.report or {}
    if report.get("redistributable") is False and private is not True:
        raise RestrictedDatasetError(
            f"refusing to push {report.get('source')!r} data to {repo_id!r} publicly: "
            f"{report.get('restriction')}. Pass private=True (--private) to push to a private repository."
        )
    message = commit_message or "Upload motionpatch prepared dataset"
    prepared.dataset.push_to_hub(repo_id, private=private, token=token, commit_message=message)
    api = HfApi(token=token)
    for name in (SKELETON_FILE, STATISTICS_FILE, REPORT_FILE):
        file = prepared.path / name
        if file.exists():
            api.upload_file(
                path_or_fileobj=str(file), path_in_repo=name, repo_id=repo_id, repo_type="dataset",
                commit_message=f"{message}: {name}",
            )
    card = prepared.card
    if card is None and (prepared.path / CARD_FILE).exists():
        card = DatasetCard.load(prepared.path / CARD_FILE)
    if card is not None:
        card.push_to_hub(repo_id, token=token, repo_type="dataset", commit_message=f"{message}: dataset card")
    return f"{constants.ENDPOINT}/datasets/{repo_id}"


def dataset_dict_from_builders(
    builders: Mapping[str, SplitBuilder], report: PrepareReport | None = None
) -> datasets.DatasetDict:
    """Finish every :class:`SplitBuilder` into a ``DatasetDict`` (split order kept).

    Empty splits are left out (``save_to_disk`` cannot write a split without rows in datasets 5.x) and
    noted in ``report.messages``.
    """
    out = {}
    for split, builder in builders.items():
        if len(builder) == 0:
            if report is not None:
                report.messages.append(f"split {split!r} has no sample after preparation and is not included")
            continue
        out[split] = builder.finish()
    return datasets.DatasetDict(out)


__all__ = [
    "CountedLog",
    "PrepareReport",
    "PreparedDataset",
    "RestrictedDatasetError",
    "SkippedSamplesWarning",
    "SplitBuilder",
    "build_dataset_card",
    "check_not_empty",
    "dataset_dict_from_builders",
    "format_seconds",
    "load_prepared",
    "motion_storage",
    "push_prepared",
    "rows_table",
    "save_prepared",
    "segment_id",
    "write_arrow_splits",
]
