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

Splits are deterministic and no take is ever in two splits; the rules (``"auto"``, ``"take"``, ``"hash"``,
a callable or a mapping) are those of :mod:`motionpatch_processing.clip_splits`.

The Bandai-specific joint map, labels and phrasing are in :mod:`motionpatch_processing.bandai_labels`, the
npz importer in :mod:`motionpatch_processing.bandai_npz`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from modeling_motionpatch.apps.bvh import (
    BVHData,
    bvh_skip_reason,
    forward_kinematics_batch,
    parse_bvh,
)
from modeling_motionpatch.apps.skeleton_hierarchy import skeleton_from_hierarchy
from modeling_motionpatch.motion_patches import resample_fps
from modeling_motionpatch.skeletons import (
    Skeleton,
    SkeletonError,
    get_skeleton,
    register_skeleton,
)

from .bandai_labels import (
    BANDAI_CAPTION_TEMPLATE,
    BANDAI_PHRASES,
    bandai_labels,
    bandai_to_humanml3d,
    make_caption,
)
from .clip_splits import assign_splits
from .io import write_arrow_splits
from .schema import motion_features

logger = logging.getLogger(__name__)

__all__ = ["BVHImportWarning", "MIN_TAKE_FRAMES", "TOO_SHORT_REASON", "hierarchy_digest", "load_bandai_namco", "load_bvh_collection", "register_bandai_skeleton"]


#: takes with fewer frames (after resampling) are skipped: one frame is a pose, not a motion
MIN_TAKE_FRAMES = 2
TOO_SHORT_REASON = "take shorter than the minimum"
OTHER_JOINT_COUNT_REASON = "hierarchy with another joint count than the primary skeleton's"


class BVHImportWarning(UserWarning):
    """Some files of a collection were skipped (the message gives the count, the first names and errors)."""



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
    min_frames: int = MIN_TAKE_FRAMES,
) -> tuple[datasets.DatasetDict, Skeleton]:
    """Import every BVH file under ``root`` matching ``pattern`` into the motionpatch schema.

    A folder may mix hierarchies (rigs): each distinct hierarchy (joint names and parents) gets its own skeleton,
    and each row's ``skeleton`` column names it. The *primary* skeleton - the one returned (and saved as
    ``skeleton.json`` by ``motionpatch-prepare``, which computes the statistics over its rows only) - is the
    hierarchy of the most files, ties broken by the smallest hierarchy digest (sha1 of names and parents), so it
    never depends on file names or their order. It is registered as ``skeleton_name`` (default
    ``bvh-<root folder>``), the others as ``<that name>-<digest>``. Hierarchies with another joint count than
    the primary's cannot share the dataset's ``motion`` column and are counted skips (import them separately).

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
        min_frames: takes with fewer frames (after ``target_fps`` resampling) are counted skips with the reason
            ``"take shorter than the minimum"``; default 2 (a ``Frames: 1`` take holds a pose, not a motion).

    Returns:
        ``(DatasetDict, Skeleton)`` (the primary skeleton). Files that fail to parse, are too short, have a
        hierarchy that cannot join the dataset, or whose labels cannot be read are skipped, counted and reported in one
        :class:`BVHImportWarning` (its ``skipped`` maps reason -> files, ``errors`` holds the first errors;
        ``motionpatch-prepare`` copies both into its report); no file is dropped silently.
    """
    if min_frames < 1:
        raise ValueError(f"min_frames must be at least 1, got {min_frames}.")
    if convert is not None and output_skeleton is None:
        raise ValueError("`convert` changes the joints: pass `output_skeleton` (a registered name or a Skeleton).")
    if labels is not None and not (labels == "sidecar" or isinstance(labels, Mapping) or callable(labels)):
        raise TypeError(f"labels must be None, 'sidecar', a mapping or a callable, got {labels!r}.")
    root, files, rels, stems, ids = _collection_files(root, pattern)

    parsed, skipped = _parse_collection(files, rels, stems, labels, label_fields, keep_end_sites)
    if not parsed:
        _report_skips(skipped, len(files), root)
        raise ValueError(f"none of the {len(files)} BVH files under {root} could be imported; see the warning.")

    groups = _group_by_hierarchy(parsed)  # primary first: most files, ties broken by the hierarchy digest
    skeleton_of = _hierarchy_skeletons(groups, skeleton_name or f"bvh-{root.name}", skeleton_name, scale, up_axis,
                                       chains, output_skeleton, rels, skipped)
    digest_of = {i: digest for digest, members in groups.items() for i, _, _ in members}
    parsed = [item for item in parsed if digest_of[item[0]] in skeleton_of]
    skeleton = skeleton_of[next(iter(groups))]
    positions = forward_kinematics_batch([d for _, d, _ in parsed], scale=scale, up_axis=up_axis)
    split_of = dict(zip(ids, assign_splits(ids, splits, seed, fractions)))
    rows: list[tuple[str, dict[str, Any]]] = []
    for (i, data, fields), pos in zip(parsed, positions):
        row = _collection_row(data, fields, pos, rels[i], skeleton, convert, target_fps, min_frames, skipped)
        if row is not None:
            captions = [make_caption(caption_template, fields, phrases)] if caption_template and fields else []
            rows.append((split_of[ids[i]], {"id": ids[i], **row, "skeleton": skeleton_of[digest_of[i]].name,
                                            "captions": captions}))
    _report_skips(skipped, len(files), root)
    if not rows:
        raise ValueError(f"none of the {len(files)} BVH files under {root} could be imported; see the warning.")
    return write_arrow_splits(rows, motion_features(skeleton.num_joints), cache_dir, batch_size), skeleton


