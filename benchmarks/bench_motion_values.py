"""Throughput of `add_motion_values` (`Dataset.map`, num_proc 1 and 2) against calling the feature extractor directly.

Data: the 2,902 real Bandai-Namco dataset-2 clips (``ds2_h22_20fps.npz``, 256,612 frames at 20 fps, 22 joints), made
a schema dataset with ``dataset_from_npz`` in a temporary folder. The extractor is the 224-frame default with the
clips' own statistics. Each worker is single-threaded (numpy/BLAS and torch at 1 thread), so frames/s per core is
the frames/s divided by the number of processes.

Rows 1-3 run interleaved (``timing.interleaved``, ``--repeats`` rounds after one warm-up round): median and range
of the rounds, and each row's ratio to the direct call of the same rounds. ``--quick``: 300 clips, 2 rounds.

Rows, all in one run:
1. direct: ``feature_extractor(motions[i:i + 64])`` over the clips already in memory (the baseline; no Arrow).
2. ``add_motion_values(num_proc=1)``: read the motions from Arrow, extract, write the three columns to the cache.
3. ``add_motion_values(num_proc=2)``: the same with two worker processes.
4. a second ``add_motion_values`` call with an equal extractor: the cache hit (nothing recomputed).

    python benchmarks/bench_motion_values.py [--data ../shared/data] [--repeats 5] [--quick] [--json PATH]
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
sys.path.insert(0, str(REPO / "benchmarks"))
from timing import Report, add_output_args, fmt_ratio, interleaved, markdown_table, ratio  # noqa: E402


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
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds")
    parser.add_argument("--batch-size", type=int, default=64)
    add_output_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.repeats = 2
    report = Report("motion_values", quick=args.quick, extra_packages=("datasets", "pyarrow"))
    torch.set_num_threads(1)
    datasets.disable_progress_bars()
    warnings.simplefilter("ignore", MotionInputWarning)  # 26 clips are shorter than one patch row (16 frames)
    npz = Path(args.data) / "bandai-namco" / "ds2_h22_20fps.npz"
    tmp = Path(tempfile.mkdtemp(prefix="bench_motion_values_"))
    try:
        dd, skeleton = dataset_from_npz(npz, splits=lambda name: "train", cache_dir=tmp / "arrow")
        ds = dd["train"]
        if args.quick:
            ds = ds.select(range(300)).flatten_indices()
        motions = [np.asarray(m, dtype=np.float32) for m in ds.with_format("numpy")["motion"]]
        frames = int(sum(len(m) for m in motions))
        mean, std = compute_statistics(motions)
        fe = MotionPatchFeatureExtractor(skeleton.to_dict(), mean=mean, std=std)
        b = args.batch_size
        info = {"clips": len(motions), "frames": frames, "max_frames": fe.max_frames, "batch_size": b}
        print(json.dumps(info), flush=True)

        def direct():
            return [fe(motions[i : i + b], return_tensors="np")["motion_values"] for i in range(0, len(motions), b)]

        fns = {
            "direct": direct,
            "num_proc=1": lambda: add_motion_values(ds, fe, num_proc=None, batch_size=b),
            "num_proc=2": lambda: add_motion_values(ds, fe, num_proc=2, batch_size=b),
        }

        def fresh(name):  # every timed call computes and writes its cache anew, and frees the last output first
            for t_ in timings_ref.values():
                t_.result = None
            ds.cleanup_cache_files()

        timings_ref: dict = {}
        t = interleaved(fns, rounds=args.repeats, warmup=1, before_each=fresh)
        timings_ref = t
        reference = np.concatenate(direct())
        checks = {}
        for procs in (1, 2):
            out = add_motion_values(ds, fe, num_proc=None if procs == 1 else procs, batch_size=b)
            values = out.with_format("numpy", columns=["motion_values"])
            checks[procs] = all(np.array_equal(values[i : i + 256]["motion_values"], reference[i : i + 256])
                                for i in range(0, len(values), 256))
            checks[f"{procs}_mib_written"] = round(sum(Path(c["filename"]).stat().st_size for c in out.cache_files) / 2**20, 1)
        again = MotionPatchFeatureExtractor.from_dict(fe.to_dict())
        t0 = time.perf_counter()
        add_motion_values(ds, again, batch_size=b)
        hit_s = time.perf_counter() - t0
        rows = []
        for name, procs, label in (("direct", 1, "direct `feature_extractor(motions[i:i+64])`, clips in memory (the baseline)"),
                                   ("num_proc=1", 1, "`add_motion_values(ds, fe)` (Arrow in, Arrow out)"),
                                   ("num_proc=2", 2, "`add_motion_values(ds, fe, num_proc=2)`")):
            tm = t[name]
            rows.append([label, procs, f"{tm.median:.2f} ({tm.min:.2f}-{tm.max:.2f})", f"{frames / tm.median:,.0f}",
                         f"{frames / tm.median / procs:,.0f}", fmt_ratio(ratio(t["direct"], tm))])
        rows.append(["`add_motion_values` again with an equal extractor (cache hit), one call", 1, f"{hit_s:.2f}",
                     f"{frames / hit_s:,.0f}", "-", "-"])
        report.raw.update({"info": info, "checks": checks, "cache_hit_s": hit_s,
                           **{k: v.summary() for k, v in t.items()}})
        report.table(
            "paths",
            f"`add_motion_values` against the direct call: {len(motions):,} real clips ({frames:,} frames), batches "
            f"of {b}, 1 thread per process, {args.repeats} interleaved rounds",
            markdown_table(["path", "processes", "seconds: median (range)", "frames/s (median)",
                            "frames/s per process (median)", "speed vs direct"], rows),
            notes=[f"The values written with num_proc 1 and 2 equal the direct call's: {checks[1] and checks[2]}; "
                   f"Arrow written: {checks['1_mib_written']} MiB.",
                   "Speed vs direct: the direct call's median time over the row's (below 1: slower), same rounds."],
        )
        report.write(args.json)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
