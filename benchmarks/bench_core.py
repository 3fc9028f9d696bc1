"""Core throughput: the feature extractor on real clips, and the default model's forward pass on CPU.

Usage:
    python benchmarks/bench_core.py [--data ../shared/data] [--skip-model] [--threads 1]

1. Feature extractor: the 2,902 clips of the Bandai-Namco ``ds2_h22_20fps.npz`` (22 joints, 20 fps) turned into
   ``motion_values`` in batches of 256, single thread, against a baseline that does what a straightforward
   implementation does per motion (torch ``F.interpolate`` per chain, per motion), run side by side.
2. Model: default config (ViT-B/16 over 224 x 80 + DistilBERT-base, random weights), batch 32, inference mode.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from modeling_motionpatch import MotionPatchConfig, MotionPatchFeatureExtractor, MotionPatchModel, get_skeleton
from modeling_motionpatch.apps.motion_statistics import compute_statistics

REPO = Path(__file__).resolve().parents[1]


def baseline_patches(motions, mean, std, chains, max_frames=224, points=16):
    """A per-motion, per-chain implementation (the shape of typical research code)."""
    out = []
    for m in motions:
        t = torch.from_numpy((m - mean) / std)[:max_frames]  # (T, J, 3)
        parts = [
            F.interpolate(t[:, list(c)].permute(0, 2, 1), size=points, mode="linear", align_corners=False)
            for c in chains
        ]
        img = torch.cat(parts, dim=-1).permute(1, 0, 2)  # (3, T, 80)
        pad = torch.zeros(3, max_frames, img.shape[-1])
        pad[:, : img.shape[1]] = img
        out.append(pad)
    return torch.stack(out)


def bench_feature_extractor(data_dir: Path, batch_size: int = 256, repeats: int = 3):
    npz = np.load(data_dir / "bandai-namco" / "ds2_h22_20fps.npz")
    joints = npz["joints"].astype(np.float32)
    motions = [joints[o : o + n] for o, n in zip(npz["offsets"], npz["lengths"])]
    mean, std = compute_statistics(motions)
    fe = MotionPatchFeatureExtractor("humanml3d", mean=mean, std=std)
    batches = [motions[i : i + batch_size] for i in range(0, len(motions), batch_size)]

    def run_ours():
        for b in batches:
            fe(b, return_tensors="pt")

    def run_baseline():
        for b in batches:
            baseline_patches(b, mean, std, get_skeleton("humanml3d").chains)

    results = {}
    for name, fn in (("motionpatch", run_ours), ("baseline", run_baseline)):
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        results[name] = len(motions) / min(times)
    # parity of the two on the first batch
    ours = fe(batches[0], return_tensors="pt")["motion_values"]
    base = baseline_patches(batches[0], mean, std, get_skeleton("humanml3d").chains)
    diff = (ours - base).abs().max().item()
    frames = int(npz["lengths"].sum())
    return len(motions), frames, results, diff


def bench_model(batch_size: int = 32, repeats: int = 3):
    torch.manual_seed(0)
    model = MotionPatchModel(MotionPatchConfig()).eval()
    values = torch.randn(batch_size, 3, 224, 80)
    ids = torch.randint(1000, 20000, (batch_size, 16))
    mask = torch.ones_like(ids)
    out = {}
    with torch.inference_mode():
        for name, fn in (
            ("motions/s", lambda: model.get_motion_features(values).pooler_output),
            ("texts/s", lambda: model.get_text_features(ids, mask).pooler_output),
        ):
            fn()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            out[name] = batch_size / min(times)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model-threads", type=int, default=None, help="threads for the model pass (default: all)")
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"threads: {torch.get_num_threads()} (feature extractor)")
    if (args.data / "bandai-namco").exists():
        n, frames, res, diff = bench_feature_extractor(args.data)
        print(f"feature extractor, {n} clips ({frames} frames), batch 256:")
        print(f"  motionpatch: {res['motionpatch']:.0f} motions/s ({res['motionpatch'] * frames / n:.0f} frames/s)")
        print(f"  baseline   : {res['baseline']:.0f} motions/s")
        print(f"  speed-up   : {res['motionpatch'] / res['baseline']:.1f}x   (max abs diff vs baseline {diff:.2e})")
    else:
        print(f"skipped feature extractor: {args.data / 'bandai-namco'} not found")
    if not args.skip_model:
        torch.set_num_threads(args.model_threads or os.cpu_count())
        res = bench_model()
        print(f"model forward, ViT-B/16 + DistilBERT, batch 32, {torch.get_num_threads()} threads, fp32:")
        print(f"  motion tower: {res['motions/s']:.1f} motions/s; text tower: {res['texts/s']:.1f} texts/s")


if __name__ == "__main__":
    main()
