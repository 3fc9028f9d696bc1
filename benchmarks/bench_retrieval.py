"""Benchmark of modeling_motionpatch.apps.retrieval_metrics: metric protocols at HumanML3D test size and exact index search.

Run from the repository root::

    python benchmarks/bench_retrieval.py            # 1 torch thread (default)
    python benchmarks/bench_retrieval.py --threads 2
    python benchmarks/bench_retrieval.py --quick --json /tmp/retrieval.json   # tiny sizes, seconds

1. Metrics: a 4,384 x 4,384 similarity (HumanML3D test split) for each protocol, vectorised implementation vs a
   naive baseline run in the same process: a Python loop over queries that does numpy work per query row (the way
   most evaluation scripts are written). Both must give identical numbers (checked).
2. Search: galleries of 10,000 and 1,000,000 items (D=256, float32, L2-normalised), 100 queries, k=10; the chunked
   torch backend vs a naive ``torch.topk(queries @ gallery.T)`` over the full score matrix (the two must return
   the same ids, checked); queries/s. FAISS (IndexFlatIP) is timed too when it is importable.

Every comparison is interleaved (``timing.interleaved``): the candidates run round-robin in this process for the
same ``--rounds`` rounds (after one untimed warm-up round); times are the median of the rounds with their range, and
a speed-up is median over median with the range of the same-round ratios. Every figure printed is measured.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: numpy's BLAS on one thread, like the torch side it is compared with

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Report, add_output_args, fmt_ratio, fmt_spread, interleaved, markdown_table, ratio  # noqa: E402

from modeling_motionpatch.apps.retrieval_metrics import (
    PROTOCOLS,
    RECALL_AT,
    compute_retrieval_metrics_from_similarity,
    similarity_matrix,
)
from modeling_motionpatch.apps.search_index import MotionSearchIndex


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


# ------------------------------------------------------------------------------------------------- main
def bench_metrics(args: argparse.Namespace, report: Report) -> None:
    sim, captions, cap_emb = make_metric_data(args.n, args.dim)
    sim_np, cap_np = sim.numpy(), cap_emb.numpy()
    rows, raw = [], {}
    for protocol in PROTOCOLS:

        def fast(protocol: str = protocol) -> dict[str, Any]:
            return compute_retrieval_metrics_from_similarity(
                sim, captions=captions, protocols=protocol, seed=0, caption_embeds=cap_emb, threshold=0.95
            )[protocol]

        def naive(protocol: str = protocol) -> dict[str, float]:
            return naive_protocol(sim_np, protocol, captions, cap_np, 0.95, 0, 32)

        t = interleaved({"vectorised": fast, "naive": naive}, rounds=args.rounds, warmup=1)
        res, ref = t["vectorised"].result, t["naive"].result
        same = all(abs(res[k] - v) < 1e-9 for k, v in ref.items())
        if not same:
            raise SystemExit(f"vectorised and naive results differ for {protocol}: {res} vs {ref}")
        r = ratio(t["naive"], t["vectorised"])
        label = {"small_batches": "small_batches (bs 32, seed 0)", "threshold": "threshold (0.95, 384-d captions)"}
        rows.append([label.get(protocol, protocol), fmt_spread(t["vectorised"]), fmt_spread(t["naive"]), fmt_ratio(r),
                     "yes", f"{res['t2m/R@1']:.2f}", f"{res['m2t/R@1']:.2f}"])
        raw[protocol] = {"vectorised": t["vectorised"].summary(), "naive": t["naive"].summary(), "speedup": r,
                         "t2m/R@1": res["t2m/R@1"], "m2t/R@1": res["m2t/R@1"]}
    report.raw["metrics"] = {"n": args.n, "dim": args.dim, "rounds": args.rounds, "protocols": raw}
    report.table(
        "metrics",
        f"Retrieval metrics on a {args.n:,} x {args.n:,} similarity, both directions, 1 thread (torch and BLAS), "
        f"{args.rounds} interleaved rounds",
        markdown_table(
            ["protocol", "vectorised: median (range)", "naive loop: median (range)", "speed-up", "identical",
             "t2m R@1", "m2t R@1"],
            rows,
        ),
        notes=["Speed-up: naive median over vectorised median; in brackets the range of the same-round ratios."],
    )


def naive_search(gallery: torch.Tensor, queries: torch.Tensor, k: int = 10):
    """Baseline: the full (num_queries x num_items) score matrix, then one topk."""
    return torch.topk(queries @ gallery.T, k, dim=1)


def bench_search(args: argparse.Namespace, report: Report) -> None:
    g = torch.Generator().manual_seed(1)
    rows, raw = [], {}
    for n in args.galleries:
        gallery = torch.randn(n, args.dim, generator=g)
        gallery.div_(torch.linalg.vector_norm(gallery, dim=1, keepdim=True))
        queries = torch.nn.functional.normalize(torch.randn(args.queries, args.dim, generator=g), dim=1)
        ids = [str(i) for i in range(n)]
        index = MotionSearchIndex(gallery, ids, normalize=False)
        fns = {
            "MotionSearchIndex (torch, chunked)": partial(index.search, queries, k=10),
            "naive `topk(queries @ gallery.T)`": lambda: naive_search(gallery, queries)[1],
        }
        try:
            fidx = MotionSearchIndex(gallery, ids, normalize=False, backend="faiss")
            fns["MotionSearchIndex (faiss `IndexFlatIP`)"] = partial(fidx.search, queries, k=10)
        except ImportError:
            report.notes.append("faiss is not installed: no FAISS flat row")
        t = interleaved(fns, rounds=args.rounds, warmup=1)
        naive_name = "naive `topk(queries @ gallery.T)`"
        naive_idx = t[naive_name].result
        fastest = min(t, key=lambda k: t[k].median)
        raw[n] = {}
        for name, tm in t.items():
            idx = tm.result if name == naive_name else tm.result.indices
            same = torch.equal(idx, naive_idx)
            vs_naive = ratio(t[naive_name], tm)
            others = [o for o in t if o != name]
            best_other = min(others, key=lambda k: t[k].median)
            vs_best = ratio(t[best_other], tm)
            rows.append([f"{n:,}", name, fmt_spread(tm), f"{args.queries / tm.median:,.0f}", fmt_ratio(vs_naive),
                         f"{fmt_ratio(vs_best)} vs {best_other}", "yes" if same else "no"])
            raw[n][name] = {**tm.summary(), "same_ids_as_naive": same, "vs_naive": vs_naive,
                            "vs_fastest_other": {"other": best_other, **vs_best}}
        raw[n]["fastest"] = fastest
        gallery = index = fns = t = None  # free the big gallery before the next one
    report.raw["search"] = {"dim": args.dim, "queries": args.queries, "k": 10, "rounds": args.rounds, "galleries": raw}
    report.table(
        "search",
        f"Exact search: D={args.dim} (float32, L2-normalised), {args.queries} queries, k=10, {args.rounds} "
        "interleaved rounds",
        markdown_table(
            ["gallery", "method", "time: median (range)", "queries/s (median)", "vs naive", "vs the fastest other",
             "same ids as naive"],
            rows,
            align="rlrrrrl",
        ),
        notes=["Ratios: the other's median time over this row's; in brackets the range of the same-round ratios."],
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument(
        "--n", type=int, default=4384, help="pairs for the metric benchmark (HumanML3D test: 4384)"
    )
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--galleries", type=int, nargs="+", default=[10_000, 1_000_000])
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (after one warm-up round)")
    p.add_argument("--skip-metrics", action="store_true")
    p.add_argument("--skip-search", action="store_true")
    add_output_args(p)
    args = p.parse_args()
    if args.quick:
        args.n, args.galleries, args.rounds = 400, [5_000], 2
    torch.set_num_threads(args.threads)
    report = Report("retrieval", quick=args.quick, extra_packages=("faiss-cpu",))
    if not args.skip_metrics:
        bench_metrics(args, report)
    if not args.skip_search:
        bench_search(args, report)
    report.write(args.json)
    print("\nloadavg_at_end:", report.machine.get("load_average_end"))


if __name__ == "__main__":
    main()
