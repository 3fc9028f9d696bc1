"""Contrastive loss with global negatives across processes (in the spirit of open_clip's ``ClipLoss``).

With data parallelism every process holds ``n`` of the ``N = world_size * n`` pairs of a global batch. To
train exactly as one process on the whole batch would, every process must see all ``N`` motions and texts
as negatives, *and gradients must flow back through the gathered features to the process that produced
them*. ``accelerate.Accelerator.gather`` and ``torch.distributed.all_gather`` return detached tensors;
:func:`gather_features` uses ``torch.distributed.nn.functional.all_gather``, whose backward sends each
process the sum over processes of the gradient with respect to its own features (reduce-scatter; an
all-to-all plus a sum on gloo).

Why the gradients then equal single-process training on the concatenated batch: let ``L`` be the global
loss (mean over the ``N`` pairs). With ``local_loss=False`` every process computes ``L`` itself, the gather's
backward gives process ``r`` the gradient ``W * dL/df_r`` for its features ``f_r`` (``W`` processes each
contribute ``dL/df_r``), and DDP averages the parameter gradients over ``W`` processes:
``(1/W) * sum_r W * dL/df_r * df_r/dtheta = dL/dtheta``. With ``local_loss=True`` (default, cheaper: ``n x N``
logits instead of ``N x N``) process ``r`` computes ``L_r``, the mean loss of its own ``n`` rows and columns
against all ``N`` candidates; ``sum_r L_r = W * L`` and the same argument gives ``dL/dtheta`` again. The
temperature's gradient is exact in both cases.

Logits and the loss are computed in float32, also under autocast (bf16/fp16 features are upcast first).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = ["ClipLoss", "gather_features"]


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def gather_features(
    motion_features: torch.Tensor,
    text_features: torch.Tensor,
    gather_with_grad: bool = True,
    local_loss: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate the features of every process along the batch axis, in rank order.

    Args:
        motion_features, text_features: ``(n, d)`` local features (same ``n`` on every process).
        gather_with_grad: differentiable gather (``torch.distributed.nn.functional.all_gather``). With
            ``False`` the gathered copies are constants and only the local rows get gradients (put back in
            place so the local loss still trains); this is **not** equivalent to single-process training
            and exists for comparison only.
        local_loss: ignored with ``gather_with_grad=True``; with a plain gather, keep the local rows
            differentiable (otherwise they would be replaced by detached copies as well).

    Returns:
        ``(N, d)`` motion and text features, ``N = world_size * n``; unchanged on a single process.
    """
    world_size, rank = _world()
    if world_size == 1:
        return motion_features, text_features
    if gather_with_grad:
        # optional: torch.distributed.nn exists only in torch builds with distributed support; single-process
        # runs never get here
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(motion_features), dim=0), torch.cat(all_gather(text_features), dim=0)
    gathered = []
    for feats in (motion_features, text_features):
        parts = [torch.empty_like(feats) for _ in range(world_size)]
        dist.all_gather(parts, feats.contiguous())
        parts[rank] = feats  # keep the local rows differentiable
        gathered.append(torch.cat(parts, dim=0))
    return gathered[0], gathered[1]


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over the global batch: mean of motion->text and text->motion cross-entropies.

    Args:
        local_loss: each process computes the loss of its own rows (texts) and columns (motions) against all
            ``N`` candidates (``n x N`` logits); ``False`` computes the full ``N x N`` matrix on every process.
            Both give gradients identical to single-process training (see the module docstring).
        gather_with_grad: differentiable all-gather; leave ``True`` (``False`` is the incorrect plain gather,
            kept only to demonstrate the difference in tests).

    ``forward(motion_features, text_features, logit_scale, positive_keys=None)`` takes L2-normalised ``(n, d)``
    features and the log inverse temperature; it returns the float32 scalar loss. On a single process it equals
    :func:`modeling_motionpatch.motion_text_contrastive_loss` of the local logits.

    ``positive_keys`` (``(n,)`` integers, e.g. a hash of each pair's reference caption) marks pairs that describe
    the same thing: a motion's target is then spread evenly over every text of the global batch with its key (and
    likewise for texts), instead of treating the identical captions of other pairs as negatives. With all keys
    distinct this is the plain loss.
    """

    def __init__(self, local_loss: bool = True, gather_with_grad: bool = True):
        super().__init__()
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self._labels: dict[tuple[torch.device, int, int], torch.Tensor] = {}

    def _targets(self, n: int, device: torch.device) -> torch.Tensor:
        world_size, rank = _world()
        offset = n * rank if (self.local_loss and world_size > 1) else 0
        key = (device, n, offset)
        labels = self._labels.get(key)
        if labels is None:
            if world_size > 1 and not self.local_loss:
                labels = torch.arange(n * world_size, device=device)
            else:
                labels = torch.arange(n, device=device) + offset
            self._labels = {key: labels}  # keep one cached entry (the batch size is fixed in training)
        return labels

    def _soft_targets(self, keys: torch.Tensor, n: int) -> torch.Tensor | None:
        """Row-normalised ``key_i == key_j`` targets of the local rows against the global batch, or ``None`` when
        every key of the global batch is distinct (the plain one-hot targets then apply)."""
        world_size, rank = _world()
        all_keys = keys
        if world_size > 1:
            parts = [torch.empty_like(keys) for _ in range(world_size)]
            dist.all_gather(parts, keys.contiguous())
            all_keys = torch.cat(parts)
        if torch.unique(all_keys).numel() == all_keys.numel():
            return None
        rows = keys if (world_size > 1 and self.local_loss) else all_keys
        same = (rows[:, None] == all_keys[None, :]).float()
        return same / same.sum(dim=1, keepdim=True)

    def forward(
        self,
        motion_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        positive_keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if motion_features.shape != text_features.shape or motion_features.ndim != 2:
            raise ValueError(
                f"ClipLoss needs paired (n, d) features; got motion {tuple(motion_features.shape)} and text "
                f"{tuple(text_features.shape)}."
            )
        device_type = motion_features.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            motion = motion_features.float()
            text = text_features.float()
            scale = logit_scale.float().exp()
            world_size, _ = _world()
            all_motion, all_text = gather_features(motion, text, self.gather_with_grad, self.local_loss)
            if world_size > 1 and self.local_loss:
                logits_per_motion = scale * motion @ all_text.t()  # (n, N)
                logits_per_text = scale * text @ all_motion.t()  # (n, N)
            else:
                logits_per_motion = scale * all_motion @ all_text.t()  # (N, N)
                logits_per_text = logits_per_motion.t()
            labels = self._targets(motion.shape[0], motion.device)
            if positive_keys is not None:
                soft = self._soft_targets(positive_keys.to(motion.device), motion.shape[0])
                if soft is not None:
                    labels = soft
            return (F.cross_entropy(logits_per_motion, labels) + F.cross_entropy(logits_per_text, labels)) / 2.0
