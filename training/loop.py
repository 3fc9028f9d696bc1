"""The pieces of one training run, in the order :func:`.train.train` calls them.

:func:`build_run` loads the splits, builds the model, processor, loaders, optimizer and schedule and prepares them
with Accelerate into a :class:`Run` (the state every later phase reads); :func:`start_logs` resumes or starts the
logs; :func:`train_epochs` runs the epochs, each a loop of :func:`training_step` with logging, validation
(:func:`run_validation`, model selection into ``OUTPUT/best``) and checkpoints (:func:`save_training_checkpoint`);
:func:`evaluate_test`, :func:`push_best` and :func:`finish` close the run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from modeling_motionpatch import MotionPatchModel, MotionPatchProcessor
from modeling_motionpatch.apps.folder_checks import record_processor
from modeling_motionpatch.apps.atomic_folder import replace_folder
from modeling_motionpatch.apps.retrieval_metrics import calibrate_match_threshold

from .arguments import DataArguments, ModelArguments, TrainingArguments, args_to_dict
from .card import build_model_card, push_folder
from .checkpointing import TrainerState, save_checkpoint
from .data import (
    Augmentation,
    EpochSampler,
    MotionStore,
    MotionTextCollator,
    MotionTextEvalDataset,
    MotionTextTrainDataset,
    TrainingData,
    build_feature_extractor,
    captioned_rows,
    load_training_data,
    select_rows,
    split_fps,
)
from .encode import json_default
from .evaluation import (
    block_loss,
    chance_levels,
    embed_split,
    flatten_metrics,
    results_table,
    retrieval_metrics,
)
from .losses import ClipLoss
from .model_factory import (
    GROUPS,
    apply_freezing,
    build_model,
    build_optimizer,
    build_tokenizer,
    parameter_group_of,
    set_train_mode,
)

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
    """What :func:`.train.train` returns (also written to ``summary.json``)."""

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



def enable_checkpointing(model) -> None:
    """Activation (gradient) checkpointing, non-reentrant, by the name the installed transformers has: from 5.23
    ``activation_checkpointing_enable`` (``gradient_checkpointing_enable`` is then a deprecated alias)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def write_atomically(path: Path, content) -> None:
    """Write ``path`` through a temporary sibling renamed into place: a failed write (full disk, kill) leaves the
    previous file or none, never a truncated one. ``content`` is the text, or a function that writes a given path."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if callable(content):
            content(tmp)
        else:
            tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
            fh.write(json.dumps(record, default=json_default) + "\n")


# ---------------------------------------------------------------------------
# what a run is made of
# ---------------------------------------------------------------------------
@dataclass
class Splits:
    """The training split and the evaluation splits, their motions cached as float32 arrays."""

    data: TrainingData
    train_store: MotionStore
    train_captions: list[list[str]]
    eval_sets: dict[str, tuple[Any, list[list[str]]]]  # role ("validation" / "test") -> (rows, captions)
    eval_stores: dict[str, MotionStore]
    input_fps: float
    cache_seconds: float

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_store), **{role: len(store) for role, store in self.eval_stores.items()}}


@dataclass
class Schedule:
    """Batch and step counts of the run."""

    global_batch: int  # pairs per micro-batch over all processes
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    num_epochs: int
    warmup: int


@dataclass
class Run:
    """Everything the phases of a run share: arguments, the prepared objects, the trainer state and the logs."""

    model_args: ModelArguments
    data_args: DataArguments
    training_args: TrainingArguments
    accelerator: Any
    splits: Splits
    schedule: Schedule
    model: Any  # prepared (possibly wrapped) MotionPatchModel
    processor: MotionPatchProcessor
    model_notes: list[str]
    stats_note: str
    frozen: list[str]
    sampler: EpochSampler
    train_dl: Any
    val_dl: Any
    optimizer: Any
    scheduler: Any
    group_names: list[str]
    state: TrainerState
    loss_fn: ClipLoss
    jsonl: JsonlLog
    run_config: dict[str, Any] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)
    last_val_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_val_embeds: tuple[torch.Tensor, torch.Tensor] | None = None

    def __post_init__(self):
        self.unwrapped = self.accelerator.unwrap_model(self.model)
        self.logit_scale = self.unwrapped.logit_scale

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def output_dir(self) -> Path:
        return Path(self.training_args.output_dir)

    @property
    def best_dir(self) -> Path:
        return self.output_dir / BEST_DIR

    def say(self, msg: str) -> None:
        """Print on the main process."""
        if self.is_main:
            print(msg, flush=True)


# ---------------------------------------------------------------------------
# set up
# ---------------------------------------------------------------------------
def load_splits(accelerator, data_args: DataArguments, training_args: TrainingArguments) -> Splits:
    """Load the dataset once, keep the captioned rows of each split and cache their motions."""
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
    if data_args.body_frame:  # once, before the statistics: training augments clips already in the body frame
        train_store = train_store.to_body_frame(data.skeleton)
    eval_stores = {role: MotionStore.from_dataset(rows) for role, (rows, _) in eval_sets.items()}
    return Splits(data, train_store, train_captions, eval_sets, eval_stores, input_fps, time.perf_counter() - t0)


def _check_batch_fits(splits: Splits, num_processes: int, data_args: DataArguments, training_args: TrainingArguments) -> None:
    global_batch = training_args.per_device_train_batch_size * num_processes
    if len(splits.train_store) < global_batch:
        raise ValueError(
            f"the batch size is larger than the dataset: {num_processes} process(es) x "
            f"per_device_train_batch_size {training_args.per_device_train_batch_size} = {global_batch} pairs per step, "
            f"but the {data_args.train_split!r} split has {len(splits.train_store)} captioned motions. Lower "
            "--per_device_train_batch_size or use more data."
        )


def build_loaders(accelerator, splits: Splits, processor, model_args: ModelArguments, data_args: DataArguments,
                  training_args: TrainingArguments) -> tuple[EpochSampler, DataLoader, dict[str, DataLoader]]:
    """The training loader (per-epoch sampler, random caption, crop and mirror) and one loader per eval split."""
    seed = training_args.seed
    sampler = EpochSampler(len(splits.train_store), seed, shuffle=True)
    train_dataset = MotionTextTrainDataset(
        splits.train_store, splits.train_captions, seed, splits.data.skeleton, data_args.mirror_probability,
        Augmentation.from_args(data_args, processor.feature_extractor.frames_per_patch),
    )
    workers = data_args.dataloader_num_workers
    pin = data_args.dataloader_pin_memory and accelerator.device.type == "cuda"
    train_dl = DataLoader(
        train_dataset,
        batch_size=training_args.per_device_train_batch_size,
        sampler=sampler,
        collate_fn=MotionTextCollator(processor, model_args.text_max_length, training=True, seed=seed,
                                      body_frame_done=data_args.body_frame),
        drop_last=True,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched by iter()
    )
    eval_dls = {}
    for role, (_, caps) in splits.eval_sets.items():
        eval_dls[role] = DataLoader(
            MotionTextEvalDataset(splits.eval_stores[role], caps),
            batch_size=training_args.per_device_eval_batch_size,
            shuffle=False,
            collate_fn=MotionTextCollator(processor, model_args.text_max_length, training=False),
            num_workers=workers,
            pin_memory=pin,
            generator=torch.Generator().manual_seed(seed),
        )
    return sampler, train_dl, eval_dls


def plan_schedule(num_pairs: int, num_processes: int, training_args: TrainingArguments) -> Schedule:
    """Steps per epoch, total steps and epochs (``max_steps`` wins over ``num_train_epochs``) and warm-up steps."""
    global_batch = training_args.per_device_train_batch_size * num_processes
    batches_per_epoch = num_pairs // global_batch  # drop_last: full global batches only
    steps_per_epoch = math.ceil(batches_per_epoch / training_args.gradient_accumulation_steps)
    if training_args.max_steps > 0:
        total_steps = training_args.max_steps
        num_epochs = math.ceil(total_steps / steps_per_epoch)
    else:
        num_epochs = training_args.num_train_epochs
        total_steps = num_epochs * steps_per_epoch
    warmup = training_args.warmup_steps or math.ceil(training_args.warmup_ratio * total_steps)
    return Schedule(global_batch, batches_per_epoch, steps_per_epoch, total_steps, num_epochs, warmup)


def build_run(accelerator, model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> Run:
    """Data, model, processor, loaders, AdamW + schedule, all prepared by ``accelerator``; the trainer state."""
    splits = load_splits(accelerator, data_args, training_args)
    _check_batch_fits(splits, accelerator.num_processes, data_args, training_args)
    tokenizer = build_tokenizer(model_args)
    model, model_notes = build_model(model_args, data_args.max_frames)
    rows = model.config.frames_per_patch  # the batches do not warn about short clips: they are counted here, once
    short = {role: int((store.lengths < rows).sum()) for role, store in (("train", splits.train_store), *splits.eval_stores.items())}
    if any(short.values()):
        splits.data.notes.append(f"clips shorter than one patch row ({rows} frames), padded with the mean pose: "
                                 + ", ".join(f"{n} {role}" for role, n in short.items() if n))
    frozen = apply_freezing(model, model_args)
    if model_args.gradient_checkpointing:
        enable_checkpointing(model)
    feature_extractor, stats_note = build_feature_extractor(
        splits.data, splits.train_store, data_args.statistics, model.config, data_args.fps, splits.input_fps,
        data_args.body_frame,
    )
    processor = MotionPatchProcessor(feature_extractor, tokenizer)
    record_processor(model.config, processor)  # config.json records the skeleton; a mismatched pairing then fails
    sampler, train_dl, eval_dls = build_loaders(accelerator, splits, processor, model_args, data_args, training_args)

    optimizer = build_optimizer(model, training_args)
    group_names = [g["name"] for g in optimizer.param_groups]
    schedule = plan_schedule(len(splits.train_store), accelerator.num_processes, training_args)
    scheduler = get_scheduler(
        training_args.lr_scheduler_type, optimizer, num_warmup_steps=schedule.warmup,
        num_training_steps=schedule.total_steps,
    )
    val_dl = eval_dls.get("validation")
    prepared = accelerator.prepare(model, optimizer, train_dl, scheduler, *([val_dl] if val_dl is not None else []))
    model, optimizer, train_dl, scheduler = prepared[:4]
    if val_dl is not None:
        val_dl = prepared[4]
    state = TrainerState()
    accelerator.register_for_checkpointing(state)
    return Run(
        model_args=model_args, data_args=data_args, training_args=training_args, accelerator=accelerator,
        splits=splits, schedule=schedule, model=model, processor=processor, model_notes=model_notes,
        stats_note=stats_note, frozen=frozen, sampler=sampler, train_dl=train_dl, val_dl=val_dl,
        optimizer=optimizer, scheduler=scheduler, group_names=group_names, state=state,
        loss_fn=ClipLoss(local_loss=training_args.local_loss, gather_with_grad=training_args.gather_with_grad),
        jsonl=JsonlLog(Path(training_args.output_dir) / LOG_FILE, accelerator.is_main_process),
    )


def _tracker_config(config: dict[str, Any]) -> dict[str, Any]:
    """Trackers (TensorBoard hparams) take scalars and strings only."""
    out = {}
    for k, v in config.items():
        out[k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def start_logs(run: Run, resume_path: Path | None) -> None:
    """Resume from ``resume_path`` (state, RNGs, log) or start a new log; save the arguments; print the setup."""
    ta, accelerator, output_dir = run.training_args, run.accelerator, run.output_dir
    if resume_path is not None:
        accelerator.load_state(str(resume_path))
        run.jsonl.truncate_after(run.state.global_step)
        run.say(f"[motionpatch-train] resumed from {resume_path}: step {run.state.global_step}, epoch "
                f"{run.state.epoch}, {run.state.batches_in_epoch} batches into it")
        run.jsonl.write({"type": "resume", "step": run.state.global_step, "checkpoint": str(resume_path)})
    elif run.is_main and (output_dir / LOG_FILE).exists():
        (output_dir / LOG_FILE).unlink()

    run.run_config = args_to_dict(run.model_args, run.data_args, ta)
    if run.is_main:
        write_atomically(output_dir / "training_args.yaml", yaml.safe_dump(run.run_config, sort_keys=False))
    if ta.trackers:
        init_kwargs = {"wandb": {"name": ta.run_name or output_dir.name}}
        accelerator.init_trackers(ta.run_name or output_dir.name or "motionpatch",
                                  config=_tracker_config(run.run_config), init_kwargs=init_kwargs)
    run.say("\n".join(describe_run(run)))
    for n in run.splits.data.notes:
        run.say(f"  note      : {n}")


def describe_run(run: Run) -> list[str]:
    """The printed configuration block: data, splits, model, parameters per group, batch, schedule, device."""
    ta, ma, sc, splits, accelerator = run.training_args, run.model_args, run.schedule, run.splits, run.accelerator
    data, fe = splits.data, run.processor.feature_extractor
    n_params = {g: 0 for g in GROUPS}
    n_train = {g: 0 for g in GROUPS}
    for name, p in run.unwrapped.named_parameters():
        g = parameter_group_of(name)
        n_params[g] += p.numel()
        n_train[g] += p.numel() if p.requires_grad else 0
    lr_of = {"motion_tower": ta.learning_rate_motion, "text_tower": ta.learning_rate_text,
             "heads": ta.learning_rate_heads}
    return [
        "[motionpatch-train] configuration",
        f"  data      : {data.pretty_name} ({data.name}); skeleton {data.skeleton.name} ({data.skeleton.num_joints} "
        f"joints); {splits.input_fps:g} fps in, {fe.fps:g} fps model",
        "  splits    : " + ", ".join(f"{k} {v}" for k, v in splits.sizes.items())
        + f" (cached as float32 arrays in {splits.cache_seconds:.2f} s)",
        f"  captions  : {data.captions_kind}",
        f"  stats     : {run.stats_note}",
        *[f"  model     : {n}" for n in run.model_notes],
        "  params    : " + ", ".join(
            f"{g} {n_params[g] / 1e6:.2f}M" + (" (frozen)" if n_train[g] == 0 else f" lr {lr_of[g]:g}") for g in GROUPS
        ),
        f"  batch     : {ta.per_device_train_batch_size} x {accelerator.num_processes} process(es) x "
        f"{ta.gradient_accumulation_steps} accumulation = "
        f"{sc.global_batch * ta.gradient_accumulation_steps} pairs/step; {sc.batches_per_epoch} batches/epoch "
        f"({len(splits.train_store) - sc.batches_per_epoch * sc.global_batch} pairs left out per epoch, a different "
        "random subset each epoch)",
        f"  schedule  : {sc.total_steps} steps ({sc.num_epochs} epochs), {ta.lr_scheduler_type} with {sc.warmup} "
        f"warm-up steps; temperature {ma.temperature:g} "
        f"({'learnable' if ma.learnable_temperature else 'fixed'})",
        f"  device    : {accelerator.device} x {accelerator.num_processes} ({accelerator.distributed_type}), "
        f"precision {ta.mixed_precision}, torch threads {torch.get_num_threads()}",
        f"  output    : {run.output_dir}",
    ]


# ---------------------------------------------------------------------------
# the epochs and the step
# ---------------------------------------------------------------------------
@dataclass
class _Window:
    """Loss and throughput since the last ``train`` log record."""

    loss: torch.Tensor
    batches: int = 0
    samples: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, loss: torch.Tensor, samples: int) -> None:
        self.loss += loss
        self.batches += 1
        self.samples += samples

    def reset(self) -> None:
        self.loss.zero_()
        self.batches = self.samples = 0
        self.start = time.perf_counter()


@dataclass
class _Loop:
    """What the epoch loop carries from step to step: progress bar, log window, clock, last gradient norm."""

    progress: Any
    window: _Window
    trainable: list[torch.nn.Parameter]
    grad_norm: Any = None
    train_seconds: float = 0.0
    train_t0: float = field(default_factory=time.perf_counter)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Validation and checkpoints do not count as training time (nor as the log window's)."""
        t0 = time.perf_counter()
        yield
        pause = time.perf_counter() - t0
        self.train_t0 += pause
        self.window.start += pause