def _hierarchy_skeletons(groups, base: str, skeleton_name, scale, up_axis, chains, output_skeleton, rels,
                         skipped: list) -> dict[str, Skeleton]:
    """Hierarchy digest -> the skeleton of its rows: the primary hierarchy's (registered as ``skeleton_name`` or
    ``base``), each other one registered as ``<base>-<digest>`` when it has the primary's joint count and derivable
    chains (else its files are counted skips), or ``output_skeleton`` for all when ``convert`` maps them onto it."""
    skeleton_of: dict[str, Skeleton] = {}
    native = None
    for k, (digest, members) in enumerate(groups.items()):
        reference = members[0][1]
        if k == 0:
            native = _register_native_skeleton(reference, skeleton_name, base, scale, up_axis, chains)
            skeleton_of[digest] = native if output_skeleton is None else get_skeleton(output_skeleton)
            continue
        if output_skeleton is not None:  # `convert` maps every hierarchy onto the output skeleton (by joint name)
            skeleton_of[digest] = get_skeleton(output_skeleton)
            continue
        reason = None
        if reference.hierarchy.num_joints != native.num_joints:
            reason, why = OTHER_JOINT_COUNT_REASON, (
                f"its hierarchy has {reference.hierarchy.num_joints} joints, but the primary skeleton {native.name!r} "
                f"has {native.num_joints}; one dataset holds one joint count: import these files separately "
                "(--pattern or another folder)")
        else:
            try:
                skeleton_of[digest] = _register_native_skeleton(reference, None, f"{base}-{digest}", scale, up_axis, None)
            except SkeletonError as err:
                reason, why = "hierarchy without derivable chains", f"its body-part chains cannot be derived ({err})"
        if reason is not None:
            skipped.extend((rels[i], reason, why) for i, _, _ in members)
    return skeleton_of


def _collection_row(data, fields, pos: np.ndarray, rel: str, skeleton: Skeleton, convert, target_fps, min_frames: int,
                    skipped: list) -> dict[str, Any] | None:
    """One take's row fields (``motion``, ``fps``, ``labels``, ``source``, ``mirrored``) after ``convert`` and the
    frame-rate change, or ``None`` when it is a counted skip (non-finite positions, too short)."""
    if convert is not None:
        pos = convert(pos, data.hierarchy.names)
    fps = data.fps
    if not np.isfinite(pos).all():  # finite channels whose forward kinematics overflow float32
        skipped.append((rel, "non-finite joint positions", "forward kinematics gives NaN/Inf positions"))
        return None
    if target_fps is not None:
        pos = resample_fps(pos, fps, target_fps, mode="linear")
        fps = float(target_fps)
    if pos.shape[0] < min_frames:
        skipped.append((rel, TOO_SHORT_REASON, f"{data.num_frames} frame(s) at {data.fps:g} fps give "
                        f"{pos.shape[0]} at {fps:g} fps; at least {min_frames} are needed"))
        return None
    if pos.shape[1] != skeleton.num_joints:
        raise ValueError(
            f"{rel}: {pos.shape[1]} joints after conversion but skeleton {skeleton.name!r} has "
            f"{skeleton.num_joints}; `convert` and `output_skeleton` do not match."
        )
    return {"motion": np.asarray(pos, dtype=np.float32), "fps": fps, "labels": list(fields.values()), "source": rel,
            "mirrored": False}


