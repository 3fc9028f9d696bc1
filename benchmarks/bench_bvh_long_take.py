"""Peak memory of importing one long BVH take: a synthetic 10-minute file built from a real Bandai-Namco BVH
(its hierarchy, its MOTION lines repeated to 10 minutes at 30 fps), read with ``read_bvh`` (parse + forward
kinematics) in a fresh process; peak RSS growth (``resource.getrusage``) and tracemalloc peak against the file size.

    python benchmarks/bench_bvh_long_take.py [--minutes 10] [--bvh ../shared/data/bandai-namco/ds1-bvh/data/...]
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
DEFAULT_BVH = REPO.parent / "shared" / "data" / "bandai-namco" / "ds1-bvh" / "data" / "dataset-1_walk_normal_001.bvh"


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
    parser.add_argument("--bvh", type=Path, default=DEFAULT_BVH)
    args = parser.parse_args()
    if not args.bvh.exists():
        sys.exit(f"{args.bvh} is absent (real data ships beside the repository, in ../shared/data)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.bvh"
        frames = make_long_bvh(args.bvh, path, args.minutes)
        size = os.path.getsize(path)
        result = measure(path)
    print(f"{args.minutes:g}-minute take: {frames} frames, file {size / 2**20:.1f} MiB")
    print(f"peak RSS growth {result['rss_growth'] / 2**20:.1f} MiB = {result['rss_growth'] / size:.1f}x the file; "
          f"tracemalloc peak {result['tracemalloc_peak'] / 2**20:.1f} MiB = {result['tracemalloc_peak'] / size:.1f}x; "
          f"positions (float32) {result['positions_bytes'] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
