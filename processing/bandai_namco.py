"""Import BVH collections, and the Bandai-Namco Research Motion Dataset, into the motionpatch schema.

* :func:`load_bvh_collection` - any folder of BVH files with a shared hierarchy: forward kinematics,
  optional frame-rate conversion, labels (callable, mapping or sidecar ``.json``), templated captions,
  deterministic splits, and the skeleton derived from the hierarchy (registered by name). Files that
  fail to parse are skipped, counted and reported in one :class:`BVHImportWarning`.
* :func:`load_bandai_namco` - the Bandai-Namco layout (``ds*-bvh*/data/*.bvh`` + ``*.json`` sidecars with
  content/style ids, ``cfg/*_label.txt`` mapping ids to names), as the native skeleton
  (``bandai-namco``, all 22 BVH joints, metres) or reordered into the 22-joint HumanML3D (SMPL) skeleton
  (:data:`BANDAI_TO_HUMANML3D`), at 20 fps.
* :func:`dataset_from_npz` - the prepared ``ds*_h22_20fps.npz`` (+ ``ds*_index.jsonl``) as a dataset,
  streamed batch by batch from the ``.npz`` into Arrow so that peak memory stays far below the size of
  the motion arrays.

All three return ``(datasets.DatasetDict, Skeleton)``: splits ``train`` / ``validation`` / ``test`` in the
schema of :mod:`motionpatch_processing.schema`, and the skeleton whose ``to_dict()`` a writer saves as
``skeleton.json`` next to the data. The Arrow files are written under ``cache_dir`` (a new temporary
folder by default); call ``save_to_disk`` to keep them.

Splits (deterministic; no take is ever in two splits):

* ``"take"``: the split depends only on the take number at the end of the file stem (``..._007`` -> 7):
  take % 10 == 9 -> ``validation``, take % 10 == 0 -> ``test``, otherwise ``train`` (80/10/10 of the take
  numbers). A take number, hence every take and every sample later derived from it (mirrors, crops),
  is in exactly one split, and each content x style pair with >= 10 takes appears in every split.
  Used for Bandai dataset 2 (17 to 104 takes per pair).
* ``"hash"``: the split of a clip is drawn from a seeded BLAKE2b hash of its *group* - the stem without
  the take suffix (``dataset-1_walk_happy_002`` -> ``dataset-1_walk_happy``) - against ``fractions``. The
  takes of one content x style pair stay together, so nothing recorded for a pair leaks across splits.
  Stable across runs and machines and when other files are added. Used for Bandai dataset 1 (one take
  per pair, two for 18 pairs) and ``ds2-bvh-sample`` (take 001 only), where the take rule would put
  everything in ``train``.
* ``"auto"`` (default): ``"take"`` when every stem ends in a take number and the largest is >= 10 (so
  that all three splits can be populated), else ``"hash"``.
* a callable ``stem -> split`` or a mapping ``stem -> split`` for anything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from modeling_motionpatch.motion_patches import resample_fps
from modeling_motionpatch.skeletons import Skeleton, get_skeleton, register_skeleton

from .bvh import BVHData, bvh_skip_reason, forward_kinematics_batch, parse_bvh
from .schema import SPLITS, motion_features

logger = logging.getLogger(__name__)

__all__ = [
    "BANDAI_CAPTION_TEMPLATE",
    "BANDAI_CONTENT_PHRASES",
    "BANDAI_PHRASES",
    "BANDAI_STYLE_PHRASES",
    "BANDAI_TO_HUMANML3D",
    "BVHImportWarning",
    "assign_splits",
    "bandai_labels",
    "bandai_to_humanml3d",
    "clip_group",
    "dataset_from_npz",
    "joint_map_matrix",
    "load_bandai_namco",
    "load_bvh_collection",
    "make_caption",
    "register_bandai_skeleton",
    "split_of_key",
    "split_of_take",
    "take_number",
]


class BVHImportWarning(UserWarning):
    """Some files of a collection were skipped (the message gives the count, the first names and errors)."""


# ---------------------------------------------------------------------------
# Bandai-Namco specifics
# ---------------------------------------------------------------------------
#: HumanML3D (SMPL-22) joint i = mean of these Bandai BVH joints (checked against ``ds2_h22_20fps.npz``: max
#: difference 1.95e-3 m over the 70 sample clips, the npz's float16 rounding). The Bandai skeleton has no
#: middle spine joint: spine2 = mean(Spine, Chest).
BANDAI_TO_HUMANML3D: tuple[tuple[str, ...], ...] = (
    ("Hips",),  # 0 pelvis
    ("UpperLeg_L",),  # 1 left_hip
    ("UpperLeg_R",),  # 2 right_hip
    ("Spine",),  # 3 spine1
    ("LowerLeg_L",),  # 4 left_knee
    ("LowerLeg_R",),  # 5 right_knee
    ("Spine", "Chest"),  # 6 spine2
    ("Foot_L",),  # 7 left_ankle
    ("Foot_R",),  # 8 right_ankle
    ("Chest",),  # 9 spine3
    ("Toes_L",),  # 10 left_foot
    ("Toes_R",),  # 11 right_foot
    ("Neck",),  # 12 neck
    ("Shoulder_L",),  # 13 left_collar
    ("Shoulder_R",),  # 14 right_collar
    ("Head",),  # 15 head
    ("UpperArm_L",),  # 16 left_shoulder
    ("UpperArm_R",),  # 17 right_shoulder
    ("LowerArm_L",),  # 18 left_elbow
    ("LowerArm_R",),  # 19 right_elbow
    ("Hand_L",),  # 20 left_wrist
    ("Hand_R",),  # 21 right_wrist
)

#: Verb phrase of each content label (datasets 1 and 2), as in the shared index files' ``caption_template``.
BANDAI_CONTENT_PHRASES: dict[str, str] = {
    # dataset 1
    "walk": "walks forward",
    "run": "runs forward",
    "dash": "dashes forward",
    "walk-back": "walks backwards",
    "walk-left": "walks to the left",
    "walk-right": "walks to the right",
    "bow": "bows",
    "bye": "waves goodbye",
    "guide": "gestures to guide someone the way",
    "byebye": "waves goodbye with both hands",
    "respond": "responds with a gesture",
    "call": "calls out to someone",
    "punch": "throws a punch",
    "kick": "kicks",
    "slash": "slashes with a sword",
    "dance-long": "dances for a long time",
    "dance-short": "dances briefly",
    # dataset 2
    "walk-turn-left": "walks forward and turns left",
    "walk-turn-right": "walks forward and turns right",
    "wave-both-hands": "waves both hands",
    "wave-left-hand": "waves the left hand",
    "wave-right-hand": "waves the right hand",
    "raise-up-both-hands": "raises both hands",
    "raise-up-left-hand": "raises the left hand",
    "raise-up-right-hand": "raises the right hand",
}

#: Adverbial phrase of each style label ("normal" adds nothing), as in the index files' ``caption_template``.
BANDAI_STYLE_PHRASES: dict[str, str] = {
    "normal": "",
    # dataset 1
    "active": "energetically",
    "angry": "angrily",
    "childish": "like a child",
    "chimpira": "like a swaggering thug",
    "feminine": "in a feminine way",
    "giant": "heavily, like a giant",
    "happy": "happily",
    "masculinity": "in a masculine way",
    "musical": "theatrically, like in a musical",
    "not-confident": "without confidence",
    "old": "like an old person",
    "proud": "proudly",
    "sad": "sadly",
    "tired": "tiredly",
    # dataset 2
    "elderly": "like an elderly person",
    "exhausted": "in an exhausted way",
    "masculine": "in a masculine way",
    "youthful": "in a youthful way",
}

BANDAI_CAPTION_TEMPLATE = "a person {content} {style}."
BANDAI_PHRASES: dict[str, Mapping[str, str]] = {"content": BANDAI_CONTENT_PHRASES, "style": BANDAI_STYLE_PHRASES}
_BANDAI_NAME_RE = re.compile(r"^dataset-\d+_(?P<content>[^_]+)_(?P<style>[^_]+)_(?P<take>\d+)$")
_LABEL_PREFIX_RE = re.compile(r"^dataset-\d+_")


def joint_map_matrix(names: Sequence[str], mapping: Sequence[Sequence[str]]) -> np.ndarray:
    """``(len(mapping), len(names))`` float32 matrix: output joint i = mean of the source joints ``mapping[i]``."""
    index = {n: k for k, n in enumerate(names)}
    missing = sorted({n for group in mapping for n in group if n not in index})
    if missing:
        raise ValueError(
            f"joint map names joints {missing} that the hierarchy lacks; its joints are {list(names)}. "
            "Pass a mapping written for this skeleton."
        )
    w = np.zeros((len(mapping), len(names)), dtype=np.float32)
    for i, group in enumerate(mapping):
        if not group:
            raise ValueError(f"joint map entry {i} is empty; every output joint needs at least one source joint.")
        for n in group:
            w[i, index[n]] += 1.0 / len(group)
    return w


def bandai_to_humanml3d(positions: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Reorder ``(T, J, 3)`` Bandai joint positions into the 22 HumanML3D joints (:data:`BANDAI_TO_HUMANML3D`)."""
    w = joint_map_matrix(names, BANDAI_TO_HUMANML3D)
    return np.einsum("ij,tjc->tic", w, positions, optimize=True).astype(np.float32, copy=False)