def _parse_collection(
    files: Sequence[Path],
    rels: Sequence[str],
    stems: Sequence[str],
    labels: LabelSource,
    label_fields: Sequence[str],
    keep_end_sites: bool,
) -> tuple[list[tuple[int, BVHData, OrderedDict]], list[tuple[str, str, str]]]:
    """Parse every file and read its labels: ``(parsed, skipped)`` with ``(index, data, fields)`` per imported
    file and ``(file, reason, first line of the error)`` per skip."""
    skipped: list[tuple[str, str, str]] = []
    parsed: list[tuple[int, BVHData, OrderedDict]] = []
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
        parsed.append((i, data, fields))
    return parsed, skipped


def hierarchy_digest(data: BVHData) -> str:
    """8 hex digits of the sha1 of a hierarchy's joint names and parents: its identity, independent of files."""
    key = json.dumps([list(data.hierarchy.names), [int(p) for p in data.hierarchy.parents]])
    return hashlib.sha1(key.encode()).hexdigest()[:8]


def _group_by_hierarchy(parsed: list[tuple[int, BVHData, OrderedDict]]) -> dict[str, list]:
    """The parsed files grouped by hierarchy digest, the primary group first: the most files, ties broken by the
    smallest digest (never by file names)."""
    groups: dict[str, list] = {}
    for item in parsed:
        groups.setdefault(hierarchy_digest(item[1]), []).append(item)
    return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def _collection_files(root: str | os.PathLike, pattern: str) -> tuple[Path, list[Path], list[str], list[str], list[str]]:
    """``(root, files, relative paths, stems, ids)`` of the files under ``root`` matching ``pattern``, sorted;
    ids are the stems, or the relative paths without suffix when stems repeat."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"BVH collection folder {root} does not exist.")
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    if not files:
        raise FileNotFoundError(f"no file under {root} matches {pattern!r}; check the folder and the pattern.")
    rels = [p.relative_to(root).as_posix() for p in files]
    stems = [p.stem for p in files]
    ids = stems if len(set(stems)) == len(stems) else [r.rsplit(".", 1)[0] for r in rels]
    return root, files, rels, stems, ids


def _register_native_skeleton(
    reference: BVHData, name: str | None, default_name: str, scale: float, up_axis: str,
    chains: Sequence[Sequence[int]] | None,
) -> Skeleton:
    """The skeleton of the collection's hierarchy (offsets scaled, Y up), registered under ``name`` (or
    ``default_name``, with a suffix from the hierarchy when another skeleton already holds it)."""
    chosen, name = name is not None, name or default_name
    from modeling_motionpatch.apps.bvh import _check_up_axis, _convert_up

    offsets = _convert_up(np.asarray(reference.hierarchy.offsets * scale, dtype=np.float64), _check_up_axis(up_axis))
    native = skeleton_from_hierarchy(
        name,
        list(reference.hierarchy.names),
        [int(p) for p in reference.hierarchy.parents],
        offsets=offsets,
        chains=chains,
    )
    try:
        return register_skeleton(native)
    except SkeletonError:
        if chosen:
            raise  # a name the user chose: say it is taken
    # the default name is taken in this process by another hierarchy (e.g. two BVH folders with the same name):
    # name this one after its hierarchy too, so that neither replaces the other
    digest = hashlib.sha1(json.dumps([native.joint_names, list(native.parents)]).encode()).hexdigest()[:8]
    return register_skeleton(dataclasses.replace(native, name=f"{name}-{digest}"))




def register_bandai_skeleton(
    names: Sequence[str], parents: Sequence[int], offsets: np.ndarray | None = None
) -> Skeleton:
    """Derive and register the native ``bandai-namco`` skeleton (chains end at ``Hand_L``/``Toes_R`` ...)."""
    return register_skeleton(skeleton_from_hierarchy("bandai-namco", list(names), list(parents), offsets=offsets))


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
