"""Motion-tower inference on CPU: eager fp32, eager bf16, torch.compile, ONNX fp32, ONNX int8, interleaved.

Random weights, ``motion_values`` of the config's image size. For each thread count, the engines run interleaved
(``timing.interleaved``): batch-1 latency over ``--rounds`` x ``--repeats`` rounds, then batch-``--batch``
throughput over as many rounds; the table gives the medians, the ratio of each engine's median throughput to eager
fp32's (median over median) and the range of the same-round ratios. ``--conv-ab`` adds an int8 graph whose
patch-embedding ``Conv`` is quantised too (what ``quantize_onnx`` did before it left the Conv in fp32), so the A/B of
that choice is measured in the same rounds. Default tower: ViT-B/16 over 224 x 80 (``--hidden 768 --layers 12
--heads 12``). ``--quick``: a 2 x 64 tower, batch 4, 1 thread, 2 rounds, no torch.compile.

    python benchmarks/bench_onnx.py --hidden 384 --layers 6 --heads 6 --threads 1 2 --conv-ab --json /tmp/onnx.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Report, add_output_args, cpu_flags, fmt_ratio, interleaved, markdown_table, ratio  # noqa: E402


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
    )
    torch.manual_seed(0)
    model = MotionPatchModel(config).eval()
    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=args.frames), tok)
    return model, processor


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
    parser.add_argument("--conv-ab", action="store_true", help="also an int8 graph with the patch-embedding Conv int8")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile (its compilation is slow)")
    add_output_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.layers, args.heads, args.frames, args.batch = 64, 2, 2, 64, 4
        args.repeats, args.rounds, args.threads, args.no_compile = 1, 2, [1], True

    from modeling_motionpatch.apps import onnx_export
    from modeling_motionpatch.apps.modeling_onnx import MotionPatchOnnxModel, projected_features
    from modeling_motionpatch.apps.onnx_export import export_onnx, quantize_onnx

    report = Report("onnx", quick=args.quick, extra_packages=("onnxruntime", "onnx"))
    model, processor = build(args)
    x = torch.randn(args.batch, 3, args.frames, 80)
    tmp = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    t = time.perf_counter()
    export_onnx(model, processor, tmp / "fp32")
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    quantize_onnx(tmp / "fp32", tmp / "int8")
    quant_s = time.perf_counter() - t
    graphs = {"ONNX fp32": "fp32", "ONNX int8": "int8"}
    if args.conv_ab:
        default_ops = onnx_export.INT8_OP_TYPES
        onnx_export.INT8_OP_TYPES = (*default_ops, "Conv")
        try:
            quantize_onnx(tmp / "fp32", tmp / "int8-conv")
        finally:
            onnx_export.INT8_OP_TYPES = default_ops
        graphs["ONNX int8, Conv int8 too"] = "int8-conv"
    bf16 = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())  # else bf16 is emulated: slow, not an option
    params = sum(p.numel() for p in model.motion_model.parameters()) / 1e6
    rows, raw = [], []
    rounds = args.rounds * args.repeats
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
        if not args.no_compile:
            engines["torch.compile fp32"] = compiled_fn
        for label, folder in graphs.items():
            onnx_model = MotionPatchOnnxModel.from_pretrained(tmp / folder, num_threads=threads, providers=args.providers)
            engines[label] = lambda v, m=onnx_model: m.get_motion_features(v).pooler_output
        for fn in engines.values():  # compile / allocate at both shapes before any timing
            fn(x[:1]), fn(x)
        reference = eager(x)
        lat = interleaved({n: (lambda f=f: f(x[:1])) for n, f in engines.items()}, rounds=rounds, warmup=0)
        tput = interleaved({n: (lambda f=f: f(x)) for n, f in engines.items()}, rounds=rounds, warmup=0)
        for name, fn in engines.items():
            out = fn(x).float()
            cos = float(torch.nn.functional.cosine_similarity(out, reference, dim=-1).min())
            r = ratio(tput["eager fp32"], tput[name])
            best_other = min((o for o in engines if o != name), key=lambda o: tput[o].median)
            r_best = ratio(tput[best_other], tput[name])
            rows.append([name, threads, f"{lat[name].median * 1e3:.1f} ({lat[name].min * 1e3:.1f}-{lat[name].max * 1e3:.1f})",
                         f"{args.batch / tput[name].median:,.2f} ({args.batch / tput[name].max:,.2f}-"
                         f"{args.batch / tput[name].min:,.2f})", fmt_ratio(r), f"{fmt_ratio(r_best)} vs {best_other}",
                         f"{cos:.6f}"])
            raw.append({"engine": name, "threads": threads, "batch1": lat[name].summary(), "batch": tput[name].summary(),
                        "throughput_vs_eager_fp32": r, "vs_fastest_other": {"other": best_other, **r_best},
                        "min_cosine_vs_eager": cos})
            print(json.dumps({k: v for k, v in raw[-1].items() if k not in ("batch1", "batch")}), flush=True)
    sizes = {label: (tmp / folder / "motion_encoder.onnx").stat().st_size / 2**20 for label, folder in graphs.items()}
    report.raw.update({"engines": raw, "params_m": params, "export_s": export_s, "int8_quantisation_s": quant_s,
                       "onnx_mib": sizes, "batch": args.batch, "rounds": rounds})
    report.table(
        "engines",
        f"Motion tower ViT {args.layers} x {args.hidden} ({params:.1f} M parameters) over {args.frames} x 80, random "
        f"weights, batch {args.batch}; {rounds} interleaved rounds per thread count",
        markdown_table(["engine", "threads", "batch-1 latency (ms): median (range)",
                        f"batch-{args.batch} motions/s: median (range)", "throughput vs eager fp32",
                        "vs the fastest other engine", "min cosine vs eager"], rows),
        notes=[f"Export {export_s:.1f} s, int8 quantisation {quant_s:.1f} s; ONNX motion graph "
               + ", ".join(f"{k} {v:.1f} MiB" for k, v in sizes.items()) + ".",
               "Ratio: eager fp32's median batch time over the engine's, same rounds; in brackets the range of the "
               "same-round ratios."],
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
