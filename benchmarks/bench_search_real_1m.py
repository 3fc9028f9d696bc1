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

Each kind of query is split in two disjoint halves: the **calibration** half (the first) and the **reported** half
(the second). Every tuned setting is chosen on the calibration half only (``MotionSearchIndex.calibrate_nprobe`` to
``--calibrate`` recall@10, the "calibrated" rows), and every figure in the table (recall, speed) is measured on the
reported half. The sweep rows (the documented defaults, ``--nprobe``, ``--nlist``, ``--k-factor``) are measured on
the reported half too; reading a "best" row off the sweep would be choosing on the reported queries, so the
headline is the calibrated row.

Speed is timed with ``timing.interleaved``: for each index and kind of query, exact search through the torch path
(``backend="torch"``), the package's FAISS flat exact search (``backend="faiss"``, the fastest exact alternative a
user has) and every setting of the index run round-robin over ``--repeats`` rounds on the reported half; queries/s is
the median, and each row's speed-up is stated against both exact searches of the same rounds (median over median).
Besides recall@10, each row gives the mean cosine by which the
10th returned item falls short of the exact 10th (both backends return exact scores): near-duplicate windows make
many items nearly tie, and this says whether a miss swapped in a near-tie or a clearly worse item.
One thread for torch and FAISS searches (``--build-threads`` for the build). The embeddings are cached in
``--cache`` (a ``.npz``) so that the search part can be rerun without the 1M forward passes. ``--quick``: 5,000
windows, 200 motion queries, 2 rounds, no ``faiss-ivfpq`` (seconds after the embedding; figures meaningless).

    python benchmarks/bench_search_real_1m.py --model runs/demo/best --cache /tmp/real1m.npz
