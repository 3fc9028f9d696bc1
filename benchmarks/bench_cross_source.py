"""Generalisation across capture sources: train without Bandai-Namco dataset 1, test on its takes.

The default recipe (``training/configs/demo.yaml``) is trained on the embedded dataset-2 takes plus the synthetic
generator (``--dataset_options '{"real": ["ds2"]}'``; validation = held-out dataset-2 takes, which also calibrate the
match threshold), then every dataset-1 take of an action the training data covers is labelled zero-shot with the
pipeline among :data:`LABELS`. Dataset 1 was recorded in another session with other performers and
takes; nothing is tuned on it (labels, prompt and recipe are fixed before it is read). Rows, 3 seeds each:

* ``recipe``: body frame + augmentations (speed, clip length, heading, body size) + paraphrased captions + same-caption
  positives (the demo's settings);
* ``body frame only``: the recipe without the augmentations;
* ``frames as stored``: the recipe without the body frame and the augmentations.

    python benchmarks/bench_cross_source.py                 # 6 trainings, ~25 min on 2 cores
    python benchmarks/bench_cross_source.py --quick         # 2 steps per run, to check the script

Writes ``benchmarks/results/cross_source.json`` (every run) and prints the markdown table of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

#: dataset-1 contents -> the label a user would type (the actions that dataset 2 + the synthetic data cover)
TARGETS = {
    "walk": "walks", "run": "runs", "dash": "runs", "walk-back": "walks backwards", "bow": "bows",
    "punch": "punches", "kick": "kicks", "bye": "waves", "byebye": "waves",
}
#: candidate labels: the targets and distractors the training data also covers
LABELS = ("walks", "runs", "walks backwards", "jumps", "kicks", "bows", "waves", "squats", "punches", "sits down",
          "claps")
_NO_AUGMENTATION = ["--augment_speed", "1", "--augment_scale", "0", "--augment_heading_degrees", "0",
                    "--augment_crop_probability", "0"]
VARIANTS = {
    "recipe": [],
    "body frame only": _NO_AUGMENTATION,
    "frames as stored": ["--body_frame", "false", *_NO_AUGMENTATION],
}


def train_one(variant: str, seed: int, out: Path, quick: bool) -> str:
    from motionpatch_training.arguments import parse_args
    from motionpatch_training.train import train

    argv = ["demo", "--dataset_options", '{"real": ["ds2"]}', "--seed", str(seed), "--output_dir", str(out),
            "--disable_tqdm", "true", "--overwrite_output_dir", "true", *VARIANTS[variant]]
    if quick:
        argv += ["--max_steps", "2", "--synthetic_num_train", "128"]
    return train(*parse_args(argv)).best_dir


def evaluate(folder: str) -> dict:
    from transformers import pipeline

    import modeling_motionpatch  # noqa: F401
    from motionpatch_processing.embedded_bandai import load_embedded_clips

    clips = load_embedded_clips()
    rows = np.flatnonzero((clips.dataset == "ds1") & np.isin(clips.content, list(TARGETS)))
    truth = [TARGETS[str(clips.content[i])] for i in rows]
    classify = pipeline("zero-shot-motion-classification", model=folder)
    answers = classify([clips.clip(i) for i in rows], candidate_labels=list(LABELS), batch_size=16)
    top = [a[0]["label"] for a in answers]
    per_label = {
        label: {"takes": sum(t == label for t in truth), "correct": sum(t == p == label for t, p in zip(truth, top))}
        for label in sorted(set(truth))
    }
    return {
        "takes": len(rows),
        "top1": float(np.mean([t == p for t, p in zip(truth, top)])),
        "confident_and_right": float(np.mean([t == a[0]["label"] and bool(a[0]["match"]) for t, a in zip(truth, answers)])),
        "per_label": per_label,
        "majority": max(Counter(truth).values()) / len(truth),
        "chance": 1 / len(LABELS),
        "match_threshold": classify.model.config.match_threshold,
    }


def table(runs: list[dict]) -> str:
    lines = ["| training | top-1 on dataset-1 takes (3 seeds) | confident and right | per seed |",
             "|---|---:|---:|---|"]
    for variant in VARIANTS:
        rs = [r for r in runs if r["variant"] == variant]
        if not rs:
            continue
        top1 = np.array([r["top1"] for r in rs]) * 100
        conf = np.array([r["confident_and_right"] for r in rs]) * 100
        lines.append(f"| {variant} | {top1.mean():.1f} ± {top1.std():.1f} | {conf.mean():.1f} ± {conf.std():.1f} | "
                     f"{', '.join(f'{x:.1f}' for x in top1)} |")
    first = runs[0]
    lines.append(f"| majority class ({max(first['per_label'], key=lambda k: first['per_label'][k]['takes'])}) | "
                 f"{first['majority'] * 100:.1f} | | |")
    lines.append(f"| chance (1 of {len(LABELS)}) | {first['chance'] * 100:.1f} | | |")
    labels = sorted(first["per_label"])
    lines += ["", "| training | " + " | ".join(f"{k} ({first['per_label'][k]['takes']})" for k in labels) + " |",
              "|---|" + "---:|" * len(labels)]
    for variant in VARIANTS:
        rs = [r for r in runs if r["variant"] == variant]
        if rs:
            cells = [np.mean([r["per_label"][k]["correct"] / r["per_label"][k]["takes"] for r in rs]) * 100 for k in labels]
            lines.append(f"| {variant} | " + " | ".join(f"{c:.0f} %" for c in cells) + " |")
    return "\n".join(lines)


def tables_from_results(path: Path, json_path: Path | None) -> int:
    """The tables of the recorded runs, headed by the recording's own command, date and machine (not this call's)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from timing import Report

    recorded = json.loads(path.read_text())
    runs = recorded["runs"]
    main_table, per_label = table(runs).split("\n\n")
    report = Report("cross_source")
    rel = path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path
    report.command = f"python benchmarks/bench_cross_source.py --from-results (tables of the runs recorded in {rel})"
    report.machine = {"recorded": f"the runs' own: {recorded['machine']}; last recording {recorded['date']} by "
                                  f"`{recorded['command']}`, {len(runs)} runs of "
                                  f"{sum(r['seconds'] for r in runs) / 60:.0f} min in all"}
    report.raw = recorded
    report.table("top1", f"Zero-shot labels of the dataset-1 takes, {len(runs)} trainings without dataset 1",
                 main_table)
    report.table("per_label", "Per action: share of the dataset-1 takes labelled correctly (mean over the seeds)",
                 per_label)
    report.write(json_path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--quick", action="store_true", help="2 training steps per run (checks the script only)")
    parser.add_argument("--append", action="store_true", help="add these runs to those already in --output")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "cross_source.json"))
    parser.add_argument("--from-results", action="store_true",
                        help="train nothing: print the tables of the runs recorded in --output (and --json them)")
    parser.add_argument("--json", type=Path, default=None, help="with --from-results: write the tables for run.py")
    args = parser.parse_args(argv)
    if args.from_results:
        return tables_from_results(Path(args.output), args.json)
    torch.set_num_threads(1)
    previous = json.loads(Path(args.output).read_text()) if args.append and Path(args.output).is_file() else None
    runs, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="motionpatch-cross-source-") as tmp:
        for variant in args.variants:
            for seed in args.seeds:
                t = time.perf_counter()
                best = train_one(variant, seed, Path(tmp) / f"{variant.replace(' ', '_')}-{seed}", args.quick)
                result = {"variant": variant, "seed": seed, **evaluate(best), "seconds": round(time.perf_counter() - t, 1)}
                runs.append(result)
                print(f"[cross-source] {variant} seed {seed}: top-1 {result['top1']:.3f} "
                      f"({result['seconds']:.0f} s)", flush=True)
    if previous is not None:
        runs = [r for r in previous["runs"] if r["variant"] not in args.variants] + runs
        runs.sort(key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"]))
    report = {
        "command": "python benchmarks/bench_cross_source.py" + (" --quick" if args.quick else ""),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "minutes": round((time.perf_counter() - t0) / 60, 1),
        "labels": list(LABELS),
        "targets": TARGETS,
        "runs": runs,
    }
    if not args.quick:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=1))
    print(table(runs))
    print(f"[cross-source] {len(runs)} runs in {report['minutes']} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
