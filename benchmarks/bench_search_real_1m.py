"""Exact vs ``faiss-ivfpq`` search over a library-scale gallery of real motion: 1M windows of motion capture.

A motion library of 10^5-10^7 items is in practice cut from long captures (sliding windows, sub-clips of takes,
speed and mirror variants). This builds such a gallery from the real Bandai-Namco dataset 2 (2,902 takes):
``--n`` windows, each a random take, a random length of ``--min-frames`` to the model's ``max_frames`` frames, a
random start, a random playback speed (``--speed``, linear interpolation between frames), mirrored with probability
1/2. Every window is embedded with ``get_motion_features`` of a trained model (``--model``), normalised with the
takes' own statistics. The windows are built and interpolated with NumPy over the whole chunk at once (no loop over
frames or joints).

Queries are **not** in the gallery:

* motion->motion: ``--queries`` windows cut the same way from dataset 1 (174 takes, none in the gallery);
* text->motion: every distinct caption of both index files (label-derived ``caption_template``).

Exact search (``torch``, the reference) runs first in the same process; each of ``--backends`` (``faiss-ivfpq``,
``faiss-ivf``) runs at its documented defaults (``IVFPQ_DEFAULTS``, ``IVF_DEFAULTS``) and at each smaller
``--nprobe``; ``--nlist`` adds ``faiss-ivf`` indexes with other list counts, ``--k-factor`` other ``faiss-ivfpq``
re-ranking depths. With ``--calibrate R`` (default 0.95) each index is also tuned with
``MotionSearchIndex.calibrate_nprobe`` on the first half of the motion queries, then of the text queries, and
measured on the other half of that kind only.
Besides recall@10, each row gives the mean cosine by which the
10th returned item falls short of the exact 10th (both backends return exact scores): near-duplicate windows make
many items nearly tie, and this says whether a miss swapped in a near-tie or a clearly worse item.
One thread for torch and FAISS searches (``--build-threads`` for the build). The embeddings are cached in
``--cache`` (a ``.npz``) so that the search part can be rerun without the 1M forward passes.

    python benchmarks/bench_search_real_1m.py --model runs/demo/best --cache /tmp/real1m.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_search_real import recall_at_k


def load_takes(npz_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All frames ``(sum T, J, 3)`` float32 and each take's ``offsets`` and ``lengths``."""
    with np.load(npz_path) as data:
        return data["joints"].astype(np.float32), data["offsets"].astype(np.int64), data["lengths"].astype(np.int64)


