"""Does int8 keep the retrieval ranks? R@1 of a trained model: eager fp32 vs ONNX fp32 vs ONNX int8.

Exports the model in ``--model`` to a temporary folder (fp32, then an int8 copy), encodes ``--split`` of
``--dataset`` with each engine through the same code as ``motionpatch-evaluate`` (``training/encode.py``) and prints
R@1/R@5 per protocol and direction, plus how often the top-1 item of each query is the one eager fp32 picks
(for motion-to-text, the top-1 caption: texts with the same caption have the same embedding and tie).

    python benchmarks/bench_onnx_retrieval.py --model runs/demo/best --dataset synthetic --synthetic-size 200

Accuracy, not speed: every figure is a metric of the same split (``--quick``: 40 pairs). ``--json PATH`` writes the
table and the raw numbers.
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
from timing import Report, add_output_args, markdown_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="a trained MotionPatch model folder (read only)")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--split", default="test")
    parser.add_argument("--synthetic-size", type=int, default=200)
    parser.add_argument("--synthetic-seed", type=int, default=0)
    parser.add_argument("--protocols", default="strict,all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    add_output_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.synthetic_size = 40
    report = Report("onnx_retrieval", quick=args.quick, extra_packages=("onnxruntime",))

    from motionpatch_training.encode import (
        encode_motions,
        encode_texts,
        load_eval_data,
        load_model_and_processor,
        make_accelerator,
        text_max_length_of,
    )
    from motionpatch_training.evaluate_retrieval import first_captions
    from motionpatch_training.evaluation import flatten_metrics

    from modeling_motionpatch.apps.modeling_onnx import MotionPatchOnnxModel
    from modeling_motionpatch.apps.onnx_export import export_onnx, quantize_onnx
    from modeling_motionpatch.apps.retrieval_metrics import compute_retrieval_metrics

    torch.set_num_threads(args.threads)
    accelerator = make_accelerator(cpu=True)
    model, processor = load_model_and_processor(args.model)
    data = load_eval_data(args.dataset, args.split, synthetic_size=args.synthetic_size,
                          synthetic_seed=args.synthetic_seed)
    rows, captions = first_captions(data.dataset, "captions", args.dataset, args.split)
    motions = data.dataset.select(rows)["motion"]
    max_length = text_max_length_of(args.model)
    protocols = args.protocols.split(",")

    tmp = Path(tempfile.mkdtemp(prefix="bench-onnx-retrieval-"))
    export_onnx(model, processor, tmp / "fp32")
    quantize_onnx(tmp / "fp32", tmp / "int8")
    engines = {"eager fp32": model}
    for name in ("fp32", "int8"):
        engines[f"ONNX {name}"] = MotionPatchOnnxModel.from_pretrained(tmp / name, num_threads=args.threads)

    reference_top1 = None
    rows_out = []
    for name, engine in engines.items():
        t = time.perf_counter()
        text = encode_texts(accelerator, engine, processor, captions, args.batch_size, max_length)
        motion = encode_motions(accelerator, engine, processor, lambda i: motions[i], len(motions), args.batch_size)
        seconds = time.perf_counter() - t
        flat = flatten_metrics(compute_retrieval_metrics(text, motion, captions=captions, protocols=protocols))
        sim = text @ motion.T
        # t2m: the top-1 motion; m2t: the caption of the top-1 text (texts with one caption tie exactly)
        top1 = (sim.argmax(1).tolist(), [captions[j] for j in sim.argmax(0).tolist()])
        if reference_top1 is None:
            reference_top1 = top1
        same = [100 * sum(x == y for x, y in zip(a, b)) / len(a) for a, b in zip(top1, reference_top1)]
        row = {"engine": name, "encode_s": round(seconds, 2), "top1_same_as_eager_t2m": same[0],
               "top1_same_as_eager_m2t": same[1]}
        for p in protocols:
            for d in ("t2m", "m2t"):
                for k in ("R@1", "R@5"):
                    row[f"{p}/{d}/{k}"] = round(flat[f"{p}/{d}/{k}"], 2)
        rows_out.append(row)
        print(json.dumps(row), flush=True)

    cols = [f"{p}/{d}/R@1" for p in protocols for d in ("t2m", "m2t")]
    report.raw.update({"model": str(args.model), "dataset": args.dataset, "split": args.split, "pairs": len(captions),
                       "distinct_captions": len(set(captions)), "rows": rows_out})
    report.table(
        "ranks",
        f"`{Path(args.model).parent.name}/{Path(args.model).name}` on {args.dataset} [{args.split}], {len(captions)} "
        f"pairs, {len(set(captions))} distinct captions, {args.threads} threads",
        markdown_table(["engine", *cols, "top-1 same as eager (t2m / m2t, %)"],
                       [[r["engine"], *(r[c] for c in cols),
                         f"{r['top1_same_as_eager_t2m']:.1f} / {r['top1_same_as_eager_m2t']:.1f}"] for r in rows_out]),
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
