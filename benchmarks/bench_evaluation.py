"""Real data end to end: train on Bandai-Namco (22 SMPL joints), evaluate retrieval and zero-shot classification,
then the cross-skeleton case (the Bandai BVH skeleton used natively), zero-shot and after a short fine-tune.

    python benchmarks/bench_evaluation.py [--data ../shared/data] [--work /tmp/mp_eval] [--epochs 8] [--json PATH]
    python benchmarks/bench_evaluation.py --work /tmp/mp_eval --steps evaluate,engines   # re-run some steps
    python benchmarks/bench_evaluation.py --quick          # smoke run (about 4 minutes)

``--data`` is the shared data folder (its ``bandai-namco/`` is used; the ``bandai-namco`` folder itself is accepted
too). Without ``--work`` everything goes to a temporary folder, deleted after a successful run (kept, with its log,
after a failure); ``--steps`` needs a ``--work`` that an earlier run prepared. The full run (8 training epochs, 15 + 15
fine-tune epochs, 15 evaluation processes of about 10 s each, the pipeline engine over 262 clips) should take 10 to 15
minutes on 2 cores (estimated from the quick run and the shipped config's timing). ``--quick``: 1 training epoch, 1
fine-tune epoch, the engines on the first 64 test clips; about 4 minutes, and its figures mean nothing.

Steps (each runs the project's console scripts in a subprocess, timed; the record goes to
WORK/bench_evaluation.json, the tables - ``commands``, ``retrieval``, ``zero_shot``, ``engines``, built from that
record only - to stdout and ``--json``, which ``benchmarks/run.py`` reads):

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
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Report, add_output_args, markdown_table  # noqa: E402

STEPS = ("prepare", "train", "evaluate", "finetune", "finetune_styles", "engines")
#: styles of the native ds2 clips used to fine-tune in ``finetune_styles``; the other three are the test split
FINETUNE_STYLES = ("active", "elderly", "exhausted", "feminine")
#: the models of the evaluations (the tag in their names), for the tables
MODELS = {
    "h22": "h22",
    "ft": "ft (h22 fine-tuned on native ds1)",
    "ftstyles": "ftstyles (h22 fine-tuned on 40 native clips)",
}
#: the data of each evaluation (the end of its name), for the tables
DATA = {
    "test": "bn-h22 test",
    "take001": "bn-h22-take001 (70)",
    "native": "bn-native-ds2s, all (70)",
    "native_styles": "bn-native-ds2s-styles test (30)",
}
SPLIT_NOTES = [
    ("bn-h22 test: the Bandai-Namco dataset-2 takes numbered 0 mod 10 (22 SMPL joints, 20 fps); the model `h22` was "
    "trained on the takes numbered 1-8 mod 10 except take 001, and selected on those numbered 9 mod 10."),
    "bn-h22-take001: the 70 take-001 clips (10 contents x 7 styles, 22 SMPL joints) removed from training.",
    ("bn-native-ds2s: the same 70 take-001 clips read from their BVH files on the native Bandai skeleton (22 BVH "
    "joints), with `--skeleton-from-dataset` (the model is unchanged; the processor takes the dataset's skeleton "
    "and statistics): a skeleton the model `h22` never saw."),
    ("bn-native-ds2s-styles test: the 30 of those native clips in the styles masculine, normal, youthful; `ftstyles` "
    f"was fine-tuned on the other 40 ({', '.join(FINETUNE_STYLES)}), `ft` on dataset 1's 174 native BVH takes."),
]


def tool(name: str) -> str:
    """A console script of the project: beside this Python first (the venv of ``run.py``), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name) or name


