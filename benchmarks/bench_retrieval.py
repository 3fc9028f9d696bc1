"""Benchmark of modeling_motionpatch.apps.retrieval_metrics: metric protocols at HumanML3D test size and exact index search.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_retrieval.py            # 1 torch thread (default)
    PYTHONPATH=. python benchmarks/bench_retrieval.py --threads 2

1. Metrics: a 4,384 x 4,384 similarity (HumanML3D test split) for each protocol, vectorised implementation vs a
   naive baseline run in the same process: a Python loop over queries that does numpy work per query row (the way
   most evaluation scripts are written). Both must give identical numbers (checked).
2. Search: galleries of 10,000 and 1,000,000 items (D=256, float32, L2-normalised), 100 queries, k=10; the chunked
   torch backend vs a naive ``torch.topk(queries @ gallery.T)`` over the full score matrix (the two must return
   the same ids, checked); queries/s. FAISS (IndexFlatIP) is timed too when it is importable.

Timings are the best of ``--repeats`` runs (wall clock, ``time.perf_counter``); every figure printed is measured.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from modeling_motionpatch.apps.retrieval_metrics import (
    PROTOCOLS,
    RECALL_AT,
    compute_retrieval_metrics_from_similarity,
    similarity_matrix,
)
from modeling_motionpatch.apps.search_index import MotionSearchIndex


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Minimum wall time over ``repeats`` calls and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


# ------------------------------------------------------------------------------------------------- naive baseline
def _naive_metrics(ranks_per_batch: list[np.ndarray], prefix: str) -> dict[str, float]:
    out = {}
    for k in RECALL_AT:
        out[f"{prefix}R@{k}"] = float(np.mean([100.0 * np.mean(r <= k) for r in ranks_per_batch]))
    out[f"{prefix}MedR"] = float(np.mean([np.median(r) for r in ranks_per_batch]))
    out[f"{prefix}MeanR"] = float(np.mean([np.mean(r) for r in ranks_per_batch]))
    return out


def naive_protocol(
    sim: np.ndarray,
    protocol: str,
    captions: list[str],
    cap_emb: np.ndarray,
    threshold: float,
    seed: int,
    batch_size: int,
) -> dict[str, float]:
    """Loop over queries; per query: its correct items, best correct score, count of incorrect items >= it."""
    n = sim.shape[0]
    out: dict[str, float] = {}
    if protocol == "small_batches":
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
        batches = [perm[i : i + batch_size] for i in range(0, n - n % batch_size, batch_size)]
        for direction in ("t2m", "m2t"):
            per_batch = []
            for b in batches:
                block = sim[np.ix_(b, b)] if direction == "t2m" else sim[np.ix_(b, b)].T
                ranks = np.empty(len(b), dtype=np.int64)
                for q in range(len(b)):
                    row = block[q]
                    ranks[q] = 1 + int(np.sum(np.delete(row, q) >= row[q]))
                per_batch.append(ranks)
            out.update(_naive_metrics(per_batch, f"{direction}/"))
        return out
    if protocol == "all":
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(captions):
            groups.setdefault(c, []).append(i)
    if protocol == "threshold":
        e = cap_emb / np.linalg.norm(cap_emb, axis=1, keepdims=True)
    for direction in ("t2m", "m2t"):
        mat = sim if direction == "t2m" else sim.T
        ranks = np.empty(n, dtype=np.int64)
        for q in range(n):
            correct = np.zeros(n, dtype=bool)
            if protocol == "strict":
                correct[q] = True
            elif protocol == "all":
                correct[groups[captions[q]]] = True
            else:
                correct = (e[q] @ e.T) >= threshold
                correct[q] = True
            row = mat[q]
            best = row[correct].max()
            ranks[q] = 1 + int(np.sum(row[~correct] >= best))
        out.update(_naive_metrics([ranks], f"{direction}/"))
    return out


# ------------------------------------------------------------------------------------------------- data
def make_metric_data(n: int, dim: int, seed: int = 0):
    """Synthetic test split: ~10 % of motions share their caption with another one (like mirrored duplicates in
    HumanML3D); identical captions get identical text embeddings (exact score ties), each motion embedding is its
    caption's text embedding plus noise (a "model" with R@1 around 30 %)."""
    g = torch.Generator().manual_seed(seed)
    owner = torch.arange(n)
    dup = torch.randperm(n, generator=g)[: n // 10]
    owner[dup] = torch.randint(0, n, (dup.numel(),), generator=g)
    captions = [f"caption {int(i)}" for i in owner]
    text = torch.randn(n, dim, generator=g)[owner]
    motion = text + 5.0 * torch.randn(n, dim, generator=g)
    cap_emb = torch.randn(n, 384, generator=g)[owner] + 0.05 * torch.randn(n, 384, generator=g)
    return similarity_matrix(text, motion), captions, cap_emb


def machine_info() -> dict[str, str]:
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "cpu": model,
        "logical_cpus": str(os.cpu_count()),
        "torch": torch.__version__,
        "torch_threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_at_start": load,
    }


