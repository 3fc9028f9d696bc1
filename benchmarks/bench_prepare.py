"""Throughput of dataset preparation on a generated folder in HumanML3D's layout.

Usage:
    python benchmarks/bench_prepare.py [--clips 2000] [--frames 40 200] [--repeats 3] [--quick] [--json PATH]

Generates ``--clips`` random clips (22 joints, lengths uniform in ``--frames``, 20 fps) with four captions
each (two whole-clip, two segment captions), the same number of extra ids listed in the split files but
absent (the missing-file path), then times these stages interleaved over ``--repeats`` rounds (``timing.interleaved``,
median and range; stages, not a comparison: there is no baseline):

1. ``load_humanml3d`` (read + validate + segments + Arrow), clips/s and frames/s;
2. ``add_mirrored`` (mirror every sample), rows/s;
3. ``compute_dataset_statistics`` over the training split, frames/s;
4. ``save_prepared`` in arrow and parquet formats, MB/s of motion data;
5. the same load with ``new_joint_vecs`` only (263-d recovery on every clip), clips/s.

Single thread (BLAS threads pinned to 1 before numpy is imported). ``--quick``: 200 clips, 2 rounds.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np

import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Report, add_output_args, interleaved, markdown_table  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--frames", type=int, nargs=2, default=(40, 200))
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds")
    add_output_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.repeats = 200, 2

    from motionpatch_processing.humanml3d import load_humanml3d
    from motionpatch_processing.io import SkippedSamplesWarning, save_prepared
    from motionpatch_processing.mirror import add_mirrored
    from modeling_motionpatch.apps.motion_statistics import compute_dataset_statistics

    report = Report("prepare", quick=args.quick, extra_packages=("datasets", "pyarrow"))
    warnings.simplefilter("ignore", SkippedSamplesWarning)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hml"
        frames = make_folder(root, args.clips, tuple(args.frames))
        dd, load_report = load_humanml3d(root)
        rows = sum(len(d) for d in dd.values())
        mb = sum(d.data.nbytes for d in dd.values()) / 1e6
        vec_root = Path(tmp) / "vecs"
        vec_root.mkdir()
        (vec_root / "new_joint_vecs").symlink_to(root / "new_joint_vecs")
        for f in ("train.txt", "val.txt", "test.txt"):
            (vec_root / f).write_text((root / f).read_text())
        counter = iter(range(10**6))
        fns = {
            "load": lambda: load_humanml3d(root),
            "mirror": lambda: add_mirrored(dd, "humanml3d"),
            "statistics": lambda: compute_dataset_statistics(dd),
            "save arrow": lambda: save_prepared(dd, Path(tmp) / f"out-{next(counter)}", "humanml3d", format="arrow"),
            "save parquet": lambda: save_prepared(dd, Path(tmp) / f"out-{next(counter)}", "humanml3d",
                                                  format="parquet"),
            "load 263-d": lambda: load_humanml3d(vec_root),
        }
        t = interleaved(fns, rounds=args.repeats, warmup=1)
        added = t["mirror"].result[1]
        stat_frames = t["statistics"].result.num_frames
    counts = {
        "load": (args.clips, "clips/s"),
        "mirror": (added, "rows/s"),
        "statistics": (stat_frames, "frames/s"),
        "save arrow": (mb, "MB/s"),
        "save parquet": (mb, "MB/s"),
        "load 263-d": (args.clips, "clips/s"),
    }
    labels = {
        "load": "`load_humanml3d` (read, validate, segments, Arrow)",
        "mirror": "`add_mirrored` (every sample)",
        "statistics": "`compute_dataset_statistics` (training split)",
        "save arrow": "`save_prepared(format=\"arrow\")`",
        "save parquet": "`save_prepared(format=\"parquet\")`",
        "load 263-d": "`load_humanml3d` from `new_joint_vecs` only (263-d recovery on every clip)",
    }
    table = []
    for name, tm in t.items():
        n, unit = counts[name]
        table.append([labels[name], f"{tm.median:.3f} ({tm.min:.3f}-{tm.max:.3f})", f"{n / tm.median:,.1f} {unit}"])
    report.raw.update({"clips": args.clips, "frames": frames, "rows_with_segments": rows,
                       "missing_ids_counted": load_report.skipped.count("missing motion file"), "arrow_MB": mb,
                       **{k: v.summary() for k, v in t.items()}})
    report.table(
        "stages",
        f"Dataset preparation: {args.clips:,} generated clips in HumanML3D's layout ({frames:,} frames, 22 joints, "
        f"{rows:,} rows with segments, as many missing ids), 1 thread, {args.repeats} interleaved rounds",
        markdown_table(["stage", "seconds: median (range)", "throughput (median)"], table),
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
