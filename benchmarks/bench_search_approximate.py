"""Approximate (FAISS HNSW, IVF, IVF-PQ) vs exact search in `MotionSearchIndex`: recall@10, memory per item, build time, queries/s.

Galleries: ``random`` (L2-normalised isotropic Gaussian: the worst case for any approximate index, neighbours are
barely nearer than the rest) and ``clustered`` (the generator of tests/test_search_approximate.py). Searches run on
one thread for torch and FAISS; builds on ``--build-threads`` FAISS threads. Memory per item is the FAISS index's own
size (``faiss.serialize_index``) divided by the items; the float32 gallery the index always keeps (4 * dim bytes per
item) is extra and the same for every backend. Exact search (``torch``, the reference) runs first in the same
process; every speed-up is against it.

    python benchmarks/bench_search_approximate.py --n 100000 --dim 256 --queries 100
    python benchmarks/bench_search_approximate.py --galleries clustered --backends torch faiss-ivf --nprobe 16 32 64
    python benchmarks/bench_search_approximate.py --backends torch faiss-ivfpq --ivfpq-nprobe 64 256 --k-factor 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    import faiss
    from test_search_approximate import clustered_gallery, recall_at_k

    from modeling_motionpatch.apps.search_index import (
        HNSW_DEFAULTS,
        IVF_DEFAULTS,
        IVFPQ_DEFAULTS,
        MotionSearchIndex,
    )

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[HNSW_DEFAULTS["ef_search"], 128])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[IVF_DEFAULTS["nprobe"], 64])
    parser.add_argument("--ivfpq-nprobe", type=int, nargs="+", default=None,
                        help="faiss-ivfpq nprobe values (default: the automatic one of IVFPQ_DEFAULTS)")  # fmt: skip
    parser.add_argument("--k-factor", type=int, nargs="+", default=[IVFPQ_DEFAULTS["k_factor"]])
    parser.add_argument("--ivfpq-nlist", type=int, default=None, help="override the automatic nlist of faiss-ivfpq")
    parser.add_argument("--build-threads", type=int, default=1, help="FAISS threads while building (search: 1)")
    parser.add_argument("--galleries", nargs="+", default=["clustered", "random"])
    parser.add_argument("--backends", nargs="+", default=["torch", "faiss", "faiss-hnsw", "faiss-ivf", "faiss-ivfpq"],
                        help="'torch' (exact, the reference) must come first")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    print(json.dumps({"load_avg": os.getloadavg(), "faiss": faiss.__version__, "torch": torch.__version__}), flush=True)
    print("| gallery | backend | build (s) | index bytes/item | recall@10 | queries/s | speed-up vs exact |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind in args.galleries:
        if kind == "random":
            rng = np.random.default_rng(0)
            emb = torch.from_numpy(rng.standard_normal((args.n, args.dim), dtype=np.float32))
            queries = torch.from_numpy(rng.standard_normal((args.queries, args.dim), dtype=np.float32))
        else:
            emb, queries, _ = clustered_gallery(args.n, args.dim, clusters=max(100, args.n // 20))
            queries = queries[: args.queries]
        ids = [str(i) for i in range(args.n)]
        rows = []
        for backend in args.backends:
            faiss.omp_set_num_threads(args.build_threads)
            t = time.perf_counter()
            index = MotionSearchIndex(emb, ids, backend=backend, ivfpq={"nlist": args.ivfpq_nlist})
            build = time.perf_counter() - t
            faiss.omp_set_num_threads(1)
            default_nprobe = index.ivfpq["nprobe"] if backend == "faiss-ivfpq" else None
            size = 0 if index._faiss_index is None else len(faiss.serialize_index(index._faiss_index))
            settings = {
                "faiss-hnsw": args.ef_search,
                "faiss-ivf": args.nprobe,
                "faiss-ivfpq": [(p, f) for p in (args.ivfpq_nprobe or [None]) for f in args.k_factor],
            }.get(backend, [None])
            for ef in settings:
                if backend == "faiss-hnsw":
                    index.set_ef_search(ef)
                elif backend == "faiss-ivf":
                    index.set_nprobe(ef)
                elif backend == "faiss-ivfpq":
                    index.set_nprobe(ef[0] or default_nprobe)
                    index.set_k_factor(ef[1])
                best = float("inf")
                for _ in range(3):
                    t = time.perf_counter()
                    res = index.search(queries, k=10)
                    best = min(best, time.perf_counter() - t)
                if backend == "torch":
                    exact, exact_qps = res.indices, len(queries) / best
                name = backend
                if backend == "faiss-hnsw":
                    name = f"{backend} (M {index.hnsw['m']}, efC {index.hnsw['ef_construction']}, efSearch {ef})"
                elif backend == "faiss-ivf":
                    name = f"{backend} (nlist {index.ivf['nlist']}, train {index.ivf['train_size']:,}, nprobe {ef})"
                elif backend == "faiss-ivfpq":
                    p = index.ivfpq
                    name = (f"{backend} (nlist {p['nlist']}, PQ{p['m']}x4fs, train {p['train_size']:,}, nprobe "
                            f"{p['nprobe']}{' (default)' if p['nprobe'] == default_nprobe else ''}, k_factor "
                            f"{p['k_factor']})")  # fmt: skip
                row = {"gallery": f"{kind} {args.n:,} x {args.dim}", "backend": name, "build_s": round(build, 2),
                       "bytes_per_item": round(size / args.n, 1), "recall_at_10": round(recall_at_k(res.indices, exact), 4),
                       "qps": round(len(queries) / best, 1), "speedup": round(len(queries) / best / exact_qps, 1)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                print(f"| {row['gallery']} | {name} | {row['build_s']} | {row['bytes_per_item']} | "
                      f"{row['recall_at_10']} | {row['qps']} | {row['speedup']}x |", flush=True)  # fmt: skip
            del index


if __name__ == "__main__":
    main()