def train_epochs(run: Run) -> float:
    """Train from the state's position to the last step; returns the training seconds (pauses left out)."""
    state, sc = run.state, run.schedule
    loop = _Loop(
        progress=tqdm(total=sc.total_steps, initial=state.global_step, desc="training", dynamic_ncols=True,
                      leave=True, disable=not run.is_main or run.training_args.disable_tqdm),
        window=_Window(torch.zeros((), device=run.accelerator.device)),
        trainable=[p for p in run.model.parameters() if p.requires_grad],
    )
    stop = state.global_step >= sc.total_steps
    set_train_mode(run.model, run.frozen)
    for epoch in range(state.epoch, sc.num_epochs):
        if stop:
            break
        stop = train_epoch(run, loop, epoch)
        loop.train_seconds += time.perf_counter() - loop.train_t0
        with loop.paused():
            end_epoch(run, epoch, stop)
        loop.train_t0 = time.perf_counter()
    loop.progress.close()
    return loop.train_seconds


def train_epoch(run: Run, loop: _Loop, epoch: int) -> bool:
    """One epoch, or what a resumed run has left of it; returns whether the run reached its last step."""
    state, accelerator = run.state, run.accelerator
    run.sampler.start_epoch(epoch)
    skip = state.batches_in_epoch if epoch == state.epoch else 0
    state.epoch = epoch
    state.batches_in_epoch = skip
    loader = accelerator.skip_first_batches(run.train_dl, skip) if skip else run.train_dl
    set_train_mode(run.model, run.frozen)
    for batch in loader:
        loss = training_step(run, loop, batch, epoch)
        state.batches_in_epoch += 1
        loop.window.add(loss, run.schedule.global_batch)
        if not accelerator.sync_gradients:
            continue
        after_optimizer_step(run, loop, epoch)
        if state.global_step >= run.schedule.total_steps:
            return True
    return False


