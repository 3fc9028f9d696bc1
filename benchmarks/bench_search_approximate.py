"""Approximate (FAISS HNSW, IVF, IVF-PQ) vs exact search in `MotionSearchIndex`: recall@10, memory per item, build time, queries/s.

Galleries: ``random`` (L2-normalised isotropic Gaussian: the worst case for any approximate index, neighbours are
barely nearer than the rest) and ``clustered`` (the generator of tests/test_search_approximate.py). Searches run on
one thread for torch and FAISS; builds on ``--build-threads`` FAISS threads. Memory per item is the FAISS index's own
size (``faiss.serialize_index``) divided by the items; the float32 gallery the index always keeps (4 * dim bytes per
item) is extra and the same for every backend.

Queries come in two disjoint sets of ``--queries`` each: a **calibration** set and a **reported** set. For each
approximate backend the setting to recommend (``nprobe`` of the IVF backends through
``MotionSearchIndex.calibrate_nprobe``; ``efSearch`` of HNSW as the smallest of ``--ef-search`` that reaches the
target) is chosen on the calibration set to reach ``--calibrate`` recall@10; every recall and speed in the table is
measured on the reported set. For each backend, exact search through torch (``backend="torch"``), the package's FAISS
flat exact search (``backend="faiss"``, the fastest exact alternative a user has) and every setting run interleaved
(``timing.interleaved``, ``--rounds`` rounds); queries/s is the median and each speed-up is stated against both exact
searches of the same rounds (median over median, with the range of the same-round ratios). ``--quick``: 5,000 items,
64-d, 50 + 50 queries, 2 rounds, IVF backends only (seconds).

    python benchmarks/bench_search_approximate.py --n 100000 --dim 256 --queries 100
    python benchmarks/bench_search_approximate.py --galleries clustered --backends torch faiss-ivf --nprobe 16 32 64
    python benchmarks/bench_search_approximate.py --backends torch faiss-ivfpq --ivfpq-nprobe 64 256 --k-factor 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import faiss
    import test_search_approximate
    from test_search_approximate import clustered_gallery, recall_at_k
    from timing import Report, add_output_args, interleaved, markdown_table, ratio

    from modeling_motionpatch.apps.search_index import (
        HNSW_DEFAULTS,
        IVF_DEFAULTS,
        MotionSearchIndex,
    )

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100, help="reported queries (as many again calibrate)")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[HNSW_DEFAULTS["ef_search"], 128])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[IVF_DEFAULTS["nprobe"], 64])
    parser.add_argument("--ivfpq-nprobe", type=int, nargs="+", default=None,
                        help="faiss-ivfpq nprobe values (default: the automatic one of IVFPQ_DEFAULTS)")
    parser.add_argument("--k-factor", type=int, nargs="+", default=None,
                        help="faiss-ivfpq k_factor values (default: the one of IVFPQ_DEFAULTS)")
    parser.add_argument("--ivfpq-nlist", type=int, default=None, help="override the automatic nlist of faiss-ivfpq")
    parser.add_argument("--build-threads", type=int, default=1, help="FAISS threads while building (search: 1)")
    parser.add_argument("--galleries", nargs="+", default=["clustered", "random"])
    parser.add_argument("--backends", nargs="+", default=["faiss-hnsw", "faiss-ivf", "faiss-ivfpq"],
                        help="approximate backends (exact torch and FAISS flat always run as the baselines)")
    parser.add_argument("--calibrate", type=float, default=0.95, help="target recall@10 of the tuned setting")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds")
    add_output_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.n, args.dim, args.queries, args.rounds = 5_000, 64, 50, 2
        args.backends = [b for b in args.backends if b != "faiss-hnsw"]
        args.nprobe = [IVF_DEFAULTS["nprobe"], 16]
    args.backends = [b for b in args.backends if b not in ("torch", "faiss")]  # the baselines run anyway
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    report = Report("search_approximate", quick=args.quick, extra_packages=("faiss-cpu",))
    table, raw = [], []

    def fx(r):
        return f"{r['ratio']:.1f}x ({r['round_min']:.1f}-{r['round_max']:.1f})"

    for kind in args.galleries:
        if kind == "random":
            rng = np.random.default_rng(0)
            emb = torch.from_numpy(rng.standard_normal((args.n, args.dim), dtype=np.float32))
            all_q = torch.from_numpy(rng.standard_normal((2 * args.queries, args.dim), dtype=np.float32))
        else:
            test_search_approximate.QUERIES = 2 * args.queries  # fresh draws from the clusters
            emb, all_q, _ = clustered_gallery(args.n, args.dim, clusters=max(100, args.n // 20))
        calib, queries = all_q[: args.queries], all_q[args.queries : 2 * args.queries]
        gallery_name = f"{kind} {args.n:,} x {args.dim}"
        ids = [str(i) for i in range(args.n)]
        t0 = time.perf_counter()
        exact = MotionSearchIndex(emb, ids, backend="torch")
        exact_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        flat = MotionSearchIndex(emb, ids, backend="faiss")
        flat_build = time.perf_counter() - t0
        ref = exact.search(queries, k=10).indices
        baselines = {"torch": lambda: exact.search(queries, k=10), "faiss flat": lambda: flat.search(queries, k=10)}
        t = interleaved(baselines, rounds=args.rounds, warmup=1)
        for name, label, build, index in (("torch", "torch (exact, the reference)", exact_build, exact),
                                          ("faiss flat", "faiss flat (exact)", flat_build, flat)):
            size = 0 if index._faiss_index is None else len(faiss.serialize_index(index._faiss_index))
            row = {"gallery": gallery_name, "backend": label, "build_s": round(build, 2),
                   "bytes_per_item": round(size / args.n, 1), "recall_at_10": 1.0,
                   "qps": round(len(queries) / t[name].median, 1), "vs_torch": ratio(t["torch"], t[name]),
                   "vs_faiss_flat": ratio(t["faiss flat"], t[name]), "times": t[name].summary()}
            raw.append(row)
        for backend in args.backends:
            faiss.omp_set_num_threads(args.build_threads)
            t0 = time.perf_counter()
            index = MotionSearchIndex(emb, ids, backend=backend, ivfpq={"nlist": args.ivfpq_nlist})
            build = time.perf_counter() - t0
            faiss.omp_set_num_threads(1)
            size = len(faiss.serialize_index(index._faiss_index))
            settings: dict[str, dict] = {}
            if backend == "faiss-hnsw":
                for ef in args.ef_search:
                    settings[f"efSearch {ef}"] = {"ef_search": ef}
                # the tuned setting: the smallest efSearch of the sweep whose recall on the calibration set reaches
                # the target (the largest if none does)
                chosen = None
                for ef in sorted(args.ef_search):
                    index.set_ef_search(ef)
                    if recall_at_k(index.search(calib, k=10).indices, exact.search(calib, k=10).indices) >= args.calibrate:
                        chosen = ef
                        break
                tuned = {"ef_search": chosen or max(args.ef_search), "reached": chosen is not None}
            else:
                key = "ivfpq" if backend == "faiss-ivfpq" else "ivf"
                params = dict(getattr(index, key))
                nprobes = args.ivfpq_nprobe if key == "ivfpq" and args.ivfpq_nprobe else (
                    [params["nprobe"]] if key == "ivfpq" else args.nprobe)
                k_factors = (args.k_factor or [params["k_factor"]]) if key == "ivfpq" else [None]
                for nprobe in nprobes:
                    for k_factor in k_factors:
                        name = f"nlist {params['nlist']}, nprobe {nprobe}" + (f", k_factor {k_factor}" if k_factor else "")
                        settings[name] = {"nprobe": nprobe} | ({"k_factor": k_factor} if k_factor else {})
                if key == "ivfpq":
                    index.set_k_factor(params["k_factor"])
                with warnings.catch_warnings(record=True):
                    warnings.simplefilter("always")
                    out = index.calibrate_nprobe(calib, target_recall=args.calibrate, k=10)
                tuned = {"nlist": params["nlist"], "nprobe": out["nprobe"], "reached": out["reached"]}
                if key == "ivfpq":
                    tuned["k_factor"] = params["k_factor"]

            def apply(name, index=index, settings=settings, tuned=tuned):
                setting = tuned if name == "tuned" else settings.get(name)
                if setting is None:
                    return
                if "ef_search" in setting:
                    index.set_ef_search(setting["ef_search"])
                if "k_factor" in setting:
                    index.set_k_factor(setting["k_factor"])
                if "nprobe" in setting:
                    index.set_nprobe(setting["nprobe"])

            fns = dict(baselines)
            for name in [*settings, "tuned"]:
                fns[name] = lambda index=index: index.search(queries, k=10)
            t = interleaved(fns, rounds=args.rounds, warmup=1, before_each=apply)
            for name in [*settings, "tuned"]:
                if name == "tuned":
                    what = ", ".join(f"{k} {v}" for k, v in tuned.items() if k not in ("reached", "nlist"))
                    if "nlist" in tuned:
                        what = f"nlist {tuned['nlist']}, {what}"
                    label = (f"{backend}, **{what}** (tuned to recall {args.calibrate} on the calibration queries"
                             f"{'' if tuned['reached'] else ': target not reached'})")
                else:
                    label = f"{backend}, {name}"
                row = {"gallery": gallery_name, "backend": label, "build_s": round(build, 2),
                       "bytes_per_item": round(size / args.n, 1),
                       "recall_at_10": round(recall_at_k(t[name].result.indices, ref), 4),
                       "qps": round(len(queries) / t[name].median, 1), "vs_torch": ratio(t["torch"], t[name]),
                       "vs_faiss_flat": ratio(t["faiss flat"], t[name]), "times": t[name].summary()}
                raw.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "times"}), file=sys.stderr, flush=True)
            del index
        exact = flat = emb = None  # free the gallery before the next one
    for row in raw:
        table.append([row["gallery"], row["backend"], row["build_s"], f"{row['bytes_per_item']:,}",
                      row["recall_at_10"], f"{row['qps']:,}", fx(row["vs_torch"]), fx(row["vs_faiss_flat"])])
    report.raw["rows"] = raw
    report.raw["args"] = {k: v for k, v in vars(args).items() if k != "json"}
    report.table(
        "search",
        f"Approximate against exact search: {args.queries} reported queries (settings tuned on {args.queries} other "
        f"queries), k=10, 1 search thread, {args.rounds} interleaved rounds",
        markdown_table(["gallery", "backend", "build (s)", "index bytes/item", "recall@10", "queries/s",
                        "vs torch exact", "vs faiss flat exact"], table, align="llrrrrrr"),
        notes=["vs torch exact / vs faiss flat exact: the exact search's median time over this row's in the same "
               "rounds; in brackets the range of the same-round ratios.",
               "The tuned rows are the recommendation; the other rows are a sweep shown for context."],
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