def make_caption(
    template: str, fields: Mapping[str, Any], phrases: Mapping[str, Mapping[str, str]] | None = None
) -> str:
    """Fill a caption template from label fields, each mapped through ``phrases[field]`` when given.

    A label without a phrase is used as text (``-`` and ``_`` become spaces). Whitespace is collapsed and
    spaces before punctuation removed, so an empty phrase (style ``normal``) leaves no gap:
    ``make_caption("a person {content} {style}.", {"content": "bow", "style": "angry"}, BANDAI_PHRASES)``
    -> ``"a person bows angrily."``.
    """
    filled = {}
    for key, value in fields.items():
        table = (phrases or {}).get(key)
        text = str(value)
        if table is not None and text in table:
            filled[key] = table[text]
        else:
            filled[key] = text.replace("-", " ").replace("_", " ")
    try:
        out = template.format(**filled)
    except KeyError as err:
        raise ValueError(
            f"caption template {template!r} uses the field {err.args[0]!r} but the labels only have "
            f"{sorted(fields)}; change the template or the labels."
        ) from None
    out = re.sub(r"\s+", " ", out).strip()
    return re.sub(r"\s+([.,!?;:])", r"\1", out)


# ---------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------
_TAKE_RE = re.compile(r"_(\d+)$")


def take_number(stem: str) -> int | None:
    """The take number at the end of a file stem (``dataset-2_walk_active_007`` -> 7), or None."""
    m = _TAKE_RE.search(stem)
    return int(m.group(1)) if m else None