def training_step(run: Run, loop: _Loop, batch: dict[str, Any], epoch: int) -> torch.Tensor:
    """Forward, contrastive loss, backward, clipping, optimizer and scheduler step of one micro-batch.

    Under ``accelerator.accumulate`` the optimizer only steps every ``gradient_accumulation_steps`` micro-batches.
    Returns the detached loss; a non-finite loss stops the run before it is applied.
    """
    accelerator, ta = run.accelerator, run.training_args
    batch.pop("sample_index", None)
    keys = batch.pop("caption_key", None)
    with accelerator.accumulate(run.model):
        out = run.model(**batch)
        loss = run.loss_fn(out.motion_embeds, out.text_embeds, run.logit_scale,
                           keys if ta.same_caption_positives else None)
        _stop_if_not_finite(run, loop, loss, epoch)
        accelerator.backward(loss)
        if accelerator.sync_gradients and ta.max_grad_norm > 0:
            loop.grad_norm = accelerator.clip_grad_norm_(loop.trainable, ta.max_grad_norm)
        run.optimizer.step()
        if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
            run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def _stop_if_not_finite(run: Run, loop: _Loop, loss: torch.Tensor, epoch: int) -> None:
    accelerator, state = run.accelerator, run.state
    finite = torch.isfinite(loss.detach())
    if accelerator.num_processes > 1:
        finite = accelerator.reduce(finite.float(), "sum") == accelerator.num_processes
    if bool(finite):
        return
    value = accelerator.gather(loss.detach()[None]).tolist()
    run.jsonl.write({"type": "error", "step": state.global_step, "epoch": epoch, "loss": value})
    last = state.last_checkpoint
    loop.progress.close()
    if run.training_args.trackers:
        accelerator.end_training()
    raise NonFiniteLossError(
        f"the training loss is not finite ({value}) at epoch {epoch}, optimizer step "
        f"{state.global_step + 1} (micro-batch {state.batches_in_epoch + 1} of the epoch); stopped before "
        "applying it. The last good checkpoint is "
        + (f"{last} (resume with --resume_from_checkpoint latest)" if last else
           "none - no checkpoint had been written yet")
        + ". Try lower learning rates, --max_grad_norm 1.0, --mixed_precision bf16 instead of fp16, "
        "or check the data for extreme values."
    )


