"""BVH import throughput and the memory of preparing the ds2 npz as a dataset.

Usage:
    python benchmarks/bench_bvh.py [--data ../shared/data] [--repeats 5] [--baseline-files 8] [--skip-memory]

1. Throughput on the 174 Bandai-Namco dataset-1 BVH files (31,914 frames at 30 fps, 22 joints x 6
   channels), one thread: parse (read file + hierarchy + bulk MOTION parse), forward kinematics (per
   file, and batched across files), and end to end (``read_bvh`` per file = both; and parse + batched
   FK, the path of ``load_bvh_collection``), frames per second, wall and CPU time. The
   hierarchy cache is cleared before every repeat, so each repeat pays one hierarchy parse, as a fresh
   import of a collection does. Best and median of ``--repeats`` runs.
2. Baseline, side by side in the same run on a subset: a straightforward implementation - MOTION read
   line by line with ``float()``, forward kinematics with a Python loop over frames and joints (3x3
   numpy matrices per joint per frame). Its output is checked against ours.
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
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


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
    h = parse_bvh_string(head + "MOTION\nFrames: 0\nFrame Time: 1\n", source=str(path)).hierarchy  # hierarchy only
    lines = motion.strip().splitlines()[2:]
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


class _Clock:
    """Wall time and this process's CPU time of a block (CPU time is what one core delivers when the
    machine is shared: other processes' load inflates wall time but not our CPU time)."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def _stats(walls: list[float], cpus: list[float], frames: int) -> dict:
    return {
        "best_wall_s": min(walls),
        "median_wall_s": float(np.median(walls)),
        "best_cpu_s": min(cpus),
        "median_cpu_s": float(np.median(cpus)),
        "best_wall_fps": frames / min(walls),
        "median_wall_fps": frames / float(np.median(walls)),
        "best_cpu_fps": frames / min(cpus),
        "median_cpu_fps": frames / float(np.median(cpus)),
    }


def bench_throughput(files: list[Path], repeats: int) -> dict:
    from modeling_motionpatch.apps.bvh import forward_kinematics, forward_kinematics_batch, parse_bvh, read_bvh

    keys = ("parse", "fk", "fk_batched", "end_to_end", "end_to_end_batched")
    walls: dict[str, list[float]] = {k: [] for k in keys}
    cpus: dict[str, list[float]] = {k: [] for k in keys}
    frames = 0
    for _ in range(repeats):
        _clear_caches()
        with _Clock() as c_parse:
            datas = [parse_bvh(f) for f in files]
        with _Clock() as c_fk:
            for d in datas:
                forward_kinematics(d, scale=0.01)
        with _Clock() as c_fkb:
            forward_kinematics_batch(datas, scale=0.01)
        _clear_caches()
        with _Clock() as c_e2e:
            for f in files:
                read_bvh(f, scale=0.01)
        _clear_caches()
        with _Clock() as c_e2eb:  # what load_bvh_collection does: parse every file, then batched FK
            forward_kinematics_batch([parse_bvh(f) for f in files], scale=0.01)
        frames = sum(d.num_frames for d in datas)
        for k, c in zip(keys, (c_parse, c_fk, c_fkb, c_e2e, c_e2eb)):
            walls[k].append(c.wall)
            cpus[k].append(c.cpu)
    return {"files": len(files), "frames": frames, **{k: _stats(walls[k], cpus[k], frames) for k in keys}}