def clip_group(stem: str) -> str:
    """The stem without its take suffix (``dataset-1_walk_happy_002`` -> ``dataset-1_walk_happy``)."""
    return _TAKE_RE.sub("", stem)


def split_of_take(take: int) -> str:
    """Split of a take number: ``take % 10 == 9`` -> validation, ``== 0`` -> test, else train."""
    r = int(take) % 10
    return "validation" if r == 9 else "test" if r == 0 else "train"


def split_of_key(key: str, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
    """Split of a key from a seeded BLAKE2b hash: uniform in [0, 1) compared with cumulative ``fractions``."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"fractions must be three non-negative numbers (train, validation, test) summing to 1, got {fractions}."
        )
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "validation" if u < fractions[0] + fractions[1] else "test"


def assign_splits(
    stems: Sequence[str],
    splits: str | Callable[[str], str] | Mapping[str, str] = "auto",
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> list[str]:
    """Split of each stem under a rule (``auto``, ``take``, ``hash``, callable, mapping; see the module
    docstring); returns one of ``SPLITS`` per stem."""
    if callable(splits):
        out = [splits(s) for s in stems]
    elif isinstance(splits, Mapping):
        missing = [s for s in stems if s not in splits]
        if missing:
            raise ValueError(f"split mapping has no entry for {len(missing)} clips, e.g. {missing[:3]}.")
        out = [splits[s] for s in stems]
    elif splits in ("auto", "take"):
        takes = [take_number(s) for s in stems]
        if splits == "auto" and (not takes or any(t is None for t in takes) or max(takes) < 10):  # type: ignore[type-var]
            return assign_splits(stems, "hash", seed, fractions)
        bad = [s for s, t in zip(stems, takes) if t is None]
        if bad:
            raise ValueError(
                f"splits='take' needs a take number at the end of each file stem ('_001'); {len(bad)} have none, "
                f"e.g. {bad[:3]}. Use splits='hash' or pass a callable."
            )
        out = [split_of_take(t) for t in takes]  # type: ignore[arg-type]
    elif splits == "hash":
        out = [split_of_key(clip_group(s), seed, fractions) for s in stems]
    else:
        raise ValueError(f"unknown split rule {splits!r}; use 'auto', 'take', 'hash', a callable or a mapping.")
    bad = sorted({s for s in out if s not in SPLITS})
    if bad:
        raise ValueError(f"split rule returned {bad}; splits must be one of {SPLITS}.")
    return out


# ---------------------------------------------------------------------------
# Arrow writing (batches of numpy arrays -> the schema's Arrow layout, no per-value Python objects)
# ---------------------------------------------------------------------------
def _motion_storage(motions: Sequence[np.ndarray], num_joints: int) -> pa.Array:
    """list<list<list<float32>>> storage of ``Array3D(shape=(None, J, 3))`` for ragged ``(T_i, J, 3)`` arrays."""
    frames = np.fromiter((m.shape[0] for m in motions), dtype=np.int64, count=len(motions))
    total = int(frames.sum())
    flat = (
        np.concatenate([np.ascontiguousarray(m, dtype=np.float32).reshape(-1) for m in motions])
        if motions
        else np.zeros(0, np.float32)
    )
    big = total * num_joints * 3 >= 2**31 - 1
    itype = np.int64 if big else np.int32
    lst = pa.LargeListArray if big else pa.ListArray
    xyz = lst.from_arrays(np.arange(0, total * num_joints * 3 + 1, 3, dtype=itype), pa.array(flat, pa.float32()))
    joints = lst.from_arrays(np.arange(0, total * num_joints + 1, num_joints, dtype=itype), xyz)
    offsets = np.zeros(len(motions) + 1, dtype=itype)
    np.cumsum(frames, out=offsets[1:])
    return lst.from_arrays(offsets, joints)


def _batch_table(rows: Sequence[Mapping[str, Any]], features: datasets.Features) -> pa.Table:
    num_joints = features["motion"].shape[1]
    storage = _motion_storage([r["motion"] for r in rows], num_joints)
    motion_type = features["motion"]()
    if storage.type != motion_type.storage_type:
        storage = storage.cast(motion_type.storage_type)
    columns = {
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "motion": pa.ExtensionArray.from_storage(motion_type, storage),
        "fps": pa.array([r["fps"] for r in rows], pa.float32()),
        "skeleton": pa.array([r["skeleton"] for r in rows], pa.string()),
        "captions": pa.array([list(r["captions"]) for r in rows], pa.list_(pa.string())),
        "labels": pa.array([list(r["labels"]) for r in rows], pa.list_(pa.string())),
        "source": pa.array([r["source"] for r in rows], pa.string()),
        "mirrored": pa.array([bool(r["mirrored"]) for r in rows], pa.bool_()),
    }
    return pa.table(columns)


def _output_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is None:
        return Path(tempfile.mkdtemp(prefix="motionpatch_bvh_"))
    out = Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="dataset_", dir=out))


def _dataset_dict(
    rows: Iterable[tuple[str, Mapping[str, Any]]], num_joints: int, cache_dir, batch_size: int = 256
) -> datasets.DatasetDict:
    """Write ``(split, row)`` pairs to one Arrow file per split, ``batch_size`` rows per record batch, in a
    single pass (only one batch per split is ever held), then memory-map them as a DatasetDict."""
    from datasets.arrow_writer import ArrowWriter

    features = motion_features(num_joints)
    out_dir = _output_dir(cache_dir)
    paths = {split: out_dir / f"{split}.arrow" for split in SPLITS}
    writers = {split: ArrowWriter(features=features, path=str(p)) for split, p in paths.items()}
    batches: dict[str, list[Mapping[str, Any]]] = {split: [] for split in SPLITS}
    try:
        for split, row in rows:
            batch = batches[split]
            batch.append(row)
            if len(batch) >= batch_size:
                writers[split].write_table(_batch_table(batch, features))
                batch.clear()
        for split in SPLITS:
            if batches[split]:
                writers[split].write_table(_batch_table(batches[split], features))
                batches[split].clear()
            writers[split].finalize()
    finally:
        for w in writers.values():
            w.close()
    info = datasets.DatasetInfo(features=features)
    return datasets.DatasetDict({s: datasets.Dataset.from_file(str(p), info=info) for s, p in paths.items()})


# ---------------------------------------------------------------------------
# generic BVH collections
# ---------------------------------------------------------------------------
LabelSource = None | str | Mapping[str, Any] | Callable[[Path], Mapping[str, Any] | Sequence[str] | None]


def _resolve_labels(
    labels: LabelSource, path: Path, stem: str, rel: str, label_fields: Sequence[str]
) -> OrderedDict[str, str]:
    if labels is None:
        return OrderedDict()
    if isinstance(labels, str):
        if labels != "sidecar":
            raise ValueError(f"labels={labels!r}: the only string option is 'sidecar' (read '<file>.json').")
        sidecar = path.with_suffix(".json")
        with open(sidecar, encoding="utf-8") as fh:
            value = json.load(fh)
    elif isinstance(labels, Mapping):
        if stem in labels:
            value = labels[stem]
        elif rel in labels:
            value = labels[rel]
        else:
            raise KeyError(f"no labels for {rel!r} (looked up by stem {stem!r} and by relative path)")
    elif callable(labels):
        value = labels(path)
    else:
        raise TypeError(f"labels must be None, 'sidecar', a mapping or a callable, got {type(labels).__name__}.")
    if value is None:
        return OrderedDict()
    if isinstance(value, Mapping):
        return OrderedDict((str(k), str(v)) for k, v in value.items())
    if isinstance(value, str):
        value = [value]
    value = [str(v) for v in value]
    names = list(label_fields) + [f"label{i}" for i in range(len(label_fields), len(value))]
    return OrderedDict(zip(names, value))


def _report_skips(skipped: list[tuple[str, str, str]], total: int, root: Path) -> None:
    """One :class:`BVHImportWarning` for ``(file, reason, error)`` skips; ``warning.skipped`` maps reason -> files."""
    if not skipped:
        return
    first = "; ".join(f"{name}: {why}" for name, _, why in skipped[:3])
    msg = (
        f"skipped {len(skipped)} of {total} BVH files under {root} that could not be imported "
        f"(first: {[n for n, _, _ in skipped[:5]]}). First errors: {first}"
    )
    logger.warning(msg)
    warning = BVHImportWarning(msg)
    warning.skipped = {}
    for name, reason, _ in skipped:
        warning.skipped.setdefault(reason, []).append(name)
    warning.errors = [f"{name}: {why}" for name, _, why in skipped[:5]]
    warnings.warn(warning, stacklevel=3)


def load_bvh_collection(
    root: str | os.PathLike,
    pattern: str = "**/*.bvh",
    labels: LabelSource = None,
    caption_template: str | None = "a person {content} {style}",
    phrases: Mapping[str, Mapping[str, str]] | None = None,
    label_fields: Sequence[str] = ("content", "style"),
    scale: float = 1.0,
    up_axis: str = "y",
    skeleton_name: str | None = None,
    chains: Sequence[Sequence[int]] | None = None,
    splits: str | Callable[[str], str] | Mapping[str, str] = "auto",
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    target_fps: float | None = None,
    keep_end_sites: bool = False,
    convert: Callable[[np.ndarray, Sequence[str]], np.ndarray] | None = None,
    output_skeleton: str | Skeleton | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
) -> tuple[datasets.DatasetDict, Skeleton]:
    """Import every BVH file under ``root`` matching ``pattern`` into the motionpatch schema.

    Args:
        root: the collection folder; ``source`` is each file's path relative to it and ``id`` its stem
            (its relative path without suffix when stems repeat).
        pattern: glob relative to ``root``.
        labels: ``None`` (no labels or captions), ``"sidecar"`` (the fields of ``<file>.json``), a mapping
            ``stem or relative path -> fields`` or a callable ``path -> fields``; fields are a mapping
            (``{"content": "bow", "style": "angry"}``) or a sequence named by ``label_fields``.
            The ``labels`` column holds the field values in order.
        caption_template: ``str.format`` template over the fields, e.g. ``"a person {content} {style}"``;
            ``None`` leaves captions empty. Clips without labels get no caption.
        phrases: per field, a mapping label -> phrase used in the caption (e.g. style ``angry`` -> ``angrily``).
        scale: length factor (0.01: centimetres -> metres). up_axis: ``"y"`` or ``"z"`` (output is Y up).
        skeleton_name: name under which the derived skeleton is registered (default ``bvh-<root folder>``).
        chains: the five chains as joint indices, when they cannot be derived from the hierarchy.
        splits, seed, fractions: split rule, see the module docstring.
        target_fps: resample every clip linearly to this rate (``resample_fps(mode="linear")``); None keeps it.
        keep_end_sites: keep End Sites as joints.
        convert: optional ``(positions (T, J, 3), joint names) -> (T, J', 3)`` applied after forward
            kinematics (e.g. :func:`bandai_to_humanml3d`); then ``output_skeleton`` names the result's skeleton.
        cache_dir: where the Arrow files are written (a new temporary folder by default).
        batch_size: clips per Arrow record batch.

    Returns:
        ``(DatasetDict, Skeleton)``. Files that fail to parse, have another hierarchy than the first
        file, or whose labels cannot be read are skipped, counted and reported in one
        :class:`BVHImportWarning` (its ``skipped`` maps reason -> files, ``errors`` holds the first errors;
        ``motionpatch-prepare`` copies both into its report); no file is dropped silently.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"BVH collection folder {root} does not exist.")
    if convert is not None and output_skeleton is None:
        raise ValueError("`convert` changes the joints: pass `output_skeleton` (a registered name or a Skeleton).")
    if labels is not None and not (labels == "sidecar" or isinstance(labels, Mapping) or callable(labels)):
        raise TypeError(f"labels must be None, 'sidecar', a mapping or a callable, got {labels!r}.")
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    if not files:
        raise FileNotFoundError(f"no file under {root} matches {pattern!r}; check the folder and the pattern.")
    rels = [p.relative_to(root).as_posix() for p in files]
    stems = [p.stem for p in files]
    ids = stems if len(set(stems)) == len(stems) else [r.rsplit(".", 1)[0] for r in rels]

    skipped: list[tuple[str, str, str]] = []  # (file, reason, first line of the error)
    parsed: list[tuple[int, BVHData, OrderedDict]] = []
    reference: BVHData | None = None
    for i, path in enumerate(files):
        try:
            data = parse_bvh(path, keep_end_sites=keep_end_sites)
        except (ValueError, OSError) as err:
            skipped.append((rels[i], bvh_skip_reason(err), str(err).splitlines()[0]))
            continue
        try:
            fields = _resolve_labels(labels, path, stems[i], rels[i], label_fields)
        except (ValueError, OSError, KeyError) as err:
            skipped.append((rels[i], "unreadable labels", str(err).splitlines()[0]))
            continue
        if reference is None:
            reference = data
        elif data.hierarchy is not reference.hierarchy and (
            data.hierarchy.names != reference.hierarchy.names
            or not np.array_equal(data.hierarchy.parents, reference.hierarchy.parents)
        ):
            skipped.append((rels[i], "hierarchy differs from the first file's",
                            f"its hierarchy differs from the first file's ({reference.source})"))
            continue
        parsed.append((i, data, fields))
    if reference is None:
        _report_skips(skipped, len(files), root)
        raise ValueError(f"none of the {len(files)} BVH files under {root} could be imported; see the warning.")

    ref_motion_offsets = reference.hierarchy.offsets * scale
    native = Skeleton.from_hierarchy(
        skeleton_name or f"bvh-{root.name}",
        list(reference.hierarchy.names),
        [int(p) for p in reference.hierarchy.parents],
        offsets=_up(ref_motion_offsets, up_axis),
        chains=chains,
    )
    native = register_skeleton(native)
    skeleton = native if output_skeleton is None else get_skeleton(output_skeleton)

    positions = forward_kinematics_batch([d for _, d, _ in parsed], scale=scale, up_axis=up_axis)
    split_of = dict(zip(ids, assign_splits(ids, splits, seed, fractions)))
    rows: list[tuple[str, dict[str, Any]]] = []
    for (i, data, fields), pos in zip(parsed, positions):
        if convert is not None:
            pos = convert(pos, data.hierarchy.names)
        fps = data.fps
        if not np.isfinite(pos).all():  # finite channels whose forward kinematics overflow float32
            skipped.append((rels[i], "non-finite joint positions", "forward kinematics gives NaN/Inf positions"))
            continue
        if target_fps is not None:
            pos = resample_fps(pos, fps, target_fps, mode="linear")
            fps = float(target_fps)
        if pos.shape[1] != skeleton.num_joints:
            raise ValueError(
                f"{rels[i]}: {pos.shape[1]} joints after conversion but skeleton {skeleton.name!r} has "
                f"{skeleton.num_joints}; `convert` and `output_skeleton` do not match."
            )
        captions = [make_caption(caption_template, fields, phrases)] if caption_template and fields else []
        rows.append(
            (
                split_of[ids[i]],
                {
                    "id": ids[i],
                    "motion": np.asarray(pos, dtype=np.float32),
                    "fps": fps,
                    "skeleton": skeleton.name,
                    "captions": captions,
                    "labels": list(fields.values()),
                    "source": rels[i],
                    "mirrored": False,
                },
            )
        )
    _report_skips(skipped, len(files), root)
    return _dataset_dict(rows, skeleton.num_joints, cache_dir, batch_size), skeleton


def _up(offsets: np.ndarray, up_axis: str) -> np.ndarray:
    from .bvh import _check_up_axis, _convert_up

    return _convert_up(np.asarray(offsets, dtype=np.float64), _check_up_axis(up_axis))


# ---------------------------------------------------------------------------
# Bandai-Namco
# ---------------------------------------------------------------------------
def _read_label_names(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [_LABEL_PREFIX_RE.sub("", line.strip()) for line in fh if line.strip()]


def bandai_labels(data_dir: str | os.PathLike) -> Callable[[Path], OrderedDict[str, str]]:
    """Label reader for a Bandai-Namco ``data/`` folder: sidecar ``{"content": id, "style": id}`` mapped
    through ``../cfg/content_label.txt`` and ``style_label.txt`` (0-based line numbers, ``dataset-N_``
    prefix removed). Without the sidecar or the cfg files, content and style are read from the file name
    (``dataset-N_<content>_<style>_<take>``)."""
    data_dir = Path(data_dir)
    cfg = data_dir.parent / "cfg"
    contents = _read_label_names(cfg / "content_label.txt") if (cfg / "content_label.txt").is_file() else None
    styles = _read_label_names(cfg / "style_label.txt") if (cfg / "style_label.txt").is_file() else None

    def read(path: Path) -> OrderedDict[str, str]:
        sidecar = path.with_suffix(".json")
        if contents is not None and styles is not None and sidecar.is_file():
            with open(sidecar, encoding="utf-8") as fh:
                ids = json.load(fh)
            try:
                return OrderedDict(content=contents[int(ids["content"])], style=styles[int(ids["style"])])
            except (KeyError, IndexError, TypeError, ValueError):
                raise ValueError(
                    f"{sidecar}: expected {{'content': id, 'style': id}} with ids in 0..{len(contents) - 1} / "
                    f"0..{len(styles) - 1} (cfg/*_label.txt), found {ids!r}."
                ) from None
        m = _BANDAI_NAME_RE.match(path.stem)
        if m is None:
            raise ValueError(
                f"{path}: no sidecar .json with cfg/ label files, and the name is not 'dataset-N_<content>_<style>_<take>'."
            )
        return OrderedDict(content=m.group("content"), style=m.group("style"))

    return read


def register_bandai_skeleton(
    names: Sequence[str], parents: Sequence[int], offsets: np.ndarray | None = None
) -> Skeleton:
    """Derive and register the native ``bandai-namco`` skeleton (chains end at ``Hand_L``/``Toes_R`` ...)."""
    return register_skeleton(Skeleton.from_hierarchy("bandai-namco", list(names), list(parents), offsets=offsets))


def load_bandai_namco(
    root: str | os.PathLike,
    variant: str = "humanml3d",
    target_fps: float | None = 20.0,
    caption_template: str = BANDAI_CAPTION_TEMPLATE,
    phrases: Mapping[str, Mapping[str, str]] | None = None,
    splits: str | Callable[[str], str] | Mapping[str, str] = "auto",
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    cache_dir: str | os.PathLike | None = None,
) -> tuple[datasets.DatasetDict, Skeleton]:
    """Import a Bandai-Namco folder (``ds1-bvh``, ``ds2-bvh-sample`` ...: ``data/*.bvh`` + ``*.json``, ``cfg/``).

    Args:
        root: the dataset folder holding ``data/`` (and ``cfg/``), or the ``data/`` folder itself.
        variant: ``"humanml3d"`` - the 22 SMPL joints (:data:`BANDAI_TO_HUMANML3D`, skeleton
            ``humanml3d``), or ``"native"`` - all 22 BVH joints incl. ``joint_Root`` (skeleton
            ``bandai-namco``, chains derived from the hierarchy). Both in metres (scale 0.01), Y up.
        target_fps: linear frame-rate conversion from the files' 30 fps (None keeps 30).
        caption_template, phrases: captions from content and style; default phrasing
            :data:`BANDAI_CONTENT_PHRASES` / :data:`BANDAI_STYLE_PHRASES` ("a person bows angrily.").
        splits, seed, fractions: see the module docstring (``auto``: by take number when there are
            several, else a seeded hash of the stem).
        cache_dir: where the Arrow files go (a temporary folder by default).
    """
    root = Path(root)
    data_dir = root / "data" if (root / "data").is_dir() else root
    if variant not in ("humanml3d", "native"):
        raise ValueError(f"variant must be 'humanml3d' or 'native', got {variant!r}.")
    kwargs: dict[str, Any] = {}
    if variant == "humanml3d":
        kwargs = {"convert": bandai_to_humanml3d, "output_skeleton": "humanml3d"}
    return load_bvh_collection(
        data_dir,
        pattern="*.bvh",
        labels=bandai_labels(data_dir),
        caption_template=caption_template,
        phrases=BANDAI_PHRASES if phrases is None else phrases,
        scale=0.01,
        up_axis="y",
        skeleton_name="bandai-namco",
        splits=splits,
        seed=seed,
        fractions=fractions,
        target_fps=target_fps,
        cache_dir=cache_dir,
        **kwargs,
    )


# ---------------------------------------------------------------------------
# prepared npz
# ---------------------------------------------------------------------------
def _stream_npz_rows(
    path: Path, offsets: np.ndarray, lengths: np.ndarray, order: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(clip, joints)`` for the clips in ``order`` (ascending), reading ``joints.npy`` sequentially
    from the zip member so that the whole array is never in memory."""
    with zipfile.ZipFile(path) as zf, zf.open("joints.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        if fortran:
            raise ValueError(f"{path}: joints.npy is Fortran-ordered and cannot be streamed; re-save it C-ordered.")
        row = int(np.prod(shape[1:])) * dtype.itemsize
        here = 0
        for k in order:
            start, n = int(offsets[k]), int(lengths[k])
            if start < here:
                raise ValueError(f"{path}: clip {k} starts at row {start}, inside the previous clip; offsets overlap.")
            if start > here:
                fh.read((start - here) * row)
            buf = fh.read(n * row)
            if len(buf) != n * row:
                raise ValueError(f"{path}: joints.npy ends inside clip {k}; the file is truncated.")
            here = start + n
            yield k, np.frombuffer(buf, dtype=dtype).reshape((n,) + tuple(shape[1:])).astype(np.float32)


def dataset_from_npz(
    path: str | os.PathLike,
    index_path: str | os.PathLike | None = None,
    splits: str | Callable[[str], str] | Mapping[str, str] = "auto",
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    caption_template: str = BANDAI_CAPTION_TEMPLATE,
    phrases: Mapping[str, Mapping[str, str]] | None = None,
    fps: float = 20.0,
    skeleton: str = "humanml3d",
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
) -> tuple[datasets.DatasetDict, Skeleton]:
    """Build the schema dataset from a prepared ``ds*_h22_20fps.npz`` (``joints``, ``lengths``, ``offsets``,
    ``names``, ``content``, ``style``) and its ``ds*_index.jsonl``.

    Clips are streamed from the compressed ``joints.npy`` member in file order, ``batch_size`` at a time,
    and written to Arrow per split, so peak memory is a few batches, not the whole array (the float16
    array is converted to float32 clip by clip).

    Args:
        path: the ``.npz``.
        index_path: the index (one JSON line per clip, same order; its ``caption_template`` becomes the
            caption). Default: ``<prefix>_index.jsonl`` next to the npz (``ds2_h22_20fps.npz`` ->
            ``ds2_index.jsonl``) when it exists; without an index, captions come from
            ``caption_template`` and ``phrases`` (Bandai phrasing by default).
        splits, seed, fractions: see the module docstring; the take number is the end of the clip name.
        fps, skeleton: the frame rate and registered skeleton of the arrays.
        cache_dir, batch_size: where and in what batches the Arrow files are written.
    """
    path = Path(path)
    skel = get_skeleton(skeleton)
    with np.load(path, allow_pickle=False) as z:
        need = {"joints", "lengths", "offsets", "names"}
        if not need <= set(z.files):
            raise ValueError(
                f"{path} lacks arrays {sorted(need - set(z.files))}; expected {sorted(need)} (+ content, style)."
            )
        lengths = z["lengths"].astype(np.int64)
        offsets = z["offsets"].astype(np.int64)
        names = [str(n) for n in z["names"]]
        content = [str(c) for c in z["content"]] if "content" in z.files else None
        style = [str(s) for s in z["style"]] if "style" in z.files else None
    if index_path is None:
        guess = path.with_name(path.name.split("_")[0] + "_index.jsonl")
        index_path = guess if guess.is_file() else None
    index = None
    if index_path is not None:
        with open(index_path, encoding="utf-8") as fh:
            index = [json.loads(line) for line in fh if line.strip()]
        if [r.get("name") for r in index] != names:
            raise ValueError(
                f"{index_path} does not list the clips of {path} in the same order ({len(index)} lines, {len(names)} clips); "
                "pass the matching index or index_path=None."
            )
    split_list = assign_splits(names, splits, seed, fractions)  # the names end in the take number

    def captions_of(k: int) -> list[str]:
        if index is not None and index[k].get("caption_template"):
            return [index[k]["caption_template"]]
        if content is None or style is None:
            return []
        return [make_caption(caption_template, {"content": content[k], "style": style[k]}, phrases or BANDAI_PHRASES)]

    def labels_of(k: int) -> list[str]:
        return [x[k] for x in (content, style) if x is not None]

    contiguous = bool(len(offsets) == 0 or (offsets[0] >= 0 and np.all(offsets[1:] >= offsets[:-1] + lengths[:-1])))
    if not contiguous:
        raise ValueError(f"{path}: clip offsets are not in ascending, non-overlapping order; cannot stream the clips.")

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        # one sequential pass over the compressed joints.npy
        for k, joints in _stream_npz_rows(path, offsets, lengths, np.arange(len(names))):
            if joints.shape[1:] != (skel.num_joints, 3):
                raise ValueError(
                    f"{path}: clip {names[k]} has shape {joints.shape}; skeleton {skel.name!r} needs (T, {skel.num_joints}, 3)."
                )
            yield (
                split_list[k],
                {
                    "id": names[k],
                    "motion": joints,
                    "fps": float(fps),
                    "skeleton": skel.name,
                    "captions": captions_of(k),
                    "labels": labels_of(k),
                    "source": f"{path.name}#{names[k]}",
                    "mirrored": False,
                },
            )

    return _dataset_dict(rows(), skel.num_joints, cache_dir, batch_size), skel
