"""Train a MotionPatch motion-language model with Accelerate.

Run it as::

    accelerate launch -m motionpatch_training.train training/configs/humanml3d.yaml [--key value ...]
    motionpatch-train demo                       # a shipped config by name; flags override it
    python -m motionpatch_training.train CONFIG.yaml --num_train_epochs 2

What one run does:

1. loads the dataset once (synthetic / bandai-namco / prepared folder / Hub id), caches every split's motions as
   one float32 array and the normalisation statistics (:mod:`.data`);
2. builds the model (pretrained towers or from scratch, :mod:`.model_factory`), the processor (feature
   extractor with the statistics + tokenizer) and AdamW with one learning rate per part (motion tower, text
   tower, heads) and a cosine schedule with warm-up;
3. trains with global negatives across processes (:class:`.losses.ClipLoss`, differentiable all-gather),
   gradient accumulation, clipping and mixed precision, logging to tqdm, trackers and ``log.jsonl``;
4. saves the full training state atomically every ``checkpointing_steps`` steps and at every epoch end (the last
   ``save_total_limit`` are kept); ``--resume_from_checkpoint latest`` continues at the exact batch;
5. evaluates retrieval on the validation split each epoch and keeps the best model in ``OUTPUT/best`` (weights +
   processor + model card), a folder ``AutoModel`` / ``AutoProcessor.from_pretrained`` load;
6. evaluates the best model on the test split, writes ``test_results.json`` and the results table into the card,
   prints a summary, and uploads ``OUTPUT/best`` with ``--push_to_hub user/name``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from .arguments import DataArguments, ModelArguments, TrainingArguments, args_to_dict, parse_args

logger = logging.getLogger("motionpatch_training")

LOG_FILE = "log.jsonl"
BEST_DIR = "best"
SUMMARY_FILE = "summary.json"
#: test-only: after the checkpoint of this optimizer step is written, print a marker and sleep (to be killed)
HANG_ENV = "MOTIONPATCH_TEST_HANG_AFTER_CHECKPOINT"


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stopped without saving the broken state."""