# ------------------------------------------------------------------------------------------------- main
def bench_metrics(args: argparse.Namespace) -> None:
    sim, captions, cap_emb = make_metric_data(args.n, args.dim)
    sim_np, cap_np = sim.numpy(), cap_emb.numpy()
    print(f"\n## Metrics on a {args.n} x {args.n} similarity (best of {args.repeats})\n")
    print("| protocol | vectorised (s) | naive loop (s) | speed-up | identical | t2m R@1 | m2t R@1 |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for protocol in PROTOCOLS:

        def fast(protocol: str = protocol) -> dict[str, Any]:
            return compute_retrieval_metrics_from_similarity(
                sim, captions=captions, protocols=protocol, seed=0, caption_embeds=cap_emb, threshold=0.95
            )[protocol]

        def naive(protocol: str = protocol) -> dict[str, float]:
            return naive_protocol(sim_np, protocol, captions, cap_np, 0.95, 0, 32)

        t_fast, res = best_of(fast, args.repeats)
        t_naive, ref = best_of(naive, 1)
        same = all(abs(res[k] - v) < 1e-9 for k, v in ref.items())
        print(
            f"| {protocol} | {t_fast:.3f} | {t_naive:.3f} | {t_naive / t_fast:.1f}x | {same} | "
            f"{res['t2m/R@1']:.2f} | {res['m2t/R@1']:.2f} |"
        )
        if not same:
            raise SystemExit(f"vectorised and naive results differ for {protocol}: {res} vs {ref}")


def naive_search(gallery: torch.Tensor, queries: torch.Tensor, k: int = 10):
    """Baseline: the full (num_queries x num_items) score matrix, then one topk."""
    return torch.topk(queries @ gallery.T, k, dim=1)


def bench_search(args: argparse.Namespace) -> None:
    print(f"\n## Search: D={args.dim}, {args.queries} queries, k=10 (best of {args.repeats})\n")
    print("| gallery | method | time (s) | queries/s | same ids as naive |")
    print("|---:|---|---:|---:|---|")
    g = torch.Generator().manual_seed(1)
    for n in args.galleries:
        gallery = torch.randn(n, args.dim, generator=g)
        gallery.div_(torch.linalg.vector_norm(gallery, dim=1, keepdim=True))
        queries = torch.nn.functional.normalize(torch.randn(args.queries, args.dim, generator=g), dim=1)
        ids = [str(i) for i in range(n)]
        index = MotionSearchIndex(gallery, ids, normalize=False)
        t_naive, (_, naive_idx) = best_of(partial(naive_search, gallery, queries), args.repeats)
        t_idx, res = best_of(partial(index.search, queries, k=10), args.repeats)
        rows = [
            ("MotionSearchIndex (torch, chunked)", t_idx, torch.equal(res.indices, naive_idx)),
            ("naive full-matrix topk", t_naive, True),
        ]
        try:
            fidx = MotionSearchIndex(gallery, ids, normalize=False, backend="faiss")
            t_f, fres = best_of(partial(fidx.search, queries, k=10), args.repeats)
            rows.append(("MotionSearchIndex (faiss IndexFlatIP)", t_f, torch.equal(fres.indices, naive_idx)))
            del fidx
        except ImportError:
            pass
        for name, t, same in rows:
            print(f"| {n:,} | {name} | {t:.3f} | {args.queries / t:,.0f} | {same} |")
        del gallery, index


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument(
        "--n", type=int, default=4384, help="pairs for the metric benchmark (HumanML3D test: 4384)"
    )
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--galleries", type=int, nargs="+", default=[10_000, 1_000_000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-metrics", action="store_true")
    p.add_argument("--skip-search", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    info = machine_info()
    print("# bench_retrieval")
    print("command: " + " ".join([os.path.basename(sys.executable)] + sys.argv))
    for k, v in info.items():
        print(f"{k}: {v}")
    if not args.skip_metrics:
        bench_metrics(args)
    if not args.skip_search:
        bench_search(args)
    if hasattr(os, "getloadavg"):
        print("\nloadavg_at_end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
