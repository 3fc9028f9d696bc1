"""Throughput of dataset preparation on a generated folder in HumanML3D's layout.

Usage:
    python benchmarks/bench_prepare.py [--clips 2000] [--frames 40 200] [--repeats 3]

Generates ``--clips`` random clips (22 joints, lengths uniform in ``--frames``, 20 fps) with four captions
each (two whole-clip, two segment captions), the same number of extra ids listed in the split files but
absent (the missing-file path), then times, best of ``--repeats``:

1. ``load_humanml3d`` (read + validate + segments + Arrow), clips/s and frames/s;
2. ``add_mirrored`` (mirror every sample), rows/s;
3. ``compute_dataset_statistics`` over the training split, frames/s;
4. ``save_prepared`` in arrow and parquet formats, MB/s of motion data;
5. the same load with ``new_joint_vecs`` only (263-d recovery on every clip), clips/s.

Prints one JSON object. Single thread (BLAS threads pinned to 1 before numpy is imported).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def make_folder(root: Path, clips: int, frames: tuple[int, int], seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    for d in ("new_joints", "new_joint_vecs", "texts"):
        (root / d).mkdir(parents=True)
    total = 0
    ids = []
    for i in range(clips):
        cid = f"{i:06d}"
        t = int(rng.integers(frames[0], frames[1] + 1))
        total += t
        m = rng.normal(scale=0.1, size=(t, 22, 3)).astype(np.float32)
        m[..., 1] += 0.9
        np.save(root / "new_joints" / f"{cid}.npy", m)
        np.save(root / "new_joint_vecs" / f"{cid}.npy", rng.normal(scale=0.02, size=(t, 263)).astype(np.float32))
        seg = t / 20
        (root / "texts" / f"{cid}.txt").write_text(
            f"a person walks.#a/DET#0.0#0.0\nsomeone walks ahead.#x#0.0#0.0\n"
            f"turns left.#t#0.5#{seg / 2:.1f}\nthen stops.#t#{seg / 2:.1f}#{seg:.1f}\n"
        )
        ids.append(cid)
    missing = [f"9{i:05d}" for i in range(clips)]
    n = len(ids)
    (root / "train.txt").write_text("\n".join(ids[: int(n * 0.8)] + missing) + "\n")
    (root / "val.txt").write_text("\n".join(ids[int(n * 0.8) : int(n * 0.9)]) + "\n")
    (root / "test.txt").write_text("\n".join(ids[int(n * 0.9) :]) + "\n")
    return total


def best(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--frames", type=int, nargs=2, default=(40, 200))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from motionpatch_processing.humanml3d import load_humanml3d
    from motionpatch_processing.io import SkippedSamplesWarning, save_prepared
    from motionpatch_processing.mirror import add_mirrored
    from modeling_motionpatch.apps.motion_statistics import compute_dataset_statistics

    warnings.simplefilter("ignore", SkippedSamplesWarning)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hml"
        frames = make_folder(root, args.clips, tuple(args.frames))
        t_load, (dd, report) = best(lambda: load_humanml3d(root), args.repeats)
        rows = sum(len(d) for d in dd.values())
        t_mirror, (_, added) = best(lambda: add_mirrored(dd, "humanml3d"), args.repeats)
        t_stats, stats = best(lambda: compute_dataset_statistics(dd), args.repeats)
        mb = sum(d.data.nbytes for d in dd.values()) / 1e6
        save_times = {}
        for fmt in ("arrow", "parquet"):
            runs = iter(range(args.repeats))

            def save(fmt: str = fmt, runs=runs) -> None:
                save_prepared(dd, Path(tmp) / f"out-{fmt}-{next(runs)}", "humanml3d", format=fmt)

            save_times[fmt], _ = best(save, args.repeats)
        vec_root = Path(tmp) / "vecs"
        vec_root.mkdir()
        (vec_root / "new_joint_vecs").symlink_to(root / "new_joint_vecs")
        for f in ("train.txt", "val.txt", "test.txt"):
            (vec_root / f).write_text((root / f).read_text())
        t_vecs, _ = best(lambda: load_humanml3d(vec_root), args.repeats)
    result = {
        "machine": platform.processor() or platform.machine(),
        "clips": args.clips,
        "frames": frames,
        "rows_with_segments": rows,
        "missing_ids_counted": report.skipped.count("missing motion file"),
        "load_s": round(t_load, 3),
        "load_clips_per_s": round(args.clips / t_load, 1),
        "load_frames_per_s": round(frames / t_load),
        "mirror_s": round(t_mirror, 3),
        "mirror_rows_per_s": round(added / t_mirror, 1),
        "statistics_s": round(t_stats, 3),
        "statistics_frames_per_s": round(stats.num_frames / t_stats),
        "arrow_MB": round(mb, 1),
        "save_arrow_MB_per_s": round(mb / save_times["arrow"], 1),
        "save_parquet_MB_per_s": round(mb / save_times["parquet"], 1),
        "load_from_263d_clips_per_s": round(args.clips / t_vecs, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
