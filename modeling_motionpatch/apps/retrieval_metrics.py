"""Text-motion retrieval metrics: ranks, recall@k, median/mean rank and the evaluation protocols.

This module depends only on ``torch``, ``numpy`` and the standard library; every computation is
vectorised (loops only run over row chunks, gallery chunks or query blocks, never over single queries or items)
and runs on CPU (tensors on other devices are copied to CPU first).

Retrieval metrics
-----------------
:func:`compute_retrieval_metrics` takes **paired embeddings**: row ``i`` of ``text_embeds`` describes row ``i`` of
``motion_embeds`` (one caption per motion). It builds the similarity matrix ``sim = text @ motion.T`` of shape
``(num_texts, num_motions)`` (cosine similarity by default, see :func:`similarity_matrix`) and evaluates both
directions: text-to-motion (``t2m``: each text row ranks all motions) and motion-to-text (``m2t``: each motion
ranks all texts, i.e. the columns of ``sim``). :func:`compute_retrieval_metrics_from_similarity` does the same from
a precomputed ``sim``. Reported per direction: ``R@1``, ``R@2``, ``R@3``, ``R@5``, ``R@10`` (percent of queries
whose rank is <= k), ``MedR`` (median rank, numpy convention: mean of the two middle ranks for an even count)
and ``MeanR`` (mean rank); ranks are 1-based.

Protocols (which gallery items count as correct for a query):

``"all"`` (the MotionPatches paper's default)
    The whole test split, one caption per motion (the caller passes the *first* caption of every motion). Every
    gallery item whose caption is string-identical to the query's caption is correct, so a motion and its mirrored
    duplicate, which share a caption, are both correct answers. Requires ``captions``.
``"small_batches"`` (Guo et al. 2022)
    The pairs are shuffled with ``torch.randperm(n, generator=torch.Generator().manual_seed(seed))``, cut into
    consecutive batches of ``batch_size`` (32) pairs, the remainder is dropped; inside each batch only the diagonal
    is correct. Each batch gives its own R@k, MedR and MeanR, and the reported numbers are the means over batches.
    The result carries ``seed``, ``batch_size`` and ``num_batches``. (TMR/Guo shuffle with numpy's global RNG, so
    individual numbers differ from theirs by permutation noise, not by protocol.)
``"strict"`` (TMR's "normal")
    Only the diagonal is correct: text ``i`` must retrieve motion ``i`` and vice versa.
``"threshold"`` (TMR)
    Item ``j`` is correct for query ``i`` when the cosine similarity of the *caption embeddings* ``i`` and ``j`` is
    ``>= threshold`` (default 0.95), plus the diagonal itself. ``caption_embeds`` of shape ``(n, d)`` are
    precomputed by the caller with a sentence encoder of their choice; the project's evaluation script uses a
    sentence encoder such as ``sentence-transformers/all-MiniLM-L6-v2``. The threshold is compared with the raw
    cosine in ``[-1, 1]``. TMR's code rescales its parameter ``t`` to a cosine of ``2 t - 1`` with a strict ``>``,
    so TMR's ``threshold=0.95`` corresponds to ``threshold=0.90`` here (up to exact equality).

Ties (one rule for every protocol and both directions)
    A query's rank is ``1 + (number of INCORRECT gallery items whose score is >= s*)``, where ``s*`` is the best
    score among the query's correct items. This is the rank of the first correct item under the *worst* ordering
    of tied scores (pessimistic) and it does not depend on the order of the gallery. With one correct item it is
    the familiar "count of items with score >= the correct score". Why pessimistic: a degenerate model that gives
    every item the same score gets rank = gallery size (R@1 = 0), never R@1 = 100 %, and order-dependent
    tie-breaking by ``argsort`` (what most reference scripts do implicitly) cannot inflate results. Correct items do
    not push each other down. With continuous float scores exact ties are rare, so on real models the numbers
    equal those of the optimistic or averaging rules (TMR averages tied ranks) except for genuine ties.

The search index over these embeddings lives in :mod:`.search_index`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "DIRECTIONS",
    "PROTOCOLS",
    "RECALL_AT",
    "calibrate_match_threshold",
    "compute_retrieval_metrics",
    "compute_retrieval_metrics_from_similarity",
    "format_retrieval_table",
    "rank_metrics",
    "retrieval_ranks",
    "similarity_matrix",
]

#: The recall cut-offs reported for every protocol and direction.
RECALL_AT: tuple[int, ...] = (1, 2, 3, 5, 10)
#: Supported evaluation protocols.
PROTOCOLS: tuple[str, ...] = ("all", "small_batches", "strict", "threshold")
#: Directions: text-to-motion (rows of ``sim``) and motion-to-text (columns of ``sim``).
DIRECTIONS: tuple[str, ...] = ("t2m", "m2t")

ArrayLike = torch.Tensor | np.ndarray | Sequence[Sequence[float]]

# Number of score elements processed at once when ranking (rows x gallery), ~16 MB of float32.
_RANK_CHUNK_ELEMENTS = 1 << 22


# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------
def _as_2d_float(x: ArrayLike, name: str) -> torch.Tensor:
    """Convert ``x`` to a 2-D floating tensor (float32 unless it already is float64), with a clear error."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{name} must be a 2-D array of numbers (tensor, numpy array or nested lists): {err}"
            ) from None
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_items, dim), got shape {tuple(t.shape)}.")
    t = t.cpu()  # everything here runs on CPU (a 4,384^2 similarity is 77 MB; copying it is cheap)
    if t.dtype != torch.float64:
        if not (
            t.dtype.is_floating_point
            or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
        ):
            raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}.")
        t = t.float()
    return t


