"""Core throughput: the feature extractor on real clips, and the default model's forward pass on CPU.

Usage:
    python benchmarks/bench_core.py [--data ../shared/data] [--skip-model] [--threads 1] [--rounds 5] [--quick]
        [--json PATH]

1. Feature extractor: the 2,902 clips of the Bandai-Namco ``ds2_h22_20fps.npz`` (22 joints, 20 fps) turned into
   ``motion_values`` in batches of 256, single thread, against a baseline that does what a straightforward
   implementation does per motion (torch ``F.interpolate`` per chain, per motion). The two are interleaved
   (``timing.interleaved``): every round runs both over all clips, so both see the same machine; the speed-up is
   median over median with the range of the per-round ratios.
2. Model: default config (ViT-B/16 over 224 x 80 + DistilBERT-base, random weights), batch 32, inference mode; the
   two towers interleaved over the same rounds. No baseline: absolute throughput only.

``--quick``: 256 clips, 2 rounds, a tiny random model (seconds; checks that the script runs, figures meaningless).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: numpy's BLAS on one thread, like the torch side it is compared with

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from modeling_motionpatch import MotionPatchConfig, MotionPatchFeatureExtractor, MotionPatchModel, get_skeleton
from modeling_motionpatch.apps.motion_statistics import compute_statistics

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from timing import Report, add_output_args, fmt_rate, fmt_ratio, interleaved, markdown_table, ratio  # noqa: E402


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


def bench_feature_extractor(data_dir: Path, batch_size: int = 256, rounds: int = 5, max_clips: int | None = None):
    npz = np.load(data_dir / "bandai-namco" / "ds2_h22_20fps.npz")
    joints = npz["joints"].astype(np.float32)
    motions = [joints[o : o + n] for o, n in zip(npz["offsets"], npz["lengths"])][:max_clips]
    mean, std = compute_statistics(motions)
    fe = MotionPatchFeatureExtractor("humanml3d", mean=mean, std=std)
    # the same work as the baseline: no body frame, no skeleton check (the extractor's defaults do both)
    fe_plain = MotionPatchFeatureExtractor("humanml3d", mean=mean, std=std, body_frame=False, check_skeleton=False)
    chains = get_skeleton("humanml3d").chains
    batches = [motions[i : i + batch_size] for i in range(0, len(motions), batch_size)]

    def run_ours():
        for b in batches:
            fe(b, return_tensors="pt")

    def run_plain():
        for b in batches:
            fe_plain(b, return_tensors="pt")

    def run_baseline():
        for b in batches:
            baseline_patches(b, mean, std, chains)

    timings = interleaved(
        {"motionpatch": run_ours, "motionpatch_plain": run_plain, "baseline": run_baseline}, rounds=rounds, warmup=1
    )
    # parity with the baseline on the first batch (the extractor doing the same work)
    ours = fe_plain(batches[0], return_tensors="pt")["motion_values"]
    base = baseline_patches(batches[0], mean, std, chains)
    diff = (ours - base).abs().max().item()
    frames = int(sum(len(m) for m in motions))
    return len(motions), frames, timings, diff


def bench_model(config: MotionPatchConfig, batch_size: int = 32, rounds: int = 3):
    torch.manual_seed(0)
    model = MotionPatchModel(config).eval()
    frames = config.motion_config.image_size[0]
    values = torch.randn(batch_size, 3, frames, 80)
    vocab = config.text_config.vocab_size
    ids = torch.randint(min(1000, vocab - 1), vocab, (batch_size, 16))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        return interleaved(
            {
                "motion tower": lambda: model.get_motion_features(values).pooler_output,
                "text tower": lambda: model.get_text_features(ids, mask).pooler_output,
            },
            rounds=rounds,
            warmup=1,
        )


def tiny_config() -> MotionPatchConfig:
    return MotionPatchConfig(
        motion_config=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=[64, 80]
        ),
        text_config=dict(
            model_type="distilbert", vocab_size=64, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
            max_position_embeddings=64,
        ),
        projection_dim=16,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model-threads", type=int, default=None, help="threads for the model pass (default: all)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the feature extractor")
    parser.add_argument("--model-rounds", type=int, default=3, help="interleaved rounds of the model towers")
    parser.add_argument("--skip-model", action="store_true")
    add_output_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.model_rounds = 2, 2
    torch.set_num_threads(args.threads)
    report = Report("core", quick=args.quick)
    if (args.data / "bandai-namco").exists():
        n, frames, t, diff = bench_feature_extractor(
            args.data, rounds=args.rounds, max_clips=256 if args.quick else None
        )
        ours, plain, base = t["motionpatch"], t["motionpatch_plain"], t["baseline"]
        r, r_plain = ratio(base, ours), ratio(base, plain)
        report.raw["feature_extractor"] = {
            "clips": n, "frames": frames, "batch_size": 256, "threads": args.threads, "max_abs_diff": diff,
            "motionpatch": ours.summary(), "motionpatch_plain": plain.summary(), "baseline": base.summary(),
            "speedup_same_work": r_plain, "speedup_defaults": r,
        }
        report.table(
            "feature_extractor",
            f"Feature extractor: {n:,} real clips ({frames:,} frames) to motion_values, batches of 256, "
            f"{args.threads} torch thread(s) and 1 BLAS thread, {args.rounds} interleaved rounds",
            markdown_table(
                ["implementation", "motions/s: median (slowest-fastest round)", "frames/s (median)", "speed-up"],
                [
                    ["motionpatch, `body_frame=False, check_skeleton=False` (the baseline's work)",
                     fmt_rate(n, plain), f"{frames / plain.median:,.0f}", fmt_ratio(r_plain)],
                    ["motionpatch, defaults (+ body frame, + skeleton check)", fmt_rate(n, ours),
                     f"{frames / ours.median:,.0f}", fmt_ratio(r)],
                    ["baseline: per motion, per chain `F.interpolate`", fmt_rate(n, base),
                     f"{frames / base.median:,.0f}", "1.00x"],
                ],
            ),
            notes=[
                f"The extractor without body frame and skeleton check agrees with the baseline to {diff:.1e} (max "
                "abs difference on the first batch); the defaults do more work (body frame, skeleton check).",
                "Speed-up: median over median; in brackets the range of the ratios of the same rounds.",
            ],
        )
    else:
        reason = f"{args.data / 'bandai-namco'} not found"
        report.notes.append(f"feature extractor skipped: {reason}")
        print(f"skipped feature extractor: {reason}")
    if not args.skip_model:
        torch.set_num_threads(args.model_threads or os.cpu_count())
        config = tiny_config() if args.quick else MotionPatchConfig()
        batch = 4 if args.quick else 32
        t = bench_model(config, batch_size=batch, rounds=args.model_rounds)
        name = "tiny random model (--quick)" if args.quick else "ViT-B/16 over 224 x 80 + DistilBERT-base, random weights"
        report.raw["model"] = {"config": name, "batch_size": batch, "threads": torch.get_num_threads(),
                               **{k: v.summary() for k, v in t.items()}}
        report.table(
            "model",
            f"Model forward: {name}, batch {batch}, fp32, inference mode, {torch.get_num_threads()} thread(s), "
            f"{args.model_rounds} interleaved rounds",
            markdown_table(
                ["tower", "items/s: median (slowest-fastest round)"],
                [["motion tower (motions/s)", fmt_rate(batch, t["motion tower"])],
                 ["text tower (texts/s, 16 tokens)", fmt_rate(batch, t["text tower"])]],
            ),
        )
    report.write(args.json)


if __name__ == "__main__":
    main()