def after_optimizer_step(run: Run, loop: _Loop, epoch: int) -> None:
    """Count the step, clamp a learnable temperature, log, and validate / checkpoint when due."""
    state, ta = run.state, run.training_args
    state.global_step += 1
    state.samples_seen += run.schedule.global_batch * ta.gradient_accumulation_steps
    if run.model_args.learnable_temperature:
        with torch.no_grad():
            run.logit_scale.clamp_(0.0, run.unwrapped.config.max_logit_scale)
    loop.progress.update(1)
    if state.global_step % ta.logging_steps == 0 or state.global_step == run.schedule.total_steps:
        log_train_window(run, loop, epoch)
    with loop.paused():
        if ta.eval_strategy == "steps" and state.global_step % ta.eval_steps == 0:
            run_validation(run, "steps")
            set_train_mode(run.model, run.frozen)
        if ta.checkpointing_steps and state.global_step % ta.checkpointing_steps == 0:
            save_training_checkpoint(run, "steps")


def log_train_window(run: Run, loop: _Loop, epoch: int) -> None:
    """A ``train`` record (mean loss over processes and micro-batches since the last one, lrs, speed) and the bar."""
    state, ta, accelerator, window = run.state, run.training_args, run.accelerator, loop.window
    mean_loss = accelerator.reduce(window.loss, "mean").item() / max(window.batches, 1)
    elapsed = time.perf_counter() - window.start
    lrs = {}
    for g, name in zip(run.optimizer.param_groups, run.group_names):
        lrs.setdefault(name.replace("_no_decay", ""), g["lr"])
    record = {
        "type": "train", "step": state.global_step,
        "epoch": round(epoch + state.batches_in_epoch / max(run.schedule.batches_per_epoch, 1), 4),
        "loss": round(mean_loss, 6), "samples_per_second": round(window.samples / max(elapsed, 1e-9), 2),
        "step_seconds": round(elapsed / max(window.batches / ta.gradient_accumulation_steps, 1), 4),
        **{f"lr/{k}": v for k, v in lrs.items()}, "logit_scale": round(float(run.logit_scale.detach()), 4),
    }
    if loop.grad_norm is not None:
        record["grad_norm"] = round(float(loop.grad_norm), 4)
    run.jsonl.write(record)
    if ta.trackers:
        accelerator.log({k: v for k, v in record.items() if k not in ("type", "step")}, step=state.global_step)
    short = {"motion_tower": "lr_m", "text_tower": "lr_t", "heads": "lr_h"}
    loop.progress.set_postfix(loss=f"{mean_loss:.4f}", **{short[k]: f"{v:.1e}" for k, v in lrs.items()},
                              sps=f"{record['samples_per_second']:.0f}")
    window.reset()