def sample_windows(
    frames: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    count: int,
    max_frames: int,
    min_frames: int,
    speed: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` windows ``(count, max_frames, J, 3)`` (zero after each window's length) and their lengths."""
    take = rng.integers(0, len(lengths), size=count)
    rate = rng.uniform(*speed, size=count)
    span = lengths[take] - 1  # source frames a window may cover, minus one
    want = rng.integers(min_frames, max_frames + 1, size=count)
    fit = np.floor(span / rate).astype(np.int64) + 1  # the most output frames the take holds at this rate
    out_len = np.minimum(want, fit)
    start = rng.uniform(0.0, 1.0, size=count) * (span - (out_len - 1) * rate)
    steps = np.arange(max_frames)
    pos = start[:, None] + rate[:, None] * steps[None, :]  # (count, max_frames) source positions
    pos = np.minimum(pos, span[:, None].astype(np.float64))
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, span[:, None])
    frac = (pos - low).astype(np.float32)[..., None, None]
    base = offsets[take][:, None]
    windows = frames[base + low] * (1.0 - frac) + frames[base + high] * frac
    windows[steps[None, :] >= out_len[:, None]] = 0.0
    return windows, out_len


def embed(args, model, processor, source, count: int, seed: int, mirror) -> np.ndarray:
    """L2-normalised motion embeddings of ``count`` windows of ``source``, ``--chunk`` windows at a time."""
    rng = np.random.default_rng(seed)
    fe = processor.feature_extractor
    out = np.empty((count, model.config.projection_dim), dtype=np.float32)
    for first in range(0, count, args.chunk):
        n = min(args.chunk, count - first)
        windows, lengths = sample_windows(*source, n, fe.max_frames, args.min_frames, tuple(args.speed), rng)
        flip = rng.random(n) < 0.5
        windows[flip] = mirror(windows[flip])
        batch = fe([windows[i, : lengths[i]] for i in range(n)], return_tensors="pt")
        with torch.inference_mode():
            feats = model.get_motion_features(
                motion_values=batch["motion_values"], motion_attention_mask=batch["motion_attention_mask"]
            )
        feats = getattr(feats, "pooler_output", feats)
        out[first : first + n] = torch.nn.functional.normalize(feats, dim=-1).numpy()
    return out


def main() -> None:
    import faiss
    from motionpatch_processing.mirror import mirror_motion
    from transformers import AutoModel, AutoProcessor

    import modeling_motionpatch  # noqa: F401  (registers the Auto classes)
    from modeling_motionpatch.apps.motion_statistics import compute_statistics
    from modeling_motionpatch.motion_patches import MotionInputWarning
    from modeling_motionpatch.apps.search_index import IVFPQ_DEFAULTS, MotionSearchIndex

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="a trained MotionPatch folder (model + processor)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--n", type=int, default=1_000_000, help="gallery windows (dataset 2)")
    parser.add_argument("--queries", type=int, default=1000, help="motion query windows (dataset 1)")
    parser.add_argument("--min-frames", type=int, default=24)
    parser.add_argument("--speed", type=float, nargs=2, default=[0.8, 1.25])
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--embed-threads", type=int, default=2)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256])
    parser.add_argument("--backends", nargs="+", default=["faiss-ivfpq", "faiss-ivf"])
    parser.add_argument("--nlist", type=int, nargs="*", default=[], help="extra faiss-ivf indexes with these nlist")
    parser.add_argument("--k-factor", type=int, nargs="*", default=[], help="extra faiss-ivfpq k_factor values")
    parser.add_argument("--calibrate", type=float, default=0.95,
                        help="also calibrate_nprobe to this recall on the first half of the queries (0: skip)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=None, help=".npz holding (or to receive) the embeddings")
    args = parser.parse_args()
    warnings.simplefilter("ignore", MotionInputWarning)
    root = Path(args.data) / "bandai-namco"
    model = AutoModel.from_pretrained(args.model).eval()
    processor = AutoProcessor.from_pretrained(args.model)
    texts = sorted({json.loads(line)["caption_template"] for name in ("ds1", "ds2")
                    for line in (root / f"{name}_index.jsonl").read_text().splitlines() if line.strip()})  # fmt: skip
    info = {"model": str(args.model), "n": args.n, "queries": args.queries, "captions": len(texts),
            "load_avg_start": os.getloadavg()}  # fmt: skip
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        data = np.load(cache)
        gallery, motion_q, text_q = data["gallery"], data["motion_queries"], data["text_queries"]
        info["embeddings"] = f"cached in {cache}"
    else:
        torch.set_num_threads(args.embed_threads)
        gallery_src, query_src = load_takes(root / "ds2_h22_20fps.npz"), load_takes(root / "ds1_h22_20fps.npz")
        takes = [gallery_src[0][o : o + n] for o, n in zip(gallery_src[1], gallery_src[2])]
        processor.feature_extractor.set_statistics(*compute_statistics(takes))

        def mirror(x):
            return mirror_motion(x, "humanml3d")

        t = time.perf_counter()
        gallery = embed(args, model, processor, gallery_src, args.n, args.seed, mirror)
        info["embed_s"] = round(time.perf_counter() - t, 1)
        info["embed_windows_per_s"] = round(args.n / info["embed_s"], 1)
        motion_q = embed(args, model, processor, query_src, args.queries, args.seed + 1, mirror)
        with torch.inference_mode():
            tok = processor(text=texts, return_tensors="pt", padding=True)
            feats = model.get_text_features(**tok)
        text_q = torch.nn.functional.normalize(getattr(feats, "pooler_output", feats), dim=-1).numpy()
        if cache is not None:
            np.savez(cache, gallery=gallery, motion_queries=motion_q, text_queries=text_q)
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    info["dim"] = int(gallery.shape[1])
    ids = [str(i) for i in range(len(gallery))]
    queries = {"motion": torch.from_numpy(motion_q), "text": torch.from_numpy(text_q)}

    def timed(index, q):
        best, res = float("inf"), None
        for _ in range(args.repeats):
            t = time.perf_counter()
            res = index.search_by_motion(q, k=10)
            best = min(best, time.perf_counter() - t)
        return res, len(q) / best

    rows, ref = [], {}
    exact = MotionSearchIndex(torch.from_numpy(gallery), ids, normalize=False)
    for kind, q in queries.items():
        ref[kind] = timed(exact, q)
        scores = ref[kind][0].scores
        # how close the exact neighbours are: the 1st-to-10th cosine spread, median over queries
        info[f"{kind}_top1_minus_top10_cosine_median"] = round(float((scores[:, 0] - scores[:, -1]).median()), 5)
    print(json.dumps(info), flush=True)
    rows.append({"backend": "torch (exact, the reference)", "build_s": 0.0, "bytes_per_item": 0,
                 **{f"{kind}_{key}": val for kind in queries
                    for key, val in (("recall", 1.0), ("qps", round(ref[kind][1], 1)), ("speedup", 1.0))}})  # fmt: skip
    print(json.dumps(rows[-1]), flush=True)
    halves = {kind: len(q) // 2 for kind, q in queries.items()}

    def measure(index, kind: str, rows_of_kind: slice = slice(None)) -> dict:
        """Recall@10, 10th cosine gap and speed of ``index`` on the ``kind`` queries ``rows_of_kind``."""
        got, qps = timed(index, queries[kind][rows_of_kind])
        exact_res = ref[kind][0]
        # returned scores are exact for both backends: how far below the exact 10th is the 10th returned
        gap = float((exact_res.scores[rows_of_kind, -1] - got.scores[:, -1]).mean())
        return {f"{kind}_recall": round(recall_at_k(got.indices, exact_res.indices[rows_of_kind]), 4),
                f"{kind}_10th_cosine_gap": round(gap, 5),
                f"{kind}_qps": round(qps, 1), f"{kind}_speedup": round(qps / ref[kind][1], 1)}  # fmt: skip

    def calibrated_rows(index, backend, key, build, size):
        """Per query kind: calibrate_nprobe on the first half of its queries, recall and speed on the second half."""
        if key == "ivfpq":
            index.set_k_factor(IVFPQ_DEFAULTS["k_factor"])
        out_rows = []
        for kind, q in queries.items():
            t = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = index.calibrate_nprobe(q[: halves[kind]], target_recall=args.calibrate, k=10)
            row = {"backend": backend, "params": dict(getattr(index, key)), "defaults": False,
                   "calibrated": {"on": kind, "target_recall": args.calibrate, "reached": out["reached"],
                                  "calibration_recall": round(out["recall"], 4),
                                  "seconds": round(time.perf_counter() - t, 1),
                                  "warning": str(caught[0].message) if caught else None},
                   "build_s": round(build, 1), "bytes_per_item": round(size, 1)}  # fmt: skip
            out_rows.append(row | measure(index, kind, slice(halves[kind], None)))
        return out_rows

    for backend in args.backends:
        key = "ivfpq" if backend == "faiss-ivfpq" else "ivf"
        for nlist in [None, *(args.nlist if backend == "faiss-ivf" else [])]:
            faiss.omp_set_num_threads(args.build_threads)
            t = time.perf_counter()
            index = MotionSearchIndex(torch.from_numpy(gallery), ids, normalize=False, backend=backend,
                                      **{key: None if nlist is None else {"nlist": nlist}})  # fmt: skip
            build = time.perf_counter() - t
            faiss.omp_set_num_threads(1)
            params = dict(getattr(index, key))
            size = faiss.serialize_index(index._faiss_index).nbytes / len(ids)
            k_factors = [params["k_factor"], *[f for f in args.k_factor if f != params["k_factor"]]] if key == "ivfpq" else [None]
            for k_factor in k_factors:
                if k_factor is not None:
                    index.set_k_factor(k_factor)
                index.set_nprobe(params["nprobe"])
                for nprobe in [None, *sorted({p for p in args.nprobe if p < params["nprobe"]}, reverse=True)]:
                    if nprobe is not None:
                        index.set_nprobe(nprobe)
                    defaults = nlist is None and nprobe is None and k_factor == k_factors[0]
                    row = {"backend": backend, "params": dict(getattr(index, key)), "defaults": defaults,
                           "build_s": round(build, 1), "bytes_per_item": round(size, 1)}  # fmt: skip
                    for kind in queries:
                        row |= measure(index, kind)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            if args.calibrate:
                for row in calibrated_rows(index, backend, key, build, size):
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(json.dumps({"load_avg_end": os.getloadavg()}), flush=True)
    print("\n| backend | build (s) | motion->motion recall@10 | 10th cosine gap | queries/s | vs exact | "
          "text->motion recall@10 | 10th cosine gap | queries/s | vs exact |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for r in rows:
        p = r.get("params")
        if r.get("calibrated"):
            c = r["calibrated"]
            p = dict(p, nprobe=f"{p['nprobe']} (calibrate_nprobe to {c['target_recall']} on half of the {c['on']} "
                               f"queries; the other half)")  # fmt: skip
        name = r["backend"] if p is None else (
            f"{r['backend']}, nlist {p['nlist']}, nprobe {p['nprobe']}"
            + (f", k_factor {p['k_factor']}" if "k_factor" in p else "") + (" (defaults)" if r["defaults"] else ""))
        cells = []
        for kind in ("motion", "text"):
            if f"{kind}_recall" in r:
                cells += [r[f"{kind}_recall"], r.get(f"{kind}_10th_cosine_gap", 0), f"{r[f'{kind}_qps']:,}",
                          f"{r[f'{kind}_speedup']}x"]  # fmt: skip
            else:
                cells += ["-"] * 4
        print(f"| {name} | {r['build_s']} | " + " | ".join(str(c) for c in cells) + " |")

if __name__ == "__main__":
    main()
