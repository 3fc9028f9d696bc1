"""Approximate vs exact `MotionSearchIndex` on real embedded clips: recall@10 and queries/s, motion->motion and text->motion.

Gallery: every clip of the Bandai-Namco ``ds1_h22_20fps.npz`` (174) and ``ds2_h22_20fps.npz`` (2,902), embedded
with ``get_motion_features`` of a trained model (``--model``, e.g. the ``motionpatch-demo`` folder), normalised
with the clips' own statistics (as ``--skeleton-from-dataset`` does). Queries:

* motion->motion: every clip queries the gallery for its 10 nearest other clips (its own hit is dropped from the
  exact and the approximate lists alike: 11 are asked for, the query is removed, the first 10 are kept);
* text->motion: every distinct caption (the label-derived ``caption_template`` of the index files) through
  ``get_text_features``.

Each backend runs at its documented defaults (``HNSW_DEFAULTS``, ``IVF_DEFAULTS``, ``IVFPQ_DEFAULTS``) and, for the
IVF backends, at the smaller ``nprobe`` values of ``--nprobe``. One thread for torch and FAISS. Exact search
(``torch``, the reference) runs first in the same process.

    python benchmarks/bench_search_real.py --model runs/demo/best
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


def recall_at_k(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean fraction of each query's exact top-k found in its approximate top-k."""
    hits = (approx[:, :, None] == exact[:, None, :]).any(dim=2).sum(dim=1)
    return float(hits.float().mean() / exact.shape[1])


def drop_self(indices: torch.Tensor, k: int) -> torch.Tensor:
    """Row q of ``indices`` (``k + 1`` hits of gallery item q) without item q, first ``k`` kept."""
    rows = torch.arange(indices.shape[0])[:, None]
    keep = indices != rows
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # non-self hits first, in rank order
    return torch.gather(indices, 1, order)[:, :k]


def main() -> None:
    import datasets
    import faiss
    from motionpatch_processing.bandai_npz import dataset_from_npz
    from transformers import AutoModel, AutoProcessor

    import modeling_motionpatch  # noqa: F401  (registers the Auto classes)
    from modeling_motionpatch.apps.motion_statistics import compute_statistics
    from modeling_motionpatch.motion_patches import MotionInputWarning
    from modeling_motionpatch.apps.search_index import MotionSearchIndex

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="a trained MotionPatch folder (model + processor)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32], help="extra IVF nprobe values")
    parser.add_argument("--backends", nargs="+", default=["torch", "faiss", "faiss-hnsw", "faiss-ivf", "faiss-ivfpq"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--save-embeddings", default=None, help="write the gallery and text embeddings to this .npz")
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    datasets.disable_progress_bars()
    warnings.simplefilter("ignore", MotionInputWarning)

    motions, ids, captions = [], [], []
    for name in ("ds1", "ds2"):
        dd, _ = dataset_from_npz(Path(args.data) / "bandai-namco" / f"{name}_h22_20fps.npz", splits=lambda s: "train")
        rows = dd["train"].with_format("numpy", columns=["id", "motion", "captions"])[:]
        motions += [np.asarray(m, dtype=np.float32) for m in rows["motion"]]
        ids += [f"{name}/{i}" for i in rows["id"]]
        captions += [str(c[0]) for c in rows["captions"]]
    model = AutoModel.from_pretrained(args.model).eval()
    processor = AutoProcessor.from_pretrained(args.model)
    fe = processor.feature_extractor
    mean, std = compute_statistics(motions)
    fe.set_statistics(mean, std)
    t = time.perf_counter()
    exact = MotionSearchIndex.from_model(model, processor, motions, ids, batch_size=64)
    embed_s = time.perf_counter() - t
    texts = sorted(set(captions))
    text_q = exact.encode_texts(texts)
    motion_q = exact.embeddings
    if args.save_embeddings:
        np.savez(args.save_embeddings, gallery=motion_q.numpy(), texts=text_q.numpy())
    print(json.dumps({"clips": len(ids), "dim": exact.dim, "captions": len(texts), "embed_s": round(embed_s, 1),
                      "model": str(args.model), "max_frames": fe.max_frames, "load_avg": os.getloadavg()}),
          flush=True)  # fmt: skip

    def timed(index: MotionSearchIndex, queries: torch.Tensor, k: int, by_motion: bool):
        best, res = float("inf"), None
        for _ in range(args.repeats):
            t = time.perf_counter()
            res = (index.search_by_motion if by_motion else index.search)(queries, k=k)
            best = min(best, time.perf_counter() - t)
        return res, len(queries) / best

    rows = []
    ref = {}
    for backend in args.backends:
        t = time.perf_counter()
        index = exact if backend == "torch" else MotionSearchIndex(exact.embeddings, ids, backend=backend,
                                                                    normalize=False)  # fmt: skip
        build = time.perf_counter() - t
        settings: list[int | None] = [None]
        if backend in ("faiss-ivf", "faiss-ivfpq"):
            params = index.ivf or index.ivfpq
            settings += sorted({p for p in args.nprobe if p < params["nprobe"]}, reverse=True)
        for nprobe in settings:
            if nprobe is not None:
                index.set_nprobe(nprobe)
            res_m, qps_m = timed(index, motion_q, 11, True)
            res_t, qps_t = timed(index, text_q, 10, False)
            got_m = drop_self(res_m.indices, 10)
            if backend == "torch":
                ref = {"motion": got_m, "text": res_t.indices, "qps_m": qps_m, "qps_t": qps_t}
            params = {"faiss-hnsw": index.hnsw, "faiss-ivf": index.ivf, "faiss-ivfpq": index.ivfpq}.get(backend)
            params = None if params is None else dict(params)  # a copy: set_nprobe changes the index's dict
            row = {
                "backend": backend, "params": params, "default": nprobe is None, "build_s": round(build, 2),
                "motion_recall_at_10": round(recall_at_k(got_m, ref["motion"]), 4),
                "motion_qps": round(qps_m, 1), "motion_speedup": round(qps_m / ref["qps_m"], 2),
                "text_recall_at_10": round(recall_at_k(res_t.indices, ref["text"]), 4),
                "text_qps": round(qps_t, 1), "text_speedup": round(qps_t / ref["qps_t"], 2),
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"load_avg": os.getloadavg()}), flush=True)
    print("| backend | build (s) | motion->motion recall@10 | queries/s | vs exact | text->motion recall@10 | "
          "queries/s | vs exact |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        p = r["params"] or {}
        name = r["backend"] + (" (defaults" if r["default"] else f" (nprobe {p.get('nprobe')}") + (
            f", nlist {p['nlist']}, nprobe {p['nprobe']})" if r["default"] and "nlist" in p else ")")
        print(f"| {name} | {r['build_s']} | {r['motion_recall_at_10']} | {r['motion_qps']:,} | "
              f"{r['motion_speedup']}x | "
              f"{r['text_recall_at_10']} | {r['text_qps']:,} | {r['text_speedup']}x |")  # fmt: skip


if __name__ == "__main__":
    main()