def run(cmd: list[str], log: Path, record: dict, name: str) -> float:
    """Run one command (stdout/stderr appended to ``log``), record its wall time; stop on failure."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    cmd = [tool(cmd[0]), *cmd[1:]]
    print(f"[bench] {name}: {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with log.open("a") as fh:
        fh.write(f"\n===== {name}: {shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(REPO), check=False)
    seconds = time.perf_counter() - t0
    record.setdefault("commands", {})[name] = {"command": shlex.join([Path(cmd[0]).name, *cmd[1:]]),
                                               "seconds": round(seconds, 1), "returncode": proc.returncode}
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
    stats = compute_dataset_statistics(dd, "train")  # the 22-joint training statistics for both
    for name, dset, message in (
        ("bn-h22", dd, "split by take; take-001 clips removed from train (held out for the cross-skeleton check)"),
        ("bn-h22-take001", datasets.DatasetDict({"test": held}), "the 70 take-001 clips of ds2 (22 SMPL joints)"),
    ):
        report = PrepareReport(source="bandai-namco", root=str(data / "ds2_h22_20fps.npz"), skeleton=skel, fps=20.0,
                               messages=[message])
        save_prepared(dset, work / "data" / name, skel, statistics=stats, report=report, overwrite=True)
    record.setdefault("commands", {})["prepare_h22"] = {
        "seconds": round(time.perf_counter() - t0, 1), "returncode": 0,
        "command": "dataset_from_npz + save_prepared of bn-h22 and bn-h22-take001 (in this script)"}
    record["counts"] = {"bn-h22": {k: len(v) for k, v in dd.items()}, "bn-h22-take001": len(held)}
    for name, root in (("bn-native-ds2s", "ds2-bvh-sample"), ("bn-native-ds1", "ds1-bvh")):
        run(["motionpatch-prepare", "bandai-namco", "--variant", "native", "--root", str(data / root), "--output",
             str(work / "data" / name), "--overwrite"], log, record, f"prepare_{name}")


def prepare_styles(work: Path, record: dict) -> Path:
    """``WORK/data/bn-native-ds2s-styles``: the 70 native ds2 clips, train = :data:`FINETUNE_STYLES` (40 clips), test =
    the other styles (30 clips); statistics over the train split."""
    import datasets
    from motionpatch_processing.io import PrepareReport, load_prepared, save_prepared

    from modeling_motionpatch.apps.motion_statistics import compute_dataset_statistics

    datasets.disable_progress_bars()
    t0 = time.perf_counter()
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
    record.setdefault("commands", {})["prepare_native_styles"] = {
        "seconds": round(time.perf_counter() - t0, 1), "returncode": 0,
        "command": "split bn-native-ds2s by style into bn-native-ds2s-styles (in this script)"}
    record.setdefault("counts", {})["bn-native-ds2s-styles"] = {k: len(v) for k, v in dd.items()}
    return out


def summary_of(path: Path) -> dict:
    res = json.loads(path.read_text())
    if res["task"] == "text-motion-retrieval":
        keep = {k: round(v, 2) for k, v in res["metrics"].items() if k.split("/")[-1] in ("R@1", "R@5", "R@10", "MedR")}
        chance = {k: round(v, 2) for k, v in res["chance"].items() if k.split("/")[-1] in ("R@1", "R@5", "R@10", "MedR")}
        return {"task": res["task"], "split": res["split"], "n": res["counts"]["evaluated"],
                "distinct_captions": res["counts"]["distinct_first_captions"], "metrics": keep, "chance": chance,
                "skeleton": res["processor"]["skeleton"], "seconds": res["seconds"]}
    return {"task": res["task"], "split": res["split"], "label_index": res["label_index"],
            "n": res["counts"]["evaluated"], "classes": res["counts"]["num_candidates"],
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


# ---------------------------------------------------------------------------------------------------------------------
# tables (from the record only)
# ---------------------------------------------------------------------------------------------------------------------


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _model_and_data(name: str) -> tuple[str, str]:
    tag, rest = name.split("_", 1)
    data = next((DATA[k] for k in sorted(DATA, key=len, reverse=True) if rest.endswith(k)), rest)
    return MODELS.get(tag, tag), data


def short_command(command: str, work: Path, data: Path) -> str:
    """The recorded command with WORK / DATA for the folders and without ``--output PATH``."""
    words = shlex.split(command) if not command.endswith("(in this script)") else [command]
    out = []
    skip = False
    for w in words:
        if skip:
            skip = False
            continue
        if w == "--output" and words[0] != "motionpatch-prepare":
            skip = True
            continue
        out.append(w.replace(str(work), "WORK").replace(str(data), "DATA"))
    return " ".join(out) if len(out) == 1 else shlex.join(out)


def commands_table(record: dict, work: Path, data: Path) -> str:
    rows = []
    total = 0.0
    for name, c in record.get("commands", {}).items():
        total += c["seconds"]
        cmd = short_command(c["command"], work, data).replace("|", "\\|")
        rows.append([name, f"`{cmd}`", f"{c['seconds']:.1f}", c.get("returncode", 0)])
    rows.append(["**total**", "", f"**{total:.1f}**", ""])
    return markdown_table(["step", "command", "wall s", "exit"], rows, align="llrr")


def retrieval_table(record: dict) -> str | None:
    rows = []
    for name, r in record.get("results", {}).items():
        if r.get("task") != "text-motion-retrieval":
            continue
        model, data = _model_and_data(name)
        protocols = sorted({k.split("/")[0] for k in r["metrics"]}, key=lambda p: (p != "all", p))
        for protocol in protocols:
            cells = []
            for direction in ("t2m", "m2t"):
                for metric in ("R@1", "R@5", "R@10", "MedR"):
                    key = f"{protocol}/{direction}/{metric}"
                    value, chance = r["metrics"].get(key), r["chance"].get(key)
                    cells.append("-" if value is None else f"{_num(value)} ({_num(chance)})")
            rows.append([model, data, r["n"], r["distinct_captions"], protocol, *cells])
    if not rows:
        return None
    header = ["model", "data", "n", "distinct captions", "protocol",
              *[f"{d} {m} (chance)" for d in ("t2m", "m2t") for m in ("R@1", "R@5", "R@10", "MedR")]]
    return markdown_table(header, rows, align="llrrl" + "r" * 8)


def zero_shot_table(record: dict) -> str | None:
    rows = []
    for name, r in record.get("results", {}).items():
        if r.get("task") != "zero-shot-motion-classification":
            continue
        model, data = _model_and_data(name)
        labels = {0: "content", 1: "style"}.get(r.get("label_index"), str(r.get("label_index")))
        cells = []
        for k in ("top1", "top5", "balanced_top1"):
            value = r["metrics"].get(k)
            if value is None:
                cells.append("-")
                continue
            chance, majority = r["chance"].get(k), r["majority"].get(k)
            cells.append(f"{_num(value)} ({_num(chance)} / {_num(majority)})" if majority is not None
                         else f"{_num(value)} ({_num(chance)})")
        rows.append([model, data, labels, r["n"], r["classes"], *cells])
    if not rows:
        return None
    return markdown_table(["model", "data", "labels", "n", "classes", "top-1 % (chance / majority)",
                           "top-5 % (chance / majority)", "balanced top-1 % (chance)"], rows, align="lllrrrrr")


def engines_table(record: dict) -> str | None:
    eng = record.get("engines", {})
    if not {"batched", "pipeline"} <= set(eng):
        return None
    base = eng["batched"]
    rows = []
    for name in ("batched", "pipeline"):
        e = eng[name]
        diffs = [abs(e["metrics"][k] - base["metrics"][k]) for k in base["metrics"] if k in e["metrics"]]
        same = e["metrics"] == base["metrics"]
        equal = "baseline" if name == "batched" else (
            "yes (identical)" if same else f"no (max difference {max(diffs, default=float('nan')):.3g} points)")
        ratio_wall = e["wall_seconds"] / base["wall_seconds"]
        ratio_score = e["scoring_seconds"] / base["scoring_seconds"] if base["scoring_seconds"] else float("nan")
        rows.append([name, e.get("n", "-"), f"{e['wall_seconds']:.1f}", f"{ratio_wall:.2f}x",
                     f"{e['scoring_seconds']:.2f}", f"{ratio_score:.2f}x", _num(e["metrics"].get("top1")), equal])
    return markdown_table(["engine", "n", "wall s (process)", "wall / batched", "scoring s", "scoring / batched",
                           "top-1 %", "metrics equal to batched"], rows, align="lrrrrrrl")


def write_tables(report: Report, record: dict, work: Path, data: Path, args: argparse.Namespace) -> None:
    quick = " (QUICK: 1 epoch, 1 fine-tune epoch, engines on 64 clips)" if args.quick else ""
    train = record.get("train_h22_summary", {})
    notes = [(f"`WORK` is the work folder, `DATA` the Bandai-Namco folder (`{data.name}` under `--data`). Each "
             "command is one process: its wall time includes starting Python, importing torch and loading the model.")]
    if train:
        notes.append(f"train_h22: {record.get('train_args', {}).get('epochs', '?')} epoch(s), {train['global_step']} "
                     f"optimizer steps, {train['train_seconds']:.0f} s in the training loop, "
                     f"{train['samples_per_second']:.0f} samples/s.")
    counts = record.get("counts", {})
    if counts.get("bn-h22"):
        notes.append("bn-h22 rows per split: " + ", ".join(f"{k} {v}" for k, v in counts["bn-h22"].items())
                     + f"; bn-h22-take001: {counts.get('bn-h22-take001')}.")
    report.table("commands", f"Real-data evaluation: every step and its wall time{quick}",
                 commands_table(record, work, data), notes=notes)
    sections = [  # (key, table builder, title, notes, what the page says when the step did not run)
        ("retrieval", retrieval_table,
         "Text-motion retrieval on real Bandai-Namco clips, percent (the chance level of the same rows and protocol "
         "in parentheses)",
         ["Captions are label-derived (\"a person bows angrily.\"): 70 distinct sentences at most, so several clips "
          "share a caption; the chance levels come from each result file (`motionpatch-evaluate`'s own "
          "random-ranking levels for the same captions). MedR: median rank, lower is better.",
          "Protocols: all = one gallery of every clip of the split (n clips); small_batches = shuffled batches of 32 "
          "(Guo et al.), whole batches only (256 of 262 clips, 64 of 70), left out when there are fewer than 32 "
          "clips (the 30-clip rows).", *SPLIT_NOTES],
         "no retrieval evaluation in this run"),
        ("zero_shot", zero_shot_table,
         "Zero-shot classification of real Bandai-Namco clips, percent (chance / majority class of the same rows in "
         "parentheses)",
         ["labels: content = 10 actions (labels[0]), style = 7 styles (labels[1]); prompt 'A person {}.'; the "
          "candidates (classes) are the distinct labels of that entry over every split of the dataset. Chance: a "
          "uniformly random ranking; majority: always answering the most frequent class of the evaluated rows.",
          *SPLIT_NOTES],
         "no zero-shot evaluation in this run"),
        ("engines", engines_table,
         "Zero-shot engines on bn-h22 test (content): batched (the baseline) vs the pipeline one motion at a time",
         ["One run of each, one after the other (not interleaved): the ratios are indicative. Wall: the whole "
          "process; scoring: the encoding and scoring time the result file reports.",
          "Metrics equal: every metric of the result file (top-1, top-5, balanced top-1) compared."],
         "the engines step did not run"),
    ]
    for key, build, title, table_notes, absent in sections:
        table = build(record)
        if table:
            report.table(key, title + quick, table, notes=table_notes)
        else:
            report.notes.append(absent)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                   help="the shared data folder (holding bandai-namco/), or the bandai-namco folder itself")
    p.add_argument("--work", type=Path, default=None,
                   help="work folder (prepared data, models, results, log); default: a temporary folder, deleted "
                        "after a successful run")
    p.add_argument("--epochs", type=int, default=8, help="training epochs on the 22-joint data")
    p.add_argument("--finetune-epochs", type=int, default=15, help="fine-tuning epochs on the native data")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {STEPS}")
    add_output_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.finetune_epochs = 1, 1
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        p.error(f"unknown step(s) {unknown}; choose from {STEPS}")
    data = args.data / "bandai-namco" if (args.data / "bandai-namco").is_dir() else args.data
    if not (data / "ds2_h22_20fps.npz").exists():
        p.error(f"no ds2_h22_20fps.npz under {data}: pass --data (the shared data folder)")
    data = data.resolve()
    temporary = args.work is None
    work = Path(tempfile.mkdtemp(prefix="motionpatch_bench_eval_")) if temporary else args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not temporary and set(steps) != set(STEPS) and "prepare" not in steps and not (work / "data").is_dir():
        p.error(f"{work} holds no prepared data: run the 'prepare' step first")
    report = Report("evaluation", quick=args.quick, extra_packages=("accelerate", "datasets"))
    log = work / "bench_evaluation.log"
    record_path = work / "bench_evaluation.json"
    # a partial re-run (--steps) adds to the earlier record of the same work folder; a full run starts afresh
    record = json.loads(record_path.read_text()) if record_path.exists() and set(steps) != set(STEPS) else {}
    record.setdefault("dates", []).append(datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if "train" in steps:
        record["train_args"] = {"epochs": args.epochs, "quick": args.quick}
    if {"finetune", "finetune_styles"} & set(steps):
        record["finetune_args"] = {"epochs": args.finetune_epochs, "quick": args.quick}
    print(f"[bench] work folder {work}; log {log}", flush=True)

    def save() -> None:
        record_path.write_text(json.dumps(record, indent=1))

    h22 = work / "runs" / "h22"
    ft = work / "runs" / "native-ft"
    ok = False
    try:
        if "prepare" in steps:
            prepare(data, work, log, record)
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
            prepare_styles(work, record)
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
            limit = ["--max-samples", "64"] if args.quick else []  # the pipeline takes about a minute on 262 clips
            for engine in ("batched", "pipeline"):
                path = work / "results" / f"engine_{engine}.json"
                secs = run(["motionpatch-zero-shot", "--model", str(h22 / "best"), "--dataset", test, "--split", "test",
                            "--engine", engine, *limit, "--output", str(path)], log, record, f"engine_{engine}")
                res = json.loads(path.read_text())
                record.setdefault("engines", {})[engine] = {
                    "wall_seconds": round(secs, 1), "scoring_seconds": res["seconds"]["encode"],
                    "n": res["counts"]["evaluated"], "metrics": res["metrics"]}
            save()
        ok = True
    finally:
        save()
        try:
            write_tables(report, record, work, data, args)
            report.raw.update(record)
            report.raw["work"] = None if temporary else str(work)
            report.write(args.json)
        except Exception as exc:  # never hide the failure of a step behind one of the tables
            if ok:
                raise
            print(f"[bench] no tables: {exc!r}", file=sys.stderr)
        if temporary and ok:
            shutil.rmtree(work, ignore_errors=True)
        elif not ok:
            print(f"[bench] failed: the work folder {work} is kept (log: {log})", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
