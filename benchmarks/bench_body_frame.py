"""What the body frame and the skeleton check cost the feature extractor, on real clips.

    python benchmarks/bench_body_frame.py [--data ../shared/data] [--rounds 5]

The 2,902 clips of Bandai-Namco ``ds2_h22_20fps.npz`` -> ``motion_values`` (B, 3, 224, 80) in batches of 256, one
thread, with the extractor's defaults (body frame + skeleton check) and with both off (the extractor before them),
interleaved over ``--rounds`` rounds in one process; prints the median motions/s of each and their ratio per round.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from modeling_motionpatch import MotionPatchFeatureExtractor
from modeling_motionpatch.apps.motion_statistics import compute_statistics

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with np.load(args.data / "bandai-namco" / "ds2_h22_20fps.npz") as z:
        joints, offsets, lengths = z["joints"].astype(np.float32), z["offsets"], z["lengths"]
    clips = [joints[o : o + n] for o, n in zip(offsets, lengths)]
    mean, std = compute_statistics([joints])
    engines = {
        "defaults (body frame + skeleton check)": MotionPatchFeatureExtractor(mean=mean, std=std),
        "both off": MotionPatchFeatureExtractor(mean=mean, std=std, body_frame=False, check_skeleton=False),
    }
    rates: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(args.rounds):
        for name, fe in engines.items():
            t = time.perf_counter()
            for s in range(0, len(clips), 256):
                fe(clips[s : s + 256], return_tensors="pt")
            rates[name].append(len(clips) / (time.perf_counter() - t))
    print(f"{len(clips)} clips, batches of 256, 1 thread, {args.rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}")
    for name, r in rates.items():
        print(f"  {name}: median {np.median(r):,.0f} motions/s (rounds {', '.join(f'{x:,.0f}' for x in r)})")
    ratio = np.array(rates["defaults (body frame + skeleton check)"]) / np.array(rates["both off"])
    print(f"  defaults / both off per round: {', '.join(f'{x:.2f}' for x in ratio)} (median {np.median(ratio):.2f})")


if __name__ == "__main__":
    main()
