"""Tests of modeling_motionpatch.apps.retrieval_metrics (metrics, protocols, search index) and the `evaluate` wrapper.

Offline and deterministic. Run alone with ``python -m pytest tests/test_retrieval.py -q`` from the repository root
(or with ``PYTHONPATH`` pointing at it).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # allow plain `pytest` without installing the package
    sys.path.insert(0, str(REPO))

from modeling_motionpatch.apps.retrieval_metrics import (
    PROTOCOLS,
    RECALL_AT,
    compute_retrieval_metrics,
    compute_retrieval_metrics_from_similarity,
    format_retrieval_table,
    rank_metrics,
    retrieval_ranks,
    similarity_matrix,
)
from modeling_motionpatch.apps.search_index import MotionSearchIndex, SearchResult

# ---------------------------------------------------------------------------------------------------------------------
# hand-computed example
# ---------------------------------------------------------------------------------------------------------------------
# 4 pairs; captions 0 and 2 are identical ("walk"), as a motion and its mirrored copy would be.
CAPTIONS = ["walk", "run", "walk", "jump"]
# rows = texts t0..t3, columns = motions m0..m3; many exact ties on purpose (same literal -> same float32).
SIM = torch.tensor(
    [
        [0.5, 0.9, 0.7, 0.5],
        [0.2, 0.8, 0.8, 0.1],
        [0.6, 0.3, 0.6, 0.6],
        [0.4, 0.4, 0.4, 0.4],
    ]
)
# caption embeddings for "threshold": cos(c0, c2) = 1/sqrt(1.01) = 0.995 and cos(c1, c3) = 1/sqrt(1.09) = 0.958
# are >= 0.95; every other pair is below 0.40.
CAPTION_EMBEDS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.3, 1.0]])


def _expect(metrics: dict, direction: str, recalls: dict[int, float], medr: float, meanr: float) -> None:
    for k, v in recalls.items():
        assert metrics[f"{direction}/R@{k}"] == pytest.approx(v), (direction, k)
    assert metrics[f"{direction}/MedR"] == pytest.approx(medr), direction
    assert metrics[f"{direction}/MeanR"] == pytest.approx(meanr), direction


def test_hand_computed_strict_with_ties():
    res = compute_retrieval_metrics_from_similarity(SIM, protocols="strict")["strict"]
    # t2m, correct = diagonal; rank = 1 + #other items with score >= the correct score:
    #   t0: correct 0.5; 0.9, 0.7 and the tied 0.5 are >= -> 4
    #   t1: correct 0.8; the tied 0.8 -> 2
    #   t2: correct 0.6; two tied 0.6 -> 3
    #   t3: all four scores tie -> 4
    # ranks [4, 2, 3, 4]: R@1 0, R@2 25, R@3 50, R@5 100; MedR = median(2, 3, 4, 4) = 3.5; MeanR = 13/4
    _expect(res, "t2m", {1: 0, 2: 25, 3: 50, 5: 100, 10: 100}, 3.5, 3.25)
    # m2t, motion j ranks the texts in column j:
    #   m0: column [.5 .2 .6 .4], correct t0 .5; t2 .6 above -> 2
    #   m1: column [.9 .8 .3 .4], correct t1 .8; t0 .9 above -> 2
    #   m2: column [.7 .8 .6 .4], correct t2 .6; t0, t1 above -> 3
    #   m3: column [.5 .1 .6 .4], correct t3 .4; t0, t2 above -> 3
    # ranks [2, 2, 3, 3]: R@1 0, R@2 50, R@3 100; MedR 2.5; MeanR 2.5
    _expect(res, "m2t", {1: 0, 2: 50, 3: 100, 5: 100, 10: 100}, 2.5, 2.5)
    assert res["protocol"] == "strict" and res["num_queries"] == 4


def test_hand_computed_all_protocol_duplicate_captions():
    res = compute_retrieval_metrics_from_similarity(SIM, captions=CAPTIONS, protocols="all")["all"]
    # t2m: t0 and t2 ("walk") accept m0 and m2; rank = 1 + #INCORRECT items >= best correct score
    #   t0: best correct max(.5, .7) = .7; incorrect m1 .9 is above, m3 .5 is not -> 2
    #   t1: only m1 (.8); m2 .8 ties -> 2
    #   t2: best correct .6; incorrect m3 .6 ties, m1 .3 not -> 2
    #   t3: all tie -> 4
    # ranks [2, 2, 2, 4]: R@1 0, R@2 75, R@3 75, R@5 100; MedR 2; MeanR 2.5
    _expect(res, "t2m", {1: 0, 2: 75, 3: 75, 5: 100, 10: 100}, 2.0, 2.5)
    # m2t: m0 and m2 accept t0 and t2
    #   m0: best correct max(.5, .6) = .6; incorrect t1 .2, t3 .4 below -> 1
    #   m1: correct t1 .8; t0 .9 above -> 2
    #   m2: best correct max(.7, .6) = .7; incorrect t1 .8 above -> 2
    #   m3: correct t3 .4; t0 .5, t2 .6 above -> 3
    # ranks [1, 2, 2, 3]: R@1 25, R@2 75, R@3 100; MedR 2; MeanR 2
    _expect(res, "m2t", {1: 25, 2: 75, 3: 100, 5: 100, 10: 100}, 2.0, 2.0)


def test_hand_computed_threshold_protocol():
    res = compute_retrieval_metrics_from_similarity(
        SIM, protocols="threshold", caption_embeds=CAPTION_EMBEDS, threshold=0.95
    )["threshold"]
    # correct sets: {0, 2} for pairs 0 and 2 (cos .995), {1, 3} for pairs 1 and 3 (cos .958)
    # t2m: t0 -> 2 (as in "all"); t1: best max(m1 .8, m3 .1) = .8, incorrect m2 .8 ties -> 2; t2 -> 2;
    #      t3: best max(m1 .4, m3 .4) = .4, incorrect m0 .4 and m2 .4 tie -> 3.  ranks [2, 2, 2, 3]
    _expect(res, "t2m", {1: 0, 2: 75, 3: 100, 5: 100, 10: 100}, 2.0, 2.25)
    # m2t: m0 -> 1; m1: best max(t1 .8, t3 .4) = .8, incorrect t0 .9 above -> 2; m2 -> 2;
    #      m3: best max(t1 .1, t3 .4) = .4, incorrect t0 .5, t2 .6 above -> 3.  ranks [1, 2, 2, 3]
    _expect(res, "m2t", {1: 25, 2: 75, 3: 100, 5: 100, 10: 100}, 2.0, 2.0)
    assert res["threshold"] == 0.95


def test_hand_computed_small_batches():
    # One batch holding every pair is the strict protocol whatever the shuffle.
    res = compute_retrieval_metrics_from_similarity(SIM, protocols="small_batches", batch_size=4, seed=3)
    res = res["small_batches"]
    _expect(res, "t2m", {1: 0, 2: 25, 3: 50, 5: 100}, 3.5, 3.25)
    _expect(res, "m2t", {1: 0, 2: 50, 3: 100, 5: 100}, 2.5, 2.5)
    assert (res["seed"], res["batch_size"], res["num_batches"], res["num_queries"]) == (3, 4, 1, 4)
    # 4 pairs in batches of 3: one batch, the remaining pair is dropped
    res3 = compute_retrieval_metrics_from_similarity(SIM, protocols="small_batches", batch_size=3)[
        "small_batches"
    ]
    assert (res3["num_batches"], res3["num_queries"]) == (1, 3)
    # constant scores: inside a batch of 2 every rank is 2 (pessimistic), so R@1 = 0, R@2 = 100, MedR = 2
    flat = compute_retrieval_metrics_from_similarity(
        torch.ones(6, 6), protocols="small_batches", batch_size=2
    )
    _expect(flat["small_batches"], "t2m", {1: 0, 2: 100}, 2.0, 2.0)


def test_constant_scores_are_ranked_last_not_first():
    # a degenerate model (all scores equal) must not get R@1 = 100: every rank is the gallery size
    ranks = retrieval_ranks(torch.zeros(5, 5))
    assert ranks.tolist() == [5, 5, 5, 5, 5]
    m = rank_metrics(ranks, "t2m/")
    assert m["t2m/R@1"] == 0.0 and m["t2m/R@5"] == 100.0 and m["t2m/MedR"] == 5.0


def test_tie_rule_is_independent_of_item_order():
    g = torch.Generator().manual_seed(0)
    sim = torch.randint(0, 4, (50, 50), generator=g).float()  # heavy ties
    perm = torch.randperm(50, generator=g)
    ranks = retrieval_ranks(sim)
    # relabel the pairs: ranks must follow the relabelling exactly (an argsort-based tie break would not)
    assert torch.equal(retrieval_ranks(sim[perm][:, perm]), ranks[perm])
    # shuffling only the gallery order of an explicit mask changes nothing either
    mask = torch.eye(50, dtype=torch.bool)
    assert torch.equal(retrieval_ranks(sim[:, perm], mask[:, perm]), ranks)


def test_retrieval_ranks_explicit_mask_and_errors():
    sim = torch.tensor([[0.1, 0.5, 0.3], [0.2, 0.2, 0.9]])
    correct = torch.tensor([[False, False, True], [True, True, False]])
    # row 0: correct .3, incorrect .5 above -> 2; row 1: best correct .2, incorrect .9 above -> 2
    assert retrieval_ranks(sim, correct).tolist() == [2, 2]
    with pytest.raises(ValueError, match="no correct"):
        retrieval_ranks(sim, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        retrieval_ranks(sim, torch.ones(3, 3, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------------------------------
# comparison with a deliberately naive implementation
# ---------------------------------------------------------------------------------------------------------------------
def naive_rank(scores: list[float], correct: set[int]) -> int:
    """Sort the gallery by score, putting INCORRECT items first among equal scores (worst case), and return the
    1-based position of the first correct item."""
    order = sorted(range(len(scores)), key=lambda j: (-scores[j], j in correct))
    for pos, j in enumerate(order):
        if j in correct:
            return pos + 1
    raise AssertionError("no correct item")


def naive_metrics(ranks_per_batch: list[list[int]], prefix: str) -> dict[str, float]:
    out = {}
    for k in RECALL_AT:
        out[f"{prefix}R@{k}"] = statistics.mean(
            100.0 * sum(r <= k for r in rs) / len(rs) for rs in ranks_per_batch
        )
    out[f"{prefix}MedR"] = statistics.mean(statistics.median(rs) for rs in ranks_per_batch)
    out[f"{prefix}MeanR"] = statistics.mean(statistics.mean(rs) for rs in ranks_per_batch)
    return out


def naive_protocol(
    sim: list[list[float]], correct: list[set[int]], batches: list[list[int]] | None = None
) -> dict:
    """``correct[i]`` = motions correct for text i; m2t uses the transposed relation."""
    n = len(sim)
    if batches is None:
        batches = [list(range(n))]
    out = {}
    for direction in ("t2m", "m2t"):
        per_batch = []
        for b in batches:
            ranks = []
            for qi, q in enumerate(b):
                if direction == "t2m":
                    scores = [sim[q][g] for g in b]
                    corr = {gi for gi, g in enumerate(b) if g in correct[q]}
                else:
                    scores = [sim[g][q] for g in b]
                    corr = {gi for gi, g in enumerate(b) if q in correct[g]}
                ranks.append(naive_rank(scores, corr))
            per_batch.append(ranks)
        out.update(naive_metrics(per_batch, f"{direction}/"))
    return out


def _random_case(seed: int, n: int = 300, tie_heavy: bool = False):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(n, 16, generator=g)
    motion = text + 1.5 * torch.randn(n, 16, generator=g)
    captions = [f"caption {int(i)}" for i in torch.randint(0, 220, (n,), generator=g)]  # many duplicates
    base = torch.randn(n, 8, generator=g)
    src = torch.randint(0, n, (n,), generator=g)
    near = torch.rand(n, generator=g) < 0.3  # ~30 % are near-copies of another caption -> cos >= 0.95
    caption_embeds = torch.where(near[:, None], base[src] + 0.05 * torch.randn(n, 8, generator=g), base)
    sim = similarity_matrix(text, motion)
    if tie_heavy:
        sim = torch.round(sim * 4) / 4  # only 9 distinct values -> ties everywhere
    return text, motion, sim, captions, caption_embeds


@pytest.mark.parametrize("tie_heavy", [False, True])
def test_vectorised_equals_naive_every_protocol(tie_heavy):
    _, _, sim, captions, cap_emb = _random_case(1, tie_heavy=tie_heavy)
    n = sim.shape[0]
    sim_list = sim.tolist()
    e = cap_emb.double().tolist()
    norms = [math.sqrt(sum(x * x for x in v)) for v in e]
    cos = [
        [sum(a * b for a, b in zip(e[i], e[j])) / (norms[i] * norms[j]) for j in range(n)] for i in range(n)
    ]
    threshold = 0.95
    # guard: no cosine sits so close to the threshold that float32 vs float64 rounding could flip it
    assert min(abs(c - threshold) for row in cos for c in row) > 1e-5
    correct = {
        "strict": [{i} for i in range(n)],
        "all": [{j for j in range(n) if captions[j] == captions[i]} for i in range(n)],
        "threshold": [{j for j in range(n) if j == i or cos[i][j] >= threshold} for i in range(n)],
    }
    assert sum(len(c) for c in correct["all"]) > n and sum(len(c) for c in correct["threshold"]) > n

    got = compute_retrieval_metrics_from_similarity(
        sim, captions=captions, protocols=PROTOCOLS, seed=7, caption_embeds=cap_emb, threshold=threshold
    )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(7)).tolist()  # the documented shuffle
    batches = [perm[i : i + 32] for i in range(0, n - n % 32, 32)]
    expected = {p: naive_protocol(sim_list, correct[p]) for p in ("strict", "all", "threshold")}
    expected["small_batches"] = naive_protocol(sim_list, correct["strict"], batches)
    for protocol in PROTOCOLS:
        for key, value in expected[protocol].items():
            assert got[protocol][key] == pytest.approx(value, abs=1e-9), (protocol, key)
    assert got["small_batches"]["num_batches"] == 9 and got["small_batches"]["num_queries"] == 288


def test_embeddings_entry_equals_similarity_entry():
    text, motion, sim, captions, cap_emb = _random_case(2)
    a = compute_retrieval_metrics(text, motion, captions, protocols=PROTOCOLS, caption_embeds=cap_emb)
    b = compute_retrieval_metrics_from_similarity(sim, captions, protocols=PROTOCOLS, caption_embeds=cap_emb)
    assert a == b
    # numpy and list inputs are accepted too
    c = compute_retrieval_metrics(text.numpy(), motion.tolist(), captions, protocols="strict")
    assert c["strict"] == a["strict"]


def test_small_batches_seed_is_reproducible_and_matters():
    _, _, sim, _, _ = _random_case(3)
    first = compute_retrieval_metrics_from_similarity(sim, protocols="small_batches", seed=11)[
        "small_batches"
    ]
    again = compute_retrieval_metrics_from_similarity(sim, protocols="small_batches", seed=11)[
        "small_batches"
    ]
    other = compute_retrieval_metrics_from_similarity(sim, protocols="small_batches", seed=12)[
        "small_batches"
    ]
    assert first == again
    assert first["seed"] == 11 and other["seed"] == 12
    metric_keys = [k for k in first if k.startswith(("t2m/", "m2t/"))]
    assert any(first[k] != other[k] for k in metric_keys)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="captions"):
        compute_retrieval_metrics_from_similarity(SIM, protocols="all")
    with pytest.raises(ValueError, match="caption_embeds"):
        compute_retrieval_metrics_from_similarity(SIM, protocols="threshold")
    with pytest.raises(ValueError, match="unknown protocol"):
        compute_retrieval_metrics_from_similarity(SIM, protocols="nope")
    with pytest.raises(ValueError, match="square"):
        compute_retrieval_metrics_from_similarity(SIM[:3])
    with pytest.raises(ValueError, match="one caption per"):
        compute_retrieval_metrics_from_similarity(SIM, captions=CAPTIONS[:3], protocols="all")
    with pytest.raises(ValueError, match="at least batch_size"):
        compute_retrieval_metrics_from_similarity(SIM, protocols="small_batches")  # 4 pairs < 32
    bad = SIM.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        compute_retrieval_metrics_from_similarity(bad, protocols="strict")
    with pytest.raises(ValueError, match="rows"):
        compute_retrieval_metrics(torch.randn(4, 3), torch.randn(5, 3), protocols="strict")
    with pytest.raises(ValueError, match="dim"):
        compute_retrieval_metrics(torch.randn(4, 3), torch.randn(4, 2), protocols="strict")


def test_format_table():
    res = compute_retrieval_metrics_from_similarity(
        SIM, captions=CAPTIONS, protocols=("all", "strict", "threshold"), caption_embeds=CAPTION_EMBEDS
    )
    table = format_retrieval_table(res)
    lines = table.splitlines()
    assert lines[0].startswith("| Protocol | N | T2M R@1") and "M2T MedR" in lines[0]
    assert len(lines) == 5
    assert lines[2].startswith("| all | 4 | 0.00 | 75.00 | 75.00 | 100.00 | 100.00 | 2.00 | 25.00")
    assert format_retrieval_table(res["strict"]).splitlines()[2].startswith("| strict | 4 | 0.00 | 25.00")


# ---------------------------------------------------------------------------------------------------------------------
# evaluate module
# ---------------------------------------------------------------------------------------------------------------------
def test_evaluate_module_matches_function():
    evaluate = pytest.importorskip("evaluate")
    metric = evaluate.load(str(REPO / "training" / "metrics" / "motion_retrieval"), keep_in_memory=True)
    text, motion, _, captions, cap_emb = _random_case(4, n=100)
    for i in range(0, 100, 30):  # several add_batch calls, as in an eval loop
        metric.add_batch(
            text_embeds=text[i : i + 30].numpy(),
            motion_embeds=motion[i : i + 30].numpy(),
            captions=captions[i : i + 30],
        )
    got = metric.compute(protocols=list(PROTOCOLS), seed=5, caption_embeds=cap_emb.numpy())
    want = compute_retrieval_metrics(
        text, motion, captions, protocols=PROTOCOLS, seed=5, caption_embeds=cap_emb
    )
    assert got == want
    single = metric.compute(
        text_embeds=text.tolist(), motion_embeds=motion.tolist(), captions=captions, protocols="all"
    )
    assert single == want["all"]


# ---------------------------------------------------------------------------------------------------------------------
# search index
# ---------------------------------------------------------------------------------------------------------------------
def _gallery(n: int, d: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, d, generator=g),
        torch.randn(7, d, generator=g),
        [f"motion-{i:05d}" for i in range(n)],
    )


@pytest.mark.parametrize("chunk_size", [65536, 1000, 777])
def test_search_topk_equals_bruteforce_argsort(chunk_size):
    emb, queries, ids = _gallery(10_000)
    index = MotionSearchIndex(emb, ids, chunk_size=chunk_size)
    res = index.search(queries, k=25)
    full = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(emb, dim=1).T
    order = torch.argsort(full, dim=1, descending=True)[:, :25]
    assert torch.equal(res.indices, order)
    assert res.ids == [[ids[j] for j in row] for row in order.tolist()]
    torch.testing.assert_close(res.scores, torch.gather(full, 1, order), rtol=0, atol=1e-5)
    assert isinstance(res, SearchResult) and len(res) == 7 and res.scores.shape == (7, 25)
    assert res[0][0] == {"id": res.ids[0][0], "score": float(res.scores[0, 0]), "match": None}
    # unnormalised index: raw inner products
    raw = MotionSearchIndex(emb, ids, normalize=False, chunk_size=chunk_size).search(queries[0], k=5)
    assert torch.equal(raw.indices[0], torch.argsort(emb @ queries[0], descending=True)[:5])


def test_search_k_validation():
    emb, queries, ids = _gallery(10)
    index = MotionSearchIndex(emb, ids)
    assert index.search(queries, k=10).indices.shape == (7, 10)  # k == gallery size is fine
    with pytest.raises(ValueError, match="larger than the index"):
        index.search(queries, k=11)
    with pytest.raises(ValueError, match="larger than the index"):
        index.search_by_motion(emb[0], k=11)
    with pytest.raises(ValueError, match="positive integer"):
        index.search(queries, k=0)
    with pytest.raises(ValueError, match="dim"):
        index.search(torch.randn(2, 5), k=1)
    with pytest.raises(ValueError, match="no text encoder"):
        index.search("a person walks", k=1)


def test_index_construction_errors():
    emb, _, ids = _gallery(3)
    with pytest.raises(ValueError, match="one id per row"):
        MotionSearchIndex(emb, ids[:2])
    with pytest.raises(ValueError, match="unique"):
        MotionSearchIndex(emb, ["a", "b", "a"])
    with pytest.raises(ValueError, match="strings"):
        MotionSearchIndex(emb, [0, 1, 2])
    with pytest.raises(ValueError, match="backend"):
        MotionSearchIndex(emb, ids, backend="annoy")


def test_search_by_motion_finds_itself():
    emb, _, ids = _gallery(500)
    index = MotionSearchIndex(emb, ids)
    res = index.search_by_motion(emb[[3, 42]], k=3)
    assert [r[0] for r in res.ids] == [ids[3], ids[42]]
    assert torch.allclose(res.scores[:, 0], torch.ones(2), atol=1e-5)


def test_save_load_round_trip(tmp_path):
    emb, queries, ids = _gallery(2_000)
    index = MotionSearchIndex(emb, ids, metadata={"model": "tiny", "split": "test"})
    before = index.search(queries, k=10)
    path = index.save(tmp_path / "idx")
    assert sorted(p.name for p in path.iterdir()) == ["embeddings.safetensors", "index.json"]
    assert json.loads((path / "index.json").read_text())["ids"][:2] == ids[:2]
    loaded = MotionSearchIndex.load(path)
    after = loaded.search(queries, k=10)
    assert torch.equal(loaded.embeddings, index.embeddings)
    assert after.ids == before.ids and torch.equal(after.scores, before.scores)
    assert torch.equal(after.indices, before.indices)
    assert (
        loaded.metadata == {"model": "tiny", "split": "test"} and loaded.ids == ids and len(loaded) == 2_000
    )
    with pytest.raises(ValueError, match="not a saved MotionSearchIndex"):
        MotionSearchIndex.load(tmp_path / "missing")


class _FakeProcessor:
    """Stands in for the MotionPatch processor: motions -> motion_values/mask, text -> input_ids/attention_mask."""

    def __call__(self, text=None, motions=None, return_tensors=None, padding=False):
        if motions is not None:
            values = torch.stack([torch.as_tensor(m, dtype=torch.float32) for m in motions])
            return {
                "motion_values": values,
                "motion_attention_mask": torch.ones(len(motions), 2, dtype=torch.long),
            }
        ids = [[ord(c) % 50 for c in t] for t in text]
        width = max(len(i) for i in ids)
        return {
            "input_ids": torch.tensor([i + [0] * (width - len(i)) for i in ids]),
            "attention_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids]),
        }


class _FakeModel(torch.nn.Module):
    """get_motion_features / get_text_features returning BaseModelOutputWithPooling (B, 8), like the real model."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.motion_proj = torch.nn.Parameter(torch.randn(12, 8, generator=g))
        self.token_emb = torch.nn.Parameter(torch.randn(50, 8, generator=g))

    def get_motion_features(self, motion_values, motion_attention_mask=None):
        assert motion_attention_mask is not None
        return BaseModelOutputWithPooling(pooler_output=motion_values.flatten(1) @ self.motion_proj)

    def get_text_features(self, input_ids, attention_mask):
        pooled = (self.token_emb[input_ids] * attention_mask[..., None]).sum(1)
        return BaseModelOutputWithPooling(pooler_output=pooled)