@dataclass
class RunResult:
    """What :func:`train` returns (also written to ``summary.json``)."""

    output_dir: str
    best_dir: str | None
    global_step: int
    epochs_completed: int
    best_metric: float | None
    best_step: int | None
    validation_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    test_table: str | None = None
    chance_metrics: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    total_seconds: float = 0.0
    samples_per_second: float = 0.0
    pushed_to: str | None = None


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
class JsonlLog:
    """Append-only JSON-lines log on the main process (``OUTPUT/log.jsonl``); one record per logged event."""

    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        """On resume: drop records of steps after the checkpoint (they will be logged again)."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if rec.get("step", 0) <= step:
                kept.append(line)
        self.path.write_text("".join(k + "\n" for k in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.item() if o.numel() == 1 else o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _tracker_config(config: dict[str, Any]) -> dict[str, Any]:
    """Trackers (TensorBoard hparams) take scalars and strings only."""
    out = {}
    for k, v in config.items():
        out[k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def _setup_logging(is_main: bool) -> None:
    level = logging.INFO if is_main else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=level)
    logger.setLevel(level)
    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def _check_precision(training_args: TrainingArguments) -> None:
    if training_args.mixed_precision == "fp16" and (training_args.cpu or not torch.cuda.is_available()):
        raise ValueError(
            "mixed_precision='fp16' needs a CUDA GPU; on CPU use --mixed_precision bf16 (autocast) or 'no'."
        )
    if training_args.mixed_precision == "bf16" and torch.cuda.is_available() and not training_args.cpu:
        if not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU does not support bf16; use --mixed_precision fp16 or 'no'.")


def _check_selection_metric(key: str, protocols: list[str]) -> None:
    """``metric_for_best_model`` must name a metric that validation will produce."""
    from modeling_motionpatch.retrieval import RECALL_AT

    names = ["loss"] + [f"{p}/rsum" for p in protocols] + [
        f"{p}/{d}/{m}" for p in protocols for d in ("t2m", "m2t") for m in [f"R@{k}" for k in RECALL_AT] + ["MedR", "MeanR"]
    ]
    if key not in names:
        import difflib

        close = difflib.get_close_matches(key, names, n=3)
        raise ValueError(
            f"metric_for_best_model {key!r} is not a validation metric of eval_protocols {protocols}; choose e.g. "
            + ", ".join(repr(c) for c in (close or names[:4])) + "."
        )


def _make_accelerator(training_args: TrainingArguments):
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    kwargs: dict[str, Any] = {}
    if training_args.torch_compile:
        from accelerate.utils import TorchDynamoPlugin

        kwargs["dynamo_plugin"] = TorchDynamoPlugin(backend="inductor")
    trackers = training_args.trackers
    return Accelerator(
        mixed_precision=training_args.mixed_precision,
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
        cpu=training_args.cpu,
        log_with=("all" if "all" in trackers else trackers) or None,
        project_config=ProjectConfiguration(
            project_dir=training_args.output_dir, logging_dir=os.path.join(training_args.output_dir, "logs")
        ),
        dataloader_config=DataLoaderConfiguration(even_batches=True, use_seedable_sampler=False),
        step_scheduler_with_optimizer=False,
        **kwargs,
    )


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
def train(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> RunResult:
    """Run one training job (see the module docstring); returns a :class:`RunResult`."""
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from modeling_motionpatch import MotionPatchModel, MotionPatchProcessor

    from .card import build_model_card, push_folder
    from .checkpointing import (
        TrainerState,
        atomic_folder_replace,
        clean_partial_checkpoints,
        list_checkpoints,
        resolve_resume_path,
        save_checkpoint,
    )
    from .data import (
        EpochSampler,
        MotionStore,
        MotionTextCollator,
        MotionTextEvalDataset,
        MotionTextTrainDataset,
        build_feature_extractor,
        captioned_rows,
        load_training_data,
        select_rows,
        split_fps,
    )
    from .evaluation import block_loss, chance_metrics, embed_split, flatten_metrics, results_table, retrieval_metrics
    from .losses import ClipLoss
    from .model_factory import (
        GROUPS,
        apply_freezing,
        build_model,
        build_optimizer,
        build_tokenizer,
        set_train_mode,
    )

    t_start = time.perf_counter()
    output_dir = Path(training_args.output_dir)
    _check_precision(training_args)
    # fail fast on a bad resume path, before loading anything heavy
    resume_path = resolve_resume_path(training_args.resume_from_checkpoint, output_dir)
    if resume_path is None and list_checkpoints(output_dir) and not training_args.overwrite_output_dir:
        raise ValueError(
            f"{output_dir} already holds checkpoints from an earlier run; pass --resume_from_checkpoint latest to "
            "continue it, --overwrite_output_dir to start over there, or choose another --output_dir."
        )

    _check_selection_metric(training_args.metric_for_best_model, data_args.eval_protocols)
    accelerator = _make_accelerator(training_args)
    is_main = accelerator.is_main_process
    _setup_logging(is_main)
    if training_args.torch_num_threads:
        torch.set_num_threads(training_args.torch_num_threads)
    if training_args.deterministic:
        torch.use_deterministic_algorithms(True)
    set_seed(training_args.seed)
    if is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        removed = clean_partial_checkpoints(output_dir)
        if removed:
            logger.warning("removed incomplete checkpoint folders left by an interrupted save: %s", removed)
    accelerator.wait_for_everyone()
    say = (lambda msg: print(msg, flush=True)) if is_main else (lambda msg: None)

    # ---------------------------------------------------------------- data
    with accelerator.main_process_first():
        data = load_training_data(data_args, seed=training_args.seed)
    dd = data.dataset
    train_rows = select_rows(dd[data_args.train_split], data_args.max_train_samples, "train")
    train_rows, train_captions, _ = captioned_rows(train_rows, data_args.caption_column, data_args.train_split)
    eval_sets: dict[str, tuple[Any, list[list[str]]]] = {}
    for role, split in (("validation", data_args.validation_split), ("test", data_args.test_split)):
        if split and (role == "validation" or training_args.do_test):
            rows = select_rows(dd[split], data_args.max_eval_samples, split)
            rows, caps, _ = captioned_rows(rows, data_args.caption_column, split)
            eval_sets[role] = (rows, caps)
    input_fps = split_fps(train_rows, data.fps)
    for role, (rows, _) in eval_sets.items():
        if not math.isclose(split_fps(rows, input_fps), input_fps):
            raise ValueError(
                f"the {role} split is at {split_fps(rows, input_fps):g} fps but the training split at {input_fps:g} fps; "
                "prepare every split at one frame rate."
            )
    t0 = time.perf_counter()
    train_store = MotionStore.from_dataset(train_rows)
    eval_stores = {role: MotionStore.from_dataset(rows) for role, (rows, _) in eval_sets.items()}
    cache_seconds = time.perf_counter() - t0

    global_batch = training_args.per_device_train_batch_size * accelerator.num_processes
    if len(train_store) < global_batch:
        raise ValueError(
            f"the batch size is larger than the dataset: {accelerator.num_processes} process(es) x "
            f"per_device_train_batch_size {training_args.per_device_train_batch_size} = {global_batch} pairs per step, "
            f"but the {data_args.train_split!r} split has {len(train_store)} captioned motions. Lower "
            "--per_device_train_batch_size or use more data."
        )

    # ---------------------------------------------------------------- model
    tokenizer = build_tokenizer(model_args)
    model, model_notes = build_model(model_args, data_args.max_frames)
    frozen = apply_freezing(model, model_args)
    if model_args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    feature_extractor, stats_note = build_feature_extractor(
        data, train_store, data_args.statistics, model.config.max_frames,
        model.config.motion_config.image_size[1] // 5, data_args.fps, input_fps,
    )  # fmt: skip
    processor = MotionPatchProcessor(feature_extractor, tokenizer)

    # ---------------------------------------------------------------- loaders
    sampler = EpochSampler(len(train_store), training_args.seed, shuffle=True)
    train_dataset = MotionTextTrainDataset(
        train_store, train_captions, training_args.seed, data.skeleton, data_args.mirror_probability
    )
    workers = data_args.dataloader_num_workers
    pin = data_args.dataloader_pin_memory and accelerator.device.type == "cuda"
    train_dl = DataLoader(
        train_dataset,
        batch_size=training_args.per_device_train_batch_size,
        sampler=sampler,
        collate_fn=MotionTextCollator(processor, model_args.text_max_length, training=True, seed=training_args.seed),
        drop_last=True,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(training_args.seed),  # keeps the global RNG untouched by iter()
    )
    eval_dls = {}
    for role, (rows, caps) in eval_sets.items():
        eval_dls[role] = DataLoader(
            MotionTextEvalDataset(eval_stores[role], caps),
            batch_size=training_args.per_device_eval_batch_size,
            shuffle=False,
            collate_fn=MotionTextCollator(processor, model_args.text_max_length, training=False),
            num_workers=workers,
            pin_memory=pin,
            generator=torch.Generator().manual_seed(training_args.seed),
        )

    optimizer = build_optimizer(model, training_args)
    group_names = [g["name"] for g in optimizer.param_groups]
    batches_per_epoch = len(train_store) // global_batch  # drop_last: full global batches only
    steps_per_epoch = math.ceil(batches_per_epoch / training_args.gradient_accumulation_steps)
    if training_args.max_steps > 0:
        total_steps = training_args.max_steps
        num_epochs = math.ceil(total_steps / steps_per_epoch)
    else:
        num_epochs = training_args.num_train_epochs
        total_steps = num_epochs * steps_per_epoch
    warmup = training_args.warmup_steps or math.ceil(training_args.warmup_ratio * total_steps)
    scheduler = get_scheduler(
        training_args.lr_scheduler_type, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps
    )

    val_dl = eval_dls.get("validation")
    prepared = accelerator.prepare(model, optimizer, train_dl, scheduler, *([val_dl] if val_dl is not None else []))
    model, optimizer, train_dl, scheduler = prepared[:4]
    if val_dl is not None:
        val_dl = prepared[4]
    unwrapped = accelerator.unwrap_model(model)
    logit_scale = unwrapped.logit_scale
    state = TrainerState()
    accelerator.register_for_checkpointing(state)
    loss_fn = ClipLoss(local_loss=training_args.local_loss, gather_with_grad=training_args.gather_with_grad)
    jsonl = JsonlLog(output_dir / LOG_FILE, is_main)

    if resume_path is not None:
        accelerator.load_state(str(resume_path))
        jsonl.truncate_after(state.global_step)
        say(f"[motionpatch-train] resumed from {resume_path}: step {state.global_step}, epoch {state.epoch}, "
            f"{state.batches_in_epoch} batches into it")  # fmt: skip
        jsonl.write({"type": "resume", "step": state.global_step, "checkpoint": str(resume_path)})
    elif is_main and (output_dir / LOG_FILE).exists():
        (output_dir / LOG_FILE).unlink()

    run_config = args_to_dict(model_args, data_args, training_args)
    if is_main:
        (output_dir / "training_args.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False))
    if training_args.trackers:
        init_kwargs = {"wandb": {"name": training_args.run_name or output_dir.name}}
        accelerator.init_trackers(training_args.run_name or output_dir.name or "motionpatch",
                                  config=_tracker_config(run_config), init_kwargs=init_kwargs)  # fmt: skip

    # ---------------------------------------------------------------- what we use
    n_params = {g: 0 for g in GROUPS}
    n_train = {g: 0 for g in GROUPS}
    from .model_factory import parameter_group_of

    for name, p in unwrapped.named_parameters():
        g = parameter_group_of(name)
        n_params[g] += p.numel()
        n_train[g] += p.numel() if p.requires_grad else 0
    lr_of = {"motion_tower": training_args.learning_rate_motion, "text_tower": training_args.learning_rate_text,
             "heads": training_args.learning_rate_heads}  # fmt: skip
    split_sizes = {"train": len(train_store), **{eval_sets_role: len(eval_stores[eval_sets_role]) for eval_sets_role in eval_stores}}
    lines = [
        "[motionpatch-train] configuration",
        f"  data      : {data.pretty_name} ({data.name}); skeleton {data.skeleton.name} ({data.skeleton.num_joints} "
        f"joints); {input_fps:g} fps in, {feature_extractor.fps:g} fps model",
        f"  splits    : " + ", ".join(f"{k} {v}" for k, v in split_sizes.items())
        + f" (cached as float32 arrays in {cache_seconds:.2f} s)",
        f"  captions  : {data.captions_kind}",
        f"  stats     : {stats_note}",
        *[f"  model     : {n}" for n in model_notes],
        "  params    : " + ", ".join(
            f"{g} {n_params[g] / 1e6:.2f}M" + (" (frozen)" if n_train[g] == 0 else f" lr {lr_of[g]:g}") for g in GROUPS
        ),
        f"  batch     : {training_args.per_device_train_batch_size} x {accelerator.num_processes} process(es) x "
        f"{training_args.gradient_accumulation_steps} accumulation = "
        f"{global_batch * training_args.gradient_accumulation_steps} pairs/step; {batches_per_epoch} batches/epoch "
        f"({len(train_store) - batches_per_epoch * global_batch} pairs left out per epoch, a different "
        "random subset each epoch)",
        f"  schedule  : {total_steps} steps ({num_epochs} epochs), {training_args.lr_scheduler_type} with {warmup} "
        f"warm-up steps; temperature {model_args.temperature:g} "
        f"({'learnable' if model_args.learnable_temperature else 'fixed'})",
        f"  device    : {accelerator.device} x {accelerator.num_processes} ({accelerator.distributed_type}), "
        f"precision {training_args.mixed_precision}, torch threads {torch.get_num_threads()}",
        f"  output    : {output_dir}",
    ]
    say("\n".join(lines))
    if data.notes:
        for n in data.notes:
            say(f"  note      : {n}")

    # ---------------------------------------------------------------- evaluation
    best_dir = output_dir / BEST_DIR
    greater_is_better = training_args.metric_for_best_model != "loss"
    last_val: dict[str, float] = {}
    last_val_results: dict[str, dict[str, Any]] = {}

    def evaluate_validation() -> dict[str, float]:
        nonlocal last_val, last_val_results
        if val_dl is None:
            return {}
        text, motion, _ = embed_split(accelerator, model, val_dl)
        captions = [c[0] for c in eval_sets["validation"][1]]
        results, notes = retrieval_metrics(text, motion, captions, data_args.eval_protocols, training_args.seed)
        flat = flatten_metrics(results)
        flat["loss"] = block_loss(text, motion, float(logit_scale.detach().float()), global_batch)
        for n in notes:
            logger.info("validation: %s", n)
        last_val, last_val_results = flat, results
        return flat

    def save_best(metrics: dict[str, float]) -> None:
        state_dict = accelerator.get_state_dict(model)
        if is_main:
            tmp = output_dir / f".tmp-{BEST_DIR}"
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp)
            accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            processor.save_pretrained(tmp)
            (tmp / "validation_results.json").write_text(json.dumps(
                {"step": state.global_step, "epoch": state.epoch, "metrics": metrics}, indent=1))  # fmt: skip
            (tmp / "training_args.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False))
            write_card(tmp, test_metrics=None, test_table=None, test_size=None)
            atomic_folder_replace(tmp, best_dir)
        accelerator.wait_for_everyone()

    def write_card(folder: Path, test_metrics, test_table, test_size) -> None:
        procedure = (
            f"{state.global_step} optimizer steps ({state.epoch} epochs) of AdamW (betas {training_args.adam_beta1}, "
            f"{training_args.adam_beta2}; weight decay {training_args.weight_decay}) with learning rates motion tower "
            f"{training_args.learning_rate_motion:g}, text tower {training_args.learning_rate_text:g}, heads "
            f"{training_args.learning_rate_heads:g}"
            + (f" (frozen: {', '.join(frozen)})" if frozen else "")
            + f", {training_args.lr_scheduler_type} schedule with {warmup} warm-up steps, gradient clipping at "
            f"{training_args.max_grad_norm:g}; global batch {global_batch * training_args.gradient_accumulation_steps} "
            f"pairs ({accelerator.num_processes} process(es)"
            + (", negatives gathered across processes" if accelerator.num_processes > 1 else "")
            + f"), precision "
            f"{training_args.mixed_precision}; one random caption per motion per epoch, random {unwrapped.config.max_frames}-frame crops"
            + (f", mirroring with probability {data_args.mirror_probability:g}" if data_args.mirror_probability else "")
            + f"; seed {training_args.seed}."
        )
        card = build_model_card(
            model_name=training_args.push_to_hub.split("/")[-1] if training_args.push_to_hub else
            f"motionpatch-{data.name}",
            data=data, model_args=model_args, data_args=data_args, training_args=training_args,
            model_config=unwrapped.config, model_notes=model_notes, split_sizes=split_sizes, procedure=procedure,
            selection={"metric": training_args.metric_for_best_model if state.best_metric is not None else None,
                       "epoch": state.best_epoch,
                       "step": state.best_step, "fps": feature_extractor.fps},
            test_metrics=test_metrics, test_table=test_table, test_size=test_size,
            validation_table=results_table(state.best_results) if state.best_results else None,
            repo_or_path=training_args.push_to_hub or str(best_dir),
            training_config=f"`training_args.yaml` in this folder",
        )  # fmt: skip
        card.save(str(folder / "README.md"))

    def maybe_select(metrics: dict[str, float]) -> bool:
        key = training_args.metric_for_best_model
        if not metrics:
            return False
        if key not in metrics:
            raise ValueError(
                f"metric_for_best_model {key!r} is not among the validation metrics {sorted(metrics)}; pick one of them."
            )
        value = float(metrics[key])
        better = state.best_metric is None or (value > state.best_metric if greater_is_better else value < state.best_metric)
        if better:
            state.best_metric, state.best_step, state.best_epoch = value, state.global_step, state.epoch
            state.best_results = json.loads(json.dumps(last_val_results, default=_json_default))
            save_best(metrics)
        return better

    def run_validation(where: str) -> None:
        t = time.perf_counter()
        metrics = evaluate_validation()
        if not metrics:
            return
        improved = maybe_select(metrics)
        key = training_args.metric_for_best_model
        record = {"type": "eval", "split": "validation", "step": state.global_step, "epoch": state.epoch,
                  "where": where, "best": improved, "seconds": round(time.perf_counter() - t, 2),
                  **{f"val/{k}": round(v, 4) for k, v in metrics.items()}}  # fmt: skip
        jsonl.write(record)
        state.history.append({"step": state.global_step, "epoch": state.epoch, key: metrics.get(key)})
        if training_args.trackers:
            accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=state.global_step)
        shown = [k for k in ("all/t2m/R@1", "all/t2m/R@5", "all/m2t/R@1", "all/m2t/R@5", "all/t2m/MedR") if k in metrics]
        msg = ", ".join(f"{k.split('/', 1)[1]} {metrics[k]:.2f}" for k in shown) or ", ".join(
            f"{k} {v:.3f}" for k, v in list(metrics.items())[:6])
        tqdm.write(f"[validation] epoch {state.epoch} step {state.global_step}: {msg}; loss {metrics['loss']:.4f}"
                   + (" (best)" if improved else "")) if is_main else None  # fmt: skip

    def checkpoint(where: str) -> None:
        path = save_checkpoint(accelerator, state, output_dir, training_args.save_total_limit)
        jsonl.write({"type": "checkpoint", "step": state.global_step, "epoch": state.epoch, "where": where,
                     "path": str(path)})  # fmt: skip
        hang = os.environ.get(HANG_ENV)
        if hang and int(hang) == state.global_step:
            print(f"MOTIONPATCH_TEST_CHECKPOINT_WRITTEN {state.global_step}", flush=True)
            time.sleep(3600)

    # ---------------------------------------------------------------- training loop
    progress = tqdm(total=total_steps, initial=state.global_step, disable=not is_main or training_args.disable_tqdm,
                    desc="training", dynamic_ncols=True, leave=True)  # fmt: skip
    window_loss = torch.zeros((), device=accelerator.device)
    window_batches = 0
    window_start = time.perf_counter()
    window_samples = 0
    train_seconds = 0.0
    train_t0 = time.perf_counter()
    trainable = [p for p in model.parameters() if p.requires_grad]
    grad_norm = None
    stop = state.global_step >= total_steps
    set_train_mode(model, frozen)

    for epoch in range(state.epoch, num_epochs):
        if stop:
            break
        sampler.start_epoch(epoch)
        skip = state.batches_in_epoch if epoch == state.epoch else 0
        state.epoch = epoch
        state.batches_in_epoch = skip
        loader = accelerator.skip_first_batches(train_dl, skip) if skip else train_dl
        set_train_mode(model, frozen)
        for batch in loader:
            batch.pop("sample_index", None)
            with accelerator.accumulate(model):
                out = model(**batch)
                loss = loss_fn(out.motion_embeds, out.text_embeds, logit_scale)
                finite = torch.isfinite(loss.detach())
                if accelerator.num_processes > 1:
                    finite = accelerator.reduce(finite.float(), "sum") == accelerator.num_processes
                if not bool(finite):
                    value = accelerator.gather(loss.detach()[None]).tolist()
                    jsonl.write({"type": "error", "step": state.global_step, "epoch": epoch, "loss": value})
                    last = state.last_checkpoint
                    progress.close()
                    if training_args.trackers:
                        accelerator.end_training()
                    raise NonFiniteLossError(
                        f"the training loss is not finite ({value}) at epoch {epoch}, optimizer step "
                        f"{state.global_step + 1} (micro-batch {state.batches_in_epoch + 1} of the epoch); stopped before "
                        "applying it. The last good checkpoint is "
                        + (f"{last} (resume with --resume_from_checkpoint latest)" if last else
                           "none - no checkpoint had been written yet")
                        + ". Try lower learning rates, --max_grad_norm 1.0, --mixed_precision bf16 instead of fp16, "
                        "or check the data for extreme values."
                    )  # fmt: skip
                accelerator.backward(loss)
                if accelerator.sync_gradients and training_args.max_grad_norm > 0:
                    grad_norm = accelerator.clip_grad_norm_(trainable, training_args.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state.batches_in_epoch += 1
            window_loss += loss.detach()
            window_batches += 1
            window_samples += global_batch
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            state.samples_seen += global_batch * training_args.gradient_accumulation_steps
            if model_args.learnable_temperature:
                with torch.no_grad():
                    logit_scale.clamp_(0.0, unwrapped.config.max_logit_scale)
            progress.update(1)
            if state.global_step % training_args.logging_steps == 0 or state.global_step == total_steps:
                mean_loss = accelerator.reduce(window_loss, "mean").item() / max(window_batches, 1)
                elapsed = time.perf_counter() - window_start
                lrs = {}
                for g, name in zip(optimizer.param_groups, group_names):
                    lrs.setdefault(name.replace("_no_decay", ""), g["lr"])
                record = {
                    "type": "train", "step": state.global_step, "epoch": round(epoch + state.batches_in_epoch /
                                                                                 max(batches_per_epoch, 1), 4),
                    "loss": round(mean_loss, 6), "samples_per_second": round(window_samples / max(elapsed, 1e-9), 2),
                    "step_seconds": round(elapsed / max(window_batches / training_args.gradient_accumulation_steps, 1), 4),
                    **{f"lr/{k}": v for k, v in lrs.items()}, "logit_scale": round(float(logit_scale.detach()), 4),
                }  # fmt: skip
                if grad_norm is not None:
                    record["grad_norm"] = round(float(grad_norm), 4)
                jsonl.write(record)
                if training_args.trackers:
                    accelerator.log({k: v for k, v in record.items() if k not in ("type", "step")}, step=state.global_step)
                short = {"motion_tower": "lr_m", "text_tower": "lr_t", "heads": "lr_h"}
                progress.set_postfix(loss=f"{mean_loss:.4f}", **{short[k]: f"{v:.1e}" for k, v in lrs.items()},
                                     sps=f"{record['samples_per_second']:.0f}")  # fmt: skip
                window_loss.zero_()
                window_batches = window_samples = 0
                window_start = time.perf_counter()
            pause_t0 = time.perf_counter()  # evaluation and checkpoints do not count as training time
            if training_args.eval_strategy == "steps" and state.global_step % training_args.eval_steps == 0:
                run_validation("steps")
                set_train_mode(model, frozen)
            if training_args.checkpointing_steps and state.global_step % training_args.checkpointing_steps == 0:
                checkpoint("steps")
            pause = time.perf_counter() - pause_t0
            train_t0 += pause
            window_start += pause
            if state.global_step >= total_steps:
                stop = True
                break
        train_seconds += time.perf_counter() - train_t0
        pause_t0 = time.perf_counter()
        finished_epoch = state.batches_in_epoch >= len(train_dl)
        if finished_epoch:
            state.epoch = epoch + 1
            state.batches_in_epoch = 0
        if training_args.eval_strategy == "epoch" and (finished_epoch or stop):
            run_validation("epoch" if finished_epoch else "end")
        elif training_args.eval_strategy == "steps" and stop and state.global_step % training_args.eval_steps:
            run_validation("end")
        checkpoint("epoch" if finished_epoch else "end")
        set_train_mode(model, frozen)
        window_start += time.perf_counter() - pause_t0
        train_t0 = time.perf_counter()
    progress.close()

    # ---------------------------------------------------------------- best model and test
    if not best_dir.exists() or val_dl is None or state.best_metric is None:
        # no validation (no split, or eval_strategy='no'): the final model is the one kept
        state.best_step, state.best_epoch, state.best_metric = state.global_step, state.epoch, None
        logger.warning("no validation was run: the final model (step %d) is saved as %s", state.global_step, best_dir)
        save_best(last_val)
    accelerator.wait_for_everyone()

    test_flat: dict[str, float] = {}
    chance_flat: dict[str, float] = {}
    table = None
    if "test" in eval_sets and is_main:
        t = time.perf_counter()
        best_model = MotionPatchModel.from_pretrained(best_dir).to(accelerator.device).eval()
        test_rows, test_caps = eval_sets["test"]
        test_dl = DataLoader(
            MotionTextEvalDataset(eval_stores["test"], test_caps), batch_size=training_args.per_device_eval_batch_size,
            shuffle=False, collate_fn=MotionTextCollator(processor, model_args.text_max_length, training=False),
            num_workers=workers,
        )  # fmt: skip
        text, motion, _ = embed_split(_LocalGather(accelerator), best_model, test_dl)
        captions = [c[0] for c in test_caps]
        results, notes = retrieval_metrics(text, motion, captions, data_args.eval_protocols, training_args.seed)
        chance = chance_metrics(captions, list(results), seed=training_args.seed)
        test_flat, chance_flat = flatten_metrics(results), flatten_metrics(chance)
        table = results_table(results, chance)
        (best_dir / "test_results.json").write_text(json.dumps(
            {"split": data_args.test_split, "num_motions": len(captions), "checkpoint_step": state.best_step,
             "metrics": test_flat, "chance": chance_flat, "protocols": results, "notes": notes}, indent=1,
            default=_json_default))  # fmt: skip
        write_card(best_dir, test_flat, table, len(captions))
        jsonl.write({"type": "eval", "split": "test", "step": state.global_step, "best_step": state.best_step,
                     "seconds": round(time.perf_counter() - t, 2), **{f"test/{k}": round(v, 4) for k, v in test_flat.items()},
                     **{f"chance/{k}": round(v, 4) for k, v in chance_flat.items()}})  # fmt: skip
        if training_args.trackers:
            accelerator.log({f"test/{k}": v for k, v in test_flat.items()}, step=state.global_step)
        del best_model
    accelerator.wait_for_everyone()

    pushed = None
    if training_args.push_to_hub and is_main:
        pushed = push_folder(best_dir, training_args.push_to_hub, private=training_args.private,
                             token=training_args.hub_token)  # fmt: skip
        say(f"[motionpatch-train] uploaded {best_dir} to https://huggingface.co/{training_args.push_to_hub} ({pushed})")
    accelerator.wait_for_everyone()

    total_seconds = time.perf_counter() - t_start
    result = RunResult(
        output_dir=str(output_dir), best_dir=str(best_dir), global_step=state.global_step,
        epochs_completed=state.epoch, best_metric=state.best_metric, best_step=state.best_step,
        validation_metrics=last_val, test_metrics=test_flat, test_table=table, chance_metrics=chance_flat,
        train_seconds=round(train_seconds, 2), total_seconds=round(total_seconds, 2),
        samples_per_second=round(state.samples_seen / max(train_seconds, 1e-9), 2) if train_seconds else 0.0,
        pushed_to=pushed,
    )  # fmt: skip
    if is_main:
        from dataclasses import asdict

        (output_dir / SUMMARY_FILE).write_text(json.dumps(asdict(result), indent=1, default=_json_default))
        jsonl.write({"type": "summary", "step": state.global_step, "train_seconds": result.train_seconds,
                     "total_seconds": result.total_seconds})  # fmt: skip
        summary = [
            "[motionpatch-train] done",
            f"  steps     : {state.global_step} ({state.epoch} epochs), {result.train_seconds:.1f} s training, "
            f"{result.total_seconds:.1f} s total, {result.samples_per_second:.1f} samples/s",
            f"  best      : {training_args.metric_for_best_model} = "
            + (f"{state.best_metric:.3f}" if state.best_metric is not None else "n/a")
            + f" at step {state.best_step} (validation) -> {best_dir}",
        ]
        if table:
            summary += [f"  test      : {data_args.test_split} split, {len(eval_sets['test'][1])} motions", "", table, ""]
        say("\n".join(summary))
    if training_args.trackers:
        accelerator.end_training()
    return result


class _LocalGather:
    """The two methods of an Accelerator :func:`embed_split` needs, for a model evaluated on one process."""

    def __init__(self, accelerator):
        self._accelerator = accelerator

    def autocast(self):
        return self._accelerator.autocast()

    @staticmethod
    def gather_for_metrics(x):
        return x


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``motionpatch-train``."""
    try:
        model_args, data_args, training_args = parse_args(argv)
        train(model_args, data_args, training_args)
    except (ValueError, NonFiniteLossError) as e:
        if os.environ.get("MOTIONPATCH_DEBUG"):
            raise
        print(f"motionpatch-train: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
