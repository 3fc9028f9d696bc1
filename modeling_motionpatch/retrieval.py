"""Retrieval in one import: the metrics of :mod:`.retrieval_metrics` and the index of :mod:`.search_index`.

``from modeling_motionpatch.retrieval import compute_retrieval_metrics, MotionSearchIndex`` keeps working; new
code may import from the two modules directly.
"""

from .retrieval_metrics import (
    DIRECTIONS,
    PROTOCOLS,
    RECALL_AT,
    compute_retrieval_metrics,
    compute_retrieval_metrics_from_similarity,
    format_retrieval_table,
    rank_metrics,
    retrieval_ranks,
    similarity_matrix,
)
from .search_index import MotionSearchIndex, SearchResult

__all__ = [
    "DIRECTIONS",
    "PROTOCOLS",
    "RECALL_AT",
    "MotionSearchIndex",
    "SearchResult",
    "compute_retrieval_metrics",
    "compute_retrieval_metrics_from_similarity",
    "format_retrieval_table",
    "rank_metrics",
    "retrieval_ranks",
    "similarity_matrix",
]
