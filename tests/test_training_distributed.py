"""Global negatives across processes: 2 CPU processes (gloo) give the gradients of 1 process on the whole batch.

Two processes are started with ``torch.multiprocessing.spawn``; each builds the training script's pieces
(``Accelerator`` on CPU -> DDP over gloo, :class:`motionpatch_training.losses.ClipLoss`, ``accelerator.backward``)
and trains one step on its half of an 8-pair batch. The averaged DDP gradients must equal the gradients of one
process computing the loss on all 8 pairs (max abs diff < 1e-5), for both ``local_loss`` settings; with a plain
(non-differentiable) all-gather they must not.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import random_motions, tiny_config  # noqa: E402

CAPTIONS = [
    "a person walks forward", "someone jumps", "a person kicks with the left leg", "a person waves the right hand",
    "someone runs in circle", "a person sits down slowly", "a person turns left", "someone squats quickly",
]
VARIANTS = {  # name -> (local_loss, gather_with_grad)
    "local_with_grad": (True, True),
    "full_with_grad": (False, True),
    "local_plain_gather": (True, False),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deterministic_model(vocab_size: int):
    from modeling_motionpatch import MotionPatchModel

    torch.manual_seed(0)
    config = tiny_config(vocab_size=vocab_size, projection_dropout=0.0)
    config.text_config.dropout = 0.0
    config.text_config.attention_dropout = 0.0
    return MotionPatchModel(config)


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, world_size: int, port: int, workdir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    from accelerate import Accelerator

    from motionpatch_training.losses import ClipLoss

    data = torch.load(Path(workdir) / "inputs.pt")
    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == world_size, accelerator.state
    n = data["batch"]["input_ids"].shape[0] // world_size
    local = {k: v[rank * n : (rank + 1) * n] for k, v in data["batch"].items()}
    results = {}
    for name, (local_loss, with_grad) in VARIANTS.items():
        model = _deterministic_model(data["vocab_size"])
        model.load_state_dict(data["state"])
        model = accelerator.prepare(model)
        loss_fn = ClipLoss(local_loss=local_loss, gather_with_grad=with_grad)
        out = model(**local)
        loss = loss_fn(out.motion_embeds, out.text_embeds, accelerator.unwrap_model(model).logit_scale)
        accelerator.backward(loss)  # DDP averages the gradients over the processes
        global_loss = accelerator.reduce(loss.detach(), "mean")
        results[name] = {"grads": _grads(accelerator.unwrap_model(model)), "loss": global_loss.item()}
        accelerator.free_memory()
    if rank == 0:
        torch.save(results, Path(workdir) / "distributed.pt")
    accelerator.wait_for_everyone()
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tokenizer):
    from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchProcessor
    from motionpatch_training.losses import ClipLoss

    workdir = tmp_path_factory.mktemp("ddp")
    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tokenizer)
    batch = dict(processor(text=CAPTIONS, motions=random_motions(8, seed=5), return_tensors="pt"))
    model = _deterministic_model(len(tokenizer))
    torch.save({"batch": batch, "state": model.state_dict(), "vocab_size": len(tokenizer)}, workdir / "inputs.pt")

    # reference: one process, the whole batch
    out = model(**batch)
    loss = ClipLoss()(out.motion_embeds, out.text_embeds, model.logit_scale)
    loss.backward()
    reference = {"grads": _grads(model), "loss": loss.item()}

    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(workdir)), nprocs=2, join=True)
    return reference, torch.load(workdir / "distributed.pt")


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("variant", ["local_with_grad", "full_with_grad"])
def test_two_processes_equal_one_process_on_the_concatenated_batch(runs, variant):
    reference, distributed = runs
    assert len(reference["grads"]) > 50  # both towers and both heads received gradients
    diff = _max_diff(reference["grads"], distributed[variant]["grads"])
    print(f"{variant}: max abs gradient difference vs 1 process = {diff:.3g}")
    assert diff < 1e-5, f"{variant}: max abs gradient difference {diff:.3g}"
    # the loss each process reports, averaged, is the global loss
    assert distributed[variant]["loss"] == pytest.approx(reference["loss"], abs=1e-5)


def test_plain_gather_without_gradients_is_not_equivalent(runs):
    reference, distributed = runs
    diff = _max_diff(reference["grads"], distributed["local_plain_gather"]["grads"])
    print(f"plain gather: max abs gradient difference vs 1 process = {diff:.3g}")
    # the forward (and so the loss) is the same, but the gradients through the other process's features are lost
    assert distributed["local_plain_gather"]["loss"] == pytest.approx(reference["loss"], abs=1e-5)
    assert diff > 1e-3, f"plain gather unexpectedly matched (max diff {diff:.3g})"


def test_single_process_clip_loss_equals_the_model_loss(tokenizer):
    from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchProcessor
    from motionpatch_training.losses import ClipLoss

    processor = MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tokenizer)
    batch = processor(text=CAPTIONS[:5], motions=random_motions(5, seed=2), return_tensors="pt")
    model = _deterministic_model(len(tokenizer)).eval()
    out = model(**batch, return_loss=True)
    for local in (True, False):
        ours = ClipLoss(local_loss=local)(out.motion_embeds, out.text_embeds, model.logit_scale)
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, out.loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = ClipLoss()(out.motion_embeds.bfloat16(), out.text_embeds.bfloat16(), model.logit_scale)
    assert low.dtype == torch.float32
    with pytest.raises(ValueError, match="paired"):
        ClipLoss()(out.motion_embeds[:3], out.text_embeds, model.logit_scale)
