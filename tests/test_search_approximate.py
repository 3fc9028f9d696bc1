"""`MotionSearchIndex(backend="faiss-hnsw"/"faiss-ivf"/"faiss-ivfpq")`: recall against the exact torch search, and the FAISS flat path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

faiss = pytest.importorskip("faiss", reason="approximate search needs FAISS: pip install 'motionpatch[faiss]'")

from modeling_motionpatch.apps.search_index import (
    HNSW_DEFAULTS,
    IVF_DEFAULTS,
    IVFPQ_DEFAULTS,
    MotionSearchIndex,
)

N, DIM, QUERIES, K = 20_000, 128, 200, 10


def clustered_gallery(n: int = N, dim: int = DIM, clusters: int = 1000, seed: int = 0):
    """Embeddings like a motion library's: many similar clips around shared actions and captions.

    Items are ``centre + noise`` with a per-cluster spread between 1.0 and 1.5 times the centre's scale, so
    clusters overlap; queries are fresh draws from random clusters (a caption is near its motions, not on one).
    A query's exact top-10 are then near-tied (median cosine 0.49 for the first, 0.10 above the tenth).
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    spread = rng.uniform(1.0, 1.5, size=clusters).astype(np.float32)

    def draw(labels):
        return centres[labels] + spread[labels, None] * rng.standard_normal((len(labels), dim)).astype(np.float32)

    items = draw(rng.integers(0, clusters, n))
    queries = draw(rng.integers(0, clusters, QUERIES))
    return torch.from_numpy(items), torch.from_numpy(queries), [f"c{i:05d}" for i in range(n)]