def bench_baseline(files: list[Path], repeats: int) -> dict:
    from modeling_motionpatch.apps.bvh import forward_kinematics, parse_bvh, read_bvh

    datas = [parse_bvh(f) for f in files]
    for f, d in zip(files, datas):
        _NAIVE_PARSED[f] = d  # the naive FK-only timing below runs on already-parsed values
    frames = sum(d.num_frames for d in datas)
    naive_e2e, naive_fk, ours_e2e, ours_fk = [], [], [], []
    for _ in range(max(1, repeats // 2)):
        with _Clock() as c:
            naive = [naive_read(f) for f in files]
        naive_e2e.append(c)
        with _Clock() as c:
            for f in files:
                _naive_fk_only(f)
        naive_fk.append(c)
    for _ in range(repeats):
        _clear_caches()
        with _Clock() as c:
            ours = [read_bvh(f, scale=0.01).positions for f in files]
        ours_e2e.append(c)
        with _Clock() as c:
            for d in datas:
                forward_kinematics(d, scale=0.01)
        ours_fk.append(c)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(naive, ours))

    def best(clocks, attr):
        return min(getattr(c, attr) for c in clocks)

    out = {"files": len(files), "frames": frames, "max_abs_diff_m": worst}
    for attr in ("wall", "cpu"):
        out[f"naive_end_to_end_{attr}_fps"] = frames / best(naive_e2e, attr)
        out[f"ours_end_to_end_{attr}_fps"] = frames / best(ours_e2e, attr)
        out[f"end_to_end_{attr}_ratio"] = best(naive_e2e, attr) / best(ours_e2e, attr)
        out[f"naive_fk_{attr}_fps"] = frames / best(naive_fk, attr)
        out[f"ours_fk_{attr}_fps"] = frames / best(ours_fk, attr)
        out[f"fk_{attr}_ratio"] = best(naive_fk, attr) / best(ours_fk, attr)
    return out


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


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline-files", type=int, default=8)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    _single_thread()

    bandai = args.data / "bandai-namco"
    files = sorted((bandai / "ds1-bvh" / "data").glob("*.bvh"))
    if not files:
        sys.exit(f"no BVH files under {bandai / 'ds1-bvh' / 'data'}; pass --data")
    res = {
        "cpu": _cpu_model(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average": os.getloadavg(),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "threads": 1,
    }
    if not args.skip_memory:  # first, while this parent process is small: a child's ru_maxrss starts at the
        # parent's RSS at fork (Linux keeps it across exec), so a big parent would hide the child's peak
        res["memory"] = bench_memory(bandai / "ds2_h22_20fps.npz")
    res["throughput"] = bench_throughput(files, args.repeats)
    res["baseline"] = bench_baseline(
        files[:: max(1, len(files) // args.baseline_files)][: args.baseline_files], args.repeats
    )
    res["full_import_ds1_humanml3d"] = bench_full_import(bandai / "ds1-bvh")
    res["load_average_after"] = os.getloadavg()

    tp = res["throughput"]
    print(f"# BVH import - {res['cpu']} - {res['date']} - load average {res['load_average'][0]:.2f}")
    print(f"{tp['files']} files, {tp['frames']} frames, 1 thread, best / median of {args.repeats}")
    for key, label in (
        ("parse", "parse"),
        ("fk", "forward kinematics (per file)"),
        ("fk_batched", "forward kinematics (batched)"),
        ("end_to_end", "end to end (read_bvh per file)"),
        ("end_to_end_batched", "end to end (parse + batched FK)"),
    ):
        s = tp[key]
        print(
            f"  {label:32s} wall {s['best_wall_s']:.3f} s {s['best_wall_fps']:>9,.0f} frames/s (median "
            f"{s['median_wall_fps']:,.0f}) | CPU {s['best_cpu_s']:.3f} s {s['best_cpu_fps']:>9,.0f} frames/s "
            f"(median {s['median_cpu_fps']:,.0f})"
        )
    b = res["baseline"]
    print(f"baseline on {b['files']} files / {b['frames']} frames (max |diff| {b['max_abs_diff_m']:.1e} m), best runs:")
    for attr in ("wall", "cpu"):
        print(
            f"  {attr:4s} end to end: naive {b[f'naive_end_to_end_{attr}_fps']:,.0f} frames/s, ours "
            f"{b[f'ours_end_to_end_{attr}_fps']:,.0f} -> x{b[f'end_to_end_{attr}_ratio']:.0f};  FK only: naive "
            f"{b[f'naive_fk_{attr}_fps']:,.0f}, ours {b[f'ours_fk_{attr}_fps']:,.0f} -> x{b[f'fk_{attr}_ratio']:.0f}"
        )
    fi = res["full_import_ds1_humanml3d"]
    print(f"load_bandai_namco(ds1-bvh, humanml3d, 20 fps, Arrow write): {fi['clips']} clips in {fi['seconds']:.2f} s")
    if "memory" in res:
        m = res["memory"]
        print(
            f"dataset_from_npz(ds2): {m['rows']} clips, peak RSS delta {m['peak_delta_bytes'] / 2**20:.1f} MiB = "
            f"{m['ratio_to_float32']:.2f}x the float32 motions ({m['float32_array_bytes'] / 2**20:.1f} MiB), "
            f"{m['ratio_to_npz_float16']:.2f}x the float16 npz array ({m['npz_array_bytes'] / 2**20:.1f} MiB); "
            f"cross-check VmHWM - VmRSS before: {m['vmhwm_delta_bytes'] / 2**20:.1f} MiB; "
            f"RSS before the call {m['rss_before_bytes'] / 2**20:.0f} MiB (interpreter + torch/datasets imports)"
        )
    print(f"load average after: {res['load_average_after'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
