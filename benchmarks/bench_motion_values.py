"""Throughput of `add_motion_values` (`Dataset.map`, num_proc 1 and 2) against calling the feature extractor directly.

Data: the 2,902 real Bandai-Namco dataset-2 clips (``ds2_h22_20fps.npz``, 256,612 frames at 20 fps, 22 joints), made
a schema dataset with ``dataset_from_npz`` in a temporary folder. The extractor is the 224-frame default with the
clips' own statistics. Each worker is single-threaded (numpy/BLAS and torch at 1 thread), so frames/s per core is
the frames/s divided by the number of processes.

Rows, all in one run:
1. direct: ``feature_extractor(motions[i:i + 64])`` over the clips already in memory (the baseline; no Arrow).
2. ``add_motion_values(num_proc=1)``: read the motions from Arrow, extract, write the three columns to the cache.
3. ``add_motion_values(num_proc=2)``: the same with two worker processes.
4. a second ``add_motion_values`` call with an equal extractor: the cache hit (nothing recomputed).

    python benchmarks/bench_motion_values.py [--data ../shared/data] [--repeats 2]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported; worker processes inherit it

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    import datasets
    import torch
    from motionpatch_processing.bandai_npz import dataset_from_npz

    from modeling_motionpatch import MotionPatchFeatureExtractor
    from modeling_motionpatch.apps.motion_statistics import compute_statistics
    from modeling_motionpatch.apps.dataset_motion_values import add_motion_values
    from modeling_motionpatch.motion_patches import MotionInputWarning

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=5, help="best (and median) of N for each row")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    datasets.disable_progress_bars()
    warnings.simplefilter("ignore", MotionInputWarning)  # 26 clips are shorter than one patch row (16 frames)
    npz = Path(args.data) / "bandai-namco" / "ds2_h22_20fps.npz"
    tmp = Path(tempfile.mkdtemp(prefix="bench_motion_values_"))
    try:
        dd, skeleton = dataset_from_npz(npz, splits=lambda name: "train", cache_dir=tmp / "arrow")
        ds = dd["train"]
        motions = [np.asarray(m, dtype=np.float32) for m in ds.with_format("numpy")["motion"]]
        frames = int(sum(len(m) for m in motions))
        mean, std = compute_statistics(motions)
        fe = MotionPatchFeatureExtractor(skeleton.to_dict(), mean=mean, std=std)
        b = args.batch_size
        print(json.dumps({"clips": len(motions), "frames": frames, "max_frames": fe.max_frames,
                          "load_avg": os.getloadavg()}), flush=True)  # fmt: skip
        rows = []

        def report(name: str, times: list[float], procs: int) -> None:
            best, median = min(times), float(np.median(times))
            row = {"path": name, "processes": procs, "seconds": round(best, 2), "median_s": round(median, 2),
                   "frames_per_s": round(frames / best), "frames_per_s_per_core": round(frames / best / procs),
                   "median_frames_per_s_per_core": round(frames / median / procs),
                   "all_s": [round(t, 2) for t in times]}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)

        times = []
        for _ in range(args.repeats):
            direct = None  # free the previous repeat's output first
            t = time.perf_counter()
            direct = [fe(motions[i : i + b], return_tensors="np")["motion_values"] for i in range(0, len(motions), b)]
            times.append(time.perf_counter() - t)
        report("direct feature_extractor call (in memory)", times, 1)
        reference = np.concatenate(direct)
        direct = None
        for procs in (1, 2):
            times = []
            for _ in range(args.repeats):
                out = None
                ds.cleanup_cache_files()  # every timed call computes and writes its cache anew
                t = time.perf_counter()
                out = add_motion_values(ds, fe, num_proc=None if procs == 1 else procs, batch_size=b)
                times.append(time.perf_counter() - t)
            report(f"add_motion_values num_proc={procs} (Arrow in, Arrow out)", times, procs)
            values = out.with_format("numpy", columns=["motion_values"])
            same = all(np.array_equal(values[i : i + 256]["motion_values"], reference[i : i + 256])
                       for i in range(0, len(values), 256))  # fmt: skip
            print(json.dumps({"num_proc": procs, "equal_to_direct": same}), flush=True)
            written = sum(Path(c["filename"]).stat().st_size for c in out.cache_files)
            print(json.dumps({"cache_files": [Path(c["filename"]).name for c in out.cache_files],
                              "mbytes": round(written / 2**20, 1)}), flush=True)  # fmt: skip
        again = MotionPatchFeatureExtractor.from_dict(fe.to_dict())
        t = time.perf_counter()
        hit = add_motion_values(ds, again, batch_size=b)
        report("add_motion_values again, equal extractor (cache hit)", [time.perf_counter() - t], 1)
        print(json.dumps({"cache_hit_files": [Path(c["filename"]).name for c in hit.cache_files],
                          "load_avg": os.getloadavg()}), flush=True)  # fmt: skip
        print("| path | processes | best (s) | median (s) | frames/s (best) | frames/s per core (best) | "
              "per core (median) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['path']} | {r['processes']} | {r['seconds']} | {r['median_s']} | {r['frames_per_s']:,} | "
                  f"{r['frames_per_s_per_core']:,} | {r['median_frames_per_s_per_core']:,} |")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
