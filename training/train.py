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

:func:`train` reads as that list: each phase is one function of :mod:`.loop`, which holds the run's state in a
:class:`.loop.Run`.
"""

from __future__ import annotations

import difflib
import errno
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, TorchDynamoPlugin, set_seed

from modeling_motionpatch.apps.retrieval_metrics import RECALL_AT

from .arguments import DataArguments, ModelArguments, TrainingArguments, parse_args
from .checkpointing import CHECKPOINT_DIR, clean_partial_checkpoints, list_checkpoints, resolve_resume_path
from .loop import (
    BEST_DIR,
    LOG_FILE,
    SUMMARY_FILE,
    NonFiniteLossError,
    RunResult,
    build_run,
    evaluate_test,
    finish,
    keep_final_model_if_unvalidated,
    push_best,
    start_logs,
    train_epochs,
)

logger = logging.getLogger("motionpatch_training")

__all__ = ["main", "train"]


def train(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> RunResult:
    """Run one training job (see the module docstring); returns a :class:`RunResult`."""
    t_start = time.perf_counter()
    resume_path = check_run_arguments(data_args, training_args)  # fail fast, before loading anything heavy
    accelerator = start_accelerator(training_args)
    run = build_run(accelerator, model_args, data_args, training_args)  # data, model, loaders, optimizer, schedule
    start_logs(run, resume_path)  # resume or start the log, print the configuration
    train_seconds = train_epochs(run)  # the steps, with validation / model selection and checkpoints
    keep_final_model_if_unvalidated(run)
    test = evaluate_test(run)
    pushed = push_best(run)
    return finish(run, t_start, train_seconds, test, pushed)


# ---------------------------------------------------------------------------
# set up
# ---------------------------------------------------------------------------
def check_run_arguments(data_args: DataArguments, training_args: TrainingArguments) -> Path | None:
    """Check what can be checked before any loading; returns the checkpoint to resume from (or ``None``)."""
    output_dir = Path(training_args.output_dir)
    _check_precision(training_args)
    resume_path = resolve_resume_path(training_args.resume_from_checkpoint, output_dir)
    earlier = earlier_run_outputs(output_dir)
    if resume_path is None and earlier and not training_args.overwrite_output_dir:
        held = "checkpoints" if list_checkpoints(output_dir) else "the outputs"
        raise ValueError(
            f"{output_dir} already holds {held} of an earlier run ({', '.join(p.name for p in earlier)}); pass "
            "--resume_from_checkpoint latest to continue it, --overwrite_output_dir to replace it, or choose another "
            "--output_dir."
        )
    _check_selection_metric(training_args.metric_for_best_model, data_args.eval_protocols)
    return resume_path


#: what a run writes at the top of ``--output_dir``: any of them marks the folder as holding an earlier run
RUN_OUTPUTS = (BEST_DIR, CHECKPOINT_DIR, LOG_FILE, SUMMARY_FILE)


def earlier_run_outputs(output_dir: Path) -> list[Path]:
    """The outputs of an earlier run in ``output_dir`` (``best/``, checkpoints, ``log.jsonl``, ``summary.json``)."""
    found = [output_dir / name for name in RUN_OUTPUTS if (output_dir / name).exists()]
    if output_dir / CHECKPOINT_DIR in found and not list_checkpoints(output_dir):
        found.remove(output_dir / CHECKPOINT_DIR)  # only leftovers of interrupted saves: removed at start-up anyway
    return found


def _remove_earlier_run(output_dir: Path) -> None:
    """``--overwrite_output_dir``: remove the earlier run's outputs, so that none of them (an old ``best/``, old
    checkpoints of later steps that rotation or ``latest`` would pick) mixes with the new run's."""
    for path in earlier_run_outputs(output_dir):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        logger.warning("--overwrite_output_dir: removed %s of an earlier run", path)


def check_output_writable(output_dir: Path) -> None:
    """Create ``output_dir`` and write (then remove) a small file there, so that a read-only folder or a full disk
    fails before any loading or training, not at the first save."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-test-") as fh:
        fh.write(b"0" * 4096)
        fh.flush()
        os.fsync(fh.fileno())


def start_accelerator(training_args: TrainingArguments) -> Accelerator:
    """The Accelerator, logging, threads, determinism and seed; a clean output folder on the main process."""
    accelerator = _make_accelerator(training_args)
    _setup_logging(accelerator.is_main_process)
    if training_args.torch_num_threads:
        torch.set_num_threads(training_args.torch_num_threads)
    if training_args.deterministic:
        torch.use_deterministic_algorithms(True)
    set_seed(training_args.seed)
    if accelerator.is_main_process:
        output_dir = Path(training_args.output_dir)
        check_output_writable(output_dir)
        if training_args.overwrite_output_dir and not training_args.resume_from_checkpoint:
            _remove_earlier_run(output_dir)
        removed = clean_partial_checkpoints(output_dir)
        if removed:
            logger.warning("removed incomplete checkpoint folders left by an interrupted save: %s", removed)
    accelerator.wait_for_everyone()
    return accelerator


def _setup_logging(is_main: bool) -> None:
    level = logging.INFO if is_main else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=level)
    logger.setLevel(level)
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
    names = ["loss"] + [f"{p}/rsum" for p in protocols] + [
        f"{p}/{d}/{m}" for p in protocols for d in ("t2m", "m2t") for m in [f"R@{k}" for k in RECALL_AT] + ["MedR", "MeanR"]
    ]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=3)
        raise ValueError(
            f"metric_for_best_model {key!r} is not a validation metric of eval_protocols {protocols}; choose e.g. "
            + ", ".join(repr(c) for c in (close or names[:4])) + "."
        )


def _make_accelerator(training_args: TrainingArguments) -> Accelerator:
    kwargs: dict[str, Any] = {}
    if training_args.torch_compile:
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
    except OSError as e:  # a read-only output folder, a full disk...: one line, not a traceback
        if os.environ.get("MOTIONPATCH_DEBUG"):
            raise
        print(f"motionpatch-train: error: {describe_os_error(e)}", file=sys.stderr)
        return 1
    return 0


_WRITE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                 errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                 errno.EDQUOT: "the disk quota is exceeded"}


def describe_os_error(error: OSError) -> str:
    """One line for an ``OSError``: what failed, on which path, and what to do when it is a write failure."""
    where = f" ({error.filename})" if error.filename else ""
    what = _WRITE_ERRNOS.get(error.errno)
    text = (
        f"cannot write the training outputs{where}: {what} ({error.strerror or error}). Free disk space, make "
        "--output_dir writable or choose another one, then run again (complete checkpoints and best/ are kept; "
        "--resume_from_checkpoint latest continues)."
        if what
        else f"{error.strerror or error}{where}."
    )
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