def end_epoch(run: Run, epoch: int, stop: bool) -> None:
    """After an epoch (or the last step): advance the state, validate as the strategy says, checkpoint."""
    state, ta = run.state, run.training_args
    finished_epoch = state.batches_in_epoch >= len(run.train_dl)
    if finished_epoch:
        state.epoch = epoch + 1
        state.batches_in_epoch = 0
    if ta.eval_strategy == "epoch" and (finished_epoch or stop):
        run_validation(run, "epoch" if finished_epoch else "end")
    elif ta.eval_strategy == "steps" and stop and state.global_step % ta.eval_steps:
        run_validation(run, "end")
    save_training_checkpoint(run, "epoch" if finished_epoch else "end")
    set_train_mode(run.model, run.frozen)


def save_training_checkpoint(run: Run, where: str) -> None:
    """Save the full training state (atomic, rotated) and log it."""
    state = run.state
    path = save_checkpoint(run.accelerator, state, run.output_dir, run.training_args.save_total_limit)
    run.jsonl.write({"type": "checkpoint", "step": state.global_step, "epoch": state.epoch, "where": where,
                     "path": str(path)})
    hang = os.environ.get(HANG_ENV)
    if hang and int(hang) == state.global_step:
        print(f"MOTIONPATCH_TEST_CHECKPOINT_WRITTEN {state.global_step}", flush=True)
        time.sleep(3600)


