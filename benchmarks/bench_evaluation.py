"""Real data end to end: train on Bandai-Namco (22 SMPL joints), evaluate retrieval and zero-shot classification,
then the cross-skeleton case (the Bandai BVH skeleton used natively), zero-shot and after a short fine-tune.

    python benchmarks/bench_evaluation.py --data ../shared/data/bandai-namco --work /tmp/mp_eval [--epochs 8]
    python benchmarks/bench_evaluation.py ... --steps evaluate,engines      # re-run some steps

Steps (each runs the project's console scripts in a subprocess, timed; results go to WORK/bench_evaluation.json):

``prepare``
    * ``WORK/data/bn-h22``: ``ds2_h22_20fps.npz`` (2,902 takes) split by take (take % 10: 9 validation, 0 test, else
      train), with the **take-001** clips removed from train so that they are held out from training;
    * ``WORK/data/bn-h22-take001``: those 70 take-001 clips (10 contents x 7 styles), 22 joints (split ``test``);
    * ``WORK/data/bn-native-ds2s``: ``ds2-bvh-sample`` - the same 70 takes from their BVH files with the native Bandai
      hierarchy (22 BVH joints incl. ``joint_Root``, chains derived from the hierarchy), via ``motionpatch-prepare
      bandai-namco --variant native``;
    * ``WORK/data/bn-native-ds1``: ``ds1-bvh`` (174 takes of other contents/styles), native skeleton: fine-tuning data.
``train``       ``motionpatch-train bandai-namco --dataset WORK/data/bn-h22 --num_train_epochs E`` (the shipped config).
``evaluate``    ``motionpatch-evaluate`` (all, small_batches) and ``motionpatch-zero-shot`` (content = labels[0], style =
                labels[1]) on the test split; the same on the 70 take-001 clips (22 joints); then zero-shot on the
                native skeleton (``--skeleton-from-dataset``, all 70 clips).
``finetune``    ``motionpatch-train --model_name_or_path WORK/runs/h22/best --dataset WORK/data/bn-native-ds1`` (text
                tower frozen), then the same evaluations on the native 70 clips with the fine-tuned model.
``finetune_styles``  the 70 native ds2 clips split by style (train: active, elderly, exhausted, feminine = 40 clips;
                test: masculine, normal, youthful = 30 clips): zero-shot on the 30 test clips, then a fine-tune on the
                40 (same vocabulary, native skeleton, no validation split: the last model) and the same evaluation.
``engines``     zero-shot on the test split with ``--engine batched`` vs ``--engine pipeline`` (same numbers; time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = ("prepare", "train", "evaluate", "finetune", "finetune_styles", "engines")
#: styles of the native ds2 clips used to fine-tune in ``finetune_styles``; the other three are the test split
FINETUNE_STYLES = ("active", "elderly", "exhausted", "feminine")


def run(cmd: list[str], log: Path, record: dict, name: str) -> float:
    """Run one command (stdout/stderr appended to ``log``), record its wall time; stop on failure."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    print(f"[bench] {name}: {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with log.open("a") as fh:
        fh.write(f"\n===== {name}: {shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(REPO), check=False)
    seconds = time.perf_counter() - t0
    record.setdefault("commands", {})[name] = {"command": shlex.join(cmd), "seconds": round(seconds, 1),
                                               "returncode": proc.returncode}
    print(f"[bench] {name}: {seconds:.1f} s, exit {proc.returncode}", flush=True)
    if proc.returncode:
        raise SystemExit(f"{name} failed (exit {proc.returncode}); see {log}")
    return seconds


def prepare(data: Path, work: Path, log: Path, record: dict) -> None:
    import datasets
    from motionpatch_processing.bandai_npz import dataset_from_npz
    from motionpatch_processing.clip_splits import take_number
    from motionpatch_processing.io import PrepareReport, save_prepared
    from modeling_motionpatch.apps.motion_statistics import compute_dataset_statistics

    datasets.disable_progress_bars()
    t0 = time.perf_counter()
    dd, skel = dataset_from_npz(data / "ds2_h22_20fps.npz", splits="take")
    train = dd["train"]
    takes = [take_number(s) for s in train["id"]]
    held = train.select([i for i, t in enumerate(takes) if t == 1])
    dd["train"] = train.select([i for i, t in enumerate(takes) if t != 1])
    for name, dset, message in (
        ("bn-h22", dd, "split by take; take-001 clips removed from train (held out for the cross-skeleton check)"),
        ("bn-h22-take001", datasets.DatasetDict({"test": held}), "the 70 take-001 clips of ds2 (22 SMPL joints)"),
    ):
        report = PrepareReport(source="bandai-namco", root=str(data / "ds2_h22_20fps.npz"), skeleton=skel, fps=20.0,
                               messages=[message])
        stats = compute_dataset_statistics(dd, "train")  # the 22-joint training statistics for both
        save_prepared(dset, work / "data" / name, skel, statistics=stats, report=report, overwrite=True)
    record.setdefault("commands", {})["prepare_h22"] = {"seconds": round(time.perf_counter() - t0, 1),
                                                        "command": "dataset_from_npz + save_prepared (this script)"}
    record["counts"] = {"bn-h22": {k: len(v) for k, v in dd.items()}, "bn-h22-take001": len(held)}
    for name, root in (("bn-native-ds2s", "ds2-bvh-sample"), ("bn-native-ds1", "ds1-bvh")):
        run(["motionpatch-prepare", "bandai-namco", "--variant", "native", "--root", str(data / root), "--output",
             str(work / "data" / name), "--overwrite"], log, record, f"prepare_{name}")


def prepare_styles(work: Path) -> Path:
    """``WORK/data/bn-native-ds2s-styles``: the 70 native ds2 clips, train = :data:`FINETUNE_STYLES` (40 clips), test =
    the other styles (30 clips); statistics over the train split."""
    import datasets
    from motionpatch_processing.io import PrepareReport, load_prepared, save_prepared
    from modeling_motionpatch.apps.motion_statistics import compute_dataset_statistics

    datasets.disable_progress_bars()
    src = load_prepared(work / "data" / "bn-native-ds2s")
    rows = datasets.concatenate_datasets([src.dataset[s] for s in src.dataset])
    styles = [labels[1] for labels in rows["labels"]]
    dd = datasets.DatasetDict({
        "train": rows.select([i for i, st in enumerate(styles) if st in FINETUNE_STYLES]),
        "test": rows.select([i for i, st in enumerate(styles) if st not in FINETUNE_STYLES]),
    })
    out = work / "data" / "bn-native-ds2s-styles"
    report = PrepareReport(source="bandai-namco", root=str(src.path), skeleton=src.skeleton, fps=20.0,
                           messages=[f"native ds2 take-001 clips; train styles {FINETUNE_STYLES}, test the others"])
    save_prepared(dd, out, src.skeleton, statistics=compute_dataset_statistics(dd, "train"), report=report,
                  overwrite=True)
    return out


def summary_of(path: Path) -> dict:
    res = json.loads(path.read_text())
    if res["task"] == "text-motion-retrieval":
        keep = {k: round(v, 2) for k, v in res["metrics"].items() if k.split("/")[-1] in ("R@1", "R@5", "R@10", "MedR")}
        chance = {k: round(v, 2) for k, v in res["chance"].items() if k.split("/")[-1] in ("R@1", "R@5", "R@10", "MedR")}
        return {"n": res["counts"]["evaluated"], "distinct_captions": res["counts"]["distinct_first_captions"],
                "metrics": keep, "chance": chance, "skeleton": res["processor"]["skeleton"],
                "seconds": res["seconds"]}
    return {"n": res["counts"]["evaluated"], "classes": res["counts"]["num_candidates"],
            "metrics": {k: round(v, 2) for k, v in res["metrics"].items()},
            "chance": {k: round(v, 2) for k, v in res["chance"].items()},
            "majority": {k: round(v, 2) for k, v in res["majority"].items()},
            "skeleton": res["processor"]["skeleton"], "seconds": res["seconds"]}


def evaluations(model: Path, tag: str, work: Path, log: Path, record: dict, native_only: bool = False,
                styles_only: bool = False) -> None:
    out = work / "results"
    out.mkdir(exist_ok=True)
    jobs = []
    if styles_only:  # the 30 native clips of the held-out styles
        data = str(work / "data" / "bn-native-ds2s-styles")
        jobs = [
            ("retrieval_native_styles", ["motionpatch-evaluate", "--dataset", data, "--split", "test",
                                         "--skeleton-from-dataset", "--protocols", "all,small_batches"]),
            ("content_native_styles", ["motionpatch-zero-shot", "--dataset", data, "--split", "test", "--label-index",
                                       "0", "--skeleton-from-dataset"]),
        ]
        native_only = True
    if not native_only:
        test = str(work / "data" / "bn-h22")
        take1 = str(work / "data" / "bn-h22-take001")
        jobs += [
            ("retrieval_test", ["motionpatch-evaluate", "--dataset", test, "--split", "test", "--update-model-card"]),
            ("content_test", ["motionpatch-zero-shot", "--dataset", test, "--split", "test", "--label-index", "0"]),
            ("style_test", ["motionpatch-zero-shot", "--dataset", test, "--split", "test", "--label-index", "1"]),
            ("retrieval_take001", ["motionpatch-evaluate", "--dataset", take1, "--split", "test"]),
            ("content_take001", ["motionpatch-zero-shot", "--dataset", take1, "--split", "test", "--label-index", "0"]),
        ]
    native = str(work / "data" / "bn-native-ds2s")
    flag = ["--skeleton-from-dataset"]
    jobs += [] if styles_only else [
        ("retrieval_native", ["motionpatch-evaluate", "--dataset", native, "--split", "all", *flag]),
        ("content_native", ["motionpatch-zero-shot", "--dataset", native, "--split", "all", "--label-index", "0", *flag]),
    ]
    for name, cmd in jobs:
        path = out / f"{tag}_{name}.json"
        run([*cmd, "--model", str(model), "--output", str(path)], log, record, f"{tag}_{name}")
        record.setdefault("results", {})[f"{tag}_{name}"] = summary_of(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "bandai-namco")
    p.add_argument("--work", type=Path, default=Path("/tmp/mp_eval"))
    p.add_argument("--epochs", type=int, default=8, help="training epochs on the 22-joint data")
    p.add_argument("--finetune-epochs", type=int, default=15, help="fine-tuning epochs on the native ds1 data")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {STEPS}")
    args = p.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "bench_evaluation.log"
    record_path = work / "bench_evaluation.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    record["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                         "load_average_start": os.getloadavg()}
    record.setdefault("dates", []).append(datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def save() -> None:
        record_path.write_text(json.dumps(record, indent=1))

    h22 = work / "runs" / "h22"
    ft = work / "runs" / "native-ft"
    try:
        if "prepare" in steps:
            prepare(args.data, work, log, record)
            save()
        if "train" in steps:
            run(["motionpatch-train", "bandai-namco", "--dataset", str(work / "data" / "bn-h22"), "--output_dir",
                 str(h22), "--num_train_epochs", str(args.epochs), "--overwrite_output_dir", "true",
                 "--disable_tqdm", "true"], log, record, "train_h22")
            record["train_h22_summary"] = json.loads((h22 / "summary.json").read_text())
            save()
        if "evaluate" in steps:
            evaluations(h22 / "best", "h22", work, log, record)
            save()
        if "finetune" in steps:
            run(["motionpatch-train", "bandai-namco", "--model_name_or_path", str(h22 / "best"), "--dataset",
                 str(work / "data" / "bn-native-ds1"), "--skeleton", "", "--output_dir", str(ft),
                 "--num_train_epochs", str(args.finetune_epochs), "--per_device_train_batch_size", "32",
                 "--learning_rate_motion", "3e-4", "--learning_rate_heads", "3e-4", "--warmup_ratio", "0.0",
                 "--overwrite_output_dir", "true", "--disable_tqdm", "true"], log, record, "finetune_native")
            record["finetune_summary"] = json.loads((ft / "summary.json").read_text())
            evaluations(ft / "best", "ft", work, log, record, native_only=True)
            save()
        if "finetune_styles" in steps:
            prepare_styles(work)
            evaluations(h22 / "best", "h22", work, log, record, styles_only=True)  # zero-shot, same 30 clips
            fts = work / "runs" / "native-ft-styles"
            run(["motionpatch-train", "bandai-namco", "--model_name_or_path", str(h22 / "best"), "--dataset",
                 str(work / "data" / "bn-native-ds2s-styles"), "--skeleton", "", "--validation_split", "",
                 "--output_dir", str(fts), "--num_train_epochs", str(args.finetune_epochs),
                 "--per_device_train_batch_size", "20", "--per_device_eval_batch_size", "30",
                 "--learning_rate_motion", "1e-4", "--learning_rate_heads", "1e-4", "--warmup_ratio", "0.0",
                 "--overwrite_output_dir", "true", "--disable_tqdm", "true"], log, record, "finetune_native_styles")
            record["finetune_styles_summary"] = json.loads((fts / "summary.json").read_text())
            evaluations(fts / "best", "ftstyles", work, log, record, styles_only=True)
            save()
        if "engines" in steps:
            test = str(work / "data" / "bn-h22")
            for engine in ("batched", "pipeline"):
                path = work / "results" / f"engine_{engine}.json"
                secs = run(["motionpatch-zero-shot", "--model", str(h22 / "best"), "--dataset", test, "--split", "test",
                            "--engine", engine, "--output", str(path)], log, record, f"engine_{engine}")
                res = json.loads(path.read_text())
                record.setdefault("engines", {})[engine] = {"wall_seconds": round(secs, 1), "scoring_seconds":
                                                            res["seconds"]["encode"], "metrics": res["metrics"]}
            save()
    finally:
        record["machine"]["load_average_end"] = os.getloadavg()
        save()
    print(json.dumps(record.get("results", {}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
