"""Motion-tower inference on CPU: eager fp32, eager bf16, torch.compile, ONNX fp32, ONNX int8, side by side.

Random weights, ``motion_values`` of the config's image size. Batch-1 latency (median of ``--repeats`` calls)
and batch-``--batch`` throughput (best of ``--repeats``) per engine and thread count, measured in ``--rounds``
rounds with the engines interleaved; the table gives the medians over rounds and the range of each round's ratio
to eager fp32. Printed as JSON lines and a Markdown table. Default tower: ViT-B/16 over 224 x 80 (``--hidden 768 --layers 12 --heads 12``).

    python benchmarks/bench_onnx.py --hidden 256 --layers 4 --heads 4 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(args):
    from transformers import BertTokenizerFast

    from modeling_motionpatch import (
        MotionPatchConfig,
        MotionPatchFeatureExtractor,
        MotionPatchModel,
        MotionPatchProcessor,
    )

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "person", "walks"]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    config = MotionPatchConfig(
        motion_config=dict(hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
                           intermediate_size=4 * args.hidden, image_size=[args.frames, 80]),
        text_config=dict(model_type="distilbert", vocab_size=len(vocab), dim=32, n_layers=1, n_heads=2, hidden_dim=64),
    )  # fmt: skip
    torch.manual_seed(0)
    model = MotionPatchModel(config).eval()
    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=args.frames), tok)
    return model, processor


def timed(fn, x, repeats):
    fn(x[:1]), fn(x)  # warm-up (compilation, allocations)
    lat = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x[:1])
        lat.append(time.perf_counter() - t)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t)
    return float(np.median(lat)) * 1e3, len(x) / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--frames", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table gives their median")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--providers", nargs="+", default=["CPUExecutionProvider"])
    args = parser.parse_args()

    from modeling_motionpatch.apps.modeling_onnx import MotionPatchOnnxModel, projected_features
    from modeling_motionpatch.apps.onnx_export import export_onnx, quantize_onnx

    model, processor = build(args)
    x = torch.randn(args.batch, 3, args.frames, 80)
    tmp = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    t = time.perf_counter()
    export_onnx(model, processor, tmp / "fp32")
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    quantize_onnx(tmp / "fp32", tmp / "int8")
    quant_s = time.perf_counter() - t
    bf16 = "avx512_bf16" in Path("/proc/cpuinfo").read_text() or "amx_bf16" in Path("/proc/cpuinfo").read_text()
    params = sum(p.numel() for p in model.motion_model.parameters()) / 1e6
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)

        def eager(v):
            with torch.inference_mode():
                return projected_features(model, "motion", motion_values=v)

        def eager_bf16(v):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return projected_features(model, "motion", motion_values=v)

        compiled = torch.compile(lambda v: projected_features(model, "motion", motion_values=v), dynamic=True)

        def compiled_fn(v):
            with torch.inference_mode():
                return compiled(v)

        engines = {"eager fp32": eager}
        if bf16:
            engines["eager bf16 (autocast)"] = eager_bf16
        engines["torch.compile fp32"] = compiled_fn
        for name in ("fp32", "int8"):
            onnx_model = MotionPatchOnnxModel.from_pretrained(tmp / name, num_threads=threads, providers=args.providers)
            engines[f"ONNX {name}"] = lambda v, m=onnx_model: m.get_motion_features(v).pooler_output
        reference = eager(x)
        measured = {name: [] for name in engines}
        for _ in range(args.rounds):  # engines interleaved, so that a slow spell of the machine hits all of them
            for name, fn in engines.items():
                measured[name].append(timed(fn, x, args.repeats))
        base_tputs = [m[1] for m in measured["eager fp32"]]
        for name, fn in engines.items():
            lat_ms = float(np.median([m[0] for m in measured[name]]))
            tputs = [m[1] for m in measured[name]]
            out = fn(x).float()
            cos = float(torch.nn.functional.cosine_similarity(out, reference, dim=-1).min())
            row = dict(engine=name, threads=threads, batch1_ms=round(lat_ms, 1), throughput=round(float(np.median(tputs)), 2),
                       throughput_per_round=[round(t, 1) for t in tputs],
                       ratio_per_round=[round(t / b, 2) for t, b in zip(tputs, base_tputs)],
                       min_cosine_vs_eager=round(cos, 6))  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = {r["threads"]: r["throughput"] for r in rows if r["engine"] == "eager fp32"}
    print(f"\nmotion tower: ViT {args.layers} x {args.hidden} ({params:.1f} M parameters) over {args.frames} x 80, "
          f"batch {args.batch}; export {export_s:.1f} s, int8 quantisation {quant_s:.1f} s; "
          f"ONNX files fp32 {(tmp / 'fp32' / 'motion_encoder.onnx').stat().st_size / 2**20:.1f} MiB, "
          f"int8 {(tmp / 'int8' / 'motion_encoder.onnx').stat().st_size / 2**20:.1f} MiB\n")  # fmt: skip
    print("| engine | threads | batch-1 latency (ms) | batch-%d motions/s | vs eager fp32 | same-round ratios | "
          "min cosine vs eager |" % args.batch)  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratios = r["ratio_per_round"]
        print(f"| {r['engine']} | {r['threads']} | {r['batch1_ms']} | {r['throughput']} | "
              f"{r['throughput'] / base[r['threads']]:.2f}x | {min(ratios):.2f}-{max(ratios):.2f}x | "
              f"{r['min_cosine_vs_eager']} |")  # fmt: skip


if __name__ == "__main__":
    main()
