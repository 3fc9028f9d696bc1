"""BVH import throughput and the memory of preparing the ds2 npz as a dataset.

Usage:
    python benchmarks/bench_bvh.py [--data ../shared/data] [--rounds 5] [--baseline-files 8] [--skip-memory]
        [--quick] [--json PATH]

1. Throughput on the 174 Bandai-Namco dataset-1 BVH files (31,914 frames at 30 fps, 22 joints x 6
   channels), one thread: parse (read file + hierarchy + bulk MOTION parse), forward kinematics (per
   file, and batched across files), and end to end (``read_bvh`` per file = both; and parse + batched
   FK, the path of ``load_bvh_collection``), frames per second, wall and CPU time. The
   hierarchy cache is cleared before every repeat, so each repeat pays one hierarchy parse, as a fresh
   import of a collection does. The stages are interleaved (``timing.interleaved``) over ``--rounds``
   rounds; median and range of the rounds.
2. Baseline, interleaved with ours over the same ``--rounds`` rounds on a subset of the files: a
   straightforward implementation - MOTION read line by line with ``float()``, forward kinematics with a
   Python loop over frames and joints (3x3 numpy matrices per joint per frame). Its output is checked
   against ours. Ratios are median over median, with the range of the same-round ratios.
3. Peak memory of ``dataset_from_npz(ds2_h22_20fps.npz)`` (2,902 clips) in a fresh subprocess: the
   ``ru_maxrss`` delta over the call, against the size of the motion arrays (float16 in the npz,
   float32 in the dataset).
"""

from __future__ import annotations

import os

for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
):
    os.environ[_var] = "1"  # before numpy is imported

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from timing import Report, add_output_args, fmt_rate, fmt_ratio, interleaved, markdown_table, ratio  # noqa: E402


def _single_thread() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    try:
        import pyarrow as pa

        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
    except ImportError:  # pragma: no cover
        pass