def recall_at_k(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean fraction of each query's exact top-k found in its approximate top-k."""
    hits = (approx[:, :, None] == exact[:, None, :]).any(dim=2).sum(dim=1)
    return float(hits.float().mean() / exact.shape[1])


@pytest.fixture(scope="module")
def gallery():
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    emb, queries, ids = clustered_gallery()
    exact = MotionSearchIndex(emb, ids)
    hnsw = MotionSearchIndex(emb, ids, backend="faiss-hnsw")
    yield emb, queries, ids, exact, hnsw
    faiss.omp_set_num_threads(threads)


def test_hnsw_recall_at_documented_defaults(gallery):
    emb, queries, ids, exact, hnsw = gallery
    assert hnsw.hnsw == HNSW_DEFAULTS
    ref = exact.search(queries, k=K)
    got = hnsw.search(queries, k=K)
    recall = recall_at_k(got.indices, ref.indices)
    assert recall >= 0.95, f"recall@10 {recall:.3f} at {HNSW_DEFAULTS}"
    # the gallery is not trivial: a narrow graph walk misses neighbours, and the tail of the top-10 is near-tied
    hnsw.set_ef_search(K)
    narrow = recall_at_k(hnsw.search(queries, k=K).indices, ref.indices)
    hnsw.set_ef_search(HNSW_DEFAULTS["ef_search"])
    assert narrow < recall
    assert float((ref.scores[:, 0] - ref.scores[:, -1]).median()) < 0.15
    # results are well formed: ids match rows, scores are the cosine similarities, best first
    assert got.ids[0] == [ids[i] for i in got.indices[0].tolist()]
    normed = torch.nn.functional.normalize(emb, dim=1)
    qn = torch.nn.functional.normalize(queries, dim=1)
    expected = torch.gather(qn @ normed.T, 1, got.indices)
    torch.testing.assert_close(got.scores, expected, atol=1e-5, rtol=0)
    assert (got.scores[:, :-1] >= got.scores[:, 1:] - 1e-6).all()


def test_hnsw_save_load_and_parameters(gallery, tmp_path):
    emb, queries, ids, exact, _ = gallery
    small = MotionSearchIndex(emb[:2_000], ids[:2_000], backend="faiss-hnsw", hnsw={"m": 16, "ef_search": 128})
    assert small.hnsw == {**HNSW_DEFAULTS, "m": 16, "ef_search": 128}
    small.save(tmp_path / "idx")
    loaded = MotionSearchIndex.load(tmp_path / "idx", backend="faiss-hnsw", hnsw={"m": 16, "ef_search": 128})
    assert loaded.search(queries[:20], k=5).ids == small.search(queries[:20], k=5).ids
    # k above ef_search still returns k hits per query
    assert small.search(queries[:3], k=300).indices.shape == (3, 300)
    with pytest.raises(ValueError, match="unknown hnsw parameters"):
        MotionSearchIndex(emb[:10], ids[:10], backend="faiss-hnsw", hnsw={"ef": 3})
    with pytest.raises(ValueError, match="positive integers"):
        MotionSearchIndex(emb[:10], ids[:10], backend="faiss-hnsw", hnsw={"m": 0})
    with pytest.raises(ValueError, match="applies to backend='faiss-hnsw'"):
        exact.set_ef_search(10)


def test_faiss_flat_uses_blas_and_restores_the_global_setting(gallery):
    emb, queries, ids, exact, _ = gallery
    before = faiss.cvar.distance_compute_blas_threshold
    flat = MotionSearchIndex(emb, ids, backend="faiss")
    got, ref = flat.search(queries, k=K), exact.search(queries, k=K)
    assert faiss.cvar.distance_compute_blas_threshold == before
    assert recall_at_k(got.indices, ref.indices) == 1.0
    torch.testing.assert_close(got.scores, ref.scores, atol=1e-5, rtol=0)


def test_ivf_recall_at_documented_defaults(gallery, tmp_path):
    emb, queries, ids, exact, _ = gallery
    ivf = MotionSearchIndex(emb, ids, backend="faiss-ivf")
    nlist = round(4 * N**0.5)
    assert ivf.ivf == {"nlist": nlist, "nprobe": IVF_DEFAULTS["nprobe"], "train_size": min(N, 40 * nlist)}
    assert ivf._faiss_index.ntotal == N and ivf._faiss_index.nlist == nlist
    ref = exact.search(queries, k=K)
    got = ivf.search(queries, k=K)
    recall = recall_at_k(got.indices, ref.indices)
    assert recall >= 0.95, f"recall@10 {recall:.3f} at {ivf.ivf}"
    # scanning one list misses neighbours (the gallery is not trivial); all lists is exact search
    ivf.set_nprobe(1)
    assert recall_at_k(ivf.search(queries, k=K).indices, ref.indices) < recall
    ivf.set_nprobe(10 * nlist)
    assert ivf.ivf["nprobe"] == nlist
    assert recall_at_k(ivf.search(queries, k=K).indices, ref.indices) == 1.0
    # scores are the cosine similarities of the returned rows, best first
    normed = torch.nn.functional.normalize(emb, dim=1)
    qn = torch.nn.functional.normalize(queries, dim=1)
    torch.testing.assert_close(got.scores, torch.gather(qn @ normed.T, 1, got.indices), atol=1e-5, rtol=0)
    assert (got.scores[:, :-1] >= got.scores[:, 1:] - 1e-6).all()
    # explicit parameters, save/load, and k larger than what nprobe lists hold still returns k hits
    small = MotionSearchIndex(emb[:2_000], ids[:2_000], backend="faiss-ivf", ivf={"nlist": 50, "nprobe": 1})
    assert small.ivf == {"nlist": 50, "nprobe": 1, "train_size": 2_000}
    assert (small.search(queries[:3], k=500).indices >= 0).all()
    small.save(tmp_path / "idx")
    loaded = MotionSearchIndex.load(tmp_path / "idx", backend="faiss-ivf", ivf={"nlist": 50, "nprobe": 1})
    assert loaded.search(queries[:20], k=5).ids == small.search(queries[:20], k=5).ids
    with pytest.raises(ValueError, match="unknown ivf parameters"):
        MotionSearchIndex(emb[:100], ids[:100], backend="faiss-ivf", ivf={"probes": 3})
    with pytest.raises(ValueError, match="positive integers"):
        MotionSearchIndex(emb[:100], ids[:100], backend="faiss-ivf", ivf={"nprobe": None})
    with pytest.raises(ValueError, match="train_size >= nlist"):
        MotionSearchIndex(emb[:100], ids[:100], backend="faiss-ivf", ivf={"nlist": 20, "train_size": 10})
    with pytest.raises(ValueError, match="applies to backend='faiss-ivf'"):
        exact.set_nprobe(4)


def test_ivfpq_recall_at_documented_defaults(gallery, tmp_path):
    emb, queries, ids, exact, _ = gallery
    pq = MotionSearchIndex(emb, ids, backend="faiss-ivfpq")
    p = pq.ivfpq
    nlist = round(N**0.5)  # the automatic values of IVFPQ_DEFAULTS
    assert p == {"nlist": nlist, "nprobe": -(-3 * nlist // 4), "m": DIM // 2, "k_factor": IVFPQ_DEFAULTS["k_factor"],
                 "train_size": min(N, 128 * nlist)}
    assert pq._faiss_index.ntotal == N and pq._faiss_index.nlist == p["nlist"] and pq._faiss_index.M == p["m"]
    ref = exact.search(queries, k=K)
    got = pq.search(queries, k=K)
    recall = recall_at_k(got.indices, ref.indices)
    assert recall >= 0.95, f"recall@10 {recall:.3f} at {p}"
    # the PQ scores alone miss neighbours (re-ranking matters); one list misses more
    pq.set_k_factor(1)
    assert recall_at_k(pq.search(queries, k=K).indices, ref.indices) < recall - 0.1
    pq.set_k_factor(IVFPQ_DEFAULTS["k_factor"])
    pq.set_nprobe(1)
    assert recall_at_k(pq.search(queries, k=K).indices, ref.indices) < recall
    # scores are the exact cosine similarities of the returned rows, best first
    normed = torch.nn.functional.normalize(emb, dim=1)
    qn = torch.nn.functional.normalize(queries, dim=1)
    torch.testing.assert_close(got.scores, torch.gather(qn @ normed.T, 1, got.indices), atol=1e-5, rtol=0)
    assert (got.scores[:, :-1] >= got.scores[:, 1:] - 1e-6).all()
    assert got.ids[0] == [ids[i] for i in got.indices[0].tolist()]
    # the index holds codes, not vectors: well under the 4 * dim bytes of a float32 copy per item
    assert len(faiss.serialize_index(pq._faiss_index)) / N < DIM
    # all lists and a shortlist of the whole gallery: exact search
    pq.set_nprobe(10**6)
    pq.set_k_factor(N)
    assert pq.ivfpq["nprobe"] == p["nlist"]
    assert recall_at_k(pq.search(queries[:20], k=K).indices, ref.indices[:20]) == 1.0


def test_ivfpq_parameters_save_load_and_errors(gallery, tmp_path):
    emb, queries, ids, exact, _ = gallery
    given = {"nlist": 50, "nprobe": 1, "m": 16}
    small = MotionSearchIndex(emb[:2_000], ids[:2_000], backend="faiss-ivfpq", ivfpq=given)
    assert small.ivfpq == {**given, "k_factor": IVFPQ_DEFAULTS["k_factor"], "train_size": 2_000}
    # k larger than what one list holds still returns k distinct hits (the short queries are answered exactly)
    wide = small.search(queries[:3], k=500).indices
    assert (wide >= 0).all() and all(len(set(row.tolist())) == 500 for row in wide)
    small.save(tmp_path / "idx")
    loaded = MotionSearchIndex.load(tmp_path / "idx", backend="faiss-ivfpq", ivfpq=given)
    assert loaded.search(queries[:20], k=5).ids == small.search(queries[:20], k=5).ids
    # automatic m: the largest divisor of dim not above dim // 2
    assert MotionSearchIndex(emb[:300, :30], ids[:300], backend="faiss-ivfpq").ivfpq["m"] == 15
    assert MotionSearchIndex(emb[:300, :27], ids[:300], backend="faiss-ivfpq").ivfpq["m"] == 9
    with pytest.raises(ValueError, match="must divide the embedding dim 128"):
        MotionSearchIndex(emb[:100], ids[:100], backend="faiss-ivfpq", ivfpq={"m": 20})
    with pytest.raises(ValueError, match="unknown ivfpq parameters"):
        MotionSearchIndex(emb[:100], ids[:100], backend="faiss-ivfpq", ivfpq={"bits": 8})
    with pytest.raises(ValueError, match="positive integers"):
        MotionSearchIndex(emb[:100], ids[:100], backend="faiss-ivfpq", ivfpq={"k_factor": 0})
    with pytest.raises(ValueError, match="at least 16 training items"):
        MotionSearchIndex(emb[:10], ids[:10], backend="faiss-ivfpq", ivfpq={"nlist": 2})
    with pytest.raises(ValueError, match="applies to backend='faiss-ivfpq'"):
        exact.set_k_factor(4)
    with pytest.raises(ValueError, match="k_factor must be a positive integer"):
        small.set_k_factor(0)


def test_calibrate_nprobe_picks_the_smallest_nprobe_that_holds_on_new_queries(gallery):
    """Calibrated on half of the queries, the chosen nprobe keeps the recall on the other half; one less misses."""
    emb, queries, ids, exact, _ = gallery
    ivf = MotionSearchIndex(emb, ids, backend="faiss-ivf")
    calib, check = queries[:100], queries[100:]
    out = ivf.calibrate_nprobe(calib, target_recall=0.95, k=K)
    chosen = out["nprobe"]
    assert out["reached"] and ivf.ivf["nprobe"] == chosen and out["recall"] >= 0.95
    assert chosen < ivf.ivf["nlist"], out  # not simply every list
    if chosen > 1:
        assert out["tried"][chosen - 1] < 0.95, out  # the smallest: one list fewer misses the target
    # the measured recall is the recall of a search at that nprobe
    ref = exact.search(calib, k=K).indices
    assert recall_at_k(ivf.search(calib, k=K).indices, ref) == pytest.approx(out["recall"])
    held_out = recall_at_k(ivf.search(check, k=K).indices, exact.search(check, k=K).indices)
    assert held_out >= 0.92, f"recall {held_out:.3f} on queries not used for calibration (nprobe {chosen})"
    # a lower target needs fewer lists
    assert ivf.calibrate_nprobe(calib, target_recall=0.6, k=K)["nprobe"] < chosen


def test_calibrate_nprobe_warns_when_the_target_is_out_of_reach_and_checks_arguments(gallery):
    emb, queries, ids, exact, _ = gallery
    pq = MotionSearchIndex(emb[:5_000], ids[:5_000], backend="faiss-ivfpq", ivfpq={"nlist": 32, "k_factor": 1})
    # a shortlist of k PQ-ranked candidates cannot return the exact top 10 of every query, whatever nprobe
    with pytest.warns(UserWarning, match="raise k_factor"):
        out = pq.calibrate_nprobe(queries[:50], target_recall=1.0, k=K)
    best = max(out["tried"].values())
    assert not out["reached"] and best < 1.0 and out["recall"] == best
    assert out["nprobe"] == min(n for n, r in out["tried"].items() if r == best) == pq.ivfpq["nprobe"]
    assert 32 in out["tried"]  # every list was tried before giving up
    with pytest.raises(ValueError, match="applies to backend='faiss-ivf' or 'faiss-ivfpq'"):
        exact.calibrate_nprobe(queries[:5])
    with pytest.raises(ValueError, match=r"target_recall must be a number in \(0, 1\]"):
        pq.calibrate_nprobe(queries[:5], target_recall=1.5)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        pq.calibrate_nprobe(queries[:5], k=0)
    with pytest.raises(ValueError, match="larger than the index"):
        pq.calibrate_nprobe(queries[:5], k=5_001)