def test_from_model_and_text_search():
    model, proc = _FakeModel().eval(), _FakeProcessor()
    g = torch.Generator().manual_seed(1)
    motions = [torch.randn(4, 3, generator=g).numpy() for _ in range(10)]
    ids = [f"m{i}" for i in range(10)]
    index = MotionSearchIndex.from_model(model, proc, motions, ids, batch_size=3)
    with torch.no_grad():
        direct = torch.nn.functional.normalize(model.get_motion_features(**proc(motions=motions)).pooler_output, dim=-1)
        text_emb = model.get_text_features(**proc(text=["a person walks", "jumping jacks"])).pooler_output
    torch.testing.assert_close(index.embeddings, direct, rtol=0, atol=1e-6)
    by_text = index.search(["a person walks", "jumping jacks"], k=4)
    by_emb = index.search(text_emb, k=4)
    assert by_text.ids == by_emb.ids and torch.allclose(by_text.scores, by_emb.scores, atol=1e-6)
    assert index.search("a person walks", k=4).ids[0] == by_emb.ids[0]
    # preprocessed tensors without a processor
    pre = proc(motions=motions)
    index2 = MotionSearchIndex.from_model(
        model, None, pre, ids, batch_size=4, text_encoder=lambda t: text_emb[: len(t)]
    )
    torch.testing.assert_close(index2.embeddings, index.embeddings)
    with pytest.warns(UserWarning, match="training mode"):
        MotionSearchIndex.from_model(model.train(), proc, motions, ids)