def _check_finite(t: torch.Tensor, name: str) -> None:
    """Raise a ValueError if ``t`` has NaN/inf (fast path: one float sum; exact chunked check only if it is not finite)."""
    if t.numel() == 0 or bool(torch.isfinite(t.sum())):
        return
    flat = t.reshape(-1)
    bad = 0
    for i0 in range(0, flat.numel(), _RANK_CHUNK_ELEMENTS):
        bad += int((~torch.isfinite(flat[i0 : i0 + _RANK_CHUNK_ELEMENTS])).sum())
    if bad:
        raise ValueError(
            f"{name} contains {bad} NaN or infinite values; clean the embeddings before evaluating."
        )


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation (rows of norm 0 stay 0)."""
    return torch.nn.functional.normalize(x, p=2.0, dim=1, eps=1e-12)


def _median(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """numpy-style median along ``dim`` (mean of the two middle values for an even count)."""
    return torch.quantile(values.double(), 0.5, dim=dim, interpolation="linear")


# ---------------------------------------------------------------------------------------------------------------------
# ranks and metrics
# ---------------------------------------------------------------------------------------------------------------------
def similarity_matrix(
    text_embeds: ArrayLike, motion_embeds: ArrayLike, normalize: bool = True
) -> torch.Tensor:
    """Similarity ``(num_texts, num_motions)`` between text and motion embeddings.

    Args:
        text_embeds: ``(num_texts, dim)``.
        motion_embeds: ``(num_motions, dim)``.
        normalize: L2-normalise both sides first, so the scores are cosine similarities (ranking then does not
            depend on the scale of the embeddings or on the model's logit scale). Already-normalised embeddings
            (what ``get_text_features`` / ``get_motion_features`` return) are unaffected up to rounding.

    Returns:
        float32 (or float64 if an input is float64) tensor ``text @ motion.T``.
    """
    t = _as_2d_float(text_embeds, "text_embeds")
    m = _as_2d_float(motion_embeds, "motion_embeds")
    if t.shape[1] != m.shape[1]:
        raise ValueError(
            f"text_embeds has dim {t.shape[1]} but motion_embeds has dim {m.shape[1]}; both must come from the same "
            "joint embedding space (get_text_features / get_motion_features of one model)."
        )
    if t.dtype != m.dtype:
        t, m = t.double(), m.double()
    _check_finite(t, "text_embeds")
    _check_finite(m, "motion_embeds")
    if normalize:
        t, m = _l2_normalize(t), _l2_normalize(m)
    return t @ m.T


def _ranks(
    sim: torch.Tensor,
    pair_rows: torch.Tensor,
    pair_cols: torch.Tensor,
    diagonal: bool,
    rows: bool = True,
    cols: bool = True,
    what: str = "retrieval",
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Pessimistic 1-based ranks of the rows (queries = rows) and/or the columns (queries = columns) of ``sim``.

    The correct items are the diagonal (when ``diagonal``) plus the sparse pairs ``(pair_rows[p], pair_cols[p])``
    (unique, off-diagonal). For a row query ``i``: ``best = max`` score of its correct items, and
    ``rank = #{j : sim[i, j] >= best} - #{correct j : sim[i, j] == best} + 1`` = 1 + number of incorrect items
    scoring ``>= best``. Columns are the same on ``sim.T``, computed without transposing. Dense work is two
    comparisons and two ``count_nonzero`` per row chunk; ground-truth work is O(number of pairs).
    """
    n_r, n_c = sim.shape
    pair_scores = sim[pair_rows, pair_cols]
    diag = sim.diagonal() if diagonal else None
    best_r = best_c = None
    if rows:
        best_r = torch.full((n_r,), -math.inf, dtype=sim.dtype)
        if diag is not None:
            best_r[: diag.numel()] = diag
        best_r.scatter_reduce_(0, pair_rows, pair_scores, reduce="amax", include_self=True)
    if cols:
        best_c = torch.full((n_c,), -math.inf, dtype=sim.dtype)
        if diag is not None:
            best_c[: diag.numel()] = diag
        best_c.scatter_reduce_(0, pair_cols, pair_scores, reduce="amax", include_self=True)
    for side, best in (("row", best_r), ("column", best_c)):
        if best is not None and not bool(torch.isfinite(best).all()):
            q = int(torch.nonzero(~torch.isfinite(best))[0])
            raise ValueError(
                f"{what}: {side} query {q} has no correct gallery item; every query needs at least one."
            )

    cnt_r = torch.zeros(n_r, dtype=torch.long) if rows else None
    cnt_c = torch.zeros(n_c, dtype=torch.long) if cols else None
    step = max(1, _RANK_CHUNK_ELEMENTS // max(n_c, 1))
    sim_np = sim.numpy()  # numpy's count_nonzero is ~2.5x faster than torch's bool reductions on CPU
    for r0 in range(0, n_r, step):
        chunk = sim_np[r0 : r0 + step]
        if cnt_r is not None and best_r is not None:
            ge = chunk >= best_r[r0 : r0 + step, None].numpy()
            cnt_r[r0 : r0 + step] = torch.from_numpy(np.count_nonzero(ge, axis=1).astype(np.int64))
        if cnt_c is not None and best_c is not None:
            ge = chunk >= best_c[None, :].numpy()
            cnt_c += torch.from_numpy(np.count_nonzero(ge, axis=0).astype(np.int64))

    def finish(cnt: torch.Tensor, best: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        ties = torch.zeros(cnt.numel(), dtype=torch.long)  # correct items scoring exactly `best`
        if diag is not None:
            ties[: diag.numel()] += (diag == best[: diag.numel()]).long()
        ties.scatter_add_(0, idx, (pair_scores == best[idx]).long())
        return cnt.long() - ties + 1

    out_r = finish(cnt_r, best_r, pair_rows) if cnt_r is not None and best_r is not None else None
    out_c = finish(cnt_c, best_c, pair_cols) if cnt_c is not None and best_c is not None else None
    return out_r, out_c


_EMPTY = torch.zeros(0, dtype=torch.long)


def retrieval_ranks(sim: ArrayLike, correct: ArrayLike | None = None) -> torch.Tensor:
    """1-based rank of every query (row of ``sim``) under the pessimistic tie rule.

    ``rank = 1 + #{incorrect items j : sim[q, j] >= max_{correct c} sim[q, c]}``, independent of gallery order.

    Args:
        sim: scores ``(num_queries, num_gallery)``, higher is better; must be finite.
        correct: boolean ``(num_queries, num_gallery)`` mask of correct items, every row with at least one
            ``True``; ``None`` means the diagonal (``num_queries <= num_gallery``).

    Returns:
        int64 tensor ``(num_queries,)``.
    """
    s = _as_2d_float(sim, "sim")
    _check_finite(s, "sim")
    if correct is None:
        if s.shape[0] > s.shape[1]:
            raise ValueError(
                f"sim has {s.shape[0]} queries but only {s.shape[1]} gallery items; the diagonal ground truth needs "
                "num_queries <= num_gallery (or pass an explicit `correct` mask)."
            )
        ranks, _ = _ranks(s, _EMPTY, _EMPTY, diagonal=True, cols=False, what="retrieval_ranks")
    else:
        c = correct if isinstance(correct, torch.Tensor) else torch.as_tensor(np.asarray(correct))
        if tuple(c.shape) != tuple(s.shape):
            raise ValueError(
                f"correct has shape {tuple(c.shape)} but sim has shape {tuple(s.shape)}; they must match."
            )
        pr, pc = torch.nonzero(c.bool(), as_tuple=True)
        ranks, _ = _ranks(s, pr, pc, diagonal=False, cols=False, what="retrieval_ranks")
    assert ranks is not None
    return ranks


def rank_metrics(ranks: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """R@k (percent), MedR and MeanR from 1-based ranks; keys are ``f"{prefix}R@{k}"``, ``MedR``, ``MeanR``.

    ``ranks`` may be ``(num_queries,)`` or ``(num_batches, batch)``: in the 2-D case every metric is computed per
    batch and averaged over batches (the ``small_batches`` protocol).
    """
    r = ranks if ranks.ndim == 2 else ranks.reshape(1, -1)
    if r.numel() == 0:
        raise ValueError("rank_metrics got no ranks; there must be at least one query.")
    out: dict[str, float] = {}
    for k in RECALL_AT:
        out[f"{prefix}R@{k}"] = float((r <= k).double().mean(1).mean() * 100.0)
    out[f"{prefix}MedR"] = float(_median(r, dim=1).mean())
    out[f"{prefix}MeanR"] = float(r.double().mean(1).mean())
    return out


def _caption_ids(captions: Sequence[str], n: int) -> torch.Tensor:
    """Integer id per caption: equal strings get equal ids (vectorised with numpy.unique)."""
    if isinstance(captions, str) or not hasattr(captions, "__len__"):
        raise ValueError(
            "captions must be a sequence of strings, one per motion (the first caption of each motion)."
        )
    if len(captions) != n:
        raise ValueError(
            f"captions has {len(captions)} entries but there are {n} text/motion pairs; pass exactly one caption per "
            "pair (for the 'all' protocol: the first caption of each motion)."
        )
    arr = np.empty(n, dtype=object)
    arr[:] = list(captions)
    not_str = np.flatnonzero([not isinstance(c, str) for c in arr])[:5].tolist()
    if not_str:
        raise ValueError(
            f"captions must all be strings; entries {not_str} are not (e.g. {type(arr[not_str[0]])})."
        )
    _, inverse = np.unique(arr, return_inverse=True)  # exact string equality (object array, no truncation)
    return torch.from_numpy(inverse.reshape(-1).astype(np.int64))


def _same_label_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All ordered pairs ``(i, j)``, ``i != j``, with ``labels[i] == labels[j]`` (vectorised, O(sum of group^2))."""
    sorted_labels, order = torch.sort(labels, stable=True)
    _, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    group = torch.repeat_interleave(torch.arange(counts.numel()), counts)  # group of each sorted position
    size, first = counts[group], starts[group]
    pos = torch.nonzero(size > 1).reshape(-1)  # sorted positions that have partners
    if pos.numel() == 0:
        return _EMPTY, _EMPTY
    reps = size[pos]
    src = torch.repeat_interleave(pos, reps)
    offset = torch.arange(int(reps.sum())) - torch.repeat_interleave(torch.cumsum(reps, 0) - reps, reps)
    dst = first[src] + offset
    keep = src != dst
    return order[src[keep]], order[dst[keep]]


def _threshold_pairs(
    caption_embeds: ArrayLike, n: int, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Off-diagonal pairs ``(i, j)`` with cosine(caption_embeds[i], caption_embeds[j]) >= threshold."""
    e = _as_2d_float(caption_embeds, "caption_embeds")
    if e.shape[0] != n:
        raise ValueError(
            f"caption_embeds has {e.shape[0]} rows but there are {n} text/motion pairs; embed the same caption "
            "that is paired with each motion (one row per pair, same order)."
        )
    if not (-1.0 <= float(threshold) <= 1.0):
        raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}.")
    _check_finite(e, "caption_embeds")
    e = _l2_normalize(e)
    rows, cols = [], []
    step = max(1, _RANK_CHUNK_ELEMENTS // max(n, 1))
    for r0 in range(0, n, step):
        # upper triangle only (columns j >= r0): half the work, and the relation is exactly symmetric
        r, c = torch.nonzero((e[r0 : r0 + step] @ e[r0:].T) >= threshold, as_tuple=True)
        r, c = r + r0, c + r0
        upper = c > r
        rows.append(r[upper])
        cols.append(c[upper])
    pr, pc = torch.cat(rows), torch.cat(cols)
    return torch.cat([pr, pc]), torch.cat([pc, pr])


def _both_directions(
    sim: torch.Tensor, pair_rows: torch.Tensor, pair_cols: torch.Tensor, protocol: str
) -> dict[str, Any]:
    """t2m ranks are the rows of ``sim``, m2t ranks its columns; ground truth = diagonal + the given pairs."""
    out: dict[str, Any] = {"protocol": protocol, "num_queries": int(sim.shape[0])}
    t2m, m2t = _ranks(sim, pair_rows, pair_cols, diagonal=True, what=protocol)
    assert t2m is not None and m2t is not None
    out.update(rank_metrics(t2m, "t2m/"))
    out.update(rank_metrics(m2t, "m2t/"))
    return out


def _small_batches(sim: torch.Tensor, seed: int, batch_size: int) -> dict[str, Any]:
    n = sim.shape[0]
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    num_batches = n // batch_size
    if num_batches == 0:
        raise ValueError(
            f"small_batches needs at least batch_size={batch_size} pairs, got {n}; lower batch_size or evaluate "
            "more pairs."
        )
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)[: num_batches * batch_size].view(num_batches, batch_size)
    blocks = sim[perm[:, :, None], perm[:, None, :]]  # (B, bs, bs): texts x motions within each batch
    out: dict[str, Any] = {
        "protocol": "small_batches",
        "num_queries": int(num_batches * batch_size),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "num_batches": int(num_batches),
    }
    for direction, b in (("t2m", blocks), ("m2t", blocks.transpose(1, 2))):
        diag = b.diagonal(dim1=1, dim2=2)  # (B, bs)
        ranks = (b >= diag[..., None]).sum(-1)  # counts the correct item itself -> 1-based
        out.update(rank_metrics(ranks, f"{direction}/"))
    return out


def compute_retrieval_metrics_from_similarity(
    sim: ArrayLike,
    captions: Sequence[str] | None = None,
    protocols: Sequence[str] | str = ("all", "small_batches"),
    seed: int = 0,
    caption_embeds: ArrayLike | None = None,
    threshold: float = 0.95,
    batch_size: int = 32,
) -> dict[str, dict[str, Any]]:
    """Retrieval metrics of every protocol from a square similarity matrix.

    Args:
        sim: ``(n, n)`` scores, ``sim[i, j]`` = score of text ``i`` against motion ``j``; pair ``i`` is
            (text ``i``, motion ``i``). Higher is better; must be finite.
        captions: one string per pair; required by ``"all"``.
        protocols: any of :data:`PROTOCOLS` (a single string is accepted).
        seed: seed of the ``small_batches`` shuffle.
        caption_embeds: ``(n, d)`` sentence embeddings of ``captions``; required by ``"threshold"``.
        threshold: cosine threshold of the ``"threshold"`` protocol.
        batch_size: batch size of the ``small_batches`` protocol.

    Returns:
        ``{protocol: metrics}``; ``metrics`` has float values ``"t2m/R@1"`` ... ``"t2m/R@10"``, ``"t2m/MedR"``,
        ``"t2m/MeanR"`` and the same for ``"m2t/"``, plus ``"protocol"`` (str), ``"num_queries"`` (int) and, for
        ``small_batches``, ``"seed"``, ``"batch_size"``, ``"num_batches"``; for ``threshold``, ``"threshold"``.
    """
    s = _as_2d_float(sim, "sim")
    if s.shape[0] != s.shape[1]:
        raise ValueError(
            f"sim must be square (pair i = text i and motion i), got shape {tuple(s.shape)}; evaluate one caption "
            "per motion (the first) so that texts and motions are aligned."
        )
    _check_finite(s, "sim")
    n = s.shape[0]
    if n == 0:
        raise ValueError("sim is empty; there must be at least one text/motion pair.")
    if isinstance(protocols, str):
        protocols = (protocols,)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; choose from {list(PROTOCOLS)}.")
    results: dict[str, dict[str, Any]] = {}
    for protocol in dict.fromkeys(protocols):
        if protocol == "strict":
            results[protocol] = _both_directions(s, _EMPTY, _EMPTY, protocol)
        elif protocol == "all":
            if captions is None:
                raise ValueError(
                    "protocol 'all' needs captions= (the first caption of every motion, one per pair); pass them or "
                    "choose protocols=('strict', 'small_batches')."
                )
            # identical captions are correct in both directions (caption equality is symmetric)
            pr, pc = _same_label_pairs(_caption_ids(captions, n))
            results[protocol] = _both_directions(s, pr, pc, protocol)
        elif protocol == "threshold":
            if caption_embeds is None:
                raise ValueError(
                    "protocol 'threshold' needs caption_embeds= (n, d) sentence embeddings of the captions, e.g. "
                    "from sentence-transformers/all-MiniLM-L6-v2; compute them once per test split and pass them."
                )
            # pair (i, j): caption i ~ caption j, so motion j is correct for text i and text i for motion j
            pr, pc = _threshold_pairs(caption_embeds, n, threshold)
            res = _both_directions(s, pr, pc, protocol)
            res["threshold"] = float(threshold)
            results[protocol] = res
        else:  # small_batches
            results[protocol] = _small_batches(s, seed, batch_size)
    return results


def calibrate_match_threshold(
    similarity: ArrayLike, same: ArrayLike, false_positive_rate: float | None = 0.05
) -> dict[str, float]:
    """The cosine similarity from which a (motion, text) pair counts as a confident match, from held-out pairs.

    ``similarity`` holds cosines of every (motion, text) pair of a validation split, ``same`` whether they describe
    the same thing (e.g. the same action label). The threshold is the lowest one at which at most
    ``false_positive_rate`` of the non-matching pairs reach it (a confident match is rarely a wrong one: 5 % by
    default); with ``false_positive_rate=None`` it maximises ``TPR - FPR`` instead (Youden's J, which treats a missed
    match and a false one alike). It lies halfway between the two scores it separates. Returns the threshold, the
    rates of matching (TPR) and non-matching (FPR) pairs at or above it, and the pair counts; calibrate on validation
    data only.
    """
    sim = _as_2d_float(similarity, "similarity").flatten()
    label = torch.as_tensor(np.asarray(same), dtype=torch.bool).flatten()
    if label.shape != sim.shape:
        raise ValueError(f"similarity has {sim.numel()} pairs but same has {label.numel()}; give one flag per pair.")
    positives, negatives = int(label.sum()), int((~label).sum())
    if not positives or not negatives:
        raise ValueError(
            f"calibrating a match threshold needs matching and non-matching pairs; got {positives} and {negatives}."
        )
    order = torch.argsort(sim, descending=True)
    scores, hits = sim[order], label[order]
    tpr = torch.cumsum(hits, 0).double() / positives  # rates when the threshold is at scores[k] (inclusive)
    fpr = torch.cumsum(~hits, 0).double() / negatives
    distinct = torch.ones_like(hits)
    distinct[:-1] = scores[:-1] != scores[1:]  # only between distinct scores
    if false_positive_rate is None:
        objective = tpr - fpr
    else:
        if not 0.0 < false_positive_rate < 1.0:
            raise ValueError(f"false_positive_rate must be in (0, 1) or None, got {false_positive_rate!r}.")
        objective = torch.where(fpr <= false_positive_rate, tpr, torch.full_like(tpr, -1.0))
    k = int(torch.argmax(torch.where(distinct, objective, torch.full_like(tpr, -2.0))))
    below = float(scores[k + 1]) if k + 1 < len(scores) else float(scores[k]) - 1e-3
    return {
        "threshold": (float(scores[k]) + below) / 2.0,
        "true_positive_rate": float(tpr[k]),
        "false_positive_rate": float(fpr[k]),
        "positives": positives,
        "negatives": negatives,
    }


def compute_retrieval_metrics(
    text_embeds: ArrayLike,
    motion_embeds: ArrayLike,
    captions: Sequence[str] | None = None,
    protocols: Sequence[str] | str = ("all", "small_batches"),
    seed: int = 0,
    caption_embeds: ArrayLike | None = None,
    threshold: float = 0.95,
    batch_size: int = 32,
    normalize: bool = True,
) -> dict[str, dict[str, Any]]:
    """Text-to-motion and motion-to-text retrieval metrics for paired embeddings.

    Args:
        text_embeds: ``(n, d)``, one caption embedding per motion (row ``i`` describes motion ``i``).
        motion_embeds: ``(n, d)``.
        captions: ``n`` strings (the first caption of each motion); required by ``"all"``.
        protocols: any of ``"all"``, ``"small_batches"``, ``"strict"``, ``"threshold"`` (module docstring).
        seed: seed of the ``small_batches`` shuffle (reported in its result).
        caption_embeds: ``(n, d')`` sentence-encoder embeddings of ``captions``; required by ``"threshold"``.
        threshold: cosine similarity of caption embeddings at or above which an item counts as correct.
        batch_size: batch size of ``small_batches`` (32 in Guo et al.).
        normalize: use cosine similarity (see :func:`similarity_matrix`).

    Returns:
        ``{protocol: metrics}`` as described in :func:`compute_retrieval_metrics_from_similarity`.

    Example::

        >>> res = compute_retrieval_metrics(t, m, captions, protocols=("all", "small_batches"))
        >>> res["all"]["t2m/R@1"], res["small_batches"]["m2t/MedR"]
    """
    t = _as_2d_float(text_embeds, "text_embeds")
    m = _as_2d_float(motion_embeds, "motion_embeds")
    if t.shape[0] != m.shape[0]:
        raise ValueError(
            f"text_embeds has {t.shape[0]} rows but motion_embeds has {m.shape[0]}; the protocols need paired data "
            "(row i of each describes the same sample): keep one caption per motion."
        )
    sim = similarity_matrix(t, m, normalize=normalize)
    return compute_retrieval_metrics_from_similarity(
        sim,
        captions=captions,
        protocols=protocols,
        seed=seed,
        caption_embeds=caption_embeds,
        threshold=threshold,
        batch_size=batch_size,
    )


def format_retrieval_table(
    results: Mapping[str, Any], decimals: int = 2, include_mean_rank: bool = False
) -> str:
    """Paper-style markdown table: one row per protocol, t2m then m2t columns R@1, R@2, R@3, R@5, R@10, MedR.

    Args:
        results: the output of :func:`compute_retrieval_metrics` (``{protocol: metrics}``) or one metrics dict.
        decimals: digits after the decimal point.
        include_mean_rank: add ``MeanR`` columns.
    """
    if "protocol" in results and not isinstance(results.get("protocol"), Mapping):
        results = {str(results["protocol"]): results}
    cols = [f"R@{k}" for k in RECALL_AT] + ["MedR"] + (["MeanR"] if include_mean_rank else [])
    header = ["Protocol", "N"] + [f"{d.upper()} {c}" for d in ("t2m", "m2t") for c in cols]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    for protocol, metrics in results.items():
        if not isinstance(metrics, Mapping):
            raise ValueError(f"results[{protocol!r}] must be a metrics dict, got {type(metrics).__name__}.")  # noqa: TRY004
        name = str(protocol)
        if protocol == "small_batches" and "seed" in metrics:
            name += f" (bs={metrics.get('batch_size', 32)}, seed={metrics['seed']})"
        if protocol == "threshold" and "threshold" in metrics:
            name += f" ({metrics['threshold']:g})"
        row = [name, str(metrics.get("num_queries", ""))]
        for d in ("t2m", "m2t"):
            for c in cols:
                v = metrics.get(f"{d}/{c}")
                row.append("-" if v is None else f"{float(v):.{decimals}f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