# ---------------------------------------------------------------------------
# the naive baseline
# ---------------------------------------------------------------------------
def _euler(axis: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    if axis == "X":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "Y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def naive_read(path: Path, scale: float = 0.01) -> np.ndarray:
    """Read MOTION line by line and run forward kinematics frame by frame, joint by joint."""
    from modeling_motionpatch.apps.bvh import parse_bvh_string

    text = path.read_text()
    head, motion = text.split("MOTION", 1)
    lines = motion.strip().splitlines()[2:]
    # hierarchy only (the parser wants at least one frame: give it the first)
    h = parse_bvh_string(head + "MOTION\nFrames: 1\nFrame Time: 1\n" + lines[0] + "\n", source=str(path)).hierarchy
    frames = [[float(v) for v in line.split()] for line in lines]
    out = np.zeros((len(frames), h.num_joints, 3))
    for f, row in enumerate(frames):
        glob_r = [None] * h.num_joints
        for j in range(h.num_joints):
            t = h.offsets[j].copy()
            r = np.eye(3)
            for k, name in enumerate(h.channels[j]):
                v = row[h.channel_start[j] + k]
                if name.endswith("position"):
                    t["XYZ".index(name[0])] = v
                else:
                    r = r @ _euler(name[0], v)
            p = h.parents[j]
            if p < 0:
                glob_r[j] = r
                out[f, j] = t
            else:
                glob_r[j] = glob_r[p] @ r
                out[f, j] = out[f, p] + glob_r[p] @ t
    return (out * scale).astype(np.float32)


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------
def _clear_caches() -> None:
    from modeling_motionpatch.apps import bvh

    bvh._HIERARCHY_CACHE.clear()
    bvh._PLANS.clear()


STAGES = {
    "parse": "parse (`parse_bvh`: read, hierarchy, bulk MOTION parse)",
    "fk": "forward kinematics, per file (`forward_kinematics`)",
    "fk_batched": "forward kinematics, batched (`forward_kinematics_batch`)",
    "end_to_end": "**end to end, per file (`read_bvh`)**",
    "end_to_end_batched": "**end to end, parse + batched FK** (the `load_bvh_collection` path)",
}


def bench_throughput(files: list[Path], rounds: int) -> dict:
    from modeling_motionpatch.apps.bvh import forward_kinematics, forward_kinematics_batch, parse_bvh, read_bvh

    datas = [parse_bvh(f) for f in files]
    frames = sum(d.num_frames for d in datas)
    fns = {
        "parse": lambda: [parse_bvh(f) for f in files],
        "fk": lambda: [forward_kinematics(d, scale=0.01) for d in datas],
        "fk_batched": lambda: forward_kinematics_batch(datas, scale=0.01),
        "end_to_end": lambda: [read_bvh(f, scale=0.01) for f in files],
        # what load_bvh_collection does: parse every file, then batched FK
        "end_to_end_batched": lambda: forward_kinematics_batch([parse_bvh(f) for f in files], scale=0.01),
    }
    # every call starts without the hierarchy/FK-plan cache, as a fresh import of a collection does
    t = interleaved(fns, rounds=rounds, warmup=1, before_each=lambda name: _clear_caches())
    for tm in t.values():
        tm.result = None
    return {"files": len(files), "frames": frames, "timings": t}


def bench_baseline(files: list[Path], rounds: int) -> dict:
    from modeling_motionpatch.apps.bvh import forward_kinematics, parse_bvh, read_bvh

    datas = [parse_bvh(f) for f in files]
    for f, d in zip(files, datas):
        _NAIVE_PARSED[f] = d  # the naive FK-only timing below runs on already-parsed values
    frames = sum(d.num_frames for d in datas)
    fns = {
        "naive_end_to_end": lambda: [naive_read(f) for f in files],
        "ours_end_to_end": lambda: [read_bvh(f, scale=0.01).positions for f in files],
        "naive_fk": lambda: [_naive_fk_only(f) for f in files],
        "ours_fk": lambda: [forward_kinematics(d, scale=0.01) for d in datas],
    }
    t = interleaved(fns, rounds=rounds, warmup=1, before_each=lambda name: _clear_caches())
    worst = max(
        float(np.abs(a - b).max()) for a, b in zip(t["naive_end_to_end"].result, t["ours_end_to_end"].result)
    )
    for tm in t.values():
        tm.result = None
    return {"files": len(files), "frames": frames, "max_abs_diff_m": worst, "timings": t}


_NAIVE_PARSED: dict = {}


def _naive_fk_only(path: Path) -> None:
    """Time only the per-frame FK loop of the baseline: parse outside the timed region is cached."""
    from modeling_motionpatch.apps.bvh import parse_bvh

    d = _NAIVE_PARSED[path] if path in _NAIVE_PARSED else _NAIVE_PARSED.setdefault(path, parse_bvh(path))
    h = d.hierarchy
    for row in d.values.tolist():
        glob_r = [None] * h.num_joints
        pos = [None] * h.num_joints
        for j in range(h.num_joints):
            t = h.offsets[j].copy()
            r = np.eye(3)
            for k, name in enumerate(h.channels[j]):
                v = row[h.channel_start[j] + k]
                if name.endswith("position"):
                    t["XYZ".index(name[0])] = v
                else:
                    r = r @ _euler(name[0], v)
            p = h.parents[j]
            if p < 0:
                glob_r[j], pos[j] = r, t
            else:
                glob_r[j] = glob_r[p] @ r
                pos[j] = pos[p] + glob_r[p] @ t


_MEMORY_SCRIPT = r"""
import os, sys, json, resource, tempfile, shutil, zipfile
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
import numpy as np
from motionpatch_processing.bandai_npz import dataset_from_npz

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return -1

path = sys.argv[1]
with zipfile.ZipFile(path) as zf, zf.open("joints.npy") as fh:  # header only: do not load the array here
    version = np.lib.format.read_magic(fh)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(fh)
n_values = int(np.prod(shape))
out = tempfile.mkdtemp()
try:  # reset the kernel's peak-RSS mark (VmHWM) of this process; ru_maxrss keeps its own maximum
    open("/proc/self/clear_refs", "w").write("5")
except OSError:
    pass
before_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before_rss = status("VmRSS")
dd, _ = dataset_from_npz(path, cache_dir=out)
rows = sum(len(dd[s]) for s in dd)
after_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
hwm = status("VmHWM")
shutil.rmtree(out, ignore_errors=True)
print(json.dumps({"rows": rows, "peak_delta_bytes": after_maxrss - before_maxrss, "rss_before_bytes": before_rss,
                  "maxrss_before_bytes": before_maxrss, "vmhwm_delta_bytes": hwm - before_rss,
                  "npz_array_bytes": n_values * dtype.itemsize, "float32_array_bytes": n_values * 4}))
"""


def bench_memory(npz: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(npz)], capture_output=True, text=True, check=True, cwd=REPO
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["ratio_to_float32"] = res["peak_delta_bytes"] / res["float32_array_bytes"]
    res["ratio_to_npz_float16"] = res["peak_delta_bytes"] / res["npz_array_bytes"]
    return res


def bench_full_import(root: Path) -> dict:
    import shutil
    import tempfile

    from motionpatch_processing.bandai_namco import load_bandai_namco

    out = tempfile.mkdtemp()
    try:
        _clear_caches()
        t0 = time.perf_counter()
        dd, _ = load_bandai_namco(root, variant="humanml3d", cache_dir=out)
        dt = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"clips": sum(len(dd[s]) for s in dd), "seconds": dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds (after one warm-up round)")
    ap.add_argument("--baseline-files", type=int, default=8)
    ap.add_argument("--skip-memory", action="store_true")
    add_output_args(ap)
    args = ap.parse_args()
    _single_thread()

    bandai = args.data / "bandai-namco"
    files = sorted((bandai / "ds1-bvh" / "data").glob("*.bvh"))
    if not files:
        sys.exit(f"no BVH files under {bandai / 'ds1-bvh' / 'data'}; pass --data")
    if args.quick:
        files, args.rounds, args.baseline_files, args.skip_memory = files[:12], 2, 2, True
    report = Report("bvh", quick=args.quick, extra_packages=("pyarrow", "datasets"))
    report.raw["threads"] = 1
    if not args.skip_memory:  # first, while this parent process is small: a child's ru_maxrss starts at the
        # parent's RSS at fork (Linux keeps it across exec), so a big parent would hide the child's peak
        report.raw["memory"] = bench_memory(bandai / "ds2_h22_20fps.npz")
    tp = bench_throughput(files, args.rounds)
    b = bench_baseline(files[:: max(1, len(files) // args.baseline_files)][: args.baseline_files], args.rounds)
    fi = bench_full_import(bandai / "ds1-bvh")

    frames = tp["frames"]
    report.raw["throughput"] = {"files": tp["files"], "frames": frames,
                                **{k: v.summary() for k, v in tp["timings"].items()}}
    rows = []
    for key, label in STAGES.items():
        tm = tp["timings"][key]
        rows.append([label, f"{tm.median:.3f} ({tm.min:.3f}-{tm.max:.3f})", fmt_rate(frames, tm),
                     f"{tm.cpu_median:.3f}", f"{frames / tm.cpu_median:,.0f}"])
    report.table(
        "throughput",
        f"BVH import: {tp['files']} Bandai-Namco dataset-1 files ({frames:,} frames), 1 thread, {args.rounds} "
        "interleaved rounds",
        markdown_table(
            ["stage", "wall (s): median (range)", "frames/s: median (slowest-fastest round)", "CPU (s, median)",
             "frames/s, CPU (median)"],
            rows,
        ),
        notes=["Each call starts with the hierarchy/FK-plan cache cleared (one hierarchy parse, as a fresh import)."],
    )
    bt = b["timings"]
    e2e, fk = ratio(bt["naive_end_to_end"], bt["ours_end_to_end"]), ratio(bt["naive_fk"], bt["ours_fk"])
    e2e_cpu = ratio(bt["naive_end_to_end"], bt["ours_end_to_end"], cpu=True)
    fk_cpu = ratio(bt["naive_fk"], bt["ours_fk"], cpu=True)
    report.raw["baseline"] = {"files": b["files"], "frames": b["frames"], "max_abs_diff_m": b["max_abs_diff_m"],
                              **{k: v.summary() for k, v in bt.items()},
                              "end_to_end_ratio": e2e, "fk_ratio": fk, "end_to_end_cpu_ratio": e2e_cpu,
                              "fk_cpu_ratio": fk_cpu}
    bf = b["frames"]
    report.table(
        "baseline",
        f"BVH import against a naive reader: {b['files']} files ({bf:,} frames), 1 thread, {args.rounds} "
        "interleaved rounds (the same for both)",
        markdown_table(
            ["what", "naive frames/s: median (range)", "ours frames/s: median (range)", "speed-up (wall)",
             "speed-up (CPU time)"],
            [
                ["end to end (read + FK)", fmt_rate(bf, bt["naive_end_to_end"]), fmt_rate(bf, bt["ours_end_to_end"]),
                 fmt_ratio(e2e), fmt_ratio(e2e_cpu)],
                ["forward kinematics only", fmt_rate(bf, bt["naive_fk"]), fmt_rate(bf, bt["ours_fk"]), fmt_ratio(fk),
                 fmt_ratio(fk_cpu)],
            ],
        ),
        notes=[f"The naive reader's positions equal ours to {b['max_abs_diff_m']:.1e} m (max abs difference)."],
    )
    report.raw["full_import_ds1_humanml3d"] = fi
    other = [["`load_bandai_namco(ds1-bvh, variant=\"humanml3d\")` (parse, FK, 22-joint order, 30 -> 20 fps, "
              "Arrow write), one call", f"{fi['clips']} clips in {fi['seconds']:.2f} s"]]
    if "memory" in report.raw:
        m = report.raw["memory"]
        other.append([
            f"peak memory of `dataset_from_npz(ds2_h22_20fps.npz)` ({m['rows']:,} clips), fresh process",
            f"ru_maxrss delta {m['peak_delta_bytes'] / 2**20:.1f} MiB = {m['ratio_to_float32']:.2f}x the float32 "
            f"motions ({m['float32_array_bytes'] / 2**20:.1f} MiB), {m['ratio_to_npz_float16']:.2f}x the float16 "
            f"npz array; VmHWM cross-check {m['vmhwm_delta_bytes'] / 2**20:.1f} MiB",
        ])
    else:
        report.notes.append("peak memory skipped (--skip-memory or --quick)")
    report.table("import_memory", "Full Bandai import and peak memory (single measurements)",
                 markdown_table(["what", "measured"], other, align="ll"))
    report.write(args.json)


if __name__ == "__main__":
    main()