def test_faiss_backend_missing_or_equal(monkeypatch):
    emb, queries, ids = _gallery(3_000)
    try:
        import faiss  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install faiss-cpu"):
            MotionSearchIndex(emb, ids, backend="faiss")
        return
    ref = MotionSearchIndex(emb, ids).search(queries, k=10)
    got = MotionSearchIndex(emb, ids, backend="faiss").search(queries, k=10)
    assert got.ids == ref.ids
    torch.testing.assert_close(got.scores, ref.scores, rtol=0, atol=1e-5)
    monkeypatch.setitem(sys.modules, "faiss", None)  # simulate an environment without FAISS
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        MotionSearchIndex(emb, ids, backend="faiss")


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys, threading, time, types
    import torch
    torch.set_num_threads(1)
    # search_index.py and retrieval_metrics.py are self-contained (torch/numpy/safetensors only): import them from a
    # bare package object over the folder, so that this subprocess does not pay for importing transformers through
    # the package __init__.
    package = types.ModuleType("motionpatch_search_under_test")
    package.__path__ = [sys.argv[1]]
    sys.modules[package.__name__] = package
    MotionSearchIndex = importlib.import_module(package.__name__ + ".search_index").MotionSearchIndex
    assert "transformers" not in sys.modules

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(key)

    n, d, q = 1_000_000, 256, 100
    g = torch.Generator().manual_seed(0)
    gallery = torch.randn(n, d, generator=g)
    gallery.div_(torch.linalg.vector_norm(gallery, dim=1, keepdim=True))
    index = MotionSearchIndex(gallery, [str(i) for i in range(n)], normalize=False)  # no copy of the gallery
    queries = torch.nn.functional.normalize(torch.randn(q, d, generator=g), dim=1)
    before = status("VmRSS")
    try:  # reset the peak-RSS counter (Linux >= 4.0) so VmHWM measures only the search
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM"
        res = index.search(queries, k=10)
        peak = status("VmHWM")
    except OSError:  # fall back to sampling VmRSS every millisecond
        method, peak, done = "sampling", before, False
        def sample():
            global peak
            while not done:
                peak = max(peak, status("VmRSS")); time.sleep(0.001)
        t = threading.Thread(target=sample); t.start()
        res = index.search(queries, k=10)
        done = True; t.join()
    exact = torch.topk(queries[:2] @ gallery.T, 10, dim=1).indices  # brute-force check of 2 queries
    print(json.dumps({"extra": peak - before, "method": method, "gallery": gallery.numel() * 4,
                      "correct": bool(torch.equal(res.indices[:2], exact))}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_million_item_search_extra_memory_under_1gb():
    module_path = REPO / "modeling_motionpatch" / "apps"
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(module_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["correct"]
    # analytic footprint: a 100 x 65,536 float32 score block is 26 MB (plus the buffer it is written into and
    # top-k temporaries); the 1 GB gallery itself is not "extra". Allow generous slack, still far below 1 GB.
    assert out["extra"] < 256 * 2**20, out
