"""Retrieval scoring shared by training and ``motionpatch-evaluate``: embed a split, flatten the metrics, chance levels.

Each motion is paired with its **first** caption (the paper's protocol); motions are cropped to their first
``max_frames`` frames (no random crop, no mirroring). Embeddings from all processes are collected with
``accelerator.gather_for_metrics`` (which drops the samples Accelerate repeats to even out the last batch) and
re-ordered by sample index, so the metrics do not depend on the number of processes.

The metrics themselves come from :func:`modeling_motionpatch.apps.retrieval_metrics.compute_retrieval_metrics` (the one
implementation in the project); this module only flattens them to ``{protocol}/{t2m|m2t}/{metric}`` keys and
adds ``{protocol}/rsum`` (sum of R@1, R@5 and R@10 in both directions, the usual model-selection score).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from modeling_motionpatch.modeling_motionpatch import motion_text_contrastive_loss, similarity_logits
from modeling_motionpatch.apps.retrieval_metrics import compute_retrieval_metrics, format_retrieval_table

logger = logging.getLogger(__name__)

RSUM_RECALLS = (1, 5, 10)
SMALL_BATCH_SIZE = 32
#: Gaussian draws averaged by :func:`chance_levels`
CHANCE_DRAWS = 10


@torch.no_grad()
def embed_split(accelerator, model, dataloader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(text_embeds, motion_embeds, indices)`` of a prepared eval dataloader, float32 on CPU, sorted by index."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    texts, motions, indices = [], [], []
    for batch in dataloader:
        index = batch.pop("sample_index").to(device)
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with accelerator.autocast():
            out = model(**batch)
        t, m, i = accelerator.gather_for_metrics((out.text_embeds.float(), out.motion_embeds.float(), index))
        texts.append(t.cpu())
        motions.append(m.cpu())
        indices.append(i.cpu())
    if was_training:
        model.train()
    index = torch.cat(indices)
    order = torch.argsort(index)
    return torch.cat(texts)[order], torch.cat(motions)[order], index[order]


def flatten_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{protocol: {t2m/R@1: ...}}`` -> ``{"all/t2m/R@1": ..., "all/rsum": ...}`` (numbers only)."""
    flat: dict[str, float] = {}
    for protocol, metrics in results.items():
        for key, value in metrics.items():
            if "/" in key:
                flat[f"{protocol}/{key}"] = float(value)
        recalls = [metrics.get(f"{d}/R@{k}") for d in ("t2m", "m2t") for k in RSUM_RECALLS]
        if all(v is not None for v in recalls):
            flat[f"{protocol}/rsum"] = float(sum(recalls))
    return flat


def block_loss(text: torch.Tensor, motion: torch.Tensor, logit_scale: float, block: int) -> float:
    """Mean contrastive loss over consecutive blocks of ``block`` pairs (the training batch), in float32."""
    n = text.shape[0]
    losses, weights = [], []
    for start in range(0, n, block):
        t, m = text[start : start + block], motion[start : start + block]
        if t.shape[0] < 2:
            continue
        logits = similarity_logits(t, m, torch.tensor(float(logit_scale)))
        losses.append(motion_text_contrastive_loss(logits).item())
        weights.append(t.shape[0])
    return float(np.average(losses, weights=weights)) if losses else float("nan")


def applicable_protocols(
    protocols: Sequence[str], num_pairs: int, notes: list[str], small_batch_size: int = SMALL_BATCH_SIZE
) -> list[str]:
    """The protocols (each once) that apply to ``num_pairs`` pairs: the one check of their preconditions, made
    before any metric by training's validation and by ``motionpatch-evaluate``. ``small_batches`` needs at least one
    full batch of ``small_batch_size`` pairs; with fewer it is dropped and ``notes`` says so."""
    protocols = list(dict.fromkeys(protocols))
    if "small_batches" in protocols and num_pairs < small_batch_size:
        protocols.remove("small_batches")
        notes.append(f"small_batches skipped: {num_pairs} pairs < batch size {small_batch_size}")
    return protocols


def retrieval_metrics(
    text: torch.Tensor, motion: torch.Tensor, captions: Sequence[str], protocols: Sequence[str], seed: int
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Metrics of the protocols that apply to ``len(captions)`` pairs; notes say what was skipped and why."""
    notes: list[str] = []
    protocols = applicable_protocols(protocols, len(captions), notes)
    results = compute_retrieval_metrics(text, motion, captions=list(captions), protocols=protocols, seed=seed)
    return results, notes


def chance_levels(
    captions: Sequence[str], protocols: Sequence[str], seed: int, caption_embeds=None, threshold: float = 0.95,
    batch_size: int = SMALL_BATCH_SIZE, draws: int = CHANCE_DRAWS, dim: int = 64,
) -> dict[str, dict[str, Any]]:
    """Expected metrics of a model with random embeddings: the mean over ``draws`` Gaussian draws, scored by the same
    :func:`compute_retrieval_metrics` on the same captions, so training and ``motionpatch-evaluate`` report the same
    chance levels.

    With the ``all`` protocol, motions sharing the query's caption count as correct, so chance is higher than
    ``k / N`` when captions repeat (label-derived captions); this measures it instead of assuming it.
    """
    n = len(captions)
    g = torch.Generator().manual_seed(int(seed) + 1)
    acc: dict[str, dict[str, Any]] = {}
    for _ in range(draws):
        t, m = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
        res = compute_retrieval_metrics(t, m, captions=list(captions), protocols=list(protocols), seed=seed,
                                        caption_embeds=caption_embeds, threshold=threshold, batch_size=batch_size)
        for protocol, metrics in res.items():
            slot = acc.setdefault(protocol, {})
            for k, v in metrics.items():
                slot[k] = slot.get(k, 0.0) + float(v) / draws if "/" in k else v
    return acc


def results_table(results: dict[str, dict[str, Any]], chance: dict[str, dict[str, Any]] | None = None) -> str:
    """The paper-style markdown table (``format_retrieval_table``), with chance-level rows when given."""
    rows = dict(results)
    if chance:
        for protocol, metrics in chance.items():
            rows[f"{protocol} (chance)"] = metrics
    return format_retrieval_table(rows)


__all__ = [
    "applicable_protocols",
    "block_loss",
    "chance_levels",
    "embed_split",
    "flatten_metrics",
    "results_table",
    "retrieval_metrics",
]
