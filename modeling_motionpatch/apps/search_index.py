"""An exact nearest-neighbour search index over motion embeddings, addressed by string ids.

:class:`MotionSearchIndex` stores one embedding per motion with a string id and answers top-k queries exactly by
chunked matrix products with a running top-k merge (a 1,000,000 x 256 float32 gallery and 100 queries need
about 26 MB of scores at a time), or through FAISS (``backend="faiss"``, exact inner product, optional), or
approximately through a FAISS HNSW graph (``backend="faiss-hnsw"``), a FAISS inverted-file index
(``backend="faiss-ivf"``) or an inverted file of 4-bit product-quantised codes whose shortlist is re-ranked exactly
(``backend="faiss-ivfpq"``) for large libraries (optional; the exact torch path stays the default and the reference).

Like :mod:`.retrieval_metrics`, it depends only on ``torch``, ``numpy``, ``safetensors`` and the standard library
(``faiss`` for the ``faiss*`` backends); loops run over gallery chunks or query blocks, never over single items.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .retrieval_metrics import ArrayLike, _as_2d_float, _check_finite, _l2_normalize

__all__ = ["HNSW_DEFAULTS", "IVFPQ_DEFAULTS", "IVF_DEFAULTS", "MotionSearchIndex", "SearchResult"]

BACKENDS = ("torch", "faiss", "faiss-hnsw", "faiss-ivf", "faiss-ivfpq")
# Documented defaults of backend="faiss-hnsw" (FAISS's HNSW parameters: graph degree M, efConstruction, efSearch).
# recall@10 >= 0.95 against exact search at these values on a clustered 20k gallery (tests/test_retrieval.py).
HNSW_DEFAULTS = {"m": 32, "ef_construction": 40, "ef_search": 64}
# Documented defaults of backend="faiss-ivf" (FAISS IndexIVFFlat, inner product, spherical k-means, 10 iterations):
# None means automatic, nlist = round(4 * sqrt(num_items)) lists, k-means trained on train_size =
# min(num_items, 40 * nlist) items drawn with a fixed seed; each query scans its nprobe nearest lists.
# recall@10 >= 0.95 at these values on a clustered 20k gallery (tests/test_search_approximate.py); on real
# embeddings far fewer lists usually suffice (calibrate_nprobe finds how many).
IVF_DEFAULTS: dict[str, int | None] = {"nlist": None, "nprobe": 256, "train_size": None}
# Documented defaults of backend="faiss-ivfpq" (FAISS IndexIVFPQFastScan, inner product, spherical k-means, 10
# iterations, 4-bit product quantisation scanned with SIMD, then exact re-ranking of a shortlist). None means
# automatic: nlist = round(sqrt(num_items)) lists; nprobe = ceil(3 * nlist / 4) lists scanned per query; m = dim // 2
# sub-quantisers of 4 bits (the largest divisor of dim not above dim // 2: 2 dimensions per sub-quantiser, dim / 4
# bytes of code per item); k-means and PQ trained on train_size = min(num_items, 128 * nlist) items drawn with a
# fixed seed. Each query scores the items of its nprobe nearest lists from their codes and re-ranks its
# k_factor * k best candidates by their exact inner product with the gallery the index keeps anyway (no second
# copy of the vectors). recall@10 >= 0.95 at these values on a clustered 20k gallery (tests/test_search_approximate.py),
# on the clustered 1M gallery and on the 3,076 real embedded clips; not on 1M isotropic random vectors (0.92), and
# not on 1M overlapping windows of real motion (0.41: hundreds of near-duplicates per query tie within the PQ error,
# so the exact top 10 is not in the k_factor * k shortlist; use backend="faiss-ivf" there; benchmarks/README.md).
# Scanning 3/4 of the lists is what the synthetic galleries need (a query's neighbours spread over many lists); on
# embeddings with more structure a smaller nprobe keeps the recall and is faster: calibrate_nprobe measures it.
IVFPQ_DEFAULTS: dict[str, int | None] = {"nlist": None, "nprobe": None, "m": None, "k_factor": 20, "train_size": None}
# FAISS (1.8+) scores fewer than `distance_compute_blas_threshold` (128,000 in faiss-cpu 1.15) queries with a
# per-query scan that streams the whole gallery from memory once per query; a BLAS product over blocks of the
# gallery is several times faster for any batch of queries this index serves (benchmarks/README.md).
_FAISS_BLAS_THRESHOLD = 20

# Number of score elements one (query block x gallery chunk) product may hold during search, ~32 MB float32.
_SEARCH_BLOCK_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class SearchResult:
    """Top-k results of a batch of queries, best first.

    Attributes:
        ids: ``ids[q][r]`` is the id of the ``r``-th hit of query ``q``.
        scores: ``(num_queries, k)`` float tensor, descending along each row (cosine similarity when the index
            normalises, else inner product).
        indices: ``(num_queries, k)`` int64 rows of the hits in the index's embedding matrix.

        threshold: the text-motion cosine from which a hit is a confident match (the model's calibrated
            ``match_threshold``), or ``None``.

    ``result[q]`` (and iteration) gives ``[{"id": ..., "score": ..., "match": ...}, ...]`` for query ``q``, where
    ``match`` is ``score >= threshold`` (``None`` without a threshold, and for motion-to-motion search); a query whose
    first hit is no match has no confident answer in the library. :meth:`to_list` gives that for all queries. Among
    exactly equal scores the order is unspecified.
    """

    ids: list[list[str]]
    scores: torch.Tensor
    indices: torch.Tensor
    threshold: float | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, q: int) -> list[dict[str, Any]]:
        t = self.threshold
        return [{"id": i, "score": s, "match": None if t is None else s >= t}
                for i, s in zip(self.ids[q], self.scores[q].tolist())]

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        return (self[q] for q in range(len(self)))

    def to_list(self) -> list[list[dict[str, Any]]]:
        """``[[{"id": str, "score": float, "match": bool | None}, ...] per query]``."""
        return [self[q] for q in range(len(self))]


def _exact_topk(
    gallery: torch.Tensor, queries: torch.Tensor, k: int, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k inner products by chunked matmul + running top-k merge; never holds (Q x N) scores."""
    n = gallery.shape[0]
    n_q = queries.shape[0]
    chunk = max(1, min(chunk_size, n))
    q_block = max(1, min(n_q, _SEARCH_BLOCK_ELEMENTS // chunk))
    out_s = torch.empty(n_q, k, dtype=gallery.dtype)
    out_i = torch.empty(n_q, k, dtype=torch.long)
    for q0 in range(0, n_q, q_block):
        q = queries[q0 : q0 + q_block]
        buf = torch.empty(q.shape[0], chunk, dtype=gallery.dtype)
        best_s: torch.Tensor | None = None
        best_i: torch.Tensor | None = None
        for g0 in range(0, n, chunk):
            g = gallery[g0 : g0 + chunk]
            scores = torch.mm(q, g.T, out=buf) if g.shape[0] == chunk else q @ g.T
            kk = min(k, scores.shape[1])
            cs, ci = torch.topk(scores, kk, dim=1, largest=True, sorted=False)
            ci += g0
            if best_s is None:
                best_s, best_i = cs, ci
            else:
                cat_s = torch.cat([best_s, cs], dim=1)
                cat_i = torch.cat([best_i, ci], dim=1)
                keep = min(k, cat_s.shape[1])
                best_s, pos = torch.topk(cat_s, keep, dim=1, largest=True, sorted=False)
                best_i = torch.gather(cat_i, 1, pos)
        assert best_s is not None and best_i is not None
        order = torch.argsort(best_s, dim=1, descending=True, stable=True)
        out_s[q0 : q0 + q.shape[0]] = torch.gather(best_s, 1, order)
        out_i[q0 : q0 + q.shape[0]] = torch.gather(best_i, 1, order)
    return out_s, out_i


def _features_tensor(out: Any, kind: str) -> torch.Tensor:
    """Accept a tensor or a ModelOutput/dict from get_*_features and return the (B, D) tensor."""
    if isinstance(out, torch.Tensor):
        t = out
    elif isinstance(out, Mapping) or hasattr(out, "keys"):
        for key in (f"{kind}_embeds", "pooler_output", "embeddings"):
            if key in out and out[key] is not None:
                t = out[key]
                break
        else:
            raise ValueError(
                f"get_{kind}_features returned {type(out).__name__} without a tensor under '{kind}_embeds' or "
                "'pooler_output'; it must return the (batch, dim) embeddings, e.g. a BaseModelOutputWithPooling."
            )
    else:
        raise ValueError(f"get_{kind}_features must return a (batch, dim) tensor, got {type(out).__name__}.")
    if t.ndim != 2:
        raise ValueError(
            f"get_{kind}_features must return a (batch, dim) tensor, got shape {tuple(t.shape)}."
        )
    return t.detach().float().cpu()


def _import_faiss(backend: str) -> Any:
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            f"backend={backend!r} needs the optional FAISS package: install it with `pip install faiss-cpu` (or "
            "`pip install \"motionpatch[faiss]\"`, or `faiss-gpu`), or use backend='torch' (exact, no extra "
            "dependency)."
        ) from err
    return faiss


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _backend_params(name: str, given: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``given``; every value a positive integer (or ``None`` where the default is)."""
    unknown = sorted(set(given or {}) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {name} parameters {unknown}; valid ones are {sorted(defaults)}.")
    params = {**defaults, **(given or {})}
    bad = {
        k: v for k, v in params.items()
        if not (v is None and defaults[k] is None) and (isinstance(v, bool) or not isinstance(v, int) or v < 1)
    }
    if bad:
        raise ValueError(f"{name} parameters must be positive integers, got {bad}.")
    return params


def _resolve_ivf(params: Mapping[str, int | None], num_items: int, backend: str = "faiss-ivf") -> dict[str, int]:
    """Fill the automatic ``faiss-ivf`` parameters for ``num_items`` items (see :data:`IVF_DEFAULTS`)."""
    nlist = min(num_items, params["nlist"] or max(1, round(4 * num_items**0.5)))
    train_size = min(num_items, params["train_size"] or 40 * nlist)
    if train_size < nlist:
        raise ValueError(f"{backend} needs train_size >= nlist ({nlist}) to train its k-means, got {train_size}.")
    return {"nlist": nlist, "nprobe": min(params["nprobe"], nlist), "train_size": train_size}


def _resolve_ivfpq(params: Mapping[str, int | None], num_items: int, dim: int) -> dict[str, int]:
    """Fill the automatic ``faiss-ivfpq`` parameters for ``num_items`` items of ``dim`` (see :data:`IVFPQ_DEFAULTS`)."""
    nlist = min(num_items, params["nlist"] or max(1, round(num_items**0.5)))
    nprobe = params["nprobe"] or -(-3 * nlist // 4)
    train_size = params["train_size"] or 128 * nlist
    m = params["m"] or max(q for q in range(1, max(1, dim // 2) + 1) if dim % q == 0)
    if dim % m:
        divisors = [q for q in range(1, dim + 1) if dim % q == 0]
        raise ValueError(
            f"faiss-ivfpq: m={m} sub-quantisers must divide the embedding dim {dim}; pick one of {divisors} "
            f"(e.g. ivfpq={{'m': {max(q for q in divisors if q <= max(1, dim // 2))}}})."
        )
    ivf = _resolve_ivf({"nlist": nlist, "nprobe": nprobe, "train_size": train_size}, num_items, "faiss-ivfpq")
    # PQ training fits 16 centroids per sub-quantiser; FAISS needs at least that many training vectors
    if ivf["train_size"] < 16:
        raise ValueError(
            f"faiss-ivfpq needs at least 16 training items for its 4-bit product quantiser, got "
            f"train_size={ivf['train_size']} (the index has {num_items} items); use backend='torch' for tiny galleries."
        )
    return {**ivf, "m": m, "k_factor": int(params["k_factor"])}


class MotionSearchIndex:
    """Exact nearest-neighbour search over motion embeddings, addressed by string ids.

    Args:
        embeddings: ``(num_items, dim)`` motion embeddings (tensor, numpy array or nested lists).
        ids: one unique string per row.
        text_encoder: optional callable ``list[str] -> (num_texts, dim) tensor`` used when :meth:`search` gets
            strings (:meth:`from_model` sets it to the model's ``get_text_features``).
        normalize: L2-normalise the gallery (a float32 copy) and every query, so scores are cosine similarities.
            With ``normalize=False`` scores are raw inner products and a contiguous float32 CPU tensor is used
            without copying (for embeddings that are already normalised, e.g. ``get_motion_features(..., normalize=True)``).
        metadata: JSON-serialisable dict saved with the index (model name, dataset, ...).
        backend: ``"torch"`` (exact, chunked) or ``"faiss"`` (exact ``IndexFlatIP``; needs ``pip install
            faiss-cpu``; FAISS keeps its own copy of the gallery), or ``"faiss-hnsw"``: approximate search over a
            FAISS HNSW graph (inner product) for large libraries; building it costs minutes per million items,
            it keeps a copy of the gallery plus ``~2 * m * 4`` bytes of links per item, and it is rebuilt by
            :meth:`load`; or ``"faiss-ivf"``: approximate search over a FAISS inverted-file index (``IndexIVFFlat``,
            k-means lists trained on a sample); faster to build than HNSW, it keeps a copy of the gallery plus 8
            bytes of id per item, and it is rebuilt by :meth:`load`; or ``"faiss-ivfpq"``: the same inverted lists
            holding 4-bit product-quantised codes (``IndexIVFPQFastScan``, scanned with SIMD; ``m / 2`` bytes per
            item, ``dim / 4`` at the default ``m``, plus an 8-byte id, and no copy of the gallery), whose
            ``k_factor * k`` best candidates per query are re-ranked by their exact inner product with the gallery;
            scores are exact; the approximate backend for large libraries; it is rebuilt by :meth:`load`.
        hnsw: ``"faiss-hnsw"`` parameters overriding :data:`HNSW_DEFAULTS` (``m``, ``ef_construction``,
            ``ef_search``; ``ef_search`` trades speed for recall and can also be changed later with
            :meth:`set_ef_search`).
        ivf: ``"faiss-ivf"`` parameters overriding :data:`IVF_DEFAULTS` (``nlist``, ``nprobe``, ``train_size``;
            ``nprobe`` trades speed for recall and can also be changed later with :meth:`set_nprobe`). The resolved
            values are in ``index.ivf``.
        ivfpq: ``"faiss-ivfpq"`` parameters overriding :data:`IVFPQ_DEFAULTS` (``nlist``, ``nprobe``, ``m``,
            ``k_factor``, ``train_size``; ``nprobe`` and ``k_factor`` trade speed for recall and can be changed
            later with :meth:`set_nprobe` and :meth:`set_k_factor`). The resolved values are in ``index.ivfpq``.
        chunk_size: gallery rows scored at once by the torch backend; extra memory during a search is about
            ``min(num_queries, 2**23 // chunk_size) * chunk_size * 4`` bytes of scores (26 MB for 100 queries).
        match_threshold: text-motion cosine from which a hit of :meth:`search` is a confident ``match`` (saved with
            the index; :meth:`from_model` takes the model's calibrated ``config.match_threshold``).

    Example::

        >>> index = MotionSearchIndex(motion_embeds, ids=[f"{i:06d}" for i in range(len(motion_embeds))])
        >>> res = index.search(text_embeds, k=5)
        >>> res.ids[0], res.scores[0]          # ids and scores of query 0, best first
        >>> res[0]                             # [{"id": "000123", "score": 0.71}, ...]
    """

    _EMBEDDINGS_FILE = "embeddings.safetensors"
    _SIDECAR_FILE = "index.json"
    _FORMAT = "motionpatch-motion-search-index"
    _VERSION = 1

    def __init__(
        self,
        embeddings: ArrayLike,
        ids: Sequence[str],
        *,
        text_encoder: Callable[[list[str]], Any] | None = None,
        normalize: bool = True,
        metadata: Mapping[str, Any] | None = None,
        backend: str = "torch",
        chunk_size: int = 65536,
        hnsw: Mapping[str, int] | None = None,
        ivf: Mapping[str, int | None] | None = None,
        ivfpq: Mapping[str, int | None] | None = None,
        match_threshold: float | None = None,
        _already_normalized: bool = False,
    ) -> None:
        emb = _as_2d_float(embeddings, "embeddings")
        if isinstance(ids, str) or not isinstance(ids, (Sequence, np.ndarray)):
            raise ValueError("ids must be a sequence of strings, one per embedding row.")  # noqa: TRY004
        ids = list(ids)
        if len(ids) != emb.shape[0]:
            raise ValueError(
                f"got {emb.shape[0]} embeddings but {len(ids)} ids; pass exactly one id per row."
            )
        if emb.shape[0] == 0:
            raise ValueError("embeddings is empty; an index needs at least one item.")
        non_str = [i for i, x in enumerate(ids[:]) if not isinstance(x, str)]
        if non_str:
            raise ValueError(
                f"ids must be strings; entry {non_str[0]} is {type(ids[non_str[0]]).__name__} "
                f"({ids[non_str[0]]!r}). Convert them, e.g. ids=[str(i) for i in ids]."
            )
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(x for x in ids if x in seen or seen.add(x))  # type: ignore[func-returns-value]
            raise ValueError(f"ids must be unique; {dup!r} appears more than once.")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        hnsw_params = _backend_params("hnsw", hnsw, HNSW_DEFAULTS)
        ivf_params = _backend_params("ivf", ivf, IVF_DEFAULTS)
        ivfpq_params = _backend_params("ivfpq", ivfpq, IVFPQ_DEFAULTS)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValueError(f"metadata must be a dict (JSON-serialisable), got {type(metadata).__name__}.")
        _check_finite(emb, "embeddings")
        emb = emb.cpu().float()
        if normalize and not _already_normalized:
            normed = torch.empty_like(emb)
            for r0 in range(0, emb.shape[0], chunk_size):  # chunked to avoid a second full-size temporary
                normed[r0 : r0 + chunk_size] = _l2_normalize(emb[r0 : r0 + chunk_size])
            emb = normed
        self._embeddings = emb.contiguous()
        self._ids = ids
        self._id_to_row: dict[str, int] | None = None
        self.normalize = bool(normalize)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.match_threshold = None if match_threshold is None else float(match_threshold)
        self.text_encoder = text_encoder
        self.backend = backend
        self.chunk_size = chunk_size
        self.hnsw = hnsw_params if backend == "faiss-hnsw" else None
        self.ivf = _resolve_ivf(ivf_params, emb.shape[0]) if backend == "faiss-ivf" else None
        self.ivfpq = _resolve_ivfpq(ivfpq_params, emb.shape[0], emb.shape[1]) if backend == "faiss-ivfpq" else None
        self._faiss_index = (
            self._build_faiss(self._embeddings, backend, hnsw_params, self.ivf or self.ivfpq)
            if backend != "torch"
            else None
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(
        cls,
        model: Any,
        processor: Any,
        motions: Any,
        ids: Sequence[str],
        batch_size: int = 32,
        **index_kwargs: Any,
    ) -> MotionSearchIndex:
        """Embed ``motions`` with ``model.get_motion_features`` and index them; strings can then be searched.

        Args:
            model: a model with ``get_motion_features(motion_values=..., motion_attention_mask=...)`` and
                ``get_text_features(**processor(text=...))`` returning ``(batch, dim)`` embeddings (a tensor or, as
                in transformers 5's CLIP, a ``BaseModelOutputWithPooling`` whose ``pooler_output`` is read); they are
                L2-normalised here. Call
                ``model.eval()`` first (a warning is emitted when the model is in training mode: dropout would make
                the embeddings random).
            processor: called as ``processor(motions=batch, return_tensors="pt")`` on each batch of raw motions
                (it must return ``motion_values`` and optionally ``motion_attention_mask``) and as
                ``processor(text=texts, return_tensors="pt", padding=True)`` for text queries. ``None`` when
                ``motions`` is already a mapping of preprocessed tensors (then text queries need ``text_encoder=``).
            motions: a sequence of raw motions (each ``(frames, joints, 3)``), or, with ``processor=None``, a mapping
                with ``motion_values`` ``(N, ...)`` and optionally ``motion_attention_mask`` ``(N, ...)``.
            ids: one unique string per motion.
            batch_size: motions per forward pass.
            **index_kwargs: forwarded to the constructor (``normalize``, ``metadata``, ``backend``, ...).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if getattr(model, "training", False):
            warnings.warn(
                "MotionSearchIndex.from_model: the model is in training mode (dropout active); call model.eval() "
                "for deterministic embeddings.",
                stacklevel=2,
            )
        device = _model_device(model)
        if processor is None:
            if not isinstance(motions, Mapping) or "motion_values" not in motions:
                raise ValueError(
                    "with processor=None, motions must be a mapping with 'motion_values' (and optionally "
                    "'motion_attention_mask') tensors; otherwise pass the processor."
                )
            n = len(motions["motion_values"])

            def batches() -> Iterator[Mapping[str, Any]]:
                for b0 in range(0, n, batch_size):
                    yield {
                        k: motions[k][b0 : b0 + batch_size]
                        for k in ("motion_values", "motion_attention_mask")
                        if k in motions and motions[k] is not None
                    }
        else:
            n = len(motions)

            def batches() -> Iterator[Mapping[str, Any]]:
                for b0 in range(0, n, batch_size):
                    enc = processor(motions=motions[b0 : b0 + batch_size], return_tensors="pt")
                    yield {k: enc[k] for k in ("motion_values", "motion_attention_mask") if k in enc}

        if len(ids) != n:
            raise ValueError(f"got {n} motions but {len(ids)} ids; pass exactly one id per motion.")
        feats = []
        with torch.no_grad():
            for batch in batches():
                out = model.get_motion_features(**_to_device(batch, device))
                feats.append(_l2_normalize(_features_tensor(out, "motion")))
        embeddings = torch.cat(feats, dim=0)

        index_kwargs.setdefault("match_threshold", getattr(getattr(model, "config", None), "match_threshold", None))
        text_encoder = index_kwargs.pop("text_encoder", None)
        if text_encoder is None and processor is not None:

            def text_encoder(texts: list[str]) -> torch.Tensor:
                enc = processor(text=list(texts), return_tensors="pt", padding=True)
                with torch.no_grad():
                    return _l2_normalize(_features_tensor(model.get_text_features(**_to_device(enc, device)), "text"))

        return cls(embeddings, ids, text_encoder=text_encoder, **index_kwargs)

    @staticmethod
    def _build_faiss(
        embeddings: torch.Tensor,
        backend: str = "faiss",
        hnsw: Mapping[str, int] | None = None,
        ivf: Mapping[str, int] | None = None,
    ) -> Any:
        """The FAISS index of ``backend`` over ``embeddings``; ``ivf`` holds the ``faiss-ivf`` or ``faiss-ivfpq``
        parameters."""
        faiss = _import_faiss(backend)
        dim = int(embeddings.shape[1])
        data = np.ascontiguousarray(embeddings.numpy(), dtype=np.float32)
        if backend == "faiss-hnsw":
            params = {**HNSW_DEFAULTS, **(hnsw or {})}
            index = faiss.IndexHNSWFlat(dim, params["m"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = params["ef_construction"]
            index.hnsw.efSearch = params["ef_search"]
        elif backend in ("faiss-ivf", "faiss-ivfpq"):
            if backend == "faiss-ivf":
                params = _resolve_ivf({**IVF_DEFAULTS, **(ivf or {})}, data.shape[0])
                spec = f"IVF{params['nlist']},Flat"
            else:
                params = _resolve_ivfpq({**IVFPQ_DEFAULTS, **(ivf or {})}, data.shape[0], dim)
                spec = f"IVF{params['nlist']},PQ{params['m']}x4fs"  # 4-bit codes, SIMD "fast scan"
            index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
            index.cp.spherical = True  # unit-norm centroids: a list's centroid is the inner-product direction
            index.cp.niter = 10
            index.nprobe = params["nprobe"]
            n = data.shape[0]
            sample = data
            if params["train_size"] < n:
                sample = data[np.sort(np.random.default_rng(0).choice(n, params["train_size"], replace=False))]
            index.train(sample)
        else:
            index = faiss.IndexFlatIP(dim)
        index.add(data)
        return index

    def set_ef_search(self, ef_search: int) -> None:
        """Set the HNSW search breadth of a ``backend="faiss-hnsw"`` index (larger: higher recall, slower)."""
        if self.backend != "faiss-hnsw":
            raise ValueError(f"set_ef_search applies to backend='faiss-hnsw', this index uses {self.backend!r}.")
        if isinstance(ef_search, bool) or not isinstance(ef_search, int) or ef_search < 1:
            raise ValueError(f"ef_search must be a positive integer, got {ef_search!r}.")
        self.hnsw["ef_search"] = ef_search
        self._faiss_index.hnsw.efSearch = ef_search

    def set_nprobe(self, nprobe: int) -> None:
        """Set how many inverted lists a ``backend="faiss-ivf"`` or ``"faiss-ivfpq"`` query scans (larger: higher
        recall, slower); capped at ``nlist`` (all lists: every item is scored)."""
        params = self._ivf_params("set_nprobe")
        if isinstance(nprobe, bool) or not isinstance(nprobe, int) or nprobe < 1:
            raise ValueError(f"nprobe must be a positive integer, got {nprobe!r}.")
        params["nprobe"] = min(nprobe, params["nlist"])
        self._faiss_index.nprobe = params["nprobe"]

    def _ivf_params(self, method: str) -> dict[str, int]:
        """``self.ivf`` or ``self.ivfpq`` (the live dict); a ValueError naming ``method`` for other backends."""
        if self.backend not in ("faiss-ivf", "faiss-ivfpq"):
            raise ValueError(
                f"{method} applies to backend='faiss-ivf' or 'faiss-ivfpq', this index uses {self.backend!r}."
            )
        return self.ivf if self.backend == "faiss-ivf" else self.ivfpq

    def set_k_factor(self, k_factor: int) -> None:
        """Set how many candidates per requested result (``k_factor * k``) a ``backend="faiss-ivfpq"`` query
        re-ranks exactly (larger: fewer misses from the coarse PQ scores, slower)."""
        if self.backend != "faiss-ivfpq":
            raise ValueError(f"set_k_factor applies to backend='faiss-ivfpq', this index uses {self.backend!r}.")
        if isinstance(k_factor, bool) or not isinstance(k_factor, int) or k_factor < 1:
            raise ValueError(f"k_factor must be a positive integer, got {k_factor!r}.")
        self.ivfpq["k_factor"] = k_factor

    def calibrate_nprobe(
        self, queries: ArrayLike | Sequence[str], target_recall: float = 0.95, k: int = 10
    ) -> dict[str, Any]:
        """Set the smallest ``nprobe`` whose recall@``k`` against exact search reaches ``target_recall`` on
        ``queries``, and return what was measured.

        The documented defaults scan many lists because synthetic worst-case galleries need it; real embeddings
        are more structured and usually keep the recall with far fewer lists (``bench_search_real_1m.py`` in
        ``benchmarks/README.md``: settings chosen on calibration queries, measured on others).
        The exact top-``k`` comes from the float32 gallery the index keeps; ``nprobe`` is then searched by
        doubling from 1 and bisecting between the last miss and the first hit.

        Args:
            queries: a sample of the queries the index will serve (text or motion embeddings ``(Q, dim)``, or
                strings for an index with a ``text_encoder``), a few hundred is enough. Use queries that are not
                themselves in the gallery: an indexed item finds itself, which inflates the recall.
            target_recall: mean fraction of the exact top-``k`` that must be returned, in ``(0, 1]``.
            k: results per query the recall is measured at.

        Returns:
            ``{"nprobe": chosen, "recall": its recall, "target_recall": ..., "k": ..., "reached": bool,
            "tried": {nprobe: recall, ...}}``. When even all lists miss the target (``faiss-ivfpq`` on dense
            near-duplicates, where the ``k_factor * k`` shortlist is too short), ``nprobe`` is set to the smallest
            value with the best recall, ``reached`` is ``False`` and a warning says what to change.
        """
        self._ivf_params("calibrate_nprobe")
        if isinstance(target_recall, bool) or not isinstance(target_recall, (int, float)) or not 0 < target_recall <= 1:
            raise ValueError(f"target_recall must be a number in (0, 1], got {target_recall!r}.")
        q = self._text_or_embedding_queries(queries, "queries")
        k = self._check_k(k)
        exact = _exact_topk(self._embeddings, q, k, self.chunk_size)[1]  # the kept float32 gallery, any backend
        nlist = self._ivf_params("calibrate_nprobe")["nlist"]
        tried: dict[int, float] = {}

        def recall(nprobe: int) -> float:
            if nprobe not in tried:
                self.set_nprobe(nprobe)
                got = self._search(q, k).indices
                hits = (got[:, :, None] == exact[:, None, :]).any(dim=2).sum(dim=1)
                tried[nprobe] = int(hits.sum()) / (hits.numel() * k)  # exact fraction, no float32 rounding
            return tried[nprobe]

        miss, hit = 0, None
        nprobe = 1
        while True:
            if recall(nprobe) >= target_recall:
                hit = nprobe
                break
            miss = nprobe
            if nprobe == nlist:
                break
            nprobe = min(2 * nprobe, nlist)
        if hit is not None:
            while hit - miss > 1:  # recall grows with nprobe: bisect between the last miss and the first hit
                mid = (hit + miss) // 2
                hit, miss = (mid, miss) if recall(mid) >= target_recall else (hit, mid)
            chosen = hit
        else:
            best = max(tried.values())
            chosen = min(n for n, r in tried.items() if r == best)
            advice = (
                "To reach it, raise k_factor (set_k_factor) or use backend='faiss-ivf'."
                if self.backend == "faiss-ivfpq"
                else "Scanning all lists is exact search, so the missed ids tie in score with returned ones."
            )
            warnings.warn(
                f"calibrate_nprobe: recall@{k} reaches at most {best:.3f} (< {target_recall}) even with all {nlist} "
                f"lists; nprobe set to {chosen}. {advice}",
                stacklevel=2,
            )
        self.set_nprobe(chosen)
        return {"nprobe": chosen, "recall": tried[chosen], "target_recall": float(target_recall), "k": k,
                "reached": hit is not None, "tried": dict(sorted(tried.items()))}

    # ------------------------------------------------------------------ properties
    @property
    def embeddings(self) -> torch.Tensor:
        """The ``(num_items, dim)`` float32 gallery (normalised when ``normalize=True``); do not modify in place."""
        return self._embeddings

    @property
    def ids(self) -> list[str]:
        """Item ids, one per row of :attr:`embeddings` (a copy)."""
        return list(self._ids)

    @property
    def dim(self) -> int:
        return int(self._embeddings.shape[1])

    def __len__(self) -> int:
        return int(self._embeddings.shape[0])

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row_of

    @property
    def _row_of(self) -> dict[str, int]:
        if self._id_to_row is None:
            self._id_to_row = {x: i for i, x in enumerate(self._ids)}
        return self._id_to_row

    def get_embedding(self, item_id: str) -> torch.Tensor:
        """The stored ``(dim,)`` embedding of ``item_id``."""
        if item_id not in self._row_of:
            raise KeyError(f"id {item_id!r} is not in the index ({len(self)} items).")
        return self._embeddings[self._row_of[item_id]]

    def __repr__(self) -> str:
        return (
            f"MotionSearchIndex(num_items={len(self)}, dim={self.dim}, normalize={self.normalize}, "
            f"backend={self.backend!r}, text_encoder={'yes' if self.text_encoder else 'no'})"
        )

    # ------------------------------------------------------------------ search
    def _prepare_queries(self, queries: ArrayLike, name: str) -> torch.Tensor:
        if getattr(queries, "pooler_output", None) is not None:  # a get_*_features output (BaseModelOutputWithPooling)
            queries = queries.pooler_output
        if (
            isinstance(queries, torch.Tensor)
            and queries.ndim == 1
            or isinstance(queries, np.ndarray)
            and queries.ndim == 1
        ):
            queries = queries[None]
        q = _as_2d_float(queries, name).cpu().float()
        if q.shape[1] != self.dim:
            raise ValueError(
                f"{name} has dim {q.shape[1]} but the index holds dim-{self.dim} embeddings; query with embeddings "
                "from the same model that built the index."
            )
        if q.shape[0] == 0:
            raise ValueError(f"{name} is empty; pass at least one query.")
        _check_finite(q, name)
        return _l2_normalize(q) if self.normalize else q

    def _check_k(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        if k > len(self):
            raise ValueError(
                f"k={k} is larger than the index ({len(self)} items); ask for at most k={len(self)} results."
            )
        return int(k)

    def _search(self, q: torch.Tensor, k: int, threshold: float | None = None) -> SearchResult:
        k = self._check_k(k)
        if self._faiss_index is not None:
            scores, idx = self._faiss_search(q, k)
        else:
            scores, idx = _exact_topk(self._embeddings, q, k, self.chunk_size)
        ids = self._ids
        return SearchResult(ids=[[ids[j] for j in row] for row in idx.tolist()], scores=scores, indices=idx,
                            threshold=threshold)

    def _faiss_search(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        import faiss

        queries = np.ascontiguousarray(q.numpy(), dtype=np.float32)
        if self.backend == "faiss-hnsw":
            # at least k candidates; a query whose graph walk still finds fewer (-1 ids) gets the exact answer
            params = faiss.SearchParametersHNSW(efSearch=max(self.hnsw["ef_search"], k))
            scores_np, idx_np = self._faiss_index.search(queries, k, params=params)
        elif self.backend == "faiss-ivf":
            # a query whose nprobe lists hold fewer than k items (-1 ids) gets the exact answer below
            scores_np, idx_np = self._faiss_index.search(queries, k)
        elif self.backend == "faiss-ivfpq":
            scores_np, idx_np = self._rerank(queries, k)
        else:
            threshold = faiss.cvar.distance_compute_blas_threshold
            faiss.cvar.distance_compute_blas_threshold = _FAISS_BLAS_THRESHOLD
            try:
                scores_np, idx_np = self._faiss_index.search(queries, k)
            finally:
                faiss.cvar.distance_compute_blas_threshold = threshold
        scores, idx = torch.from_numpy(scores_np), torch.from_numpy(idx_np.astype(np.int64))
        short = (idx < 0).any(dim=1)
        if short.any():
            rows = short.nonzero().squeeze(1)
            scores[rows], idx[rows] = _exact_topk(self._embeddings, q[rows], k, self.chunk_size)
        return scores, idx

    def _rerank(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``faiss-ivfpq``: the ``k_factor * k`` best candidates by PQ score, re-ranked by exact inner product.

        The exact scores are computed by ``faiss.fvec_inner_products_by_idx`` straight from the gallery tensor (no
        copy of the candidates). A query with fewer than ``k`` candidates keeps ``-1`` ids (then answered exactly).
        """
        import faiss

        n_q = queries.shape[0]
        shortlist = min(len(self), self.ivfpq["k_factor"] * k)
        _, cand = self._faiss_index.search(queries, shortlist)
        cand = np.ascontiguousarray(cand, dtype=np.int64)
        valid = cand >= 0
        safe = np.where(valid, cand, 0)
        gallery = self._embeddings.numpy()
        exact = np.empty(cand.shape, dtype=np.float32)
        faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(exact), faiss.swig_ptr(queries), faiss.swig_ptr(gallery), faiss.swig_ptr(safe),
            self.dim, n_q, shortlist,
        )
        exact[~valid] = -np.inf
        scores, pos = torch.topk(torch.from_numpy(exact), k, dim=1, largest=True, sorted=True)
        idx = torch.gather(torch.from_numpy(cand), 1, pos)
        idx[torch.isinf(scores)] = -1
        return scores.numpy(), idx.numpy()

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed texts with the index's ``text_encoder``; ``(len(texts), dim)`` float32."""
        if self.text_encoder is None:
            raise ValueError(
                "this index has no text encoder, so it cannot search strings: build it with "
                "MotionSearchIndex.from_model(...), pass text_encoder=callable at construction/load, or search "
                "with text embeddings (model.get_text_features(...))."
            )
        out = self.text_encoder(list(texts))
        return _features_tensor(out, "text")

    def search(self, queries: ArrayLike | str | Sequence[str], k: int = 10) -> SearchResult:
        """Top-``k`` motions for text queries.

        Args:
            queries: text embeddings ``(num_queries, dim)`` or ``(dim,)``, or a string / list of strings (encoded
                with the index's ``text_encoder``).
            k: results per query, ``1 <= k <= len(index)``.

        Returns:
            :class:`SearchResult` (``ids``, ``scores`` ``(Q, k)``, ``indices`` ``(Q, k)``), best first; each hit's
            ``match`` says whether its score reaches the index's ``match_threshold`` (the model's calibrated one when
            built with :meth:`from_model`).
        """
        return self._search(self._text_or_embedding_queries(queries, "text queries"), k, self.match_threshold)

    def _text_or_embedding_queries(self, queries: ArrayLike | str | Sequence[str], name: str) -> torch.Tensor:
        """Prepared query embeddings: strings go through the ``text_encoder``, arrays are checked as they are."""
        if isinstance(queries, str):
            queries = [queries]
        if isinstance(queries, (list, tuple)) and len(queries) > 0 and all(isinstance(x, str) for x in queries):
            return self._prepare_queries(self.encode_texts(queries), "text_encoder output")
        return self._prepare_queries(queries, name)  # type: ignore[arg-type]

    def search_by_motion(self, motion_embeds: ArrayLike, k: int = 10) -> SearchResult:
        """Top-``k`` motions similar to query motion embeddings ``(num_queries, dim)`` or ``(dim,)``.

        A query that is itself in the index finds itself first (score 1 with normalisation); ask for ``k + 1``
        and drop it if needed.
        """
        return self._search(self._prepare_queries(motion_embeds, "motion_embeds"), k)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to directory ``path``: ``embeddings.safetensors`` + ``index.json`` (ids, metadata).

        The text encoder is not saved; pass ``text_encoder=`` to :meth:`load`. Returns the directory.
        """
        directory = Path(path)
        if directory.exists() and not directory.is_dir():
            raise ValueError(
                f"save path {str(directory)!r} exists and is not a directory; pass a directory path."
            )
        try:
            sidecar = json.dumps(
                {
                    "format": self._FORMAT,
                    "version": self._VERSION,
                    "num_items": len(self),
                    "dim": self.dim,
                    "normalize": self.normalize,
                    "metadata": self.metadata,
                    "match_threshold": self.match_threshold,
                    "ids": self._ids,
                },
                ensure_ascii=False,
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"index metadata must be JSON-serialisable to be saved: {err}") from None
        directory.mkdir(parents=True, exist_ok=True)
        save_file(
            {"embeddings": self._embeddings},
            str(directory / self._EMBEDDINGS_FILE),
            metadata={"format": self._FORMAT},
        )
        (directory / self._SIDECAR_FILE).write_text(sidecar, encoding="utf-8")
        return directory

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        text_encoder: Callable[[list[str]], Any] | None = None,
        backend: str = "torch",
        chunk_size: int = 65536,
        hnsw: Mapping[str, int] | None = None,
        ivf: Mapping[str, int | None] | None = None,
        ivfpq: Mapping[str, int | None] | None = None,
    ) -> MotionSearchIndex:
        """Load an index written by :meth:`save`; search results are identical to the saved index's.

        ``backend``/``hnsw``/``ivf``/``ivfpq`` choose the search backend of the loaded index (an HNSW graph or IVF
        index is rebuilt from the saved embeddings, with the same seeded training sample, so it equals the saved
        index's when built with the same parameters).
        """
        directory = Path(path)
        emb_file, side_file = directory / cls._EMBEDDINGS_FILE, directory / cls._SIDECAR_FILE
        if not emb_file.is_file() or not side_file.is_file():
            raise ValueError(
                f"{str(directory)!r} is not a saved MotionSearchIndex: expected {cls._EMBEDDINGS_FILE} and "
                f"{cls._SIDECAR_FILE} inside it (write one with index.save(path))."
            )
        side = json.loads(side_file.read_text(encoding="utf-8"))
        if side.get("format") != cls._FORMAT:
            raise ValueError(
                f"{str(side_file)!r} has format {side.get('format')!r}, expected {cls._FORMAT!r}."
            )
        if int(side.get("version", 0)) > cls._VERSION:
            raise ValueError(
                f"{str(side_file)!r} has version {side['version']}, newer than this library supports "
                f"({cls._VERSION}); upgrade motionpatch."
            )
        tensors = load_file(str(emb_file))
        if "embeddings" not in tensors:
            raise ValueError(f"{str(emb_file)!r} has no 'embeddings' tensor.")
        emb = tensors["embeddings"]
        if emb.ndim != 2 or emb.shape[0] != len(side["ids"]) or emb.shape[1] != side.get("dim", emb.shape[1]):
            raise ValueError(
                f"{str(directory)!r} is inconsistent: embeddings {tuple(emb.shape)} vs {len(side['ids'])} ids / "
                f"dim {side.get('dim')}; re-save the index."
            )
        return cls(
            emb,
            side["ids"],
            text_encoder=text_encoder,
            normalize=bool(side["normalize"]),
            metadata=side.get("metadata") or {},
            backend=backend,
            chunk_size=chunk_size,
            hnsw=hnsw,
            ivf=ivf,
            ivfpq=ivfpq,
            match_threshold=side.get("match_threshold"),
            _already_normalized=True,
        )
