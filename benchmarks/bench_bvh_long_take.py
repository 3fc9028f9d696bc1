"""Peak memory of importing one long BVH take: a synthetic 10-minute file built from a real Bandai-Namco BVH
(its hierarchy, its MOTION lines repeated to 10 minutes at 30 fps), read with ``read_bvh`` (parse + forward
kinematics) in a fresh process; peak RSS growth (``resource.getrusage``) and tracemalloc peak against the file size.

    python benchmarks/bench_bvh_long_take.py [--minutes 10] [--data ../shared/data] [--quick] [--json PATH]

A single measurement (memory, not a comparison); ``--quick``: a 30-second take.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from timing import Report, add_output_args, markdown_table  # noqa: E402

TAKE = Path("bandai-namco") / "ds1-bvh" / "data" / "dataset-1_walk_normal_001.bvh"


def make_long_bvh(source: Path, target: Path, minutes: float) -> int:
    """Write ``target``: the hierarchy of ``source`` and its MOTION lines repeated to ``minutes``; returns frames."""
    text = source.read_text()
    head, motion = text.split("MOTION", 1)
    lines = motion.strip().splitlines()
    frame_time = float(lines[1].split(":")[1])
    frames = [line for line in lines[2:] if line.strip()]
    total = int(round(minutes * 60 / frame_time))
    with open(target, "w") as fh:
        fh.write(head + f"MOTION\nFrames: {total}\nFrame Time: {lines[1].split(':')[1].strip()}\n")
        for k in range(total):
            fh.write(frames[k % len(frames)] + "\n")
    return total


_CHILD = """
import json, resource, sys, tracemalloc
from modeling_motionpatch.apps.bvh import read_bvh
import numpy as np
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
m = read_bvh(sys.argv[1], scale=0.01)
_, peak = tracemalloc.get_traced_memory()
print(json.dumps({"frames": m.num_frames, "rss_growth": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024,
                  "tracemalloc_peak": peak, "positions_bytes": m.positions.nbytes}))
"""


def measure(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--bvh", type=Path, default=None, help=f"the source take (default: DATA/{TAKE})")
    add_output_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.minutes = 0.5
    args.bvh = args.bvh or args.data / TAKE
    if not args.bvh.exists():
        sys.exit(f"{args.bvh} is absent (real data ships beside the repository, in ../shared/data)")
    report = Report("bvh_long_take", quick=args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.bvh"
        frames = make_long_bvh(args.bvh, path, args.minutes)
        size = os.path.getsize(path)
        result = measure(path)
    report.raw.update({"minutes": args.minutes, "frames": frames, "file_bytes": size, **result})
    mib = 2**20
    report.table(
        "memory",
        f"Peak memory of `read_bvh` on one {args.minutes:g}-minute take ({frames:,} frames, {size / mib:.1f} MiB of "
        f"text, built from `{args.bvh.name}`), fresh process",
        markdown_table(["measure", "MiB", "x the file"], [
            ["peak RSS growth (`ru_maxrss`)", f"{result['rss_growth'] / mib:.1f}", f"{result['rss_growth'] / size:.1f}"],
            ["tracemalloc peak", f"{result['tracemalloc_peak'] / mib:.1f}", f"{result['tracemalloc_peak'] / size:.1f}"],
            ["the positions returned (float32)", f"{result['positions_bytes'] / mib:.1f}",
             f"{result['positions_bytes'] / size:.1f}"],
        ]),
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
