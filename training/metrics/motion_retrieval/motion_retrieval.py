"""`evaluate` metric for text-motion retrieval (R@1/2/3/5/10, MedR, MeanR in both directions).

Load it by path::

    import evaluate
    metric = evaluate.load("training/metrics/motion_retrieval")   # or the absolute path of this folder
    for batch in test_loader:
        metric.add_batch(text_embeds=t, motion_embeds=m, captions=batch_captions)
    results = metric.compute(protocols=("all", "small_batches"), seed=0)

The numbers come from :func:`modeling_motionpatch.apps.retrieval_metrics.compute_retrieval_metrics` (one implementation for the
library, the training loop and this module); see that module for the protocols and the (pessimistic) tie rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import evaluate
import numpy as np

from modeling_motionpatch.apps.retrieval_metrics import compute_retrieval_metrics

_CITATION = """\
@inproceedings{yu2024motionpatches,
  title={Exploring Vision Transformers for 3D Human Motion-Language Models with Motion Patches},
  author={Yu, Qing and Tanaka, Mikihiro and Fujiwara, Kent},
  booktitle={CVPR},
  year={2024}
}
@inproceedings{guo2022generating,
  title={Generating Diverse and Natural 3D Human Motions from Text},
  author={Guo, Chuan and Zou, Shihao and Zuo, Xinxin and Wang, Sen and Ji, Wei and Li, Xingyu and Cheng, Li},
  booktitle={CVPR},
  year={2022}
}
@inproceedings{petrovich2023tmr,
  title={TMR: Text-to-Motion Retrieval Using Contrastive 3D Human Motion Synthesis},
  author={Petrovich, Mathis and Black, Michael J. and Varol, G{\"u}l},
  booktitle={ICCV},
  year={2023}
}
"""

_DESCRIPTION = """\
Text-to-motion (t2m) and motion-to-text (m2t) retrieval between paired text and motion embeddings (row i of each
describes the same sample; one caption per motion). Reports R@1, R@2, R@3, R@5, R@10 in percent, MedR (median
1-based rank) and MeanR under the protocols 'all' (identical captions count as correct; the MotionPatches paper's
default), 'small_batches' (Guo et al.: seeded shuffle, batches of 32, averaged), 'strict' (diagonal only, TMR's
"normal") and 'threshold' (TMR: captions whose sentence embeddings have cosine >= threshold count as correct).
Ties are ranked pessimistically: rank = 1 + number of incorrect items scoring >= the best correct item.
"""

_KWARGS_DESCRIPTION = """
Inputs (add / add_batch / compute):
    text_embeds (`list` of `list` of `float`): one text embedding per sample, all of the same size.
    motion_embeds (`list` of `list` of `float`): one motion embedding per sample, same size as text_embeds.
    captions (`list` of `str`): the caption paired with each sample (the first caption of the motion); used by
        'all', ignored by the other protocols.

Compute keyword arguments:
    protocols (`str` or `list` of `str`, defaults to `("all", "small_batches")`): any of 'all', 'small_batches',
        'strict', 'threshold'. A single string returns that protocol's flat metrics dict; a list returns
        `{protocol: metrics}` (the same as `compute_retrieval_metrics`).
    seed (`int`, defaults to 0): seed of the small_batches shuffle (reported back as `seed`).
    batch_size (`int`, defaults to 32): small_batches batch size.
    caption_embeds (array `(n, d)`, *optional*): sentence embeddings of the captions in the order the samples
        were added (e.g. from sentence-transformers/all-MiniLM-L6-v2); required by 'threshold'.
    threshold (`float`, defaults to 0.95): cosine threshold of 'threshold'.
    normalize (`bool`, defaults to True): L2-normalise the embeddings (cosine similarity).

Returns:
    Floats `t2m/R@1` ... `t2m/R@10`, `t2m/MedR`, `t2m/MeanR`, the same for `m2t/`, plus `protocol`, `num_queries`
    and (small_batches) `seed`, `batch_size`, `num_batches`, (threshold) `threshold`.

Example:
    >>> import evaluate
    >>> metric = evaluate.load("training/metrics/motion_retrieval")
    >>> out = metric.compute(text_embeds=[[1.0, 0.0], [0.0, 1.0]], motion_embeds=[[1.0, 0.1], [0.1, 1.0]],
    ...                      captions=["a person walks", "a person jumps"], protocols="all")
    >>> out["t2m/R@1"]
    100.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MotionRetrieval(evaluate.Metric):
    """Text-motion retrieval metrics as an `evaluate` module (wraps `modeling_motionpatch.apps.retrieval_metrics`)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "text_embeds": datasets.Sequence(datasets.Value("float32")),
                    "motion_embeds": datasets.Sequence(datasets.Value("float32")),
                    "captions": datasets.Value("string"),
                }
            ),
            codebase_urls=[],
            reference_urls=["https://arxiv.org/abs/2405.04771"],
        )

    def _compute(
        self,
        text_embeds: Any,
        motion_embeds: Any,
        captions: Any,
        protocols: str | Sequence[str] = ("all", "small_batches"),
        seed: int = 0,
        batch_size: int = 32,
        caption_embeds: Any = None,
        threshold: float = 0.95,
        normalize: bool = True,
    ) -> dict[str, Any]:
        caps = [str(c) for c in np.asarray(captions, dtype=object).reshape(-1).tolist()]
        single = isinstance(protocols, str)
        wanted = (protocols,) if single else tuple(protocols)
        # the library checks the protocol names, the pairing and the values
        results = compute_retrieval_metrics(_stack(text_embeds, "text_embeds"), _stack(motion_embeds, "motion_embeds"),
                                            captions=caps, protocols=wanted, seed=seed, caption_embeds=caption_embeds,
                                            threshold=threshold, batch_size=batch_size, normalize=normalize)
        return results[wanted[0]] if single else results


def _stack(column: Any, name: str) -> np.ndarray:
    """Stack the rows of an embedding column (lists of floats) into a (n, d) float32 array."""
    arr = np.asarray(column)
    if arr.dtype == object:
        lengths = {len(np.asarray(r)) for r in arr}
        if len(lengths) != 1:
            raise ValueError(
                f"all {name} must have the same length; got lengths {sorted(lengths)[:5]}. Add embeddings from one "
                "model only."
            )
        arr = np.stack([np.asarray(r, dtype=np.float32) for r in arr])
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(
            f"{name} must be a non-empty list of equal-length float vectors, got shape {arr.shape}."
        )
    return arr.astype(np.float32, copy=False)
