"""Approximate vs exact `MotionSearchIndex` on real embedded clips: recall@10 and queries/s, motion->motion and text->motion.

Gallery: every clip of the Bandai-Namco ``ds1_h22_20fps.npz`` (174) and ``ds2_h22_20fps.npz`` (2,902), embedded
with ``get_motion_features`` of a trained model (``--model``, e.g. the ``motionpatch-demo`` folder), normalised
with the clips' own statistics (as ``--skeleton-from-dataset`` does). Queries:

* motion->motion: every clip queries the gallery for its 10 nearest other clips (its own hit is dropped from the
  exact and the approximate lists alike: 11 are asked for, the query is removed, the first 10 are kept);
* text->motion: every distinct caption (the label-derived ``caption_template`` of the index files) through
  ``get_text_features``.

Each backend runs at its documented defaults (``HNSW_DEFAULTS``, ``IVF_DEFAULTS``, ``IVFPQ_DEFAULTS``) and, for the
IVF backends, at the smaller ``nprobe`` values of ``--nprobe``. One thread for torch and FAISS.

The queries of each kind are split in two disjoint halves (alternate clips, alternate captions): the **calibration**
half and the **reported** half. For each backend and kind, the smallest ``nprobe`` of the sweep whose recall@10 on the
calibration half reaches ``--target`` is marked as the tuned setting; every recall and speed shown is measured on the
reported half. Speed: for each backend, exact search through torch, the package's FAISS flat exact search
(``backend="faiss"``) and every setting run interleaved (``timing.interleaved``, ``--repeats`` rounds); queries/s is
the median, and every speed-up is against both exact searches of the same rounds.

    python benchmarks/bench_search_real.py --model runs/demo/best [--quick] [--json PATH]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


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
    parser.add_argument("--backends", nargs="+", default=["faiss-hnsw", "faiss-ivf", "faiss-ivfpq"],
                        help="approximate backends (exact torch and FAISS flat always run)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds")
    parser.add_argument("--target", type=float, default=0.95, help="recall@10 the tuned setting must reach")
    parser.add_argument("--save-embeddings", default=None, help="write the gallery and text embeddings to this .npz")
    from timing import Report, add_output_args, interleaved, markdown_table, ratio

    add_output_args(parser)
    args = parser.parse_args()

    if args.quick:
        args.repeats, args.nprobe = 2, [4]
        args.backends = [b for b in args.backends if b == "faiss-ivf"]
    report = Report("search_real", quick=args.quick, extra_packages=("faiss-cpu",))
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
    if args.quick:  # every 6th clip (~500)
        motions, ids, captions = motions[::6], ids[::6], captions[::6]
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
    info = {"clips": len(ids), "dim": exact.dim, "captions": len(texts), "embed_s": round(embed_s, 1),
            "model": str(args.model), "max_frames": fe.max_frames}
    print(json.dumps(info), flush=True)
    flat = MotionSearchIndex(exact.embeddings, ids, backend="faiss", normalize=False)
    # the two halves of each kind of query: motion queries are gallery clips (their own hit is dropped)
    halves = {
        "motion": {"calibration": (motion_q[0::2], torch.arange(0, len(ids), 2)),
                   "reported": (motion_q[1::2], torch.arange(1, len(ids), 2))},
        "text": {"calibration": (text_q[0::2], None), "reported": (text_q[1::2], None)},
    }

    def search(index, kind, half):
        q, rows_ = halves[kind][half]
        if kind == "motion":
            res = index.search_by_motion(q, k=11)
            # drop each query's own hit: row i of the result queried gallery item rows_[i]
            keep = res.indices != rows_[:, None]
            order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
            return torch.gather(res.indices, 1, order)[:, :10]
        return index.search(q, k=10).indices

    ref = {(kind, half): search(exact, kind, half) for kind in halves for half in ("calibration", "reported")}
    rows = []

    def fx(r):
        return f"{r['ratio']:.2f}x ({r['round_min']:.2f}-{r['round_max']:.2f})"

    for backend in ["torch", "faiss", *args.backends]:
        t = time.perf_counter()
        if backend == "torch":
            index = exact
        elif backend == "faiss":
            index = flat
        else:
            index = MotionSearchIndex(exact.embeddings, ids, backend=backend, normalize=False)
        build = time.perf_counter() - t
        params = {"faiss-hnsw": index.hnsw, "faiss-ivf": index.ivf, "faiss-ivfpq": index.ivfpq}.get(backend)
        params = None if params is None else dict(params)
        settings: list[int | None] = [None]
        if backend in ("faiss-ivf", "faiss-ivfpq"):
            settings += sorted({p for p in args.nprobe if p < params["nprobe"]}, reverse=True)
        if backend in ("torch", "faiss"):
            settings = []

        def apply(name, index=index):
            if name.startswith("nprobe "):
                index.set_nprobe(int(name.split()[1]))

        names = {None if s_ is None else s_: ("defaults" if s_ is None else f"nprobe {s_}") for s_ in settings}
        for kind in halves:
            fns = {"torch": lambda kind=kind: search(exact, kind, "reported"),
                   "faiss flat": lambda kind=kind: search(flat, kind, "reported")}
            for label in names.values():
                fns[label] = lambda kind=kind, index=index: search(index, kind, "reported")

            def apply_all(name, index=index, params=params):
                if name == "defaults":
                    index.set_nprobe(params["nprobe"]) if params and "nprobe" in params else None
                else:
                    apply(name)

            tm = interleaved(fns, rounds=args.repeats, warmup=1, before_each=apply_all)
            n_reported = len(halves[kind]["reported"][0])
            labels = ["torch", "faiss flat"] if backend in ("torch", "faiss") else list(names.values())
            if backend == "torch":
                labels = ["torch"]
            elif backend == "faiss":
                labels = ["faiss flat"]
            calib_recall = {}
            for label in labels:
                apply_all(label) if label not in ("torch", "faiss flat") else None
                if label not in ("torch", "faiss flat"):
                    calib_recall[label] = recall_at_k(search(index, kind, "calibration"), ref[(kind, "calibration")])
            # the tuned setting: the fewest lists whose calibration recall reaches the target
            reaching = [lab for lab in labels if calib_recall.get(lab, 0) >= args.target]
            tuned = None
            if backend in ("faiss-ivf", "faiss-ivfpq") and reaching:
                tuned = min(reaching, key=lambda lab: params["nprobe"] if lab == "defaults" else int(lab.split()[1]))
            for label in labels:
                key = (backend, label)
                row = next((r for r in rows if r["_key"] == key), None)
                if row is None:
                    p_ = dict(params or {})
                    if label.startswith("nprobe "):
                        p_["nprobe"] = int(label.split()[1])
                    row = {"_key": key, "backend": backend, "setting": label, "params": p_, "build_s": round(build, 2),
                           "tuned": []}
                    rows.append(row)
                row[f"{kind}_recall"] = round(recall_at_k(tm[label].result, ref[(kind, "reported")]), 4)
                row[f"{kind}_calibration_recall"] = calib_recall.get(label)
                row[f"{kind}_qps"] = round(n_reported / tm[label].median, 1)
                row[f"{kind}_vs_torch"] = ratio(tm["torch"], tm[label])
                row[f"{kind}_vs_faiss_flat"] = ratio(tm["faiss flat"], tm[label])
                row[f"{kind}_times"] = tm[label].summary()
                if label == tuned:
                    row["tuned"].append(kind)
        if backend not in ("torch", "faiss"):
            del index
    table = []
    for r in rows:
        key = r.pop("_key")
        if r["backend"] == "torch":
            name = "torch (exact, the reference)"
        elif r["backend"] == "faiss":
            name = "faiss flat (exact)"
        else:
            p_ = r["params"]
            name = f"{r['backend']}, {r['setting']}"
            if r["setting"] == "defaults" and "nlist" in p_:
                name += f" (nlist {p_['nlist']}, nprobe {p_['nprobe']})"
            if r["tuned"]:
                name = f"**{name}**: tuned for {' and '.join(r['tuned'])} queries (recall {args.target} on the calibration half)"
        cells = [name, r["build_s"]]
        for kind in ("motion", "text"):
            cells += [r[f"{kind}_recall"], f"{r[f'{kind}_qps']:,}", fx(r[f"{kind}_vs_torch"]),
                      fx(r[f"{kind}_vs_faiss_flat"])]
        table.append(cells)
    n_m, n_t = len(halves["motion"]["reported"][0]), len(halves["text"]["reported"][0])
    report.raw.update({"info": info, "rows": rows, "target": args.target})
    report.table(
        "search",
        f"Search over {len(ids):,} real clips embedded by `{Path(args.model).name}` ({exact.dim}-d): recall and speed on "
        f"the reported half ({n_m:,} motion, {n_t} text queries), tuned on the other half; {args.repeats} "
        "interleaved rounds, 1 thread",
        markdown_table(["backend", "build (s)", "motion->motion recall@10", "queries/s", "vs torch exact",
                        "vs faiss flat exact", "text->motion recall@10", "queries/s", "vs torch exact",
                        "vs faiss flat exact"], table),
        notes=["vs torch exact / vs faiss flat exact: the exact search's median time over this row's, same rounds; "
               "in brackets the range of the same-round ratios."],
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