# ---------------------------------------------------------------------------
# validation and model selection
# ---------------------------------------------------------------------------
def evaluate_validation(run: Run) -> dict[str, float]:
    """Retrieval metrics and the block loss on the validation split (``{}`` without one)."""
    if run.val_dl is None:
        return {}
    text, motion, _ = embed_split(run.accelerator, run.model, run.val_dl)
    run.last_val_embeds = (text, motion)
    captions = [c[0] for c in run.splits.eval_sets["validation"][1]]
    results, notes = retrieval_metrics(text, motion, captions, run.data_args.eval_protocols, run.training_args.seed)
    flat = flatten_metrics(results)
    flat["loss"] = block_loss(text, motion, float(run.logit_scale.detach().float()), run.schedule.global_batch)
    for n in notes:
        logger.info("validation: %s", n)
    run.last_val, run.last_val_results = flat, results
    return flat


def run_validation(run: Run, where: str) -> None:
    """Validate, keep the model when it is the best so far, and log / print the metrics."""
    state, ta = run.state, run.training_args
    t = time.perf_counter()
    metrics = evaluate_validation(run)
    if not metrics:
        return
    improved = select_best(run, metrics)
    key = ta.metric_for_best_model
    record = {"type": "eval", "split": "validation", "step": state.global_step, "epoch": state.epoch,
              "where": where, "best": improved, "seconds": round(time.perf_counter() - t, 2),
              **{f"val/{k}": round(v, 4) for k, v in metrics.items()}}
    run.jsonl.write(record)
    state.history.append({"step": state.global_step, "epoch": state.epoch, key: metrics.get(key)})
    if ta.trackers:
        run.accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=state.global_step)
    shown = [k for k in ("all/t2m/R@1", "all/t2m/R@5", "all/m2t/R@1", "all/m2t/R@5", "all/t2m/MedR") if k in metrics]
    msg = ", ".join(f"{k.split('/', 1)[1]} {metrics[k]:.2f}" for k in shown) or ", ".join(
        f"{k} {v:.3f}" for k, v in list(metrics.items())[:6])
    if run.is_main:
        tqdm.write(f"[validation] epoch {state.epoch} step {state.global_step}: {msg}; loss {metrics['loss']:.4f}"
                   + (" (best)" if improved else ""))


def select_best(run: Run, metrics: dict[str, float]) -> bool:
    """Whether ``metrics`` beat the best so far on ``metric_for_best_model``; if so, save the model as the best."""
    key, state = run.training_args.metric_for_best_model, run.state
    if not metrics:
        return False
    if key not in metrics:
        raise ValueError(
            f"metric_for_best_model {key!r} is not among the validation metrics {sorted(metrics)}; pick one of them."
        )
    value = float(metrics[key])
    greater_is_better = key != "loss"
    better = state.best_metric is None or (value > state.best_metric if greater_is_better else value < state.best_metric)
    if better:
        state.best_metric, state.best_step, state.best_epoch = value, state.global_step, state.epoch
        state.best_results = json.loads(json.dumps(run.last_val_results, default=json_default))
        save_best(run, metrics)
    return better


def calibrate_on_validation(run: Run) -> dict[str, Any] | None:
    """The model's ``match_threshold`` from the last validation embeddings: pairs of the same action (first label;
    without labels, the same first caption) are matches, all other pairs non-matches
    (:func:`~modeling_motionpatch.apps.retrieval_metrics.calibrate_match_threshold`). ``None`` when the split has only
    one action."""
    if run.last_val_embeds is None:
        return None
    text, motion = run.last_val_embeds
    rows, captions = run.splits.eval_sets["validation"]
    labels = rows["labels"] if "labels" in rows.column_names else None
    keys = [lab[0] if lab else cap[0] for lab, cap in zip(labels, captions)] if labels else [c[0] for c in captions]
    ids = np.unique(np.asarray(keys), return_inverse=True)[1]
    same = torch.as_tensor(ids[:, None] == ids[None, :])
    if bool(same.all()):
        return None
    result = calibrate_match_threshold(motion @ text.T, same, run.training_args.match_false_positive_rate)
    result["pairs_match_when"] = "same first label" if labels else "same first caption"
    return result


