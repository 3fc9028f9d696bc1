"""``motionpatch-app``: search, label and compare the motions of a library in the browser (Gradio).

    motionpatch-app                                   # the demo model (runs/demo/best) over the held-out real takes
    motionpatch-app --model runs/bandai-namco/best --library my_bvh_folder/       # units and up axis detected
    motionpatch-app --model user/motionpatch --library data/humanml3d --split test --port 7861

A library is a folder prepared by ``motionpatch-prepare``, a folder of ``.bvh`` files (read with the package's BVH
reader, units and up axis detected unless ``--bvh-scale`` / ``--bvh-up-axis`` say; joints mapped by name onto the
model's skeleton when they map (``joint_maps.py``), else the skeleton derived from the hierarchy; labels from
``<file>.json`` sidecars, as names from ``../cfg/*_label.txt`` for Bandai-Namco folders, with captions filled from
them), a folder of ``.npy`` joint arrays ``(frames, joints, 3)`` in the model's skeleton, or ``synthetic``. It is
embedded once with :class:`~modeling_motionpatch.apps.search_index.MotionSearchIndex` and the index is cached in the user's
cache folder (``$XDG_CACHE_HOME/motionpatch/app``, by default ``~/.cache/motionpatch/app``; ``--cache-dir`` to
choose), never inside the library, keyed by fingerprints of the model files and of the library's motions and
processor, so the next start reuses it.

Tabs: text search (top-k with score, id, captions, labels and an animation per hit), zero-shot labels (the
``zero-shot-motion-classification`` pipeline over an uploaded ``.bvh``/``.npy`` or a library item: scores, the
motion-patch image and the animation) and motion to motion (nearest neighbours). A bad upload shows the package's
own error message in the page; the app keeps running.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import logging
import os
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from motionpatch_processing.bandai_labels import (
    BANDAI_CAPTION_TEMPLATE,
    BANDAI_PHRASES,
    bandai_labels,
)
from motionpatch_processing.bandai_namco import load_bvh_collection
from motionpatch_processing.humanml3d import read_joint_file
from motionpatch_processing.io import load_prepared
from motionpatch_processing.loading import parse_spec
from tqdm.auto import tqdm

from modeling_motionpatch import (
    MotionPatchFeatureExtractor,
    MotionPatchProcessor,
    ZeroShotMotionClassificationPipeline,
    get_skeleton,
    resample_fps,
)
from modeling_motionpatch.apps.bvh import (
    detect_scale_and_up,
    motion_for_skeleton,
    read_bvh,
)
from modeling_motionpatch.apps.joint_maps import JointMapError, joint_map_matrix
from modeling_motionpatch.apps.motion_statistics import compute_statistics
from modeling_motionpatch.apps.search_index import MotionSearchIndex
from modeling_motionpatch.apps.visualization import (
    render_motion_patches,
    save_animation,
)

from .data import MotionStore
from .demo import main as demo_main
from .encode import (
    EvalData,
    input_fps_of,
    load_eval_data,
    load_model_and_processor,
    match_skeleton,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "runs/demo/best"
DEMO_OUTPUT_DIR = "runs/demo"
#: shortest clip accepted from an upload: one patch row
MIN_UPLOAD_FRAMES = 16
#: frames per rendered animation (evenly spaced over the clip; the animation keeps the clip's duration)
ANIMATION_FRAMES = 60
DEFAULT_LABELS = "walks, runs, jumps, waves, kicks, sits down, squats, claps"


# ---------------------------------------------------------------------------
# library
# ---------------------------------------------------------------------------
@dataclass
class Library:
    """The motions the app searches: one ``(frames, joints, 3)`` float32 array per id, at ``fps``."""

    name: str
    ids: list[str]
    motions: list[np.ndarray]
    captions: list[list[str]]
    labels: list[list[str]]
    skeleton: Any
    fps: float = 20.0
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    folder: Path | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, item_id: str) -> int:
        rows = self.__dict__.setdefault("_rows", {})
        if not rows:
            rows.update({x: i for i, x in enumerate(self.ids)})
        if item_id not in rows:
            raise ValueError(f"{item_id!r} is not an id of the library {self.name!r} ({len(self)} motions).")
        return rows[item_id]


def _rows_of_dataset(dataset, name: str, skeleton, fps: float, mean, std, folder, notes) -> Library:
    store = MotionStore.from_dataset(dataset, "motion")
    cols = dataset.column_names
    ids = [str(x) for x in dataset["id"]] if "id" in cols else [f"{i:06d}" for i in range(len(dataset))]
    captions = [list(c or []) for c in dataset["captions"]] if "captions" in cols else [[] for _ in ids]
    labels = [list(c or []) for c in dataset["labels"]] if "labels" in cols else [[] for _ in ids]
    motions = [store[i] for i in range(len(store))]
    return Library(name, ids, motions, captions, labels, skeleton, fps, mean, std, folder, notes)


def _bvh_labels(root: Path):
    """Labels of a BVH file: Bandai-Namco ids of ``<file>.json`` as names from ``../cfg/*_label.txt`` when the folder
    has them (``bow, angry``, not ``6, 3``), else the sidecar's own fields; ``None`` without a sidecar. Returns
    ``(reader, bandai)``, ``bandai`` telling whether any folder has Bandai label files (captions are then filled)."""
    def has_cfg(folder: Path) -> bool:
        return all((folder.parent / "cfg" / f"{kind}_label.txt").is_file() for kind in ("content", "style"))

    readers = {d: bandai_labels(d) for d in {p.parent for p in root.rglob("*.bvh")} if has_cfg(d)}

    def read(path: Path):
        side = path.with_suffix(".json")
        if not side.is_file():
            return None
        if path.parent in readers:
            return readers[path.parent](path)
        return json.loads(side.read_text(encoding="utf-8"))

    return read, bool(readers)


def _bvh_units(files: Sequence[Path], skeleton, scale: float | None, up_axis: str | None) -> tuple[float, str, str]:
    """``(scale, up_axis, how)`` of a BVH collection: as given, else detected on its first readable file (joints
    mapped by name onto ``skeleton`` when they map, else the file's own pelvis and head)."""
    if scale is not None and up_axis is not None:
        return float(scale), up_axis, "given"
    for path in files:
        try:
            try:
                _, _, info = motion_for_skeleton(path, skeleton, scale=scale, up_axis=up_axis)
                return info["scale"], info["up_axis"], f"detected on {path.name}"
            except JointMapError:
                bvh = read_bvh(path)
                torso = bvh.skeleton("probe").chains[2]
                found = detect_scale_and_up(bvh.positions, torso[0], torso[-1], str(path), up_axis)
                return (found[0] if scale is None else float(scale)), found[1], f"detected on {path.name}"
        except ValueError:  # a broken file: the collection reader counts it; try the next one
            continue
    return (1.0 if scale is None else float(scale)), up_axis or "y", "no readable file to detect them on"


def _bvh_library(root: Path, scale: float | None, up_axis: str | None, model_skeleton, fps: float) -> Library:
    labels, bandai = _bvh_labels(root)
    scale, up_axis, how = _bvh_units(sorted(root.rglob("*.bvh")), model_skeleton, scale, up_axis)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dd, skeleton = load_bvh_collection(
            root, labels=labels, caption_template=BANDAI_CAPTION_TEMPLATE if bandai else None, phrases=BANDAI_PHRASES,
            scale=scale, up_axis=up_axis, target_fps=fps, splits=lambda _id: "train",
        )
    lib = _rows_of_dataset(dd["train"], str(root), skeleton, fps, None, None, root, [])
    try:  # joints by name onto the model's skeleton: the model's own processor, no cross-skeleton statistics
        w, rig = joint_map_matrix(skeleton.joint_names, model_skeleton)
        lib.motions = [np.matmul(w, m) for m in lib.motions]
        lib.skeleton, mapped = model_skeleton, f"joints mapped by name ({rig}) onto the model's skeleton"
    except JointMapError as err:
        lib.mean, lib.std = compute_statistics(lib.motions)
        mapped = f"skeleton derived from the hierarchy ({str(err).split(';')[0]})"
    lib.notes = [f"{len(lib)} BVH files under {root}: {mapped} ({lib.skeleton.name!r}, {lib.skeleton.num_joints} "
                 f"joints); scale {scale:g}, {up_axis.upper()} up ({how}); resampled to {fps:g} fps"]
    lib.notes += [str(w.message).splitlines()[0] for w in caught if "skipped" in str(w.message).lower()]
    return lib


def _npy_library(root: Path, skeleton, fps: float) -> Library:
    files = sorted(root.glob("*.npy"))
    ids, motions, skipped = [], [], Counter()
    first_skipped: list[str] = []
    for path in files:
        motion, reason = read_joint_file(path, skeleton.num_joints)
        if motion is None:
            skipped[reason] += 1
            first_skipped.append(f"{path.name} ({reason})")
            continue
        ids.append(path.stem)
        motions.append(np.ascontiguousarray(motion, dtype=np.float32))
    notes = [f"{len(ids)} .npy joint arrays under {root} in the model's skeleton {skeleton.name!r} "
             f"({skeleton.num_joints} joints, taken to be at {fps:g} fps)"]
    if skipped:
        notes.append(f"skipped {sum(skipped.values())} of {len(files)} files: "
                     + ", ".join(f"{n} {r}" for r, n in skipped.items()) + "; first: " + ", ".join(first_skipped[:5]))
        warnings.warn(f"{root}: " + notes[-1], stacklevel=3)
    if not ids:
        raise ValueError(f"none of the {len(files)} .npy files under {root} is a ({skeleton.num_joints}-joint) motion "
                         f"of skeleton {skeleton.name!r}; {notes[-1]}.")
    empty = [[] for _ in ids]
    mean, std = compute_statistics(motions)
    return Library(str(root), ids, motions, [list(e) for e in empty], [list(e) for e in empty], skeleton, fps,
                   mean, std, root, notes)


def load_library(
    spec: str, processor, split: str = "test", synthetic_size: int = 200, synthetic_seed: int = 0,
    bvh_scale: float | None = None, bvh_up_axis: str | None = None,
) -> Library:
    """Read a library: ``synthetic``, a prepared dataset folder (or Hub dataset id), a folder of ``.bvh`` files or a
    folder of ``.npy`` joint arrays in the model's skeleton (``processor.feature_extractor``)."""
    fe = processor.feature_extractor
    spec = str(spec)
    path = Path(spec).expanduser()
    if not path.exists() or (path / "dataset_dict.json").exists() or (path / "parquet").is_dir():
        try:
            parsed = parse_spec(spec)
        except ValueError as e:
            raise ValueError(
                f"--library {spec!r} is neither 'synthetic', 'embedded[:PARTS]', a folder prepared by "
                f"motionpatch-prepare, a folder of .bvh files, a folder of .npy joint arrays, nor a Hub dataset id "
                f"'user/name' ({e})"
            ) from None
        chosen = split
        if parsed.source is None and parsed.hub_id is None:  # a prepared folder: fall back to all its splits
            available = list(load_prepared(path).dataset)
            if split != "all" and any(s not in available for s in split.split("+")):
                chosen = "all"
        data = load_eval_data(parsed.text, chosen, synthetic_size=synthetic_size, synthetic_seed=synthetic_seed)
        notes = list(data.notes) + ([f"split {split!r} not found; using all splits"] if chosen != split else [])
        fps = input_fps_of(data) or 20.0
        folder = path if path.is_dir() else None
        return _rows_of_dataset(data.dataset, spec, data.skeleton, fps, data.mean, data.std, folder, notes)
    if not path.is_dir():
        raise ValueError(f"--library {spec!r} is a file; give a folder of .bvh or .npy files, a prepared dataset "
                         "folder, 'synthetic' or 'embedded'.")
    if any(path.rglob("*.bvh")):
        return _bvh_library(path, bvh_scale, bvh_up_axis, get_skeleton(fe.skeleton), fe.fps)
    if any(path.glob("*.npy")):
        return _npy_library(path, get_skeleton(fe.skeleton), fe.fps)
    raise ValueError(f"--library {spec!r}: the folder holds no dataset_dict.json, parquet/, .bvh or .npy files.")


def library_processor(processor, library: Library, model_name: str):
    """The processor for the library's skeleton: the model's own when the skeletons match, else one with the
    library's skeleton and statistics (:func:`~motionpatch_training.encode.match_skeleton`; the model is unchanged)."""
    joints = int(library.motions[0].shape[1])
    data = EvalData(None, {}, library.skeleton, library.mean, library.std, library.name, "", library.name, "library")
    return match_skeleton(processor, data, joints, skeleton_from_dataset=True, model_name=model_name)


# ---------------------------------------------------------------------------
# fingerprints and the cached index
# ---------------------------------------------------------------------------
_MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")


def model_fingerprint(model_name_or_path: str, model=None) -> str:
    """A hash of the model folder's files (weights, config, processor, tokenizer), or of the Hub id and commit."""
    h = hashlib.blake2b(digest_size=16)
    folder = Path(model_name_or_path).expanduser()
    if folder.is_dir():
        for f in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES):
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
    else:
        commit = getattr(getattr(model, "config", None), "_commit_hash", None)
        h.update(f"{model_name_or_path}@{commit}".encode())
    return h.hexdigest()


def library_fingerprint(library: Library, processor) -> str:
    """A hash of the ids, every motion's values and the processor's settings (skeleton, statistics, frames)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(processor.feature_extractor.to_json_string().encode())
    for item_id, motion in zip(library.ids, library.motions):
        h.update(item_id.encode() + b"\0" + str(motion.shape).encode())
        h.update(np.ascontiguousarray(motion, dtype=np.float32).tobytes())
    return h.hexdigest()


def default_cache_root(library: Library | None = None) -> Path:
    """The user's cache folder for library indexes: ``$XDG_CACHE_HOME/motionpatch/app`` (``~/.cache/motionpatch/app``);
    never the library's folder nor the package's."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "motionpatch" / "app"


def make_text_encoder(model, processor) -> Callable[[list[str]], Any]:
    """``texts -> model.get_text_features(...)`` for :class:`MotionSearchIndex` (which reads any output type)."""
    def encode(texts: list[str]):
        enc = processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
        with torch.no_grad():
            return model.get_text_features(**enc)

    return encode


def embed_library(model, processor, library: Library, batch_size: int = 32, chunk: int = 256, progress: bool = True):
    """A :class:`MotionSearchIndex` of the library, embedded in chunks with a progress bar."""
    parts = []
    bar = tqdm(total=len(library), desc="embedding the library", unit="motion", disable=not progress)
    for c0 in range(0, len(library), chunk):
        sub = MotionSearchIndex.from_model(
            model, processor, library.motions[c0 : c0 + chunk], library.ids[c0 : c0 + chunk], batch_size=batch_size
        )
        parts.append(sub.embeddings)
        bar.update(len(sub))
    bar.close()
    return MotionSearchIndex(torch.cat(parts), library.ids, text_encoder=make_text_encoder(model, processor),
                             match_threshold=getattr(model.config, "match_threshold", None))


def cached_index(model, processor, library: Library, model_name: str, cache_root: Path | None = None,
                 progress: bool = True):
    """Load the library's index from the cache, or embed the library and save it there. Returns ``(index, path,
    reused)``."""
    model_fp = model_fingerprint(model_name, model)
    library_fp = library_fingerprint(library, processor)
    root = Path(cache_root) if cache_root is not None else default_cache_root(library)
    path = root / f"index-{model_fp[:16]}-{library_fp[:16]}"
    text_encoder = make_text_encoder(model, processor)
    if path.is_dir():
        try:
            index = MotionSearchIndex.load(path, text_encoder=text_encoder)
            meta = index.metadata
            if meta.get("model_fingerprint") == model_fp and meta.get("library_fingerprint") == library_fp \
                    and index.ids == library.ids:
                return index, path, True
            logger.warning("the cached index in %s does not match; embedding the library again", path)
        except ValueError as err:
            logger.warning("the cached index in %s is unreadable (%s); embedding the library again", path, err)
    index = embed_library(model, processor, library, progress=progress)
    index.metadata.update(model=str(model_name), library=library.name, model_fingerprint=model_fp,
                          library_fingerprint=library_fp)
    try:
        index.save(path)
    except OSError as err:
        logger.warning("could not cache the index in %s (%s); it will be embedded again next time", path, err)
    return index, path, False


# ---------------------------------------------------------------------------
# the app's logic (no Gradio here: testable on its own)
# ---------------------------------------------------------------------------
class AppError(ValueError):
    """A request the app cannot serve (the message is shown in the page)."""


@dataclass
class Upload:
    motion: np.ndarray
    processor: Any
    skeleton: Any
    name: str
    note: str


class MotionLibraryApp:
    """Search, zero-shot labelling and nearest neighbours over one library with one model."""

    def __init__(self, model, processor, library: Library, index, model_name: str, render_dir: Path,
                 bvh_scale: float | None = None, bvh_up_axis: str | None = None, notes: Sequence[str] = ()):
        self.model, self.processor, self.library, self.index = model, processor, library, index
        self.model_name, self.bvh_scale, self.bvh_up_axis = model_name, bvh_scale, bvh_up_axis
        self.render_dir = Path(render_dir)
        self.render_dir.mkdir(parents=True, exist_ok=True)
        self.notes = list(notes)
        self._pipelines: dict[int, Any] = {}
        self._pipeline_class = ZeroShotMotionClassificationPipeline

    # -------------------------------------------------------------- pieces
    def pipeline(self, processor):
        key = id(processor)
        if key not in self._pipelines:
            self._pipelines[key] = self._pipeline_class(model=self.model, processor=processor)
        return self._pipelines[key]

    def animation(self, motion: np.ndarray, skeleton, key: str, title: str) -> str:
        """Path of the clip's GIF (rendered once per key)."""
        name = hashlib.blake2b(key.encode(), digest_size=10).hexdigest() + ".gif"
        path = self.render_dir / name
        if not path.exists():
            tmp = path.with_suffix(".tmp.gif")
            save_animation(motion, tmp, skeleton, num_frames=ANIMATION_FRAMES, fps=self.processor.feature_extractor.fps,
                           size=(256, 256), title=title)
            tmp.replace(path)
        return str(path)

    def item_animation(self, item_id: str) -> str:
        row = self.library.row(item_id)
        return self.animation(self.library.motions[row], self.library.skeleton, f"lib:{item_id}", item_id)

    def _rows(self, ids: Sequence[str], scores: Sequence[float]) -> list[list[Any]]:
        out = []
        for rank, (item_id, score) in enumerate(zip(ids, scores), 1):
            row = self.library.row(item_id)
            out.append([rank, round(float(score), 4), item_id, " | ".join(self.library.captions[row][:2]),
                        ", ".join(self.library.labels[row])])
        return out

    def _gallery(self, ids: Sequence[str], scores: Sequence[float]) -> list[tuple[str, str]]:
        return [(self.item_animation(i), f"{i}  ({s:.3f})") for i, s in zip(ids, scores)]

    def _k(self, k) -> int:
        return max(1, min(int(k), len(self.index)))

    # -------------------------------------------------------------- uploads
    def read_upload(self, path: str | os.PathLike) -> Upload:
        """An uploaded ``.bvh`` or ``.npy`` as a motion at the model's frame rate with the processor to use.

        A BVH is read with its units and up axis detected (unless ``--bvh-scale`` / ``--bvh-up-axis`` say) and its
        joints mapped by name onto the library's skeleton (``joint_maps.py``), using the library's processor; a
        hierarchy whose names do not map gets its derived skeleton and statistics computed over the clip itself
        (cross-skeleton, said in the status). A ``.npy`` has no hierarchy: it must be in the library's skeleton.
        Shorter than one patch row (16 frames), NaN, wrong joint counts and malformed files raise the package's own
        ``ValueError``.
        """
        path = Path(path)
        fe = self.processor.feature_extractor
        suffix = path.suffix.lower()
        if suffix == ".bvh":
            try:
                motion, fps, info = motion_for_skeleton(path, self.library.skeleton, scale=self.bvh_scale,
                                                        up_axis=self.bvh_up_axis)
                mapped = None
            except JointMapError as err:
                mapped = err
            if mapped is None:
                skeleton, processor = self.library.skeleton, self.processor
                note = (f"BVH, {len(motion)} frames at {fps:g} fps, joints mapped by name ({info['rig']}) onto the "
                        f"library's skeleton, scale {info['scale']:g}, {info['up_axis'].upper()} up")
            else:
                scale, up_axis, _ = _bvh_units([path], self.library.skeleton, self.bvh_scale, self.bvh_up_axis)
                bvh = read_bvh(path, scale=scale, up_axis=up_axis)
                motion, fps = bvh.positions, bvh.fps
                skeleton = bvh.skeleton(f"upload-{path.stem}")
                if not np.isfinite(motion).all():
                    raise AppError(f"{path.name}: the BVH motion contains NaN or Inf values.")
                mean, std = compute_statistics([motion])
                fe_new = MotionPatchFeatureExtractor(
                    skeleton=skeleton.to_dict(), mean=mean, std=std, max_frames=fe.max_frames,
                    points_per_part=fe.points_per_part, frames_per_patch=fe.frames_per_patch,
                    points_per_patch=fe.points_per_patch, fps=fe.fps, fps_mode=fe.fps_mode,
                )
                processor = MotionPatchProcessor(fe_new, self.processor.tokenizer)
                note = (f"BVH, {bvh.num_frames} frames at {bvh.fps:g} fps, its own skeleton ({skeleton.num_joints} "
                        "joints, chains derived from the hierarchy, statistics of this clip): cross-skeleton, because "
                        f"its joint names do not map onto the library's skeleton ({str(mapped).split(';')[0]})")
            if abs(fps - fe.fps) > 1e-6:
                motion = resample_fps(motion, fps, fe.fps, mode="linear")
        elif suffix == ".npy":
            try:
                motion = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as err:
                raise AppError(f"{path.name} is not a readable .npy array: {err}") from err
            if motion.ndim == 4 and motion.shape[0] == 1:
                motion = motion[0]
            skeleton, processor = self.library.skeleton, self.processor
            note = (f".npy {tuple(motion.shape)}, read in the library's skeleton {skeleton.name!r} at {fe.fps:g} fps "
                    "(a .npy has no hierarchy)")
        else:
            raise AppError(f"{path.name}: upload a .bvh file or a .npy joint array (frames, joints, 3).")
        strict = MotionPatchFeatureExtractor(**{**processor.feature_extractor.to_dict(), "min_frames": MIN_UPLOAD_FRAMES})
        strict(motion)  # the package's checks: shape, joint count, NaN / Inf, length (one patch row at least)
        return Upload(np.asarray(motion, np.float32), processor, skeleton, path.name, note)

    def _query_motion(self, upload_path, item_id) -> Upload:
        if upload_path:
            return self.read_upload(upload_path)
        if item_id:
            row = self.library.row(str(item_id))
            return Upload(self.library.motions[row], self.processor, self.library.skeleton, str(item_id), "library item")
        raise AppError("upload a .bvh / .npy file or pick a library item first.")

    # -------------------------------------------------------------- the three tabs
    def search(self, query: str, k: int = 5):
        """Text search: ``(table rows, gallery, status)``."""
        query = (query or "").strip()
        if not query:
            raise AppError("type a description of a motion, e.g. 'a person jumps twice'.")
        res = self.index.search(query, k=self._k(k))
        ids, scores = res.ids[0], res.scores[0].tolist()
        rows = [row + [_match_text(hit["match"])] for row, hit in zip(self._rows(ids, scores), res[0])]
        status = f"Top {len(ids)} of {len(self.index)} for {query!r}."
        if res[0][0]["match"] is False:
            status = (f"No confident match for {query!r}: the best motion scores {scores[0]:.3f}, below the model's "
                      f"match threshold {self.index.match_threshold:.3f} (calibrated on held-out data). The library "
                      "may not hold this action; the closest motions are listed anyway.")
        return rows, self._gallery(ids, scores), status

    def classify(self, upload_path, item_id, labels_text: str):
        """Zero-shot labels: ``(scores [(label, score)], patch image, animation path, status)``."""
        labels = [x.strip() for x in (labels_text or "").replace("\n", ",").split(",") if x.strip()]
        if not labels:
            raise AppError("give at least one candidate label, separated by commas (e.g. 'walks, jumps').")
        up = self._query_motion(upload_path, item_id)
        scores = self.pipeline(up.processor)(up.motion, candidate_labels=labels)
        batch = up.processor.feature_extractor(up.motion)
        patches = render_motion_patches(batch["motion_values"][0], batch["motion_lengths"][0], part_colors=True)
        key = f"up:{up.name}:{hashlib.blake2b(up.motion.tobytes(), digest_size=8).hexdigest()}"
        gif = self.animation(up.motion, up.skeleton, key, up.name)
        best = scores[0]
        status = f"{up.name} ({up.note}): {best['label']!r} with p = {best['score']:.3f}."
        if best["match"] is False:
            status = (f"{up.name} ({up.note}): no confident match among these labels: the closest, {best['label']!r} "
                      f"(p = {best['score']:.3f} among the candidates), has cosine {best['similarity']:.3f}, below the "
                      f"model's match threshold {self.model.config.match_threshold:.3f}.")
        return [(s["label"], float(s["score"])) for s in scores], patches, gif, status

    def neighbours(self, upload_path, item_id, k: int = 5):
        """Motion to motion: ``(table rows, gallery, status)``; a library item does not find itself."""
        up = self._query_motion(upload_path, item_id)
        if not upload_path:
            query, drop = self.index.get_embedding(str(item_id)), str(item_id)
        else:
            query = MotionSearchIndex.from_model(self.model, up.processor, [up.motion], ["query"]).embeddings[0]
            drop = None
        res = self.index.search_by_motion(query, k=self._k(int(k) + (drop is not None)))
        pairs = [(i, s) for i, s in zip(res.ids[0], res.scores[0].tolist()) if i != drop][: int(k)]
        ids, scores = [p[0] for p in pairs], [p[1] for p in pairs]
        rows = [row + [""] for row in self._rows(ids, scores)]  # the match threshold is for text-motion pairs
        return rows, self._gallery(ids, scores), f"{len(ids)} nearest motions to {up.name} ({up.note})."


# ---------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------
TABLE_HEADERS = ["rank", "score", "id", "captions", "labels", "match"]


def _match_text(match: bool | None) -> str:
    return "" if match is None else "yes" if match else "no"


def error_markdown(err: BaseException) -> str:
    """The error as shown in the page: its type and the package's own message, verbatim."""
    return f"**Error** ({type(err).__name__}):\n\n<pre style='white-space: pre-wrap'>{html.escape(str(err))}</pre>"


def _guarded(fn: Callable, empty: tuple) -> Callable:
    """Run a handler; on any error return ``empty`` outputs plus the error text (the app never dies on input)."""

    def run(*args):
        try:
            *outputs, status = fn(*args)
            return (*outputs, html.escape(status))
        except Exception as err:  # every failure is shown in the page, never raised into Gradio
            if not isinstance(err, ValueError):
                logger.exception("motionpatch-app: unexpected error")
            return (*empty, error_markdown(err))

    return run


def build_interface(app: MotionLibraryApp, top_k: int = 5):
    """The Gradio ``Blocks`` of the app."""
    import gradio as gr  # optional: the app extra (pip install motionpatch[app])

    lib = app.library
    choices = lib.ids[:2000]
    header = (f"## motionpatch: {html.escape(str(app.model_name))} over {html.escape(lib.name)} ({len(lib)} motions, "
              f"skeleton {html.escape(lib.skeleton.name)})\n\n" + "\n".join(f"- {html.escape(n)}" for n in app.notes))
    with gr.Blocks(title="motionpatch") as demo:
        gr.Markdown(header)
        with gr.Tab("Text search", id="search"):
            with gr.Row():
                query = gr.Textbox(label="Describe a motion", placeholder="a person kicks with the left leg",
                                   elem_id="query", scale=4)
                k = gr.Slider(1, min(50, len(lib)), value=min(top_k, len(lib)), step=1, label="top k", scale=1)
            search_btn = gr.Button("Search", variant="primary", elem_id="search-button")
            search_status = gr.Markdown(elem_id="search-status")
            search_table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, elem_id="search-results")
            search_gallery = gr.Gallery(label="motions", columns=5, height="auto", elem_id="search-gallery")
        with gr.Tab("Zero-shot labels", id="zero-shot"):
            with gr.Row():
                zs_file = gr.File(label="upload a .bvh or .npy", file_types=[".bvh", ".npy"], type="filepath",
                                  elem_id="zs-upload")
                zs_item = gr.Dropdown(choices=choices, value=None, label="or a library item", allow_custom_value=True,
                                      elem_id="zs-item")
            zs_labels = gr.Textbox(value=DEFAULT_LABELS, label="candidate labels (comma-separated)", elem_id="zs-labels")
            zs_btn = gr.Button("Classify", variant="primary", elem_id="zs-button")
            zs_status = gr.Markdown(elem_id="zs-status")
            with gr.Row():
                zs_scores = gr.Label(label="scores", num_top_classes=20, elem_id="zs-scores")  # horizontal bars
                zs_patches = gr.Image(label="motion patches", type="pil", elem_id="zs-patches")
                zs_anim = gr.Image(label="animation", type="filepath", elem_id="zs-animation")
        with gr.Tab("Motion to motion", id="neighbours"):
            with gr.Row():
                nn_file = gr.File(label="upload a .bvh or .npy", file_types=[".bvh", ".npy"], type="filepath",
                                  elem_id="nn-upload")
                nn_item = gr.Dropdown(choices=choices, value=choices[0] if choices else None, label="or a library item",
                                      allow_custom_value=True, elem_id="nn-item")
                nn_k = gr.Slider(1, max(1, min(50, len(lib) - 1)), value=max(1, min(top_k, len(lib) - 1)), step=1,
                                 label="neighbours")
            nn_btn = gr.Button("Find similar motions", variant="primary", elem_id="nn-button")
            nn_status = gr.Markdown(elem_id="nn-status")
            nn_table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, elem_id="nn-results")
            nn_gallery = gr.Gallery(label="neighbours", columns=5, height="auto", elem_id="nn-gallery")

        def classify(upload, item, labels):
            scores, patches, gif, status = app.classify(upload, item, labels)
            return dict(scores), patches, gif, status

        search = _guarded(app.search, ([], []))
        search_btn.click(search, [query, k], [search_table, search_gallery, search_status])
        query.submit(search, [query, k], [search_table, search_gallery, search_status])
        zs_btn.click(_guarded(classify, (None, None, None)), [zs_file, zs_item, zs_labels],
                     [zs_scores, zs_patches, zs_anim, zs_status])
        nn_btn.click(_guarded(app.neighbours, ([], [])), [nn_file, nn_item, nn_k], [nn_table, nn_gallery, nn_status])
    return demo


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="motionpatch-app", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help=f"saved model folder or Hub id (default {DEFAULT_MODEL}; trained first when absent)")
    p.add_argument("--library", default="embedded",
                   help="prepared dataset folder / Hub id, a folder of .bvh files, a folder of .npy joint arrays, "
                        "'embedded' (the held-out real motion-capture takes shipped with the package; default) or "
                        "'synthetic' (the synthetic generator's test split)")
    p.add_argument("--split", default="test", help="split of a prepared dataset (default test; all when absent)")
    p.add_argument("--synthetic-size", type=int, default=200, help="motions of the synthetic library (default 200)")
    p.add_argument("--bvh-scale", type=float, default=None,
                   help="BVH length factor (0.01: centimetres -> metres; default: detected from the body's size)")
    p.add_argument("--bvh-up-axis", choices=("y", "z"), default=None,
                   help="vertical axis of BVH files (default: detected from the pelvis -> head direction)")
    p.add_argument("--cache-dir", default=None,
                   help="where the library index is cached (default $XDG_CACHE_HOME/motionpatch/app, i.e. "
                        "~/.cache/motionpatch/app)")
    p.add_argument("--top-k", type=int, default=5, help="results shown by default")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860, or $GRADIO_SERVER_PORT)")
    p.add_argument("--no-train", action="store_true", help="fail instead of training the demo model when it is absent")
    p.add_argument("--trust-remote-code", action="store_true")
    return p


def ensure_demo_model(no_train: bool = False) -> str:
    """``runs/demo/best``, trained first (with the demo's progress bar) when it does not exist."""
    best = Path(DEFAULT_MODEL)
    if (best / "config.json").is_file():
        return str(best)
    if no_train:
        raise ValueError(f"{DEFAULT_MODEL} does not exist; run `motionpatch-demo` first or pass --model PATH_OR_ID.")
    print(f"[motionpatch-app] {DEFAULT_MODEL} does not exist: training the demo model first (motionpatch-demo, about "
          "4 minutes on 2 CPU cores, no download). Pass --model PATH_OR_ID to serve another model.", flush=True)
    if demo_main(["--output_dir", DEMO_OUTPUT_DIR]) != 0 or not (best / "config.json").is_file():
        raise ValueError("training the demo model failed (see above); pass --model PATH_OR_ID to serve another model.")
    return str(best)


def create_app(model_name: str, library_spec: str = "embedded", *, split: str = "test", synthetic_size: int = 200,
               bvh_scale: float | None = None, bvh_up_axis: str | None = None, cache_dir: str | None = None,
               trust_remote_code: bool = False, progress: bool = True) -> MotionLibraryApp:
    """Load the model and the library, and the library's index (cached), into a :class:`MotionLibraryApp`."""
    model, processor = load_model_and_processor(model_name, trust_remote_code=trust_remote_code)
    library = load_library(library_spec, processor, split=split, synthetic_size=synthetic_size, bvh_scale=bvh_scale,
                           bvh_up_axis=bvh_up_axis)
    processor, info = library_processor(processor, library, model_name)
    notes = list(library.notes)
    if info["skeleton_from_dataset"]:
        notes.append(f"cross-skeleton: the model's processor skeleton {info['processor_skeleton']!r} was replaced by "
                     f"the library's {info['skeleton']!r} ({info['statistics']})")
    index, path, reused = cached_index(model, processor, library, model_name, cache_dir, progress=progress)
    notes.append(("reused the cached index " if reused else "embedded the library and cached the index in ") + str(path))
    print(f"[motionpatch-app] {notes[-1]}", flush=True)
    render_dir = Path(tempfile.mkdtemp(prefix="motionpatch-app-renders-"))
    return MotionLibraryApp(model, processor, library, index, model_name, render_dir, bvh_scale=bvh_scale,
                            bvh_up_axis=bvh_up_axis, notes=notes)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model_name = args.model or ensure_demo_model(args.no_train)
        app = create_app(model_name, args.library, split=args.split, synthetic_size=args.synthetic_size,
                         bvh_scale=args.bvh_scale, bvh_up_axis=args.bvh_up_axis, cache_dir=args.cache_dir,
                         trust_remote_code=args.trust_remote_code)
    except ValueError as err:
        if os.environ.get("MOTIONPATCH_DEBUG"):
            raise
        print(f"motionpatch-app: error: {err}", file=sys.stderr)
        return 2
    demo = build_interface(app, top_k=args.top_k)
    host = args.host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = args.port or int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    demo.launch(server_name=host, server_port=port, allowed_paths=[str(app.render_dir)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