"""

from __future__ import annotations

import argparse
import hashlib
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
from timing import Report, add_output_args, interleaved, markdown_table, ratio  # noqa: E402


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


def cache_key(args) -> str:
    """What the cached embeddings depend on: the model's weights and config, the sizes and the seed."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "processor_config.json", "preprocessor_config.json"):
        path = Path(args.model) / name
        if path.exists():
            digest.update(name.encode() + path.read_bytes())
    digest.update(f"n={args.n} queries={args.queries} seed={args.seed}".encode())
    return digest.hexdigest()


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
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=None, help=".npz holding (or to receive) the embeddings")
    add_output_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.repeats = min(args.n, 5_000), min(args.queries, 200), 2
        args.nprobe = [p for p in args.nprobe if p in (4, 16)] or [4]
        args.nlist, args.k_factor = [], []
        args.backends = [b for b in args.backends if b != "faiss-ivfpq"] or args.backends  # its PQ training: ~30 s
    report = Report("search_real_1m", quick=args.quick, extra_packages=("faiss-cpu",))
    warnings.simplefilter("ignore", MotionInputWarning)
    root = Path(args.data) / "bandai-namco"
    model = AutoModel.from_pretrained(args.model).eval()
    processor = AutoProcessor.from_pretrained(args.model)
    texts = sorted({json.loads(line)["caption_template"] for name in ("ds1", "ds2")
                    for line in (root / f"{name}_index.jsonl").read_text().splitlines() if line.strip()})
    info = {"model": str(args.model), "n": args.n, "queries": args.queries, "captions": len(texts),
            "load_avg_start": os.getloadavg()}
    cache = Path(args.cache) if args.cache else None
    key = cache_key(args)
    cached = None
    if cache is not None and cache.exists():
        cached = np.load(cache)
        stored = str(cached["key"]) if "key" in cached.files else None
        if stored != key:
            print(f"[bench] {cache} holds the embeddings of another model or sizes: recomputing them", flush=True)
            cached = None
    if cached is not None:
        gallery, motion_q, text_q = cached["gallery"], cached["motion_queries"], cached["text_queries"]
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
            np.savez(cache, gallery=gallery, motion_queries=motion_q, text_queries=text_q, key=np.array(key))
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    info["dim"] = int(gallery.shape[1])
    ids = [str(i) for i in range(len(gallery))]
    halves = {"motion": len(motion_q) // 2, "text": len(text_q) // 2}
    calib = {"motion": torch.from_numpy(motion_q[: halves["motion"]]), "text": torch.from_numpy(text_q[: halves["text"]])}
    queries = {"motion": torch.from_numpy(motion_q[halves["motion"] :]), "text": torch.from_numpy(text_q[halves["text"] :])}
    info["calibration_queries"] = {k: len(v) for k, v in calib.items()}
    info["reported_queries"] = {k: len(v) for k, v in queries.items()}

    exact = MotionSearchIndex(torch.from_numpy(gallery), ids, normalize=False)
    flat = MotionSearchIndex(torch.from_numpy(gallery), ids, normalize=False, backend="faiss")
    ref = {kind: exact.search_by_motion(q, k=10) for kind, q in queries.items()}
    for kind in queries:
        scores = ref[kind].scores
        # how close the exact neighbours are: the 1st-to-10th cosine spread, median over queries
        info[f"{kind}_top1_minus_top10_cosine_median"] = round(float((scores[:, 0] - scores[:, -1]).median()), 5)
    print(json.dumps(info), flush=True)

    def group(kind: str, settings: dict[str, tuple[MotionSearchIndex, dict]]) -> dict:
        """Exact torch, FAISS flat and every setting, interleaved over the reported ``kind`` queries."""
        q = queries[kind]
        fns = {"torch": lambda: exact.search_by_motion(q, k=10), "faiss flat": lambda: flat.search_by_motion(q, k=10)}

        def apply(name: str) -> None:
            if name in settings:
                index, setting = settings[name]
                if "k_factor" in setting:
                    index.set_k_factor(setting["k_factor"])
                index.set_nprobe(setting["nprobe"])

        for name, (index, _) in settings.items():
            fns[name] = lambda index=index: index.search_by_motion(q, k=10)
        return interleaved(fns, rounds=args.repeats, warmup=1, before_each=apply)

    def cells(kind: str, t: dict, name: str) -> dict:
        got, exact_res = t[name].result, ref[kind]
        gap = float((exact_res.scores[:, -1] - got.scores[:, -1]).mean())  # both return exact scores
        vs_torch, vs_flat = ratio(t["torch"], t[name]), ratio(t["faiss flat"], t[name])
        return {f"{kind}_recall": round(recall_at_k(got.indices, exact_res.indices), 4),
                f"{kind}_10th_cosine_gap": round(gap, 5), f"{kind}_qps": round(len(queries[kind]) / t[name].median, 1),
                f"{kind}_vs_torch": vs_torch, f"{kind}_vs_faiss_flat": vs_flat,
                f"{kind}_times": t[name].summary()}

    rows = []
    t_exact = {kind: group(kind, {}) for kind in queries}
    for backend, name in (("torch", "torch (exact, the reference)"), ("faiss flat", "faiss flat (exact)")):
        row = {"backend": name, "build_s": 0.0, "bytes_per_item": 0}
        for kind in queries:
            row |= cells(kind, t_exact[kind], backend)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("_times")}), flush=True)

    for backend in args.backends:
        key = "ivfpq" if backend == "faiss-ivfpq" else "ivf"
        for nlist in [None, *(args.nlist if backend == "faiss-ivf" else [])]:
            faiss.omp_set_num_threads(args.build_threads)
            t = time.perf_counter()
            index = MotionSearchIndex(torch.from_numpy(gallery), ids, normalize=False, backend=backend,
                                      **{key: None if nlist is None else {"nlist": nlist}})
            build = time.perf_counter() - t
            faiss.omp_set_num_threads(1)
            params = dict(getattr(index, key))
            size = faiss.serialize_index(index._faiss_index).nbytes / len(ids)
            k_factors = [params["k_factor"], *[f for f in args.k_factor if f != params["k_factor"]]] if key == "ivfpq" else [None]
            settings: dict[str, tuple] = {}
            meta: dict[str, dict] = {}
            for k_factor in k_factors:
                for nprobe in [params["nprobe"], *sorted({p for p in args.nprobe if p < params["nprobe"]}, reverse=True)]:
                    setting = {"nprobe": nprobe} | ({"k_factor": k_factor} if k_factor is not None else {})
                    name = f"nprobe {nprobe}" + (f", k_factor {k_factor}" if k_factor is not None else "")
                    settings[name] = (index, setting)
                    meta[name] = {"params": params | setting, "calibrated": None,
                                  "defaults": nlist is None and nprobe == params["nprobe"] and k_factor == k_factors[0]}
            calibrated = {}
            if args.calibrate:
                if key == "ivfpq":
                    index.set_k_factor(IVFPQ_DEFAULTS["k_factor"])
                for kind in queries:
                    t = time.perf_counter()
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        out = index.calibrate_nprobe(calib[kind], target_recall=args.calibrate, k=10)
                    setting = {"nprobe": out["nprobe"]} | ({"k_factor": IVFPQ_DEFAULTS["k_factor"]} if key == "ivfpq" else {})
                    calibrated[kind] = (setting, {"on": kind, "target_recall": args.calibrate, "reached": out["reached"],
                                        "calibration_recall": round(out["recall"], 4),
                                        "seconds": round(time.perf_counter() - t, 1),
                                        "warning": str(caught[0].message) if caught else None})
            for kind in queries:
                kind_settings = dict(settings)
                if kind in calibrated:
                    kind_settings["calibrated"] = (index, calibrated[kind][0])
                t_kind = group(kind, kind_settings)
                for name in kind_settings:
                    if name == "calibrated":
                        row = {"backend": backend, "params": params | calibrated[kind][0], "defaults": False,
                               "calibrated": calibrated[kind][1]}
                        rows.append(row | {"build_s": round(build, 1), "bytes_per_item": round(size, 1)} | cells(kind, t_kind, name))
                        continue
                    row = next((r for r in rows if r.get("_key") == (backend, nlist, name)), None)
                    if row is None:
                        row = {"_key": (backend, nlist, name), "backend": backend, **meta[name],
                               "build_s": round(build, 1), "bytes_per_item": round(size, 1)}
                        rows.append(row)
                    row |= cells(kind, t_kind, name)
            for r in rows:
                if r.get("_key", (None, None))[:2] == (backend, nlist):
                    print(json.dumps({k: v for k, v in r.items() if not k.endswith("_times") and k != "_key"}), flush=True)
    for r in rows:
        r.pop("_key", None)
    info["load_avg_end"] = os.getloadavg()
    print(json.dumps({"load_avg_end": info["load_avg_end"]}), flush=True)

    def fx(r: dict) -> str:
        return f"{r['ratio']:.1f}x ({r['round_min']:.1f}-{r['round_max']:.1f})"

    table = []
    for r in rows:
        p = r.get("params")
        if r.get("calibrated"):
            c = r["calibrated"]
            p = dict(p, nprobe=f"**{p['nprobe']}** (calibrate_nprobe to recall {c['target_recall']} on the "
                               f"calibration {c['on']} queries{'' if c['reached'] else ': target not reached'})")
        name = r["backend"] if p is None else (
            f"{r['backend']}, nlist {p['nlist']}, nprobe {p['nprobe']}"
            + (f", k_factor {p['k_factor']}" if "k_factor" in p else "") + (" (defaults)" if r["defaults"] else ""))
        row_cells = []
        for kind in ("motion", "text"):
            if f"{kind}_recall" in r:
                row_cells += [r[f"{kind}_recall"], r.get(f"{kind}_10th_cosine_gap", 0), f"{r[f'{kind}_qps']:,}",
                              fx(r[f"{kind}_vs_torch"]), fx(r[f"{kind}_vs_faiss_flat"])]
            else:
                row_cells += ["-"] * 5
        table.append([name, r["build_s"], *row_cells])
    header = ["backend", "build (s)"]
    for kind in ("motion->motion", "text->motion"):
        header += [f"{kind} recall@10", "10th cosine gap", "queries/s", "vs torch exact", "vs faiss flat exact"]
    report.raw["info"] = info
    report.raw["rows"] = rows
    report.table(
        "search",
        f"Search over {len(gallery):,} windows of real motion ({gallery.shape[1]}-d): recall and speed on the reported "
        f"queries ({info['reported_queries']['motion']} motion, {info['reported_queries']['text']} text), settings "
        f"tuned on {info['calibration_queries']['motion']} / {info['calibration_queries']['text']} other queries; "
        f"{args.repeats} interleaved rounds",
        markdown_table(header, table),
        notes=["vs torch exact / vs faiss flat exact: the exact search's median time over this row's, same rounds; "
               "in brackets the range of the same-round ratios.",
               "Sweep rows are measured on the reported queries: pick a setting from the calibrated rows, not from "
               "the sweep."],
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