def save_best(run: Run, metrics: dict[str, float]) -> None:
    """Write weights (with the calibrated ``match_threshold``), processor, validation results, arguments and card to
    ``OUTPUT/best`` (atomic replace)."""
    state_dict = run.accelerator.get_state_dict(run.model)
    calibration = calibrate_on_validation(run)
    run.unwrapped.config.match_threshold = None if calibration is None else round(calibration["threshold"], 4)
    if run.is_main:
        tmp = run.output_dir / f".tmp-{BEST_DIR}"
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            run.unwrapped.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            run.processor.save_pretrained(tmp)
            (tmp / "validation_results.json").write_text(json.dumps(
                {"step": run.state.global_step, "epoch": run.state.epoch, "metrics": metrics,
                 "match_threshold": calibration}, indent=1))
            (tmp / "training_args.yaml").write_text(yaml.safe_dump(run.run_config, sort_keys=False))
            write_card(run, tmp, test_metrics=None, test_table=None, test_size=None)
            replace_folder(tmp, run.best_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed save (full disk...) leaves the previous best/ only
            raise
    run.accelerator.wait_for_everyone()


def _procedure(run: Run) -> str:
    """The model card's training-procedure sentence."""
    ta, state, num_processes = run.training_args, run.state, run.accelerator.num_processes
    return (
        f"{state.global_step} optimizer steps ({state.epoch} epochs) of AdamW (betas {ta.adam_beta1}, "
        f"{ta.adam_beta2}; weight decay {ta.weight_decay}) with learning rates motion tower "
        f"{ta.learning_rate_motion:g}, text tower {ta.learning_rate_text:g}, heads "
        f"{ta.learning_rate_heads:g}"
        + (f" (frozen: {', '.join(run.frozen)})" if run.frozen else "")
        + f", {ta.lr_scheduler_type} schedule with {run.schedule.warmup} warm-up steps, gradient clipping at "
        f"{ta.max_grad_norm:g}; global batch {run.schedule.global_batch * ta.gradient_accumulation_steps} "
        f"pairs ({num_processes} process(es)"
        + (", negatives gathered across processes" if num_processes > 1 else "")
        + f"), precision "
        f"{ta.mixed_precision}; one random caption per motion per epoch, random {run.unwrapped.config.max_frames}-frame crops"
        + (f", mirroring with probability {run.data_args.mirror_probability:g}" if run.data_args.mirror_probability else "")
        + f"; seed {ta.seed}."
    )


def write_card(run: Run, folder: Path, test_metrics, test_table, test_size) -> None:
    """The model card (``README.md``) of a saved best-model folder."""
    ta, state = run.training_args, run.state
    card = build_model_card(
        model_name=ta.push_to_hub.split("/")[-1] if ta.push_to_hub else f"motionpatch-{run.splits.data.name}",
        data=run.splits.data, model_args=run.model_args, data_args=run.data_args, training_args=ta,
        model_config=run.unwrapped.config, model_notes=run.model_notes, split_sizes=run.splits.sizes,
        procedure=_procedure(run),
        selection={"metric": ta.metric_for_best_model if state.best_metric is not None else None,
                   "epoch": state.best_epoch, "step": state.best_step, "fps": run.processor.feature_extractor.fps},
        test_metrics=test_metrics, test_table=test_table, test_size=test_size,
        validation_table=results_table(state.best_results) if state.best_results else None,
        repo_or_path=ta.push_to_hub or str(run.best_dir),
        training_config="`training_args.yaml` in this folder",
    )
    write_atomically(folder / "README.md", lambda tmp: card.save(str(tmp)))


def keep_final_model_if_unvalidated(run: Run) -> None:
    """Without validation (no split, or ``eval_strategy='no'``) the final model is the one kept as the best."""
    state = run.state
    if not run.best_dir.exists() or run.val_dl is None or state.best_metric is None:
        state.best_step, state.best_epoch, state.best_metric = state.global_step, state.epoch, None
        logger.warning("no validation was run: the final model (step %d) is saved as %s", state.global_step, run.best_dir)
        save_best(run, run.last_val)
    run.accelerator.wait_for_everyone()


# ---------------------------------------------------------------------------
# test, upload, summary
# ---------------------------------------------------------------------------
@dataclass
class HeldOutResults:
    """The best model's test metrics, the chance levels of the same protocols, and the printed table."""

    metrics: dict[str, float] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    table: str | None = None
    size: int = 0


class _LocalGather:
    """The two methods of an Accelerator :func:`embed_split` needs, for a model evaluated on one process."""

    def __init__(self, accelerator):
        self._accelerator = accelerator

    def autocast(self):
        return self._accelerator.autocast()

    @staticmethod
    def gather_for_metrics(x):
        return x


def evaluate_test(run: Run) -> HeldOutResults:
    """On the main process: the best model on the test split -> ``test_results.json``, the card, the log."""
    out = HeldOutResults()
    if "test" in run.splits.eval_sets and run.is_main:
        ta, state = run.training_args, run.state
        t = time.perf_counter()
        best_model = MotionPatchModel.from_pretrained(run.best_dir).to(run.accelerator.device).eval()
        _, test_caps = run.splits.eval_sets["test"]
        test_dl = DataLoader(
            MotionTextEvalDataset(run.splits.eval_stores["test"], test_caps), batch_size=ta.per_device_eval_batch_size,
            shuffle=False, collate_fn=MotionTextCollator(run.processor, run.model_args.text_max_length, training=False),
            num_workers=run.data_args.dataloader_num_workers,
        )
        text, motion, _ = embed_split(_LocalGather(run.accelerator), best_model, test_dl)
        captions = [c[0] for c in test_caps]
        results, notes = retrieval_metrics(text, motion, captions, run.data_args.eval_protocols, ta.seed)
        chance = chance_levels(captions, list(results), ta.seed)
        out = HeldOutResults(flatten_metrics(results), flatten_metrics(chance), results_table(results, chance), len(captions))
        write_atomically(run.best_dir / "test_results.json", json.dumps(
            {"split": run.data_args.test_split, "num_motions": len(captions), "checkpoint_step": state.best_step,
             "metrics": out.metrics, "chance": out.chance, "protocols": results, "notes": notes}, indent=1,
            default=json_default))
        write_card(run, run.best_dir, out.metrics, out.table, len(captions))
        run.jsonl.write({"type": "eval", "split": "test", "step": state.global_step, "best_step": state.best_step,
                         "seconds": round(time.perf_counter() - t, 2), **{f"test/{k}": round(v, 4) for k, v in out.metrics.items()},
                         **{f"chance/{k}": round(v, 4) for k, v in out.chance.items()}})
        if ta.trackers:
            run.accelerator.log({f"test/{k}": v for k, v in out.metrics.items()}, step=state.global_step)
        del best_model
    run.accelerator.wait_for_everyone()
    return out


def push_best(run: Run) -> str | None:
    """Upload ``OUTPUT/best`` with ``--push_to_hub user/name``; returns the commit URL."""
    ta, pushed = run.training_args, None
    if ta.push_to_hub and run.is_main:
        pushed = push_folder(run.best_dir, ta.push_to_hub, private=ta.private, token=ta.hub_token)
        run.say(f"[motionpatch-train] uploaded {run.best_dir} to https://huggingface.co/{ta.push_to_hub} ({pushed})")
    run.accelerator.wait_for_everyone()
    return pushed


def finish(run: Run, t_start: float, train_seconds: float, test: HeldOutResults, pushed: str | None) -> RunResult:
    """The :class:`RunResult`, written to ``summary.json`` and printed; closes the trackers."""
    state, ta = run.state, run.training_args
    result = RunResult(
        output_dir=str(run.output_dir), best_dir=str(run.best_dir), global_step=state.global_step,
        epochs_completed=state.epoch, best_metric=state.best_metric, best_step=state.best_step,
        validation_metrics=run.last_val, test_metrics=test.metrics, test_table=test.table, chance_metrics=test.chance,
        train_seconds=round(train_seconds, 2), total_seconds=round(time.perf_counter() - t_start, 2),
        samples_per_second=round(state.samples_seen / max(train_seconds, 1e-9), 2) if train_seconds else 0.0,
        pushed_to=pushed,
    )
    if run.is_main:
        write_atomically(run.output_dir / SUMMARY_FILE, json.dumps(asdict(result), indent=1, default=json_default))
        run.jsonl.write({"type": "summary", "step": state.global_step, "train_seconds": result.train_seconds,
                         "total_seconds": result.total_seconds})
        summary = [
            "[motionpatch-train] done",
            f"  steps     : {state.global_step} ({state.epoch} epochs), {result.train_seconds:.1f} s training, "
            f"{result.total_seconds:.1f} s total, {result.samples_per_second:.1f} samples/s",
            f"  best      : {ta.metric_for_best_model} = "
            + (f"{state.best_metric:.3f}" if state.best_metric is not None else "n/a")
            + f" at step {state.best_step} (validation) -> {run.best_dir}",
        ]
        if test.table:
            summary += [f"  test      : {run.data_args.test_split} split, {test.size} motions", "", test.table, ""]
        run.say("\n".join(summary))
    if ta.trackers:
        run.accelerator.end_training()
    return result
